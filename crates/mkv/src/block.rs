//! Block and SimpleBlock payloads (RFC 9559 §10): track number, relative timestamp, flags, and
//! the three kinds of lacing (§10.4: Xiph, EBML and fixed-size).

use bytes::Bytes;

use crate::ebml;
use crate::error::ErrorKind;

/// A block's header and its frames (one per lace). Frame payloads share the block's buffer.
#[derive(Debug)]
pub struct Block {
    pub track: u64,
    pub relative: i16,
    pub flags: u8,
    pub frames: Vec<Bytes>,
}

pub const FLAG_KEYFRAME: u8 = 0x80;
pub const FLAG_INVISIBLE: u8 = 0x08;
pub const FLAG_DISCARDABLE: u8 = 0x01;
const LACING_MASK: u8 = 0x06;
const LACING_XIPH: u8 = 0x02;
const LACING_FIXED: u8 = 0x04;
const LACING_EBML: u8 = 0x06;

/// Parses a SimpleBlock's or Block's payload.
pub fn parse(data: &Bytes) -> Result<Block, ErrorKind> {
    let (track, track_len) = match ebml::read_vint(data) {
        Ok(Some((Some(t), len))) => (t, len),
        Ok(Some((None, _))) => return Err(ErrorKind::InvalidBlock("reserved track number")),
        Ok(None) | Err(_) => return Err(ErrorKind::InvalidBlock("bad track number")),
    };
    let rest = data.get(track_len..).unwrap_or_default();
    let [t0, t1, flags, ..] = *rest else {
        return Err(ErrorKind::InvalidBlock("shorter than its header"));
    };
    let relative = i16::from_be_bytes([t0, t1]);
    let mut pos = track_len + 3;
    let frames = match flags & LACING_MASK {
        0 => vec![data.slice(pos..)],
        lacing => {
            let count = usize::from(
                *data
                    .get(pos)
                    .ok_or(ErrorKind::InvalidLacing("no frame count"))?,
            ) + 1;
            pos += 1;
            let mut sizes = Vec::with_capacity(count);
            match lacing {
                LACING_XIPH => {
                    for _ in 1..count {
                        let mut size = 0usize;
                        loop {
                            let b = *data
                                .get(pos)
                                .ok_or(ErrorKind::InvalidLacing("truncated Xiph lace sizes"))?;
                            pos += 1;
                            size += usize::from(b);
                            if b != 255 {
                                break;
                            }
                        }
                        sizes.push(size);
                    }
                }
                LACING_EBML if count > 1 => {
                    let (first, len) = lace_vint(data, pos)?;
                    pos += len;
                    let mut size = i64::try_from(first)
                        .map_err(|_| ErrorKind::InvalidLacing("EBML lace size too large"))?;
                    sizes.push(to_size(size)?);
                    for _ in 2..count {
                        let (raw, len) = lace_vint(data, pos)?;
                        pos += len;
                        // Signed: subtract half the range of a `len`-byte vint (§10.4.3).
                        let bias = (1i64 << (7 * len as u32 - 1)) - 1;
                        let delta = i64::try_from(raw).unwrap_or(i64::MAX) - bias;
                        size = size
                            .checked_add(delta)
                            .ok_or(ErrorKind::InvalidLacing("EBML lace size overflow"))?;
                        sizes.push(to_size(size)?);
                    }
                }
                // Fixed-size lacing (and EBML lacing of one frame): the sizes follow from the
                // count, below.
                _ => {}
            }
            let payload = data.len().saturating_sub(pos);
            if data.len() < pos {
                return Err(ErrorKind::InvalidLacing("lace header past the block's end"));
            }
            if lacing == LACING_FIXED {
                if payload % count != 0 {
                    return Err(ErrorKind::InvalidLacing(
                        "fixed-size lacing with a size not divisible by the frame count",
                    ));
                }
                sizes.resize(count - 1, payload / count);
            }
            let listed: usize = sizes
                .iter()
                .try_fold(0usize, |acc, &s| acc.checked_add(s))
                .ok_or(ErrorKind::InvalidLacing("lace sizes overflow"))?;
            let last = payload
                .checked_sub(listed)
                .ok_or(ErrorKind::InvalidLacing("lace sizes exceed the block"))?;
            sizes.push(last);
            let mut frames = Vec::with_capacity(count);
            for size in sizes {
                frames.push(data.slice(pos..pos + size));
                pos += size;
            }
            frames
        }
    };
    Ok(Block {
        track,
        relative,
        flags,
        frames,
    })
}

