//! Vigil's client side: the AWS KVS API over HTTP with SigV4, for the client commands
//! (`vigil stream`, `put`, `get`, `clip`, `hls-url`, `images`).
//!
//! The same calls work against Vigil and against KVS: credentials, region and endpoint come
//! the AWS way ([`profile`]), media calls go to the endpoint `GetDataEndpoint` returns, and
//! errors are reported with their AWS names ([`CallError::Aws`]).

pub mod http;
pub mod profile;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use vigil_auth::sign::{SigningScope, UnsignedRequest, payload_sha256_hex, sign};

pub use http::{Body, Endpoint, Tls, Transport};

/// The signing name of every KVS API.
const SERVICE: &str = "kinesisvideo";
/// The most a JSON response may hold (GetImages pages carry base64 images).
const MAX_JSON_RESPONSE: usize = 256 << 20;
/// The user agent, so that server logs tell Vigil's client apart.
pub const USER_AGENT: &str = concat!("vigil/", env!("CARGO_PKG_VERSION"));

/// Where to send calls and how to sign them: the options every client command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The endpoint: Vigil's URL (`http://127.0.0.1:4566`), or KVS's by default.
    #[arg(long, value_name = "URL", global = true)]
    pub endpoint_url: Option<String>,
    /// The region to sign for [default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1].
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// A profile of ~/.aws/credentials and ~/.aws/config [default: AWS_PROFILE or default].
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// PEM certificates to trust besides the system's (a Vigil server's local CA).
    #[arg(long, value_name = "FILE", env = "AWS_CA_BUNDLE", global = true)]
    pub ca_bundle: Option<PathBuf>,
}

/// An error of one call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The service answered with an AWS error.
    #[error("{kind}: {message}")]
    Aws {
        status: StatusCode,
        kind: String,
        message: String,
    },
    /// The call did not get an answer (connection, TLS, a response that is not an AWS one).
    #[error(transparent)]
    Transport(#[from] anyhow::Error),
}

impl CallError {
    /// The AWS error name, for an AWS error.
    pub fn kind(&self) -> Option<&str> {
        match self {
            CallError::Aws { kind, .. } => Some(kind),
            CallError::Transport(_) => None,
        }
    }
}

/// A client of one endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    resolved: profile::Resolved,
    transport: Transport,
}

impl Client {
    /// A client configured from the command line, the environment and the AWS profile files.
    pub fn from_args(args: &ClientArgs) -> anyhow::Result<Client> {
        let overrides = profile::Overrides {
            endpoint_url: args.endpoint_url.clone(),
            region: args.region.clone(),
            profile: args.profile.clone(),
        };
        let resolved = profile::resolve(&overrides, &profile::ProcessEnv)?;
        let tls = Tls::new(args.ca_bundle.as_deref())?;
        Client::new(resolved, Transport::Network(tls))
    }

    /// A client of `resolved.endpoint_url`, reached through `transport`: the network, or (for
    /// the server's own cameras) the server's router in the same process.
    pub fn new(resolved: profile::Resolved, transport: Transport) -> anyhow::Result<Client> {
        let endpoint = Endpoint::parse(&resolved.endpoint_url)?;
        Ok(Client {
            endpoint,
            resolved,
            transport,
        })
    }

    /// The same client, calling `endpoint` (a data endpoint).
    pub fn with_endpoint(&self, url: &str) -> anyhow::Result<Client> {
        Ok(Client {
            endpoint: Endpoint::parse(url)
                .with_context(|| format!("the data endpoint {url:?} is not usable"))?,
            resolved: self.resolved.clone(),
            transport: self.transport.clone(),
        })
    }

