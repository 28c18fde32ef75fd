//! Sync: the cluster-wide sync setting and the aggregate sync state the AWS-integration API
//! reports (`GET /status`).
//!
//! "Sync" is the periodic re-validation of every Account's access (see [`super::account`]). It
//! can be switched off cluster-wide; the setting lives in the ConfigMap [`SETTING_CONFIG_MAP`]
//! (key [`SETTING_KEY`], `ENABLED` or `DISABLED`) in the operator's namespace, so it survives
//! restarts and is shared by every replica. No ConfigMap, or any value other than `DISABLED`,
//! means enabled.
//!
//! While sync is disabled, no periodic and no requested (`dce.dev/sync-requested`) re-validation
//! runs. An account that was never validated, or whose spec changed since its last validation,
//! is still validated: otherwise it would become Ready on credentials nobody checked. Lease
//! credentials keep being refreshed: they are not sync.
//!
//! # Aggregate state
//!
//! [`aggregate`] folds the setting and every Account's sync record into one report. The first
//! rule that applies decides the state:
//!
//! 1. sync disabled → `SYNC_DISABLED`;
//! 2. no accounts → `SYNC_NA`;
//! 3. some account has never been validated → `SYNC_INITIALIZING`;
//! 4. every account failed → `SYNC_FAILED`;
//! 5. some accounts failed → `SYNC_SUCCEEDED_WITH_WARNING`;
//! 6. otherwise → `SYNC_SUCCEEDED`.
//!
//! An account counts as failed when its last validation failed (`status.syncError`) or it is
//! `Orphaned`. Whatever the state, `error_id` is [`ERROR_ACCOUNTS_FAILED`] and `error_text` names
//! the failing accounts and their errors when any account is failing, else [`ERROR_NONE`] and
//! `OK`. `last_sync` is the latest validation attempt of any account and `last_success` the
//! latest successful one (`None` when there was none).

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::resources::{Account, AccountPhase};

/// Name of the ConfigMap, in the operator's namespace, that holds the sync setting.
pub const SETTING_CONFIG_MAP: &str = "dce-operator-sync";
/// Key of the setting in the ConfigMap's data.
pub const SETTING_KEY: &str = "status";
/// Annotation on a Lease whose change asks for its credentials to be refreshed now; any new
/// value counts (the lease counterpart of `dce.dev/sync-requested`).
pub const CREDENTIALS_REFRESH_ANNOTATION: &str = "dce.dev/credentials-refresh-requested";

/// `error_id` when no account is failing.
pub const ERROR_NONE: i64 = 0;
/// `error_id` when one or more accounts failed their last validation.
pub const ERROR_ACCOUNTS_FAILED: i64 = 1;
/// Failing accounts named in `error_text`; the rest are counted.
const ERRORS_LISTED: usize = 5;

/// Whether sync is switched on cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncSetting {
    Enabled,
    Disabled,
}

impl SyncSetting {
    /// The value as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::Disabled => "DISABLED",
        }
    }

    /// Exactly `ENABLED` or `DISABLED`, as the API accepts them.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "ENABLED" => Some(Self::Enabled),
            "DISABLED" => Some(Self::Disabled),
            _ => None,
        }
    }

    /// The setting stored in the ConfigMap's data (`None`: no ConfigMap). Only `DISABLED`
    /// (in any case, for hand edits) disables: sync is the safe default.
    pub fn from_config_data(data: Option<&BTreeMap<String, String>>) -> Self {
        match data.and_then(|d| d.get(SETTING_KEY)) {
            Some(value) if value.trim().eq_ignore_ascii_case("DISABLED") => Self::Disabled,
            _ => Self::Enabled,
        }
    }
}

/// Whether the account controller may validate `account` under `setting` (see the module doc).
pub fn validation_allowed(account: &Account, setting: SyncSetting) -> bool {
    if setting == SyncSetting::Enabled {
        return true;
    }
    match &account.status {
        None => true,
        Some(status) => {
            status.last_sync_time.is_none()
                || status.observed_generation != account.metadata.generation
        }
    }
}

