//! Server-side apply: creation, ownership, conflicts and force.

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn apply_creates_tracks_owners_and_conflicts() {
    let cp = start().await;
    let client = admin(&cp).await;
    install_account_crd(&client).await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("dce.dev", "v1", "Account"),
        "accounts",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let mut cfg = account("a", "123456789012");
    cfg["spec"]["adminRoleArn"] = json!("arn:one");
    let created = api
        .patch("a", &PatchParams::apply("alpha"), &Patch::Apply(&cfg))
        .await
        .unwrap();
    let managers: Vec<_> = created
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert_eq!(managers, [("alpha".to_string(), "Apply".to_string())]);

    let mut other = account("a", "123456789012");
    other["spec"]["adminRoleArn"] = json!("arn:two");
    let err = api_error(
        api.patch("a", &PatchParams::apply("beta"), &Patch::Apply(&other))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"alpha\": .spec.adminRoleArn"
    );

    let forced = api
        .patch(
            "a",
            &PatchParams::apply("beta").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["adminRoleArn"], "arn:two");

    // Apply requires a field manager.
    let (code, body) = raw(
        &client,
        "PATCH",
        "/apis/dce.dev/v1/accounts/a",
        "application/apply-patch+yaml",
        other,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    cp.shutdown().await;
}
