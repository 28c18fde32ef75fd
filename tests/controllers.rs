//! The real reconcilers against a real control plane and STS on moto.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use common::{
    OperatorOptions, RunningOperator, WAIT, account, assert_pool_consistent, create_accounts,
    credentials_from, lease, wait_accounts_ready, wait_lease,
};
use dce_e2e::cluster::{OPERATOR_NAMESPACE, TestCluster, wait_for};
use dce_operator::aws::{Aws, AwsSettings, StaticKeys};
use dce_operator::lifecycle::ResetMode;
use dce_operator::lifecycle::credentials::{MANAGED_LABEL, MANAGED_VALUE};
use dce_operator::lifecycle::sync::CREDENTIALS_REFRESH_ANNOTATION;
use dce_operator::metrics::{ErrorLabels, ResultLabels};
use dce_operator::resources::{Account, AccountPhase, Lease, LeasePhase, LeaseReason};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};

#[tokio::test]
async fn lease_gets_an_account_and_working_credentials_then_expires_to_the_second()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-a").await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let ids = create_accounts(&cluster.client, 1).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;

    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "team-a");
    let mut l = lease("dev", "alice");
    let expires = Timestamp::now() + SignedDuration::from_secs(4);
    l.spec.expires_on = Some(Time(Timestamp::from_second(expires.as_second())?));
    leases.create(&PostParams::default(), &l).await?;
    let active = wait_lease(&leases, "dev", LeasePhase::Active).await?;
    let status = active.status.clone().unwrap();
    assert_eq!(status.account_id.as_deref(), Some(ids[0].as_str()));
    assert_eq!(status.lease_status_reason, Some(LeaseReason::Active));

    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "team-a");
    let secret = wait_for(WAIT, || async {
        secrets.get("dev-aws-credentials").await.ok()
    })
    .await?;
    let creds = credentials_from(&secret);
    let aws = Aws::with_operator_keys(
        AwsSettings {
            sts_endpoint: Some(cluster.moto.endpoint()),
            ..AwsSettings::default()
        },
        &StaticKeys {
            access_key_id: "x".into(),
            secret_access_key: "y".into(),
        },
    );
    let identity = aws.caller_identity_of(&creds).await?;
    assert_eq!(
        identity.account, ids[0],
        "credentials name the leased account"
    );
    assert!(identity.arn.contains("DCEPrincipal"), "{}", identity.arn);

    let ended = wait_lease(&leases, "dev", LeasePhase::Inactive).await?;
    assert_eq!(ended.reason(), Some(LeaseReason::Expired));
    let ended_at = ended
        .status
        .as_ref()
        .unwrap()
        .lease_status_modified_on
        .clone()
        .unwrap()
        .0;
    let lag = ended_at.duration_since(Timestamp::from_second(expires.as_second())?);
    assert!(
        lag >= SignedDuration::ZERO && lag < SignedDuration::from_secs(2),
        "expiry lag {lag}"
    );
    wait_for(WAIT, || async {
        secrets
            .get_opt("dev-aws-credentials")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await?;
    wait_accounts_ready(&cluster.client, &ids).await?;

    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

/// Creates leases `<prefix>00`, `<prefix>01`, … for principals `user0`, `user1`, …, one after
/// another.
async fn create_leases(leases: &Api<Lease>, prefix: &str, count: usize) -> anyhow::Result<()> {
    for i in 0..count {
        leases
            .create(
                &PostParams::default(),
                &lease(&format!("{prefix}{i:02}"), &format!("user{i}")),
            )
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_leases_never_share_an_account_and_waiters_are_served_in_order()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-b").await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let ids = create_accounts(&cluster.client, 8).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;

    // One after another, so creation order is known: many share a creation second, and the
    // queue breaks those ties by the order the operator's watch delivered them in.
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "team-b");
    create_leases(&leases, "l", 12).await?;
    let count = |phase| {
        let leases = leases.clone();
        async move {
            leases
                .list(&Default::default())
                .await
                .map(|l| l.items.iter().filter(|x| x.phase() == Some(phase)).count())
                .unwrap_or(0)
        }
    };
    let settled = wait_for(WAIT, || async {
        (count(LeasePhase::Active).await == 8 && count(LeasePhase::Pending).await == 4)
            .then_some(())
    })
    .await;
    if let Err(e) = settled {
        let summary: Vec<String> = leases
            .list(&Default::default())
            .await?
            .items
            .iter()
            .map(|l| {
                format!(
                    "{} {:?} {:?} {:?}",
                    l.name_any(),
                    l.phase(),
                    l.reason(),
                    l.status.as_ref().and_then(|s| s.message.clone())
                )
            })
            .collect();
        panic!("{e}: {summary:#?}");
    }
    assert_pool_consistent(&cluster).await?;
    // First come, first served: the first eight created hold the eight accounts.
    let all = leases.list(&Default::default()).await?;
    let mut active: Vec<String> = all
        .items
        .iter()
        .filter(|l| l.phase() == Some(LeasePhase::Active))
        .map(|l| l.name_any())
        .collect();
    active.sort();
    let first_eight: Vec<String> = (0..8).map(|i| format!("l{i:02}")).collect();
    assert_eq!(active, first_eight);

    // Free one account: the oldest waiting lease gets it.
    leases.delete("l03", &DeleteParams::default()).await?;
    wait_lease(&leases, "l08", LeasePhase::Active).await?;
    assert_pool_consistent(&cluster).await?;
    // Each of the nine assignments is one successful claim, whatever races were lost on the way.
    let claimed = operator
        .metrics()
        .account_claims
        .get_or_create(&ResultLabels { result: "claimed" })
        .get();
    assert_eq!(claimed, 9);

    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn killed_and_restarted_operator_converges_without_double_assignment_or_orphans()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-c").await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let ids = create_accounts(&cluster.client, 6).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "team-c");
    create_leases(&leases, "r", 10).await?;
    // Kill it while it is assigning.
    tokio::time::sleep(Duration::from_millis(150)).await;
    operator.kill().await;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let active = || async {
        leases.list(&Default::default()).await.ok().map(|l| {
            l.items
                .iter()
                .filter(|x| x.phase() == Some(LeasePhase::Active))
                .count()
        })
    };
    wait_for(WAIT, || async { (active().await? == 6).then_some(()) }).await?;
    // Every Active lease holds one account and its Secret; no Secret without an Active lease.
    assert_pool_consistent(&cluster).await?;

    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn tampered_secret_is_repaired_and_foreign_secret_left_alone() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-d").await?;
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "team-d");
    let foreign = Secret {
        metadata: ObjectMeta {
            name: Some("taken-aws-credentials".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "keep".to_string(),
            ByteString(b"me".to_vec()),
        )])),
        ..Secret::default()
    };
    secrets.create(&PostParams::default(), &foreign).await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let ids = create_accounts(&cluster.client, 2).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "team-d");
    leases
        .create(&PostParams::default(), &lease("ok", "u1"))
        .await?;
    leases
        .create(&PostParams::default(), &lease("taken", "u2"))
        .await?;

    // Tampering: the operator puts its data back.
    let original = wait_for(WAIT, || async {
        secrets.get("ok-aws-credentials").await.ok()
    })
    .await
    .context("credentials Secret created")?;
    let patch = serde_json::json!({ "data": { "AWS_ACCESS_KEY_ID": "dGFtcGVyZWQ=" } });
    secrets
        .patch(
            "ok-aws-credentials",
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    wait_for(WAIT, || async {
        let now = secrets.get("ok-aws-credentials").await.ok()?;
        let key = now.data.as_ref()?.get("AWS_ACCESS_KEY_ID")?.0.clone();
        (key != b"tampered".to_vec() && now.resource_version() != original.resource_version())
            .then_some(())
    })
    .await
    .context("tampered Secret repaired")?;

    // The foreign Secret is reported, never overwritten.
    let leases_summary: Vec<String> = leases
        .list(&Default::default())
        .await?
        .items
        .iter()
        .map(|l| {
            format!(
                "{} {:?} {:?}",
                l.name_any(),
                l.phase(),
                l.status.as_ref().map(|s| &s.conditions)
            )
        })
        .collect();
    let reported = wait_for(WAIT, || async {
        let lease = leases.get("taken").await.ok()?;
        let ready = lease
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (ready.reason == "SecretNameConflict").then_some(ready)
    })
    .await
    .with_context(|| format!("conflict reported; leases: {:?}", leases_summary.clone()))?;
    assert_eq!(reported.status, "False");
    let untouched = secrets.get("taken-aws-credentials").await?;
    assert_eq!(untouched.data, foreign.data);

    // Dropping the managed label does not disown the operator's Secret (its owner reference
    // says whose it is): the label comes back and the lease keeps its credentials.
    let unlabel = serde_json::json!({ "metadata": { "labels": { MANAGED_LABEL: null } } });
    secrets
        .patch(
            "ok-aws-credentials",
            &PatchParams::default(),
            &Patch::Merge(unlabel),
        )
        .await?;
    wait_for(WAIT, || async {
        let secret = secrets.get("ok-aws-credentials").await.ok()?;
        (secret.labels().get(MANAGED_LABEL).map(String::as_str) == Some(MANAGED_VALUE))
            .then_some(())
    })
    .await
    .context("managed label restored")?;
    let ok = leases.get("ok").await?;
    let ready = ok
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready");
    assert_eq!(ready.map(|c| c.reason.as_str()), Some("CredentialsIssued"));

    // Once the foreign Secret is deleted, its deletion wakes the lease, which takes the name at
    // once (not at its next periodic re-check, a minute later).
    secrets
        .delete("taken-aws-credentials", &DeleteParams::default())
        .await?;
    let deleted = std::time::Instant::now();
    wait_for(Duration::from_secs(10), || async {
        let secret = secrets.get("taken-aws-credentials").await.ok()?;
        secret
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.name == "taken")
            .then_some(())
    })
    .await
    .context("the lease took the freed Secret name")?;
    eprintln!("freed Secret name taken after {:?}", deleted.elapsed());
    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn account_with_missing_credentials_is_not_ready_then_recovers() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let accounts: Api<Account> = Api::all(cluster.client.clone());
    let mut static_account = account("team-sandbox");
    static_account.spec.admin_role_arn = None;
    static_account.spec.credentials_secret_ref = Some(dce_operator::resources::SecretReference {
        name: "sandbox-keys".into(),
        namespace: OPERATOR_NAMESPACE.into(),
    });
    accounts
        .create(&PostParams::default(), &static_account)
        .await?;
    let failing = wait_for(WAIT, || async {
        let a = accounts.get("team-sandbox").await.ok()?;
        a.status.as_ref()?.sync_error.clone().map(|e| (a, e))
    })
    .await?;
    assert_eq!(failing.0.phase(), Some(AccountPhase::NotReady));
    assert!(failing.1.contains("sandbox-keys"), "{}", failing.1);

    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), OPERATOR_NAMESPACE);
    let keys = Secret {
        metadata: ObjectMeta {
            name: Some("sandbox-keys".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (
                "AWS_ACCESS_KEY_ID".to_string(),
                ByteString(b"AKIDSANDBOX".to_vec()),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                ByteString(b"sandbox-secret".to_vec()),
            ),
        ])),
        ..Secret::default()
    };
    secrets.create(&PostParams::default(), &keys).await?;
    // Ask for a sync now instead of waiting for the interval.
    let annotate =
        serde_json::json!({ "metadata": { "annotations": { "dce.dev/sync-requested": "1" } } });
    accounts
        .patch(
            "team-sandbox",
            &PatchParams::default(),
            &Patch::Merge(annotate),
        )
        .await?;
    let recovered = wait_for(WAIT, || async {
        let a = accounts.get("team-sandbox").await.ok()?;
        (a.phase() == Some(AccountPhase::Ready)).then_some(a)
    })
    .await?;
    let status = recovered.status.unwrap();
    assert_eq!(status.sync_error, None);
    assert_eq!(
        status.aws_account_id.as_deref(),
        Some("123456789012"),
        "moto's account for unknown keys"
    );
    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn requested_refresh_reissues_intact_credentials_once() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-r").await?;
    let _operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let ids = create_accounts(&cluster.client, 1).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "team-r");
    leases
        .create(&PostParams::default(), &lease("fresh", "u1"))
        .await?;
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "team-r");
    let original = wait_for(WAIT, || async {
        secrets.get("fresh-aws-credentials").await.ok()
    })
    .await
    .context("credentials Secret created")?;

    let request = serde_json::json!({
        "metadata": { "annotations": { CREDENTIALS_REFRESH_ANNOTATION: "sync-1" } }
    });
    leases
        .patch("fresh", &PatchParams::default(), &Patch::Merge(request))
        .await?;
    let refreshed = wait_for(WAIT, || async {
        let lease = leases.get("fresh").await.ok()?;
        let observed = lease.status.as_ref()?.observed_refresh_request.as_deref();
        let secret = secrets.get("fresh-aws-credentials").await.ok()?;
        (observed == Some("sync-1") && secret.resource_version() != original.resource_version())
            .then_some(secret)
    })
    .await
    .context("credentials refreshed on request")?;
    assert_ne!(
        credentials_from(&refreshed).access_key_id,
        credentials_from(&original).access_key_id,
        "a requested refresh issues new credentials"
    );

    // The same request value is not acted on again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = secrets.get("fresh-aws-credentials").await?;
    assert_eq!(later.resource_version(), refreshed.resource_version());
    Ok(())
}

