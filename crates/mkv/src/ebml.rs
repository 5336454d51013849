//! EBML primitives (RFC 8794): variable-size integers, element headers, typed values, and
//! iteration over the children of a fully buffered master element.
//!
//! Everything here reads from slices it is given and returns `None` where more bytes are needed,
//! so the callers decide when to wait; nothing panics on any input.

use bytes::Bytes;

use crate::error::ErrorKind;

/// Longest element ID this crate reads (`EBMLMaxIDLength` 4, as Matroska fixes it).
pub const MAX_ID_LEN: usize = 4;
/// Longest size field (`EBMLMaxSizeLength` 8).
pub const MAX_SIZE_LEN: usize = 8;

/// An element's ID and size, read from the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementHeader {
    pub id: u32,
    /// `None` for the reserved "unknown size" value (all value bits set).
    pub size: Option<u64>,
    /// Bytes taken by the ID and the size field together.
    pub header_len: u8,
}

/// Reads an element ID. `Ok(None)`: `buf` is too short to tell.
pub fn read_id(buf: &[u8]) -> Result<Option<(u32, usize)>, ErrorKind> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let len = first.leading_zeros() as usize + 1;
    if len > MAX_ID_LEN {
        return Err(ErrorKind::InvalidId { first_byte: first });
    }
    let Some(bytes) = buf.get(..len) else {
        return Ok(None);
    };
    Ok(Some((
        bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)),
        len,
    )))
}

/// Reads a variable-size unsigned integer (an element size or a block's track number).
/// `Ok(Some((None, len)))` is the reserved unknown value. `Ok(None)`: `buf` is too short to tell.
pub fn read_vint(buf: &[u8]) -> Result<Option<(Option<u64>, usize)>, ErrorKind> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == 0 {
        return Err(ErrorKind::InvalidVint);
    }
    let len = first.leading_zeros() as usize + 1;
    let Some(bytes) = buf.get(..len) else {
        return Ok(None);
    };
    // The marker bit and the zeros before it are not part of the value; `len` ≤ 8 here.
    let mask = 0xFFu8.checked_shr(len as u32).unwrap_or(0);
    let mut value = u64::from(first & mask);
    for &b in bytes.iter().skip(1) {
        value = (value << 8) | u64::from(b);
    }
    let all_ones = (1u64 << (7 * len as u32)) - 1;
    Ok(Some((
        if value == all_ones { None } else { Some(value) },
        len,
    )))
}

/// Reads an element header (ID and size). `Ok(None)`: more bytes are needed.
pub fn read_header(buf: &[u8]) -> Result<Option<ElementHeader>, ErrorKind> {
    let Some((id, id_len)) = read_id(buf)? else {
        return Ok(None);
    };
    let Some((size, size_len)) = read_vint(buf.get(id_len..).unwrap_or_default())? else {
        return Ok(None);
    };
    Ok(Some(ElementHeader {
        id,
        size,
        // At most 4 + 8.
        header_len: (id_len + size_len) as u8,
    }))
}

