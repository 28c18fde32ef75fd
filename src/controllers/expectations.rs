//! Writes this replica made that its caches may not show yet.
//!
//! A reconcile decides from the caches. Right after a lease claims an account or writes its own
//! status, the watch may not have delivered that write: deciding again from the older copies
//! would claim a second account or write a status again. Instead of holding a reconcile slot
//! until the cache catches up, the lease records what it wrote; its next reconcile goes ahead
//! only once the copy it decides from, and the account cache, show those writes (the watch event
//! that brings them also wakes it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::resources::{Account, Lease};

/// After this long an expectation is dropped: a cache that is this far behind has a problem a
/// stalled lease would not solve, and the claim's optimistic concurrency still holds.
const EXPIRY: Duration = Duration::from_secs(5);

/// Leases with pending expectations above which expired ones are swept out.
const PRUNE_ABOVE: usize = 1024;

#[derive(Debug, Clone)]
enum Written {
    /// The lease's own status write, by the resourceVersion it got.
    Lease(u64),
    Account(ObjectRef<Account>, u64),
}

/// Per lease (namespace/name), the writes its next reconcile must see.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Vec<(Written, Instant)>>>,
}

/// A resourceVersion as a number. Kubernetes calls them opaque, but every API server stores
/// etcd revisions there; one that does not parse is not waited for.
fn version<K: ResourceExt>(object: &K) -> Option<u64> {
    object.resource_version()?.parse().ok()
}

fn key(lease: &Lease) -> String {
    format!(
        "{}/{}",
        lease.namespace().unwrap_or_default(),
        lease.name_any()
    )
}

impl Expectations {
    fn record(&self, lease: &Lease, written: Written) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() > PRUNE_ABOVE {
            // Leases that were deleted never ask again: drop what has expired.
            pending.retain(|_, writes| {
                writes.retain(|(_, at)| at.elapsed() < EXPIRY);
                !writes.is_empty()
            });
        }
        pending
            .entry(key(lease))
            .or_default()
            .push((written, Instant::now()));
    }

    /// `lease` wrote its own status; the write returned `stored`.
    pub fn lease_written(&self, lease: &Lease, stored: &Lease) {
        if let Some(rv) = version(stored) {
            self.record(lease, Written::Lease(rv));
        }
    }

    /// `lease` wrote `stored` (a claim or a release).
    pub fn account_written(&self, lease: &Lease, stored: &Account) {
        if let Some(rv) = version(stored) {
            self.record(lease, Written::Account(ObjectRef::from_obj(stored), rv));
        }
    }

    /// Whether `lease` (the copy this reconcile decides from) and the account cache show every
    /// write the lease made, forgetting those they show. The lease's own writes are checked on
    /// the copy itself, not the cache: the controller takes that copy from the cache when the
    /// reconcile is dispatched, and the cache may catch up after, which would let a decision
    /// from the older copy repeat a write (a second credentials refresh, say).
    pub fn met(&self, lease: &Lease, accounts: &Store<Account>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let Some(writes) = pending.get_mut(&key(lease)) else {
            return true;
        };
        // A missing object counts as seen: it was deleted after the write.
        let cached_at_least = |cached: Option<u64>, rv: u64| cached.is_none_or(|c| c >= rv);
        writes.retain(|(written, at)| {
            at.elapsed() < EXPIRY
                && match written {
                    Written::Lease(rv) => !cached_at_least(version(lease), *rv),
                    Written::Account(reference, rv) => {
                        !cached_at_least(accounts.get(reference).as_deref().and_then(version), *rv)
                    }
                }
        });
        if writes.is_empty() {
            pending.remove(&key(lease));
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::LeaseSpec;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    fn lease(rv: &str) -> Lease {
        let mut lease = Lease::new("l", LeaseSpec::for_principal("p"));
        lease.metadata.namespace = Some("ns".into());
        lease.metadata.resource_version = Some(rv.into());
        lease
    }

    fn account(rv: &str) -> Account {
        let spec = crate::resources::AccountSpec::with_admin_role("a", "arn:aws:iam::1:role/a");
        let mut account = Account::new("a", spec);
        account.metadata.resource_version = Some(rv.into());
        account
    }

    #[test]
    fn a_status_write_is_expected_until_the_reconciled_copy_shows_it() {
        let accounts = Writer::<Account>::default().as_reader();
        let expectations = Expectations::default();
        assert!(expectations.met(&lease("5"), &accounts));

        expectations.lease_written(&lease("5"), &lease("7"));
        // A copy older than the write is not decided from, whatever the cache holds by now.
        assert!(!expectations.met(&lease("5"), &accounts));
        assert!(expectations.met(&lease("7"), &accounts));
        // Forgotten once met.
        assert!(expectations.met(&lease("6"), &accounts));
    }

    #[test]
    fn an_account_write_is_expected_until_the_cache_shows_it() {
        let mut writer: Writer<Account> = Writer::default();
        let accounts = writer.as_reader();
        let expectations = Expectations::default();
        writer.apply_watcher_event(&Event::Apply(account("3")));
        expectations.account_written(&lease("5"), &account("4"));
        assert!(!expectations.met(&lease("5"), &accounts));
        writer.apply_watcher_event(&Event::Apply(account("4")));
        assert!(expectations.met(&lease("5"), &accounts));
    }

    #[test]
    fn a_deleted_account_is_not_waited_for() {
        let accounts = Writer::<Account>::default().as_reader();
        let expectations = Expectations::default();
        expectations.account_written(&lease("5"), &account("7"));
        assert!(expectations.met(&lease("5"), &accounts));
    }
}
