//! The synthetic camera: real Matroska made with `vigil_mkv::Muxer` (EBML header, unknown-size
//! Segment, Info, Tracks with one H.264 video track, unknown-size Clusters of SimpleBlocks), at
//! 25 fps with a key frame (and a Cluster, so a fragment) a second, 10,000-byte frames:
//! 2 Mbit/s. Frame payloads are arbitrary bytes (the server does not decode them) that start
//! with a [`Stamp`]: which stream and frame, and when the frame was handed to PutMedia.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use vigil_mkv::{
    EbmlHeader, Info, Muxer, MuxerOptions, SimpleTag, Tag, TagValue, TrackEntry, Video,
};

pub const FRAME_BYTES: usize = 10_000;
pub const FRAMES_PER_FRAGMENT: u64 = 25;
pub const FRAME_INTERVAL: Duration = Duration::from_millis(40);
pub const FRAME_INTERVAL_MS: u64 = 40;
const MAGIC: [u8; 4] = *b"VGBF";
const STAMP_LEN: usize = 24;

/// What each frame carries in its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The stream's index in the run.
    pub stream: u32,
    /// The frame's number in its stream, from 0.
    pub frame: u64,
    /// When the frame was handed to PutMedia: ns since the bench's base instant.
    pub sent_ns: u64,
}

impl Stamp {
    fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&self.stream.to_le_bytes());
        out[8..16].copy_from_slice(&self.frame.to_le_bytes());
        out[16..24].copy_from_slice(&self.sent_ns.to_le_bytes());
    }

    /// The stamp at the start of a frame, if it has one.
    pub fn read(data: &[u8]) -> Option<Self> {
        let d = data.get(..STAMP_LEN)?;
        if d[..4] != MAGIC {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(d[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(Self {
            stream: u32::from_le_bytes(d[4..8].try_into().unwrap_or([0; 4])),
            frame: u64_at(8),
            sent_ns: u64_at(16),
        })
    }
}

/// Incompressible filler, made once.
fn filler() -> &'static [u8] {
    static FILLER: OnceLock<Vec<u8>> = OnceLock::new();
    FILLER.get_or_init(|| filler_of(FRAME_BYTES))
}

/// An AVCDecoderConfigurationRecord (High profile, level 3.1) with a plausible SPS and PPS;
/// nothing decodes it here, but a producer would send one.
fn avcc() -> Bytes {
    let sps = [
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10,
    ];
    let pps = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
    let mut v = vec![1, 0x64, 0x00, 0x1f, 0xff, 0xe1];
    v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    v.extend_from_slice(&sps);
    v.push(1);
    v.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    v.extend_from_slice(&pps);
    Bytes::from(v)
}

/// One producer's Matroska writer.
#[derive(Debug)]
pub struct Camera {
    mux: Muxer,
    stream: u32,
    frame: Vec<u8>,
}

impl Camera {
    pub fn new(stream: u32) -> Self {
        Self {
            mux: Muxer::new(MuxerOptions::streaming()),
            stream,
            frame: filler().to_vec(),
        }
    }

    /// The EBML header, the Segment (unknown size), Info and Tracks.
    pub fn header(&mut self, title: &str) -> Vec<u8> {
        let mut uid = [0u8; 16];
        uid[..4].copy_from_slice(&self.stream.to_le_bytes());
        let info = Info {
            segment_uid: Some(Bytes::copy_from_slice(&uid)),
            title: Some(title.to_owned()),
            muxing_app: Some("vigil-bench".into()),
            writing_app: Some("vigil-bench".into()),
            ..Info::default()
        };
        let track = TrackEntry {
            number: 1,
            uid: 1,
            track_type: 1,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            codec_private: Some(avcc()),
            name: Some("camera".into()),
            video: Some(Video {
                pixel_width: 1280,
                pixel_height: 720,
                ..Video::default()
            }),
            ..TrackEntry::default()
        };
        self.mux
            .begin_document(&EbmlHeader::kvs(), &info, &[track])
            .expect("a document header");
        self.mux.take()
    }

    /// Starts a Cluster at `timecode` (ms): its ID, unknown size and Timecode.
    pub fn cluster(&mut self, timecode: u64, out: &mut Vec<u8>) {
        self.mux.begin_cluster(timecode).expect("a cluster");
        out.extend_from_slice(&self.mux.take());
    }

    /// One frame as a SimpleBlock at `timecode` (ms), stamped with `stamp`.
    pub fn frame(&mut self, timecode: u64, key: bool, stamp: Stamp, out: &mut Vec<u8>) {
        stamp.write(&mut self.frame);
        self.mux
            .write_simple_block(1, timecode as i64, key, &self.frame)
            .expect("a frame");
        out.extend_from_slice(&self.mux.take());
    }

    /// A Tags element with `AWS_KINESISVIDEO_END_OF_FRAGMENT`: ends the last fragment.
    pub fn end_of_fragment(&mut self, out: &mut Vec<u8>) {
        end_of_fragment(&mut self.mux, out);
    }
}

// ---- Pieces for the sections that write their own fragments (abuse, crash) ----

/// `len` bytes of incompressible filler.
pub fn filler_of(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// The EBML header, the Segment (unknown size), Info titled `title` and Tracks with one
/// H.264 track, as [`Camera::header`] writes them.
pub fn document(mux: &mut Muxer, title: &str) -> Vec<u8> {
    let track = TrackEntry {
        number: 1,
        uid: 1,
        track_type: 1,
        codec_id: "V_MPEG4/ISO/AVC".into(),
        codec_private: Some(avcc()),
        video: Some(Video {
            pixel_width: 1280,
            pixel_height: 720,
            ..Video::default()
        }),
        ..TrackEntry::default()
    };
    let info = Info {
        title: Some(title.to_owned()),
        muxing_app: Some("vigil-bench".into()),
        writing_app: Some("vigil-bench".into()),
        ..Info::default()
    };
    mux.begin_document(&EbmlHeader::kvs(), &info, &[track])
        .expect("a document header");
    mux.take()
}

/// A Tags element with `AWS_KINESISVIDEO_END_OF_FRAGMENT` onto `out`: the fragment ends
/// without waiting for the next Cluster.
pub fn end_of_fragment(mux: &mut Muxer, out: &mut Vec<u8>) {
    let tag = Tag {
        simple_tags: vec![SimpleTag {
            name: "AWS_KINESISVIDEO_END_OF_FRAGMENT".into(),
            value: TagValue::None,
            ..SimpleTag::default()
        }],
        ..Tag::default()
    };
    mux.write_tags(&[tag]).expect("end-of-fragment tags");
    out.extend_from_slice(&mux.take());
}
