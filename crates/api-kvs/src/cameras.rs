//! Vigil's own operations, not part of KVS: the RTSP cameras the server records
//! (`ListCameras`, `PutCamera`, `DeleteCamera`, at `POST /vigil/...`). They are routed,
//! authenticated (SigV4) and authorised (key policies name them like KVS operations, with the
//! camera's stream as the resource) like every other operation; the cameras themselves are
//! kept by the binary, behind [`CameraService`].
//!
//! Wire shapes (JSON, AWS style):
//!
//! - `ListCameras` `{}` → `{"Cameras": [CAMERA...]}`: each camera as the service describes it
//!   (`Name`, `Stream`, `Url` with its password hidden, `Status`, ...), only those whose
//!   stream the caller may use.
//! - `PutCamera` `{"Name", "Url", "Stream"?, "Transport"?, "CreateStream"?,
//!   "RetentionInHours"?}` → `{}`: adds a camera, or replaces one added by this API.
//! - `DeleteCamera` `{"Name"}` → `{}`.

use std::future::Future;
use std::pin::Pin;

use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::service::Call;
use vigil_api_kvs_common::json as json_response;
use vigil_api_kvs_common::{KvsError, KvsResult};

/// What can go wrong with a camera operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CameraError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

impl From<CameraError> for KvsError {
    fn from(e: CameraError) -> Self {
        match e {
            CameraError::NotFound(m) => KvsError::ResourceNotFoundException(m),
            CameraError::InUse(m) => KvsError::ResourceInUseException(m),
            CameraError::Invalid(m) => KvsError::InvalidArgumentException(m),
            CameraError::Internal(m) => KvsError::InternalFailure(m),
        }
    }
}

/// A boxed future of a camera operation.
pub type CameraFuture<T> = Pin<Box<dyn Future<Output = Result<T, CameraError>> + Send>>;

/// The server's cameras, as the binary keeps them.
pub trait CameraService: Send + Sync + std::fmt::Debug {
    /// Every camera, as `ListCameras` shows it: (its stream, its description).
    fn list(&self) -> Vec<(String, Value)>;
    /// The stream of the camera `name`, if there is one.
    fn stream_of(&self, name: &str) -> Option<String>;
    /// Adds (or replaces) a camera from `PutCamera`'s input.
    fn put(&self, input: PutCameraInput) -> CameraFuture<()>;
    /// Removes a camera added by `PutCamera`.
    fn delete(&self, name: String) -> CameraFuture<()>;
}

/// `PutCamera`'s input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutCameraInput {
    pub name: String,
    pub url: String,
    pub stream: Option<String>,
    pub transport: Option<String>,
    pub create_stream: Option<bool>,
    pub retention_in_hours: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteCameraInput {
    name: String,
}

fn service(call: &Call) -> KvsResult<std::sync::Arc<dyn CameraService>> {
    call.state
        .cameras
        .get()
        .and_then(std::sync::Weak::upgrade)
        .ok_or_else(|| KvsError::NotImplemented("This server has no camera manager.".to_owned()))
}

/// `ListCameras`.
pub fn list_cameras(call: Call) -> KvsResult<Response> {
    call.authorize(None)?;
    let cameras: Vec<Value> = service(&call)?
        .list()
        .into_iter()
        .filter(|(stream, _)| call.authorize(Some(stream)).is_ok())
        .map(|(_, v)| v)
        .collect();
    Ok(json_response(&json!({ "Cameras": cameras })))
}

/// `PutCamera`.
pub async fn put_camera(call: Call) -> KvsResult<Response> {
    let input: PutCameraInput = call.input()?;
    let stream = input.stream.clone().unwrap_or_else(|| input.name.clone());
    call.authorize(Some(&stream))?;
    service(&call)?.put(input).await?;
    Ok(json_response(&json!({})))
}

/// `DeleteCamera`.
pub async fn delete_camera(call: Call) -> KvsResult<Response> {
    let input: DeleteCameraInput = call.input()?;
    let svc = service(&call)?;
    let Some(stream) = svc.stream_of(&input.name) else {
        call.authorize(None)?;
        return Err(KvsError::ResourceNotFoundException(format!(
            "There is no camera named {}.",
            input.name
        )));
    };
    call.authorize(Some(&stream))?;
    svc.delete(input.name).await?;
    Ok(json_response(&json!({})))
}
