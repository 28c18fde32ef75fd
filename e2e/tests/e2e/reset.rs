//! Account reset through a Job: before first use and after every lease.

use dce_e2e::kubectl::text;
use dce_e2e::target::{E2e, OperatorOptions, Reset};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn accounts_are_reset_by_a_job_before_first_use_and_after_each_lease() -> anyhow::Result<()> {
    let e2e = E2e::start(OperatorOptions {
        reset: Reset::Job,
        ..OperatorOptions::default()
    })
    .await?;
    let namespace = e2e.namespace("reset").await?;
    let id = account_id(0);
    e2e.apply(&account_manifest(&id)).await?;

    // A new account may hold leftovers: it is reset before it is offered.
    let job = e2e
        .eventually("the first reset Job", || async {
            e2e.reset_jobs(&id).await.ok()?.into_iter().next()
        })
        .await?;
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(
        (text(owner, "/kind"), text(owner, "/name")),
        ("Account", id.as_str()),
        "{job}"
    );
    assert_eq!(owner["controller"], json!(true));
    if e2e.is_local() {
        // Nothing runs the Job here, so the account waits for it.
        let account = e2e
            .kubectl
            .get_json("accounts.dce.dev", Some(&id), None)
            .await?;
        assert_eq!(
            text(&account, "/status/accountStatus"),
            "NotReady",
            "{account}"
        );
    }
    let first_job = e2e.complete_reset(&id).await?;
    e2e.wait_account(&id, "Ready").await?;
    // A finished reset Job is cleaned up with the Secret that gave it the account's keys.
    let operator_namespace = Some(e2e.operator_namespace.as_str());
    e2e.kubectl
        .wait(
            "delete",
            &format!("job/{first_job}"),
            operator_namespace,
            e2e.patience,
        )
        .await?;
    e2e.kubectl
        .wait(
            "delete",
            &format!("secret/{first_job}"),
            operator_namespace,
            e2e.patience,
        )
        .await?;
    // One reset, one Job: a second one would clean the account concurrently and outlive it.
    let leftover: Vec<String> = e2e
        .reset_jobs(&id)
        .await?
        .iter()
        .map(|job| text(job, "/metadata/name").to_string())
        .collect();
    assert!(
        leftover.is_empty(),
        "reset Jobs besides {first_job}: {leftover:?}"
    );

    // After a lease the account is reset again before the next one.
    e2e.apply(&sample_lease("used", &namespace, "alice", json!({})))
        .await?;
    e2e.kubectl
        .wait(
            "condition=Ready",
            "leases.dce.dev/used",
            Some(&namespace),
            e2e.patience,
        )
        .await?;
    e2e.kubectl
        .ok(
            &["delete", "leases.dce.dev", "used", "-n", &namespace],
            None,
        )
        .await?;
    if e2e.is_local() {
        e2e.wait_account(&id, "NotReady").await?;
    }
    let second_job = e2e.complete_reset(&id).await?;
    assert_ne!(second_job, first_job, "each reset runs its own Job");
    e2e.wait_account(&id, "Ready").await?;
    let account = e2e
        .kubectl
        .get_json("accounts.dce.dev", Some(&id), None)
        .await?;
    let failures = account["status"]["resetFailures"].as_i64().unwrap_or(0);
    assert_eq!(failures, 0, "{account}");
    e2e.finish().await;
    Ok(())
}