/// An unsigned integer element's value (0 to 8 bytes, big-endian).
pub fn uint(data: &[u8]) -> Result<u64, ErrorKind> {
    if data.len() > 8 {
        return Err(ErrorKind::InvalidValue {
            what: "unsigned integer",
            len: data.len() as u64,
        });
    }
    Ok(data.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// A signed integer element's value (0 to 8 bytes, big-endian two's complement).
pub fn int(data: &[u8]) -> Result<i64, ErrorKind> {
    let raw = uint(data).map_err(|_| ErrorKind::InvalidValue {
        what: "signed integer",
        len: data.len() as u64,
    })?;
    if data.is_empty() {
        return Ok(0);
    }
    let shift = 64 - 8 * data.len() as u32;
    Ok(((raw << shift) as i64) >> shift)
}

/// A float element's value (0, 4 or 8 bytes).
pub fn float(data: &[u8]) -> Result<f64, ErrorKind> {
    match *data {
        [] => Ok(0.0),
        [a, b, c, d] => Ok(f64::from(f32::from_be_bytes([a, b, c, d]))),
        [a, b, c, d, e, f, g, h] => Ok(f64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => Err(ErrorKind::InvalidValue {
            what: "float",
            len: data.len() as u64,
        }),
    }
}

/// A string or UTF-8 element's value: up to the first NUL, if any (RFC 8794 §7.4 and §7.5:
/// what follows a NUL is padding and ignored). Invalid UTF-8 is replaced rather than rejected
/// (producers in the wild write Latin-1 titles).
pub fn string(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(data.get(..end).unwrap_or_default()).into_owned()
}

/// One child of a buffered master element.
#[derive(Debug, Clone)]
pub struct Child {
    pub id: u32,
    /// Stream offset of the child's first byte (its ID).
    pub offset: u64,
    pub data: Bytes,
}

/// Iterates the children of a master element whose whole payload is in memory.
#[derive(Debug)]
pub struct Children {
    data: Bytes,
    pos: usize,
    /// Stream offset of `data[0]`.
    base: u64,
    failed: bool,
}

impl Children {
    pub fn new(data: Bytes, base: u64) -> Self {
        Children {
            data,
            pos: 0,
            base,
            failed: false,
        }
    }
}

impl Iterator for Children {
    /// On error: the stream offset where it happened and what went wrong.
    type Item = Result<Child, (u64, ErrorKind)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let offset = self.base + self.pos as u64;
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let result = match read_header(rest) {
            Ok(Some(h)) => match h.size {
                None => Err(ErrorKind::UnknownSizeNotAllowed { id: h.id }),
                Some(size) => {
                    let start = self.pos + usize::from(h.header_len);
                    match usize::try_from(size)
                        .ok()
                        .and_then(|s| start.checked_add(s))
                        .filter(|&end| end <= self.data.len())
                    {
                        Some(end) => {
                            self.pos = end;
                            Ok(Child {
                                id: h.id,
                                offset,
                                data: self.data.slice(start..end),
                            })
                        }
                        None => Err(ErrorKind::Overrun {
                            id: h.id,
                            parent_end: self.base + self.data.len() as u64,
                        }),
                    }
                }
            },
            Ok(None) => Err(ErrorKind::Truncated),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.failed = true;
        }
        Some(result.map_err(|e| (offset, e)))
    }
}

// ---------------------------------------------------------------------------------------------
// Writing.

/// The 8-byte "unknown size" field (GStreamer writes this form; KVS producers the 1-byte
/// `0xFF`; both read the same).
pub const UNKNOWN_SIZE_8: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// Appends an element ID (its marker bits are part of the value).
pub fn write_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = (id.leading_zeros() / 8).min(3) as usize;
    out.extend_from_slice(bytes.get(skip..).unwrap_or(&bytes));
}

/// Appends `value` as a variable-size integer of the shortest width that holds it.
/// Values ≥ 2^56 - 1 cannot be written and are clamped; no element in this crate gets near.
pub fn write_vint(out: &mut Vec<u8>, value: u64) {
    let mut len = 1u32;
    // A value of all ones at some width would read back as "unknown", so it needs one more byte.
    while len < 8 && value >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    write_vint_width(out, value.min((1u64 << 56) - 2), len as usize);
}

/// Appends `value` as a variable-size integer exactly `width` bytes wide (1..=8); the caller
/// guarantees it fits.
pub fn write_vint_width(out: &mut Vec<u8>, value: u64, width: usize) {
    let width = width.clamp(1, 8);
    let marked = value | (1u64 << (7 * width as u32));
    let bytes = marked.to_be_bytes();
    out.extend_from_slice(bytes.get(8 - width..).unwrap_or(&bytes));
}

pub fn write_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let len = (8 - value.leading_zeros() / 8).max(1) as usize;
    write_id(out, id);
    write_vint(out, len as u64);
    let bytes = value.to_be_bytes();
    out.extend_from_slice(bytes.get(8 - len..).unwrap_or(&bytes));
}

pub fn write_int(out: &mut Vec<u8>, id: u32, value: i64) {
    let mut len = 8usize;
    // Drop leading bytes that only repeat the sign.
    while len > 1 {
        let shift = 8 * (len as u32 - 1) - 1;
        let top = value >> shift;
        if top == 0 || top == -1 {
            len -= 1;
        } else {
            break;
        }
    }
    write_id(out, id);
    write_vint(out, len as u64);
    let bytes = value.to_be_bytes();
    out.extend_from_slice(bytes.get(8 - len..).unwrap_or(&bytes));
}

