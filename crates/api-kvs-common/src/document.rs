//! The bytes GetMedia and GetMediaForFragmentList send: one EBML document per fragment, and
//! the error documents (`../shared/spec/kvs-api.md` §3, §4.2).
//!
//! # A fragment's document
//!
//! ```text
//! [track header]   EBML header, Segment (unknown size), Info, Tracks: stored, as ingested
//! [start tags]     Tags { FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP }
//! [payload]        the stored Cluster and producer Tags (see `media` for the contract)
//! [end tags]       Tags { MILLIS_BEHIND_NOW, CONTINUATION_TOKEN }
//! ```
//!
//! Tag names carry the `AWS_KINESISVIDEO_` prefix. Timestamps are epoch seconds with three
//! decimals (`"1726677687.758"`), fragment numbers the API's decimal strings, the continuation
//! token the fragment's number. GetMediaForFragmentList documents also carry the timestamps
//! under the names its documentation gives (`SERVER_SIDE_TIMESTAMP`,
//! `PRODUCER_SIDE_TIMESTAMP`); the KVS parser library reads the GetMedia names, and tags it
//! does not know are ignored, so both sets together satisfy either kind of client.
//!
//! The Java parser library counts a fragment as complete only once both end tags have been
//! read; a fragment that never gets them (see [`aborted_tags`]) is therefore seen as
//! incomplete.
//!
//! # Error documents
//!
//! [`error_document`]: an EBML header and a **known-size** Segment holding only a Tags element
//! with `FRAGMENT_NUMBER`, `ERROR_ID` (an integer as a string) and `ERROR_CODE` (as KVS sends
//! it: no Info, Tracks or Cluster). The Segment's size is known so that a parser that reads
//! the fragment metadata when the Segment ends (the Java parser library does, for a Segment
//! without a Cluster) sees it even when the error document is the last bytes of the response.
//!
//! # Live payloads: [`Aligner`]
//!
//! A fragment still being received can be abandoned by its producer after part of it was
//! sent. To let every reader carry on, GetMedia sends a live payload in whole elements only
//! (see [`Aligner`]), so that an abandoned fragment ends at an element boundary, where a Tags
//! element and the next EBML header are read correctly.

use std::collections::VecDeque;

use bytes::Bytes;
use vigil_mkv::ebml::{self, UNKNOWN_SIZE_8};
use vigil_mkv::{EbmlHeader, SimpleTag, Tag, Targets, encode_ebml_header, encode_tags, ids};

use crate::model::{fragment_number, ms_to_decimal_seconds};

/// The fragment's number.
pub const FRAGMENT_NUMBER: &str = "AWS_KINESISVIDEO_FRAGMENT_NUMBER";
/// When the fragment's first byte reached the server.
pub const SERVER_TIMESTAMP: &str = "AWS_KINESISVIDEO_SERVER_TIMESTAMP";
/// The fragment's start by the producer's clock.
pub const PRODUCER_TIMESTAMP: &str = "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP";
/// GetMediaForFragmentList's documented name for [`SERVER_TIMESTAMP`].
pub const SERVER_SIDE_TIMESTAMP: &str = "AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP";
/// GetMediaForFragmentList's documented name for [`PRODUCER_TIMESTAMP`].
pub const PRODUCER_SIDE_TIMESTAMP: &str = "AWS_KINESISVIDEO_PRODUCER_SIDE_TIMESTAMP";
/// How far the fragment is behind now, in milliseconds.
pub const MILLIS_BEHIND_NOW: &str = "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW";
/// What a reader passes back (`StartSelectorType: CONTINUATION_TOKEN`) to resume after the
/// fragment.
pub const CONTINUATION_TOKEN: &str = "AWS_KINESISVIDEO_CONTINUATION_TOKEN";
/// An error's integer code.
pub const ERROR_ID: &str = "AWS_KINESISVIDEO_ERROR_ID";
/// An error's name.
pub const ERROR_CODE: &str = "AWS_KINESISVIDEO_ERROR_CODE";
/// GetMediaForFragmentList's documented name for a per-fragment error's integer code.
pub const EXCEPTION_ERROR_CODE: &str = "AWS_KINESISVIDEO_EXCEPTION_ERROR_CODE";
/// GetMediaForFragmentList's documented name for a per-fragment error's text.
pub const EXCEPTION_MESSAGE: &str = "AWS_KINESISVIDEO_EXCEPTION_MESSAGE";
/// Vigil's marker (not a KVS tag) on a fragment its producer abandoned part way.
pub const FRAGMENT_ABORTED: &str = "AWS_KINESISVIDEO_FRAGMENT_ABORTED";

