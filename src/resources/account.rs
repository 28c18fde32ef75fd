use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An AWS account in the pool. Cluster-scoped: the pool belongs to the platform team.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "dce.dev",
    version = "v1alpha1",
    kind = "Account",
    status = "AccountStatus",
    shortname = "dceaccount",
    shortname = "dceacct",
    category = "dce",
    doc = "An AWS account in the dce-operator pool. Leases are served from Ready accounts.",
    printcolumn = r#"{"name":"Id","type":"string","jsonPath":".spec.id"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.accountStatus"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Lease","type":"string","jsonPath":".status.lease.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AccountSpec {
    /// The account's identity in the REST APIs: a 12-digit AWS account id, or a free-form name
    /// for accounts registered with a static key pair. Kept exactly as given.
    #[schemars(length(min = 1, max = 256))]
    pub id: String,

    /// The 12-digit AWS account number. Optional: when `id` is 12 digits it is used; otherwise it
    /// is learned from the credentials and recorded in `status.awsAccountId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{12}$"))]
    pub aws_account_id: Option<String>,

    /// Role the operator assumes, with its own AWS identity, to administer the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$"
    ))]
    pub admin_role_arn: Option<String>,

    /// A Secret holding a static key pair for the account (keys `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`). Used when there is no `adminRoleArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,

    /// Role lease holders get. Defaults to `arn:aws:iam::<account>:role/<principal role name>`
    /// (the operator's `--principal-role-name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$"
    ))]
    pub principal_role_arn: Option<String>,

    /// Free-form data kept with the account (DCE's `metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::free_form_object")]
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
}

impl AccountSpec {
    /// A DCE account: a 12-digit id administered through `admin_role_arn`.
    pub fn with_admin_role(id: impl Into<String>, admin_role_arn: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            aws_account_id: None,
            admin_role_arn: Some(admin_role_arn.into()),
            credentials_secret_ref: None,
            principal_role_arn: None,
            metadata: None,
        }
    }
}

/// Key of the access key id in a static key pair Secret (`credentialsSecretRef`).
pub const ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";
/// Key of the secret access key in a static key pair Secret (`credentialsSecretRef`).
pub const SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";

/// Where a Secret lives.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
}

/// DCE's account states.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum AccountPhase {
    /// Not usable yet: unvalidated, failing validation, or waiting for / in reset.
    NotReady,
    /// Validated, reset and free.
    Ready,
    /// Held by a lease (`status.lease`).
    Leased,
    /// The operator can no longer reach it, or its lease was lost.
    Orphaned,
}

impl AccountPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotReady => "NotReady",
            Self::Ready => "Ready",
            Self::Leased => "Leased",
            Self::Orphaned => "Orphaned",
        }
    }
}

/// The lease that holds an account. Recorded on the Account under optimistic concurrency, so
/// two leases can never hold one account.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseHolder {
    pub namespace: String,
    pub name: String,
    /// The Lease object's uid (its REST id).
    pub uid: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// DCE's account status: NotReady, Ready, Leased or Orphaned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_status: Option<AccountPhase>,

    /// The lease currently holding the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseHolder>,

    /// The account must be reset before it is Ready again (set when a lease ends, and for new
    /// accounts when reset is enabled).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset_required: bool,

    /// Name of the reset Job currently running, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_job: Option<String>,

    /// When the next reset attempt may start, after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_reset_at: Option<Time>,

    /// Consecutive failed resets since the last success.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reset_failures: i32,

    /// Why the last reset failed, as its Job reported it (until a reset succeeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_failure: Option<String>,

    /// The AWS account number learned from the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_account_id: Option<String>,

    /// When the operator last tried to validate the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// When validation last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_sync_time: Option<Time>,

    /// SHA-256 of the principal policy the operator last provisioned in the account (DCE's
    /// `principalPolicyHash`); unset when the Account names its own `principalRoleArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_policy_hash: Option<String>,

    /// Why the last validation failed; empty after a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_error: Option<String>,

    /// The value of the `dce.dev/sync-requested` annotation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_sync_request: Option<String>,

    /// Latest observations; `Ready` has a precise reason, `PrincipalProvisioned` says whether
    /// the principal role and policy match the template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The spec generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl Account {
    /// The AWS account number: the spec's, else `id` if it is one, else what was learned.
    pub fn aws_account_number(&self) -> Option<&str> {
        self.spec
            .aws_account_id
            .as_deref()
            .or_else(|| is_aws_account_number(&self.spec.id).then_some(self.spec.id.as_str()))
            .or_else(|| self.status.as_ref()?.aws_account_id.as_deref())
    }

    pub fn phase(&self) -> Option<AccountPhase> {
        self.status.as_ref()?.account_status
    }

    pub fn holder(&self) -> Option<&LeaseHolder> {
        self.status.as_ref()?.lease.as_ref()
    }

    /// Free to be leased: Ready, held by no lease, and not being deleted.
    pub fn is_free(&self) -> bool {
        self.phase() == Some(AccountPhase::Ready)
            && self.holder().is_none()
            && self.metadata.deletion_timestamp.is_none()
    }
}

/// Whether `s` is a 12-digit AWS account number.
pub fn is_aws_account_number(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}
