//! AssumeRole failures surface in status and Events, and recover once the cause is fixed; an
//! outage of STS is told apart from refused credentials and recovered from within seconds.
//!
//! moto enforces SigV4 and IAM policies here: the operator's identity is an IAM user whose
//! policy decides which roles it may assume, and fixing the cause means changing that policy.

mod common;

use common::{
    OperatorOptions, RunningOperator, WAIT, account, account_id, credentials_from, lease,
    ready_condition, wait_warning_event,
};
use dce_e2e::cluster::{TestCluster, wait_for};
use dce_e2e::outage::OutageProxy;
use dce_operator::aws::{Aws, AwsSettings, StaticKeys};
use dce_operator::lifecycle::ResetMode;
use dce_operator::resources::{Account, AccountPhase, Lease, LeasePhase};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};

const OPERATOR_USER: &str = "dce-operator";
/// Events about cluster-scoped objects (Accounts) land here.
const CLUSTER_EVENTS_NAMESPACE: &str = "default";

/// An IAM policy allowing sts:AssumeRole on roles with these names, in any account.
fn assume_roles_named(roles: &[&str]) -> String {
    let resources: Vec<String> = roles
        .iter()
        .map(|role| format!("arn:aws:iam::*:role/{role}"))
        .collect();
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": resources }],
    })
    .to_string()
}

const ADMIN_ROLE: &str = "OrganizationAccountAccessRole";
const PRINCIPAL_ROLE: &str = "DCEPrincipal";

/// An account that names its own principal role, so the operator provisions nothing: moto
/// checks IAM calls against policies here, and an assumed admin role that does not exist in
/// moto has none.
fn account_with_own_principal(id: &str) -> Account {
    let mut account = account(id);
    account.spec.principal_role_arn = Some(format!("arn:aws:iam::{id}:role/{PRINCIPAL_ROLE}"));
    account
}

/// Creates the operator's IAM user with `policy`, then has moto enforce authentication, and
/// starts the operator with that user's keys.
async fn operator_with_policy(
    cluster: &TestCluster,
    policy: &str,
) -> anyhow::Result<RunningOperator> {
    let key = cluster
        .moto
        .create_user_with_key(OPERATOR_USER, Some(policy))
        .await?;
    cluster.moto.enforce_auth().await?;
    Ok(RunningOperator::start_with(
        cluster,
        OperatorOptions {
            operator_keys: StaticKeys {
                access_key_id: key.access_key_id,
                secret_access_key: key.secret_access_key,
            },
            ..OperatorOptions::new(ResetMode::Disabled)
        },
    ))
}

