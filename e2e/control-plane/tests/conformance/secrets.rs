//! Secrets: `stringData` is a write-only convenience folded into `data` on every write
//! (create, update, every patch type); it is never stored or returned.

use serde_json::{Value, json};

use crate::common::*;

const SECRETS: &str = "/api/v1/namespaces/default/secrets";

fn secret(name: &str, data: Value, string_data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name },
        "data": data,
        "stringData": string_data,
    })
}

/// `data` of a returned Secret, and that it carries no `stringData`.
fn data_of(secret: &Value) -> Value {
    assert!(
        secret.get("stringData").is_none(),
        "stringData returned: {secret}"
    );
    secret["data"].clone()
}

#[tokio::test]
async fn string_data_is_folded_into_data_on_create_and_wins_over_data() {
    let cp = start().await;
    let client = admin(&cp).await;
    // "b2xk" is base64 of "old": the stringData entry for the same key replaces it.
    let body = secret(
        "creds",
        json!({ "kept": "a2VwdA==", "user": "b2xk" }),
        json!({ "user": "alice", "password": "s3cr3t!" }),
    );
    let (code, created) = raw(&client, "POST", SECRETS, "application/json", body).await;
    assert_eq!(code, 201, "{created}");
    let want = json!({ "kept": "a2VwdA==", "user": "YWxpY2U=", "password": "czNjcjN0IQ==" });
    assert_eq!(data_of(&created), want);
    let (code, read) = raw(
        &client,
        "GET",
        &format!("{SECRETS}/creds"),
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(data_of(&read), want);
    cp.shutdown().await;
}

#[tokio::test]
async fn string_data_is_folded_on_update_and_on_every_patch_type() {
    let cp = start().await;
    let client = admin(&cp).await;
    let path = format!("{SECRETS}/creds");
    let (code, created) = raw(
        &client,
        "POST",
        SECRETS,
        "application/json",
        secret("creds", json!({ "a": "YQ==" }), Value::Null),
    )
    .await;
    assert_eq!(code, 201, "{created}");

    let mut replacement = created.clone();
    replacement["stringData"] = json!({ "b": "bee" });
    let (code, updated) = raw(&client, "PUT", &path, "application/json", replacement).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(data_of(&updated), json!({ "a": "YQ==", "b": "YmVl" }));

    let (code, merged) = raw(
        &client,
        "PATCH",
        &path,
        "application/merge-patch+json",
        json!({ "stringData": { "c": "sea" } }),
    )
    .await;
    assert_eq!(code, 200, "{merged}");
    assert_eq!(
        data_of(&merged),
        json!({ "a": "YQ==", "b": "YmVl", "c": "c2Vh" })
    );

    let (code, strategic) = raw(
        &client,
        "PATCH",
        &path,
        "application/strategic-merge-patch+json",
        json!({ "stringData": { "a": "ay" } }),
    )
    .await;
    assert_eq!(code, 200, "{strategic}");
    assert_eq!(data_of(&strategic)["a"], "YXk=");

    let (code, json_patched) = raw(
        &client,
        "PATCH",
        &path,
        "application/json-patch+json",
        json!([{ "op": "add", "path": "/stringData", "value": { "d": "dee" } }]),
    )
    .await;
    assert_eq!(code, 200, "{json_patched}");
    assert_eq!(data_of(&json_patched)["d"], "ZGVl");

    let (code, applied) = raw(
        &client,
        "PATCH",
        &format!("{path}?fieldManager=e2e"),
        "application/apply-patch+yaml",
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": "creds" },
            "stringData": { "e": "eee" },
        }),
    )
    .await;
    assert_eq!(code, 200, "{applied}");
    assert_eq!(data_of(&applied)["e"], "ZWVl");
    cp.shutdown().await;
}

#[tokio::test]
async fn string_data_values_must_be_strings() {
    let cp = start().await;
    let client = admin(&cp).await;
    let (code, status) = raw(
        &client,
        "POST",
        SECRETS,
        "application/json",
        secret("bad", Value::Null, json!({ "port": 5432 })),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["reason"], "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("Secret.stringData of type string")),
        "{status}"
    );
    let (code, _) = raw(
        &client,
        "GET",
        &format!("{SECRETS}/bad"),
        "application/json",
        Value::Null,
    )
    .await;
    assert_eq!(code, 404, "nothing is written");
    cp.shutdown().await;
}
