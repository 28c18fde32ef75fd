//! Accounts onboarded as DCE does, by the real reconcilers against a real control plane and IAM
//! on moto: a validated Account gets its principal role and policy, leases get credentials for
//! that role, and deleting the Account removes what was created and nothing else.

mod common;

use common::{
    JobOutcome, RunningOperator, WAIT, account, account_id, credentials_from, events_about,
    finish_job, lease, next_reset_job, wait_accounts_ready, wait_lease,
};
use dce_e2e::cluster::{TestCluster, wait_for};
use dce_operator::aws::{Aws, AwsSettings, Identity, StaticKeys, TemporaryCredentials};
use dce_operator::lifecycle::ResetMode;
use dce_operator::lifecycle::principal;
use dce_operator::resources::{Account, AccountPhase, Lease, LeasePhase};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use sha2::{Digest, Sha256};

/// Events about cluster-scoped objects (Accounts) land here.
const CLUSTER_EVENTS_NAMESPACE: &str = "default";
const ROLE: &str = "DCEPrincipal";

/// An AWS client on moto with an identity of its own (moto accepts any keys).
fn aws(cluster: &TestCluster) -> Aws {
    Aws::with_operator_keys(
        AwsSettings {
            sts_endpoint: Some(cluster.moto.endpoint()),
            iam_endpoint: Some(cluster.moto.endpoint()),
            ..AwsSettings::default()
        },
        &StaticKeys {
            access_key_id: "AKIDCHECKER".into(),
            secret_access_key: "checker-secret".into(),
        },
    )
}

