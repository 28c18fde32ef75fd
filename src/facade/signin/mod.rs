//! The sign-in page at `<base>/auth`, the page `dce auth` opens: the user signs in (a pasted
//! Kubernetes token, checked with TokenReview, or the cluster's OIDC provider) and gets the
//! token dce-cli asks for: temporary AWS credentials of the API caller role (see
//! [`sessions`]), which AWS's STS knows, so dce-cli's own credential check passes. The page
//! also lists the user's leases with a way into each one's AWS console.

mod cookies;
pub mod oidc;
mod page;
mod sessions;

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde::Deserialize;

use super::{Credentials, FacadeState};
use crate::lifecycle::api_keys::ApiKey;
use crate::resources::{Lease, LeasePhase};

/// What the sign-in page issues.
#[derive(Debug, Clone)]
pub struct SignInSettings {
    /// The role assumed for callers' credentials; `None`: sign-in issues none.
    pub caller_role_arn: Option<String>,
    /// How long those credentials last.
    pub session_seconds: i32,
    /// Sign-in through the cluster's OIDC provider, when configured.
    pub oidc: Option<Arc<oidc::Oidc>>,
}

impl Default for SignInSettings {
    /// No caller role, no OIDC; sessions of an hour, STS's default.
    fn default() -> Self {
        Self {
            caller_role_arn: None,
            session_seconds: 3600,
            oidc: None,
        }
    }
}

/// How long a browser may take at the provider before the sign-in must start again.
const OIDC_FLOW_SECONDS: i64 = 600;

