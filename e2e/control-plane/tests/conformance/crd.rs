//! CRDs: establishment, discovery, validation errors, defaulting, pruning, status subresource.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::Discovery;
use serde_json::{Value, json};

use crate::common::*;

fn accounts(client: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("dce.dev", "v1", "Account"),
        "accounts",
    );
    Api::all_with(client.clone(), &ar)
}

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn crd_is_established_and_discoverable() {
    let cp = start().await;
    let client = admin(&cp).await;
    install_account_crd(&client).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get("accounts.dce.dev").await.unwrap();
    let conditions = crd.status.unwrap().conditions.unwrap();
    for t in ["NamesAccepted", "Established"] {
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == t && c.status == "True"),
            "{t}"
        );
    }
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let group = discovery.get("dce.dev").expect("group discovered");
    let (ar, caps) = group.recommended_kind("Account").unwrap();
    assert_eq!(ar.plural, "accounts");
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);
    let (_, list) = raw(
        &client,
        "GET",
        "/apis/dce.dev/v1",
        "application/json",
        Value::Null,
    )
    .await;
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["accounts", "accounts/status"]);
    assert_eq!(list["resources"][0]["shortNames"], json!(["acct"]));
    cp.shutdown().await;
}

#[tokio::test]
async fn invalid_objects_get_422_with_causes() {
    let cp = start().await;
    let client = admin(&cp).await;
    install_account_crd(&client).await;
    let (code, body) = raw(
        &client,
        "POST",
        "/apis/dce.dev/v1/accounts",
        "application/json",
        account("x", "123"),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(
        body["details"],
        json!({
            "name": "x", "group": "dce.dev", "kind": "Account",
            "causes": [{ "reason": "FieldValueInvalid", "message": "Invalid value: \"123\": spec.id in body should match '^[0-9]{12}$'", "field": "spec.id" }],
        })
    );
    assert_eq!(
        body["message"],
        "Account.dce.dev \"x\" is invalid: spec.id: Invalid value: \"123\": spec.id in body should match '^[0-9]{12}$'"
    );

    let mut two = account("y", "123");
    two["spec"]["priority"] = json!(-1);
    let (code, body) = raw(
        &client,
        "POST",
        "/apis/dce.dev/v1/accounts",
        "application/json",
        two,
    )
    .await;
    assert_eq!(code, 422);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("Account.dce.dev \"y\" is invalid: [") && message.ends_with(']'),
        "{message}"
    );
    assert_eq!(body["details"]["causes"].as_array().unwrap().len(), 2);
    cp.shutdown().await;
}

#[tokio::test]
async fn defaults_pruning_status_and_generation() {
    let cp = start().await;
    let client = admin(&cp).await;
    install_account_crd(&client).await;
    let api = accounts(&client);
    let mut a = account("a", "123456789012");
    a["spec"]["unknown"] = json!(true);
    a["status"] = json!({ "accountStatus": "Ready" });
    let created = api.create(&PostParams::default(), &obj(a)).await.unwrap();
    assert_eq!(created.data["spec"]["priority"], 5, "defaulted");
    assert!(created.data["spec"].get("unknown").is_none(), "pruned");
    assert!(
        created.data.get("status").is_none(),
        "status is not set on create"
    );
    assert_eq!(created.metadata.generation, Some(1));

    // Status writes change only status, and not the generation.
    let mut with_status = created.clone();
    with_status.data["status"] = json!({ "accountStatus": "Ready" });
    with_status.data["spec"]["adminRoleArn"] = json!("ignored");
    let s = api
        .replace_status("a", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(s.data["status"]["accountStatus"], "Ready");
    assert!(s.data["spec"].get("adminRoleArn").is_none());
    assert_eq!(s.metadata.generation, Some(1));

    // Main-resource writes ignore status and bump the generation on spec changes only.
    let patch = Patch::Merge(
        json!({ "spec": { "adminRoleArn": "arn" }, "status": { "accountStatus": "Leased" } }),
    );
    let p = api
        .patch("a", &PatchParams::default(), &patch)
        .await
        .unwrap();
    assert_eq!(p.data["status"]["accountStatus"], "Ready");
    assert_eq!(p.metadata.generation, Some(2));
    let labels = Patch::Merge(json!({ "metadata": { "labels": { "x": "y" } } }));
    let l = api
        .patch("a", &PatchParams::default(), &labels)
        .await
        .unwrap();
    assert_eq!(l.metadata.generation, Some(2));

    // Strict field validation rejects what pruning would drop.
    let (code, body) = raw(
        &client,
        "POST",
        "/apis/dce.dev/v1/accounts?fieldValidation=Strict",
        "application/json",
        {
            let mut b = account("b", "123456789012");
            b["spec"]["bogus"] = json!(1);
            b
        },
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body["message"],
        "strict decoding error: unknown field \"spec.bogus\""
    );

    // Custom resources require a resourceVersion on update and reject strategic merge patches.
    let mut no_rv = l.clone();
    no_rv.metadata.resource_version = None;
    let err = api_error(
        api.replace("a", &PostParams::default(), &no_rv)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    let (code, body) = raw(
        &client,
        "PATCH",
        "/apis/dce.dev/v1/accounts/a",
        "application/strategic-merge-patch+json",
        json!({}),
    )
    .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    cp.shutdown().await;
}

#[tokio::test]
async fn deleting_a_crd_removes_its_objects() {
    let cp = start().await;
    let client = admin(&cp).await;
    install_account_crd(&client).await;
    let api = accounts(&client);
    api.create(&PostParams::default(), &obj(account("a", "123456789012")))
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("accounts.dce.dev", &DeleteParams::default())
        .await
        .unwrap();
    eventually("CRD removed", || async {
        crds.get_opt("accounts.dce.dev").await.unwrap().is_none()
    })
    .await;
    let (code, _) = raw(
        &client,
        "GET",
        "/apis/dce.dev/v1/accounts",
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(code, 404);
    cp.shutdown().await;
}

#[tokio::test]
async fn job_status_is_a_subresource() {
    let cp = start().await;
    let client = admin(&cp).await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), "default");
    let job = serde_json::from_value(json!({
        "metadata": { "name": "reset" },
        "spec": { "template": { "spec": { "restartPolicy": "Never", "containers": [{ "name": "c", "image": "busybox" }] } } },
        "status": { "succeeded": 1 },
    }))
    .unwrap();
    let created = jobs.create(&PostParams::default(), &job).await.unwrap();
    assert!(created.status.as_ref().and_then(|s| s.succeeded).is_none());
    let status = Patch::Merge(
        json!({ "status": { "succeeded": 1, "conditions": [{ "type": "Complete", "status": "True" }] } }),
    );
    let done = jobs
        .patch_status("reset", &PatchParams::default(), &status)
        .await
        .unwrap();
    assert_eq!(done.status.unwrap().succeeded, Some(1));
    cp.shutdown().await;
}
