//! H.264 and H.265 Annex B byte streams (elementary streams: `ffmpeg -f h264`, `-f hevc`, many
//! cameras' raw outputs), sans-IO: bytes in, access units out.
//!
//! [`AccessUnits`] splits the bytes at start codes (`00 00 01`, with or without a leading zero)
//! into NAL units and groups them into access units: one starts at an access unit delimiter, a
//! parameter set, an SEI (and the other prefix units of each standard), or a slice that begins
//! a picture (H.264 `first_mb_in_slice` = 0, H.265 `first_slice_segment_in_pic_flag`) once the
//! current one holds a slice. An access unit is a key frame when it holds an IDR slice
//! (H.264) or an IRAP slice (H.265). Bytes before the first start code are ignored. The result
//! does not depend on how the bytes are split into pushes.
//!
//! Memory is bounded: a NAL unit longer than [`MAX_NAL`] is an error, and an access unit holds
//! at most [`MAX_AU_NALS`] units.

use std::collections::VecDeque;

/// The longest NAL unit accepted.
pub const MAX_NAL: usize = 32 << 20;
/// The most NAL units in one access unit.
pub const MAX_AU_NALS: usize = 1024;

/// What a NAL unit is, for grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NalKind {
    /// An access unit delimiter (H.264 type 9, H.265 type 35).
    Delimiter,
    /// A parameter set: its NAL unit type (H.264 7 SPS, 8 PPS; H.265 32 VPS, 33 SPS, 34 PPS).
    Parameters(u8),
    /// An SEI or another unit that starts an access unit when one is complete.
    Prefix,
    /// A slice: whether it begins a picture, whether it is a random access point.
    Slice { first: bool, key: bool },
    /// Anything else (end of sequence, filler, reserved).
    Other,
}

/// Classifies a NAL unit (with its header) of H.264 or, with `h265`, H.265.
pub fn classify(nal: &[u8], h265: bool) -> NalKind {
    let Some(&b0) = nal.first() else {
        return NalKind::Other;
    };
    if h265 {
        let t = (b0 >> 1) & 0x3f;
        match t {
            0..=31 => NalKind::Slice {
                first: nal.get(2).is_some_and(|b| b & 0x80 != 0),
                key: (16..=23).contains(&t),
            },
            32..=34 => NalKind::Parameters(t),
            35 => NalKind::Delimiter,
            39 | 41..=44 | 48..=55 => NalKind::Prefix,
            _ => NalKind::Other,
        }
    } else {
        let t = b0 & 0x1f;
        match t {
            1 | 5 => NalKind::Slice {
                first: nal.get(1).is_some_and(|b| b & 0x80 != 0),
                key: t == 5,
            },
            7 | 8 => NalKind::Parameters(t),
            9 => NalKind::Delimiter,
            6 | 14..=18 => NalKind::Prefix,
            _ => NalKind::Other,
        }
    }
}

/// One access unit: its NAL units (without start codes) in order, delimiters left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessUnit {
    pub nals: Vec<Vec<u8>>,
    /// It holds an IDR (H.264) or IRAP (H.265) slice.
    pub key: bool,
    has_slice: bool,
}

impl AccessUnit {
    /// The access unit as Matroska and MP4 store it: each NAL unit behind a 4-byte big-endian
    /// length.
    pub fn length_prefixed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.nals.iter().map(|n| n.len() + 4).sum());
        for nal in &self.nals {
            // A NAL unit is at most MAX_NAL (32 MiB) long.
            out.extend_from_slice(&u32::try_from(nal.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }
}

/// Why a stream cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnexBError {
    #[error("a NAL unit is longer than {MAX_NAL} bytes (is this an Annex B stream?)")]
    NalTooLong,
    #[error("an access unit has more than {MAX_AU_NALS} NAL units")]
    TooManyNals,
}

/// The Annex B reader. See the [module docs](self).
#[derive(Debug)]
pub struct AccessUnits {
    h265: bool,
    buf: Vec<u8>,
    /// Where the current NAL unit starts in `buf`, once a start code was seen.
    start: Option<usize>,
    /// Where to resume looking for a start code.
    scan: usize,
    finished: bool,
    current: AccessUnit,
    ready: VecDeque<AccessUnit>,
    error: Option<AnnexBError>,
}

impl AccessUnits {
    /// A reader of H.264 or, with `h265`, H.265.
    pub fn new(h265: bool) -> Self {
        AccessUnits {
            h265,
            buf: Vec::new(),
            start: None,
            scan: 0,
            finished: false,
            current: AccessUnit::default(),
            ready: VecDeque::new(),
            error: None,
        }
    }

