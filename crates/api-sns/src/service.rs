//! This crate's API on the front: the requests it claims, their pipeline, and the one dispatch
//! `match`.
//!
//! Claimed: every request signed for `sns` (the query protocol's `POST /`, whose `Action=` is
//! in the body, or a signed `GET /?Action=...`); the links SNS puts in its deliveries, which a
//! subscriber follows unsigned (`GET /?Action=ConfirmSubscription&TopicArn=..&Token=..`, the
//! token being the credential, and `GET /?Action=Unsubscribe&SubscriptionArn=..`, refused
//! unsigned for a subscription confirmed with `AuthenticateOnUnsubscribe`); and the signing
//! certificate (`GET /SimpleNotificationService-ID.pem`).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use vigil_api_common::error::{AwsError, render_query};
use vigil_api_common::front::{Api, BoxFuture, RequestId, signing_service};
use vigil_api_common::{ApiConfig, Authenticator, Payload, Principal, Service};
use vigil_topics::Topics;

use crate::error::{SnsError, SnsResult, from_engine};
use crate::query::{Form, XMLNS};
use crate::signing::LazySigner;
use crate::{publish, subs, topics};

/// The largest request body: a PublishBatch of 256 KiB, form-encoded (up to three bytes for
/// one), and its members' names.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What the SNS handlers share.
#[derive(Debug)]
pub struct SnsState {
    /// The topics.
    pub engine: Topics,
    /// The listener's settings.
    pub cfg: ApiConfig,
    /// Authentication.
    pub auth: Arc<dyn Authenticator>,
    /// The deliveries' signing key.
    pub signer: Arc<LazySigner>,
    /// Whether `email` and `email-json` subscriptions can be delivered (an SMTP relay is
    /// configured).
    pub email: bool,
}

impl SnsState {
    /// A topic's ARN.
    pub fn topic_arn(&self, topic: &str) -> String {
        format!(
            "arn:aws:sns:{}:{}:{topic}",
            self.cfg.region, self.cfg.account_id
        )
    }

    /// A subscription's ARN.
    pub fn subscription_arn(&self, topic: &str, id: &str) -> String {
        format!("{}:{id}", self.topic_arn(topic))
    }
}

/// The operations, by `Action`.
macro_rules! operations {
    ($($op:ident),* $(,)?) => {
        /// An SNS operation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Operation { $(
            #[allow(missing_docs)]
            $op,
        )* }

        impl Operation {
            /// Its `Action` name.
            pub fn name(self) -> &'static str {
                match self { $(Self::$op => stringify!($op),)* }
            }

            /// From an `Action`.
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $(stringify!($op) => Some(Self::$op),)* _ => None }
            }
        }
    };
}

operations!(
    CreateTopic,
    DeleteTopic,
    ListTopics,
    GetTopicAttributes,
    SetTopicAttributes,
    Subscribe,
    ConfirmSubscription,
    Unsubscribe,
    ListSubscriptions,
    ListSubscriptionsByTopic,
    GetSubscriptionAttributes,
    SetSubscriptionAttributes,
    Publish,
    PublishBatch,
    TagResource,
    UntagResource,
    ListTagsForResource,
    AddPermission,
    RemovePermission,
    ListDeadLetters,
    CheckIfPhoneNumberIsOptedOut,
    CreatePlatformApplication,
    CreatePlatformEndpoint,
    CreateSMSSandboxPhoneNumber,
    DeleteEndpoint,
    DeletePlatformApplication,
    DeleteSMSSandboxPhoneNumber,
    GetDataProtectionPolicy,
    GetEndpointAttributes,
    GetPlatformApplicationAttributes,
    GetSMSAttributes,
    GetSMSSandboxAccountStatus,
    ListEndpointsByPlatformApplication,
    ListOriginationNumbers,
    ListPhoneNumbersOptedOut,
    ListPlatformApplications,
    ListSMSSandboxPhoneNumbers,
    OptInPhoneNumber,
    PutDataProtectionPolicy,
    SetEndpointAttributes,
    SetPlatformApplicationAttributes,
    SetSMSAttributes,
    VerifySMSSandboxPhoneNumber,
);

impl Operation {
    /// The action key policies name (`sns:Publish`).
    pub fn action(self) -> String {
        format!("sns:{}", self.name())
    }
}

