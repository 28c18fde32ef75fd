//! The order in which this replica's watch first delivered each lease.
//!
//! Creation timestamps have one-second resolution, so leases created in the same second need
//! another tie-break in the first-come-first-served queue. The uid alone is random: a lease
//! arriving later could rank ahead of one already waiting, shift every rank behind it, and make
//! two leases choose the same account, one of them only to lose the claim and choose again.
//! Arrival order never puts a newcomer ahead of a lease this replica already knows.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::resources::Lease;

#[derive(Default)]
struct Seen {
    next: u64,
    by_uid: HashMap<String, u64>,
    /// Uids listed by a re-list in progress; the others were deleted while the watch was down.
    relisted: Option<HashSet<String>>,
}

/// Cheap to clone; clones share the record.
#[derive(Clone, Default)]
pub struct Arrivals {
    seen: Arc<Mutex<Seen>>,
}

impl Arrivals {
    /// Records what a watch event says about arrivals.
    pub fn observe(&self, event: &Event<Lease>) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = &mut *seen;
        let mut arrive = |lease: &Lease| {
            if let Some(uid) = lease.uid() {
                let next = &mut seen.next;
                seen.by_uid.entry(uid).or_insert_with(|| {
                    *next += 1;
                    *next
                });
            }
        };
        match event {
            Event::Apply(lease) => arrive(lease),
            Event::InitApply(lease) => {
                arrive(lease);
                if let (Some(relisted), Some(uid)) = (seen.relisted.as_mut(), lease.uid()) {
                    relisted.insert(uid);
                }
            }
            Event::Delete(lease) => {
                if let Some(uid) = lease.uid() {
                    seen.by_uid.remove(&uid);
                }
            }
            Event::Init => seen.relisted = Some(HashSet::new()),
            Event::InitDone => {
                if let Some(relisted) = seen.relisted.take() {
                    seen.by_uid.retain(|uid, _| relisted.contains(uid));
                }
            }
        }
    }

    /// The lease's place in arrival order; one this replica has not seen yet comes last.
    pub fn of(&self, lease: &Lease) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        lease
            .metadata
            .uid
            .as_ref()
            .and_then(|uid| seen.by_uid.get(uid).copied())
            .unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::LeaseSpec;

    fn lease(uid: &str) -> Lease {
        let mut lease = Lease::new(uid, LeaseSpec::for_principal(uid));
        lease.metadata.uid = Some(uid.into());
        lease
    }

    #[test]
    fn a_lease_keeps_its_first_place_and_newcomers_come_after() {
        let arrivals = Arrivals::default();
        arrivals.observe(&Event::Apply(lease("b")));
        arrivals.observe(&Event::Apply(lease("a")));
        arrivals.observe(&Event::Apply(lease("b")));
        assert!(arrivals.of(&lease("b")) < arrivals.of(&lease("a")));
        assert_eq!(arrivals.of(&lease("unseen")), u64::MAX);
    }

    #[test]
    fn deleted_leases_are_forgotten_also_when_missed_during_a_relist() {
        let arrivals = Arrivals::default();
        for uid in ["a", "b", "c"] {
            arrivals.observe(&Event::Apply(lease(uid)));
        }
        arrivals.observe(&Event::Delete(lease("a")));
        assert_eq!(arrivals.of(&lease("a")), u64::MAX);

        let before = arrivals.of(&lease("c"));
        arrivals.observe(&Event::Init);
        arrivals.observe(&Event::InitApply(lease("c")));
        arrivals.observe(&Event::InitDone);
        assert_eq!(arrivals.of(&lease("b")), u64::MAX);
        assert_eq!(arrivals.of(&lease("c")), before);
    }
}
