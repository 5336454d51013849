//! Request bodies, read whole with a size limit and a deadline.
//!
//! A JSON (or CBOR, or form) body is read only after the signature's head was checked
//! ([`crate::Authenticator::precheck`]), so an unauthenticated client cannot make the server
//! hold bodies; the limit and the deadline bound what an authenticated one can.

use std::time::Duration;

use axum::body::{Body, Bytes};

use crate::error::{CommonError, CommonResult};

/// How long a request body may take to arrive, by default.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a body of at most `limit` bytes within [`BODY_TIMEOUT`].
pub async fn read(body: Body, limit: usize) -> CommonResult<Bytes> {
    read_within(body, limit, BODY_TIMEOUT).await
}

/// Reads a body of at most `limit` bytes within `timeout`.
pub async fn read_within(body: Body, limit: usize, timeout: Duration) -> CommonResult<Bytes> {
    tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            CommonError::SerializationException(format!(
                "The request body did not arrive within {} s.",
                timeout.as_secs()
            ))
        })?
        .map_err(|e| {
            CommonError::SerializationException(format!(
                "The request body could not be read (at most {limit} bytes): {e}"
            ))
        })
}
