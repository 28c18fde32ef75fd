//! Authentication, RBAC authorization through the HTTP API, TokenReview and access reviews.

use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::authorization::v1::{SelfSubjectAccessReview, SubjectAccessReview};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchParams};
use local_control_plane::AuthorizationDecision;
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

/// A Role for alice on the ConfigMap `settings` only.
async fn grant_alice_on_settings(admin: &kube::Client, verbs: &[&str]) {
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": "settings" },
        "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"], "verbs": verbs }],
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "settings" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "settings" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice" }],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

#[tokio::test]
async fn list_and_watch_by_metadata_name_are_authorized_for_that_name() {
    let cp = start().await;
    let admin = admin(&cp).await;
    grant_alice_on_settings(&admin, &["list", "watch"]).await;
    let alice = client(&cp, ALICE_TOKEN).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(alice, "default");

    let by_name = ListParams::default().fields("metadata.name=settings");
    config_maps.list(&by_name).await.unwrap();
    let stream = config_maps
        .watch(
            &WatchParams::default().fields("metadata.name==settings"),
            "0",
        )
        .await;
    assert!(stream.is_ok(), "watch by name is allowed");
    for denied in [
        ListParams::default(),
        ListParams::default().fields("metadata.name=other"),
        ListParams::default().fields("metadata.name!=settings"),
    ] {
        let err = api_error(config_maps.list(&denied).await.unwrap_err());
        assert_eq!(err.code, 403, "{:?}", denied.field_selector);
    }
    cp.shutdown().await;
}

#[tokio::test]
async fn an_apply_that_creates_needs_create_permission() {
    let cp = start().await;
    let admin = admin(&cp).await;
    grant_alice_on_settings(&admin, &["get", "patch"]).await;
    let alice = client(&cp, ALICE_TOKEN).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(alice, "default");
    let settings = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "settings" }, "data": { "a": "1" } });
    let apply = PatchParams::apply("alice");

    let err = api_error(
        config_maps
            .patch("settings", &apply, &Patch::Apply(&settings))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403);
    assert!(
        err.message.contains("cannot create resource"),
        "{}",
        err.message
    );

    Api::<ConfigMap>::namespaced(admin.clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(settings.clone()).unwrap(),
        )
        .await
        .unwrap();
    config_maps
        .patch("settings", &apply, &Patch::Apply(&settings))
        .await
        .expect("applying to an existing object needs only patch");
    cp.shutdown().await;
}

#[tokio::test]
async fn decisions_of_audited_users_are_recorded() {
    let cp = start().await;
    let alice = client(&cp, ALICE_TOKEN).await;
    let _ = Api::<Secret>::namespaced(alice, "default")
        .get("token")
        .await;
    // The admin is not audited.
    let _ = Api::<Secret>::namespaced(admin(&cp).await, "default")
        .get("token")
        .await;
    let decisions = cp.authorization_decisions();
    assert_eq!(
        decisions,
        vec![AuthorizationDecision {
            user: "alice".into(),
            verb: "get".into(),
            api_group: String::new(),
            resource: "secrets".into(),
            subresource: String::new(),
            namespace: "default".into(),
            name: "token".into(),
            non_resource_path: None,
            allowed: false,
        }]
    );
    cp.shutdown().await;
}
