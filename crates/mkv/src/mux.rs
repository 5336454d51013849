//! The sans-IO muxer: writes EBML headers, Segments and Clusters of known or unknown size,
//! Info, Tracks, SimpleBlocks, BlockGroups and Tags into a buffer the caller drains with
//! [`Muxer::take`]. With unknown sizes (as KVS producers write, and GetMedia serves) every byte
//! is ready as soon as it is written; a known-size Cluster or Segment is held until it ends,
//! since its size comes first.

use crate::block;
use crate::ebml::{self, UNKNOWN_SIZE_8};
use crate::error::MuxError;
use crate::event::{EbmlHeader, Info, SimpleTag, Tag, TagValue, TrackEntry};
use crate::ids;

/// Whether a master element's size is written up front (the element is buffered until it
/// ends) or left unknown (streamed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeMode {
    Known,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxerOptions {
    pub segment: SizeMode,
    pub cluster: SizeMode,
}

impl MuxerOptions {
    /// Unknown-size Segment and Clusters, as KVS producers write and GetMedia serves.
    pub fn streaming() -> Self {
        MuxerOptions {
            segment: SizeMode::Unknown,
            cluster: SizeMode::Unknown,
        }
    }

    /// Known sizes throughout, for files.
    pub fn file() -> Self {
        MuxerOptions {
            segment: SizeMode::Known,
            cluster: SizeMode::Known,
        }
    }
}

impl Default for MuxerOptions {
    fn default() -> Self {
        Self::streaming()
    }
}

#[derive(Debug)]
struct OpenCluster {
    timecode: u64,
    /// The Cluster's payload, for a known-size Cluster.
    buf: Option<Vec<u8>>,
}

/// Sans-IO Matroska muxer. See the [module docs](self).
#[derive(Debug, Default)]
pub struct Muxer {
    opts: MuxerOptions,
    out: Vec<u8>,
    /// `Some` while a document is open; holds the payload of a known-size Segment.
    segment: Option<Option<Vec<u8>>>,
    cluster: Option<OpenCluster>,
}

impl Muxer {
    pub fn new(opts: MuxerOptions) -> Self {
        Muxer {
            opts,
            ..Default::default()
        }
    }

    /// Bytes written so far and not yet taken.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Where the Segment's children go.
    fn segment_sink(&mut self) -> Result<&mut Vec<u8>, MuxError> {
        segment_sink(&mut self.segment, &mut self.out)
    }

    /// Starts a document: EBML header, Segment, Info and Tracks.
    pub fn begin_document(
        &mut self,
        header: &EbmlHeader,
        info: &Info,
        tracks: &[TrackEntry],
    ) -> Result<(), MuxError> {
        if info.timecode_scale == 0 {
            return Err(MuxError::TimestampScaleZero);
        }
        for (i, t) in tracks.iter().enumerate() {
            if t.number == 0 {
                return Err(MuxError::TrackZero);
            }
            if tracks.iter().skip(i + 1).any(|o| o.number == t.number) {
                return Err(MuxError::DuplicateTrack(t.number));
            }
        }
        self.begin_segment(header)?;
        let sink = self.segment_sink()?;
        encode_info(sink, info);
        encode_tracks(sink, tracks);
        Ok(())
    }

    /// Starts a document with only its EBML header and Segment, for a caller that writes the
    /// Segment's first children itself with [`write_raw`](Self::write_raw): GetMedia forwards
    /// a producer's Info and Tracks exactly as they were ingested.
    pub fn begin_segment(&mut self, header: &EbmlHeader) -> Result<(), MuxError> {
        if self.segment.is_some() {
            return Err(MuxError::DocumentOpen);
        }
        encode_ebml_header(&mut self.out, header);
        self.segment = Some(match self.opts.segment {
            SizeMode::Known => Some(Vec::new()),
            SizeMode::Unknown => {
                ebml::write_id(&mut self.out, ids::SEGMENT);
                self.out.extend_from_slice(&UNKNOWN_SIZE_8);
                None
            }
        });
        Ok(())
    }