    /// Takes more bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.error.is_some() || self.finished {
            return;
        }
        self.buf.extend_from_slice(data);
        self.split();
    }

    /// The input is over: the last NAL unit and access unit are complete.
    pub fn finish(&mut self) {
        if self.error.is_some() || self.finished {
            return;
        }
        self.finished = true;
        if let Some(start) = self.start.take() {
            let nal = trim_trailing_zeros(self.buf.get(start..).unwrap_or_default()).to_vec();
            self.buf.clear();
            self.on_nal(nal);
        }
        if self.current.has_slice {
            let au = std::mem::take(&mut self.current);
            self.ready.push_back(au);
        }
    }

    /// The next whole access unit, or the error that stopped the reader.
    pub fn pull(&mut self) -> Option<Result<AccessUnit, AnnexBError>> {
        if let Some(au) = self.ready.pop_front() {
            return Some(Ok(au));
        }
        self.error.clone().map(Err)
    }

    /// Bytes held (the NAL unit being read), for the caller's accounting.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn split(&mut self) {
        loop {
            let from = self.scan;
            let found = self
                .buf
                .get(from..)
                .and_then(|rest| rest.windows(3).position(|w| w == [0, 0, 1]))
                .map(|p| from + p);
            match (found, self.start) {
                (Some(at), None) => {
                    self.start = Some(at + 3);
                    self.scan = at + 3;
                }
                (Some(at), Some(start)) => {
                    let nal =
                        trim_trailing_zeros(self.buf.get(start..at).unwrap_or_default()).to_vec();
                    self.buf.drain(..at + 3);
                    self.start = Some(0);
                    self.scan = 0;
                    self.on_nal(nal);
                    if self.error.is_some() {
                        return;
                    }
                }
                (None, start) => {
                    // A start code may straddle the next push: look again from 2 bytes back.
                    self.scan = self.buf.len().saturating_sub(2).max(start.unwrap_or(0));
                    if start.is_none() {
                        // Nothing before the first start code is kept.
                        let keep = self.buf.len().saturating_sub(2);
                        self.buf.drain(..keep);
                        self.scan = 0;
                    } else if self.buf.len() > MAX_NAL {
                        self.error = Some(AnnexBError::NalTooLong);
                        self.buf = Vec::new();
                    }
                    return;
                }
            }
        }
    }

    fn on_nal(&mut self, nal: Vec<u8>) {
        if nal.is_empty() {
            return;
        }
        let kind = classify(&nal, self.h265);
        let starts_new = match kind {
            NalKind::Delimiter | NalKind::Parameters(_) | NalKind::Prefix => true,
            NalKind::Slice { first, .. } => first,
            NalKind::Other => false,
        };
        if starts_new && self.current.has_slice {
            let au = std::mem::take(&mut self.current);
            self.ready.push_back(au);
        }
        match kind {
            NalKind::Delimiter => return,
            NalKind::Slice { key, .. } => {
                self.current.has_slice = true;
                self.current.key |= key;
            }
            _ => {}
        }
        if self.current.nals.len() >= MAX_AU_NALS {
            self.error = Some(AnnexBError::TooManyNals);
            return;
        }
        self.current.nals.push(nal);
    }
}

/// A NAL unit ends before the zeros that precede the next start code (a 4-byte start code's
/// leading zero, trailing_zero_8bits).
fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    nal.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use proptest::prelude::*;

    fn read(data: &[u8], chunk: usize, h265: bool) -> Vec<Result<AccessUnit, AnnexBError>> {
        let mut r = AccessUnits::new(h265);
        let mut out = Vec::new();
        for c in data.chunks(chunk.max(1)) {
            r.push(c);
            while let Some(au) = r.pull() {
                let stop = au.is_err();
                out.push(au);
                if stop {
                    return out;
                }
            }
        }
        r.finish();
        while let Some(au) = r.pull() {
            let stop = au.is_err();
            out.push(au);
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn groups_access_units_from_any_start_code() {
        let stream = [
            &[0xffu8, 0, 0, 0, 1, 0x09, 0xf0][..], // junk, then an AUD
            &[0, 0, 1, 0x67, 1, 2, 3],             // SPS
            &[0, 0, 0, 1, 0x68, 4],                // PPS
            &[0, 0, 1, 0x65, 0x88, 0, 0, 3, 1],    // IDR slice, first in picture
            &[0, 0, 1, 0x65, 0x08, 7],             // IDR slice, same picture
            &[0, 0, 0, 1, 0x41, 0x9a, 5, 0, 0],    // P slice, new picture; trailing zeros
        ]
        .concat();
        for chunk in [1, 2, 3, 5, 1000] {
            let aus: Vec<AccessUnit> = read(&stream, chunk, false)
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(aus.len(), 2, "chunk {chunk}");
            assert!(aus[0].key && !aus[1].key);
            assert_eq!(
                aus[0].nals,
                vec![
                    vec![0x67, 1, 2, 3],
                    vec![0x68, 4],
                    vec![0x65, 0x88, 0, 0, 3, 1],
                    vec![0x65, 0x08, 7]
                ]
            );
            assert_eq!(aus[1].nals, vec![vec![0x41, 0x9a, 5]]);
            assert_eq!(aus[1].length_prefixed(), vec![0, 0, 0, 3, 0x41, 0x9a, 5]);
        }
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify(&[0x41, 0x12], false),
            NalKind::Slice {
                first: false,
                key: false
            }
        );
        assert_eq!(classify(&[0x40, 0x01], true), NalKind::Parameters(32));
        assert_eq!(classify(&[0x46, 0x01], true), NalKind::Delimiter);
        assert_eq!(
            classify(&[0x26, 0x01, 0xaf], true),
            NalKind::Slice {
                first: true,
                key: true
            }
        );
        assert_eq!(classify(&[], true), NalKind::Other);
    }

    #[test]
    fn a_nal_unit_too_long_is_an_error_not_a_buffer() {
        let mut r = AccessUnits::new(false);
        r.push(&[0, 0, 1, 0x65]);
        let block = vec![0x55u8; 1 << 20];
        for _ in 0..40 {
            r.push(&block);
        }
        assert_eq!(r.pull(), Some(Err(AnnexBError::NalTooLong)));
        assert!(r.buffered() < (1 << 20));
    }

    proptest! {
        /// Whatever the bytes and their split, the same access units (or error) come out,
        /// without a panic.
        #[test]
        fn chunking_does_not_matter(data in proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(0x65u8), Just(0x41u8), Just(0x09u8), any::<u8>()],
            0..600,
        ), chunk in 1usize..40, h265 in any::<bool>()) {
            let whole = read(&data, usize::MAX, h265);
            let split = read(&data, chunk, h265);
            prop_assert_eq!(whole, split);
        }
    }
}