/// Which operation a document is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// GetMedia: the timestamps under their GetMedia names.
    GetMedia,
    /// GetMediaForFragmentList: the GetMedia names and the `_SIDE_` names.
    FragmentList,
}

/// What a fragment's start tags say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHead {
    /// The store's fragment number.
    pub number: u64,
    /// Producer timestamp (ms).
    pub producer_ts_ms: u64,
    /// Server timestamp (ms).
    pub server_ts_ms: u64,
}

fn tags_element(simple_tags: Vec<SimpleTag>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_tags(
        &mut out,
        &[Tag {
            targets: Targets::default(),
            simple_tags,
        }],
    );
    out
}

/// The Tags element that opens a fragment's document (after the track header).
pub fn start_tags(frag: &FragmentHead, flavor: Flavor) -> Bytes {
    let server = ms_to_decimal_seconds(frag.server_ts_ms);
    let producer = ms_to_decimal_seconds(frag.producer_ts_ms);
    let mut tags = vec![
        SimpleTag::string(FRAGMENT_NUMBER, fragment_number(frag.number)),
        SimpleTag::string(SERVER_TIMESTAMP, server.clone()),
        SimpleTag::string(PRODUCER_TIMESTAMP, producer.clone()),
    ];
    if flavor == Flavor::FragmentList {
        tags.push(SimpleTag::string(SERVER_SIDE_TIMESTAMP, server));
        tags.push(SimpleTag::string(PRODUCER_SIDE_TIMESTAMP, producer));
    }
    Bytes::from(tags_element(tags))
}

/// Everything before the payload: the track header (as stored) and the start tags.
pub fn document_start(header: &Bytes, frag: &FragmentHead, flavor: Flavor) -> [Bytes; 2] {
    [header.clone(), start_tags(frag, flavor)]
}

/// The Tags element that closes a complete fragment's document.
pub fn end_tags(number: u64, millis_behind_now: u64) -> Bytes {
    Bytes::from(tags_element(vec![
        SimpleTag::string(MILLIS_BEHIND_NOW, millis_behind_now.to_string()),
        SimpleTag::string(CONTINUATION_TOKEN, fragment_number(number)),
    ]))
}

/// The Tags element that closes the document of a fragment its producer abandoned (or that
/// could not be sent to its end): it ends the unknown-size Cluster at a level-1 element and
/// marks the fragment, which has no end tags and so is never complete.
pub fn aborted_tags(number: u64) -> Bytes {
    Bytes::from(tags_element(vec![
        SimpleTag::string(FRAGMENT_NUMBER, fragment_number(number)),
        SimpleTag::string(FRAGMENT_ABORTED, "true"),
    ]))
}

/// An error, as an error document states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError {
    /// `AWS_KINESISVIDEO_ERROR_ID`.
    pub id: u32,
    /// `AWS_KINESISVIDEO_ERROR_CODE`.
    pub code: &'static str,
    /// With a message, the document also carries the GetMediaForFragmentList exception tags
    /// (`EXCEPTION_ERROR_CODE` = the id, `EXCEPTION_MESSAGE` = this).
    pub message: Option<String>,
}

impl ChunkError {
    /// GetMedia: the fragment asked for does not exist (ERROR_ID 4000).
    pub fn fragment_not_found() -> Self {
        Self {
            id: 4000,
            code: "FRAGMENT_NOT_FOUND",
            message: None,
        }
    }

    /// GetMedia: the server could not go on (ERROR_ID 5000).
    pub fn internal() -> Self {
        Self {
            id: 5000,
            code: "INTERNAL_ERROR",
            message: None,
        }
    }