/// Admin access to account `id`, as the operator gets it.
async fn admin(aws: &Aws, id: &str) -> TemporaryCredentials {
    aws.assume_role(
        None,
        &format!("arn:aws:iam::{id}:role/OrganizationAccountAccessRole"),
        "checker",
        900,
    )
    .await
    .unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn onboarded_account_gets_its_principal_and_loses_it_on_deletion() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-p").await?;
    let _operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let client = &cluster.client;
    let id = account_id(7);
    let accounts: Api<Account> = Api::all(client.clone());
    accounts
        .create(&PostParams::default(), &account(&id))
        .await?;
    wait_accounts_ready(client, std::slice::from_ref(&id)).await?;

    let aws = aws(&cluster);
    let creds = admin(&aws, &id).await;
    let admin = Identity::Temporary(&creds);
    // The role trusts the operator's identity, for as long as lease credentials last.
    let role = aws
        .get_role(admin, ROLE)
        .await?
        .expect("the principal role");
    let operator = common::operator_identity(&cluster).await;
    assert_eq!(
        json(&role.trust_policy),
        json(&principal::trust_policy(&principal::trust_principal(
            &operator.arn
        )))
    );
    assert_eq!(role.max_session_seconds, Some(3600));
    assert!(principal::is_managed(&role.tags));
    // The policy is the default template's, rendered for this account, and its hash is in
    // the status.
    let policy_arn = principal::policy_arn(&id, &principal::policy_name(ROLE));
    let policy = aws
        .get_policy(admin, &policy_arn)
        .await?
        .expect("the policy");
    let document = aws
        .policy_document(admin, &policy_arn, &policy.default_version.unwrap())
        .await?;
    let document = json(&document);
    assert_eq!(
        document["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "DenyOutsideAllowedRegions")
            .unwrap()["Condition"]["StringNotEquals"]["aws:RequestedRegion"],
        serde_json::json!(["us-east-1"])
    );
    let stored = accounts.get(&id).await?;
    let status = stored.status.clone().unwrap();
    assert_eq!(
        status.principal_policy_hash,
        Some(hex::encode(Sha256::digest(document.to_string().as_bytes())))
    );
    let provisioned = status
        .conditions
        .iter()
        .find(|c| c.type_ == "PrincipalProvisioned")
        .expect("the condition");
    assert_eq!(
        (provisioned.status.as_str(), provisioned.reason.as_str()),
        ("True", "PrincipalRoleProvisioned")
    );
    assert_eq!(
        aws.attached_policies(admin, ROLE).await?,
        vec![policy_arn.clone()]
    );
    wait_for(WAIT, || async {
        let events = events_about(
            client,
            CLUSTER_EVENTS_NAMESPACE,
            &id,
            "PrincipalRoleProvisioned",
        )
        .await
        .ok()?;
        (!events.is_empty()).then_some(())
    })
    .await?;

    // Lease credentials are for that role.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "team-p");
    leases
        .create(&PostParams::default(), &lease("dev", "alice"))
        .await?;
    wait_lease(&leases, "dev", LeasePhase::Active).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-p");
    let secret = wait_for(WAIT, || async {
        secrets.get("dev-aws-credentials").await.ok()
    })
    .await?;
    let who = aws.caller_identity_of(&credentials_from(&secret)).await?;
    assert_eq!(who.account, id);
    assert!(
        who.arn
            .starts_with(&format!("arn:aws:sts::{id}:assumed-role/{ROLE}/")),
        "{}",
        who.arn
    );
    leases.delete("dev", &DeleteParams::default()).await?;
    wait_for(WAIT, || async {
        leases.get_opt("dev").await.ok()?.is_none().then_some(())
    })
    .await?;
    wait_accounts_ready(client, std::slice::from_ref(&id)).await?;

    // Someone else's role in the account survives the Account's deletion.
    let trust = principal::trust_policy(&operator.arn);
    aws.create_role(admin, "TeamRole", &trust, 3600, &Default::default())
        .await?;
    accounts.delete(&id, &DeleteParams::default()).await?;
    wait_for(WAIT, || async {
        accounts.get_opt(&id).await.ok()?.is_none().then_some(())
    })
    .await?;
    assert!(aws.get_role(admin, ROLE).await?.is_none(), "role deleted");
    assert!(
        aws.get_policy(admin, &policy_arn).await?.is_none(),
        "policy deleted"
    );
    assert!(aws.get_role(admin, "TeamRole").await?.is_some());
    let removed = events_about(
        client,
        CLUSTER_EVENTS_NAMESPACE,
        &id,
        "PrincipalRoleRemoved",
    )
    .await?;
    assert_eq!(
        removed[0].note.as_deref(),
        Some(format!("deleted policy {ROLE}DefaultPolicy and role {ROLE}").as_str())
    );
    Ok(())
}

#[tokio::test]
async fn account_naming_its_own_principal_role_gets_nothing_provisioned() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let _operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let id = account_id(8);
    let mut own = account(&id);
    own.spec.principal_role_arn = Some(format!("arn:aws:iam::{id}:role/TheirPrincipal"));
    let accounts: Api<Account> = Api::all(cluster.client.clone());
    accounts.create(&PostParams::default(), &own).await?;
    wait_accounts_ready(&cluster.client, std::slice::from_ref(&id)).await?;

    let aws = aws(&cluster);
    let creds = admin(&aws, &id).await;
    let admin = Identity::Temporary(&creds);
    assert!(aws.get_role(admin, ROLE).await?.is_none());
    assert!(aws.get_role(admin, "TheirPrincipal").await?.is_none());
    let policy_arn = principal::policy_arn(&id, &principal::policy_name(ROLE));
    assert!(aws.get_policy(admin, &policy_arn).await?.is_none());
    let status = accounts.get(&id).await?.status.unwrap();
    assert_eq!(status.principal_policy_hash, None);
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.type_ != "PrincipalProvisioned")
    );
    Ok(())
}

