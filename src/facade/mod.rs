//! The REST facade: the DCE API and the AWS-integration API as a thin layer over the custom
//! resources. Handlers read the operator's reflector caches and write Accounts and Leases;
//! every lifecycle decision stays with the controllers.

pub mod api_keys;
pub mod auth;
pub mod aws_integration;
pub mod dce;
pub mod server;
pub mod signin;
pub mod sigv4;
pub mod sorted;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::runtime::reflector::Store;
use tokio::time::Instant;

use crate::aws::Aws;
use crate::lifecycle::LeasePolicy;
use crate::metrics::Metrics;
use crate::resources::{Account, Lease};

pub use api_keys::ApiKeys;
pub use auth::{Access, AuthError, Authorizer, CheckedSignature, Credentials, User};
pub use sorted::{Listed, SortedCache, SortedCacheWriter};

/// Largest request body accepted; every documented body is far smaller.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the facade needs beyond the caches.
#[derive(Debug, Clone)]
pub struct FacadeSettings {
    /// Namespace of Leases created through the REST API.
    pub lease_namespace: String,
    /// Namespace the operator runs in (Secrets of static key pairs, persisted API state).
    pub operator_namespace: String,
    /// Lease limits and defaults, the same the controllers enforce.
    pub policy: LeasePolicy,
    /// Role lease holders get, when an Account names no principalRoleArn.
    pub principal_role_name: String,
    /// How long `POST /leases` waits for the controller to settle the new lease.
    pub lease_settle_timeout: Duration,
    /// How long any request may take before it is answered with a timeout (see
    /// [`request_deadline`]).
    pub request_deadline: Duration,
    /// Path both APIs and the sign-in page are served under (`""` or e.g. `/api`).
    pub base_path: String,
    /// What the sign-in page issues.
    pub sign_in: signin::SignInSettings,
}

/// The deadline of every REST request: the lease settle wait plus room for the Kubernetes calls
/// around it, each of which has a deadline of its own.
pub fn request_deadline(lease_settle_timeout: Duration) -> Duration {
    lease_settle_timeout + Duration::from_secs(30)
}

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct FacadeState {
    pub client: Client,
    pub accounts: SortedCache<Account>,
    pub leases: SortedCache<Lease>,
    /// The principals' usage stores, which outlive their leases.
    pub usage_stores: Store<ConfigMap>,
    pub auth: Authorizer,
    pub aws: Aws,
    pub settings: Arc<FacadeSettings>,
    pub metrics: Metrics,
}

/// Both APIs, with CORS, signature checks, the body size limit and per-route metrics.
pub fn router(state: FacadeState) -> Router {
    let metrics = state.metrics.clone();
    let auth = state.auth.clone();
    Router::new()
        .merge(dce::routes())
        .merge(aws_integration::routes())
        .merge(signin::routes())
        .layer(middleware::from_fn_with_state(auth, check_signature))
        .layer(middleware::from_fn_with_state(
            state.settings.request_deadline,
            within_deadline,
        ))
        .layer(middleware::from_fn(cors))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(metrics, record_metrics))
        .with_state(state)
}

/// Serves the facade under its base path until `shutdown` resolves; HTTPS when `tls` is given.
pub async fn serve(
    addr: SocketAddr,
    state: FacadeState,
    tls: Option<server::TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let base_path = state.settings.base_path.clone();
    let app = match base_path.as_str() {
        "" => router(state),
        base => Router::new().nest(base, router(state)),
    };
    let origin = server::Origin {
        https: tls.is_some(),
        base_path,
    };
    let app = app.layer(middleware::from_fn_with_state(origin, server::as_served));
    server::serve(addr, app, tls, shutdown).await
}

const ALLOWED_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";
/// DCE's list: what SigV4-signing clients (dce-cli) and bearer-token clients send.
const ALLOWED_HEADERS: &str =
    "Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token";

/// CORS as DCE does it: `OPTIONS` on every route answers 200 with `{}` without
/// authentication, and every response allows any origin (requests carry tokens or
/// signatures, not cookies).
async fn cors(request: Request, next: Next) -> Response {
    let known_route = request.extensions().get::<MatchedPath>().is_some();
    let mut response = if request.method() == Method::OPTIONS && known_route {
        let mut preflight = (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response();
        let headers = preflight.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        preflight
    } else {
        next.run(request).await
    };
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// Checks the signature of a SigV4-signed request (it covers the body, so the body is read
/// here, within the size limit) and leaves the outcome for the handler's [`Credentials`].
async fn check_signature(State(auth): State<Authorizer>, request: Request, next: Next) -> Response {
    let signed = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(sigv4::is_sigv4);
    if !signed || request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body over 64 KiB").into_response();
    };
    // Clients sign the path they sent, base path included; a nested router sees it stripped.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    let outcome = auth.authenticate_signed(
        &sigv4::SignedRequest {
            method: &parts.method,
            uri,
            headers: &parts.headers,
            body: &body,
        },
        jiff::Timestamp::now(),
    );
    if let Err(error) = &outcome {
        tracing::debug!(%error, "signed request refused");
    }
    parts.extensions.insert(CheckedSignature(outcome));
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// Counts and times each request under its route template.
async fn record_metrics(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_string();
    let response = next.run(request).await;
    let cause = response.extensions().get::<ErrorCause>().copied();
    metrics.http_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        cause.map_or("", ErrorCause::as_str),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Answers a request that has not completed within `deadline` (a hung Kubernetes API, say)
/// instead of leaving its caller waiting: as API Gateway answers DCE's clients (504), or with the
/// AWS-integration API's documented internal error.
async fn within_deadline(
    State(deadline): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let aws_integration = request.uri().path().starts_with(aws_integration::PREFIX);
    if let Ok(response) = tokio::time::timeout(deadline, next.run(request)).await {
        return response;
    }
    tracing::warn!(?deadline, "a REST request did not complete in time");
    if aws_integration {
        aws_integration::ApiError::internal(format!(
            "the request did not complete within {} s",
            deadline.as_secs()
        ))
        .into_response()
    } else {
        (
            StatusCode::GATEWAY_TIMEOUT,
            axum::Json(serde_json::json!({ "message": "Endpoint request timed out" })),
        )
            .into_response()
    }
}

/// Why an error response was given, where its status alone would mislead an alert: carried as a
/// response extension into the `cause` label of `dce_http_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCause {
    /// `POST /leases` found no free account: a 500 as in DCE, but the pool is exhausted, not the
    /// service broken.
    PoolExhausted,
}

impl ErrorCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PoolExhausted => "pool_exhausted",
        }
    }
}