/// The page's policy: nothing from elsewhere; forms post to the page itself, whose console
/// form is answered with a redirect to AWS's sign-in (`console_origin`), which browsers check
/// against `form-action` too.
fn content_security_policy(console_origin: &str) -> String {
    format!(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
         form-action 'self' {console_origin}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// The origin of AWS's console sign-in (the federation endpoint's).
fn console_origin(state: &FacadeState) -> String {
    url::Url::parse(&state.aws.settings().federation_endpoint)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_default()
}

pub fn routes() -> Router<FacadeState> {
    Router::new()
        .route("/auth", get(show))
        .route("/auth/token", post(sign_in_with_token))
        .route("/auth/sign-out", post(sign_out))
        .route("/auth/console", post(open_console))
        .route("/auth/oidc/start", get(oidc_start))
        .route("/auth/oidc/callback", get(oidc_callback))
        .route("/auth/page.css", get(stylesheet))
        .route("/auth/page.js", get(script))
}

/// A page response: never cached, never framed, nothing loaded from elsewhere.
fn html(
    state: &FacadeState,
    status: StatusCode,
    body: String,
    cookies: Vec<HeaderValue>,
) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(state, headers);
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

fn secure_headers(state: &FacadeState, headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(&console_origin(state))) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
}

/// A redirect after a form (303: the browser follows with GET), setting `cookies`.
fn see_other(state: &FacadeState, location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    secure_headers(state, headers);
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

fn page_path(state: &FacadeState) -> String {
    format!("{}/auth", state.settings.base_path)
}

fn secrets(state: &FacadeState) -> Api<Secret> {
    Api::namespaced(state.client.clone(), &state.settings.operator_namespace)
}

/// The request's CSRF token, or a new one with the cookie that sets it.
fn csrf_token(state: &FacadeState, headers: &HeaderMap) -> (String, Vec<HeaderValue>) {
    match cookies::read(headers, cookies::CSRF) {
        Some(token) => (token, Vec::new()),
        None => {
            let token = cookies::random_token();
            let cookie = cookies::set(cookies::CSRF, &token, &page_path(state), 24 * 3600);
            (token, vec![cookie])
        }
    }
}

/// The request's CSRF token (and the cookie that sets it, if new), or, when the form does not
/// repeat the token of its cookie (a forged or stale form), the page that refuses it.
fn checked_form(
    state: &FacadeState,
    headers: &HeaderMap,
    form_token: &str,
) -> Result<(String, Vec<HeaderValue>), Box<Response>> {
    let (csrf, set_csrf) = csrf_token(state, headers);
    let holds = cookies::read(headers, cookies::CSRF)
        .is_some_and(|token| !token.is_empty() && token == form_token);
    if holds {
        return Ok((csrf, set_csrf));
    }
    let notice = "The form had expired. Sign in again.";
    let page = refused(state, &csrf, StatusCode::FORBIDDEN, notice, set_csrf);
    Err(Box::new(page))
}

/// The session the browser is signed in to, if it still holds.
async fn current_session(
    state: &FacadeState,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<Option<ApiKey>, kube::Error> {
    let Some(value) = cookies::read(headers, cookies::SESSION) else {
        return Ok(None);
    };
    let Some((access_key_id, browser_secret)) = cookies::parse_session(&value) else {
        return Ok(None);
    };
    sessions::find(&secrets(state), access_key_id, browser_secret, now).await
}

fn signed_out_page(
    state: &FacadeState,
    status: StatusCode,
    csrf: &str,
    notice: Option<&str>,
    mut cookies: Vec<HeaderValue>,
) -> Response {
    let body = page::signed_out(&page::SignedOut {
        base: &state.settings.base_path,
        csrf,
        oidc_provider: state
            .settings
            .sign_in
            .oidc
            .as_deref()
            .map(oidc::Oidc::provider_name),
        notice,
    });
    if notice.is_some() {
        cookies.push(cookies::set(cookies::SESSION, "", &page_path(state), 0));
    }
    html(state, status, body, cookies)
}

/// The signed-out page saying why a sign-in was refused.
fn refused(
    state: &FacadeState,
    csrf: &str,
    status: StatusCode,
    notice: &str,
    cookies: Vec<HeaderValue>,
) -> Response {
    signed_out_page(state, status, csrf, Some(notice), cookies)
}

fn failure(state: &FacadeState, csrf: &str, what: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::warn!(%error, "sign-in page: {what}");
    signed_out_page(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        csrf,
        Some(&format!("{what}; try again in a moment.")),
        Vec::new(),
    )
}

/// `GET <base>/auth`: the token and leases when signed in, else the ways to sign in.
async fn show(State(state): State<FacadeState>, headers: HeaderMap) -> Response {
    let now = Timestamp::now();
    let (csrf, set_csrf) = csrf_token(&state, &headers);
    let session = match current_session(&state, &headers, now).await {
        Ok(session) => session,
        Err(error) => return failure(&state, &csrf, "Your session could not be read", &error),
    };
    let Some(key) = session else {
        let stale = cookies::read(&headers, cookies::SESSION).is_some();
        let notice = stale.then_some("Your sign-in expired or was revoked. Sign in again.");
        return signed_out_page(&state, StatusCode::OK, &csrf, notice, set_csrf);
    };
    let leases = lease_rows(&state, &key.user);
    let body = page::signed_in(
        &page::SignedIn {
            base: &state.settings.base_path,
            csrf: &csrf,
            user: &key.user,
            token: &sessions::dce_cli_token(&key),
            expires_at: key.expires_at.unwrap_or(now),
            leases: &leases,
        },
        now,
    );
    html(&state, StatusCode::OK, body, set_csrf)
}

/// The user's leases, newest first.
fn lease_rows(state: &FacadeState, user: &str) -> Vec<page::LeaseRow> {
    let mut leases: Vec<_> = state
        .leases
        .store()
        .state()
        .into_iter()
        .filter(|lease| lease.spec.principal_id == user)
        .collect();
    leases.sort_by_key(|lease| std::cmp::Reverse(lease.metadata.creation_timestamp.clone()));
    leases
        .iter()
        .map(|lease| lease_row(lease, state.settings.policy.max_budget))
        .collect()
}

fn lease_row(lease: &Lease, default_budget: f64) -> page::LeaseRow {
    let status = lease.status.as_ref();
    let currency = &lease.spec.budget_currency;
    let budget = status
        .and_then(|s| s.budget_amount)
        .or(lease.spec.budget_amount)
        .unwrap_or(default_budget);
    let spend = status
        .and_then(|s| s.usage.as_ref())
        .map_or(0.0, |u| u.total);
    page::LeaseRow {
        id: lease.metadata.uid.clone().unwrap_or_default(),
        status: lease
            .phase()
            .map(LeasePhase::as_str)
            .unwrap_or("Pending")
            .to_string(),
        account_id: status
            .and_then(|s| s.account_id.clone())
            .unwrap_or_default(),
        expires_on: status.and_then(|s| s.expires_on.as_ref()).map(|t| t.0),
        budget: format!("{budget:.2} {currency}"),
        spend: format!("{spend:.2} {currency}"),
        active: lease.phase() == Some(LeasePhase::Active)
            && lease.metadata.deletion_timestamp.is_none(),
    }
}

#[derive(Deserialize)]
struct TokenForm {
    csrf: String,
    token: String,
}

/// `POST <base>/auth/token`: signs in with a Kubernetes token (TokenReview decides who it is).
async fn sign_in_with_token(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let (csrf, set_csrf) = match checked_form(&state, &headers, &form.csrf) {
        Ok(checked) => checked,
        Err(refused) => return *refused,
    };
    let reviewed = match Credentials::token(&form.token) {
        Some(credentials) => state.auth.authenticate(&credentials).await,
        None => Err(super::AuthError::Invalid),
    };
    let user = match reviewed {
        Ok(user) => user,
        Err(super::AuthError::Unavailable(detail)) => {
            return failure(
                &state,
                &csrf,
                "The cluster could not check the token",
                &detail,
            );
        }
        Err(_) => {
            return signed_out_page(
                &state,
                StatusCode::UNAUTHORIZED,
                &csrf,
                Some("The cluster did not accept that token (invalid or expired)."),
                set_csrf,
            );
        }
    };
    start_session(&state, &csrf, &user).await
}

/// Where the provider sends the browser back: this page's callback, as the browser reached it.
fn oidc_redirect_uri(state: &FacadeState, headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("http") => "http",
        _ => "https",
    };
    Some(format!(
        "{scheme}://{host}{}/oidc/callback",
        page_path(state)
    ))
}

/// `GET <base>/auth/oidc/start`: sends the browser to the provider, remembering this sign-in.
async fn oidc_start(State(state): State<FacadeState>, headers: HeaderMap) -> Response {
    let (csrf, set_csrf) = csrf_token(&state, &headers);
    let (Some(provider), Some(redirect_uri)) = (
        state.settings.sign_in.oidc.clone(),
        oidc_redirect_uri(&state, &headers),
    ) else {
        let notice = "Sign-in through an identity provider is not set up here.";
        return signed_out_page(&state, StatusCode::NOT_FOUND, &csrf, Some(notice), set_csrf);
    };
    let flow = oidc::Flow::begin();
    match provider.authorization_url(&redirect_uri, &flow).await {
        Ok(url) => {
            let cookie = cookies::set(
                cookies::OIDC_FLOW,
                &flow.cookie_value(),
                &page_path(&state),
                OIDC_FLOW_SECONDS,
            );
            see_other(&state, url.as_str(), vec![cookie])
        }
        Err(error) => failure(
            &state,
            &csrf,
            "The identity provider could not be reached",
            &error,
        ),
    }
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET <base>/auth/oidc/callback`: the provider's answer. The code is redeemed for an ID
/// token, which TokenReview turns into the Kubernetes user.
async fn oidc_callback(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Response {
    let (csrf, mut set_cookies) = csrf_token(&state, &headers);
    set_cookies.push(cookies::set(cookies::OIDC_FLOW, "", &page_path(&state), 0));
    let flow = cookies::read(&headers, cookies::OIDC_FLOW).and_then(|v| oidc::Flow::parse(&v));
    let (Some(provider), Some(flow), Some(redirect_uri)) = (
        state.settings.sign_in.oidc.clone(),
        flow,
        oidc_redirect_uri(&state, &headers),
    ) else {
        return refused(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            "This sign-in was not started here, or took too long. Sign in again.",
            set_cookies,
        );
    };
    if callback.state.as_deref() != Some(flow.state.as_str()) {
        return refused(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            "The sign-in could not be verified. Sign in again.",
            set_cookies,
        );
    }
    if let Some(error) = callback.error {
        tracing::info!(%error, "the identity provider refused a sign-in");
        let notice = format!("The identity provider refused the sign-in ({error}).");
        return refused(
            &state,
            &csrf,
            StatusCode::UNAUTHORIZED,
            &notice,
            set_cookies,
        );
    }
    let Some(code) = callback.code else {
        return refused(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            "The identity provider sent no code. Sign in again.",
            set_cookies,
        );
    };
    let id_token = match provider.redeem(&code, &redirect_uri, &flow).await {
        Ok(token) => token,
        Err(error) => {
            return failure(
                &state,
                &csrf,
                "The identity provider did not complete the sign-in",
                &error,
            );
        }
    };
    let reviewed = match Credentials::token(&id_token) {
        Some(credentials) => state.auth.authenticate(&credentials).await,
        None => Err(super::AuthError::Invalid),
    };
    let user = match reviewed {
        Ok(user) => user,
        Err(super::AuthError::Unavailable(detail)) => {
            return failure(
                &state,
                &csrf,
                "The cluster could not check the sign-in",
                &detail,
            );
        }
        Err(_) => {
            let notice = "The cluster does not accept this identity provider's tokens.";
            return refused(&state, &csrf, StatusCode::UNAUTHORIZED, notice, set_cookies);
        }
    };
    if let Err(error) = oidc::answers(&id_token, &flow, provider.client_id()) {
        tracing::warn!(user = %user.username, %error, "an ID token that does not answer its sign-in was refused");
        return refused(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            "The sign-in could not be verified. Sign in again.",
            set_cookies,
        );
    }
    start_session(&state, &csrf, &user).await
}

/// Issues the user's credentials and signs the browser in to them.
async fn start_session(state: &FacadeState, csrf: &str, user: &super::User) -> Response {
    match sessions::issue(&state.aws, &secrets(state), &state.settings.sign_in, user).await {
        Ok(issued) => {
            tracing::info!(user = %user.username, access_key_id = %issued.credentials.access_key_id, "signed in through the sign-in page");
            let value =
                cookies::session_value(&issued.credentials.access_key_id, &issued.browser_secret);
            let cookie = cookies::set(
                cookies::SESSION,
                &value,
                &page_path(state),
                i64::from(state.settings.sign_in.session_seconds),
            );
            see_other(state, &page_path(state), vec![cookie])
        }
        Err(error) => failure(state, csrf, "Your credentials could not be issued", &error),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// `POST <base>/auth/sign-out`: revokes the session's credentials and forgets the cookie.
async fn sign_out(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (csrf, _) = match checked_form(&state, &headers, &form.csrf) {
        Ok(checked) => checked,
        Err(refused) => return *refused,
    };
    let session = cookies::read(&headers, cookies::SESSION);
    if let Some((access_key_id, _)) = session.as_deref().and_then(cookies::parse_session) {
        // Only the browser holding the session may end it.
        match current_session(&state, &headers, Timestamp::now()).await {
            Ok(Some(key)) => {
                if let Err(error) = sessions::revoke(&secrets(&state), &key.access_key_id).await {
                    return failure(&state, &csrf, "Your sign-in could not be revoked", &error);
                }
                tracing::info!(user = %key.user, %access_key_id, "signed out; credentials revoked");
            }
            Ok(None) => {}
            Err(error) => return failure(&state, &csrf, "Your session could not be read", &error),
        }
    }
    let clear = cookies::set(cookies::SESSION, "", &page_path(&state), 0);
    see_other(&state, &page_path(&state), vec![clear])
}

#[derive(Deserialize)]
struct ConsoleForm {
    csrf: String,
    lease: String,
}

/// `POST <base>/auth/console`: opens the AWS console in the account of one of the signed-in
/// user's Active leases (a redirect to AWS's sign-in with a fresh federation token).
async fn open_console(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    Form(form): Form<ConsoleForm>,
) -> Response {
    let (csrf, set_csrf) = match checked_form(&state, &headers, &form.csrf) {
        Ok(checked) => checked,
        Err(refused) => return *refused,
    };
    let key = match current_session(&state, &headers, Timestamp::now()).await {
        Ok(Some(key)) => key,
        Ok(None) => {
            let notice = "Your sign-in expired or was revoked. Sign in again.";
            return signed_out_page(
                &state,
                StatusCode::UNAUTHORIZED,
                &csrf,
                Some(notice),
                set_csrf,
            );
        }
        Err(error) => return failure(&state, &csrf, "Your session could not be read", &error),
    };
    let own_active = state
        .leases
        .get_by_uid(&form.lease)
        .filter(|lease| lease.spec.principal_id == key.user && lease_row(lease, 0.0).active);
    let Some(lease) = own_active else {
        return see_other(&state, &page_path(&state), Vec::new());
    };
    match crate::facade::dce::console_access(&state, &lease, &key.user).await {
        Ok((_, console_url)) => see_other(&state, &console_url, Vec::new()),
        Err(error) => failure(
            &state,
            &csrf,
            "The console could not be opened",
            &error.message,
        ),
    }
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", page::STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", page::SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    response
}
