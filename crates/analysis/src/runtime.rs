//! One run of a stream processor, on a thread of its own: the video stream's fragments from
//! the store's tail (from disk, then at the live edge as ingest appends them), demuxed and
//! decoded frame by frame, sampled at the processor's analysis rate, tested for motion,
//! searched for faces, the faces followed and searched in the collection, and every analysed
//! frame that holds a face written to the data stream.
//!
//! - **Sampling**: every frame is decoded (P-frames need the ones before them); a picture is
//!   analysed when it is at least `1 / fps` (the server's setting) after the last one analysed.
//! - **Motion**: an analysed picture whose luma grid ([`crate::motion`]) has not changed from
//!   the last one's, while no face is being followed, is not searched for faces (unless none
//!   was searched for 2 s of video).
//! - **Behind live**: a frame that arrived more than `max_lag_ms` ago is not decoded, and the
//!   decoder waits for the next key frame: a run that falls behind skips to the newest key
//!   frame, counting what it skipped, and ingest never waits for analysis. A run that starts
//!   in the past (a StartSelector, or resumed after a restart) analyses every fragment that
//!   arrived before it started, however late.
//! - **Failures**: the video stream, collection or data stream gone ends the run FAILED with
//!   a message; a sample the decoder refuses is counted and decoding resumes at the next key
//!   frame; a stream that sends nothing leaves the run waiting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use image::RgbImage;
use tokio::sync::watch;
use vigil_datastreams::NewRecord;
use vigil_faces::{DetectedFace, Engine, similarity_from_cosine};
use vigil_media::codec::Codec;
use vigil_mkv::{Demuxer, Event, TrackKind};
use vigil_store::{FragmentStart, StoreError, StreamRef, TailEvent, TimestampKind};
use vigil_video::{FrameDecoder, Picture, VideoCodec};

use crate::events::{self, Decision, EventKind, FaceEvent, GOOD_FACE_PX, GOOD_SHARPNESS};
use crate::events::{THUMBNAIL_PX, UNKNOWN_AFTER};
use crate::model::{FaceSighting, FrameResult, Match, ProcessorRecord, StartAt};
use crate::motion;
use crate::processors::{Analysis, Inner, ProcessorStats, checkpoint, load};
use crate::track::{RESEARCH_GAIN, Track, Tracker, score};

/// A still scene is searched for faces again after this long (ms of video): a face that was
/// too small or blurred when the scene last moved gets another look.
const FORCE_DETECT_MS: i64 = 2000;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stop was asked (or the server is shutting down).
    Stopped,
    /// Its MaxDurationInSeconds ran out.
    Finished,
    /// It cannot go on; why.
    Failed(String),
}

struct Run<'a> {
    inner: &'a Inner,
    handle: &'a tokio::runtime::Handle,
    rec: ProcessorRecord,
    session: String,
    stats: Arc<ProcessorStats>,
    /// Loaded at the first frame to search (a processor on a quiet stream needs none).
    engine: Option<Arc<Engine>>,
    /// Fragments that arrived before this (server time, ms) are analysed however late.
    catch_up_until_ms: u64,
    interval_ms: i64,
    fragment: Option<FragmentStart>,
    demuxer: Demuxer,
    video_track: Option<u64>,
    codec: Option<(VideoCodec, Bytes)>,
    decoder: Option<FrameDecoder>,
    last_analysed: Option<i64>,
    /// When detection last ran (pts, ms).
    last_detected: Option<i64>,
    last_grid: Option<Vec<f32>>,
    tracker: Tracker,
    /// The processor's events log group, once looked up.
    events_group: Option<u64>,
}

