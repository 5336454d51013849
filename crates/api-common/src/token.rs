//! Paging tokens (`NextToken`): opaque to clients, authenticated, bounded.
//!
//! A service puts what its next page continues from (a name, a cursor) in a token sealed with
//! the listener's token key, and opens it when the token comes back. A token the server did
//! not issue, one altered, one issued for another operation (`purpose`), or one longer than
//! the operation's model allows is refused before anything in it is read, so a client can
//! neither forge a cursor nor make the server parse a large token.
//!
//! ```text
//! base64( 0x01 | payload | HMAC-SHA256(key, len(purpose) | purpose | 0x01 | payload)[..16] )
//! ```
//!
//! The standard base64 alphabet is what the KVS models' pattern `[a-zA-Z0-9+/=]*` allows.
//! The key is random per process: a restart ends pagination (a client starts its listing
//! again), and a token is good only on the server that issued it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;

/// The key that seals and opens paging tokens.
pub struct PageTokens(hmac::Key);

impl fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PageTokens(..)")
    }
}

impl Default for PageTokens {
    fn default() -> Self {
        Self::generate()
    }
}

impl PageTokens {
    /// A fresh random key.
    pub fn generate() -> Self {
        let rng = ring::rand::SystemRandom::new();
        // Generation fails only where the OS has no randomness; a key of zeros would still
        // authenticate what this process issued, never what another one did.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, &[0u8; 32]));
        Self(key)
    }

    fn tag(&self, purpose: &str, body: &[u8]) -> [u8; TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.0);
        let len = u8::try_from(purpose.len()).unwrap_or(u8::MAX);
        ctx.update(&[len]);
        ctx.update(purpose.as_bytes());
        ctx.update(body);
        let t = ctx.sign();
        let mut out = [0u8; TAG_LEN];
        if let Some(head) = t.as_ref().get(..TAG_LEN) {
            out.copy_from_slice(head);
        }
        out
    }

    /// A token carrying `payload`, good for `purpose` (the operation: `"ListStreams"`).
    pub fn seal(&self, purpose: &str, payload: &[u8]) -> String {
        let mut b = Vec::with_capacity(1 + payload.len() + TAG_LEN);
        b.push(VERSION);
        b.extend_from_slice(payload);
        let t = self.tag(purpose, &b);
        b.extend_from_slice(&t);
        BASE64.encode(b)
    }

    /// The payload of a token this key sealed for `purpose`, if `token` is one and is at
    /// most `max_len` characters.
    pub fn open(&self, purpose: &str, token: &str, max_len: usize) -> Option<Vec<u8>> {
        if token.len() > max_len {
            return None;
        }
        let b = BASE64.decode(token.as_bytes()).ok()?;
        let split = b.len().checked_sub(TAG_LEN)?;
        let (body, tag) = b.split_at(split);
        let expected = self.tag(purpose, body);
        // Every byte compared, whatever differs first (no timing oracle on the tag).
        let diff = expected
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 || tag.len() != TAG_LEN {
            return None;
        }
        match body.split_first() {
            Some((&VERSION, payload)) => Some(payload.to_vec()),
            _ => None,
        }
    }

    /// [`Self::seal`] of a UTF-8 payload.
    pub fn seal_str(&self, purpose: &str, payload: &str) -> String {
        self.seal(purpose, payload.as_bytes())
    }

    /// [`Self::open`] of a UTF-8 payload.
    pub fn open_str(&self, purpose: &str, token: &str, max_len: usize) -> Option<String> {
        String::from_utf8(self.open(purpose, token, max_len)?).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn a_sealed_token_opens_for_its_purpose_only() {
        let k = PageTokens::generate();
        let t = k.seal_str("ListStreams", "camera-1");
        assert!(
            t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
        );
        assert_eq!(
            k.open_str("ListStreams", &t, 512).as_deref(),
            Some("camera-1")
        );
        assert_eq!(k.open_str("ListFragments", &t, 512), None);
        assert_eq!(
            PageTokens::generate().open_str("ListStreams", &t, 512),
            None
        );
        assert_eq!(k.open_str("ListStreams", &t, t.len() - 1), None);
    }

    #[test]
    fn forged_and_altered_tokens_are_refused() {
        let k = PageTokens::generate();
        // What the old tokens were: the base64 of a name.
        assert_eq!(k.open("ListStreams", &BASE64.encode("camera-1"), 512), None);
        for bad in ["", "=", "AAAA", "not base64!", &"A".repeat(800)] {
            assert_eq!(k.open("ListStreams", bad, 4096), None, "{bad}");
        }
        let t = k.seal("ListStreams", b"camera-1");
        let mut raw = BASE64.decode(&t).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            assert_eq!(k.open("ListStreams", &BASE64.encode(&raw), 512), None);
            raw[i] ^= 1;
        }
        assert_eq!(
            k.open("ListStreams", &BASE64.encode(&raw), 512).unwrap(),
            b"camera-1"
        );
    }
}
