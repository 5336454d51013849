//! Decoding of the elements the demuxer reads whole: the EBML header, Info, Tracks and Tags.
//! Each function takes the element's payload and the stream offset of its first payload byte.

use bytes::Bytes;

use crate::ebml::{self, Child, Children};
use crate::error::{Error, ErrorKind};
use crate::event::{
    Audio, DEFAULT_TIMECODE_SCALE, EbmlHeader, Info, SimpleTag, Tag, TagValue, Targets, TrackEntry,
    Video,
};
use crate::ids;

type Result<T> = std::result::Result<T, Error>;

/// Iterates `data`'s children, turning errors into [`Error`]s that name `parent`.
fn children(data: Bytes, base: u64, parent: u32) -> impl Iterator<Item = Result<Child>> {
    Children::new(data, base)
        .map(move |r| r.map_err(|(off, kind)| Error::new(off, Some(parent), kind)))
}

fn uint(c: &Child) -> Result<u64> {
    ebml::uint(&c.data).map_err(|k| Error::new(c.offset, Some(c.id), k))
}

/// An unsigned integer element with a default, which an empty element takes (RFC 8794 §6.1).
fn uint_or(c: &Child, default: u64) -> Result<u64> {
    if c.data.is_empty() {
        Ok(default)
    } else {
        uint(c)
    }
}

fn int(c: &Child) -> Result<i64> {
    ebml::int(&c.data).map_err(|k| Error::new(c.offset, Some(c.id), k))
}

fn float(c: &Child) -> Result<f64> {
    ebml::float(&c.data).map_err(|k| Error::new(c.offset, Some(c.id), k))
}

fn float_or(c: &Child, default: f64) -> Result<f64> {
    if c.data.is_empty() {
        Ok(default)
    } else {
        float(c)
    }
}

fn string(c: &Child) -> String {
    ebml::string(&c.data)
}

pub fn ebml_header(data: Bytes, base: u64) -> Result<EbmlHeader> {
    let mut h = EbmlHeader {
        version: 1,
        read_version: 1,
        max_id_length: 4,
        max_size_length: 8,
        doc_type: String::new(),
        doc_type_version: 1,
        doc_type_read_version: 1,
    };
    let mut doc_type = None;
    for c in children(data, base, ids::EBML) {
        let c = c?;
        match c.id {
            ids::EBML_VERSION => h.version = uint_or(&c, 1)?,
            ids::EBML_READ_VERSION => h.read_version = uint_or(&c, 1)?,
            ids::EBML_MAX_ID_LENGTH => h.max_id_length = uint_or(&c, 4)?,
            ids::EBML_MAX_SIZE_LENGTH => h.max_size_length = uint_or(&c, 8)?,
            ids::DOC_TYPE => doc_type = Some(string(&c)),
            ids::DOC_TYPE_VERSION => h.doc_type_version = uint_or(&c, 1)?,
            ids::DOC_TYPE_READ_VERSION => h.doc_type_read_version = uint_or(&c, 1)?,
            _ => {}
        }
    }
    let err = |kind| Error::new(base, Some(ids::EBML), kind);
    h.doc_type = doc_type.ok_or_else(|| err(ErrorKind::Missing(ids::DOC_TYPE)))?;
    if h.doc_type != "matroska" && h.doc_type != "webm" {
        return Err(err(ErrorKind::DocType(h.doc_type)));
    }
    if h.read_version > 1 {
        return Err(err(ErrorKind::UnsupportedEbml("EBMLReadVersion above 1")));
    }
    if h.max_id_length > ebml::MAX_ID_LEN as u64 {
        return Err(err(ErrorKind::UnsupportedEbml("EBMLMaxIDLength above 4")));
    }
    if h.max_size_length > ebml::MAX_SIZE_LEN as u64 {
        return Err(err(ErrorKind::UnsupportedEbml("EBMLMaxSizeLength above 8")));
    }
    Ok(h)
}

