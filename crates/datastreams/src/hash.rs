//! Hash keys: where a record goes.
//!
//! Kinesis routes a record by a 128-bit hash key: the MD5 digest of its partition key's UTF-8
//! bytes read as an unsigned big-endian integer, or the `ExplicitHashKey` the producer gives
//! (a decimal string in `[0, 2^128)`). Each open shard owns an inclusive range of the key
//! space; the ranges of the open shards partition it.

use md5::{Digest, Md5};

/// The hash key of a partition key.
pub fn partition_hash(partition_key: &str) -> u128 {
    let digest: [u8; 16] = Md5::digest(partition_key.as_bytes()).into();
    u128::from_be_bytes(digest)
}

/// Parses an explicit hash key (`0|([1-9]\d{0,38})`, at most `2^128 - 1`).
pub fn parse_hash_key(s: &str) -> Option<u128> {
    if s.is_empty() || s.len() > 39 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// The ranges `n` shards split the key space into evenly, as Kinesis creates them (and
/// as `UpdateShardCount` leaves them): shard `i` starts at `floor(i * 2^128 / n)` and ends one
/// before the next; the last ends at `2^128 - 1`.
pub fn even_ranges(n: u32) -> Vec<(u128, u128)> {
    if n <= 1 {
        return vec![(0, u128::MAX)];
    }
    let n = u128::from(n);
    // 2^128 = q * n + r, computed without 2^128 itself.
    let (q0, r0) = (u128::MAX / n, u128::MAX % n);
    let (q, r) = if r0 + 1 == n {
        (q0 + 1, 0)
    } else {
        (q0, r0 + 1)
    };
    // floor(i * 2^128 / n) = i * q + floor(i * r / n); i * r < 2^64.
    let start = |i: u128| i * q + i * r / n;
    (0..n)
        .map(|i| {
            let end = if i + 1 == n {
                u128::MAX
            } else {
                start(i + 1) - 1
            };
            (start(i), end)
        })
        .collect()
}

/// `[start, end]` split at its midpoint, as `SplitShard` callers usually ask
/// (`NewStartingHashKey` = the returned value).
pub fn midpoint(start: u128, end: u128) -> u128 {
    start + (end - start) / 2 + 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn md5_is_big_endian() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(partition_hash(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        assert_eq!(
            partition_hash("1").to_string(),
            "261578874264819908609102035485573088411"
        );
    }

    #[test]
    fn even_ranges_match_kinesis() {
        let two = even_ranges(2);
        assert_eq!(two[0], (0, 170141183460469231731687303715884105727));
        assert_eq!(two[1], (170141183460469231731687303715884105728, u128::MAX));
        let one = even_ranges(1);
        assert_eq!(one, vec![(0, u128::MAX)]);
        let three = even_ranges(3);
        assert_eq!(three[0].1, 113427455640312821154458202477256070484);
        assert_eq!(three[2].0, 226854911280625642308916404954512140970);
        assert_eq!(midpoint(0, u128::MAX), 1 << 127);
        for n in [3u32, 4, 7, 10, 1000] {
            let r = even_ranges(n);
            assert_eq!(r.len(), n as usize);
            assert_eq!(r[0].0, 0);
            assert_eq!(r[n as usize - 1].1, u128::MAX);
            for w in r.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0);
            }
            // Shard i starts at floor(i * 2^128 / n): check against exact big arithmetic
            // (2^128 * i / n as two 64-bit limbs' worth).
            for (i, (lo, _)) in r.iter().enumerate() {
                let i = i as u128;
                let n = u128::from(n);
                // 2^128 * i / n = (2^64 * i / n) * 2^64 + ((2^64 * i) % n) * 2^64 / n
                let hi = (1u128 << 64) * i;
                let want = (hi / n) * (1u128 << 64) + ((hi % n) << 64) / n;
                assert_eq!(*lo, want, "{n} {i}");
            }
        }
    }

    #[test]
    fn hash_keys_parse() {
        assert_eq!(parse_hash_key("0"), Some(0));
        assert_eq!(parse_hash_key(&u128::MAX.to_string()), Some(u128::MAX));
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211456"),
            None
        );
        assert_eq!(parse_hash_key("01"), None);
        assert_eq!(parse_hash_key("-1"), None);
        assert_eq!(parse_hash_key(""), None);
    }
}