    /// GetMediaForFragmentList: one listed fragment does not exist (KVS sends ERROR_ID 3000
    /// and ERROR_CODE `FRAGMENT_NOT_FOUND`, observed).
    pub fn list_fragment_not_found(fragment: &str) -> Self {
        Self {
            id: 3000,
            code: "FRAGMENT_NOT_FOUND",
            message: Some(format!("Fragment {fragment} was not found.")),
        }
    }

    /// GetMediaForFragmentList: one listed fragment could not be read.
    pub fn list_fragment_unreadable(fragment: &str) -> Self {
        Self {
            id: 5000,
            code: "INTERNAL_ERROR",
            message: Some(format!("Fragment {fragment} could not be read.")),
        }
    }
}

/// A whole error document (see the module docs). `fragment_number` must be a string of
/// digits: clients parse it as an integer.
pub fn error_document(fragment_number: &str, error: &ChunkError) -> Bytes {
    let mut tags = vec![
        SimpleTag::string(FRAGMENT_NUMBER, fragment_number),
        SimpleTag::string(ERROR_ID, error.id.to_string()),
        SimpleTag::string(ERROR_CODE, error.code),
    ];
    if let Some(message) = &error.message {
        tags.push(SimpleTag::string(
            EXCEPTION_ERROR_CODE,
            error.id.to_string(),
        ));
        tags.push(SimpleTag::string(EXCEPTION_MESSAGE, message.clone()));
    }
    let mut out = Vec::new();
    encode_ebml_header(&mut out, &EbmlHeader::kvs());
    ebml::write_master(&mut out, ids::SEGMENT, |segment| {
        encode_tags(
            segment,
            &[Tag {
                targets: Targets::default(),
                simple_tags: tags,
            }],
        );
    });
    Bytes::from(out)
}

/// Longest element header: a 4-byte ID and an 8-byte size.
const MAX_HEADER_LEN: usize = ebml::MAX_ID_LEN + ebml::MAX_SIZE_LEN;

/// Forwards a payload that arrives in arbitrary pieces as whole elements.
///
/// The payload is read as a flat sequence of elements: a Cluster (or any unknown-size
/// element) is *entered* (its header alone is one unit and its children follow as units),
/// every other element (Timestamp, SimpleBlock, BlockGroup, producer Tags…) is one unit.
/// Bytes of a unit are held until the unit is complete, then forwarded, so that what was
/// forwarded always ends at an element boundary. The bytes are the pieces' own (`Bytes`
/// slices): holding costs no copy, and at most one element is held.
///
/// A known-size Cluster's header is forwarded as an unknown-size one (Matroska allows both;
/// KVS producers send unknown sizes), so that a payload cut short still leaves the reader
/// outside the Cluster once the next level-1 element or EBML header comes.
///
/// Bytes that do not parse as elements are forwarded as they come from then on (the
/// guarantee is lost for a malformed payload, nothing else).
#[derive(Debug, Default)]
pub struct Aligner {
    /// Received, not yet forwarded: the start of the unit in progress.
    held: Vec<Bytes>,
    /// The held bytes while they are only part of an element header.
    head: Vec<u8>,
    /// Bytes of the element in progress still to come, once its header is read.
    remaining: u64,
    /// The payload did not parse: forward everything as it comes.
    broken: bool,
}

impl Aligner {
    /// An aligner at the start of a payload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing is held (what was forwarded ends at an element boundary).
    pub fn is_aligned(&self) -> bool {
        self.held.is_empty()
    }

