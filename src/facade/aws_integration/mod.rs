//! The AWS-integration API (`/api/npm.aws_config/1.0/...`): sync all accounts, switch sync on
//! or off, register accounts by static key pair (`auth_codes`) and report the sync state.
//!
//! Authorization is Kubernetes RBAC on `accounts.dce.dev`: `GET` needs `list`, `PUT
//! /auth_codes` needs `create` (new accounts) and/or `update` (existing ones), `DELETE
//! /auth_codes` needs `delete`, and `POST /sync` and `PUT /sync/status` need the custom verb
//! `sync`. The handlers write intent only: the sync setting ConfigMap, Secrets, Accounts and
//! annotations; the controllers act on them.

pub mod error;
pub mod input;
mod keys;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get, post, put};
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::facade::{Access, Credentials, FacadeState, User};
use crate::lifecycle::account::SYNC_REQUEST_ANNOTATION;
use crate::lifecycle::credentials::{MANAGED_LABEL, MANAGED_VALUE};
use crate::lifecycle::sync::{
    self, AccountSync, CREDENTIALS_REFRESH_ANNOTATION, SETTING_CONFIG_MAP, SETTING_KEY, SyncSetting,
};
use crate::resources::{Account, Lease, LeasePhase};

pub use error::ApiError;

/// Where the API lives.
pub const PREFIX: &str = "/api/npm.aws_config/1.0";
/// The OpenAPI 3 document of the API, served at `/openapi/aws-integration.yaml`.
pub const OPENAPI: &str = include_str!("../openapi/aws-integration.yaml");
/// Field manager of the facade's writes.
const FIELD_MANAGER: &str = "dce-operator-facade";
/// Annotation writes `POST /sync` makes at once.
const SYNC_WRITES_IN_FLIGHT: usize = 16;

/// The API's routes (full paths, to be merged at the root) and its OpenAPI document. A wrong
/// method on a known path is a 405 and an unknown path under [`PREFIX`] a 404, both in the
/// API's error format.
pub fn routes() -> Router<FacadeState> {
    let path = |p: &str| format!("{PREFIX}{p}");
    Router::new()
        .route(&path("/sync"), post(sync_all).fallback(invalid_method))
        .route(
            &path("/sync/status"),
            put(set_sync_status).fallback(invalid_method),
        )
        .route(
            &path("/auth_codes"),
            get(list_auth_codes)
                .put(put_auth_codes)
                .delete(delete_auth_codes)
                .fallback(invalid_method),
        )
        .route(&path("/status"), get(status).fallback(invalid_method))
        .route(&path("/{*unknown}"), any(unknown_path))
        .route(
            "/openapi/aws-integration.yaml",
            get(|| async { ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI) }),
        )
}

async fn invalid_method(method: Method) -> ApiError {
    ApiError::invalid_method(method.as_str())
}

async fn unknown_path() -> ApiError {
    ApiError::not_found("no such resource in the AWS-integration API")
}

/// Authenticates the caller and checks each verb on `accounts.dce.dev`.
async fn authorize(
    state: &FacadeState,
    headers: &HeaderMap,
    verbs: &[&'static str],
) -> Result<User, ApiError> {
    let user = state
        .auth
        .authenticate(&Credentials::bearer(headers))
        .await?;
    check_verbs(state, &user, verbs).await?;
    Ok(user)
}

async fn check_verbs(
    state: &FacadeState,
    user: &User,
    verbs: &[&'static str],
) -> Result<(), ApiError> {
    for verb in verbs {
        if !state
            .auth
            .allowed(user, &Access::new(verb, "accounts"))
            .await?
        {
            return Err(ApiError::forbidden(format!(
                "user {:?} may not {verb} accounts.dce.dev",
                user.username
            )));
        }
    }
    Ok(())
}

/// The request body, or 400 when it cannot be read (e.g. over the size limit).
fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        ApiError::invalid_input(format!(
            "the body could not be read: {}",
            rejection.body_text()
        ))
    })
}