pub fn info(data: Bytes, base: u64) -> Result<Info> {
    let mut info = Info::default();
    for c in children(data, base, ids::INFO) {
        let c = c?;
        match c.id {
            ids::TIMESTAMP_SCALE => {
                info.timecode_scale = uint_or(&c, DEFAULT_TIMECODE_SCALE)?;
                if info.timecode_scale == 0 {
                    return Err(Error::new(
                        c.offset,
                        Some(c.id),
                        ErrorKind::Invalid("TimestampScale 0"),
                    ));
                }
            }
            ids::SEGMENT_UUID => info.segment_uid = Some(c.data),
            ids::TITLE => info.title = Some(string(&c)),
            ids::MUXING_APP => info.muxing_app = Some(string(&c)),
            ids::WRITING_APP => info.writing_app = Some(string(&c)),
            ids::DURATION => info.duration = Some(float(&c)?),
            ids::DATE_UTC => info.date_utc = Some(int(&c)?),
            _ => {}
        }
    }
    Ok(info)
}

/// Reads Tracks; more than `max_tracks` TrackEntries is an error (which also bounds the
/// duplicate check below and the demuxer's per-block track lookup).
pub fn tracks(data: Bytes, base: u64, max_tracks: usize) -> Result<Vec<TrackEntry>> {
    let mut tracks: Vec<TrackEntry> = Vec::new();
    for c in children(data, base, ids::TRACKS) {
        let c = c?;
        if c.id != ids::TRACK_ENTRY {
            continue;
        }
        let offset = c.offset;
        if tracks.len() >= max_tracks {
            return Err(Error::new(
                offset,
                Some(ids::TRACK_ENTRY),
                ErrorKind::TooMany {
                    what: "TrackEntries",
                    limit: max_tracks,
                },
            ));
        }
        let t = track_entry(c)?;
        if tracks.iter().any(|o| o.number == t.number) {
            return Err(Error::new(
                offset,
                Some(ids::TRACK_ENTRY),
                ErrorKind::Invalid("two TrackEntries with the same TrackNumber"),
            ));
        }
        tracks.push(t);
    }
    Ok(tracks)
}

fn track_entry(entry: Child) -> Result<TrackEntry> {
    let mut t = TrackEntry::default();
    let mut number = None;
    for c in children(entry.data, entry.offset, ids::TRACK_ENTRY) {
        let c = c?;
        match c.id {
            ids::TRACK_NUMBER => number = Some(uint(&c)?),
            ids::TRACK_UID => t.uid = uint(&c)?,
            ids::TRACK_TYPE => t.track_type = uint(&c)?,
            ids::CODEC_ID => t.codec_id = string(&c),
            ids::CODEC_PRIVATE => t.codec_private = Some(c.data),
            ids::NAME => t.name = Some(string(&c)),
            ids::LANGUAGE => t.language = Some(string(&c)),
            ids::DEFAULT_DURATION => t.default_duration_ns = Some(uint(&c)?),
            ids::CODEC_DELAY => t.codec_delay_ns = Some(uint(&c)?),
            ids::CONTENT_ENCODINGS => t.header_removal = content_encodings(c)?,
            ids::VIDEO => {
                let mut v = Video::default();
                for c in children(c.data, c.offset, ids::VIDEO) {
                    let c = c?;
                    match c.id {
                        ids::PIXEL_WIDTH => v.pixel_width = uint(&c)?,
                        ids::PIXEL_HEIGHT => v.pixel_height = uint(&c)?,
                        ids::DISPLAY_WIDTH => v.display_width = Some(uint(&c)?),
                        ids::DISPLAY_HEIGHT => v.display_height = Some(uint(&c)?),
                        _ => {}
                    }
                }
                t.video = Some(v);
            }
            ids::AUDIO => {
                let mut a = Audio::default();
                for c in children(c.data, c.offset, ids::AUDIO) {
                    let c = c?;
                    match c.id {
                        ids::SAMPLING_FREQUENCY => a.sampling_frequency = float_or(&c, 8000.0)?,
                        ids::OUTPUT_SAMPLING_FREQUENCY => {
                            a.output_sampling_frequency = Some(float(&c)?)
                        }
                        ids::CHANNELS => a.channels = uint_or(&c, 1)?,
                        ids::BIT_DEPTH => a.bit_depth = Some(uint(&c)?),
                        _ => {}
                    }
                }
                t.audio = Some(a);
            }
            _ => {}
        }
    }
    t.number = match number {
        Some(0) => {
            return Err(Error::new(
                entry.offset,
                Some(ids::TRACK_ENTRY),
                ErrorKind::Invalid("TrackNumber 0"),
            ));
        }
        Some(n) => n,
        None => {
            return Err(Error::new(
                entry.offset,
                Some(ids::TRACK_ENTRY),
                ErrorKind::Missing(ids::TRACK_NUMBER),
            ));
        }
    };
    Ok(t)
}

