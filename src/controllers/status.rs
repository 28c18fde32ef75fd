//! Status writes: server-side apply under the operator's field manager.

use kube::Api;
use kube::api::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::{Error, FIELD_MANAGER};
use crate::resources::{Account, AccountStatus, Lease, LeaseStatus, LeaseUsage};

/// Whether two statuses are the same once stored: timestamps are stored to the second, so
/// comparing in-memory values would see a change on every reconcile and write forever.
pub fn same_when_stored<T: serde::Serialize>(a: &T, b: &T) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Writes an Account's whole status. With `resource_version`, the write succeeds only if the
/// Account has not changed since it was read: this is what makes account assignment exactly-once.
pub async fn apply_account(
    api: &Api<Account>,
    name: &str,
    resource_version: Option<&str>,
    status: &AccountStatus,
) -> Result<Account, Error> {
    let mut metadata = json!({ "name": name });
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    tracing::debug!(account = name, "writing account status");
    let patch = json!({
        "apiVersion": "dce.dev/v1alpha1",
        "kind": "Account",
        "metadata": metadata,
        "status": status,
    });
    Ok(api
        .patch_status(name, &apply_params(), &Patch::Apply(patch))
        .await?)
}

/// Writes a Lease's whole status, guarded by the resourceVersion of `lease` (the copy it was
/// decided on): the usage loop writes the same status.
pub async fn apply_lease(
    api: &Api<Lease>,
    lease: &Lease,
    status: &LeaseStatus,
) -> Result<Lease, Error> {
    let name = lease.name_any();
    let name = name.as_str();
    tracing::debug!(
        lease = name,
        phase = status.lease_status.map(|p| p.as_str()),
        ready = crate::lifecycle::conditions::ready_reason(&status.conditions),
        "writing lease status"
    );
    let patch = json!({
        "apiVersion": "dce.dev/v1alpha1",
        "kind": "Lease",
        "metadata": { "name": name, "resourceVersion": lease.resource_version() },
        "status": status,
    });
    Ok(api
        .patch_status(name, &apply_params(), &Patch::Apply(patch))
        .await?)
}

/// Replaces a Lease's recorded usage, and nothing else of its status.
pub async fn replace_lease_usage(
    api: &Api<Lease>,
    name: &str,
    usage: &LeaseUsage,
) -> Result<Lease, Error> {
    tracing::debug!(lease = name, "writing lease usage");
    // JSON Patch `add` replaces the member whole, so fields the new usage no longer has go.
    let patch = json_patch::Patch(vec![json_patch::PatchOperation::Add(
        json_patch::AddOperation {
            path: json_patch::jsonptr::PointerBuf::parse("/status/usage")
                .map_err(|e| Error::Invalid(e.to_string()))?,
            value: serde_json::to_value(usage).map_err(|e| Error::Invalid(e.to_string()))?,
        },
    )]);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    Ok(api
        .patch_status(name, &params, &Patch::<()>::Json(patch))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::same_when_stored;
    use crate::resources::LeaseStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn sub_second_differences_are_not_changes() {
        let at = |s: &str| Some(Time(s.parse().unwrap()));
        let a = LeaseStatus {
            credentials_expire_at: at("2026-11-22T10:00:00.250Z"),
            ..LeaseStatus::default()
        };
        let b = LeaseStatus {
            credentials_expire_at: at("2026-11-22T10:00:00Z"),
            ..LeaseStatus::default()
        };
        let c = LeaseStatus {
            credentials_expire_at: at("2026-11-22T10:00:01Z"),
            ..LeaseStatus::default()
        };
        assert!(same_when_stored(&a, &b));
        assert!(!same_when_stored(&a, &c));
    }
}
