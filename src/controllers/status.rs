//! Status writes: server-side apply under the operator's field manager.

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::{Error, FIELD_MANAGER};
use crate::resources::{Account, AccountStatus, Lease, LeaseStatus};

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
    let patch = json!({
        "apiVersion": "dce.dev/v1alpha1",
        "kind": "Account",
        "metadata": metadata,
        "status": status,
    });
    Ok(api.patch_status(name, &apply_params(), &Patch::Apply(patch)).await?)
}

/// Writes a Lease's whole status.
pub async fn apply_lease(api: &Api<Lease>, name: &str, status: &LeaseStatus) -> Result<Lease, Error> {
    let patch = json!({
        "apiVersion": "dce.dev/v1alpha1",
        "kind": "Lease",
        "metadata": { "name": name },
        "status": status,
    });
    Ok(api.patch_status(name, &apply_params(), &Patch::Apply(patch)).await?)
}