#[tokio::test]
async fn lease_credentials_failure_is_reported_and_recovers() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-f").await?;
    // The operator may reach accounts, but not yet hand out their principal role.
    let operator = operator_with_policy(&cluster, &assume_roles_named(&[ADMIN_ROLE])).await?;
    let client = &cluster.client;
    let id = account_id(3);
    let accounts: Api<Account> = Api::all(client.clone());
    accounts
        .create(&PostParams::default(), &account_with_own_principal(&id))
        .await?;
    common::wait_accounts_ready(client, std::slice::from_ref(&id)).await?;

    let leases: Api<Lease> = Api::namespaced(client.clone(), "team-f");
    leases
        .create(&PostParams::default(), &lease("dev", "alice"))
        .await?;
    let failing = wait_for(WAIT, || async {
        let lease = leases.get("dev").await.ok()?;
        let (ready, reason, message) = ready_condition(&lease.status.as_ref()?.conditions)?;
        (reason == "CredentialsFailed").then_some((lease, ready, message))
    })
    .await?;
    let (failing, ready, message) = failing;
    assert_eq!(ready, "False");
    assert_eq!(
        failing.phase(),
        Some(LeasePhase::Active),
        "the account stays assigned"
    );
    assert!(message.contains("access denied"), "{message}");
    wait_warning_event(client, "team-f", "dev", "CredentialsFailed").await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-f");
    assert!(secrets.get_opt("dev-aws-credentials").await?.is_none());

    // Fix the cause: allow the principal role too. The lease retries on its own.
    cluster
        .moto
        .replace_user_policy(
            OPERATOR_USER,
            &assume_roles_named(&[ADMIN_ROLE, PRINCIPAL_ROLE]),
        )
        .await?;
    let recovered = wait_for(WAIT, || async {
        let lease = leases.get("dev").await.ok()?;
        let (ready, reason, _) = ready_condition(&lease.status.as_ref()?.conditions)?;
        (ready == "True").then_some(reason)
    })
    .await?;
    assert_eq!(recovered, "CredentialsIssued");
    let secret = secrets.get("dev-aws-credentials").await?;
    let checker = Aws::with_operator_keys(
        AwsSettings {
            sts_endpoint: Some(cluster.moto.endpoint()),
            ..AwsSettings::default()
        },
        &StaticKeys {
            access_key_id: "unused".into(),
            secret_access_key: "unused".into(),
        },
    );
    let identity = checker
        .caller_identity_of(&credentials_from(&secret))
        .await?;
    assert_eq!(identity.account, id, "credentials name the leased account");

    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn account_whose_admin_role_cannot_be_assumed_recovers_after_a_forced_sync()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    // The operator may hand out principal roles, but not assume the accounts' admin role.
    let operator = operator_with_policy(&cluster, &assume_roles_named(&[PRINCIPAL_ROLE])).await?;
    let client = &cluster.client;
    let id = account_id(4);
    let accounts: Api<Account> = Api::all(client.clone());
    accounts
        .create(&PostParams::default(), &account_with_own_principal(&id))
        .await?;

    let failing = wait_for(WAIT, || async {
        let account = accounts.get(&id).await.ok()?;
        account.status.as_ref()?.sync_error.as_ref()?;
        Some(account)
    })
    .await?;
    assert_eq!(failing.phase(), Some(AccountPhase::NotReady));
    let status = failing.status.unwrap();
    let (ready, reason, message) = ready_condition(&status.conditions).unwrap();
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "CredentialsInvalid")
    );
    assert!(
        message.contains("cannot assume adminRoleArn") && message.contains("access denied"),
        "{message}"
    );
    wait_warning_event(client, CLUSTER_EVENTS_NAMESPACE, &id, "CredentialsInvalid").await?;

    // Fix the cause in AWS. Nothing in the cluster changed, so the account is only checked
    // again at the next periodic sync (an hour away) — or when a sync is requested.
    cluster
        .moto
        .replace_user_policy(
            OPERATOR_USER,
            &assume_roles_named(&[ADMIN_ROLE, PRINCIPAL_ROLE]),
        )
        .await?;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        accounts.get(&id).await?.phase(),
        Some(AccountPhase::NotReady)
    );
    let request =
        serde_json::json!({ "metadata": { "annotations": { "dce.dev/sync-requested": "fixed" } } });
    accounts
        .patch(&id, &PatchParams::default(), &Patch::Merge(request))
        .await?;
    let recovered = wait_for(WAIT, || async {
        let account = accounts.get(&id).await.ok()?;
        (account.phase() == Some(AccountPhase::Ready)).then_some(account)
    })
    .await?;
    let status = recovered.status.unwrap();
    assert_eq!(status.sync_error, None);
    assert_eq!(status.observed_sync_request.as_deref(), Some("fixed"));
    let (ready, reason, _) = ready_condition(&status.conditions).unwrap();
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "Available"));

    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_sts_outage_is_transient_and_everything_converges_within_seconds_of_its_end()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-o").await?;
    let sts = OutageProxy::start(cluster.moto.addr()).await?;
    let operator = RunningOperator::start_with(
        &cluster,
        OperatorOptions {
            sts_endpoint: Some(sts.endpoint()),
            ..OperatorOptions::new(ResetMode::Disabled)
        },
    );
    let client = &cluster.client;
    let accounts: Api<Account> = Api::all(client.clone());
    let validated = account_id(1);
    accounts
        .create(&PostParams::default(), &account(&validated))
        .await?;
    common::wait_accounts_ready(client, std::slice::from_ref(&validated)).await?;

    sts.set_down(true);
    // A new account cannot be validated: NotReady, but not for invalid credentials.
    let new = account_id(2);
    accounts
        .create(&PostParams::default(), &account(&new))
        .await?;
    let (_, reason, message) = wait_for(WAIT, || async {
        let account = accounts.get(&new).await.ok()?;
        ready_condition(&account.status?.conditions)
    })
    .await?;
    assert_eq!(reason, "AwsUnavailable", "{message}");
    // A forced re-validation of the validated account fails too, and leaves it in the pool.
    let failures_before = aws_errors(&operator);
    let force = serde_json::json!({ "metadata": { "annotations": {
        dce_operator::lifecycle::account::SYNC_REQUEST_ANNOTATION: "outage" } } });
    accounts
        .patch(&validated, &PatchParams::default(), &Patch::Merge(force))
        .await?;
    wait_for(WAIT, || async {
        (aws_errors(&operator) > failures_before).then_some(())
    })
    .await?;
    let still = accounts.get(&validated).await?;
    assert_eq!(still.phase(), Some(AccountPhase::Ready));

    // A lease gets that account; its credentials wait for AWS.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "team-o");
    leases
        .create(&PostParams::default(), &lease("dev", "olga"))
        .await?;
    let (ready, message) = wait_for(WAIT, || async {
        let lease = leases.get("dev").await.ok()?;
        let (ready, reason, message) = ready_condition(&lease.status.as_ref()?.conditions)?;
        (reason == "CredentialsPending" && lease.phase() == Some(LeasePhase::Active))
            .then_some((ready, message))
    })
    .await?;
    assert_eq!(ready, "False", "{message}");
    wait_warning_event(client, "team-o", "dev", "CredentialsPending").await?;

    // Let retries back off for a while, then end the outage.
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    sts.set_down(false);
    let back = std::time::Instant::now();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-o");
    wait_for(std::time::Duration::from_secs(20), || async {
        secrets
            .get_opt("dev-aws-credentials")
            .await
            .ok()?
            .map(|_| ())
    })
    .await?;
    let lease_back = back.elapsed();
    wait_for(std::time::Duration::from_secs(20), || async {
        let account = accounts.get(&new).await.ok()?;
        (account.phase() == Some(AccountPhase::Ready)).then_some(())
    })
    .await?;
    let account_back = back.elapsed();
    eprintln!(
        "after the outage: lease credentials in {lease_back:?}, new account Ready in {account_back:?}"
    );

    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

/// AWS calls of `operator` that failed.
fn aws_errors(operator: &RunningOperator) -> u64 {
    ["AssumeRole", "GetCallerIdentity"]
        .into_iter()
        .map(|operation| {
            operator
                .metrics()
                .aws_calls
                .get_or_create(&dce_operator::metrics::AwsCallLabels {
                    operation,
                    result: "error",
                })
                .get()
        })
        .sum()
}
