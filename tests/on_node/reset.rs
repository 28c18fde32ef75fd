//! Account resets for real: the reset Job runs aws-nuke, built here, with the configuration the
//! operator generates, against the local AWS endpoint.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Instant;

use dce_e2e::aws_account::AwsAccount;
use dce_e2e::helm::chart_dir;
use dce_operator::resources::{Account, AccountPhase, Lease};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};

use crate::fixture::{NAMESPACE, NUKE_IMAGE, OnNode, REGION, RELEASE, eventually};
use crate::install::{
    ADMIN_ROLE, FIRST_LEASE, TEAM_NAMESPACE, active_lease, admin_role_arn, lease_credentials,
};

/// Resources a lease holder leaves behind in the measured reset.
const LEFT_BEHIND: usize = 50;
/// Events about cluster-scoped objects (Accounts) are recorded here.
const CLUSTER_EVENTS_NAMESPACE: &str = "default";

/// Ends `lease` and waits until its account is Ready again, returning the reset Jobs seen.
async fn release(cluster: &OnNode, lease: &str, account: &str) -> anyhow::Result<BTreeSet<String>> {
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), TEAM_NAMESPACE);
    leases.delete(lease, &DeleteParams::default()).await?;
    let accounts: Api<Account> = Api::all(cluster.client.clone());
    let jobs = RefCell::new(BTreeSet::new());
    eventually(|| {
        let (accounts, jobs) = (&accounts, &jobs);
        async move {
            let account = accounts.get(account).await.ok()?;
            let status = account.status.clone().unwrap_or_default();
            jobs.borrow_mut().extend(status.reset_job.clone());
            (account.phase() == Some(AccountPhase::Ready) && !status.reset_required).then_some(())
        }
    })
    .await?;
    Ok(jobs.into_inner())
}

pub async fn a_released_account_is_emptied_by_aws_nuke(
    cluster: &OnNode,
    account: &str,
) -> anyhow::Result<()> {
    // The lease whose Secret a Pod mounted: its holder leaves resources behind.
    let lease = active_lease(cluster, FIRST_LEASE, account).await?;
    let keys = lease_credentials(cluster, &lease).await?;
    let holder = AwsAccount::with_keys(&cluster.moto.endpoint(), REGION, &keys);
    let left = holder.populate(LEFT_BEHIND - 1, "alice").await?;
    // One bucket the configured filter (`keep-*` on the bucket's Name) protects.
    let kept = holder.populate(1, "keep-me").await?;
    let before = holder.inventory().await?;
    for (kind, names) in &left {
        assert!(
            names.is_subset(&before[kind]),
            "{kind}: {names:?} not in {before:?}"
        );
    }

    let started = Instant::now();
    let jobs = release(cluster, FIRST_LEASE, account).await?;
    eprintln!(
        "reset of an account holding {LEFT_BEHIND} resources: {:.1} s from the lease's end to \
         Ready (jobs {jobs:?})",
        started.elapsed().as_secs_f64()
    );
    assert!(!jobs.is_empty(), "a reset Job ran");

    let admin = AwsAccount::assuming(&cluster.moto.endpoint(), REGION, &admin_role_arn());
    let after = admin.inventory().await?;
    for (kind, names) in &left {
        let survivors: Vec<&String> = names.intersection(&after[kind]).collect();
        assert!(survivors.is_empty(), "aws-nuke left {kind} {survivors:?}");
    }
    // The operator's roles and policy, and the filtered bucket, are kept.
    assert_eq!(after["S3Bucket"], kept["S3Bucket"], "{after:?}");
    for role in [ADMIN_ROLE, "DCEPrincipal"] {
        assert!(after["IAMRole"].contains(role), "{role} deleted: {after:?}");
    }
    assert!(
        after["IAMPolicy"].contains("DCEPrincipalDefaultPolicy"),
        "{after:?}"
    );
    assert!(
        after["IAMRolePolicyAttachment"].contains("DCEPrincipal -> DCEPrincipalDefaultPolicy"),
        "{after:?}"
    );
    Ok(())
}

/// A reset whose aws-nuke cannot reach AWS fails: the Account stays NotReady with the Job's
/// reason in its condition and a Warning Event, retries with backoff, and becomes Ready once the
/// configuration is fixed (each a `helm upgrade`, rolled out on the node).
pub async fn a_failing_reset_leaves_the_account_not_ready_until_fixed(
    cluster: &mut OnNode,
    account: &str,
) -> anyhow::Result<()> {
    // Nothing listens on port 1 of the loopback.
    let broken = cluster.values("http://127.0.0.1:1");
    cluster.helm.upgrade(RELEASE, &chart_dir(), &broken).await?;
    cluster.wait_rolled_out().await?;

    active_lease(cluster, "carol-sandbox", account).await?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), TEAM_NAMESPACE);
    leases
        .delete("carol-sandbox", &DeleteParams::default())
        .await?;
    let accounts: Api<Account> = Api::all(cluster.client.clone());
    let failed = eventually(|| async {
        let account = accounts.get(account).await.ok()?;
        let status = account.status.clone()?;
        (status.reset_failures >= 1).then_some(status)
    })
    .await?;
    let condition = failed
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready condition");
    assert_eq!(condition.status, "False");
    assert_eq!(condition.reason, "ResetFailed");
    assert!(
        condition.message.contains("BackoffLimitExceeded"),
        "the Job's reason: {}",
        condition.message
    );
    assert!(failed.next_reset_at.is_some(), "a retry is scheduled");
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), CLUSTER_EVENTS_NAMESPACE);
    let selector = format!("involvedObject.kind=Account,involvedObject.name={account}");
    // Published after the status write that records the failure.
    eventually(|| async {
        let listed = events
            .list(&ListParams::default().fields(&selector))
            .await
            .ok()?;
        listed
            .items
            .iter()
            .any(|e| {
                e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("ResetFailed")
            })
            .then_some(())
    })
    .await
    .map_err(|_| anyhow::anyhow!("no ResetFailed Warning Event on the Account"))?;
    // The failed Job used the aws-nuke image.
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let images: Vec<String> = jobs
        .list(&ListParams::default().labels("dce.dev/account"))
        .await?
        .items
        .iter()
        .filter_map(|j| {
            j.spec.as_ref()?.template.spec.as_ref()?.containers[0]
                .image
                .clone()
        })
        .collect();
    assert!(images.iter().all(|i| i == NUKE_IMAGE), "{images:?}");

    let fixed = cluster.values(&cluster.moto.endpoint());
    cluster.helm.upgrade(RELEASE, &chart_dir(), &fixed).await?;
    cluster.wait_rolled_out().await?;
    eventually(|| async {
        let account = accounts.get(account).await.ok()?;
        let status = account.status.clone()?;
        (account.phase() == Some(AccountPhase::Ready) && status.reset_failures == 0).then_some(())
    })
    .await?;
    Ok(())
}
