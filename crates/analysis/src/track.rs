//! Following faces from frame to frame: a greedy IoU tracker.
//!
//! Each analysed frame's faces are matched to the tracks alive, best overlap first (IoU of the
//! boxes at least [`MIN_IOU`], or a centre within half a box of the track's last one, which
//! holds at 5 analysed frames a second for a person walking across a 720p frame). A face that
//! matches none starts a track; a track that has matched nothing for [`MAX_MISSES`] analysed
//! frames ends. A track is embedded (and searched) when it is new, and again when its face is
//! markedly better than the best it has had (larger and sharper), so a person first seen small
//! or blurred is searched again when they come closer; in between, the track's last result
//! is reused.

use vigil_faces::Rect;

/// Least overlap for a face to continue a track.
pub const MIN_IOU: f32 = 0.2;
/// Analysed frames a track survives without a face.
pub const MAX_MISSES: u32 = 5;
/// A face is searched again when its quality score passes the track's best by this factor.
pub const RESEARCH_GAIN: f32 = 1.3;

/// A track.
#[derive(Debug, Clone)]
pub struct Track {
    /// Its id (unique for the processor's run).
    pub id: u64,
    /// Its last box.
    pub rect: Rect,
    /// Analysed frames since it last matched a face.
    pub misses: u32,
    /// The best quality score searched so far (0 before the first search).
    pub best_score: f32,
    /// The last search's matches (face id, similarity), best first.
    pub matches: Vec<crate::model::Match>,
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

fn near(a: &Rect, b: &Rect) -> bool {
    let (ax, ay) = (a.left + a.width / 2.0, a.top + a.height / 2.0);
    let (bx, by) = (b.left + b.width / 2.0, b.top + b.height / 2.0);
    let reach = a.width.max(b.width) * 0.5;
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

    /// Matches this frame's faces to tracks; returns, per face, its track's index in
    /// [`Tracker::tracks_mut`] order. Tracks that match nothing age, and end after
    /// [`MAX_MISSES`] (returned, so that the caller can report their end).
    pub fn update(&mut self, faces: &[Rect]) -> (Vec<u64>, Vec<Track>) {
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (fi, f) in faces.iter().enumerate() {
            for (ti, t) in self.tracks.iter().enumerate() {
                let o = iou(f, &t.rect);
                if o >= MIN_IOU || near(f, &t.rect) {
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
        for (ti, t) in self.tracks.iter_mut().enumerate() {
            if taken.get(ti).copied().unwrap_or(false) {
                t.misses = 0;
            } else {
                t.misses += 1;
            }
        }
        let mut ids = Vec::with_capacity(faces.len());
        for (fi, f) in faces.iter().enumerate() {
            match face_track.get(fi).copied().flatten() {
                Some(ti) => {
                    if let Some(t) = self.tracks.get_mut(ti) {
                        t.rect = *f;
                        ids.push(t.id);
                    }
                }
                None => {
                    self.next_id += 1;
                    self.tracks.push(Track {
                        id: self.next_id,
                        rect: *f,
                        misses: 0,
                        best_score: 0.0,
                        matches: Vec::new(),
                    });
                    ids.push(self.next_id);
                }
            }
        }
        let (ended, alive): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| t.misses > MAX_MISSES);
        self.tracks = alive;
        (ids, ended)
    }

    /// The track with this id.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Track> {
        self.tracks.iter_mut().find(|t| t.id == id)
    }

    /// Forgets every track (the stream jumped: a skip, a new run).
    pub fn clear(&mut self) {
        self.tracks.clear();
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
        let (a, _) = t.update(&[r(0.0, 0.0)]);
        let (b, _) = t.update(&[r(30.0, 5.0)]);
        assert_eq!(a, b);
        let (c, _) = t.update(&[r(60.0, 5.0), r(600.0, 300.0)]);
        assert_eq!(c[0], a[0]);
        assert_ne!(c[1], a[0]);
        // Gone for longer than MAX_MISSES: both end, and a face at the old place is new.
        let mut ended = Vec::new();
        for _ in 0..=MAX_MISSES {
            ended.extend(t.update(&[]).1);
        }
        assert_eq!(ended.len(), 2);
        assert!(t.is_empty());
        let (d, _) = t.update(&[r(60.0, 5.0)]);
        assert!(d[0] > c[1]);
    }
}
