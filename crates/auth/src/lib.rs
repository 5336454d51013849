//! Vigil's authentication and authorisation: AWS Signature Version 4 verification and access
//! keys with policies.
//!
//! # Authentication: [`Verifier`]
//!
//! Sans-IO SigV4 (`AWS4-HMAC-SHA256`) verification, header form (`Authorization`) and presigned
//! form (`X-Amz-*` query parameters). The API layer describes each request as it arrived
//! ([`Request`]: method, raw path, raw query, headers as bytes) and calls:
//!
//! ```
//! # use vigil_auth::*;
//! # fn handle(verifier: &Verifier, keys: &KeyStore, req: &Request<'_>, now_ms: u64, body: &[u8])
//! # -> Result<(), AuthError> {
//! // Before reading the body: everything but the signature over the payload.
//! let pending = verifier.begin(req, now_ms, keys)?;
//! // `/putMedia`: at once, and never hash the stream.
//! // let verified = pending.finish(Payload::Streaming)?;
//! // JSON calls: after reading the (bounded) body.
//! let verified = pending.finish(Payload::Body(body))?;
//! # let _ = verified; Ok(()) }
//! ```
//!
//! Every failure is an [`AuthError`] whose variant names the AWS error the SDKs expect, with
//! [`AuthError::aws_code`], [`AuthError::http_status`] and an AWS-like message. The rules
//! (which headers, which payload hash, clock skew, session tokens) are in [`sigv4`]'s docs;
//! canonicalisation of the path and query in [`encode`]'s.
//!
//! Verification is written by hand rather than with `aws-sigv4`: that crate is a signer, which
//! picks and normalises the headers of a request it is about to send (it drops `user-agent`
//! and `transfer-encoding`, takes `host` with its port from the URI), whereas a verifier must
//! rebuild the canonical request from exactly the header list and bytes a client sent, and
//! needs one error per AWS error. The tests sign with `aws-sigv4` and verify here.
//!
//! # Access keys and authorisation: [`KeyStore`]
//!
//! The root key and scoped keys (a name and a [`Policy`]: operation and stream-name glob
//! patterns), persisted in `DATA_DIR/auth/keys.json` and shared by the server and the
//! `vigil keys …` commands: a key created or revoked by one process is seen by the other's next
//! lookup ([`keys`]'s docs). A [`Verified`] request carries its [`Principal`];
//! [`Principal::authorize`] then allows or denies the operation on a stream.
//!
//! # What this crate is not
//!
//! It knows nothing of HTTP frameworks (headers come as byte pairs), storage engines or AWS
//! JSON shapes. It never prints or logs: what the server should log (a generated root key, a
//! reload error) is returned.

pub mod encode;
mod error;
pub mod fuzzing;
pub mod keys;
mod parse;
pub mod policy;
pub mod sign;
pub mod sigv4;
pub mod time;

pub use error::{AuthError, Malformed, ScopeError, UnrecognizedReason};
pub use keys::{CreatedKey, KeyInfo, KeyStore, KeyStoreError, NewKey, RootOverride, RootStatus};
pub use policy::{AccessDenied, Policy, PolicyError, Principal, PrincipalKind};
pub use sigv4::{
    Credential, CredentialLookup, Limits, Payload, PayloadHash, Pending, Request, SecretKey,
    Verified, Verifier, VerifierConfig,
};
