//! The HTTP front: every AWS API on one listener.
//!
//! Each service crate implements [`Api`]: [`Api::claims`] looks at a request's head (method,
//! path, `X-Amz-Target`, the signature's credential scope) and says whether the request is
//! its own; [`Api::handle`] answers it, authentication, body, dispatch and errors in the
//! service's own protocol included. [`Front`] asks the APIs in the order they were added and
//! gives the request to the first that claims it, or to its fallback (the API that answers
//! "no such operation" in its own terms). Every response leaves with a fresh request id in
//! `x-amzn-RequestId` and `x-amz-request-id`.
//!
//! The front does not know any service: the binary builds it from the service crates
//! (`vigil-server`), which never import each other.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

/// The request id the front gave a request (in its extensions): what it stamps on the
/// response, for an API whose error bodies carry it too (the query protocol's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// A boxed, sendable future: what [`Api::handle`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One AWS API on the listener.
pub trait Api: Send + Sync + Debug + 'static {
    /// Whether `req` is for this API, from its head only (the body is not read yet).
    fn claims(&self, req: &Request) -> bool;

    /// Answers a request this API claimed (or any request, for the front's fallback).
    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Response>;
}

/// Where a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An API client, signed with SigV4.
    Api,
    /// The web console, on a signed-in session: the same handlers and policy; the live view
    /// asks for low-latency HLS.
    Console,
}

/// Every API of the server, routed by [`Api::claims`].
#[derive(Debug)]
pub struct Front {
    apis: Vec<Arc<dyn Api>>,
    fallback: Arc<dyn Api>,
}

impl Front {
    /// A front whose unclaimed requests go to `fallback`.
    pub fn new(fallback: Arc<dyn Api>) -> Self {
        Self {
            apis: Vec::new(),
            fallback,
        }
    }

    /// Adds an API; earlier ones are asked first.
    pub fn with(mut self, api: Arc<dyn Api>) -> Self {
        self.apis.push(api);
        self
    }

    /// Answers a request.
    pub async fn handle(&self, mut req: Request) -> Response {
        let request_id = crate::wire::random_uuid();
        req.extensions_mut().insert(RequestId(request_id.clone()));
        let api = self
            .apis
            .iter()
            .find(|a| a.claims(&req))
            .unwrap_or(&self.fallback)
            .clone();
        let mut resp = api.handle(req).await;
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-amzn-RequestId", v.clone());
            resp.headers_mut().insert("x-amz-request-id", v);
        }
        resp
    }
}

/// The front as an axum handler (the router's fallback).
pub async fn dispatch(State(front): State<Arc<Front>>, req: Request) -> Response {
    front.handle(req).await
}

/// The operation an AWS JSON request names: `X-Amz-Target`'s value after `prefix`
/// (`Kinesis_20131202.` → `PutRecord`), if the target has that prefix.
pub fn target<'a>(headers: &'a HeaderMap, prefix: &str) -> Option<&'a str> {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(prefix))
}

/// The service a request is signed for: the `SERVICE` of its SigV4 credential scope
/// (`AKID/DATE/REGION/SERVICE/aws4_request`), from the `Authorization` header or the
/// presigned `X-Amz-Credential` query parameter. Every signed request carries it, whatever its
/// protocol, so it routes the query protocol's `POST /` (whose operation, `Action=`, is in the
/// body) before the body is read. `None` for an unsigned or malformed request.
pub fn signing_service(req: &Request) -> Option<&str> {
    let scope = match req.headers().get(axum::http::header::AUTHORIZATION) {
        Some(v) => v
            .to_str()
            .ok()?
            .split([' ', ','])
            .find_map(|part| part.trim().strip_prefix("Credential="))?,
        None => req
            .uri()
            .query()?
            .split('&')
            .find_map(|kv| kv.strip_prefix("X-Amz-Credential="))?,
    };
    // `/` may arrive percent-encoded in a query.
    let mut parts = scope.split(['/']).flat_map(|p| p.split("%2F"));
    let _key = parts.next()?;
    let _date = parts.next()?;
    let _region = parts.next()?;
    let service = parts.next()?;
    (parts.next() == Some("aws4_request")).then_some(service)
}

/// Whether a request is an AWS JSON (or CBOR) call: `POST /` with an `X-Amz-Target` that
/// starts with `prefix`.
pub fn is_target(req: &Request, prefix: &str) -> bool {
    req.method() == axum::http::Method::POST
        && req.uri().path() == "/"
        && target(req.headers(), prefix).is_some()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    #[derive(Debug)]
    struct Fixed(&'static str, StatusCode);

    impl Api for Fixed {
        fn claims(&self, req: &Request) -> bool {
            is_target(req, self.0)
        }
        fn handle(self: Arc<Self>, _: Request) -> BoxFuture<Response> {
            Box::pin(async move { self.1.into_response() })
        }
    }

    fn post(target: Option<&str>) -> Request {
        let mut b = Request::builder().method("POST").uri("/");
        if let Some(t) = target {
            b = b.header("x-amz-target", t);
        }
        b.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn routes_to_the_first_claim_or_the_fallback() {
        let front = Front::new(Arc::new(Fixed("-", StatusCode::NOT_FOUND)))
            .with(Arc::new(Fixed("A.", StatusCode::OK)))
            .with(Arc::new(Fixed("B.", StatusCode::ACCEPTED)));
        assert_eq!(
            front.handle(post(Some("A.Op"))).await.status(),
            StatusCode::OK
        );
        let r = front.handle(post(Some("B.Op"))).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(r.headers().get("x-amzn-RequestId").unwrap().len(), 36);
        assert_eq!(
            front.handle(post(None)).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(target(post(Some("A.Op")).headers(), "A."), Some("Op"));
    }
}