/// `POST /sync`: asks for every account to be re-validated and every active lease's
/// credentials to be refreshed now. Refused while sync is disabled.
async fn sync_all(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers, &["sync"]).await?;
    input::require_empty(&read_body(body)?)?;
    if read_sync_setting(&state).await? == SyncSetting::Disabled {
        return Err(ApiError::invalid_input(
            "sync is disabled: enable it with PUT /sync/status before requesting a sync",
        ));
    }
    // A fresh value each time: the controllers act on any value they have not seen yet.
    let request = Timestamp::now().to_string();
    let accounts = state
        .accounts
        .store()
        .state()
        .into_iter()
        .map(|a| SyncTarget::Account(a.name_any()));
    let leases = state
        .leases
        .store()
        .state()
        .into_iter()
        .filter(|l| l.phase() == Some(LeasePhase::Active))
        .map(|l| SyncTarget::Lease {
            namespace: l.namespace().unwrap_or_default(),
            name: l.name_any(),
        });
    let targets: Vec<SyncTarget> = accounts.chain(leases).collect();
    futures::stream::iter(targets)
        .map(|target| request_sync(state.client.clone(), target, request.clone()))
        .buffer_unordered(SYNC_WRITES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What `POST /sync` annotates: every Account, and every Active Lease.
enum SyncTarget {
    Account(String),
    Lease { namespace: String, name: String },
}

async fn request_sync(
    client: kube::Client,
    target: SyncTarget,
    request: String,
) -> Result<(), ApiError> {
    match target {
        SyncTarget::Account(name) => {
            annotate(
                Api::<Account>::all(client),
                &name,
                SYNC_REQUEST_ANNOTATION,
                &request,
            )
            .await
        }
        SyncTarget::Lease { namespace, name } => {
            let api = Api::<Lease>::namespaced(client, &namespace);
            annotate(api, &name, CREDENTIALS_REFRESH_ANNOTATION, &request).await
        }
    }
}

/// Sets one annotation by merge patch; an object deleted meanwhile needs no sync.
async fn annotate<K>(api: Api<K>, name: &str, key: &str, value: &str) -> Result<(), ApiError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({ "metadata": { "annotations": { key: value } } });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(ApiError::kube(
            &format!("requesting a sync of {name}"),
            &error,
        )),
    }
}

/// `PUT /sync/status`: persists the cluster-wide setting in the sync ConfigMap.
async fn set_sync_status(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers, &["sync"]).await?;
    let setting = input::sync_status(&headers, &read_body(body)?)?;
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(SETTING_CONFIG_MAP.to_string()),
            namespace: Some(state.settings.operator_namespace.clone()),
            labels: Some([(MANAGED_LABEL.to_string(), MANAGED_VALUE.to_string())].into()),
            ..ObjectMeta::default()
        },
        data: Some([(SETTING_KEY.to_string(), setting.as_str().to_string())].into()),
        ..ConfigMap::default()
    };
    setting_api(&state)
        .patch(
            SETTING_CONFIG_MAP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&config_map),
        )
        .await
        .map_err(|e| ApiError::kube("saving the sync setting", &e))?;
    tracing::info!(setting = setting.as_str(), "sync setting changed");
    Ok(StatusCode::NO_CONTENT)
}

fn setting_api(state: &FacadeState) -> Api<ConfigMap> {
    Api::namespaced(state.client.clone(), &state.settings.operator_namespace)
}

/// The setting as stored now (read live, so a `PUT /sync/status` shows at once).
async fn read_sync_setting(state: &FacadeState) -> Result<SyncSetting, ApiError> {
    let stored = setting_api(state)
        .get_opt(SETTING_CONFIG_MAP)
        .await
        .map_err(|e| ApiError::kube("reading the sync setting", &e))?;
    Ok(SyncSetting::from_config_data(
        stored.as_ref().and_then(|cm| cm.data.as_ref()),
    ))
}

/// `GET /status`: the aggregate sync state (rules in [`crate::lifecycle::sync`]).
async fn status(
    State(state): State<FacadeState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, &["list"]).await?;
    let setting = read_sync_setting(&state).await?;
    let accounts = state.accounts.store().state();
    let records: Vec<AccountSync<'_>> = accounts.iter().map(|a| AccountSync::of(a)).collect();
    let report = sync::aggregate(setting, &records);
    let epoch = |t: Option<Timestamp>| t.map_or(0, |t| t.as_second());
    Ok(Json(json!({
        "enabled": report.enabled,
        "state": report.state.as_str(),
        "last_sync_ts": epoch(report.last_sync),
        "last_success_ts": epoch(report.last_success),
        "error_id": report.error_id,
        "error_text": report.error_text,
    })))
}

/// `GET /auth_codes`: every account reached with a static key pair, with its access key.
async fn list_auth_codes(
    State(state): State<FacadeState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, &["list"]).await?;
    Ok(Json(Value::Array(keys::list(&state).await?)))
}

/// `PUT /auth_codes`: creates or updates accounts and their key pairs.
async fn put_auth_codes(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let user = state
        .auth
        .authenticate(&Credentials::bearer(&headers))
        .await?;
    let codes = input::auth_codes(&headers, &read_body(body)?)?;
    let plan = keys::plan(&state, codes).await?;
    check_verbs(&state, &user, &plan.verbs()).await?;
    keys::put(&state, plan).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /auth_codes`: deletes the accounts; every `acc_id` must exist (else 404 and nothing
/// is deleted).
async fn delete_auth_codes(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers, &["delete"]).await?;
    let ids = input::acc_ids(&headers, &read_body(body)?)?;
    keys::delete(&state, &ids).await?;
    Ok(StatusCode::NO_CONTENT)
}
