//! Writes to the principals' usage stores (see [`crate::lifecycle::usage_store`]), one merge
//! patch per change, read back through the operator's cache of the stores.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;

use super::error::is_status;
use super::{Context, Error, FIELD_MANAGER};
use crate::lifecycle::credentials::{MANAGED_LABEL, MANAGED_VALUE};
use crate::lifecycle::usage_store::{
    self, PRINCIPAL_ANNOTATION, STORE_LABEL, STORE_LABEL_VALUE, StoredDay,
};
use crate::resources::Lease;

/// The days held in `principal`'s cached usage store (only theirs: it is read on every lease
/// reconcile).
pub fn days_of(principal: &str, ctx: &Context) -> Vec<StoredDay> {
    let name = usage_store::store_name(principal);
    let store = ctx
        .usage_stores
        .get(&ObjectRef::new(&name).within(&ctx.settings.namespace));
    usage_store::stored_days(store.as_deref())
}

/// Makes `lease`'s principal's store hold the lease's daily costs (as in `lease`'s status),
/// pruning days past the usage retention on the way. Writes nothing when the cached store is
/// up to date.
pub async fn record(lease: &Lease, ctx: &Context, now: Timestamp) -> Result<(), Error> {
    let namespace = &ctx.settings.namespace;
    let retention = ctx.settings.policy.usage_retention;
    let principal = &lease.spec.principal_id;
    let name = usage_store::store_name(principal);
    let entries = usage_store::lease_entries(lease, retention, now);
    if entries.is_empty() {
        return Ok(());
    }
    let cached = ctx
        .usage_stores
        .get(&ObjectRef::new(&name).within(namespace));
    let changes = usage_store::store_changes(
        cached.as_ref().and_then(|c| c.data.as_ref()),
        &entries,
        retention,
        now,
    );
    if changes.is_empty() {
        return Ok(());
    }
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    if cached.is_none() {
        let store = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([
                    (STORE_LABEL.to_string(), STORE_LABEL_VALUE.to_string()),
                    (MANAGED_LABEL.to_string(), MANAGED_VALUE.to_string()),
                ])),
                annotations: Some(BTreeMap::from([(
                    PRINCIPAL_ANNOTATION.to_string(),
                    principal.clone(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(entries),
            ..ConfigMap::default()
        };
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        match api.create(&params, &store).await {
            Ok(_) => return Ok(()),
            // Created meanwhile (by an earlier write the cache does not show yet): patch it.
            Err(error) if is_status(&error, 409) => {}
            Err(error) => return Err(Error::Kube(error)),
        }
    }
    // A JSON merge patch sets or removes single keys: writers of different leases of one
    // principal cannot undo each other's entries, so no resourceVersion guard is needed.
    let patch = serde_json::json!({ "data": changes });
    api.patch(
        &name,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}
