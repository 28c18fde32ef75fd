//! Issues REST API key pairs: a labelled Secret in the operator's namespace that names a user
//! gets a generated access key id and secret access key (see `crate::lifecycle::api_keys`).
//! The secret is written into the Secret only; it is never logged, published as an Event or
//! returned. Also deletes sign-in sessions once their credentials expired, so expired secret
//! material does not linger.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::FIELD_MANAGER;
use crate::lifecycle::api_keys::{
    API_KEY_LABEL, USER_ANNOTATION, generate, needs_issuing, session_expiry,
};

pub const CONTROLLER: &str = "api-key";
/// Retry delay after a failed write (the Secret changed meanwhile, or the API server failed).
const RETRY: Duration = Duration::from_secs(5);

/// Issues key pairs into labelled Secrets of `namespace` until `shutdown` resolves.
pub async fn run(
    client: Client,
    namespace: &str,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let selected = watcher::Config::default().labels(&format!("{API_KEY_LABEL}=true"));
    Controller::new(api.clone(), selected)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(api))
        .for_each(|_| std::future::ready(()))
        .await;
}

async fn reconcile(secret: Arc<Secret>, api: Arc<Api<Secret>>) -> Result<Action, kube::Error> {
    if let Some(expiry) = session_expiry(&secret) {
        return remove_when_expired(&secret, expiry, &api).await;
    }
    if !needs_issuing(&secret) {
        return Ok(Action::await_change());
    }
    let data = generate(&mut rand::rng());
    // Guarded by the resourceVersion read: a pair written meanwhile is never replaced.
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": secret.resource_version()},
        "data": data,
    });
    api.patch(
        &secret.name_any(),
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        },
        &Patch::Merge(&patch),
    )
    .await?;
    tracing::info!(
        secret = %secret.name_any(),
        user = secret.annotations().get(USER_ANNOTATION).map(String::as_str).unwrap_or_default(),
        "REST API key pair issued"
    );
    Ok(Action::await_change())
}

/// Deletes a session whose credentials expired (this Secret, not a newer one of the same
/// name); else looks again when they expire.
async fn remove_when_expired(
    secret: &Secret,
    expiry: Timestamp,
    api: &Api<Secret>,
) -> Result<Action, kube::Error> {
    let left = expiry.duration_since(Timestamp::now());
    if left.is_positive() {
        return Ok(Action::requeue(left.unsigned_abs()));
    }
    let this_one = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&secret.name_any(), &this_one).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
        Err(error) => return Err(error),
    }
    tracing::info!(
        secret = %secret.name_any(),
        user = secret.annotations().get(USER_ANNOTATION).map(String::as_str).unwrap_or_default(),
        "REST API session expired; its credentials Secret was deleted"
    );
    Ok(Action::await_change())
}

fn error_policy(secret: Arc<Secret>, error: &kube::Error, _: Arc<Api<Secret>>) -> Action {
    tracing::warn!(secret = %secret.name_any(), %error, "REST API key pair not issued; retrying");
    Action::requeue(RETRY)
}