    /// Starts a Cluster (ending the one open). Blocks in it may lie -32768 to +32767 ticks from
    /// `timecode`.
    pub fn begin_cluster(&mut self, timecode: u64) -> Result<(), MuxError> {
        self.end_cluster()?;
        let mode = self.opts.cluster;
        let sink = self.segment_sink()?;
        let buf = match mode {
            SizeMode::Known => {
                let mut buf = Vec::new();
                ebml::write_uint(&mut buf, ids::TIMESTAMP, timecode);
                Some(buf)
            }
            SizeMode::Unknown => {
                ebml::write_id(sink, ids::CLUSTER);
                sink.extend_from_slice(&UNKNOWN_SIZE_8);
                ebml::write_uint(sink, ids::TIMESTAMP, timecode);
                None
            }
        };
        self.cluster = Some(OpenCluster { timecode, buf });
        Ok(())
    }

    /// The open Cluster's sink and its timecode.
    fn cluster_sink(&mut self) -> Result<(&mut Vec<u8>, u64), MuxError> {
        let Some(cluster) = &mut self.cluster else {
            return Err(MuxError::NoCluster);
        };
        let timecode = cluster.timecode;
        match &mut cluster.buf {
            Some(buf) => Ok((buf, timecode)),
            None => Ok((segment_sink(&mut self.segment, &mut self.out)?, timecode)),
        }
    }

    fn relative(cluster: u64, timecode: i64) -> Result<i16, MuxError> {
        let relative = i128::from(timecode) - i128::from(cluster);
        i16::try_from(relative).map_err(|_| MuxError::RelativeTimestamp {
            timestamp: timecode,
            cluster,
            relative,
        })
    }

    /// Writes one frame as a SimpleBlock at absolute `timecode` (ticks).
    pub fn write_simple_block(
        &mut self,
        track: u64,
        timecode: i64,
        keyframe: bool,
        data: &[u8],
    ) -> Result<(), MuxError> {
        if track == 0 {
            return Err(MuxError::TrackZero);
        }
        let (sink, cluster) = self.cluster_sink()?;
        let relative = Self::relative(cluster, timecode)?;
        let flags = if keyframe { block::FLAG_KEYFRAME } else { 0 };
        ebml::write_id(sink, ids::SIMPLE_BLOCK);
        ebml::write_vint(sink, (data.len() + 3 + vint_len(track)) as u64);
        block::write_payload(sink, track, relative, flags, data);
        Ok(())
    }

    /// Writes one frame as a BlockGroup, with a BlockDuration (ticks) when given and, for a
    /// frame that is not a key frame, a ReferenceBlock: the timestamp of the frame it refers to,
    /// relative to this one, in ticks (negative for an earlier frame).
    pub fn write_block_group(
        &mut self,
        track: u64,
        timecode: i64,
        duration: Option<u64>,
        reference: Option<i64>,
        data: &[u8],
    ) -> Result<(), MuxError> {
        if track == 0 {
            return Err(MuxError::TrackZero);
        }
        let (sink, cluster) = self.cluster_sink()?;
        let relative = Self::relative(cluster, timecode)?;
        ebml::write_master(sink, ids::BLOCK_GROUP, |g| {
            ebml::write_id(g, ids::BLOCK);
            ebml::write_vint(g, (data.len() + 3 + vint_len(track)) as u64);
            block::write_payload(g, track, relative, 0, data);
            if let Some(d) = duration {
                ebml::write_uint(g, ids::BLOCK_DURATION, d);
            }
            if let Some(r) = reference {
                ebml::write_int(g, ids::REFERENCE_BLOCK, r);
            }
        });
        Ok(())
    }

    /// Ends the open Cluster, if any. An unknown-size Cluster needs nothing written: the next
    /// level-1 element ends it.
    pub fn end_cluster(&mut self) -> Result<(), MuxError> {
        let Some(cluster) = self.cluster.take() else {
            return Ok(());
        };
        if let Some(buf) = cluster.buf {
            let sink = self.segment_sink()?;
            ebml::write_id(sink, ids::CLUSTER);
            ebml::write_vint(sink, buf.len() as u64);
            sink.extend_from_slice(&buf);
        }
        Ok(())
    }

    /// Writes a Tags element (ending the open Cluster).
    pub fn write_tags(&mut self, tags: &[Tag]) -> Result<(), MuxError> {
        self.end_cluster()?;
        encode_tags(self.segment_sink()?, tags);
        Ok(())
    }

