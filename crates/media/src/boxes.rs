//! ISO-BMFF (ISO/IEC 14496-12) box encoders shared by `fmp4` and `mp4`.
//!
//! Written by hand rather than with `mp4-atom`: we only encode, a fixed handful of boxes, and
//! the encoders are small enough to read against the spec; a dependency whose API has changed
//! shape across minor versions would cost more than these few hundred lines. Each encoder
//! appends one box to a [`Writer`]; sizes are patched when the box closes, and a box that
//! would exceed 4 GiB makes [`Writer::finish`] fail rather than write a wrong size.

use bytes::Bytes;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::sample::Track;

/// The movie timescale of `mvhd`, `tkhd` and `elst`: milliseconds.
pub(crate) const MOVIE_TIMESCALE: u32 = 1000;

/// The unity matrix of `mvhd` and `tkhd`.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// `trun`/`trex` sample flags: a sync sample (depends on no other).
pub(crate) const SYNC_FLAGS: u32 = 0x0200_0000;
/// A non-sync sample (depends on others, `sample_is_non_sync_sample`).
pub(crate) const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// A byte buffer that boxes are appended to.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
    overflow: bool,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Overwrites a u32 written earlier at `pos`.
    pub(crate) fn patch_u32(&mut self, pos: usize, v: u32) {
        if let Some(b) = self.buf.get_mut(pos..pos + 4) {
            b.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Writes a box: its size (patched at the end), type, and what `body` writes.
    pub(crate) fn boxed(&mut self, kind: &[u8; 4], body: impl FnOnce(&mut Writer)) {
        let start = self.buf.len();
        self.u32(0);
        self.bytes(kind);
        body(self);
        let size = self.buf.len() - start;
        match u32::try_from(size) {
            Ok(size) => self.patch_u32(start, size),
            Err(_) => self.overflow = true,
        }
    }

    /// Writes a full box: a box with a version and 24 bits of flags.
    pub(crate) fn full(
        &mut self,
        kind: &[u8; 4],
        version: u8,
        flags: u32,
        body: impl FnOnce(&mut Writer),
    ) {
        self.boxed(kind, |w| {
            w.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
            body(w);
        });
    }

    pub(crate) fn finish(self) -> Result<Vec<u8>> {
        if self.overflow {
            return Err(Error::Limit("a box exceeds 4 GiB".to_owned()));
        }
        Ok(self.buf)
    }
}

/// `ftyp` or `styp`.
pub(crate) fn file_type(
    w: &mut Writer,
    kind: &[u8; 4],
    major: &[u8; 4],
    minor: u32,
    compat: &[&[u8; 4]],
) {
    w.boxed(kind, |w| {
        w.bytes(major);
        w.u32(minor);
        for c in compat {
            w.bytes(*c);
        }
    });
}

/// `mvhd` (§8.2.2); version 1 when the duration needs 64 bits.
pub(crate) fn mvhd(w: &mut Writer, duration: u64, next_track_id: u32) {
    let v1 = duration > u64::from(u32::MAX);
    w.full(b"mvhd", u8::from(v1), 0, |w| {
        if v1 {
            w.u64(0);
            w.u64(0);
            w.u32(MOVIE_TIMESCALE);
            w.u64(duration);
        } else {
            w.u32(0);
            w.u32(0);
            w.u32(MOVIE_TIMESCALE);
            w.u32(duration as u32);
        }
        w.u32(0x0001_0000); // rate 1.0
        w.u16(0x0100); // volume 1.0
        w.zeros(10);
        for m in MATRIX {
            w.u32(m);
        }
        w.zeros(24);
        w.u32(next_track_id);
    });
}

/// The MP4 track ID of the i-th track (1-based).
pub(crate) fn track_id(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// `tkhd` (§8.3.2), enabled and in the movie; `duration` in the movie timescale.
pub(crate) fn tkhd(w: &mut Writer, id: u32, track: &Track, duration: u64) {
    let v1 = duration > u64::from(u32::MAX);
    w.full(b"tkhd", u8::from(v1), 3, |w| {
        if v1 {
            w.u64(0);
            w.u64(0);
            w.u32(id);
            w.u32(0);
            w.u64(duration);
        } else {
            w.u32(0);
            w.u32(0);
            w.u32(id);
            w.u32(0);
            w.u32(duration as u32);
        }
        w.zeros(8);
        w.u16(0); // layer
        w.u16(0); // alternate_group
        w.u16(if track.is_video() { 0 } else { 0x0100 });
        w.u16(0);
        for m in MATRIX {
            w.u32(m);
        }
        let (width, height) = track.codec.dimensions().unwrap_or((0, 0));
        w.u32(width.min(0xffff) << 16);
        w.u32(height.min(0xffff) << 16);
    });
}

/// `elst` in an `edts` (§8.6.6): an optional empty edit, then one edit playing the media from
/// `media_time`.
pub(crate) fn edts(w: &mut Writer, empty: u64, duration: u64, media_time: i64) {
    w.boxed(b"edts", |w| {
        w.full(b"elst", 1, 0, |w| {
            w.u32(if empty > 0 { 2 } else { 1 });
            if empty > 0 {
                w.u64(empty);
                w.u64(u64::MAX); // media_time −1
                w.u32(0x0001_0000);
            }
            w.u64(duration);
            w.u64(media_time as u64);
            w.u32(0x0001_0000);
        });
    });
}

/// `mdhd` (§8.4.2), language `und`.
pub(crate) fn mdhd(w: &mut Writer, timescale: u32, duration: u64) {
    let v1 = duration > u64::from(u32::MAX);
    w.full(b"mdhd", u8::from(v1), 0, |w| {
        if v1 {
            w.u64(0);
            w.u64(0);
            w.u32(timescale);
            w.u64(duration);
        } else {
            w.u32(0);
            w.u32(0);
            w.u32(timescale);
            w.u32(duration as u32);
        }
        w.u16(0x55c4); // 'und'
        w.u16(0);
    });
}

/// `hdlr` (§8.4.3).
pub(crate) fn hdlr(w: &mut Writer, video: bool) {
    w.full(b"hdlr", 0, 0, |w| {
        w.u32(0);
        w.bytes(if video { b"vide" } else { b"soun" });
        w.zeros(12);
        w.bytes(if video {
            b"VideoHandler\0"
        } else {
            b"SoundHandler\0"
        });
    });
}

/// `vmhd` or `smhd`, then `dinf` with a self-contained `url `.
pub(crate) fn media_header_and_dinf(w: &mut Writer, video: bool) {
    if video {
        w.full(b"vmhd", 0, 1, |w| w.zeros(8));
    } else {
        w.full(b"smhd", 0, 0, |w| w.zeros(4));
    }
    w.boxed(b"dinf", |w| {
        w.full(b"dref", 0, 0, |w| {
            w.u32(1);
            w.full(b"url ", 0, 1, |_| {});
        });
    });
}

/// `stsd` with the track's one sample entry: `avc1`+`avcC`, `hvc1`+`hvcC`, `mp4a`+`esds`,
/// `alaw` or `ulaw`.
pub(crate) fn stsd(w: &mut Writer, track: &Track) -> Result<()> {
    let mut err = None;
    w.full(b"stsd", 0, 0, |w| {
        w.u32(1);
        match &track.codec {
            Codec::H264 {
                avcc,
                width,
                height,
            } => visual_entry(w, b"avc1", b"avcC", avcc, *width, *height),
            Codec::H265 {
                hvcc,
                width,
                height,
            } => visual_entry(w, b"hvc1", b"hvcC", hvcc, *width, *height),
            Codec::Aac {
                asc,
                sample_rate,
                channels,
            } => audio_entry(w, b"mp4a", *sample_rate, *channels, 16, |w| {
                if let Err(e) = esds(w, asc) {
                    err = Some(e);
                }
            }),
            Codec::G711 {
                mu_law,
                sample_rate,
                channels,
            } => audio_entry(
                w,
                if *mu_law { b"ulaw" } else { b"alaw" },
                *sample_rate,
                *channels,
                8,
                |_| {},
            ),
        }
    });
    err.map_or(Ok(()), Err)
}

fn visual_entry(
    w: &mut Writer,
    kind: &[u8; 4],
    config: &[u8; 4],
    record: &Bytes,
    width: u32,
    height: u32,
) {
    w.boxed(kind, |w| {
        w.zeros(6);
        w.u16(1); // data_reference_index
        w.zeros(16);
        w.u16(u16::try_from(width).unwrap_or(u16::MAX));
        w.u16(u16::try_from(height).unwrap_or(u16::MAX));
        w.u32(0x0048_0000);
        w.u32(0x0048_0000);
        w.u32(0);
        w.u16(1); // frame_count
        w.zeros(32); // compressorname
        w.u16(0x0018);
        w.u16(0xffff); // pre_defined −1
        w.boxed(config, |w| w.bytes(record));
    });
}

fn audio_entry(
    w: &mut Writer,
    kind: &[u8; 4],
    sample_rate: u32,
    channels: u16,
    sample_size: u16,
    body: impl FnOnce(&mut Writer),
) {
    w.boxed(kind, |w| {
        w.zeros(6);
        w.u16(1);
        w.zeros(8);
        w.u16(channels);
        w.u16(sample_size);
        w.zeros(4);
        // 16.16; rates past 65535 Hz do not fit, the esds carries the real one.
        w.u32(sample_rate.min(0xffff) << 16);
        body(w);
    });
}

/// An MPEG-4 descriptor tag with its size in the four-byte form.
fn descriptor(w: &mut Writer, tag: u8, len: usize) {
    w.u8(tag);
    w.u8(0x80 | ((len >> 21) & 0x7f) as u8);
    w.u8(0x80 | ((len >> 14) & 0x7f) as u8);
    w.u8(0x80 | ((len >> 7) & 0x7f) as u8);
    w.u8((len & 0x7f) as u8);
}

/// `esds` (ISO/IEC 14496-14 §5.6): ES_Descriptor, DecoderConfigDescriptor (AAC, audio stream),
/// DecoderSpecificInfo (the AudioSpecificConfig), SLConfigDescriptor.
pub(crate) fn esds(w: &mut Writer, asc: &[u8]) -> Result<()> {
    if asc.len() > 1024 {
        return Err(Error::Limit("AudioSpecificConfig over 1 KiB".to_owned()));
    }
    let dsi = 5 + asc.len();
    let dcd = 13 + dsi;
    let es = 3 + 5 + dcd + 5 + 1;
    w.full(b"esds", 0, 0, |w| {
        descriptor(w, 0x03, es);
        w.u16(0); // ES_ID
        w.u8(0);
        descriptor(w, 0x04, dcd);
        w.u8(0x40); // Audio ISO/IEC 14496-3
        w.u8(0x15); // AudioStream, upStream 0, reserved 1
        w.zeros(3); // bufferSizeDB
        w.u32(0); // maxBitrate
        w.u32(0); // avgBitrate
        descriptor(w, 0x05, asc.len());
        w.bytes(asc);
        descriptor(w, 0x06, 1);
        w.u8(0x02);
    });
    Ok(())
}

/// `trex` (§8.8.3).
pub(crate) fn trex(w: &mut Writer, id: u32) {
    w.full(b"trex", 0, 0, |w| {
        w.u32(id);
        w.u32(1);
        w.u32(0);
        w.u32(0);
        w.u32(0);
    });
}

/// The header of an `mdat` holding `payload` bytes: 8 bytes, or 16 with a 64-bit size.
pub(crate) fn mdat_header(payload: u64) -> Vec<u8> {
    match u32::try_from(payload + 8) {
        Ok(size) => {
            let mut h = size.to_be_bytes().to_vec();
            h.extend_from_slice(b"mdat");
            h
        }
        Err(_) => {
            let mut h = 1u32.to_be_bytes().to_vec();
            h.extend_from_slice(b"mdat");
            h.extend_from_slice(&(payload + 16).to_be_bytes());
            h
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    /// A parsed box: type, payload, and children when it is a container we know.
    #[derive(Debug)]
    pub(crate) struct Parsed {
        pub kind: [u8; 4],
        pub body: Vec<u8>,
        pub children: Vec<Parsed>,
    }

    const CONTAINERS: &[&[u8; 4]] = &[
        b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"edts", b"dinf",
    ];

    /// Parses a box sequence, checking that every size adds up exactly.
    pub(crate) fn parse(mut data: &[u8]) -> Vec<Parsed> {
        let mut out = Vec::new();
        while !data.is_empty() {
            assert!(data.len() >= 8, "truncated box header");
            let mut size = u32::from_be_bytes(data[..4].try_into().unwrap()) as u64;
            let kind: [u8; 4] = data[4..8].try_into().unwrap();
            let mut header = 8;
            if size == 1 {
                size = u64::from_be_bytes(data[8..16].try_into().unwrap());
                header = 16;
            }
            let size = size as usize;
            assert!(
                size >= header && size <= data.len(),
                "box {:?} size {size}",
                kind
            );
            let body = data[header..size].to_vec();
            let children = if CONTAINERS.contains(&&kind) {
                parse(&body)
            } else {
                Vec::new()
            };
            out.push(Parsed {
                kind,
                body,
                children,
            });
            data = &data[size..];
        }
        out
    }

    #[test]
    fn box_sizes() {
        let mut w = Writer::new();
        w.boxed(b"moov", |w| {
            mvhd(w, 5, 2);
            w.boxed(b"mvex", |w| trex(w, 1));
        });
        let buf = w.finish().unwrap();
        let boxes = parse(&buf);
        assert_eq!(boxes.len(), 1);
        assert_eq!(boxes[0].children[0].body.len(), 100);
        assert_eq!(boxes[0].children[1].children[0].body.len(), 24);
    }

    #[test]
    fn esds_sizes() {
        let mut w = Writer::new();
        esds(&mut w, &[0x11, 0x90]).unwrap();
        let buf = w.finish().unwrap();
        // ES descriptor length counts everything after its own header.
        assert_eq!(buf.len(), 12 + 5 + 3 + 5 + 13 + 5 + 2 + 5 + 1);
        assert_eq!(mdat_header(10), vec![0, 0, 0, 18, b'm', b'd', b'a', b't']);
        assert_eq!(mdat_header(u64::from(u32::MAX)).len(), 16);
    }
}