#[tokio::test]
async fn a_foreign_role_in_the_way_is_reported_and_left_alone() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let id = account_id(9);
    let aws = aws(&cluster);
    let creds = admin(&aws, &id).await;
    let admin = Identity::Temporary(&creds);
    let theirs = principal::trust_policy(&format!("arn:aws:iam::{id}:root"));
    aws.create_role(admin, ROLE, &theirs, 3600, &Default::default())
        .await?;

    let _operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let accounts: Api<Account> = Api::all(cluster.client.clone());
    accounts
        .create(&PostParams::default(), &account(&id))
        .await?;
    let (reason, message) = wait_for(WAIT, || async {
        let status = accounts.get(&id).await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "PrincipalProvisioningFailed")
            .then(|| (ready.reason.clone(), ready.message.clone()))
    })
    .await?;
    assert_eq!(reason, "PrincipalProvisioningFailed");
    assert!(
        message.contains("role DCEPrincipal exists but was not created by the operator"),
        "{message}"
    );
    common::wait_warning_event(
        &cluster.client,
        CLUSTER_EVENTS_NAMESPACE,
        &id,
        "PrincipalProvisioningFailed",
    )
    .await?;
    let role = aws.get_role(admin, ROLE).await?.unwrap();
    assert_eq!(json(&role.trust_policy), json(&theirs), "left alone");

    // Deleting the Account leaves it alone too.
    accounts.delete(&id, &DeleteParams::default()).await?;
    wait_for(WAIT, || async {
        accounts.get_opt(&id).await.ok()?.is_none().then_some(())
    })
    .await?;
    assert!(aws.get_role(admin, ROLE).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn principal_removed_by_a_reset_is_provisioned_again_before_ready() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let _operator = RunningOperator::start(&cluster, ResetMode::Job);
    let client = &cluster.client;
    let id = account_id(10);
    let accounts: Api<Account> = Api::all(client.clone());
    accounts
        .create(&PostParams::default(), &account(&id))
        .await?;
    // New accounts are provisioned, then reset before first use.
    let job = next_reset_job(client, &id, None).await?;
    let aws = aws(&cluster);
    let creds = admin(&aws, &id).await;
    let admin = Identity::Temporary(&creds);
    let policy_arn = principal::policy_arn(&id, &principal::policy_name(ROLE));
    let removal = dce_operator::controllers::principal::remove(
        &aws,
        admin,
        ROLE,
        &principal::policy_name(ROLE),
        &policy_arn,
    )
    .await?;
    assert_eq!(removal.deleted.len(), 2, "provisioned before the reset");

    // The reset took them (as a careless filter would); the account is Ready only with them back.
    finish_job(
        client,
        &job.metadata.name.clone().unwrap(),
        JobOutcome::Complete,
    )
    .await?;
    wait_for(WAIT, || async {
        (accounts.get(&id).await.ok()?.phase() == Some(AccountPhase::Ready)).then_some(())
    })
    .await?;
    assert!(aws.get_role(admin, ROLE).await?.is_some(), "role back");
    assert!(
        aws.get_policy(admin, &policy_arn).await?.is_some(),
        "policy back"
    );
    assert_eq!(aws.attached_policies(admin, ROLE).await?, vec![policy_arn]);
    Ok(())
}

#[tokio::test]
async fn a_changed_template_becomes_the_policys_default_version() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let id = account_id(11);
    let accounts: Api<Account> = Api::all(cluster.client.clone());
    accounts
        .create(&PostParams::default(), &account(&id))
        .await?;
    wait_accounts_ready(&cluster.client, std::slice::from_ref(&id)).await?;
    let first_hash = accounts
        .get(&id)
        .await?
        .status
        .unwrap()
        .principal_policy_hash;
    operator.stop().await;

    // The operator restarts with another template; a requested sync applies it.
    let template = r#"{"Version": "2012-10-17", "Statement": [
        {"Sid": "Regions", "Effect": "Deny", "NotAction": "iam:*", "Resource": "*",
         "Condition": {"StringNotEquals": {"aws:RequestedRegion": {{allowedRegions}}}}},
        {"Sid": "Rest", "Effect": "Allow", "Action": "*", "Resource": "*"}]}"#;
    let _operator = RunningOperator::start_with(
        &cluster,
        common::OperatorOptions {
            principal_policy_template: template.to_string(),
            ..common::OperatorOptions::new(ResetMode::Disabled)
        },
    );
    let patch = serde_json::json!({ "metadata": { "annotations": {
        dce_operator::lifecycle::account::SYNC_REQUEST_ANNOTATION: "template-changed"
    } } });
    accounts
        .patch(&id, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let new_hash = wait_for(WAIT, || async {
        let hash = accounts.get(&id).await.ok()?.status?.principal_policy_hash;
        (hash != first_hash).then_some(hash)
    })
    .await?;

    let aws = aws(&cluster);
    let creds = admin(&aws, &id).await;
    let admin = Identity::Temporary(&creds);
    let policy_arn = principal::policy_arn(&id, &principal::policy_name(ROLE));
    let versions = aws.policy_versions(admin, &policy_arn).await?;
    assert_eq!(versions.len(), 2, "{versions:?}");
    let default = versions.iter().find(|v| v.is_default).unwrap();
    let document = json(&aws.policy_document(admin, &policy_arn, &default.id).await?);
    assert_eq!(
        document["Statement"][0]["Condition"]["StringNotEquals"]["aws:RequestedRegion"],
        serde_json::json!(["us-east-1"])
    );
    assert_eq!(
        new_hash,
        Some(hex::encode(Sha256::digest(document.to_string().as_bytes())))
    );
    Ok(())
}