/// One account's sync record, as [`aggregate`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSync<'a> {
    /// The account's `spec.id`.
    pub id: &'a str,
    pub phase: Option<AccountPhase>,
    pub last_sync: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    pub error: Option<&'a str>,
}

impl<'a> AccountSync<'a> {
    pub fn of(account: &'a Account) -> Self {
        let status = account.status.as_ref();
        Self {
            id: &account.spec.id,
            phase: status.and_then(|s| s.account_status),
            last_sync: status.and_then(|s| s.last_sync_time.as_ref()).map(|t| t.0),
            last_success: status
                .and_then(|s| s.last_successful_sync_time.as_ref())
                .map(|t| t.0),
            error: status.and_then(|s| s.sync_error.as_deref()),
        }
    }

    /// Why the account counts as failed, if it does.
    fn failure(&self) -> Option<&'a str> {
        match (self.error, self.phase) {
            (Some(error), _) => Some(error),
            (None, Some(AccountPhase::Orphaned)) => Some("account is orphaned"),
            (None, _) => None,
        }
    }
}

/// The aggregate sync state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    Initializing,
    Failed,
    Succeeded,
    SucceededWithWarning,
    Disabled,
    NotApplicable,
}

impl SyncState {
    /// The API's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "SYNC_INITIALIZING",
            Self::Failed => "SYNC_FAILED",
            Self::Succeeded => "SYNC_SUCCEEDED",
            Self::SucceededWithWarning => "SYNC_SUCCEEDED_WITH_WARNING",
            Self::Disabled => "SYNC_DISABLED",
            Self::NotApplicable => "SYNC_NA",
        }
    }
}

/// What `GET /status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub enabled: bool,
    pub state: SyncState,
    pub last_sync: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    pub error_id: i64,
    pub error_text: String,
}

