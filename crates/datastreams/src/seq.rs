//! Sequence numbers: a record's identity in its shard, as clients see it.
//!
//! A record's place in the store is a [`Position`] (its batch's store-wide number and its
//! index in the batch), which increases along every log in the order records become durable
//! and visible, and across the whole store in the order of arrival. A sequence number is that
//! position with the shard's index beside it, written as 56 decimal digits as AWS's are:
//!
//! ```text
//! "4" | 55 digits, zero-padded, of (position << 24 | shard index)
//! ```
//!
//! So sequence numbers sort, as strings and as big integers (the Kinesis Client Library
//! compares them as `BigInteger`s), in position order: strictly increasing within a shard,
//! and a child shard's above its parents' after a reshard, since positions keep increasing.
//! The shard index lets a sequence number given for the wrong shard be refused.

use vigil_store::Position;

/// Bits of the shard index in a sequence number.
const SHARD_BITS: u32 = 24;
/// Digits of a sequence number.
pub const DIGITS: usize = 56;

/// A sequence number: a position in one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceNumber {
    /// Where the record is in the store.
    pub position: Position,
    /// The shard's index.
    pub shard: u32,
}

impl SequenceNumber {
    /// The sequence number of `position` in shard `shard`.
    pub fn new(position: Position, shard: u32) -> Self {
        Self { position, shard }
    }

    /// Parses a sequence number this engine wrote. `None` for any other string (AWS's own
    /// sequence numbers, or digits that are no position).
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix('4')?;
        if s.len() != DIGITS || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v: u128 = rest.parse().ok()?;
        let shard = u32::try_from(v & ((1 << SHARD_BITS) - 1)).ok()?;
        let seq = Self {
            position: Position::from_u128(v >> SHARD_BITS),
            shard,
        };
        // Only the numbers this engine writes (a position is at most 80 bits).
        (seq.to_string() == s).then_some(seq)
    }

    /// Whether `s` has the shape the service model accepts (`0|([1-9]\d{0,128})`).
    pub fn is_model_shape(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 129
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'))
    }
}

impl std::fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Positions are below 2^80 (a 64-bit batch number and a 16-bit index), so the value
        // is below 2^104 < 10^32: well within 55 digits and u128.
        let v = (self.position.as_u128() << SHARD_BITS) | u128::from(self.shard & 0xff_ffff);
        // By hand, not `write!(f, "4{v:055}")`: every PutRecords answer and GetRecords record
        // carries one, and the formatter pads a character at a time and divides in u128.
        const TEN_19: u128 = 10_000_000_000_000_000_000;
        let (mut high, mut low) = ((v / TEN_19) as u64, (v % TEN_19) as u64);
        let mut digits = [b'0'; DIGITS];
        let mut slots = digits.iter_mut().rev();
        for slot in slots.by_ref().take(19) {
            *slot = b'0' + (low % 10) as u8;
            low /= 10;
        }
        for slot in slots {
            *slot = b'0' + (high % 10) as u8;
            high /= 10;
        }
        if let Some(first) = digits.first_mut() {
            *first = b'4';
        }
        f.write_str(std::str::from_utf8(&digits).map_err(|_| std::fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_width_and_ordered() {
        let a = SequenceNumber::new(Position::new(1, 0), 7);
        let b = SequenceNumber::new(Position::new(1, 1), 0);
        let c = SequenceNumber::new(Position::new(2, 0), 3);
        for s in [a, b, c] {
            let text = s.to_string();
            assert_eq!(text.len(), DIGITS);
            assert_eq!(SequenceNumber::parse(&text), Some(s));
            assert!(SequenceNumber::is_model_shape(&text));
        }
        assert!(a.to_string() < b.to_string());
        assert!(b.to_string() < c.to_string());
        assert_eq!(
            SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898"),
            None
        );
        assert_eq!(SequenceNumber::parse("4"), None);
        assert!(!SequenceNumber::is_model_shape("01"));
        assert!(SequenceNumber::is_model_shape("0"));
    }

    proptest! {
        #[test]
        fn round_trips_and_sorts(b1 in any::<u64>(), i1 in any::<u16>(), s1 in 0u32..(1 << 24),
                                 b2 in any::<u64>(), i2 in any::<u16>(), s2 in 0u32..(1 << 24)) {
            let x = SequenceNumber::new(Position::new(b1, i1), s1);
            let y = SequenceNumber::new(Position::new(b2, i2), s2);
            prop_assert_eq!(SequenceNumber::parse(&x.to_string()), Some(x));
            let v = (x.position.as_u128() << SHARD_BITS) | u128::from(s1);
            prop_assert_eq!(x.to_string(), format!("4{v:055}"));
            if x.position != y.position {
                prop_assert_eq!(x.position < y.position, x.to_string() < y.to_string());
            }
        }
    }
}