fn lace_vint(data: &Bytes, pos: usize) -> Result<(u64, usize), ErrorKind> {
    match ebml::read_vint(data.get(pos..).unwrap_or_default()) {
        Ok(Some((Some(v), len))) => Ok((v, len)),
        _ => Err(ErrorKind::InvalidLacing("bad EBML lace size")),
    }
}

fn to_size(size: i64) -> Result<usize, ErrorKind> {
    usize::try_from(size).map_err(|_| ErrorKind::InvalidLacing("negative EBML lace size"))
}

/// Writes a SimpleBlock or Block payload header (no lacing) followed by `data`.
pub fn write_payload(out: &mut Vec<u8>, track: u64, relative: i16, flags: u8, data: &[u8]) {
    ebml::write_vint(out, track);
    out.extend_from_slice(&relative.to_be_bytes());
    out.push(flags & !LACING_MASK);
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn frames(raw: &[u8]) -> Result<Vec<Vec<u8>>, ErrorKind> {
        Ok(parse(&Bytes::copy_from_slice(raw))?
            .frames
            .iter()
            .map(|f| f.to_vec())
            .collect())
    }

    #[test]
    fn unlaced() {
        let b = parse(&Bytes::from_static(&[0x81, 0xFF, 0xFE, 0x80, 1, 2, 3])).unwrap();
        assert_eq!((b.track, b.relative, b.flags), (1, -2, 0x80));
        assert_eq!(b.frames, vec![Bytes::from_static(&[1, 2, 3])]);
    }

    #[test]
    fn xiph() {
        // 3 frames: 2 bytes, 256 bytes (255 + 1), rest 1 byte.
        let mut raw = vec![0x82, 0, 0, LACING_XIPH, 2, 2, 255, 1];
        raw.extend_from_slice(&[7; 2]);
        raw.extend_from_slice(&[8; 256]);
        raw.push(9);
        let f = frames(&raw).unwrap();
        assert_eq!(f, vec![vec![7; 2], vec![8; 256], vec![9]]);
    }

    #[test]
    fn ebml() {
        // 3 frames: 500 bytes, 498 (delta -2), rest 3.
        let mut raw = vec![0x81, 0, 0, LACING_EBML, 2];
        ebml::write_vint_width(&mut raw, 500, 2);
        raw.push(0x80 | (63 - 2)); // 1-byte signed vint: value - 63 = -2
        raw.extend_from_slice(&[1; 500]);
        raw.extend_from_slice(&[2; 498]);
        raw.extend_from_slice(&[3; 3]);
        let f = frames(&raw).unwrap();
        assert_eq!(f, vec![vec![1; 500], vec![2; 498], vec![3; 3]]);
    }

    #[test]
    fn fixed() {
        let raw = [0x81, 0, 10, LACING_FIXED, 1, 1, 2, 3, 4];
        assert_eq!(frames(&raw).unwrap(), vec![vec![1, 2], vec![3, 4]]);
        let raw = [0x81, 0, 10, LACING_FIXED, 1, 1, 2, 3];
        assert!(matches!(frames(&raw), Err(ErrorKind::InvalidLacing(_))));
    }

    #[test]
    fn malformed() {
        assert!(frames(&[]).is_err());
        assert!(frames(&[0x81, 0]).is_err());
        assert!(frames(&[0xFF, 0, 0, 0]).is_err());
        // Xiph sizes past the end.
        assert!(frames(&[0x81, 0, 0, LACING_XIPH, 1, 200, 1]).is_err());
        // Truncated Xiph size run.
        assert!(frames(&[0x81, 0, 0, LACING_XIPH, 1, 255]).is_err());
        // Negative EBML lace size.
        assert!(frames(&[0x81, 0, 0, LACING_EBML, 2, 0x81, 0x80, 1, 2]).is_err());
        // No count byte.
        assert!(frames(&[0x81, 0, 0, LACING_FIXED]).is_err());
    }
}
