//! Provisioning and removal of the principal role and policy against IAM on a real
//! `moto_server`, signed (as the operator does) with an account's assumed admin role.

use std::collections::BTreeMap;

use dce_e2e::cluster::install_crypto_provider;
use dce_e2e::moto::Moto;
use dce_operator::aws::{Aws, AwsSettings, Identity, StaticKeys, TemporaryCredentials};
use dce_operator::controllers::principal::{DesiredPrincipal, ProvisionError, provision, remove};
use dce_operator::lifecycle::principal::{
    self, DEFAULT_POLICY_TEMPLATE, MAX_POLICY_VERSIONS, PolicyInputs,
};

const ACCOUNT: &str = "210987654321";
const ROLE: &str = "DCEPrincipal";
const OPERATOR_ARN: &str = "arn:aws:iam::123456789012:user/dce-operator";

fn aws_for(moto: &Moto) -> Aws {
    install_crypto_provider();
    Aws::with_operator_keys(
        AwsSettings {
            sts_endpoint: Some(moto.endpoint()),
            iam_endpoint: Some(moto.endpoint()),
            ..AwsSettings::default()
        },
        &StaticKeys {
            access_key_id: "AKIAOPERATOR00000000".into(),
            secret_access_key: "operator-secret".into(),
        },
    )
}

/// The account's admin access, as the operator gets it.
async fn admin(aws: &Aws) -> TemporaryCredentials {
    let creds = aws
        .assume_role(
            None,
            &format!("arn:aws:iam::{ACCOUNT}:role/OrganizationAccountAccessRole"),
            "test-admin",
            900,
        )
        .await
        .unwrap();
    // IAM calls signed with it land in the pool account, not the operator's.
    assert_eq!(
        aws.caller_identity_of(&creds).await.unwrap().account,
        ACCOUNT
    );
    creds
}

