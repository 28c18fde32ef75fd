//! ownerReference garbage collection: background, foreground and orphan propagation.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::common::*;

async fn owner_and_dependent(api: &Api<ConfigMap>, block: bool) -> ConfigMap {
    let owner: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "owner" } })).unwrap();
    let owner = api.create(&PostParams::default(), &owner).await.unwrap();
    let dep: ConfigMap = serde_json::from_value(json!({ "metadata": {
        "name": "dep",
        "finalizers": if block { json!(["example.com/slow"]) } else { json!(null) },
        "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner.metadata.uid.clone().unwrap(), "blockOwnerDeletion": block,
        }],
    } }))
    .unwrap();
    api.create(&PostParams::default(), &dep).await.unwrap();
    owner
}

#[tokio::test]
async fn background_deletes_dependents_after_owner() {
    let cp = start().await;
    let api: Api<ConfigMap> = Api::namespaced(admin(&cp).await, "default");
    owner_and_dependent(&api, false).await;
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert!(api.get_opt("owner").await.unwrap().is_none());
    eventually("dependent collected", || async {
        api.get_opt("dep").await.unwrap().is_none()
    })
    .await;
    cp.shutdown().await;
}

#[tokio::test]
async fn foreground_waits_for_blocking_dependents() {
    let cp = start().await;
    let api: Api<ConfigMap> = Api::namespaced(admin(&cp).await, "default");
    owner_and_dependent(&api, true).await;
    let marked = api
        .delete("owner", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(
        marked
            .metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    eventually("dependent marked", || async {
        api.get_opt("dep")
            .await
            .unwrap()
            .is_some_and(|d| d.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert!(
        api.get_opt("owner").await.unwrap().is_some(),
        "owner waits for its blocking dependent"
    );
    let patch = kube::api::Patch::Merge(json!({ "metadata": { "finalizers": null } }));
    api.patch("dep", &kube::api::PatchParams::default(), &patch)
        .await
        .unwrap();
    eventually("owner removed", || async {
        api.get_opt("owner").await.unwrap().is_none()
    })
    .await;
    cp.shutdown().await;
}

#[tokio::test]
async fn orphan_keeps_dependents_without_the_reference() {
    let cp = start().await;
    let api: Api<ConfigMap> = Api::namespaced(admin(&cp).await, "default");
    owner_and_dependent(&api, false).await;
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    eventually("owner removed", || async {
        api.get_opt("owner").await.unwrap().is_none()
    })
    .await;
    let dep = api.get("dep").await.unwrap();
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());
    cp.shutdown().await;
}