/// One SNS call.
#[derive(Debug)]
pub struct Call {
    /// The operation.
    pub op: Operation,
    /// Its parameters.
    pub form: Form,
    /// Who signed it (`None`: a subscriber following a link, unsigned).
    pub principal: Option<Principal>,
    /// The URL the caller reached the server at.
    pub base_url: String,
    /// The service's state.
    pub state: Arc<SnsState>,
}

impl Call {
    /// Checks that the caller may call this operation on topic `topic` (or at all).
    pub fn authorize(&self, topic: Option<&str>) -> SnsResult<()> {
        let Some(p) = &self.principal else {
            return Err(SnsError::AuthorizationErrorException(format!(
                "{} needs a signed request",
                self.op.name()
            )));
        };
        Ok(self
            .state
            .auth
            .authorize_action(p, &self.op.action(), topic)?)
    }

    /// A required parameter.
    pub fn required(&self, name: &str) -> SnsResult<&str> {
        self.form
            .get(name)
            .ok_or_else(|| crate::error::invalid(format!("{name} is required")))
    }

    /// The topic `TopicArn` (or `param`) names, the caller authorised for it.
    pub fn topic(&self, param: &str) -> SnsResult<String> {
        let arn = self.required(param)?;
        let name = crate::validate::topic_arn(
            arn,
            param,
            &self.state.cfg.region,
            &self.state.cfg.account_id,
        )?;
        self.authorize(Some(&name))?;
        Ok(name)
    }

    /// The engine's error in this API's terms.
    pub fn engine_error(&self, e: vigil_topics::Error) -> SnsError {
        from_engine(e)
    }

    /// The engine.
    pub fn engine(&self) -> &Topics {
        &self.state.engine
    }
}

/// SNS on the front.
#[derive(Debug, Clone)]
pub struct Sns(pub Arc<SnsState>);

/// An unsigned delivery link: no `Authorization` header and no presigned query (a presigned
/// `GET` is verified like any signed call).
fn is_link(req: &Request) -> bool {
    req.method() == Method::GET
        && req.uri().path() == "/"
        && req.headers().get(header::AUTHORIZATION).is_none()
        && req.uri().query().is_some_and(|q| {
            !q.split('&').any(|kv| kv.starts_with("X-Amz-Signature="))
                && q.split('&')
                    .any(|kv| kv == "Action=ConfirmSubscription" || kv == "Action=Unsubscribe")
        })
}

fn is_certificate(req: &Request) -> bool {
    req.method() == Method::GET
        && req
            .uri()
            .path()
            .strip_prefix("/SimpleNotificationService-")
            .is_some_and(|r| r.ends_with(".pem"))
}

/// An unsigned `/?Action=X` naming an SNS operation: claimed, so that it is refused in SNS's
/// terms (`MissingAuthenticationToken`) rather than as an unknown path.
fn names_an_operation(req: &Request) -> bool {
    req.uri().path() == "/"
        && req.uri().query().is_some_and(|q| {
            q.split('&').any(|kv| {
                kv.strip_prefix("Action=")
                    .is_some_and(|a| Operation::from_name(a).is_some())
            })
        })
}

impl Api for Sns {
    fn claims(&self, req: &Request) -> bool {
        signing_service(req) == Some("sns")
            || is_link(req)
            || is_certificate(req)
            || names_an_operation(req)
    }

    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<Response> {
        Box::pin(async move {
            let request_id = req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default();
            if is_certificate(&req) {
                return certificate(&self.0, req.uri().path());
            }
            match call(self.0.clone(), req, &request_id).await {
                Ok(xml) => {
                    let mut r = (StatusCode::OK, xml).into_response();
                    r.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
                    r
                }
                Err(e) => {
                    tracing::info!(error = e.aws_code(), "{}", e.message());
                    render_query(&e, XMLNS, &request_id)
                }
            }
        })
    }
}

fn certificate(state: &SnsState, path: &str) -> Response {
    let Some(signer) = state.signer.loaded().filter(|s| s.cert_path() == path) else {
        return (StatusCode::NOT_FOUND, "no such certificate").into_response();
    };
    let mut r = (StatusCode::OK, signer.cert_pem().to_owned()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-pem-file"),
    );
    r
}

fn query_error(e: crate::query::QueryError) -> SnsError {
    crate::error::invalid(e)
}

