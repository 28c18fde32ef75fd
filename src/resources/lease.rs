use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A time- and budget-limited lease of one pool account. Namespaced: its credentials Secret
/// lands in the same namespace.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "dce.dev",
    version = "v1alpha1",
    kind = "Lease",
    namespaced,
    status = "LeaseStatus",
    shortname = "dcelease",
    shortname = "dcel",
    category = "dce",
    doc = "A time- and budget-limited lease of one pool account; its AWS credentials land in a Secret in the same namespace.",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.leaseStatus"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.leaseStatusReason"}"#,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".status.accountId"}"#,
    printcolumn = r#"{"name":"Principal","type":"string","jsonPath":".spec.principalId"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","format":"date-time","jsonPath":".status.expiresOn"}"#,
    printcolumn = r#"{"name":"Spend","type":"number","jsonPath":".status.usage.total"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpec {
    /// Who the lease is for (a user name; the REST API's `principalId`).
    #[schemars(
        length(min = 1, max = super::MAX_PRINCIPAL_ID_CHARS),
        regex(pattern = super::PRINCIPAL_ID_PATTERN)
    )]
    pub principal_id: String,

    /// The account wanted (its `id`). Empty: any Ready account, first come first served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub account_id: Option<String>,

    /// Spend allowed over the lease. Defaults to the operator's maximum lease budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub budget_amount: Option<f64>,

    /// ISO 4217 currency of `budgetAmount`.
    #[serde(default = "default_currency")]
    #[schemars(regex(pattern = r"^[A-Z]{3}$"))]
    pub budget_currency: String,

    /// Who is told when spend crosses the budget thresholds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub budget_notification_emails: Vec<String>,

    /// When the lease ends (RFC 3339). Set at most one of `expiresOn` and `duration`; with
    /// neither, the operator's default lease period applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<Time>,

    /// How long the lease lasts from its creation, e.g. `90m`, `8h`, `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h|d))+$"))]
    pub duration: Option<String>,

    /// Name of the credentials Secret. Defaults to `<lease name>-aws-credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,

    /// Free-form data kept with the lease (DCE's `metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::free_form_object")]
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
}

impl LeaseSpec {
    /// A lease for `principal_id` with every other field at its default.
    pub fn for_principal(principal_id: impl Into<String>) -> Self {
        Self {
            principal_id: principal_id.into(),
            account_id: None,
            budget_amount: None,
            budget_currency: default_currency(),
            budget_notification_emails: Vec::new(),
            expires_on: None,
            duration: None,
            secret_name: None,
            metadata: None,
        }
    }
}

fn default_currency() -> String {
    "USD".to_string()
}

/// DCE's lease states, plus Pending while no account is free.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum LeasePhase {
    /// Waiting for a free account (served first come, first served).
    Pending,
    /// Holding an account; its credentials Secret is issued.
    Active,
    /// Ended; `leaseStatusReason` says why. Kept as history.
    Inactive,
}

impl LeasePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Active => "Active",
            Self::Inactive => "Inactive",
        }
    }
}

/// Why a lease is in its state (DCE's reasons, plus the operator's own for Pending and rejection).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum LeaseReason {
    /// Pending: waiting for a Ready account.
    WaitingForAccount,
    /// Active.
    Active,
    /// Inactive: `expiresOn` passed.
    Expired,
    /// Inactive: spend exceeded the lease budget.
    OverBudget,
    /// Inactive: the principal's spend in the period exceeded the principal budget.
    OverPrincipalBudget,
    /// Inactive: the lease was deleted.
    Destroyed,
    /// Inactive: the lease broke a limit (period, budget, one lease per principal) or was
    /// malformed; `status.message` says which.
    Invalid,
    /// Inactive: its account disappeared.
    AccountOrphaned,
}

impl LeaseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WaitingForAccount => "WaitingForAccount",
            Self::Active => "Active",
            Self::Expired => "Expired",
            Self::OverBudget => "OverBudget",
            Self::OverPrincipalBudget => "OverPrincipalBudget",
            Self::Destroyed => "Destroyed",
            Self::Invalid => "Invalid",
            Self::AccountOrphaned => "AccountOrphaned",
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseStatus {
    /// Pending, Active or Inactive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_status: Option<LeasePhase>,

    /// Why the lease is in its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_status_reason: Option<LeaseReason>,

    /// Human-readable detail, e.g. which limit a rejected lease broke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// When `leaseStatus` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_status_modified_on: Option<Time>,

    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_on: Option<Time>,

    /// The effective expiry (from `expiresOn`, `duration` or the default period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<Time>,

    /// The budget in force (from `budgetAmount` or the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_amount: Option<f64>,

    /// `id` of the assigned account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,

    /// Kubernetes name of the assigned Account object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,

    /// Name of the credentials Secret in the lease's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_name: Option<String>,

    /// When the credentials in the Secret expire; they are refreshed before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_expire_at: Option<Time>,

    /// Latest observations; `Ready` has a precise reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The spec generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The value of the `dce.dev/credentials-refresh-requested` annotation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_refresh_request: Option<String>,

    /// Spend in the account while this lease held it, from AWS Cost Explorer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<LeaseUsage>,
}

/// A lease's spend: one record per UTC day it held its account (so bounded by its length).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseUsage {
    /// Unblended cost per UTC day, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4000))]
    pub daily: Vec<DailyCost>,

    /// Sum of `daily`: the lease's spend so far.
    pub total: f64,

    /// ISO 4217 currency of the amounts.
    pub currency: String,

    /// When the figures were last read from Cost Explorer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<Time>,

    /// When the last collection was tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Time>,

    /// Why the last collection failed; empty after a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,

    /// Budget thresholds (percent of `budgetAmount`) already announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notified_thresholds: Vec<i32>,
}

/// Cost of one UTC day.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyCost {
    /// The day, `YYYY-MM-DD` (UTC).
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub date: String,
    /// Unblended cost that day.
    pub amount: f64,
}

impl Lease {
    pub fn phase(&self) -> Option<LeasePhase> {
        self.status.as_ref()?.lease_status
    }

    pub fn reason(&self) -> Option<LeaseReason> {
        self.status.as_ref()?.lease_status_reason
    }
}
