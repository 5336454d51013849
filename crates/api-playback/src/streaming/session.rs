//! Playback session tokens: the `SessionToken` of every HLS and DASH playback URL.
//!
//! The token is the only credential the playback GETs check (they carry no SigV4,
//! `../shared/spec/kvs-api.md` §4.3), so it is authenticated and carries everything a GET
//! needs: `base64url(payload ‖ tag)` without padding, where `payload` is a version byte
//! ([`TOKEN_VERSION`]) followed by the JSON of a [`Session`], and `tag` is the HMAC-SHA256 of
//! `payload` under the server's [`SessionKey`]. The token is opaque to clients and URL-safe
//! (letters, digits, `-`, `_`), so it needs no escaping in a query string.
//!
//! The key is random, made when the server starts ([`SessionKey::generate`]) and kept only in
//! memory: **a restart invalidates every session** (players must ask for a new URL).
//!
//! A token is refused ([`SessionKey::open`]):
//! - when it does not decode, its tag does not verify (tampered, or from another server or an
//!   earlier run) or its version is unknown: `InvalidArgumentException` (400), "SessionToken
//!   is not valid";
//! - when it has expired (`now > expires_ms`, on the store's clock):
//!   `InvalidArgumentException` (400), "The session has expired". KVS's exact answer for an
//!   expired session is undocumented; 400 keeps players from retrying forever.
//!
//! The stream id and creation time in the payload tie a session to one incarnation of a
//! stream: the playback handlers answer `ResourceNotFoundException` (404) when the stream was
//! deleted, or deleted and re-created under the same name.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::hmac;
use serde::{Deserialize, Serialize};
use vigil_store::TimestampKind;

use vigil_api_kvs_common::{KvsError, KvsResult};

/// The payload format written by this version.
pub const TOKEN_VERSION: u8 = 1;
/// Length of the HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// Longest token accepted (a payload is well under 1 KiB).
const MAX_TOKEN_LEN: usize = 4096;

/// How a session chooses fragments (`PlaybackMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// The newest fragments by server time.
    #[serde(rename = "l")]
    Live,
    /// From the range start, growing as time passes.
    #[serde(rename = "r")]
    LiveReplay,
    /// A fixed range.
    #[serde(rename = "o")]
    OnDemand,
}

/// The segment container (`ContainerFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Container {
    /// `FRAGMENTED_MP4`.
    #[serde(rename = "m")]
    Fmp4,
    /// `MPEG_TS`.
    #[serde(rename = "t")]
    Ts,
}

/// Where `#EXT-X-DISCONTINUITY` goes (`DiscontinuityMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Discontinuity {
    /// Before every fragment.
    #[serde(rename = "a")]
    Always,
    /// Never.
    #[serde(rename = "n")]
    Never,
    /// Where the gap or overlap between fragments exceeds 50 ms.
    #[serde(rename = "d")]
    OnDiscontinuity,
}

/// Which playback protocol a session serves: a token only works on its own URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// HLS (`/hls/v1/`).
    #[serde(rename = "h")]
    Hls,
    /// DASH (`/dash/v1/`).
    #[serde(rename = "d")]
    Dash,
}

/// The selector's timestamp kind, serialisable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selector {
    /// `PRODUCER_TIMESTAMP`.
    #[serde(rename = "p")]
    Producer,
    /// `SERVER_TIMESTAMP`.
    #[serde(rename = "s")]
    Server,
}

impl Selector {
    /// The store's kind.
    pub fn kind(self) -> TimestampKind {
        match self {
            Selector::Producer => TimestampKind::Producer,
            Selector::Server => TimestampKind::Server,
        }
    }
}

/// What a session token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// HLS or DASH.
    #[serde(rename = "p")]
    pub protocol: Protocol,
    /// Stream id.
    #[serde(rename = "s")]
    pub stream: u64,
    /// The stream's creation time (ms): a re-created stream has another.
    #[serde(rename = "c")]
    pub stream_created_ms: u64,
    /// Playback mode.
    #[serde(rename = "m")]
    pub mode: Mode,
    /// Selector timestamp kind (LIVE: always server time for choosing fragments).
    #[serde(rename = "k")]
    pub selector: Selector,
    /// Range start (ms), for LIVE_REPLAY and ON_DEMAND.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// Range end (ms), inclusive on fragment start times.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<u64>,
    /// Container format.
    #[serde(rename = "f")]
    pub container: Container,
    /// Discontinuity mode.
    #[serde(rename = "d")]
    pub discontinuity: Discontinuity,
    /// `DisplayFragmentTimestamp` ALWAYS.
    #[serde(rename = "t")]
    pub display_timestamp: bool,
    /// DASH `DisplayFragmentNumber` ALWAYS.
    #[serde(rename = "u", default)]
    pub display_number: bool,
    /// Most fragments in a media playlist (DASH: in a manifest).
    #[serde(rename = "n")]
    pub max_fragments: u32,
    /// When the session was made (ms, store clock).
    #[serde(rename = "i")]
    pub issued_ms: u64,
    /// When it stops working (ms, store clock).
    #[serde(rename = "e")]
    pub expires_ms: u64,
    /// Low-latency HLS with this part target (ms); `None`: plain HLS (and DASH). Left out of
    /// the token when `None`, so plain sessions' tokens are as before.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub part_target_ms: Option<u32>,
}

