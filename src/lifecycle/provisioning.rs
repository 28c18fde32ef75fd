//! How the principal role's provisioning shows in an Account's status: the
//! `PrincipalProvisioned` condition and the policy hash. A failure keeps the account NotReady
//! and is retried sooner than the regular sync.

use jiff::{SignedDuration, Timestamp};

use super::conditions;
use crate::resources::AccountStatus;

/// Condition saying whether the principal role and policy match the template.
pub const CONDITION: &str = "PrincipalProvisioned";

pub mod reason {
    pub const PROVISIONED: &str = "PrincipalRoleProvisioned";
    pub const FAILED: &str = "PrincipalProvisioningFailed";
}

/// How soon a failed provisioning is tried again (with the account's validation).
pub const RETRY: SignedDuration = SignedDuration::from_secs(60);

/// The outcome of provisioning the principal this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioning {
    /// The role and policy exist as the template says.
    Provisioned {
        role: String,
        policy: String,
        hash: String,
    },
    /// The Account names its own `principalRoleArn`: nothing is provisioned.
    NotManaged,
    /// Why the role or policy could not be provisioned, in words an admin can act on.
    Failed(String),
}

/// Records `outcome` in `status`.
pub fn record(
    status: &mut AccountStatus,
    outcome: &Provisioning,
    generation: Option<i64>,
    now: Timestamp,
) {
    match outcome {
        Provisioning::Provisioned { role, policy, hash } => {
            status.principal_policy_hash = Some(hash.clone());
            let message = format!(
                "role {role} and policy {policy} match the template (policy hash {})",
                hash.get(..12).unwrap_or(hash)
            );
            conditions::set(
                &mut status.conditions,
                CONDITION,
                true,
                reason::PROVISIONED,
                &message,
                generation,
                now,
            );
        }
        Provisioning::NotManaged => {
            status.principal_policy_hash = None;
            status.conditions.retain(|c| c.type_ != CONDITION);
        }
        // The hash stays: it records what the operator created, for deletion to remove.
        Provisioning::Failed(message) => conditions::set(
            &mut status.conditions,
            CONDITION,
            false,
            reason::FAILED,
            message,
            generation,
            now,
        ),
    }
}

/// Why the last provisioning failed, if it did.
pub fn failure(status: &AccountStatus) -> Option<&str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION && c.status == "False")
        .map(|c| c.message.as_str())
}