/// The frame-level ContentEncoding Vigil can undo: header stripping (ContentCompAlgo 3), whose
/// ContentCompSettings are the stripped bytes. Compression with zlib, bzlib or LZO and
/// encryption are refused rather than passed on as frames that are not what was encoded.
fn content_encodings(encodings: Child) -> Result<Option<Bytes>> {
    let mut removed = None;
    for c in children(encodings.data, encodings.offset, ids::CONTENT_ENCODINGS) {
        let c = c?;
        if c.id != ids::CONTENT_ENCODING {
            continue;
        }
        let offset = c.offset;
        let unsupported = |what| {
            Error::new(
                offset,
                Some(ids::CONTENT_ENCODING),
                ErrorKind::Unsupported(what),
            )
        };
        let (mut scope, mut kind, mut algo, mut settings) = (1, 0, None, None);
        for c in children(c.data, c.offset, ids::CONTENT_ENCODING) {
            let c = c?;
            match c.id {
                ids::CONTENT_ENCODING_SCOPE => scope = uint_or(&c, 1)?,
                ids::CONTENT_ENCODING_TYPE => kind = uint_or(&c, 0)?,
                ids::CONTENT_COMPRESSION => {
                    algo = Some(0);
                    for c in children(c.data, c.offset, ids::CONTENT_COMPRESSION) {
                        let c = c?;
                        match c.id {
                            ids::CONTENT_COMP_ALGO => algo = Some(uint_or(&c, 0)?),
                            ids::CONTENT_COMP_SETTINGS => settings = Some(c.data),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        // Scope bit 1: the frames. Encodings of CodecPrivate alone leave frames as they are.
        if scope & 1 == 0 {
            continue;
        }
        if kind != 0 {
            return Err(unsupported("encrypted frames (ContentEncryption)"));
        }
        match algo {
            // No ContentCompression: nothing to undo (mkvmerge writes such an empty
            // ContentEncoding when it finds no header to strip, and ffmpeg reads it so).
            None => continue,
            Some(3) => {}
            Some(_) => {
                return Err(unsupported(
                    "compressed frames (zlib, bzlib or LZO ContentCompression)",
                ));
            }
        }
        if removed.is_some() {
            return Err(unsupported("more than one ContentEncoding on frames"));
        }
        removed = Some(settings.unwrap_or_default());
    }
    Ok(removed)
}

/// Reads Tags. `max_entries` bounds the Tag and SimpleTag elements one Tags element may hold
/// (each costs about a hundred bytes once decoded, from as few as three on the wire).
pub fn tags(data: Bytes, base: u64, max_depth: usize, max_entries: usize) -> Result<Vec<Tag>> {
    let mut budget = Budget {
        left: max_entries,
        limit: max_entries,
    };
    let mut tags = Vec::new();
    for c in children(data, base, ids::TAGS) {
        let c = c?;
        if c.id != ids::TAG {
            continue;
        }
        budget.take(&c)?;
        let mut tag = Tag::default();
        for c in children(c.data, c.offset, ids::TAG) {
            let c = c?;
            match c.id {
                ids::TARGETS => tag.targets = targets(c)?,
                ids::SIMPLE_TAG => tag
                    .simple_tags
                    .push(simple_tag(c, max_depth, 1, &mut budget)?),
                _ => {}
            }
        }
        tags.push(tag);
    }
    Ok(tags)
}

/// How many more Tag/SimpleTag elements a Tags element may hold.
struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    fn take(&mut self, c: &Child) -> Result<()> {
        self.left = self.left.checked_sub(1).ok_or_else(|| {
            Error::new(
                c.offset,
                Some(c.id),
                ErrorKind::TooMany {
                    what: "Tag and SimpleTag elements in one Tags element",
                    limit: self.limit,
                },
            )
        })?;
        Ok(())
    }
}

fn targets(c: Child) -> Result<Targets> {
    let mut t = Targets::default();
    for c in children(c.data, c.offset, ids::TARGETS) {
        let c = c?;
        match c.id {
            ids::TARGET_TYPE_VALUE => t.type_value = Some(uint(&c)?),
            ids::TARGET_TYPE => t.target_type = Some(string(&c)),
            ids::TAG_TRACK_UID => t.track_uids.push(uint(&c)?),
            _ => {}
        }
    }
    Ok(t)
}

fn simple_tag(st: Child, max_depth: usize, depth: usize, budget: &mut Budget) -> Result<SimpleTag> {
    budget.take(&st)?;
    if depth > max_depth {
        return Err(Error::new(
            st.offset,
            Some(ids::SIMPLE_TAG),
            ErrorKind::TagsTooDeep(max_depth),
        ));
    }
    let mut t = SimpleTag::default();
    for c in children(st.data, st.offset, ids::SIMPLE_TAG) {
        let c = c?;
        match c.id {
            ids::TAG_NAME => t.name = string(&c),
            ids::TAG_LANGUAGE => t.language = Some(string(&c)),
            ids::TAG_DEFAULT => t.default = Some(uint_or(&c, 1)? != 0),
            ids::TAG_STRING => t.value = TagValue::String(string(&c)),
            ids::TAG_BINARY => t.value = TagValue::Binary(c.data),
            ids::SIMPLE_TAG => t
                .children
                .push(simple_tag(c, max_depth, depth + 1, budget)?),
            _ => {}
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::ebml::{self as w, read_header};
    use crate::event::TrackKind;
    use crate::mux::{encode_ebml_header, encode_info, encode_tags, encode_tracks};

    /// Splits an encoded element into its payload and the payload's offset.
    fn payload(encoded: &[u8]) -> (Bytes, u64) {
        let h = read_header(encoded).unwrap().unwrap();
        let start = usize::from(h.header_len);
        (Bytes::copy_from_slice(&encoded[start..]), start as u64)
    }

    #[test]
    fn ebml_header_round_trip_and_defaults() {
        let mut out = Vec::new();
        encode_ebml_header(&mut out, &EbmlHeader::webm());
        let (data, base) = payload(&out);
        assert_eq!(ebml_header(data, base).unwrap(), EbmlHeader::webm());
        // GStreamer leaves out the versions and length limits and NUL-pads DocType.
        let mut inner = Vec::new();
        w::write_binary(&mut inner, ids::DOC_TYPE, b"matroska\0");
        w::write_uint(&mut inner, ids::DOC_TYPE_VERSION, 4);
        let h = ebml_header(Bytes::from(inner), 5).unwrap();
        assert_eq!(
            (h.doc_type.as_str(), h.max_size_length, h.version),
            ("matroska", 8, 1)
        );
        // DocType is mandatory; EBMLMaxSizeLength above 8 cannot be read.
        assert_eq!(
            ebml_header(Bytes::new(), 5).unwrap_err().kind,
            ErrorKind::Missing(ids::DOC_TYPE)
        );
        let mut inner = Vec::new();
        w::write_binary(&mut inner, ids::DOC_TYPE, b"webm");
        w::write_uint(&mut inner, ids::EBML_MAX_SIZE_LENGTH, 9);
        assert!(matches!(
            ebml_header(Bytes::from(inner), 0).unwrap_err().kind,
            ErrorKind::UnsupportedEbml(_)
        ));
    }

    #[test]
    fn info_round_trip_and_zero_scale() {
        let info = Info {
            timecode_scale: 100_000,
            segment_uid: Some(Bytes::from_static(&[1; 16])),
            title: Some("cam 1".into()),
            muxing_app: Some("m".into()),
            writing_app: Some("w".into()),
            duration: Some(1234.5),
            date_utc: Some(-5),
        };
        let mut out = Vec::new();
        encode_info(&mut out, &info);
        let (data, base) = payload(&out);
        assert_eq!(super::info(data, base).unwrap(), info);
        let mut inner = Vec::new();
        w::write_uint(&mut inner, ids::TIMESTAMP_SCALE, 0);
        let e = super::info(Bytes::from(inner), 100).unwrap_err();
        assert_eq!((e.offset, e.element), (100, Some(ids::TIMESTAMP_SCALE)));
        // An empty element takes its default (RFC 8794 §6.1).
        let mut inner = Vec::new();
        w::write_binary(&mut inner, ids::TIMESTAMP_SCALE, &[]);
        assert_eq!(
            super::info(Bytes::from(inner), 0).unwrap().timecode_scale,
            1_000_000
        );
        // A float of 3 bytes is not a float.
        let mut inner = Vec::new();
        w::write_binary(&mut inner, ids::DURATION, &[0, 0, 0]);
        assert!(matches!(
            super::info(Bytes::from(inner), 0).unwrap_err().kind,
            ErrorKind::InvalidValue { what: "float", .. }
        ));
    }

    #[test]
    fn tracks_round_trip_and_validation() {
        let tracks_in = vec![
            TrackEntry {
                number: 1,
                uid: 11,
                track_type: 1,
                codec_id: "V_MPEGH/ISO/HEVC".into(),
                codec_private: Some(Bytes::from_static(b"hvcC")),
                name: Some("front door".into()),
                language: Some("und".into()),
                default_duration_ns: Some(40_000_000),
                codec_delay_ns: None,
                header_removal: None,
                video: Some(Video {
                    pixel_width: 1920,
                    pixel_height: 1080,
                    display_width: Some(1920),
                    display_height: Some(1080),
                }),
                audio: None,
            },
            TrackEntry {
                number: 2,
                uid: 22,
                track_type: 2,
                codec_id: "A_OPUS".into(),
                codec_delay_ns: Some(6_500_000),
                audio: Some(Audio {
                    sampling_frequency: 48000.0,
                    output_sampling_frequency: None,
                    channels: 2,
                    bit_depth: Some(16),
                }),
                ..Default::default()
            },
        ];
        let mut out = Vec::new();
        encode_tracks(&mut out, &tracks_in);
        let (data, base) = payload(&out);
        let read = tracks(data, base, 127).unwrap();
        assert_eq!(read, tracks_in);
        assert_eq!(read[1].kind(), TrackKind::Audio);

        let entry = |fields: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            w::write_master(&mut out, ids::TRACK_ENTRY, |o| fields(o));
            out
        };
        let no_number = entry(&|o| w::write_binary(o, ids::CODEC_ID, b"A_AAC"));
        assert_eq!(
            tracks(Bytes::from(no_number), 0, 127).unwrap_err().kind,
            ErrorKind::Missing(ids::TRACK_NUMBER)
        );
        let mut twice = entry(&|o| w::write_uint(o, ids::TRACK_NUMBER, 3));
        twice.extend(entry(&|o| w::write_uint(o, ids::TRACK_NUMBER, 3)));
        let e = tracks(Bytes::from(twice), 1000, 127).unwrap_err();
        // The second entry: 5 bytes (ID, size, TrackNumber) after the first.
        assert_eq!(e.offset, 1005, "{e}");
    }

    #[test]
    fn tags_round_trip_with_nesting_and_targets() {
        let tags_in = vec![Tag {
            targets: Targets {
                type_value: Some(50),
                target_type: Some("MOVIE".into()),
                track_uids: vec![11, 22],
            },
            simple_tags: vec![SimpleTag {
                name: "AWS_KINESISVIDEO_NOTIFICATION".into(),
                language: Some("eng".into()),
                default: Some(true),
                value: TagValue::None,
                children: vec![
                    SimpleTag::string("SOURCE", "front door"),
                    SimpleTag {
                        name: "THUMB".into(),
                        value: TagValue::Binary(Bytes::from_static(&[0, 1, 2])),
                        ..Default::default()
                    },
                ],
            }],
        }];
        let mut out = Vec::new();
        encode_tags(&mut out, &tags_in);
        let (data, base) = payload(&out);
        assert_eq!(tags(data.clone(), base, 16, 100).unwrap(), tags_in);
        assert_eq!(
            tags(data.clone(), base, 1, 100).unwrap_err().kind,
            ErrorKind::TagsTooDeep(1)
        );
        // One Tag and three SimpleTags.
        assert!(tags(data.clone(), base, 16, 4).is_ok());
        assert!(matches!(
            tags(data, base, 16, 3).unwrap_err().kind,
            ErrorKind::TooMany { limit: 3, .. }
        ));
    }
}
