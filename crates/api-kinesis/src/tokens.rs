//! Shard iterators and pagination tokens: opaque to clients, authenticated, bounded, and
//! expiring after five minutes as AWS's do.
//!
//! An iterator names the stream (name and incarnation: the store id of its log group), the
//! shard and the position it reads from, and when it was issued; it is authenticated with
//! the stream's own iterator key (kept with the stream, so iterators survive a restart and
//! die with the stream):
//!
//! ```text
//! base64( 0x01 | u64 stream id | u32 shard | u128 position | u64 issued ms | name | HMAC-SHA256[..16] )
//! ```
//!
//! A `NextToken` of ListStreams or ListShards carries what it continues from (a stream or
//! shard name) and when it was issued, authenticated with the server's token key (random per
//! process: a restart ends pagination, as tokens end within minutes anyway).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;
use vigil_store::Position;

/// How long an iterator or token is valid.
pub const LIFETIME_MS: u64 = 300_000;
const TAG_LEN: usize = 16;
const ITERATOR_VERSION: u8 = 1;
const TOKEN_VERSION: u8 = 1;

/// What an iterator says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iterator {
    /// The stream's name.
    pub stream: String,
    /// The stream's incarnation.
    pub stream_id: u64,
    /// The shard's index.
    pub shard: u32,
    /// Where reading goes on.
    pub position: Position,
    /// When it was issued (ms).
    pub issued_ms: u64,
}

/// Why an iterator or token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not one of ours, or altered.
    Invalid,
    /// Older than [`LIFETIME_MS`].
    Expired {
        /// When it was issued.
        issued_ms: u64,
    },
}

fn tag(key: &hmac::Key, body: &[u8]) -> [u8; TAG_LEN] {
    let t = hmac::sign(key, body);
    let mut out = [0u8; TAG_LEN];
    if let Some(head) = t.as_ref().get(..TAG_LEN) {
        out.copy_from_slice(head);
    }
    out
}