#[tokio::test]
async fn a_lease_that_expired_while_the_operator_was_down_ended_at_its_expiry() -> anyhow::Result<()>
{
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-down").await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let ids = create_accounts(&cluster.client, 1).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "team-down");
    let mut l = lease("short", "dora");
    let expires =
        Timestamp::from_second((Timestamp::now() + SignedDuration::from_secs(3)).as_second())?;
    l.spec.expires_on = Some(Time(expires));
    leases.create(&PostParams::default(), &l).await?;
    wait_lease(&leases, "short", LeasePhase::Active).await?;
    operator.stop().await;

    // Down past the expiry, then back.
    let until_after = (expires + SignedDuration::from_secs(3)).duration_since(Timestamp::now());
    tokio::time::sleep(until_after.unsigned_abs()).await;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let ended = wait_lease(&leases, "short", LeasePhase::Inactive).await?;
    assert_eq!(ended.reason(), Some(LeaseReason::Expired));
    let ended_at = ended
        .status
        .as_ref()
        .and_then(|s| s.lease_status_modified_on.clone())
        .map(|t| t.0);
    assert_eq!(
        ended_at,
        Some(expires),
        "the expiry instant, not the restart"
    );
    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_lease_with_metadata_nested_too_deep_is_refused_at_once() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-deep").await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "team-deep");
    let mut deep = lease("deep", "dan");
    let nested = (0..30).fold(
        serde_json::json!("leaf"),
        |v, _| serde_json::json!({ "a": v }),
    );
    deep.spec.metadata = serde_json::from_value(nested)?;
    leases.create(&PostParams::default(), &deep).await?;
    let refused = wait_lease(&leases, "deep", LeasePhase::Inactive).await?;
    assert_eq!(refused.reason(), Some(LeaseReason::Invalid));
    let message = refused.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("metadata: nested deeper than 8 levels"),
        "{message}"
    );
    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

