//! Account reset in Job mode: the operator starts a reset Job; the test plays the Job
//! controller, driving the Job's status to Complete or Failed.

mod common;

use common::{
    JobOutcome, RunningOperator, WAIT, account_id, create_accounts, finish_job, lease,
    next_reset_job, ready_condition, wait_accounts_ready, wait_lease, wait_warning_event,
};
use dce_e2e::cluster::{OPERATOR_NAMESPACE, TestCluster, wait_for};
use dce_operator::lifecycle::ResetMode;
use dce_operator::resources::{Account, AccountPhase, AccountStatus, Lease, LeasePhase};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};

/// Kubernetes' name for Events about cluster-scoped objects such as Accounts.
const CLUSTER_EVENTS_NAMESPACE: &str = "default";

async fn account_status(client: &Client, name: &str) -> anyhow::Result<AccountStatus> {
    let accounts: Api<Account> = Api::all(client.clone());
    Ok(accounts.get(name).await?.status.unwrap_or_default())
}

/// The reset Job, its credentials Secret and its aws-nuke configuration live in the operator
/// namespace and are owned by the Account, so deleting the Account removes them.
async fn assert_owned_by_account(client: &Client, job: &Job, account: &str) -> anyhow::Result<()> {
    let accounts: Api<Account> = Api::all(client.clone());
    let uid = accounts.get(account).await?.uid();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let secret = secrets.get(&job.name_any()).await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let config_map = config_maps.get(&job.name_any()).await?;
    for (what, meta) in [
        ("Job", &job.metadata),
        ("Secret", &secret.metadata),
        ("ConfigMap", &config_map.metadata),
    ] {
        assert_eq!(
            meta.namespace.as_deref(),
            Some(OPERATOR_NAMESPACE),
            "{what}"
        );
        let owners = meta.owner_references.clone().unwrap_or_default();
        assert!(
            owners.iter().any(|o| o.kind == "Account"
                && o.name == account
                && Some(&o.uid) == uid.as_ref()
                && o.controller == Some(true)),
            "{what} not owned by the account: {owners:?}"
        );
    }
    let data = secret.data.unwrap_or_default();
    for key in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        assert!(
            data.get(key).is_some_and(|v| !v.0.is_empty()),
            "reset Secret lacks {key}"
        );
    }
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let from = pod.containers[0].env_from.clone().unwrap_or_default();
    assert!(
        from.iter()
            .any(|f| f.secret_ref.as_ref().map(|s| s.name.as_str()) == Some(&*job.name_any())),
        "the Job reads its credentials from the Secret"
    );
    Ok(())
}

async fn wait_phase(client: &Client, name: &str, phase: AccountPhase) -> anyhow::Result<()> {
    let accounts: Api<Account> = Api::all(client.clone());
    wait_for(WAIT, || async {
        (accounts.get(name).await.ok()?.phase() == Some(phase)).then_some(())
    })
    .await
}

#[tokio::test]
async fn completed_reset_makes_the_account_ready_after_a_lease() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-r").await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Job);
    let client = &cluster.client;
    let id = create_accounts(client, 1).await?.remove(0);

    // A new pool account is reset before its first use.
    let first = next_reset_job(client, &id, None).await?;
    assert_owned_by_account(client, &first, &id).await?;
    finish_job(client, &first.name_any(), JobOutcome::Complete).await?;
    wait_accounts_ready(client, std::slice::from_ref(&id)).await?;

    let leases: Api<Lease> = Api::namespaced(client.clone(), "team-r");
    leases
        .create(&PostParams::default(), &lease("used", "alice"))
        .await?;
    wait_lease(&leases, "used", LeasePhase::Active).await?;
    leases.delete("used", &DeleteParams::default()).await?;

    // The lease ended: the account is NotReady while a new reset Job runs.
    let job = next_reset_job(client, &id, Some(&first.name_any())).await?;
    let status = account_status(client, &id).await?;
    assert_eq!(status.account_status, Some(AccountPhase::NotReady));
    let (ready, reason, _) = ready_condition(&status.conditions).unwrap();
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "Resetting"));
    assert_owned_by_account(client, &job, &id).await?;

    finish_job(client, &job.name_any(), JobOutcome::Complete).await?;
    wait_phase(client, &id, AccountPhase::Ready).await?;
    // The finished Job and its credentials are cleaned up.
    let jobs: Api<Job> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    wait_for(WAIT, || async {
        (jobs.get_opt(&job.name_any()).await.ok()?.is_none()
            && secrets.get_opt(&job.name_any()).await.ok()?.is_none())
        .then_some(())
    })
    .await?;

    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn failed_resets_are_retried_with_backoff_and_reported() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Job);
    let client = &cluster.client;
    let accounts: Api<Account> = Api::all(client.clone());
    let id = account_id(7);
    accounts
        .create(&PostParams::default(), &common::account(&id))
        .await?;

    let mut previous: Option<String> = None;
    for failures in 1..=2 {
        let job = next_reset_job(client, &id, previous.as_deref()).await?;
        let failed_at = jiff::Timestamp::now();
        finish_job(client, &job.name_any(), JobOutcome::Failed).await?;

        let status = wait_for(WAIT, || async {
            let status = accounts.get(&id).await.ok()?.status?;
            (status.reset_failures == failures).then_some(status)
        })
        .await?;
        assert_eq!(status.account_status, Some(AccountPhase::NotReady));
        let (ready, reason, message) = ready_condition(&status.conditions).unwrap();
        assert_eq!((ready.as_str(), reason.as_str()), ("False", "ResetFailed"));
        assert!(
            message.contains(&format!("consecutive reset failures: {failures};")),
            "{message}"
        );
        // Capped exponential backoff: the retry waits longer after each failure.
        let retry_at = status.next_reset_at.expect("retry scheduled").0;
        let delay = retry_at.duration_since(failed_at);
        let base = jiff::SignedDuration::from_secs(10i64 << (failures - 1));
        // Status times have second precision: allow a second either way.
        let second = jiff::SignedDuration::from_secs(1);
        assert!(
            delay >= base / 2 - second && delay <= base + second,
            "retry {failures} after {delay}"
        );
        // Each failure counts in the metric of announced transitions.
        wait_for(WAIT, || async {
            (operator.transitions("Account", "ResetFailed") == failures as u64).then_some(())
        })
        .await?;
        wait_warning_event(client, CLUSTER_EVENTS_NAMESPACE, &id, "ResetFailed").await?;
        previous = Some(job.name_any());
    }

    // The next attempt succeeds: the account is Ready and the failure count is cleared.
    let job = next_reset_job(client, &id, previous.as_deref()).await?;
    finish_job(client, &job.name_any(), JobOutcome::Complete).await?;
    wait_phase(client, &id, AccountPhase::Ready).await?;
    let status = account_status(client, &id).await?;
    assert_eq!(status.reset_failures, 0);
    assert_eq!(status.next_reset_at, None);

    operator.stop().await;
    cluster.stop().await;
    Ok(())
}
