//! The settings every API reads.

/// The account id ARNs carry unless configured otherwise.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// Settings shared by every API on the listener.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The region the server answers for (`us-east-1`); signatures must be scoped to it.
    pub region: String,
    /// The account id in ARNs (12 digits).
    pub account_id: String,
    /// The URL clients reach this server at (`https://vigil.example.com:4567`, no trailing
    /// slash): what GetDataEndpoint returns. `None`: derived from each request's `Host` and
    /// whether the server speaks TLS.
    pub public_url: Option<String>,
    /// Whether the listener speaks TLS (for URLs derived from `Host`).
    pub tls: bool,
    /// Largest JSON request body accepted, in bytes (services with larger inputs, such as
    /// Rekognition's images, set their own).
    pub max_json_body: usize,
    /// The key of paging tokens ([`crate::token`]), random per process.
    pub tokens: std::sync::Arc<crate::PageTokens>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account_id: DEFAULT_ACCOUNT_ID.into(),
            public_url: None,
            tls: false,
            max_json_body: 1 << 20,
            tokens: std::sync::Arc::new(crate::PageTokens::generate()),
        }
    }
}

impl ApiConfig {
    /// The URL clients reach this server at: the configured public URL, or the scheme and
    /// `Host` of the request (`headers`, else the request line's authority). A `Host` without
    /// a port gets the port the request arrived on ([`LocalAddr`]), unless that is the
    /// scheme's default: the KVS producer SDK cuts the port off the `Host` it sends (it
    /// assumes 443), and the data endpoint must still reach this listener.
    pub fn endpoint(&self, parts: &axum::http::request::Parts) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.tls { "https" } else { "http" };
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| "localhost".into());
        let default_port = if self.tls { 443 } else { 80 };
        match parts.extensions.get::<LocalAddr>() {
            Some(LocalAddr(local)) if !has_port(&host) && local.port() != default_port => {
                format!("{scheme}://{host}:{}", local.port())
            }
            _ => format!("{scheme}://{host}"),
        }
    }
}

/// The address a request arrived on (the listener's), put in each request's extensions by
/// the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub std::net::SocketAddr);

/// The client's address (the TCP peer), put in each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Whether a `Host` value names a port: `host:port`, `[v6]:port`.
fn has_port(host: &str) -> bool {
    match host.rfind(']') {
        Some(close) => host
            .get(close + 1..)
            .is_some_and(|rest| rest.starts_with(':')),
        None => host.contains(':'),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn endpoint(cfg: &ApiConfig, host: &str, local: Option<&str>) -> String {
        let mut req = axum::http::Request::builder()
            .uri("/getDataEndpoint")
            .header("host", host)
            .body(())
            .unwrap();
        if let Some(a) = local {
            req.extensions_mut().insert(LocalAddr(a.parse().unwrap()));
        }
        cfg.endpoint(&req.into_parts().0)
    }

    #[test]
    fn a_host_without_its_port_gets_the_listeners() {
        let plain = ApiConfig::default();
        let tls = ApiConfig {
            tls: true,
            ..ApiConfig::default()
        };
        // What the C producer SDK sends to a server on port 4700.
        assert_eq!(
            endpoint(&tls, "127.0.0.1", Some("0.0.0.0:4700")),
            "https://127.0.0.1:4700"
        );
        assert_eq!(
            endpoint(&tls, "127.0.0.1:4700", Some("0.0.0.0:4700")),
            "https://127.0.0.1:4700"
        );
        assert_eq!(
            endpoint(&tls, "vigil.lan", Some("0.0.0.0:443")),
            "https://vigil.lan"
        );
        assert_eq!(
            endpoint(&plain, "vigil.lan", Some("[::]:80")),
            "http://vigil.lan"
        );
        assert_eq!(
            endpoint(&plain, "[::1]", Some("[::]:4567")),
            "http://[::1]:4567"
        );
        assert_eq!(
            endpoint(&plain, "[::1]:9", Some("[::]:4567")),
            "http://[::1]:9"
        );
        assert_eq!(endpoint(&plain, "vigil.lan", None), "http://vigil.lan");
        let public = ApiConfig {
            public_url: Some("https://vigil.example.com/".into()),
            ..ApiConfig::default()
        };
        assert_eq!(
            endpoint(&public, "127.0.0.1", Some("0.0.0.0:4700")),
            "https://vigil.example.com"
        );
    }
}
