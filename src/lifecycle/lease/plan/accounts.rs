//! The Account writes of a lease's plan: a claim, a release for reset, and the release of a
//! leaked claim.

use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;

use super::{AccountWrite, LeaseAction, LeaseFacts};
use crate::lifecycle::account::reason as account_reason;
use crate::lifecycle::{Notice, conditions};
use crate::resources::{Account, AccountPhase, Lease, LeaseHolder};

/// `account` taken by this lease: the lease recorded as its holder, Leased.
pub(super) fn claim_write(lease: &Lease, account: &Arc<Account>, now: Timestamp) -> AccountWrite {
    let namespace = lease.namespace().unwrap_or_default();
    let mut status = account.status.clone().unwrap_or_default();
    status.lease = Some(LeaseHolder {
        namespace: namespace.clone(),
        name: lease.name_any(),
        uid: lease.uid().unwrap_or_default(),
    });
    status.account_status = Some(AccountPhase::Leased);
    conditions::set_ready(
        &mut status.conditions,
        true,
        account_reason::LEASED,
        &format!("leased by {namespace}/{}", lease.name_any()),
        account.metadata.generation,
        now,
    );
    AccountWrite {
        account: account.clone(),
        status,
    }
}

/// `account` given back by this lease: no holder, NotReady until a reset has run.
pub(super) fn released(
    account: &Arc<Account>,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> AccountWrite {
    let mut status = account.status.clone().unwrap_or_default();
    status.lease = None;
    status.reset_required = true;
    status.account_status = Some(AccountPhase::NotReady);
    conditions::set_ready(
        &mut status.conditions,
        false,
        reason,
        message,
        account.metadata.generation,
        now,
    );
    AccountWrite {
        account: account.clone(),
        status,
    }
}

/// Returns a leaked claim on `stray` through a reset, with a Warning on the Account.
pub(super) fn release_stray(
    lease: &Lease,
    facts: &LeaseFacts,
    stray: &Arc<Account>,
) -> LeaseAction {
    let holds = match &facts.held {
        Some(account) => format!("account {}", account.spec.id),
        None => "no account".to_string(),
    };
    let message = format!(
        "recorded lease {}/{} as its holder, but that lease holds {holds}; returned to the pool through a reset",
        lease.namespace().unwrap_or_default(),
        lease.name_any(),
    );
    let write = released(
        stray,
        account_reason::STRAY_CLAIM_RELEASED,
        &message,
        facts.step.now,
    );
    LeaseAction::ReleaseStray(
        write,
        Notice {
            warning: true,
            reason: account_reason::STRAY_CLAIM_RELEASED.to_string(),
            note: message,
        },
    )
}