/// The HMAC key of a stream's iterator key (hex, from the engine's metadata).
pub fn iterator_key(hex_key: &str) -> hmac::Key {
    let bytes: Vec<u8> = (0..hex_key.len() / 2)
        .filter_map(|i| {
            hex_key
                .get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    hmac::Key::new(hmac::HMAC_SHA256, &bytes)
}

impl Iterator {
    /// The iterator as a string, authenticated with `key`.
    pub fn encode(&self, key: &hmac::Key) -> String {
        let mut b = Vec::with_capacity(1 + 8 + 4 + 16 + 8 + self.stream.len() + TAG_LEN);
        b.push(ITERATOR_VERSION);
        b.extend_from_slice(&self.stream_id.to_be_bytes());
        b.extend_from_slice(&self.shard.to_be_bytes());
        b.extend_from_slice(&self.position.as_u128().to_be_bytes());
        b.extend_from_slice(&self.issued_ms.to_be_bytes());
        b.extend_from_slice(self.stream.as_bytes());
        let t = tag(key, &b);
        b.extend_from_slice(&t);
        BASE64.encode(b)
    }

    /// The stream an iterator string names (its name and incarnation), before it is
    /// authenticated: to find the key that authenticates it.
    pub fn peek_stream(s: &str) -> Option<(String, u64)> {
        let b = BASE64.decode(s).ok()?;
        let body = b.get(..b.len().checked_sub(TAG_LEN)?)?;
        if body.first() != Some(&ITERATOR_VERSION) {
            return None;
        }
        let id = u64::from_be_bytes(*body.get(1..9)?.first_chunk::<8>()?);
        let name = body.get(1 + 8 + 4 + 16 + 8..)?;
        Some((String::from_utf8(name.to_vec()).ok()?, id))
    }

    /// Decodes and authenticates an iterator string with `key`, valid at `now_ms`.
    pub fn decode(s: &str, key: &hmac::Key, now_ms: u64) -> Result<Self, Refused> {
        let b = BASE64.decode(s).map_err(|_| Refused::Invalid)?;
        let split = b.len().checked_sub(TAG_LEN).ok_or(Refused::Invalid)?;
        let (body, t) = b.split_at(split);
        if !ring_eq(&tag(key, body), t) {
            return Err(Refused::Invalid);
        }
        let mut r = Reader(body);
        if r.take::<1>().ok_or(Refused::Invalid)? != [ITERATOR_VERSION] {
            return Err(Refused::Invalid);
        }
        let stream_id = u64::from_be_bytes(r.take().ok_or(Refused::Invalid)?);
        let shard = u32::from_be_bytes(r.take().ok_or(Refused::Invalid)?);
        let position = Position::from_u128(u128::from_be_bytes(r.take().ok_or(Refused::Invalid)?));
        let issued_ms = u64::from_be_bytes(r.take().ok_or(Refused::Invalid)?);
        let stream = String::from_utf8(r.0.to_vec()).map_err(|_| Refused::Invalid)?;
        if now_ms.saturating_sub(issued_ms) > LIFETIME_MS {
            return Err(Refused::Expired { issued_ms });
        }
        Ok(Self {
            stream,
            stream_id,
            shard,
            position,
            issued_ms,
        })
    }
}

/// Equality in time independent of where the slices differ.
fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

/// The server's key for pagination tokens.
#[derive(Debug)]
pub struct TokenKey(hmac::Key);

impl TokenKey {
    /// A random key.
    pub fn generate() -> Self {
        let rng = ring::rand::SystemRandom::new();
        match hmac::Key::generate(hmac::HMAC_SHA256, &rng) {
            Ok(k) => Self(k),
            // No randomness: tokens still work, but are not secret (they only page).
            Err(_) => Self(hmac::Key::new(hmac::HMAC_SHA256, b"vigil-kinesis-tokens")),
        }
    }

    /// A token of `kind` (`b'S'` streams, `b'H'` shards) continuing after `after`.
    pub fn encode(&self, kind: u8, after: &str, now_ms: u64) -> String {
        let mut b = vec![TOKEN_VERSION, kind];
        b.extend_from_slice(&now_ms.to_be_bytes());
        b.extend_from_slice(after.as_bytes());
        let t = tag(&self.0, &b);
        b.extend_from_slice(&t);
        BASE64.encode(b)
    }

    /// What a token of `kind` continues after.
    pub fn decode(&self, kind: u8, s: &str, now_ms: u64) -> Result<String, Refused> {
        if s.len() > 4096 {
            return Err(Refused::Invalid);
        }
        let b = BASE64.decode(s).map_err(|_| Refused::Invalid)?;
        let split = b.len().checked_sub(TAG_LEN).ok_or(Refused::Invalid)?;
        let (body, t) = b.split_at(split);
        if !ring_eq(&tag(&self.0, body), t) {
            return Err(Refused::Invalid);
        }
        let mut r = Reader(body);
        if r.take::<2>().ok_or(Refused::Invalid)? != [TOKEN_VERSION, kind] {
            return Err(Refused::Invalid);
        }
        let issued_ms = u64::from_be_bytes(r.take().ok_or(Refused::Invalid)?);
        if now_ms.saturating_sub(issued_ms) > LIFETIME_MS {
            return Err(Refused::Expired { issued_ms });
        }
        String::from_utf8(r.0.to_vec()).map_err(|_| Refused::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterators_round_trip_and_refuse_tampering_and_age() {
        let key = iterator_key(&"ab".repeat(32));
        let it = Iterator {
            stream: "faces".into(),
            stream_id: 7,
            shard: 3,
            position: Position::new(99, 4),
            issued_ms: 1_000_000,
        };
        let s = it.encode(&key);
        assert!(s.len() <= 512);
        assert_eq!(Iterator::peek_stream(&s), Some(("faces".to_owned(), 7)));
        assert_eq!(
            Iterator::decode(&s, &key, 1_000_000 + LIFETIME_MS),
            Ok(it.clone())
        );
        assert_eq!(
            Iterator::decode(&s, &key, 1_000_001 + LIFETIME_MS),
            Err(Refused::Expired {
                issued_ms: 1_000_000
            })
        );
        let other = iterator_key(&"cd".repeat(32));
        assert_eq!(
            Iterator::decode(&s, &other, 1_000_000),
            Err(Refused::Invalid)
        );
        let mut raw = BASE64.decode(&s).unwrap_or_default();
        if let Some(b) = raw.get_mut(12) {
            *b ^= 1;
        }
        assert_eq!(
            Iterator::decode(&BASE64.encode(raw), &key, 1_000_000),
            Err(Refused::Invalid)
        );
        assert_eq!(Iterator::decode("AAAA", &key, 0), Err(Refused::Invalid));
        assert_eq!(
            Iterator::decode("not base64!", &key, 0),
            Err(Refused::Invalid)
        );
        let long = Iterator {
            stream: "s".repeat(128),
            ..it
        };
        assert!(long.encode(&key).len() <= 512);
    }

    #[test]
    fn tokens_are_authenticated_and_expire() {
        let k = TokenKey::generate();
        let t = k.encode(b'S', "stream-9", 10);
        assert_eq!(
            k.decode(b'S', &t, 10 + LIFETIME_MS).as_deref(),
            Ok("stream-9")
        );
        assert_eq!(k.decode(b'H', &t, 10), Err(Refused::Invalid));
        assert!(matches!(
            k.decode(b'S', &t, 11 + LIFETIME_MS),
            Err(Refused::Expired { .. })
        ));
        assert_eq!(
            TokenKey::generate().decode(b'S', &t, 10),
            Err(Refused::Invalid)
        );
        assert_eq!(k.decode(b'S', &"A".repeat(5000), 10), Err(Refused::Invalid));
    }
}
