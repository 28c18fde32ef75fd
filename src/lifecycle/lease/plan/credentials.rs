//! The credentials part of an Active lease's plan: what keeps its Secret as the observation
//! says, and the Ready condition that records it.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::{CredentialsRequest, LeaseAction, LeaseFacts, SecretWrite};
use crate::lifecycle::credentials::{SecretAction, SecretObservation, refresh_lead};
use crate::lifecycle::lease::reason;
use crate::lifecycle::{LeasePolicy, Notice, conditions};
use crate::resources::{Account, Lease, LeasePhase, LeaseStatus};

/// Re-check a Secret name held by someone else this often: a safety net, as the Secret's
/// deletion wakes the lease at once.
const CONFLICT_RECHECK: SignedDuration = SignedDuration::from_secs(60);

/// What keeps the credentials Secret as a [`SecretAction`] says.
pub(super) struct CredentialsPlan {
    /// Obtaining new credentials, if any are needed.
    pub obtain: Option<LeaseAction>,
    /// Writing them into the Secret.
    pub write: Option<LeaseAction>,
    pub notices: Vec<Notice>,
    /// When to look at the Secret again; `None` when credentials issued now tell that.
    pub wake: Option<Timestamp>,
}

/// The actions that keep the credentials Secret as `secret` says, with its state recorded in
/// the Ready condition of `status`.
pub(super) fn credentials(
    lease: &Lease,
    facts: &LeaseFacts,
    account: &Arc<Account>,
    secret: SecretAction,
    status: &mut LeaseStatus,
    policy: &LeasePolicy,
) -> CredentialsPlan {
    let now = facts.step.now;
    let generation = lease.metadata.generation;
    let stored_reason = lease
        .status
        .as_ref()
        .and_then(|s| conditions::ready_reason(&s.conditions))
        .map(str::to_string);
    let issued = |status: &mut LeaseStatus| {
        conditions::set_ready(
            &mut status.conditions,
            true,
            reason::CREDENTIALS_ISSUED,
            "",
            generation,
            now,
        )
    };
    match secret {
        SecretAction::Keep { next } => {
            issued(status);
            CredentialsPlan {
                obtain: None,
                write: None,
                notices: Vec::new(),
                wake: Some(next),
            }
        }
        SecretAction::Conflict => {
            let message = format!(
                "Secret {} exists and is not managed by dce-operator for this lease; it is left alone",
                facts.secret_name
            );
            let notices = (stored_reason.as_deref() != Some(reason::SECRET_CONFLICT))
                .then(|| Notice {
                    warning: true,
                    reason: reason::SECRET_CONFLICT.to_string(),
                    note: message.clone(),
                })
                .into_iter()
                .collect();
            conditions::set_ready(
                &mut status.conditions,
                false,
                reason::SECRET_CONFLICT,
                &message,
                generation,
                now,
            );
            status.credentials_secret_name = None;
            CredentialsPlan {
                obtain: None,
                write: None,
                notices,
                wake: Some(now + CONFLICT_RECHECK),
            }
        }
        SecretAction::Create | SecretAction::Refresh(_) => {
            // A lease becoming Active announces its credentials in its transition Event; this
            // one is for a lease that was Active without them (after a failure or a conflict).
            let announce = (lease.phase() == Some(LeasePhase::Active)
                && stored_reason.as_deref() != Some(reason::CREDENTIALS_ISSUED))
            .then(|| Notice {
                warning: false,
                reason: reason::CREDENTIALS_ISSUED.to_string(),
                note: format!(
                    "credentials for account {} in Secret {}",
                    account.spec.id, facts.secret_name
                ),
            });
            issued(status);
            CredentialsPlan {
                obtain: Some(LeaseAction::ObtainCredentials(CredentialsRequest {
                    account: account.clone(),
                    stored_reason,
                    refresh_lead: refresh_lead(policy.credentials_lifetime),
                })),
                write: Some(LeaseAction::WriteSecret(SecretWrite {
                    account_id: account.spec.id.clone(),
                    refresh: match secret {
                        SecretAction::Refresh(cause) => Some(cause),
                        _ => None,
                    },
                    replace_version: facts.secret_version.clone(),
                    announce,
                })),
                notices: Vec::new(),
                wake: None,
            }
        }
    }
}

/// Expiry of the credentials in an intact, operator-owned Secret for `account`.
pub(super) fn intact_expiry(observed: &SecretObservation, account: &str) -> Option<Timestamp> {
    match observed {
        SecretObservation::Owned {
            labelled: true,
            expires_at,
            recorded_hash,
            actual_hash,
            account: recorded_account,
        } if recorded_hash.as_deref() == Some(actual_hash.as_str())
            && recorded_account.as_deref() == Some(account) =>
        {
            *expires_at
        }
        _ => None,
    }
}