    /// Writes already-encoded level-1 elements (a stored Cluster, say) into the Segment, ending
    /// the open Cluster first.
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<(), MuxError> {
        self.end_cluster()?;
        self.segment_sink()?.extend_from_slice(bytes);
        Ok(())
    }

    /// Ends the document: the open Cluster and the Segment.
    pub fn end_document(&mut self) -> Result<(), MuxError> {
        self.end_cluster()?;
        match self.segment.take() {
            None => Err(MuxError::NoDocument),
            Some(None) => Ok(()),
            Some(Some(buf)) => {
                ebml::write_id(&mut self.out, ids::SEGMENT);
                ebml::write_vint(&mut self.out, buf.len() as u64);
                self.out.extend_from_slice(&buf);
                Ok(())
            }
        }
    }
}

/// Bytes `ebml::write_vint` takes for `value`.
fn vint_len(value: u64) -> usize {
    (1..8)
        .find(|&len| value < (1u64 << (7 * len)) - 1)
        .unwrap_or(8) as usize
}

/// The Segment's sink: its buffer for a known-size Segment, else the output itself.
fn segment_sink<'a>(
    segment: &'a mut Option<Option<Vec<u8>>>,
    out: &'a mut Vec<u8>,
) -> Result<&'a mut Vec<u8>, MuxError> {
    match segment {
        None => Err(MuxError::NoDocument),
        Some(Some(buf)) => Ok(buf),
        Some(None) => Ok(out),
    }
}

/// Written as MuxingApp and WritingApp when the caller gives none (both are mandatory).
pub const DEFAULT_APP: &str = "vigil";

fn write_opt_string(out: &mut Vec<u8>, id: u32, value: &Option<String>) {
    if let Some(s) = value {
        ebml::write_binary(out, id, s.as_bytes());
    }
}

/// Appends an EBML header.
pub fn encode_ebml_header(out: &mut Vec<u8>, h: &EbmlHeader) {
    ebml::write_master(out, ids::EBML, |o| {
        ebml::write_uint(o, ids::EBML_VERSION, h.version);
        ebml::write_uint(o, ids::EBML_READ_VERSION, h.read_version);
        ebml::write_uint(o, ids::EBML_MAX_ID_LENGTH, h.max_id_length);
        ebml::write_uint(o, ids::EBML_MAX_SIZE_LENGTH, h.max_size_length);
        ebml::write_binary(o, ids::DOC_TYPE, h.doc_type.as_bytes());
        ebml::write_uint(o, ids::DOC_TYPE_VERSION, h.doc_type_version);
        ebml::write_uint(o, ids::DOC_TYPE_READ_VERSION, h.doc_type_read_version);
    });
}

/// Appends an Info element; a missing MuxingApp or WritingApp is written as [`DEFAULT_APP`].
pub fn encode_info(out: &mut Vec<u8>, info: &Info) {
    ebml::write_master(out, ids::INFO, |o| {
        ebml::write_uint(o, ids::TIMESTAMP_SCALE, info.timecode_scale);
        if let Some(uid) = &info.segment_uid {
            ebml::write_binary(o, ids::SEGMENT_UUID, uid);
        }
        write_opt_string(o, ids::TITLE, &info.title);
        for (id, app) in [
            (ids::MUXING_APP, &info.muxing_app),
            (ids::WRITING_APP, &info.writing_app),
        ] {
            ebml::write_binary(o, id, app.as_deref().unwrap_or(DEFAULT_APP).as_bytes());
        }
        if let Some(d) = info.duration {
            ebml::write_float(o, ids::DURATION, d);
        }
        if let Some(d) = info.date_utc {
            ebml::write_int(o, ids::DATE_UTC, d);
        }
    });
}

