//! Status writes: JSON Patches of what changed, guarded by the resourceVersion of the copy the
//! change was decided on, under the operator's field manager.

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

/// Writes an Account's whole status as `status`, from `base`, the copy the new status was
/// decided on, guarded by `base`'s resourceVersion: the write succeeds only if the Account has
/// not changed since it was read. This is what makes account assignment exactly-once.
pub async fn write_account(
    api: &Api<Account>,
    base: &Account,
    status: &AccountStatus,
) -> Result<Account, Error> {
    tracing::debug!(account = base.name_any(), "writing account status");
    write_status(api, base, base.status.as_ref(), status).await
}

/// Writes a Lease's whole status as `status`, from `base`, the copy it was decided on, guarded
/// by `base`'s resourceVersion: the usage loop writes the same status, and a claim is committed
/// only if the lease has not changed since the copy its plan saw.
pub async fn write_lease(
    api: &Api<Lease>,
    base: &Lease,
    status: &LeaseStatus,
) -> Result<Lease, Error> {
    tracing::debug!(
        lease = base.name_any(),
        phase = status.lease_status.map(|p| p.as_str()),
        ready = crate::lifecycle::conditions::ready_reason(&status.conditions),
        "writing lease status"
    );
    write_status(api, base, base.status.as_ref(), status).await
}

/// A JSON Patch of exactly what differs between `base_status` (the status of `base`) and
/// `status`, carrying `base`'s resourceVersion, which the API server checks against the stored
/// one (409 Conflict when it changed).
///
/// A patch rather than server-side apply: apply removes a field only when no other field
/// manager owns it, so a value written by anyone else (an edit by hand, an older release) would
/// survive its removal — an Account's holder, say, a release. It also costs the API server less
/// CPU per write than apply's field-ownership bookkeeping (docs/benchmarks.md).
async fn write_status<K, S>(
    api: &Api<K>,
    base: &K,
    base_status: Option<&S>,
    status: &S,
) -> Result<K, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let patch = status_patch(base.resource_version(), base_status, status)?;
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    Ok(api
        .patch_status(&base.name_any(), &params, &Patch::<()>::Json(patch))
        .await?)
}

fn status_patch<S: serde::Serialize>(
    resource_version: Option<String>,
    base_status: Option<&S>,
    status: &S,
) -> Result<json_patch::Patch, Error> {
    // A missing status is added, not replaced.
    let before = match base_status {
        Some(status) => json!({ "status": status }),
        None => json!({}),
    };
    let after = json!({ "status": status });
    let mut operations = vec![json_patch::PatchOperation::Replace(
        json_patch::ReplaceOperation {
            path: pointer("/metadata/resourceVersion")?,
            value: json!(resource_version),
        },
    )];
    operations.extend(json_patch::diff(&before, &after).0);
    Ok(json_patch::Patch(operations))
}

fn pointer(path: &str) -> Result<json_patch::jsonptr::PointerBuf, Error> {
    json_patch::jsonptr::PointerBuf::parse(path).map_err(|e| Error::Invalid(e.to_string()))
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
    use super::{same_when_stored, status_patch};
    use crate::resources::{Account, AccountSpec, AccountStatus, LeaseHolder};
    use kube::ResourceExt;

    fn account(status: Option<AccountStatus>) -> Account {
        let spec = AccountSpec::with_admin_role("a", "arn:aws:iam::1:role/a");
        let mut account = Account::new("a", spec);
        account.metadata.resource_version = Some("42".into());
        account.status = status;
        account
    }

    #[test]
    fn a_status_patch_names_its_base_version_and_removes_what_went() {
        let held = AccountStatus {
            lease: Some(LeaseHolder {
                namespace: "team".into(),
                name: "l".into(),
                uid: "u".into(),
            }),
            ..AccountStatus::default()
        };
        let base = account(Some(held));
        let patch = serde_json::to_value(
            status_patch(
                base.resource_version(),
                base.status.as_ref(),
                &AccountStatus::default(),
            )
            .unwrap(),
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
            status_patch(Some("42".into()), None, &AccountStatus::default()).unwrap(),
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