async fn call(state: Arc<SnsState>, req: Request, request_id: &str) -> SnsResult<String> {
    let link = is_link(&req);
    let (parts, body) = req.into_parts();
    let base_url = state.cfg.endpoint(&parts);
    let (form, principal) = if link {
        let form =
            Form::parse(parts.uri.query().unwrap_or_default().as_bytes()).map_err(query_error)?;
        (form, None)
    } else {
        state.auth.precheck(&parts, Service::Sns)?;
        let bytes = vigil_api_common::body::read(body, MAX_BODY_BYTES).await?;
        let principal = state
            .auth
            .authenticate(&parts, Payload::Body(&bytes), Service::Sns)?;
        let form = form_of(&parts, &bytes)?;
        (form, Some(principal))
    };
    let action = form.action().unwrap_or_default().to_owned();
    let op = Operation::from_name(&action).ok_or_else(|| {
        SnsError::InvalidAction(format!(
            "The action {action:?} is not valid for this web service."
        ))
    })?;
    vigil_api_common::metrics::global()
        .api_requests
        .inc(&[op.name()]);
    let call = Call {
        op,
        form,
        principal,
        base_url,
        state,
    };
    run(call, request_id).await
}

fn form_of(parts: &Parts, body: &[u8]) -> SnsResult<Form> {
    if parts.method == Method::GET {
        return Form::parse(parts.uri.query().unwrap_or_default().as_bytes()).map_err(query_error);
    }
    Form::parse(body).map_err(query_error)
}

/// Runs an authenticated call: the one dispatch `match`.
pub async fn run(call: Call, request_id: &str) -> SnsResult<String> {
    let rid = request_id.to_owned();
    match call.op {
        Operation::CreateTopic => blocking(call, rid, topics::create_topic).await,
        Operation::DeleteTopic => blocking(call, rid, topics::delete_topic).await,
        Operation::ListTopics => blocking(call, rid, topics::list_topics).await,
        Operation::GetTopicAttributes => blocking(call, rid, topics::get_topic_attributes).await,
        Operation::SetTopicAttributes => blocking(call, rid, topics::set_topic_attributes).await,
        Operation::TagResource => blocking(call, rid, topics::tag_resource).await,
        Operation::UntagResource => blocking(call, rid, topics::untag_resource).await,
        Operation::ListTagsForResource => blocking(call, rid, topics::list_tags_for_resource).await,
        Operation::AddPermission => blocking(call, rid, topics::add_permission).await,
        Operation::RemovePermission => blocking(call, rid, topics::remove_permission).await,
        Operation::Subscribe => blocking(call, rid, subs::subscribe).await,
        Operation::ConfirmSubscription => blocking(call, rid, subs::confirm_subscription).await,
        Operation::Unsubscribe => blocking(call, rid, subs::unsubscribe).await,
        Operation::ListSubscriptions => blocking(call, rid, subs::list_subscriptions).await,
        Operation::ListSubscriptionsByTopic => {
            blocking(call, rid, subs::list_subscriptions_by_topic).await
        }
        Operation::GetSubscriptionAttributes => {
            blocking(call, rid, subs::get_subscription_attributes).await
        }
        Operation::SetSubscriptionAttributes => {
            blocking(call, rid, subs::set_subscription_attributes).await
        }
        Operation::Publish => publish::publish(call, rid).await,
        Operation::PublishBatch => publish::publish_batch(call, rid).await,
        Operation::ListDeadLetters => blocking(call, rid, publish::list_dead_letters).await,
        // Mobile push, SMS and data protection are not here (docs/compatibility.md).
        _ => {
            call.authorize(None)?;
            Err(SnsError::InvalidAction(format!(
                "Vigil does not implement {} (mobile push, SMS and data protection policies; \
                 see docs/compatibility.md).",
                call.op.name()
            )))
        }
    }
}

/// Runs a handler that does blocking store I/O on the blocking pool.
async fn blocking(
    call: Call,
    request_id: String,
    handler: fn(&Call, &str) -> SnsResult<String>,
) -> SnsResult<String> {
    tokio::task::spawn_blocking(move || handler(&call, &request_id))
        .await
        .map_err(|e| SnsError::InternalErrorException(format!("the handler failed: {e}")))?
}