/// The per-server HMAC key of session tokens.
pub struct SessionKey(hmac::Key);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let rng = ring::rand::SystemRandom::new();
        match hmac::Key::generate(hmac::HMAC_SHA256, &rng) {
            Ok(k) => Self(k),
            Err(_) => {
                // The system RNG failing is not expected; fall back to the standard library's
                // per-process random hasher keys and the time rather than refusing to start.
                tracing::error!("the system RNG failed; session keys use a weaker fallback");
                use std::hash::{BuildHasher, Hasher};
                let mut bytes = Vec::with_capacity(32);
                for i in 0u64..4 {
                    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                    h.write_u64(i);
                    h.write_u128(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_nanos())
                            .unwrap_or_default(),
                    );
                    bytes.extend_from_slice(&h.finish().to_le_bytes());
                }
                Self(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
            }
        }
    }

    /// A key from fixed bytes (tests).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// The token for `session`.
    pub fn seal(&self, session: &Session) -> String {
        let mut payload = vec![TOKEN_VERSION];
        // Serialising plain fields and enums cannot fail.
        payload.extend(serde_json::to_vec(session).unwrap_or_default());
        let tag = hmac::sign(&self.0, &payload);
        payload.extend_from_slice(tag.as_ref());
        B64URL.encode(payload)
    }

    /// The session of a token, checked: see the module docs.
    pub fn open(&self, token: &str, now_ms: u64) -> KvsResult<Session> {
        let invalid = || KvsError::invalid("SessionToken is not valid.");
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(invalid());
        }
        let raw = B64URL.decode(token.as_bytes()).map_err(|_| invalid())?;
        let split = raw.len().checked_sub(TAG_LEN).ok_or_else(invalid)?;
        let (payload, tag) = raw.split_at(split);
        hmac::verify(&self.0, payload, tag).map_err(|_| invalid())?;
        let (version, json) = payload.split_first().ok_or_else(invalid)?;
        if *version != TOKEN_VERSION {
            return Err(invalid());
        }
        let session: Session = serde_json::from_slice(json).map_err(|_| invalid())?;
        if now_ms > session.expires_ms {
            return Err(KvsError::invalid(
                "The session has expired; ask for a new streaming session URL.",
            ));
        }
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    fn session() -> Session {
        Session {
            protocol: Protocol::Hls,
            stream: 7,
            stream_created_ms: 1_700_000_000_000,
            mode: Mode::OnDemand,
            selector: Selector::Producer,
            start_ms: Some(1),
            end_ms: Some(2),
            container: Container::Ts,
            discontinuity: Discontinuity::OnDiscontinuity,
            display_timestamp: true,
            display_number: false,
            max_fragments: 1000,
            issued_ms: 1000,
            expires_ms: 301_000,
            part_target_ms: None,
        }
    }

    #[test]
    fn round_trip_and_url_safe() {
        let key = SessionKey::from_bytes(b"k");
        let t = key.seal(&session());
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(key.open(&t, 301_000).unwrap(), session());
    }

    #[test]
    fn refuses_expired_tampered_and_foreign() {
        let key = SessionKey::from_bytes(b"k");
        let t = key.seal(&session());
        let e = key.open(&t, 301_001).unwrap_err();
        assert!(e.message().contains("expired"), "{e:?}");
        // Flip one bit of the payload.
        let mut raw = B64URL.decode(&t).unwrap();
        raw[3] ^= 1;
        let bad = B64URL.encode(&raw);
        assert!(
            key.open(&bad, 0)
                .unwrap_err()
                .message()
                .contains("not valid")
        );
        let other = SessionKey::from_bytes(b"other");
        assert!(other.open(&t, 0).is_err());
        assert!(key.open("", 0).is_err());
        assert!(key.open("%%%", 0).is_err());
        assert!(key.open("AAAA", 0).is_err());
        // Generated keys differ.
        let (a, b) = (SessionKey::generate(), SessionKey::generate());
        assert!(b.open(&a.seal(&session()), 0).is_err());
    }
}
