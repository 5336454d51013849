//! Following faces from frame to frame: a greedy IoU tracker.
//!
//! Each analysed frame's faces are matched to the tracks alive, best overlap first (IoU of the
//! boxes at least [`MIN_IOU`], or a centre within reach of the track's last one: half a box
//! at 5 analysed frames a second, which holds for a person walking across a 720p frame, and
//! a quarter of a box more for every 200 ms since the track was last seen, so that a track
//! survives the frames a processor behind live skips). A face that matches none starts a track; a track
//! that has matched nothing for [`TRACK_TIMEOUT_MS`] of video ends. A track is embedded (and searched) when it is new, and again when its face is
//! markedly better than the best it has had (larger and sharper), so a person first seen small
//! or blurred is searched again when they come closer; in between, the track's last result
//! is reused.

use vigil_faces::Rect;

/// Least overlap for a face to continue a track.
pub const MIN_IOU: f32 = 0.2;
/// Video (ms) a track survives without a face.
pub const TRACK_TIMEOUT_MS: i64 = 1500;
/// A face is searched again when its quality score passes the track's best by this factor.
pub const RESEARCH_GAIN: f32 = 1.3;

/// A track.
#[derive(Debug, Clone)]
pub struct Track {
    /// Its id (unique for the processor's run).
    pub id: u64,
    /// Its last box.
    pub rect: Rect,
    /// When it last matched a face (pts, ms).
    pub seen_ms: i64,
    /// The best quality score searched so far (0 before the first search).
    pub best_score: f32,
    /// The last search's matches (face id, similarity), best first.
    pub matches: Vec<crate::model::Match>,
    /// What the events know of it.
    pub story: Story,
}

/// What a track's events say: when it was seen, what was decided, its best view.
#[derive(Debug, Clone, Default)]
pub struct Story {
    /// First and last seen (pts, ms).
    pub first_ms: u64,
    /// ...
    pub last_ms: u64,
    /// The fragment it was first seen in.
    pub first_fragment: u64,
    /// Analysed frames it was seen in.
    pub frames: u32,
    /// Whether a face good enough to trust a miss was searched.
    pub good_search: bool,
    /// The best match so far.
    pub best: Option<crate::model::Match>,
    /// The decision, once made (and announced).
    pub decision: Option<crate::events::Decision>,
    /// The best view, as a JPEG.
    pub thumbnail: Option<Vec<u8>>,
}

/// The tracks of one stream.
#[derive(Debug, Default)]
pub struct Tracker {
    tracks: Vec<Track>,
    next_id: u64,
}

fn iou(a: &Rect, b: &Rect) -> f32 {
    let x0 = a.left.max(b.left);
    let y0 = a.top.max(b.top);
    let x1 = (a.left + a.width).min(b.left + b.width);
    let y1 = (a.top + a.height).min(b.top + b.height);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = a.width * a.height + b.width * b.height - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

fn near(a: &Rect, b: &Rect, gap_ms: i64) -> bool {
    let (ax, ay) = (a.left + a.width / 2.0, a.top + a.height / 2.0);
    let (bx, by) = (b.left + b.width / 2.0, b.top + b.height / 2.0);
    let steps = gap_ms.clamp(200, TRACK_TIMEOUT_MS) as f32 / 200.0;
    let reach = a.width.max(b.width) * (0.5 + 0.25 * (steps - 1.0));
    (ax - bx).abs() <= reach && (ay - by).abs() <= reach
}

/// How good a face is to search: its width (pixels) times its sharpness.
pub fn score(face: &vigil_faces::DetectedFace) -> f32 {
    face.rect.width * face.quality.sharpness.max(1.0)
}

impl Tracker {
    /// Whether any track is alive.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Matches the faces of the frame at `now_ms` (pts) to tracks; returns, per face, its
    /// track's id, and the tracks that ended: matched nothing for [`TRACK_TIMEOUT_MS`].
    pub fn update(&mut self, faces: &[Rect], now_ms: i64) -> (Vec<u64>, Vec<Track>) {
        // Tracks unseen for too long end first: no face may continue them.
        let (ended, alive): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| now_ms - t.seen_ms > TRACK_TIMEOUT_MS || now_ms < t.seen_ms);
        self.tracks = alive;
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (fi, f) in faces.iter().enumerate() {
            for (ti, t) in self.tracks.iter().enumerate() {
                let o = iou(f, &t.rect);
                if o >= MIN_IOU || near(f, &t.rect, now_ms - t.seen_ms) {
                    pairs.push((o, fi, ti));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut face_track: Vec<Option<usize>> = vec![None; faces.len()];
        let mut taken = vec![false; self.tracks.len()];
        for (_, fi, ti) in pairs {
            let (Some(slot), Some(t)) = (face_track.get_mut(fi), taken.get_mut(ti)) else {
                continue;
            };
            if slot.is_none() && !*t {
                *slot = Some(ti);
                *t = true;
            }
        }
        let mut ids = Vec::with_capacity(faces.len());
        for (fi, f) in faces.iter().enumerate() {
            match face_track.get(fi).copied().flatten() {
                Some(ti) => {
                    if let Some(t) = self.tracks.get_mut(ti) {
                        t.rect = *f;
                        t.seen_ms = now_ms;
                        ids.push(t.id);
                    }
                }
                None => {
                    self.next_id += 1;
                    self.tracks.push(Track {
                        id: self.next_id,
                        rect: *f,
                        seen_ms: now_ms,
                        best_score: 0.0,
                        matches: Vec::new(),
                        story: Story::default(),
                    });
                    ids.push(self.next_id);
                }
            }
        }
        (ids, ended)
    }

    /// The track with this id.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Track> {
        self.tracks.iter_mut().find(|t| t.id == id)
    }

    /// Ends every track (the stream jumped: a skip, the end of a run); returns them.
    pub fn clear(&mut self) -> Vec<Track> {
        std::mem::take(&mut self.tracks)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    fn r(left: f32, top: f32) -> Rect {
        Rect {
            left,
            top,
            width: 100.0,
            height: 120.0,
        }
    }

    #[test]
    fn a_face_moving_keeps_its_track_and_a_new_one_starts_another() {
        let mut t = Tracker::default();
        let (a, _) = t.update(&[r(0.0, 0.0)], 0);
        let (b, _) = t.update(&[r(30.0, 5.0)], 200);
        assert_eq!(a, b);
        let (c, _) = t.update(&[r(60.0, 5.0), r(600.0, 300.0)], 400);
        assert_eq!(c[0], a[0]);
        assert_ne!(c[1], a[0]);
        // A second skipped (a processor behind live): the face moved further, same track.
        let (e, ended) = t.update(&[r(200.0, 5.0)], 1400);
        assert_eq!(e[0], a[0]);
        assert_eq!(ended.len(), 0);
        // Unseen for longer than TRACK_TIMEOUT_MS: both end, and a face where one was is new,
        // even in the frame that ends them.
        let (d, ended) = t.update(&[r(210.0, 5.0)], 1400 + TRACK_TIMEOUT_MS + 1);
        assert_eq!(ended.len(), 2);
        assert!(d[0] > c[1]);
        let (_, ended) = t.update(&[], 5000);
        assert_eq!(ended.len(), 1);
        assert!(t.is_empty());
    }
}
