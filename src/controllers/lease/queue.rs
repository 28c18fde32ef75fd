//! The first-come-first-served queue of leases waiting for an account, as the caches show it:
//! what a waiting lease decides from, and which waiting leases a change can move.
//!
//! A waiting lease at position `n` takes the `n`-th free account
//! ([`crate::lifecycle::lease::choose_account`]), so only the first `free` leases of the queue
//! can act. A change wakes just those: an account becoming free, or a lease leaving the queue
//! without an account (each lease behind it moves up one place). A lease further back has
//! nothing to do until one of these happens, so it is not woken (and does not poll).

use kube::runtime::reflector::ObjectRef;

use super::*;
use crate::lifecycle::lease::{Candidates, QueueKey};

/// The waiting leases in queue order, and the free accounts.
pub(super) struct Queue {
    waiting: Vec<(QueueKey, Arc<Lease>)>,
    free: Vec<Arc<Account>>,
}

impl Queue {
    /// Reads the queue from the caches. A lease that has claimed an account but not yet
    /// written its own status is no longer waiting: counting it would push every lease behind
    /// it one account further along.
    pub(super) fn read(ctx: &Context) -> Self {
        let mut free = Vec::new();
        let mut holders = std::collections::HashSet::new();
        for account in ctx.accounts.state() {
            if let Some(holder) = account.holder() {
                holders.insert(holder.uid.clone());
            } else if account.is_free() {
                free.push(account);
            }
        }
        let mut waiting: Vec<(QueueKey, Arc<Lease>)> = ctx
            .leases
            .state()
            .into_iter()
            .filter(|l| {
                is_waiting(l)
                    && l.spec.account_id.is_none()
                    && !l.uid().is_some_and(|uid| holders.contains(&uid))
            })
            .map(|l| (queue_key(&l, ctx), l))
            .collect();
        waiting.sort_by(|a, b| a.0.cmp(&b.0));
        Self { waiting, free }
    }

    /// What `lease` decides from: its place, every waiting lease's, and the free accounts.
    pub(super) fn candidates(self, lease: &Lease, ctx: &Context) -> Candidates {
        Candidates {
            me: queue_key(lease, ctx),
            queue: self.waiting.into_iter().map(|(key, _)| key).collect(),
            free: self.free,
        }
    }

    /// The leases that would take an account now: as many from the front as accounts are free.
    fn heads(&self) -> impl Iterator<Item = ObjectRef<Lease>> + '_ {
        self.waiting
            .iter()
            .take(self.free.len())
            .map(|(_, lease)| ObjectRef::from(lease.as_ref()))
    }
}

/// Leases to reconcile when an account changes: its holder, unless the holder's status already
/// names it (then the change is the lease's own claim, which it has recorded); when it is free,
/// the heads of the queue and the leases that asked for this very account.
pub fn leases_for_account(account: &Account, ctx: &Context) -> Vec<ObjectRef<Lease>> {
    if let Some(holder) = account.holder() {
        let reference = ObjectRef::new(&holder.name).within(&holder.namespace);
        let recorded = ctx.leases.get(&reference).is_some_and(|lease| {
            lease.uid().as_deref() == Some(holder.uid.as_str())
                && lease
                    .status
                    .as_ref()
                    .and_then(|s| s.account_name.as_deref())
                    == Some(account.name_any().as_str())
        });
        return if recorded {
            Vec::new()
        } else {
            vec![reference]
        };
    }
    if !account.is_free() {
        return Vec::new();
    }
    let mut refs: Vec<ObjectRef<Lease>> = Queue::read(ctx).heads().collect();
    refs.extend(
        ctx.leases
            .state()
            .iter()
            .filter(|l| is_waiting(l) && l.spec.account_id.as_deref() == Some(&account.spec.id))
            .map(|l| ObjectRef::from(l.as_ref())),
    );
    refs
}

/// Leases to reconcile when `lease` changes: when it left the queue without an account (ended
/// or deleted while waiting), the heads of the queue, which moved up a place.
pub fn leases_behind(lease: &Lease, ctx: &Context) -> Vec<ObjectRef<Lease>> {
    let left_without_account = !is_waiting(lease)
        && lease
            .status
            .as_ref()
            .is_none_or(|s| s.account_name.is_none());
    if !left_without_account {
        return Vec::new();
    }
    Queue::read(ctx).heads().collect()
}

/// Not ended and not being deleted, and holding no account by its status.
pub(super) fn is_waiting(lease: &Lease) -> bool {
    lease.metadata.deletion_timestamp.is_none()
        && matches!(lease.phase(), None | Some(LeasePhase::Pending))
}

pub(super) fn created(lease: &Lease) -> jiff::Timestamp {
    lease
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_else(jiff::Timestamp::now)
}

pub(super) fn queue_key(lease: &Lease, ctx: &Context) -> QueueKey {
    QueueKey {
        created: created(lease),
        arrival: ctx.arrivals.of(lease),
        uid: lease.uid().unwrap_or_default(),
    }
}
