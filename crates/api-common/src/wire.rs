//! Encodings the JSON protocols share: epoch-second timestamps, UUIDs, and KVS fragment
//! numbers (which Rekognition's stream processor records carry too).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Epoch milliseconds, (de)serialized as epoch seconds (a JSON number), as AWS JSON 1.1 and
/// rest-json bodies carry timestamps unless a model says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EpochMs(pub u64);

impl Serialize for EpochMs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Exactly representable for whole milliseconds up to far beyond year 9999 after the
        // shortest round-trip formatting: 1639473904764 → 1639473904.764.
        s.serialize_f64(self.0 as f64 / 1000.0)
    }
}

impl<'de> Deserialize<'de> for EpochMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let secs = f64::deserialize(d)?;
        seconds_to_ms(secs).map(EpochMs).ok_or_else(|| {
            serde::de::Error::custom(format!("{secs} is not a timestamp in epoch seconds"))
        })
    }
}

/// Epoch seconds (any finite, non-negative value up to year 9999) to milliseconds, rounded to
/// the nearest millisecond.
pub fn seconds_to_ms(secs: f64) -> Option<u64> {
    const MAX_SECS: f64 = 253_402_300_799.0; // 9999-12-31T23:59:59Z
    if !secs.is_finite() || !(0.0..=MAX_SECS).contains(&secs) {
        return None;
    }
    Some((secs * 1000.0).round() as u64)
}

/// Digits of a fragment number on the wire: a `9` and the store's number zero-padded to 20
/// digits, so that string order is number order (clients sort them as strings) and every
/// number has the same width, as KVS's 47-digit numbers do.
pub const FRAGMENT_NUMBER_DIGITS: usize = 21;

/// A store fragment number as the API writes it.
pub fn fragment_number(n: u64) -> String {
    format!("9{n:020}")
}

/// Parses a fragment number the API wrote. `None` for any other string of digits (which
/// names no fragment) or for something that is not a fragment number at all.
pub fn parse_fragment_number(s: &str) -> Option<u64> {
    let rest = s.strip_prefix('9')?;
    if s.len() != FRAGMENT_NUMBER_DIGITS || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Whether `s` has the shape KVS accepts for a fragment number (`^[0-9]+$`, 1–128).
pub fn is_fragment_number_shape(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A 128-bit value in the UUID layout (`8-4-4-4-12` lower-case hex digits).
pub fn uuid(v: u128) -> String {
    let h = format!("{v:032x}");
    let part = |a: usize, b: usize| h.get(a..b).unwrap_or_default().to_owned();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// A random UUID (version 4 layout bits are not set: these are request ids and tokens, not
/// RFC 4122 identifiers).
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        return "00000000-0000-0000-0000-000000000000".into();
    }
    uuid(u128::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_and_seconds() {
        assert_eq!(
            uuid(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            "01234567-89ab-cdef-0011-223344556677"
        );
        assert_eq!(random_uuid().len(), 36);
        assert_eq!(seconds_to_ms(1639473904.764), Some(1639473904764));
        assert_eq!(seconds_to_ms(-1.0), None);
        assert_eq!(seconds_to_ms(f64::NAN), None);
    }
}
