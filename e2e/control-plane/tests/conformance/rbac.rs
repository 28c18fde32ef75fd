//! Authentication, RBAC authorization through the HTTP API, TokenReview and access reviews.

use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::authorization::v1::{SelfSubjectAccessReview, SubjectAccessReview};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn rbac_denies_then_allows_after_binding() {
    let cp = start().await;
    let admin = admin(&cp).await;
    let alice = client(&cp, ALICE_TOKEN).await;
    let secrets: Api<Secret> = Api::namespaced(alice.clone(), "default");
    let err = api_error(secrets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.message,
        "secrets is forbidden: User \"alice\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
    );

    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "alice-view" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice" }],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    secrets.list(&ListParams::default()).await.unwrap();
    let elsewhere: Api<Secret> = Api::namespaced(alice.clone(), "kube-system");
    assert_eq!(
        api_error(elsewhere.list(&ListParams::default()).await.unwrap_err()).code,
        403
    );

    let ssar: SelfSubjectAccessReview = serde_json::from_value(json!({
        "spec": { "resourceAttributes": { "namespace": "default", "verb": "create", "resource": "secrets" } },
    }))
    .unwrap();
    let answer = Api::<SelfSubjectAccessReview>::all(alice.clone())
        .create(&PostParams::default(), &ssar)
        .await
        .unwrap();
    assert!(answer.status.unwrap().allowed);
    cp.shutdown().await;
}

#[tokio::test]
async fn token_and_subject_access_reviews() {
    let cp = start().await;
    let admin = admin(&cp).await;
    let reviews: Api<TokenReview> = Api::all(admin.clone());
    let tr: TokenReview =
        serde_json::from_value(json!({ "spec": { "token": ALICE_TOKEN } })).unwrap();
    let status = reviews
        .create(&PostParams::default(), &tr)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.authenticated, Some(true));
    let user = status.user.unwrap();
    assert_eq!(user.username.as_deref(), Some("alice"));
    assert!(
        user.groups
            .unwrap()
            .contains(&"system:authenticated".to_string())
    );
    let bad: TokenReview = serde_json::from_value(json!({ "spec": { "token": "nope" } })).unwrap();
    assert_ne!(
        reviews
            .create(&PostParams::default(), &bad)
            .await
            .unwrap()
            .status
            .unwrap()
            .authenticated,
        Some(true)
    );

    let sar: SubjectAccessReview = serde_json::from_value(json!({
        "spec": { "user": "alice", "groups": ["dev"], "resourceAttributes": { "namespace": "default", "verb": "get", "resource": "secrets" } },
    }))
    .unwrap();
    let answer = Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &sar)
        .await
        .unwrap();
    assert!(!answer.status.unwrap().allowed);
    let sar: SubjectAccessReview = serde_json::from_value(json!({
        "spec": { "user": "admin", "groups": ["system:masters"], "resourceAttributes": { "verb": "delete", "resource": "namespaces" } },
    }))
    .unwrap();
    let answer = Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &sar)
        .await
        .unwrap();
    assert!(answer.status.unwrap().allowed);
    cp.shutdown().await;
}