fn desired(regions: &[&str]) -> DesiredPrincipal {
    let regions: Vec<String> = regions.iter().map(|r| r.to_string()).collect();
    let policy_name = principal::policy_name(ROLE);
    let policy_arn = principal::policy_arn(ACCOUNT, &policy_name);
    let policy = principal::render_policy(
        DEFAULT_POLICY_TEMPLATE,
        &PolicyInputs {
            account: ACCOUNT,
            principal_role_arn: &format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}"),
            principal_policy_arn: &policy_arn,
            admin_role_arn: Some(&format!(
                "arn:aws:iam::{ACCOUNT}:role/OrganizationAccountAccessRole"
            )),
            allowed_regions: &regions,
        },
    )
    .unwrap();
    DesiredPrincipal {
        role_name: ROLE.to_string(),
        policy_name,
        policy_arn,
        trust_policy: principal::trust_policy(OPERATOR_ARN),
        max_session_seconds: principal::max_session_seconds(7200),
        policy,
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn role_and_policy_are_created_exactly_as_the_template_says() {
    let moto = Moto::start().await.unwrap();
    let aws = aws_for(&moto);
    let creds = admin(&aws).await;
    let admin = Identity::Temporary(&creds);
    let want = desired(&["us-east-1", "eu-west-1"]);

    provision(&aws, admin, &want).await.unwrap();

    let role = aws
        .get_role(admin, ROLE)
        .await
        .unwrap()
        .expect("role created");
    assert_eq!(role.arn, format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}"));
    assert_eq!(json(&role.trust_policy), json(&want.trust_policy));
    assert_eq!(role.max_session_seconds, Some(7200));
    assert_eq!(role.tags, principal::managed_tags(ROLE));
    let policy = aws
        .get_policy(admin, &want.policy_arn)
        .await
        .unwrap()
        .expect("policy created");
    assert_eq!(policy.tags, principal::managed_tags(ROLE));
    let version = policy.default_version.expect("a default version");
    let document = aws
        .policy_document(admin, &want.policy_arn, &version)
        .await
        .unwrap();
    assert_eq!(json(&document), json(&want.policy.document));
    assert_eq!(
        aws.attached_policies(admin, ROLE).await.unwrap(),
        vec![want.policy_arn.clone()]
    );

    // Provisioning again changes nothing.
    provision(&aws, admin, &want).await.unwrap();
    assert_eq!(
        aws.policy_versions(admin, &want.policy_arn)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn template_changes_add_a_default_version_and_prune_the_oldest() {
    let moto = Moto::start().await.unwrap();
    let aws = aws_for(&moto);
    let creds = admin(&aws).await;
    let admin = Identity::Temporary(&creds);
    let regions = [
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "eu-west-1",
        "eu-west-2",
        "eu-central-1",
    ];
    let mut created = Vec::new();
    for region in regions {
        let want = desired(&[region]);
        provision(&aws, admin, &want).await.unwrap();
        created.push(want);
        let versions = aws
            .policy_versions(admin, &created[0].policy_arn)
            .await
            .unwrap();
        assert!(versions.len() <= MAX_POLICY_VERSIONS, "{versions:?}");
        assert_eq!(versions.len(), created.len().min(MAX_POLICY_VERSIONS));
        let default = versions.iter().find(|v| v.is_default).expect("a default");
        let document = aws
            .policy_document(admin, &created[0].policy_arn, &default.id)
            .await
            .unwrap();
        assert_eq!(
            json(&document),
            json(&created.last().unwrap().policy.document),
            "the newest template is in force"
        );
    }
    // Seven documents, five kept: the two oldest went.
    let mut kept = Vec::new();
    for version in aws
        .policy_versions(admin, &created[0].policy_arn)
        .await
        .unwrap()
    {
        kept.push(json(
            &aws.policy_document(admin, &created[0].policy_arn, &version.id)
                .await
                .unwrap(),
        ));
    }
    for (i, want) in created.iter().enumerate() {
        let present = kept.contains(&json(&want.policy.document));
        assert_eq!(present, i >= 2, "version {i} present: {present}");
    }
}

#[tokio::test]
async fn a_role_the_operator_did_not_create_is_left_alone() {
    let moto = Moto::start().await.unwrap();
    let aws = aws_for(&moto);
    let creds = admin(&aws).await;
    let admin = Identity::Temporary(&creds);
    let want = desired(&["us-east-1"]);
    let theirs = principal::trust_policy("arn:aws:iam::999999999999:root");
    aws.create_role(admin, ROLE, &theirs, 3600, &BTreeMap::new())
        .await
        .unwrap();

    let error = provision(&aws, admin, &want).await.unwrap_err();
    assert!(
        matches!(error, ProvisionError::NotManaged { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("role DCEPrincipal exists but was not created by the operator")
            && message.contains("principalRoleArn"),
        "{message}"
    );
    let role = aws.get_role(admin, ROLE).await.unwrap().unwrap();
    assert_eq!(json(&role.trust_policy), json(&theirs), "trust unchanged");
    assert!(
        aws.get_policy(admin, &want.policy_arn)
            .await
            .unwrap()
            .is_none()
    );

    // Nor is it deleted.
    let removal = remove(&aws, admin, ROLE, &want.policy_name, &want.policy_arn)
        .await
        .unwrap();
    assert!(removal.deleted.is_empty());
    assert_eq!(removal.kept, vec![format!("role {ROLE}")]);
    assert!(aws.get_role(admin, ROLE).await.unwrap().is_some());
}

#[tokio::test]
async fn removal_deletes_what_was_created_and_nothing_else() {
    let moto = Moto::start().await.unwrap();
    let aws = aws_for(&moto);
    let creds = admin(&aws).await;
    let admin = Identity::Temporary(&creds);
    let want = desired(&["us-east-1"]);
    provision(&aws, admin, &want).await.unwrap();
    provision(&aws, admin, &desired(&["eu-west-1"]))
        .await
        .unwrap();
    // Someone else's role, in the same account.
    let trust = principal::trust_policy(OPERATOR_ARN);
    aws.create_role(admin, "TeamRole", &trust, 3600, &BTreeMap::new())
        .await
        .unwrap();

    let removal = remove(&aws, admin, ROLE, &want.policy_name, &want.policy_arn)
        .await
        .unwrap();
    assert_eq!(
        removal.deleted,
        vec![
            format!("policy {}", want.policy_name),
            format!("role {ROLE}")
        ]
    );
    assert!(aws.get_role(admin, ROLE).await.unwrap().is_none());
    assert!(
        aws.get_policy(admin, &want.policy_arn)
            .await
            .unwrap()
            .is_none()
    );
    assert!(aws.get_role(admin, "TeamRole").await.unwrap().is_some());
    // Removing again finds nothing and fails on nothing.
    let again = remove(&aws, admin, ROLE, &want.policy_name, &want.policy_arn)
        .await
        .unwrap();
    assert!(again.deleted.is_empty() && again.kept.is_empty());
}