/// A Kubernetes API server that stops answering does not hang the operator: each call gives up
/// at its deadline (the reconcile fails, frees its request slot, and is retried), and work
/// resumes once the server answers again.
#[tokio::test]
async fn calls_to_a_hung_api_server_give_up_at_their_deadline() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-hang").await?;
    let operator = RunningOperator::start_with(
        &cluster,
        OperatorOptions {
            kube_call_deadline: Duration::from_secs(2),
            ..OperatorOptions::new(ResetMode::Disabled)
        },
    );
    let ids = create_accounts(&cluster.client, 1).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "team-hang");
    let mut soon = lease("soon", "hana");
    let expires =
        Timestamp::from_second((Timestamp::now() + SignedDuration::from_secs(3)).as_second())?;
    soon.spec.expires_on = Some(Time(expires));
    leases.create(&PostParams::default(), &soon).await?;
    wait_lease(&leases, "soon", LeasePhase::Active).await?;

    let kube_errors = || {
        operator
            .metrics()
            .reconcile_errors
            .get_or_create(&ErrorLabels {
                controller: "lease",
                error: "kube",
            })
            .get()
    };
    let before = kube_errors();
    cluster.control_plane.set_apiserver_frozen(true);
    // At expiry the lease's reconcile writes to a server that accepts and never answers.
    let gave_up = wait_for(Duration::from_secs(20), || async {
        (kube_errors() > before).then_some(())
    })
    .await;
    cluster.control_plane.set_apiserver_frozen(false);
    gave_up.context("no call gave up while the API server hung")?;
    let ended = wait_lease(&leases, "soon", LeasePhase::Inactive).await?;
    assert_eq!(ended.reason(), Some(LeaseReason::Expired));
    operator.stop().await;
    cluster.stop().await;
    Ok(())
}