/// Appends a Tracks element. A TrackUID of 0 (reserved) is written as the track number.
pub fn encode_tracks(out: &mut Vec<u8>, tracks: &[TrackEntry]) {
    ebml::write_master(out, ids::TRACKS, |o| {
        for t in tracks {
            ebml::write_master(o, ids::TRACK_ENTRY, |o| {
                ebml::write_uint(o, ids::TRACK_NUMBER, t.number);
                ebml::write_uint(o, ids::TRACK_UID, if t.uid == 0 { t.number } else { t.uid });
                ebml::write_uint(o, ids::TRACK_TYPE, t.track_type);
                ebml::write_binary(o, ids::CODEC_ID, t.codec_id.as_bytes());
                if let Some(p) = &t.codec_private {
                    ebml::write_binary(o, ids::CODEC_PRIVATE, p);
                }
                write_opt_string(o, ids::NAME, &t.name);
                write_opt_string(o, ids::LANGUAGE, &t.language);
                if let Some(d) = t.default_duration_ns {
                    ebml::write_uint(o, ids::DEFAULT_DURATION, d);
                }
                if let Some(d) = t.codec_delay_ns {
                    ebml::write_uint(o, ids::CODEC_DELAY, d);
                }
                if let Some(v) = &t.video {
                    ebml::write_master(o, ids::VIDEO, |o| {
                        ebml::write_uint(o, ids::PIXEL_WIDTH, v.pixel_width);
                        ebml::write_uint(o, ids::PIXEL_HEIGHT, v.pixel_height);
                        if let Some(w) = v.display_width {
                            ebml::write_uint(o, ids::DISPLAY_WIDTH, w);
                        }
                        if let Some(h) = v.display_height {
                            ebml::write_uint(o, ids::DISPLAY_HEIGHT, h);
                        }
                    });
                }
                if let Some(a) = &t.audio {
                    ebml::write_master(o, ids::AUDIO, |o| {
                        ebml::write_float(o, ids::SAMPLING_FREQUENCY, a.sampling_frequency);
                        if let Some(f) = a.output_sampling_frequency {
                            ebml::write_float(o, ids::OUTPUT_SAMPLING_FREQUENCY, f);
                        }
                        ebml::write_uint(o, ids::CHANNELS, a.channels);
                        if let Some(b) = a.bit_depth {
                            ebml::write_uint(o, ids::BIT_DEPTH, b);
                        }
                    });
                }
            });
        }
    });
}

/// Appends a Tags element. Every Tag gets its Targets, which Matroska requires (KVS producers
/// leave it out; an empty one costs 3 bytes).
pub fn encode_tags(out: &mut Vec<u8>, tags: &[Tag]) {
    ebml::write_master(out, ids::TAGS, |o| {
        for tag in tags {
            ebml::write_master(o, ids::TAG, |o| {
                let t = &tag.targets;
                ebml::write_master(o, ids::TARGETS, |o| {
                    if let Some(v) = t.type_value {
                        ebml::write_uint(o, ids::TARGET_TYPE_VALUE, v);
                    }
                    write_opt_string(o, ids::TARGET_TYPE, &t.target_type);
                    for uid in &t.track_uids {
                        ebml::write_uint(o, ids::TAG_TRACK_UID, *uid);
                    }
                });
                for st in &tag.simple_tags {
                    encode_simple_tag(o, st);
                }
            });
        }
    });
}

fn encode_simple_tag(out: &mut Vec<u8>, st: &SimpleTag) {
    ebml::write_master(out, ids::SIMPLE_TAG, |o| {
        ebml::write_binary(o, ids::TAG_NAME, st.name.as_bytes());
        write_opt_string(o, ids::TAG_LANGUAGE, &st.language);
        if let Some(d) = st.default {
            ebml::write_uint(o, ids::TAG_DEFAULT, u64::from(d));
        }
        match &st.value {
            TagValue::None => {}
            TagValue::String(s) => ebml::write_binary(o, ids::TAG_STRING, s.as_bytes()),
            TagValue::Binary(b) => ebml::write_binary(o, ids::TAG_BINARY, b),
        }
        for child in &st.children {
            encode_simple_tag(o, child);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::vint_len;
    use crate::ebml::write_vint;

    #[test]
    fn vint_len_matches_write_vint() {
        for v in [
            0u64,
            1,
            126,
            127,
            128,
            16382,
            16383,
            16384,
            1 << 49,
            (1 << 56) - 2,
        ] {
            let mut out = Vec::new();
            write_vint(&mut out, v);
            assert_eq!(vint_len(v), out.len(), "{v}");
        }
    }
}