pub(crate) fn run(
    inner: &Inner,
    handle: &tokio::runtime::Handle,
    name: &str,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let rec = match load(&inner.store, name) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let Some(session) = rec.session_id.clone() else {
        return Outcome::Failed("the run has no session".into());
    };
    let now = inner.store.clock().now_ms();
    let start = match (rec.checkpoint, rec.start_at) {
        (Some(n), _) => vigil_store::StartAt::Fragment {
            number: n,
            inclusive: false,
        },
        (None, Some(StartAt::Fragment(n))) => vigil_store::StartAt::Fragment {
            number: n,
            inclusive: true,
        },
        (None, Some(StartAt::ProducerTimestamp(ms))) => vigil_store::StartAt::Timestamp {
            kind: TimestampKind::Producer,
            ts_ms: ms,
        },
        (None, None) => vigil_store::StartAt::Now,
    };
    let catch_up_until_ms = if rec.checkpoint.is_some() || rec.start_at.is_some() {
        now
    } else {
        0
    };
    let deadline = rec.max_duration_s.map(|s| {
        let elapsed = now.saturating_sub(rec.run_started_ms.unwrap_or(now));
        Instant::now() + Duration::from_millis((s * 1000).saturating_sub(elapsed))
    });
    let mut tail = match inner.store.tail(StreamRef::Name(&rec.input_stream), start) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(input_gone(&rec, &e)),
    };
    let fps = if inner.cfg.fps > 0.0 {
        inner.cfg.fps
    } else {
        crate::model::DEFAULT_ANALYSIS_FPS
    };
    tracing::info!(
        processor = name,
        stream = rec.input_stream,
        ?start,
        fps,
        "stream processor running"
    );
    let mut run = Run {
        inner,
        handle,
        stats: Analysis::stats_of(inner, name),
        interval_ms: (1000.0 / fps).round() as i64,
        rec,
        session,
        engine: None,
        catch_up_until_ms,
        fragment: None,
        demuxer: Demuxer::new(),
        video_track: None,
        codec: None,
        decoder: None,
        last_analysed: None,
        last_detected: None,
        last_grid: None,
        tracker: Tracker::default(),
        events_group: None,
    };
    loop {
        let event = handle.block_on(async {
            let until = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                e = tail.next() => Some(Ok(e)),
                _ = stop.changed() => None,
                _ = until => Some(Err(())),
            }
        });
        let event = match event {
            None => {
                run.end_run();
                return Outcome::Stopped;
            }
            Some(Err(())) => {
                run.end_run();
                return Outcome::Finished;
            }
            Some(Ok(Ok(e))) => e,
            Some(Ok(Err(e))) => return Outcome::Failed(input_gone(&run.rec, &e)),
        };
        if let Err(outcome) = run.on_event(event) {
            return outcome;
        }
        if *stop.borrow() {
            run.end_run();
            return Outcome::Stopped;
        }
    }
}

fn input_gone(rec: &ProcessorRecord, e: &StoreError) -> String {
    match e {
        StoreError::StreamNotFound(_) => format!(
            "The Kinesis video stream {} does not exist any more.",
            rec.input_arn
        ),
        other => format!("Reading the Kinesis video stream failed: {other}"),
    }
}

/// A JPEG of the face's box widened by half, at most [`THUMBNAIL_PX`] on its long side.
fn thumbnail(image: &RgbImage, r: &vigil_faces::Rect) -> Option<Vec<u8>> {
    let (iw, ih) = (image.width() as f32, image.height() as f32);
    let (cx, cy) = (r.left + r.width / 2.0, r.top + r.height / 2.0);
    let side = r.width.max(r.height) * 1.5;
    let x0 = (cx - side / 2.0).clamp(0.0, iw - 1.0);
    let y0 = (cy - side / 2.0).clamp(0.0, ih - 1.0);
    let w = side.min(iw - x0).max(1.0);
    let h = side.min(ih - y0).max(1.0);
    let crop =
        image::imageops::crop_imm(image, x0 as u32, y0 as u32, w as u32, h as u32).to_image();
    let (cw, ch) = (crop.width() as usize, crop.height() as usize);
    let rgb = vigil_video::Rgb {
        width: cw,
        height: ch,
        data: crop.into_raw(),
    };
    let scale = (THUMBNAIL_PX as f32 / cw.max(ch) as f32).min(1.0);
    let (tw, th) = (
        ((cw as f32 * scale).round() as usize).max(1),
        ((ch as f32 * scale).round() as usize).max(1),
    );
    vigil_video::decode::jpeg(&vigil_video::decode::resize(&rgb, tw, th), 80).ok()
}

