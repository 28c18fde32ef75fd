//! The lease statuses a plan writes, and the Event announcing a change of phase or reason.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::LeaseAction;
use crate::lifecycle::{Notice, conditions};
use crate::resources::{Lease, LeasePhase, LeaseReason, LeaseStatus};

pub(super) fn inactive_status(
    lease: &Lease,
    reason: LeaseReason,
    message: Option<String>,
    now: Timestamp,
) -> LeaseStatus {
    let mut status = lease.status.clone().unwrap_or_default();
    set_phase(&mut status, LeasePhase::Inactive, reason, now);
    status.credentials_secret_name = None;
    status.credentials_expire_at = None;
    conditions::set_ready(
        &mut status.conditions,
        false,
        reason.as_str(),
        message.as_deref().unwrap_or(""),
        lease.metadata.generation,
        now,
    );
    status.message = message;
    status
}

pub(super) fn set_phase(
    status: &mut LeaseStatus,
    phase: LeasePhase,
    reason: LeaseReason,
    now: Timestamp,
) {
    if status.lease_status != Some(phase) {
        status.lease_status_modified_on = Some(Time(now));
    }
    status.lease_status = Some(phase);
    status.lease_status_reason = Some(reason);
}

/// Adds the write of `status` to `actions`, and an Event when it changes the lease's phase or
/// reason.
pub(super) fn write_status(lease: &Lease, status: LeaseStatus, actions: &mut Vec<LeaseAction>) {
    let (write, notice) = status_write(lease, status);
    actions.push(write);
    actions.extend(notice.map(LeaseAction::Publish));
}

/// The write of `status`, and the Event announcing the change of phase or reason it makes.
pub(super) fn status_write(
    lease: &Lease,
    mut status: LeaseStatus,
) -> (LeaseAction, Option<Notice>) {
    status.observed_generation = lease.metadata.generation;
    let notice = transition_notice(lease.status.as_ref(), &status);
    (LeaseAction::WriteStatus(Box::new(status)), notice)
}

/// The Event announcing a change of phase or reason from `old` to `new`, if there is one.
fn transition_notice(old: Option<&LeaseStatus>, new: &LeaseStatus) -> Option<Notice> {
    if old.and_then(|s| s.lease_status) == new.lease_status
        && old.and_then(|s| s.lease_status_reason) == new.lease_status_reason
    {
        return None;
    }
    let phase = new.lease_status.map(|p| p.as_str()).unwrap_or("Unknown");
    let reason = new
        .lease_status_reason
        .map(|r| r.as_str())
        .unwrap_or("Unknown");
    let note = match (&new.message, &new.account_id) {
        (Some(message), _) => format!("{phase}: {message}"),
        (None, Some(account)) => match &new.credentials_secret_name {
            Some(secret) => {
                format!("{phase} ({reason}) with account {account}; credentials in Secret {secret}")
            }
            None => format!("{phase} ({reason}) with account {account}"),
        },
        (None, None) => format!("{phase} ({reason})"),
    };
    Some(Notice {
        warning: matches!(
            new.lease_status_reason,
            Some(LeaseReason::Invalid | LeaseReason::AccountOrphaned)
        ),
        reason: reason.to_string(),
        note,
    })
}