/// Folds the setting and the accounts' sync records into the aggregate report (rules in the
/// module doc).
pub fn aggregate(setting: SyncSetting, accounts: &[AccountSync<'_>]) -> SyncReport {
    let mut failures: Vec<(&str, &str)> = accounts
        .iter()
        .filter_map(|a| a.failure().map(|error| (a.id, error)))
        .collect();
    failures.sort_unstable();
    let never_synced = accounts.iter().any(|a| a.last_sync.is_none());
    let state = if setting == SyncSetting::Disabled {
        SyncState::Disabled
    } else if accounts.is_empty() {
        SyncState::NotApplicable
    } else if never_synced {
        SyncState::Initializing
    } else if failures.len() == accounts.len() {
        SyncState::Failed
    } else if !failures.is_empty() {
        SyncState::SucceededWithWarning
    } else {
        SyncState::Succeeded
    };
    let (error_id, error_text) = if failures.is_empty() {
        (ERROR_NONE, "OK".to_string())
    } else {
        (
            ERROR_ACCOUNTS_FAILED,
            describe_failures(&failures, accounts.len()),
        )
    };
    SyncReport {
        enabled: setting == SyncSetting::Enabled,
        state,
        last_sync: accounts.iter().filter_map(|a| a.last_sync).max(),
        last_success: accounts.iter().filter_map(|a| a.last_success).max(),
        error_id,
        error_text,
    }
}

/// `2 of 3 accounts failed to sync: a: <error>; b: <error>` (the first few, then a count).
fn describe_failures(failures: &[(&str, &str)], total: usize) -> String {
    let listed: Vec<String> = failures
        .iter()
        .take(ERRORS_LISTED)
        .map(|(id, error)| format!("{id}: {error}"))
        .collect();
    let mut text = format!(
        "{} of {total} accounts failed to sync: {}",
        failures.len(),
        listed.join("; ")
    );
    if failures.len() > ERRORS_LISTED {
        text.push_str(&format!("; and {} more", failures.len() - ERRORS_LISTED));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::fixtures::ts;
    use crate::resources::{AccountSpec, AccountStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn synced(id: &'static str, at: i64) -> AccountSync<'static> {
        AccountSync {
            id,
            phase: Some(AccountPhase::Ready),
            last_sync: Some(ts(at)),
            last_success: Some(ts(at)),
            error: None,
        }
    }

    fn failed(id: &'static str, at: i64, last_success: Option<i64>) -> AccountSync<'static> {
        AccountSync {
            id,
            phase: Some(AccountPhase::NotReady),
            last_sync: Some(ts(at)),
            last_success: last_success.map(ts),
            error: Some("static key pair rejected"),
        }
    }

    fn unsynced(id: &'static str) -> AccountSync<'static> {
        AccountSync {
            id,
            phase: None,
            last_sync: None,
            last_success: None,
            error: None,
        }
    }

    use SyncSetting::{Disabled, Enabled};

    #[test]
    fn no_accounts_is_not_applicable() {
        let report = aggregate(Enabled, &[]);
        assert_eq!(report.state, SyncState::NotApplicable);
        assert!(report.enabled);
        assert_eq!((report.last_sync, report.last_success), (None, None));
        assert_eq!((report.error_id, report.error_text.as_str()), (0, "OK"));
    }

    #[test]
    fn disabled_wins_over_everything_but_still_reports_the_record() {
        for accounts in [
            vec![],
            vec![unsynced("a")],
            vec![synced("a", 5)],
            vec![failed("a", 7, Some(3))],
        ] {
            let report = aggregate(Disabled, &accounts);
            assert_eq!(report.state, SyncState::Disabled, "{accounts:?}");
            assert!(!report.enabled);
        }
        let report = aggregate(Disabled, &[failed("a", 7, Some(3))]);
        assert_eq!(report.last_sync, Some(ts(7)));
        assert_eq!(report.last_success, Some(ts(3)));
        assert_eq!(report.error_id, ERROR_ACCOUNTS_FAILED);
    }

    #[test]
    fn any_never_synced_account_means_initializing() {
        let report = aggregate(Enabled, &[synced("a", 5), unsynced("b")]);
        assert_eq!(report.state, SyncState::Initializing);
        assert_eq!(report.last_sync, Some(ts(5)));
        let report = aggregate(Enabled, &[unsynced("a")]);
        assert_eq!(report.state, SyncState::Initializing);
        assert_eq!(report.last_sync, None);
        // Failures seen so far are reported while initializing.
        let report = aggregate(Enabled, &[failed("a", 5, None), unsynced("b")]);
        assert_eq!(report.state, SyncState::Initializing);
        assert_eq!(report.error_id, ERROR_ACCOUNTS_FAILED);
    }

    #[test]
    fn all_succeeded() {
        let report = aggregate(Enabled, &[synced("a", 5), synced("b", 9)]);
        assert_eq!(report.state, SyncState::Succeeded);
        assert_eq!(report.last_sync, Some(ts(9)));
        assert_eq!(report.last_success, Some(ts(9)));
        assert_eq!((report.error_id, report.error_text.as_str()), (0, "OK"));
    }

    #[test]
    fn all_failed() {
        let report = aggregate(Enabled, &[failed("b", 8, None), failed("a", 9, Some(2))]);
        assert_eq!(report.state, SyncState::Failed);
        assert_eq!(report.last_sync, Some(ts(9)));
        assert_eq!(report.last_success, Some(ts(2)));
        assert_eq!(report.error_id, ERROR_ACCOUNTS_FAILED);
        assert_eq!(
            report.error_text,
            "2 of 2 accounts failed to sync: a: static key pair rejected; \
             b: static key pair rejected"
        );
    }

    #[test]
    fn some_failed_is_a_warning() {
        let report = aggregate(Enabled, &[synced("a", 5), failed("b", 9, Some(1))]);
        assert_eq!(report.state, SyncState::SucceededWithWarning);
        assert_eq!(report.last_sync, Some(ts(9)));
        assert_eq!(report.last_success, Some(ts(5)));
        assert_eq!(
            report.error_text,
            "1 of 2 accounts failed to sync: b: static key pair rejected"
        );
    }

    #[test]
    fn orphaned_account_counts_as_failed() {
        let mut orphan = synced("o", 5);
        orphan.phase = Some(AccountPhase::Orphaned);
        let report = aggregate(Enabled, &[synced("a", 5), orphan]);
        assert_eq!(report.state, SyncState::SucceededWithWarning);
        assert!(report.error_text.contains("o: account is orphaned"));
    }

    #[test]
    fn leased_account_with_a_sync_error_counts_as_failed() {
        let mut leased = failed("l", 5, Some(1));
        leased.phase = Some(AccountPhase::Leased);
        let report = aggregate(Enabled, &[leased]);
        assert_eq!(report.state, SyncState::Failed);
    }

    #[test]
    fn long_failure_lists_are_truncated() {
        let ids = ["a", "b", "c", "d", "e", "f", "g"];
        let accounts: Vec<_> = ids.iter().map(|id| failed(id, 1, None)).collect();
        let report = aggregate(Enabled, &accounts);
        assert!(report.error_text.starts_with("7 of 7 accounts failed"));
        assert!(report.error_text.contains("e: static"));
        assert!(!report.error_text.contains("f: static"));
        assert!(report.error_text.ends_with("; and 2 more"));
    }

    #[test]
    fn setting_parses_exactly_and_reads_leniently() {
        assert_eq!(SyncSetting::parse("ENABLED"), Some(Enabled));
        assert_eq!(SyncSetting::parse("DISABLED"), Some(Disabled));
        assert_eq!(SyncSetting::parse("disabled"), None);
        assert_eq!(SyncSetting::parse(""), None);
        for value in ["ENABLED", "DISABLED"] {
            assert_eq!(SyncSetting::parse(value).unwrap().as_str(), value);
        }
        let data = |v: &str| BTreeMap::from([(SETTING_KEY.to_string(), v.to_string())]);
        assert_eq!(SyncSetting::from_config_data(None), Enabled);
        assert_eq!(
            SyncSetting::from_config_data(Some(&BTreeMap::new())),
            Enabled
        );
        assert_eq!(
            SyncSetting::from_config_data(Some(&data("DISABLED"))),
            Disabled
        );
        assert_eq!(
            SyncSetting::from_config_data(Some(&data(" disabled\n"))),
            Disabled
        );
        assert_eq!(
            SyncSetting::from_config_data(Some(&data("ENABLED"))),
            Enabled
        );
        assert_eq!(SyncSetting::from_config_data(Some(&data("off"))), Enabled);
    }

    fn account(status: Option<AccountStatus>, generation: i64) -> Account {
        let mut a = Account::new("a", AccountSpec::with_admin_role("a", "arn"));
        a.metadata.generation = Some(generation);
        a.status = status;
        a
    }

    #[test]
    fn disabled_sync_still_validates_new_and_changed_accounts_only() {
        let validated = AccountStatus {
            last_sync_time: Some(Time(ts(1))),
            observed_generation: Some(1),
            ..AccountStatus::default()
        };
        for (status, generation, allowed_when_disabled) in [
            (None, 1, true),
            (Some(AccountStatus::default()), 1, true),
            (Some(validated.clone()), 1, false),
            (Some(validated), 2, true),
        ] {
            let a = account(status, generation);
            assert!(validation_allowed(&a, Enabled));
            assert_eq!(validation_allowed(&a, Disabled), allowed_when_disabled);
        }
    }

    #[test]
    fn account_sync_reads_the_status() {
        let a = account(
            Some(AccountStatus {
                account_status: Some(AccountPhase::NotReady),
                last_sync_time: Some(Time(ts(9))),
                last_successful_sync_time: Some(Time(ts(4))),
                sync_error: Some("denied".into()),
                ..AccountStatus::default()
            }),
            1,
        );
        assert_eq!(
            AccountSync::of(&a),
            AccountSync {
                id: "a",
                phase: Some(AccountPhase::NotReady),
                last_sync: Some(ts(9)),
                last_success: Some(ts(4)),
                error: Some("denied"),
            }
        );
        assert_eq!(AccountSync::of(&account(None, 1)), unsynced("a"));
    }
}