impl Run<'_> {
    /// Ends the tracks alive when the run ends (their end events).
    fn end_run(&mut self) {
        let ended = self.tracker.clear();
        let _ = self.end_tracks(ended);
    }

    fn on_event(&mut self, event: TailEvent) -> Result<(), Outcome> {
        match event {
            TailEvent::Start(f) => {
                self.check_outputs()?;
                self.demuxer = Demuxer::new();
                self.demuxer.push(&f.header);
                self.fragment = Some(f);
                self.drain()
            }
            TailEvent::Data(b) => {
                self.demuxer.push(&b);
                self.drain()
            }
            TailEvent::End { .. } => {
                self.demuxer.finish();
                self.drain()?;
                if let Some(f) = self.fragment.take() {
                    checkpoint(self.inner, &self.rec.name, &self.session, f.number)
                        .map_err(|e| Outcome::Failed(e.to_string()))?;
                }
                Ok(())
            }
            TailEvent::Aborted => {
                self.fragment = None;
                if let Some(d) = self.decoder.as_mut() {
                    d.reset();
                }
                Ok(())
            }
        }
    }

    /// Records that these tracks ended.
    fn end_tracks(&mut self, ended: Vec<Track>) -> Result<(), Outcome> {
        for track in ended {
            self.announce(EventKind::FaceTrackEnded, &track)?;
        }
        Ok(())
    }

    /// Records an event of `track` in the processor's events (durably; a failure to do so is
    /// logged, and analysis goes on).
    fn announce(&mut self, kind: EventKind, track: &Track) -> Result<(), Outcome> {
        let story = &track.story;
        if story.frames == 0 {
            return Ok(());
        }
        let group = match self.events_group {
            Some(g) => g,
            None => {
                match events::group(&self.inner.store, &self.rec.name, &self.rec.input_stream) {
                    Ok(g) => *self.events_group.insert(g),
                    Err(e) => {
                        tracing::warn!(processor = self.rec.name, "face events: {e}");
                        return Ok(());
                    }
                }
            }
        };
        let decision = story.decision.unwrap_or(Decision::Undetermined);
        let event = FaceEvent {
            kind,
            processor: self.rec.name.clone(),
            stream: self.rec.input_stream.clone(),
            stream_arn: self.rec.input_arn.clone(),
            session: self.session.clone(),
            track: track.id,
            decision,
            face_id: story.best.as_ref().map(|m| m.face_id),
            external_image_id: story
                .best
                .as_ref()
                .and_then(|m| m.meta.external_image_id.clone()),
            similarity: story.best.as_ref().map(|m| m.similarity),
            start_ms: story.first_ms,
            end_ms: story.last_ms,
            fragment_number: story.first_fragment,
        };
        tracing::info!(
            processor = self.rec.name,
            track = track.id,
            decision = decision.as_str(),
            who = event.external_image_id.as_deref().unwrap_or_default(),
            "{}",
            kind.as_str()
        );
        if let Err(e) = events::record(&self.inner.store, group, &event, story.thumbnail.as_deref())
        {
            tracing::warn!(processor = self.rec.name, "recording a face event: {e}");
        } else {
            ProcessorStats::add(&self.stats.events, 1);
        }
        // One alert per stranger: when the track is decided unknown (not again when it ends).
        if kind == EventKind::FaceTrackStarted
            && decision == Decision::Unknown
            && let (Some(topic), Some(alerts)) =
                (&self.rec.notification_topic_arn, self.inner.alerts.get())
        {
            alerts.unknown_face(topic, &event);
        }
        Ok(())
    }

    /// Fails the run if its collection or data stream is gone (checked at every fragment, so
    /// that a processor notices without a face in view).
    fn check_outputs(&self) -> Result<(), Outcome> {
        match self.inner.store.collection(&self.rec.collection) {
            Ok(_) => {}
            Err(StoreError::CollectionNotFound(_)) => {
                return Err(Outcome::Failed(format!(
                    "The collection {} does not exist any more.",
                    self.rec.collection
                )));
            }
            Err(e) => return Err(Outcome::Failed(e.to_string())),
        }
        match self.inner.streams.describe(&self.rec.output_stream) {
            Ok(_) => Ok(()),
            Err(vigil_datastreams::Error::StreamNotFound(_)) => Err(Outcome::Failed(format!(
                "The Kinesis data stream {} does not exist any more.",
                self.rec.output_arn
            ))),
            Err(e) => Err(Outcome::Failed(e.to_string())),
        }
    }

    fn drain(&mut self) -> Result<(), Outcome> {
        while let Some(event) = self.demuxer.pull() {
            match event {
                Ok(Event::Tracks { tracks, .. }) => self.set_tracks(&tracks),
                Ok(Event::Frame(f)) if Some(f.track) == self.video_track => {
                    self.on_frame(&f.data, f.keyframe, f.time_ns)?;
                }
                Ok(_) => {}
                Err(e) => {
                    // The store checked the fragment at ingest; a damaged one is skipped.
                    ProcessorStats::add(&self.stats.decode_errors, 1);
                    tracing::warn!(processor = self.rec.name, "a fragment does not demux: {e}");
                    self.demuxer = Demuxer::new();
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn set_tracks(&mut self, tracks: &[vigil_mkv::TrackEntry]) {
        let Some(entry) = tracks.iter().find(|t| t.kind() == TrackKind::Video) else {
            self.video_track = None;
            return;
        };
        self.video_track = Some(entry.number);
        let codec = match Codec::from_track(entry) {
            Ok(Codec::H264 { avcc, .. }) => Some((VideoCodec::H264, avcc)),
            Ok(Codec::H265 { hvcc, .. }) => Some((VideoCodec::H265, hvcc)),
            _ => None,
        };
        if codec == self.codec && self.decoder.is_some() {
            return;
        }
        self.decoder = None;
        self.codec = codec.clone();
        if let Some((kind, private)) = codec {
            match FrameDecoder::new(kind, &private) {
                Ok(d) => self.decoder = Some(d),
                Err(e) => {
                    ProcessorStats::add(&self.stats.decode_errors, 1);
                    tracing::warn!(processor = self.rec.name, "no decoder for the stream: {e}");
                }
            }
        }
    }

    fn on_frame(&mut self, data: &[u8], keyframe: bool, time_ns: i64) -> Result<(), Outcome> {
        let Some(fragment) = self.fragment.as_ref() else {
            return Ok(());
        };
        let Some(decoder) = self.decoder.as_mut() else {
            ProcessorStats::add(&self.stats.frames_skipped, 1);
            return Ok(());
        };
        let pts_ms = time_ns.div_euclid(1_000_000);
        let offset_ms = u64::try_from(pts_ms)
            .unwrap_or(0)
            .saturating_sub(fragment.producer_ts_ms);
        let arrived_ms = fragment.server_ts_ms.saturating_add(offset_ms);
        let now = self.inner.store.clock().now_ms();
        if fragment.server_ts_ms >= self.catch_up_until_ms
            && now.saturating_sub(arrived_ms) > self.inner.cfg.max_lag_ms
        {
            // Behind live: skip to the next key frame.
            if !decoder.waiting_for_key_frame() {
                // Tracks live on across the skip (they end after TRACK_TIMEOUT_MS unseen).
                decoder.reset();
                self.last_grid = None;
            }
            ProcessorStats::add(&self.stats.frames_skipped, 1);
            return Ok(());
        }
        let waiting = decoder.waiting_for_key_frame() && !keyframe;
        let pictures = match decoder.push(data, keyframe, pts_ms) {
            Ok(p) => p,
            Err(e) => {
                ProcessorStats::add(&self.stats.decode_errors, 1);
                tracing::warn!(processor = self.rec.name, "a frame does not decode: {e}");
                return Ok(());
            }
        };
        if waiting {
            ProcessorStats::add(&self.stats.frames_skipped, 1);
        }
        for picture in pictures {
            ProcessorStats::add(&self.stats.frames_decoded, 1);
            let due = self.last_analysed.is_none_or(|last| {
                picture.pts - last >= self.interval_ms - 1 || picture.pts < last
            });
            if due {
                self.last_analysed = Some(picture.pts);
                self.analyse(&picture)?;
            }
        }
        Ok(())
    }

    fn analyse(&mut self, picture: &Picture) -> Result<(), Outcome> {
        let Some(fragment) = self.fragment.clone() else {
            return Ok(());
        };
        let grid = motion::grid(&picture.y, picture.width, picture.height);
        let still = self
            .last_grid
            .as_ref()
            .is_some_and(|g| motion::change(g, &grid) < motion::THRESHOLD);
        self.last_grid = Some(grid);
        let stale = self
            .last_detected
            .is_none_or(|t| picture.pts - t >= FORCE_DETECT_MS || picture.pts < t);
        if still && self.tracker.is_empty() && !stale {
            ProcessorStats::add(&self.stats.frames_still, 1);
            return Ok(());
        }
        let collection = match self.inner.store.collection(&self.rec.collection) {
            Ok(c) => c,
            Err(StoreError::CollectionNotFound(_)) => {
                return Err(Outcome::Failed(format!(
                    "The collection {} does not exist any more.",
                    self.rec.collection
                )));
            }
            Err(e) => return Err(Outcome::Failed(e.to_string())),
        };
        let rgb = picture.to_rgb();
        let (w, h) = (
            u32::try_from(rgb.width).unwrap_or(0),
            u32::try_from(rgb.height).unwrap_or(0),
        );
        let Some(image) = RgbImage::from_raw(w, h, rgb.data) else {
            return Ok(());
        };
        let engine = match &self.engine {
            Some(e) => e.clone(),
            None => {
                let e = crate::engine::engine().map_err(|e| Outcome::Failed(e.to_string()))?;
                self.engine = Some(e.clone());
                e
            }
        };
        ProcessorStats::add(&self.stats.frames_analysed, 1);
        self.last_detected = Some(picture.pts);
        let faces: Vec<DetectedFace> = match engine.detect(&image) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(processor = self.rec.name, "face detection failed: {e}");
                return Ok(());
            }
        };
        let (fw, fh) = (w.max(1) as f32, h.max(1) as f32);
        let faces: Vec<DetectedFace> = faces
            .into_iter()
            .filter(|f| {
                let (cx, cy) = (
                    (f.rect.left + f.rect.width / 2.0) / fw,
                    (f.rect.top + f.rect.height / 2.0) / fh,
                );
                self.rec.regions_of_interest.is_empty()
                    || self
                        .rec
                        .regions_of_interest
                        .iter()
                        .any(|r| r.contains(cx, cy))
            })
            .collect();
        let rects: Vec<vigil_faces::Rect> = faces.iter().map(|f| f.rect).collect();
        let (ids, ended) = self.tracker.update(&rects, picture.pts);
        self.end_tracks(ended)?;
        let pts_ms = u64::try_from(picture.pts).unwrap_or(0);
        let mut decided = Vec::new();
        ProcessorStats::add(&self.stats.faces, faces.len() as u64);
        let mut sightings = Vec::with_capacity(faces.len());
        for (face, id) in faces.into_iter().zip(ids) {
            let s = score(&face);
            let Some(track) = self.tracker.get_mut(id) else {
                continue;
            };
            let story = &mut track.story;
            if story.frames == 0 {
                story.first_ms = pts_ms;
                story.first_fragment = fragment.number;
            }
            story.last_ms = pts_ms;
            story.frames += 1;
            if track.best_score == 0.0 || s > track.best_score * RESEARCH_GAIN {
                track.story.thumbnail = thumbnail(&image, &face.rect);
                match engine.embed(&image, &face) {
                    Ok(emb) => {
                        ProcessorStats::add(&self.stats.searches, 1);
                        let k = self.inner.cfg.max_matches;
                        let threshold = self.rec.face_match_threshold;
                        let found = self.inner.collections.read::<_, crate::Error>(
                            &self.inner.store,
                            &collection,
                            |loaded| {
                                Ok(loaded
                                    .index
                                    .search(&emb.0, k)
                                    .into_iter()
                                    .map(|n| (n.key, similarity_from_cosine(n.cosine)))
                                    .filter(|(_, sim)| *sim >= threshold)
                                    .filter_map(|(key, similarity)| {
                                        Some(Match {
                                            face_id: key,
                                            similarity,
                                            meta: loaded.faces.get(&key)?.clone(),
                                        })
                                    })
                                    .collect::<Vec<_>>())
                            },
                        );
                        match found {
                            Ok(m) => {
                                let story = &mut track.story;
                                if face.rect.width >= GOOD_FACE_PX
                                    && face.quality.sharpness >= GOOD_SHARPNESS
                                {
                                    story.good_search = true;
                                }
                                if let Some(best) = m.first()
                                    && story
                                        .best
                                        .as_ref()
                                        .is_none_or(|b| best.similarity > b.similarity)
                                {
                                    story.best = Some(best.clone());
                                }
                                track.matches = m;
                                track.best_score = s;
                            }
                            Err(e) => {
                                tracing::warn!(
                                    processor = self.rec.name,
                                    "face search failed: {e}"
                                );
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(processor = self.rec.name, "a face was not embedded: {e}");
                    }
                }
            }
            let story = &mut track.story;
            let decision = if story.best.is_some() {
                Some(Decision::Known)
            } else if story.good_search && story.frames >= UNKNOWN_AFTER {
                Some(Decision::Unknown)
            } else {
                None
            };
            if let Some(d) = decision
                && story.decision.is_none()
            {
                story.decision = Some(d);
                decided.push(track.clone());
            }
            sightings.push(FaceSighting {
                face,
                matches: track.matches.clone(),
                track: id,
            });
        }
        for track in decided {
            self.announce(EventKind::FaceTrackStarted, &track)?;
        }
        let now = self.inner.store.clock().now_ms();
        let offset_ms = u64::try_from(picture.pts)
            .unwrap_or(0)
            .saturating_sub(fragment.producer_ts_ms);
        self.stats.latency_ms.store(
            now.saturating_sub(fragment.server_ts_ms.saturating_add(offset_ms)),
            std::sync::atomic::Ordering::Relaxed,
        );
        if sightings.is_empty() {
            return Ok(());
        }
        let result = FrameResult {
            processor: self.rec.name.clone(),
            stream_arn: self.rec.input_arn.clone(),
            fragment_number: fragment.number,
            server_ts_ms: fragment.server_ts_ms,
            producer_ts_ms: fragment.producer_ts_ms,
            frame_offset_ms: offset_ms,
            width: w,
            height: h,
            faces: sightings,
        };
        let (partition_key, data) = self.inner.format.frame_record(&result);
        let put = self.handle.block_on(self.inner.streams.put(
            &self.rec.output_stream,
            vec![NewRecord {
                partition_key,
                explicit_hash_key: None,
                data: Bytes::from(data),
            }],
        ));
        match put {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(_) => ProcessorStats::add(&self.stats.records_out, 1),
                        Err(e) => tracing::warn!(
                            processor = self.rec.name,
                            "a result was not written to the data stream: {e}"
                        ),
                    }
                }
                Ok(())
            }
            Err(vigil_datastreams::Error::StreamNotFound(_)) => Err(Outcome::Failed(format!(
                "The Kinesis data stream {} does not exist any more.",
                self.rec.output_arn
            ))),
            Err(e) => {
                tracing::warn!(processor = self.rec.name, "writing a result failed: {e}");
                Ok(())
            }
        }
    }
}
