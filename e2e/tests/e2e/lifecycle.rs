//! A lease's life from `kubectl apply` of the samples: Ready accounts, an Active lease with
//! working credentials in its Secret, expiry to the second, and deletion.

use anyhow::ensure;
use dce_e2e::kubectl::text;
use dce_e2e::target::{E2e, OperatorOptions};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn sample_lease_gets_working_credentials_and_expires_on_time() -> anyhow::Result<()> {
    let e2e = E2e::start(OperatorOptions::default()).await?;
    let namespace = e2e.namespace("lifecycle").await?;
    let applied = e2e.apply_file(&sample("accounts.yaml")).await?;
    ensure!(
        applied.contains("account.dce.dev/111111111111 created"),
        "{applied}"
    );
    let ids: Vec<String> = SAMPLE_ACCOUNTS.iter().map(|id| id.to_string()).collect();
    accounts_ready(&e2e, &ids).await?;
    e2e.kubectl
        .wait(
            "condition=Ready",
            "accounts.dce.dev/111111111111",
            None,
            e2e.patience,
        )
        .await?;

    // Whole seconds, as the CRD's RFC 3339 field is usually written.
    let expires =
        Timestamp::from_second((Timestamp::now() + SignedDuration::from_secs(8)).as_second())?;
    e2e.apply(&sample_lease(
        "alice-sandbox",
        &namespace,
        "alice",
        json!({ "duration": null, "expiresOn": expires.to_string() }),
    ))
    .await?;
    e2e.kubectl
        .wait(
            "condition=Ready",
            "leases.dce.dev/alice-sandbox",
            Some(&namespace),
            e2e.patience,
        )
        .await?;
    let lease = e2e.lease(&namespace, "alice-sandbox").await?;
    assert_eq!(text(&lease, "/status/leaseStatus"), "Active", "{lease}");
    assert_eq!(text(&lease, "/status/leaseStatusReason"), "Active");
    let account_id = text(&lease, "/status/accountId").to_string();
    assert!(SAMPLE_ACCOUNTS.contains(&account_id.as_str()), "{lease}");
    assert_eq!(
        text(&lease, "/status/credentialsSecretName"),
        "alice-sandbox-aws-credentials"
    );
    let account = e2e
        .kubectl
        .get_json("accounts.dce.dev", Some(&account_id), None)
        .await?;
    assert_eq!(text(&account, "/status/accountStatus"), "Leased");
    assert_eq!(
        text(&account, "/status/lease/uid"),
        text(&lease, "/metadata/uid")
    );

    // The Secret sits beside the lease, is owned by it, and its keys work.
    let secret = e2e
        .kubectl
        .get_json(
            "secret",
            Some("alice-sandbox-aws-credentials"),
            Some(&namespace),
        )
        .await?;
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(text(owner, "/kind"), "Lease", "{secret}");
    assert_eq!(text(owner, "/uid"), text(&lease, "/metadata/uid"));
    let data = secret_data(&secret)?;
    for key in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "credentials",
    ] {
        assert!(data.contains_key(key), "Secret lacks {key}");
    }
    let (caller_account, arn) = caller_identity(&e2e, &secret).await?;
    assert_eq!(
        caller_account, account_id,
        "credentials name the leased account"
    );
    assert!(arn.contains(":assumed-role/DCEPrincipal/"), "{arn}");

    // Expiry ends it to the second and removes the credentials.
    e2e.kubectl
        .wait(
            "jsonpath={.status.leaseStatus}=Inactive",
            "leases.dce.dev/alice-sandbox",
            Some(&namespace),
            e2e.patience,
        )
        .await?;
    let ended = e2e.lease(&namespace, "alice-sandbox").await?;
    assert_eq!(
        text(&ended, "/status/leaseStatusReason"),
        "Expired",
        "{ended}"
    );
    let ended_at: Timestamp = text(&ended, "/status/leaseStatusModifiedOn").parse()?;
    let lag = ended_at.duration_since(expires);
    assert!(
        lag >= SignedDuration::ZERO && lag < SignedDuration::from_secs(2),
        "ended {lag} after expiresOn"
    );
    e2e.kubectl
        .wait(
            "delete",
            "secret/alice-sandbox-aws-credentials",
            Some(&namespace),
            e2e.patience,
        )
        .await?;
    e2e.account_ready(&account_id).await?;
    e2e.finish().await;
    Ok(())
}

#[tokio::test]
async fn deleting_a_lease_destroys_it_and_hands_its_account_to_the_next() -> anyhow::Result<()> {
    let e2e = E2e::start(OperatorOptions::default()).await?;
    let namespace = e2e.namespace("deletion").await?;
    let id = account_id(0);
    e2e.apply(&account_manifest(&id)).await?;
    e2e.account_ready(&id).await?;

    let first = sample_lease("first", &namespace, "alice", json!({}));
    e2e.apply(&first).await?;
    e2e.kubectl
        .wait(
            "condition=Ready",
            "leases.dce.dev/first",
            Some(&namespace),
            e2e.patience,
        )
        .await?;
    // The only account is taken: the next lease waits.
    e2e.apply(&sample_lease("second", &namespace, "bob", json!({})))
        .await?;
    e2e.kubectl
        .wait(
            "jsonpath={.status.leaseStatus}=Pending",
            "leases.dce.dev/second",
            Some(&namespace),
            e2e.patience,
        )
        .await?;

    let timeout = format!("--timeout={}s", e2e.patience.as_secs());
    let deleted = e2e
        .kubectl
        .ok(
            &[
                "delete",
                "leases.dce.dev",
                "first",
                "-n",
                &namespace,
                &timeout,
            ],
            None,
        )
        .await?;
    assert!(deleted.contains("deleted"), "{deleted}");
    assert!(
        !e2e.kubectl
            .exists("leases.dce.dev", "first", Some(&namespace))
            .await?
    );
    // The lease ended as Destroyed before it went: its Event says so.
    let destroyed = e2e
        .eventually("a Destroyed event for lease first", || async {
            let events = e2e.kubectl.list("events", Some(&namespace)).await.ok()?;
            events.into_iter().find(|event| {
                text(event, "/involvedObject/name") == "first"
                    && text(event, "/reason") == "Destroyed"
            })
        })
        .await?;
    assert!(
        text(&destroyed, "/message").contains("Inactive"),
        "{destroyed}"
    );
    e2e.kubectl
        .wait(
            "delete",
            "secret/first-aws-credentials",
            Some(&namespace),
            e2e.patience,
        )
        .await?;

    // The released account (reset first, where resets run) goes to the waiting lease.
    e2e.kubectl
        .wait(
            "condition=Ready",
            "leases.dce.dev/second",
            Some(&namespace),
            e2e.patience,
        )
        .await?;
    let second = e2e.lease(&namespace, "second").await?;
    assert_eq!(text(&second, "/status/accountId"), id);
    assert_exclusive(&e2e, &namespace).await?;
    e2e.finish().await;
    Ok(())
}
