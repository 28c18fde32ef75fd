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

/// Writes an Account's whole status as `status`, from `base`, the copy the new status was
/// decided on: a JSON Patch of exactly what differs, guarded by `base`'s resourceVersion, so
/// the write succeeds only if the Account has not changed since it was read. This is what makes
/// account assignment exactly-once.
///
/// A patch rather than server-side apply: apply removes a field only when no other field
/// manager owns it, so a holder written by anyone else (an edit by hand, an older release)
/// would survive a release.
pub async fn write_account(
    api: &Api<Account>,
    base: &Account,
    status: &AccountStatus,
) -> Result<Account, Error> {
    let name = base.name_any();
    let patch = account_status_patch(base, status)?;
    tracing::debug!(account = name, "writing account status");
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    Ok(api
        .patch_status(&name, &params, &Patch::<()>::Json(patch))
        .await?)
}

/// The JSON Patch from `base`'s status to `status`, carrying `base`'s resourceVersion (which
/// the API server checks against the stored one: 409 Conflict when it changed).
fn account_status_patch(
    base: &Account,
    status: &AccountStatus,
) -> Result<json_patch::Patch, Error> {
    // A missing status is added, not replaced.
    let before = match &base.status {
        Some(status) => json!({ "status": status }),
        None => json!({}),
    };
    let after = json!({ "status": status });
    let mut operations = vec![json_patch::PatchOperation::Replace(
        json_patch::ReplaceOperation {
            path: pointer("/metadata/resourceVersion")?,
            value: json!(base.resource_version()),
        },
    )];
    operations.extend(json_patch::diff(&before, &after).0);
    Ok(json_patch::Patch(operations))
}

fn pointer(path: &str) -> Result<json_patch::jsonptr::PointerBuf, Error> {
    json_patch::jsonptr::PointerBuf::parse(path).map_err(|e| Error::Invalid(e.to_string()))
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
            path: pointer("/status/usage")?,
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
    use super::{account_status_patch, same_when_stored};
    use crate::resources::{Account, AccountSpec, AccountStatus, LeaseHolder};

    fn account(status: Option<AccountStatus>) -> Account {
        let spec = AccountSpec::with_admin_role("a", "arn:aws:iam::1:role/a");
        let mut account = Account::new("a", spec);
        account.metadata.resource_version = Some("42".into());
        account.status = status;
        account
    }

    #[test]
    fn an_account_status_patch_names_its_base_version_and_removes_what_went() {
        let held = AccountStatus {
            lease: Some(LeaseHolder {
                namespace: "team".into(),
                name: "l".into(),
                uid: "u".into(),
            }),
            ..AccountStatus::default()
        };
        let patch = serde_json::to_value(
            account_status_patch(&account(Some(held)), &AccountStatus::default()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            patch,
            serde_json::json!([
                { "op": "replace", "path": "/metadata/resourceVersion", "value": "42" },
                { "op": "remove", "path": "/status/lease" },
            ])
        );
        // An account without status gets one added.
        let patch = serde_json::to_value(
            account_status_patch(&account(None), &AccountStatus::default()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            patch[1],
            serde_json::json!({ "op": "add", "path": "/status", "value": {} })
        );
    }
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
