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
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account_id: DEFAULT_ACCOUNT_ID.into(),
            public_url: None,
            tls: false,
            max_json_body: 1 << 20,
        }
    }
}

impl ApiConfig {
    /// The URL clients reach this server at: the configured public URL, or the scheme and
    /// `Host` of the request (`headers`, else the request line's authority).
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
        format!("{scheme}://{host}")
    }
}
