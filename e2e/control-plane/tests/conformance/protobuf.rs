//! Built-in objects sent in Kubernetes' protobuf encoding, as client-go's typed clients (and so
//! Helm's release storage) send them.

use serde_json::json;

use crate::common::*;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Protobuf field `number` holding `bytes` (length-delimited).
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
    out
}

/// `k8s\0` + runtime.Unknown{typeMeta, raw}.
fn encoded(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
    [b"k8s\0".to_vec(), field(1, &type_meta), field(2, raw)].concat()
}

fn secret(name: &str, value: &[u8]) -> Vec<u8> {
    let label = [field(1, b"owner"), field(2, b"helm")].concat();
    // Go writes empty strings and a zero creationTimestamp for unset fields.
    let meta = [
        field(1, name.as_bytes()),
        field(2, b""),
        field(8, b""),
        field(11, &label),
    ]
    .concat();
    let data = [field(1, b"release"), field(2, value)].concat();
    let big = vec![b'x'; 300];
    let big_entry = [field(1, b"big"), field(2, &big)].concat();
    let secret = [
        field(1, &meta),
        field(2, &data),
        field(2, &big_entry),
        field(3, b"helm.sh/release.v1"),
    ]
    .concat();
    encoded("v1", "Secret", &secret)
}

#[tokio::test]
async fn protobuf_secrets_are_created_updated_and_deleted() {
    let cp = start().await;
    let admin = admin(&cp).await;
    let path = "/api/v1/namespaces/default/secrets";
    let (code, created) =
        raw_bytes(&admin, "POST", path, PROTOBUF, secret("rel", b"\x00\xff")).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["labels"], json!({ "owner": "helm" }));
    assert_eq!(created["data"]["release"], "AP8=");
    assert_eq!(created["data"]["big"].as_str().unwrap().len(), 400);
    assert_eq!(created["type"], "helm.sh/release.v1");
    assert!(created["metadata"]["creationTimestamp"].is_string());

    let named = format!("{path}/rel");
    let (code, updated) = raw_bytes(&admin, "PUT", &named, PROTOBUF, secret("rel", b"v2")).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["data"]["release"], "djI=");

    // DeleteOptions{preconditions: {uid: "not-it"}} must fail like a JSON one.
    let preconditions = field(1, b"not-it");
    let options = encoded("v1", "DeleteOptions", &field(2, &preconditions));
    let (code, status) = raw_bytes(&admin, "DELETE", &named, PROTOBUF, options).await;
    assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));
    let (code, _) = raw_bytes(
        &admin,
        "DELETE",
        &named,
        PROTOBUF,
        encoded("v1", "DeleteOptions", b""),
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = raw(
        &admin,
        "GET",
        &named,
        "application/json",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(code, 404);
    cp.shutdown().await;
}

#[tokio::test]
async fn protobuf_namespaces_are_created() {
    // What `kubectl create namespace` sends.
    let cp = start().await;
    let admin = admin(&cp).await;
    let namespace = [field(1, &field(1, b"team-a")), field(2, b""), field(3, b"")].concat();
    let (code, created) = raw_bytes(
        &admin,
        "POST",
        "/api/v1/namespaces",
        PROTOBUF,
        encoded("v1", "Namespace", &namespace),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["name"], "team-a");
    assert_eq!(created["status"]["phase"], "Active");
    cp.shutdown().await;
}

#[tokio::test]
async fn protobuf_is_refused_for_custom_resources_and_malformed_bodies() {
    let cp = start().await;
    let admin = admin(&cp).await;
    install_account_crd(&admin).await;
    let meta = field(1, &field(1, b"a1"));
    let (code, status) = raw_bytes(
        &admin,
        "POST",
        "/apis/dce.dev/v1/accounts",
        PROTOBUF,
        encoded("dce.dev/v1", "Account", &meta),
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let (code, _) = raw_bytes(
        &admin,
        "POST",
        "/api/v1/namespaces/default/secrets",
        PROTOBUF,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, 400);
    cp.shutdown().await;
}