    /// Takes a piece of the payload; appends what can be forwarded to `out`.
    pub fn push(&mut self, data: Bytes, out: &mut VecDeque<Bytes>) {
        if self.broken {
            out.push_back(data);
            return;
        }
        let len = data.len();
        // Bytes of `data` before `start` are forwarded; `pos` is where parsing stands.
        let mut start = 0usize;
        let mut pos = 0usize;
        while pos < len {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(len - pos);
                pos += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    out.extend(self.held.drain(..));
                    out.push_back(data.slice(start..pos));
                    start = pos;
                }
                continue;
            }
            // At an element header: `start == pos`, and `head` holds its first bytes if an
            // earlier piece ended inside it.
            let wanted = MAX_HEADER_LEN.saturating_sub(self.head.len());
            let mut buf = self.head.clone();
            buf.extend_from_slice(data.get(pos..len.min(pos + wanted)).unwrap_or_default());
            match ebml::read_header(&buf) {
                Ok(None) => {
                    // All the rest is the start of a header (a header is at most 12 bytes).
                    self.head = buf;
                    pos = len;
                }
                Err(_) => {
                    self.broken = true;
                    self.head.clear();
                    out.extend(self.held.drain(..));
                    out.push_back(data.slice(start..));
                    return;
                }
                Ok(Some(h)) => {
                    let header_end =
                        pos + usize::from(h.header_len).saturating_sub(self.head.len());
                    self.head.clear();
                    if h.id == ids::CLUSTER && h.size.is_some() {
                        // Forward the header as an unknown-size one.
                        self.held.clear();
                        let mut header = Vec::with_capacity(12);
                        ebml::write_id(&mut header, ids::CLUSTER);
                        header.extend_from_slice(&UNKNOWN_SIZE_8);
                        out.push_back(Bytes::from(header));
                        start = header_end;
                    } else if h.id == ids::CLUSTER || h.size.is_none() {
                        // Entered: the header is a unit of its own.
                        out.extend(self.held.drain(..));
                        out.push_back(data.slice(start..header_end));
                        start = header_end;
                    } else {
                        self.remaining = h.size.unwrap_or(0);
                        if self.remaining == 0 {
                            out.extend(self.held.drain(..));
                            out.push_back(data.slice(start..header_end));
                            start = header_end;
                        }
                    }
                    pos = header_end;
                }
            }
        }
        if start < len {
            self.held.push(data.slice(start..));
        }
    }

    /// The payload is complete: forwards what is held (only a malformed payload leaves
    /// anything).
    pub fn finish(&mut self, out: &mut VecDeque<Bytes>) {
        out.extend(self.held.drain(..));
        self.head.clear();
        self.remaining = 0;
    }

    /// The payload was abandoned: drops the unit in progress, which was never forwarded.
    /// Returns whether the forwarded bytes end at an element boundary.
    pub fn discard(&mut self) -> bool {
        self.held.clear();
        self.head.clear();
        self.remaining = 0;
        !self.broken
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use vigil_mkv::{Demuxer, Event, Info, Muxer, MuxerOptions, TrackEntry, Video};

    use super::*;

    fn tags_of(events: &[Event]) -> Vec<Vec<(String, String)>> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Tags { tags, .. } => Some(
                    tags.iter()
                        .flat_map(|t| &t.simple_tags)
                        .map(|s| (s.name.clone(), s.value.as_str().unwrap_or("").to_owned()))
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    /// A track header per the contract: EBML header, unknown-size Segment, Info, Tracks.
    fn header() -> Bytes {
        let mut m = Muxer::new(MuxerOptions::streaming());
        m.begin_document(
            &EbmlHeader::kvs(),
            &Info::default(),
            &[TrackEntry {
                number: 1,
                uid: 1,
                track_type: 1,
                codec_id: "V_MPEG4/ISO/AVC".into(),
                video: Some(Video {
                    pixel_width: 16,
                    pixel_height: 16,
                    ..Default::default()
                }),
                ..Default::default()
            }],
        )
        .unwrap();
        Bytes::from(m.take())
    }

    /// A payload: an unknown-size (or known-size) Cluster with `n` frames.
    fn payload(timecode: u64, n: usize, known: bool) -> Bytes {
        let mut m = Muxer::new(if known {
            MuxerOptions::file()
        } else {
            MuxerOptions::streaming()
        });
        m.begin_segment(&EbmlHeader::kvs()).unwrap();
        if !known {
            // Unknown sizes: the EBML and Segment headers are out already; drop them.
            m.take();
        }
        m.begin_cluster(timecode).unwrap();
        for i in 0..n {
            m.write_simple_block(1, timecode as i64 + 40 * i as i64, i == 0, &[i as u8; 300])
                .unwrap();
        }
        m.end_document().unwrap();
        let out = m.take();
        if !known {
            return Bytes::from(out);
        }
        // A known-size document comes out whole: keep the Cluster.
        let start = Demuxer::read_all(&out)
            .unwrap()
            .iter()
            .find_map(|e| match e {
                Event::ClusterStart { span, .. } => Some(span.offset as usize),
                _ => None,
            })
            .unwrap();
        Bytes::copy_from_slice(&out[start..])
    }

    #[test]
    fn fragment_documents_demux_with_their_tags() {
        let header = header();
        let mut out = Vec::new();
        for (i, flavor) in [Flavor::GetMedia, Flavor::FragmentList]
            .into_iter()
            .enumerate()
        {
            let head = FragmentHead {
                number: 7 + i as u64,
                producer_ts_ms: 1_726_677_688_724 + i as u64,
                server_ts_ms: 1_726_677_687_058,
            };
            for b in document_start(&header, &head, flavor) {
                out.extend_from_slice(&b);
            }
            out.extend_from_slice(&payload(1000 * i as u64, 5, false));
            out.extend_from_slice(&end_tags(head.number, 78_569));
        }
        let events = Demuxer::read_all(&out).unwrap();
        let docs = events
            .iter()
            .filter(|e| matches!(e, Event::EbmlHeader { .. }))
            .count();
        assert_eq!(docs, 2);
        let frames = events
            .iter()
            .filter(|e| matches!(e, Event::Frame(_)))
            .count();
        assert_eq!(frames, 10);
        let tags = tags_of(&events);
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            tags[0],
            vec![
                pair(FRAGMENT_NUMBER, "900000000000000000007"),
                pair(SERVER_TIMESTAMP, "1726677687.058"),
                pair(PRODUCER_TIMESTAMP, "1726677688.724"),
            ]
        );
        assert_eq!(
            tags[1],
            vec![
                pair(MILLIS_BEHIND_NOW, "78569"),
                pair(CONTINUATION_TOKEN, "900000000000000000007"),
            ]
        );
        assert_eq!(
            tags[2],
            vec![
                pair(FRAGMENT_NUMBER, "900000000000000000008"),
                pair(SERVER_TIMESTAMP, "1726677687.058"),
                pair(PRODUCER_TIMESTAMP, "1726677688.725"),
                pair(SERVER_SIDE_TIMESTAMP, "1726677687.058"),
                pair(PRODUCER_SIDE_TIMESTAMP, "1726677688.725"),
            ]
        );
        // Start tags come before the Cluster, end tags after it.
        let order: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::EbmlHeader { .. } => Some("ebml"),
                Event::Tracks { .. } => Some("tracks"),
                Event::Tags { .. } => Some("tags"),
                Event::ClusterStart { .. } => Some("cluster"),
                _ => None,
            })
            .collect();
        assert_eq!(
            order,
            ["ebml", "tracks", "tags", "cluster", "tags"].repeat(2)
        );
    }

    #[test]
    fn error_documents_demux_with_their_tags() {
        let mut out =
            error_document("900000000000000000042", &ChunkError::fragment_not_found()).to_vec();
        out.extend_from_slice(&error_document(
            "900000000000000000043",
            &ChunkError::list_fragment_not_found("900000000000000000043"),
        ));
        let events = Demuxer::read_all(&out).unwrap();
        // Two documents, each a known-size Segment that ends.
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::SegmentEnd { .. }))
                .count(),
            2
        );
        let tags = tags_of(&events);
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            tags[0],
            vec![
                pair(FRAGMENT_NUMBER, "900000000000000000042"),
                pair(ERROR_ID, "4000"),
                pair(ERROR_CODE, "FRAGMENT_NOT_FOUND"),
            ]
        );
        assert_eq!(tags[1][1], pair(ERROR_ID, "3000"));
        assert_eq!(tags[1][3], pair(EXCEPTION_ERROR_CODE, "3000"));
        assert_eq!(
            tags[1][4],
            pair(
                EXCEPTION_MESSAGE,
                "Fragment 900000000000000000043 was not found."
            )
        );
    }

    /// Feeds `payload` to an aligner in pieces of the given sizes; returns the forwarded
    /// bytes after each piece.
    fn align(payload: &Bytes, sizes: &[usize]) -> (Aligner, Vec<Vec<u8>>) {
        let mut a = Aligner::new();
        let mut forwarded = Vec::new();
        let mut sent = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < payload.len() {
            let n = sizes[i % sizes.len()].min(payload.len() - at);
            i += 1;
            let mut out = VecDeque::new();
            a.push(payload.slice(at..at + n), &mut out);
            at += n;
            for b in out {
                sent.extend_from_slice(&b);
            }
            forwarded.push(sent.clone());
        }
        (a, forwarded)
    }

    /// Element boundaries of a payload: the offsets a cut may fall on.
    fn boundaries(payload: &[u8]) -> Vec<usize> {
        let mut doc = header().to_vec();
        let base = doc.len();
        doc.extend_from_slice(payload);
        let mut b = vec![0];
        for e in Demuxer::read_all(&doc).unwrap() {
            match e {
                Event::Frame(f) => b.push(f.span.end().unwrap() as usize - base),
                Event::ClusterStart { span, .. } => {
                    // The Cluster's header, then its Timestamp element.
                    let at = span.data_offset() as usize;
                    b.push(at - base);
                    let h = ebml::read_header(&doc[at..]).unwrap().unwrap();
                    b.push(at + usize::from(h.header_len) + h.size.unwrap() as usize - base);
                }
                _ => {}
            }
        }
        b
    }

    #[test]
    fn aligner_forwards_whole_elements_only() {
        let p = payload(0, 6, false);
        let cuts = boundaries(&p);
        for sizes in [&[1usize][..], &[7], &[3, 500, 11], &[4096]] {
            let (mut a, forwarded) = align(&p, sizes);
            for f in &forwarded {
                assert!(cuts.contains(&f.len()), "{sizes:?}: cut at {}", f.len());
                assert_eq!(&f[..], &p[..f.len()]);
            }
            let mut rest = VecDeque::new();
            a.finish(&mut rest);
            assert!(rest.is_empty());
            assert_eq!(forwarded.last().unwrap(), &p.to_vec());
        }
    }

    #[test]
    fn aligner_makes_known_size_clusters_unknown() {
        let p = payload(0, 4, true);
        let (_, forwarded) = align(&p, &[5]);
        let out = forwarded.last().unwrap();
        assert_eq!(&out[..4], &[0x1F, 0x43, 0xB6, 0x75]);
        assert_eq!(&out[4..12], &UNKNOWN_SIZE_8);
        let mut doc = header().to_vec();
        doc.extend_from_slice(out);
        let frames = Demuxer::read_all(&doc)
            .unwrap()
            .into_iter()
            .filter(|e| matches!(e, Event::Frame(_)))
            .count();
        assert_eq!(frames, 4);
    }

    /// A payload cut anywhere, then closed with the aborted tags and followed by another
    /// document: everything demuxes, and the next document's frames are all there.
    #[test]
    fn aborted_payloads_leave_readers_in_sync() {
        let p = payload(0, 5, false);
        let next = payload(1000, 3, false);
        let head = FragmentHead {
            number: 1,
            producer_ts_ms: 0,
            server_ts_ms: 0,
        };
        for cut in 1..p.len() {
            let mut a = Aligner::new();
            let mut out = VecDeque::new();
            a.push(p.slice(..cut), &mut out);
            assert!(a.discard());
            let mut doc: Vec<u8> = document_start(&header(), &head, Flavor::GetMedia).concat();
            for b in out {
                doc.extend_from_slice(&b);
            }
            doc.extend_from_slice(&aborted_tags(1));
            doc.extend_from_slice(&document_start(&header(), &head, Flavor::GetMedia).concat());
            doc.extend_from_slice(&next);
            let events = Demuxer::read_all(&doc).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            let last_doc = events
                .iter()
                .rposition(|e| matches!(e, Event::EbmlHeader { .. }))
                .unwrap();
            let frames = events[last_doc..]
                .iter()
                .filter(|e| matches!(e, Event::Frame(_)))
                .count();
            assert_eq!(frames, 3, "cut {cut}");
        }
    }

    #[test]
    fn aligner_passes_malformed_payloads_through() {
        let mut a = Aligner::new();
        let mut out = VecDeque::new();
        a.push(Bytes::from_static(&[0x00, 0x01, 0x02]), &mut out);
        assert_eq!(out.len(), 1);
        assert!(!a.discard());
    }
}
