//! Invalid manifests are rejected by the API server at `kubectl apply`, with messages that say
//! which field is wrong and why, and nothing is created.

use dce_e2e::target::{E2e, OperatorOptions};
use serde_json::json;

use crate::common::*;

/// Applies `manifest`, expects a rejection, and returns kubectl's error output.
async fn rejected(
    e2e: &E2e,
    manifest: &str,
    resource: &str,
    name: &str,
    namespace: Option<&str>,
) -> String {
    let outcome = e2e.kubectl.apply(manifest).await.expect("kubectl runs");
    assert!(!outcome.success, "accepted: {manifest}\n{}", outcome.stdout);
    assert!(
        !e2e.kubectl
            .exists(resource, name, namespace)
            .await
            .expect("kubectl get"),
        "{resource} {name} was created anyway"
    );
    outcome.stderr
}

#[tokio::test]
async fn invalid_manifests_are_rejected_with_clear_messages() -> anyhow::Result<()> {
    let e2e = E2e::start(OperatorOptions::default()).await?;
    let namespace = e2e.namespace("validation").await?;

    let short_id =
        account_manifest("123456789012").replace("spec:\n", "spec:\n  awsAccountId: \"12345\"\n");
    let message = rejected(&e2e, &short_id, "accounts.dce.dev", "123456789012", None).await;
    assert!(
        message.contains(r#"The Account "123456789012" is invalid"#)
            && message.contains(r#"spec.awsAccountId: Invalid value: "12345""#)
            && message.contains("should match '^[0-9]{12}$'"),
        "{message}"
    );

    let bad_role = account_manifest("123456789012").replace("iam::123456789012:", "iam::1234:");
    let message = rejected(&e2e, &bad_role, "accounts.dce.dev", "123456789012", None).await;
    assert!(
        message.contains("spec.adminRoleArn: Invalid value")
            && message.contains("arn:aws:iam::1234:role/OrganizationAccountAccessRole"),
        "{message}"
    );

    let lease = |overrides| sample_lease("bad", &namespace, "alice", overrides);
    let message = rejected(
        &e2e,
        &lease(json!({ "budgetAmount": -5 })),
        "leases.dce.dev",
        "bad",
        Some(&namespace),
    )
    .await;
    assert!(
        message.contains(r#"The Lease "bad" is invalid"#)
            && message.contains("spec.budgetAmount: Invalid value: -5")
            && message.contains("should be greater than or equal to 0"),
        "{message}"
    );

    let message = rejected(
        &e2e,
        &lease(json!({ "budgetAmount": "lots" })),
        "leases.dce.dev",
        "bad",
        Some(&namespace),
    )
    .await;
    assert!(
        message.contains("spec.budgetAmount: Invalid value: \"string\"")
            && message.contains("must be of type number"),
        "{message}"
    );

    let message = rejected(
        &e2e,
        &lease(json!({ "budgetCurrency": "dollars" })),
        "leases.dce.dev",
        "bad",
        Some(&namespace),
    )
    .await;
    assert!(
        message.contains(r#"spec.budgetCurrency: Invalid value: "dollars""#)
            && message.contains("should match '^[A-Z]{3}$'"),
        "{message}"
    );

    let message = rejected(
        &e2e,
        &lease(json!({ "duration": "8 hours" })),
        "leases.dce.dev",
        "bad",
        Some(&namespace),
    )
    .await;
    assert!(
        message.contains(r#"spec.duration: Invalid value: "8 hours""#),
        "{message}"
    );

    let message = rejected(
        &e2e,
        &lease(json!({ "principalId": null })),
        "leases.dce.dev",
        "bad",
        Some(&namespace),
    )
    .await;
    assert!(
        message.contains("spec.principalId: Required value"),
        "{message}"
    );
    e2e.finish().await;
    Ok(())
}
