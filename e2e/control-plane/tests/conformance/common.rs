//! Shared helpers: a server per test, clients for tokens, raw requests and test CRDs.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use local_control_plane::{ControlPlane, ControlPlaneConfig, StaticToken};
use serde_json::{Value, json};

pub const ALICE_TOKEN: &str = "alice-token";

pub async fn start() -> ControlPlane {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let alice = StaticToken {
        token: ALICE_TOKEN.into(),
        username: "alice".into(),
        uid: "alice-uid".into(),
        groups: vec!["dev".into()],
    };
    ControlPlane::start(ControlPlaneConfig {
        port: 0,
        tokens: vec![alice],
        audited_users: vec!["alice".into()],
    })
    .await
    .expect("server starts")
}

pub async fn client(cp: &ControlPlane, token: &str) -> Client {
    let kc = Kubeconfig::from_yaml(&cp.kubeconfig_yaml(token)).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

pub async fn admin(cp: &ControlPlane) -> Client {
    client(cp, cp.admin_token()).await
}

/// Sends a raw request and returns the status code and JSON body (Null when not JSON).
pub async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Value,
) -> (u16, Value) {
    let bytes = if body.is_null() {
        vec![]
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    raw_bytes(client, method, path, content_type, bytes).await
}

pub async fn raw_bytes(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body))
        .unwrap();
    let resp = client.send(req).await.expect("request sent");
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.expect("body");
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Cluster-scoped `Account` (dce.dev/v1) with a status subresource and printer columns.
pub fn account_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "accounts.dce.dev" },
        "spec": {
            "group": "dce.dev",
            "scope": "Cluster",
            "names": { "plural": "accounts", "singular": "account", "kind": "Account", "shortNames": ["acct"], "categories": ["dce"] },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": { "status": {} },
                "additionalPrinterColumns": [
                    { "name": "Status", "type": "string", "jsonPath": ".status.accountStatus" },
                    { "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp" },
                ],
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["id"],
                            "properties": {
                                "id": { "type": "string", "pattern": "^[0-9]{12}$" },
                                "adminRoleArn": { "type": "string" },
                                "priority": { "type": "integer", "default": 5, "minimum": 0 },
                                "tags": { "type": "array", "items": { "type": "string" } },
                            },
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "accountStatus": { "type": "string" },
                                "conditions": {
                                    "type": "array",
                                    "x-kubernetes-list-type": "map",
                                    "x-kubernetes-list-map-keys": ["type"],
                                    "items": { "type": "object", "properties": {
                                        "type": { "type": "string" }, "status": { "type": "string" },
                                        "reason": { "type": "string" }, "message": { "type": "string" },
                                        "lastTransitionTime": { "type": "string" },
                                    } },
                                },
                            },
                        },
                    },
                } },
            }],
        },
    })
}

pub async fn install_account_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(account_crd()).unwrap();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("CRD created");
}

pub fn account(name: &str, id: &str) -> Value {
    json!({ "apiVersion": "dce.dev/v1", "kind": "Account", "metadata": { "name": name }, "spec": { "id": id } })
}

/// Polls `check` until it returns true or the timeout passes.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
