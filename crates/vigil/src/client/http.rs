//! One HTTP/1.1 exchange per connection, over TCP or TLS, with a body that may be streamed and
//! a response read as it arrives (PutMedia's acks come back while its body is still being
//! sent: hyper's HTTP/1 client reads and writes at once).
//!
//! A command-line client makes few calls, so there is no connection pool: each call opens a
//! connection, as the KVS producer SDK does for PutMedia and GetMedia.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

/// How long connecting (TCP and TLS) may take, as the KVS producer SDK's 5 s.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body: bytes, or a stream fed through a channel (end it by dropping the sender).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A streamed body and the sender that feeds it. Each `Bytes` sent becomes one HTTP chunk.
pub fn channel(depth: usize) -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(depth);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    (tx, StreamBody::new(stream).boxed())
}

/// A parsed endpoint: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `http://host[:port]` or `https://host[:port]` (a trailing `/` is allowed; a path
    /// is not).
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            bail!("endpoint {url:?} must start with http:// or https://");
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('?') {
            bail!("endpoint {url:?} must be a scheme, a host and an optional port, without a path");
        }
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 literal's colons are inside brackets.
            Some((h, p)) if !p.contains(']') => (
                h.to_owned(),
                p.parse::<u16>()
                    .with_context(|| format!("bad port in endpoint {url:?}"))?,
            ),
            _ => (rest.to_owned(), if tls { 443 } else { 80 }),
        };
        Ok(Endpoint { tls, host, port })
    }

    /// The `host` header value: the port only when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The TLS settings of a client: trusted roots.
#[derive(Debug, Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
}

impl Tls {
    /// The system's roots, plus the PEM certificates of `ca_bundle` when given (AWS's
    /// `--ca-bundle` / `AWS_CA_BUNDLE`, for a server with a private CA such as the one
    /// `vigil serve --tls-self-signed` makes).
    pub fn new(ca_bundle: Option<&std::path::Path>) -> anyhow::Result<Tls> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A malformed system certificate is skipped, as browsers do.
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_bundle {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the CA bundle {}", path.display()))?;
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.with_context(|| format!("bad PEM in {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("bad certificate in {}", path.display()))?;
                n += 1;
            }
            if n == 0 {
                bail!("the CA bundle {} holds no certificate", path.display());
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS setup")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
        })
    }
}

/// How a client reaches its endpoint.
#[derive(Clone)]
pub enum Transport {
    /// TCP, and TLS for `https://` endpoints.
    Network(Tls),
    /// The server's own router, in this process: each call is one HTTP/1.1 connection over an
    /// in-memory pipe, served by hyper exactly as a network connection is (same router, same
    /// authentication, same full-duplex PutMedia), without TCP, TLS or name resolution. The
    /// server's cameras upload this way.
    InProcess(axum::Router),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Network(tls) => f.debug_tuple("Network").field(tls).finish(),
            Transport::InProcess(_) => f.write_str("InProcess"),
        }
    }
}

/// Bytes buffered in each direction of an in-process connection.
const IN_PROCESS_BUFFER: usize = 256 << 10;

/// Sends `request` on a new connection to `endpoint`; returns the response head and a body
/// read as it arrives. The connection lives until the response body is read or dropped.
pub async fn send(
    endpoint: &Endpoint,
    transport: &Transport,
    request: Request<Body>,
) -> anyhow::Result<Response<Incoming>> {
    let tls = match transport {
        Transport::Network(tls) => tls,
        Transport::InProcess(app) => {
            let (client, server) = tokio::io::duplex(IN_PROCESS_BUFFER);
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(server), service);
                if let Err(e) = conn.await {
                    tracing::debug!("in-process connection ended: {e}");
                }
            });
            return exchange(TokioIo::new(client), request).await;
        }
    };
    let target = format!("{}:{}", endpoint.host, endpoint.port);
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&target))
        .await
        .map_err(|_| anyhow!("connecting to {target} timed out"))?
        .with_context(|| format!("cannot connect to {target}"))?;
    let _ = tcp.set_nodelay(true);
    if endpoint.tls {
        let name = ServerName::try_from(endpoint.host.trim_matches(['[', ']']).to_owned())
            .with_context(|| format!("{:?} is not a valid TLS server name", endpoint.host))?;
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TlsConnector::from(tls.config.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| anyhow!("TLS handshake with {target} timed out"))?
        .with_context(|| format!("TLS handshake with {target} failed"))?;
        exchange(TokioIo::new(stream), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

async fn exchange<T>(io: T, request: Request<Body>) -> anyhow::Result<Response<Incoming>>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .context("HTTP handshake")?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("connection ended: {e}");
        }
    });
    sender
        .send_request(request)
        .await
        .context("the request failed")
}

/// Reads a whole response body, refusing more than `limit` bytes.
pub async fn read_body(response: Response<Incoming>, limit: usize) -> anyhow::Result<Bytes> {
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("reading the response")?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                bail!("the response is larger than {limit} bytes");
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:4566/").unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port), (false, "127.0.0.1", 4566));
        assert_eq!(e.host_header(), "127.0.0.1:4566");
        let e = Endpoint::parse("https://kinesisvideo.us-east-1.amazonaws.com").unwrap();
        assert_eq!(e.port, 443);
        assert_eq!(e.host_header(), "kinesisvideo.us-east-1.amazonaws.com");
        let e = Endpoint::parse("http://[::1]:8080").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("[::1]", 8080));
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://x/path").is_err());
        assert!(Endpoint::parse("http://x:notaport").is_err());
    }
}