pub fn write_float(out: &mut Vec<u8>, id: u32, value: f64) {
    write_id(out, id);
    write_vint(out, 8);
    out.extend_from_slice(&value.to_be_bytes());
}

pub fn write_binary(out: &mut Vec<u8>, id: u32, data: &[u8]) {
    write_id(out, id);
    write_vint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// Appends a master element whose children `body` writes; its size is filled in afterwards.
pub fn write_master(out: &mut Vec<u8>, id: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    write_id(out, id);
    write_vint(out, inner.len() as u64);
    out.extend_from_slice(&inner);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(read_id(&[0xA3]).unwrap(), Some((0xA3, 1)));
        assert_eq!(
            read_id(&[0x1A, 0x45, 0xDF, 0xA3]).unwrap(),
            Some((0x1A45DFA3, 4))
        );
        assert_eq!(read_id(&[0x1A, 0x45]).unwrap(), None);
        assert!(matches!(
            read_id(&[0x08]),
            Err(ErrorKind::InvalidId { first_byte: 8 })
        ));
        for id in [0xA3u32, 0x4286, 0x2AD7B1, 0x1F43B675] {
            let mut v = Vec::new();
            write_id(&mut v, id);
            assert_eq!(read_id(&v).unwrap(), Some((id, v.len())));
        }
    }

    #[test]
    fn vints() {
        assert_eq!(read_vint(&[0x81]).unwrap(), Some((Some(1), 1)));
        assert_eq!(read_vint(&[0x40, 0x02]).unwrap(), Some((Some(2), 2)));
        assert_eq!(read_vint(&[0xFF]).unwrap(), Some((None, 1)));
        assert_eq!(read_vint(&UNKNOWN_SIZE_8).unwrap(), Some((None, 8)));
        assert_eq!(
            read_vint(&[0x01, 0, 0, 0, 0, 0, 0, 0x2A]).unwrap(),
            Some((Some(42), 8))
        );
        assert_eq!(read_vint(&[0x01, 0]).unwrap(), None);
        assert!(read_vint(&[0x00]).is_err());
        for v in [0u64, 1, 126, 127, 128, 16382, 16383, 1 << 40, (1 << 56) - 2] {
            let mut out = Vec::new();
            write_vint(&mut out, v);
            assert_eq!(read_vint(&out).unwrap(), Some((Some(v), out.len())), "{v}");
            for w in out.len()..=8 {
                let mut out = Vec::new();
                write_vint_width(&mut out, v, w);
                assert_eq!(read_vint(&out).unwrap(), Some((Some(v), w)), "{v} in {w}");
            }
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(uint(&[]).unwrap(), 0);
        assert_eq!(uint(&[1, 0]).unwrap(), 256);
        assert!(uint(&[0; 9]).is_err());
        assert_eq!(int(&[0xFF]).unwrap(), -1);
        assert_eq!(int(&[0xFF, 0x38]).unwrap(), -200);
        assert_eq!(int(&[0x7F]).unwrap(), 127);
        assert_eq!(float(&[0x47, 0x3B, 0x80, 0x00]).unwrap(), 48000.0);
        assert!(float(&[0, 0, 0]).is_err());
        assert_eq!(string(b"abc\0\0"), "abc");
        assert_eq!(string(b"matroska\0xx"), "matroska");
        for v in [
            0i64,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            i64::MIN,
            i64::MAX,
            1 << 40,
        ] {
            let mut out = Vec::new();
            write_int(&mut out, 0x80, v);
            let h = read_header(&out).unwrap().unwrap();
            assert_eq!(
                int(&out[usize::from(h.header_len)..]).unwrap(),
                v,
                "{v} {out:x?}"
            );
        }
        for v in [0u64, 1, 255, 256, u64::MAX] {
            let mut out = Vec::new();
            write_uint(&mut out, 0x80, v);
            let h = read_header(&out).unwrap().unwrap();
            assert_eq!(uint(&out[usize::from(h.header_len)..]).unwrap(), v);
        }
    }

    #[test]
    fn children_reject_overrun() {
        let data = Bytes::from_static(&[0x86, 0x85, b'a', b'b']);
        let mut it = Children::new(data, 100);
        assert!(matches!(
            it.next(),
            Some(Err((100, ErrorKind::Overrun { id: 0x86, .. })))
        ));
        assert!(it.next().is_none());
    }
}
