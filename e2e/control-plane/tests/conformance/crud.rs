//! Object lifecycle: identity, resourceVersion, optimistic concurrency, paging, errors.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use crate::common::*;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({ "metadata": { "name": name }, "data": { "k": "v" } })).unwrap()
}

#[tokio::test]
async fn create_get_update_with_optimistic_concurrency() {
    let cp = start().await;
    let client = admin(&cp).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    let rv1: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();

    let mut changed = created.clone();
    changed.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    let rv2: u64 = updated
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    assert_eq!(updated.metadata.uid, created.metadata.uid);

    // The first copy is stale now.
    let err = api_error(
        api.replace("a", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let err = api_error(
        api.create(&PostParams::default(), &cm("a"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.reason.as_str(), err.message.as_str()),
        (409, "AlreadyExists", "configmaps \"a\" already exists")
    );

    let err = api_error(api.get("missing").await.unwrap_err());
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "configmaps \"missing\" not found")
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn generate_name_dry_run_and_namespace_checks() {
    let cp = start().await;
    let client = admin(&cp).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut generated = cm("");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("cfg-".into());
    let created = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("cfg-") && name.len() == 9, "{name}");

    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create(&dry, &cm("dry")).await.unwrap();
    assert!(api.get_opt("dry").await.unwrap().is_none());

    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let err = api_error(
        missing
            .create(&PostParams::default(), &cm("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );

    let err = api_error(
        api.create(&PostParams::default(), &cm("Bad_Name"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(err.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{}", err.message);
    cp.shutdown().await;
}

#[tokio::test]
async fn list_paging_is_consistent() {
    let cp = start().await;
    let client = admin(&cp).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("c{i}")))
            .await
            .unwrap();
    }
    let page1 = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page1.items.len(), 2);
    assert_eq!(page1.metadata.remaining_item_count, Some(3));
    let token = page1.metadata.continue_.clone().unwrap();
    // Changes after the first page do not show in later pages of the same list.
    api.create(&PostParams::default(), &cm("c9")).await.unwrap();
    api.delete("c4", &DeleteParams::default()).await.unwrap();
    let page2 = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let page3 = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(page2.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        page2.metadata.resource_version,
        page1.metadata.resource_version
    );
    let names: Vec<String> = page1
        .items
        .iter()
        .chain(&page2.items)
        .chain(&page3.items)
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
    assert!(page3.metadata.continue_.is_none());

    let selected = api
        .list(&ListParams::default().fields("metadata.name=c1"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);
    cp.shutdown().await;
}

#[tokio::test]
async fn finalizers_hold_deletion() {
    let cp = start().await;
    let client = admin(&cp).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut held = cm("held");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    let pending = api.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = pending.left().expect("object still exists");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
    let mut edit = api.get("held").await.unwrap();
    edit.metadata.finalizers = Some(vec!["example.com/hold".into(), "example.com/new".into()]);
    let err = api_error(
        api.replace("held", &PostParams::default(), &edit)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    edit.metadata.finalizers = None;
    api.replace("held", &PostParams::default(), &edit)
        .await
        .unwrap();
    assert!(api.get_opt("held").await.unwrap().is_none());

    api.create(&PostParams::default(), &cm("plain"))
        .await
        .unwrap();
    let gone = api.delete("plain", &DeleteParams::default()).await.unwrap();
    let status = gone.right().expect("a Status");
    assert_eq!(status.details.unwrap().kind, "configmaps");
    cp.shutdown().await;
}

#[tokio::test]
async fn preconditions_on_delete() {
    let cp = start().await;
    let client = admin(&cp).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("p")).await.unwrap();
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("other".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let err = api_error(api.delete("p", &dp).await.unwrap_err());
    assert_eq!(err.code, 409);
    assert!(
        err.message
            .contains("Precondition failed: UID in precondition: other"),
        "{}",
        err.message
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn namespace_deletion_empties_and_removes_it() {
    let cp = start().await;
    let client = admin(&cp).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": "team" } })).unwrap();
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    assert_eq!(
        created.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        "team"
    );
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let mut held = cm("held");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    api.create(&PostParams::default(), &cm("free"))
        .await
        .unwrap();
    let pending = nss
        .delete("team", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(
        pending.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let err = api_error(
        api.create(&PostParams::default(), &cm("late"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "configmaps \"late\" is forbidden: unable to create new content in namespace team because it is being terminated"
    );
    eventually("free to be deleted", || async {
        api.get_opt("free").await.unwrap().is_none()
    })
    .await;
    assert!(nss.get_opt("team").await.unwrap().is_some());
    api.patch(
        "held",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    eventually("namespace removed", || async {
        nss.get_opt("team").await.unwrap().is_none()
    })
    .await;

    let err = api_error(
        nss.delete("default", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            403,
            "namespaces \"default\" is forbidden: this namespace may not be deleted"
        )
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_statuses() {
    let cp = start().await;
    let client = admin(&cp).await;
    let (code, body) = raw_bytes(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    let (code, body) = raw(
        &client,
        "GET",
        "/apis/nope.dev/v1/things",
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        body["message"],
        "the server could not find the requested resource"
    );
    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    let (code, body) = raw_bytes(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        big,
    )
    .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (413, Some("RequestEntityTooLarge"))
    );
    let (code, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps/x",
        "application/json",
        json!({}),
    )
    .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (405, Some("MethodNotAllowed"))
    );

    let anon = client_unauthenticated(&cp).await;
    let (code, body) = raw(
        &anon,
        "GET",
        "/api/v1/namespaces",
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (401, Some("Unauthorized")));
    let (code, _) = raw(&anon, "GET", "/healthz", "application/json", Value::Null).await;
    assert_eq!(code, 401);
    let (code, _) = raw(&client, "GET", "/healthz", "application/json", Value::Null).await;
    assert_eq!(code, 200);
    cp.shutdown().await;
}

async fn client_unauthenticated(cp: &local_control_plane::ControlPlane) -> kube::Client {
    client(cp, "not-a-token").await
}

#[tokio::test]
async fn pods_disruption_budgets_network_policies_and_ingresses_are_served() {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;

    let cp = start().await;
    let client = admin(&cp).await;
    let labels = json!({ "matchLabels": { "app": "x" } });
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "p" },
        "spec": { "containers": [{ "name": "c", "image": "busybox" }] },
    }))
    .unwrap();
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": { "name": "p" }, "spec": { "maxUnavailable": 1, "selector": labels },
    }))
    .unwrap();
    let policy: NetworkPolicy = serde_json::from_value(json!({
        "metadata": { "name": "p" }, "spec": { "podSelector": labels, "policyTypes": ["Ingress"] },
    }))
    .unwrap();
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": { "name": "p" },
        "spec": { "defaultBackend": { "service": { "name": "s", "port": { "number": 80 } } } },
    }))
    .unwrap();
    let pp = PostParams::default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&pp, &pod).await.unwrap();
    assert_eq!(
        pods.get("p").await.unwrap().spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("busybox")
    );
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        pdbs.create(&pp, &pdb).await.unwrap().metadata.generation,
        Some(1)
    );
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), "default");
    policies.create(&pp, &policy).await.unwrap();
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "default");
    ingresses.create(&pp, &ingress).await.unwrap();
    assert_eq!(
        ingresses
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    cp.shutdown().await;
}