    /// The client for a stream's media API (`PUT_MEDIA`, `GET_MEDIA`, `LIST_FRAGMENTS`,
    /// `GET_CLIP`, `GET_HLS_STREAMING_SESSION_URL`, ...), through `GetDataEndpoint`.
    pub async fn data_client(&self, stream: &str, api: &str) -> Result<Client, CallError> {
        let out = self
            .json(
                "/getDataEndpoint",
                &serde_json::json!({"StreamName": stream, "APIName": api}),
            )
            .await?;
        let url = out
            .get("DataEndpoint")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow::anyhow!("GetDataEndpoint returned no DataEndpoint"))?;
        Ok(self.with_endpoint(url)?)
    }

    /// Builds a signed request. `payload_hash` is the body's hex SHA-256 (or the empty
    /// string's, for a streamed body).
    pub fn signed_request(
        &self,
        path: &str,
        extra_headers: &[(&str, &str)],
        payload_hash: &str,
        body: Body,
    ) -> anyhow::Result<Request<Body>> {
        let host = self.endpoint.host_header();
        let mut headers: Vec<(&str, &str)> = vec![("host", &host), ("user-agent", USER_AGENT)];
        headers.extend_from_slice(extra_headers);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let added = sign(
            &self.resolved.credentials,
            &SigningScope {
                region: self.resolved.region.clone(),
                service: SERVICE.to_owned(),
            },
            &UnsignedRequest {
                method: "POST",
                path,
                query: "",
                headers: &headers,
                payload_sha256_hex: payload_hash,
            },
            now_ms,
        );
        let mut builder = Request::builder().method("POST").uri(path);
        for (name, value) in headers
            .iter()
            .copied()
            .chain(added.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        {
            builder = builder.header(name, value);
        }
        builder.body(body).context("building the request")
    }

    /// Sends a signed JSON call and returns the response, unread, if it succeeded (2xx).
    pub async fn call(&self, path: &str, input: &Value) -> Result<Response<Incoming>, CallError> {
        let body = serde_json::to_vec(input).context("encoding the request")?;
        let hash = payload_sha256_hex(&body);
        let request = self.signed_request(
            path,
            &[("content-type", "application/json")],
            &hash,
            http::full(body),
        )?;
        let response = http::send(&self.endpoint, &self.transport, request).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(error_of(response).await)
        }
    }

    /// A JSON call whose response is JSON.
    pub async fn json(&self, path: &str, input: &Value) -> Result<Value, CallError> {
        let response = self.call(path, input).await?;
        let bytes = http::read_body(response, MAX_JSON_RESPONSE).await?;
        if bytes.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        Ok(serde_json::from_slice(&bytes).context("the response is not JSON")?)
    }

    /// Sends a prepared request to this client's endpoint.
    pub async fn send(&self, request: Request<Body>) -> anyhow::Result<Response<Incoming>> {
        http::send(&self.endpoint, &self.transport, request).await
    }
}

/// A fragment as ListFragments lists it: its number and producer time (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub number: String,
    pub producer_s: f64,
}

impl Client {
    /// Every fragment of `stream` with a producer time in `[from_s, to_s]`, all pages
    /// (ListFragments, on the stream's `LIST_FRAGMENTS` data endpoint), in the service's order.
    pub async fn list_fragments(
        &self,
        stream: &str,
        from_s: f64,
        to_s: f64,
    ) -> Result<Vec<Listed>, CallError> {
        let client = self.data_client(stream, "LIST_FRAGMENTS").await?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let input = match &token {
                Some(t) => {
                    serde_json::json!({"StreamName": stream, "MaxResults": 1000, "NextToken": t})
                }
                // A selector is required without a token.
                None => serde_json::json!({
                    "StreamName": stream,
                    "MaxResults": 1000,
                    "FragmentSelector": {
                        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                        "TimestampRange": {"StartTimestamp": from_s, "EndTimestamp": to_s},
                    }
                }),
            };
            let page = client.json("/listFragments", &input).await?;
            for f in page
                .get("Fragments")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(n) = f.get("FragmentNumber").and_then(Value::as_str) {
                    out.push(Listed {
                        number: n.to_owned(),
                        producer_s: f
                            .get("ProducerTimestamp")
                            .and_then(Value::as_f64)
                            .unwrap_or(0.0),
                    });
                }
            }
            token = page
                .get("NextToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

/// The AWS error of a failed response: `x-amzn-ErrorType` or the body's `__type`/`code`, and
/// its `message`/`Message`.
pub async fn error_of(response: Response<Incoming>) -> CallError {
    let status = response.status();
    let header_kind = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_owned());
    let body = http::read_body(response, 1 << 20).await.unwrap_or_default();
    error_from_parts(status, header_kind, &body)
}

fn error_from_parts(status: StatusCode, header_kind: Option<String>, body: &Bytes) -> CallError {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| json.get(*n).and_then(Value::as_str))
            .map(str::to_owned)
    };
    let kind = header_kind
        .or_else(|| field(&["__type", "code", "Code"]))
        .map(|k| k.rsplit('#').next().unwrap_or(&k).to_owned());
    match kind {
        Some(kind) => CallError::Aws {
            status,
            kind,
            message: field(&["message", "Message"]).unwrap_or_default(),
        },
        None => CallError::Transport(anyhow::anyhow!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(body.get(..body.len().min(300)).unwrap_or_default())
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn aws_errors_by_header_or_body() {
        let e = error_from_parts(
            StatusCode::NOT_FOUND,
            Some("ResourceNotFoundException".into()),
            &Bytes::from_static(br#"{"Message":"no stream cam1"}"#),
        );
        assert_eq!(e.kind(), Some("ResourceNotFoundException"));
        assert_eq!(e.to_string(), "ResourceNotFoundException: no stream cam1");
        let e = error_from_parts(
            StatusCode::BAD_REQUEST,
            None,
            &Bytes::from_static(
                br#"{"__type":"com.amazonaws#InvalidArgumentException","message":"bad"}"#,
            ),
        );
        assert_eq!(e.kind(), Some("InvalidArgumentException"));
        let e = error_from_parts(
            StatusCode::BAD_GATEWAY,
            None,
            &Bytes::from_static(b"<html>"),
        );
        assert!(e.kind().is_none());
        assert!(e.to_string().contains("502"), "{e}");
    }
}