/// Time between validations: the sync interval, or less while provisioning fails.
pub fn validation_interval(
    status: &AccountStatus,
    sync_interval: SignedDuration,
) -> SignedDuration {
    if failure(status).is_some() {
        sync_interval.min(RETRY)
    } else {
        sync_interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::ResetMode;
    use crate::lifecycle::account::{
        AccountAction, AccountObservation, HolderState, JobState, Validation, decide,
        needs_validation, next_validation, reason as ready,
    };
    use crate::lifecycle::conditions::ready_reason;
    use crate::lifecycle::fixtures::{account, ts};
    use crate::resources::AccountPhase;

    fn validated(
        now: i64,
        provisioning: Provisioning,
        reset_mode: ResetMode,
    ) -> AccountObservation {
        AccountObservation {
            now: ts(now),
            deleting: false,
            validation: Some(Validation::Valid("123456789012".into())),
            provisioning: Some(provisioning),
            holder: HolderState::Consistent,
            reset_job: None,
            reset_mode,
            sync_interval: None,
            jitter: 1.0,
        }
    }

    fn provisioned(hash: &str) -> Provisioning {
        Provisioning::Provisioned {
            role: "DCEPrincipal".into(),
            policy: "DCEPrincipalDefaultPolicy".into(),
            hash: hash.into(),
        }
    }

    fn condition(status: &AccountStatus) -> (&str, &str, &str) {
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION)
            .unwrap();
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    #[test]
    fn provisioned_account_is_ready_with_the_hash_recorded() {
        let hash = "0123456789abcdef".repeat(4);
        let plan = decide(
            &account(None),
            &validated(5, provisioned(&hash), ResetMode::Disabled),
        );
        assert_eq!(plan.status.account_status, Some(AccountPhase::Ready));
        assert_eq!(
            plan.status.principal_policy_hash.as_deref(),
            Some(hash.as_str())
        );
        assert_eq!(
            condition(&plan.status),
            (
                "True",
                reason::PROVISIONED,
                "role DCEPrincipal and policy DCEPrincipalDefaultPolicy match the template (policy hash 0123456789ab)"
            )
        );
    }

    #[test]
    fn failed_provisioning_keeps_the_account_not_ready_and_retries_soon() {
        let ready_before = decide(
            &account(None),
            &validated(0, provisioned("h1"), ResetMode::Disabled),
        );
        let failed = decide(
            &account(Some(ready_before.status)),
            &validated(
                10,
                Provisioning::Failed(
                    "role DCEPrincipal exists and was not created by the operator".into(),
                ),
                ResetMode::Disabled,
            ),
        );
        assert_eq!(failed.status.account_status, Some(AccountPhase::NotReady));
        assert_eq!(
            ready_reason(&failed.status.conditions),
            Some(reason::FAILED)
        );
        assert_eq!(condition(&failed.status).0, "False");
        // The hash of what was created stays, for deletion to find.
        assert_eq!(failed.status.principal_policy_hash.as_deref(), Some("h1"));
        let hour = SignedDuration::from_hours(1);
        assert_eq!(next_validation(&failed.status, hour), Some(ts(70)));
        let a = account(Some(failed.status.clone()));
        assert!(!needs_validation(&a, ts(69), hour));
        assert!(needs_validation(&a, ts(70), hour));
        // Fixed: Ready again, and back to the regular schedule.
        let fixed = decide(&a, &validated(70, provisioned("h1"), ResetMode::Disabled));
        assert_eq!(fixed.status.account_status, Some(AccountPhase::Ready));
        assert_eq!(next_validation(&fixed.status, hour), Some(ts(70) + hour));
    }

    #[test]
    fn own_principal_role_clears_what_was_recorded() {
        let before = decide(
            &account(None),
            &validated(0, provisioned("h1"), ResetMode::Disabled),
        );
        let plan = decide(
            &account(Some(before.status)),
            &validated(5, Provisioning::NotManaged, ResetMode::Disabled),
        );
        assert_eq!(plan.status.principal_policy_hash, None);
        assert!(plan.status.conditions.iter().all(|c| c.type_ != CONDITION));
        assert_eq!(plan.status.account_status, Some(AccountPhase::Ready));
    }

    #[test]
    fn reset_account_is_ready_only_once_provisioned_again() {
        let mut status = decide(
            &account(None),
            &validated(0, provisioned("h1"), ResetMode::Job),
        )
        .status;
        status.reset_job = Some("reset-1".into());
        let failed = decide(
            &account(Some(status.clone())),
            &AccountObservation {
                reset_job: Some(JobState::Succeeded),
                ..validated(
                    10,
                    Provisioning::Failed("iam:CreateRole: access denied".into()),
                    ResetMode::Job,
                )
            },
        );
        assert_eq!(failed.status.account_status, Some(AccountPhase::NotReady));
        assert_eq!(
            ready_reason(&failed.status.conditions),
            Some(reason::FAILED)
        );
        assert!(
            failed.status.reset_required,
            "the finished job is handled once provisioned"
        );
        let done = decide(
            &account(Some(failed.status)),
            &AccountObservation {
                reset_job: Some(JobState::Succeeded),
                ..validated(20, provisioned("h1"), ResetMode::Job)
            },
        );
        assert_eq!(done.status.account_status, Some(AccountPhase::Ready));
        assert_eq!(
            ready_reason(&done.status.conditions),
            Some(ready::AVAILABLE)
        );
        assert_eq!(
            done.actions,
            vec![AccountAction::DeleteResetJob("reset-1".into())]
        );
    }
}
