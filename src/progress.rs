//! Whether each controller keeps up with what its watch hands it: a controller that has been
//! given an object and finished no request since (a reconcile that succeeded or failed, or one
//! dropped because its object was gone), for longer than [`STALL_AFTER`], has stalled. `/healthz` then fails (so the kubelet restarts the process, which heals it) and
//! `dce_controller_stalled` is 1.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long delivered work may wait for any reconcile to complete. A healthy controller
/// completes one within seconds (failed reconciles count: they are retried with backoff
/// capped well below this).
pub const STALL_AFTER: Duration = Duration::from_secs(120);

/// The controllers' progress, shared by the controllers and the endpoints.
#[derive(Clone, Default)]
pub struct Progress {
    waiting_since: Arc<Mutex<BTreeMap<&'static str, Option<Instant>>>>,
}

impl Progress {
    /// `controller` was handed an object to reconcile at `now`.
    pub fn delivered(&self, controller: &'static str, now: Instant) {
        let mut waiting = self.lock();
        let since = waiting.entry(controller).or_default();
        since.get_or_insert(now);
    }

    /// `controller` finished a request: a reconcile (successful or not), or one dropped because
    /// its object was gone.
    pub fn reconciled(&self, controller: &'static str) {
        self.lock().insert(controller, None);
    }

    /// The controllers that have had work waiting, with no reconcile completed, for longer
    /// than `limit` at `now`, with how long.
    pub fn stalled(&self, now: Instant, limit: Duration) -> Vec<(&'static str, Duration)> {
        self.lock()
            .iter()
            .filter_map(|(controller, since)| {
                let waited = now.saturating_duration_since((*since)?);
                (waited > limit).then_some((*controller, waited))
            })
            .collect()
    }

    /// Every controller seen so far, and whether it has stalled at `now`.
    pub fn states(&self, now: Instant, limit: Duration) -> Vec<(&'static str, bool)> {
        let stalled = self.stalled(now, limit);
        self.lock()
            .keys()
            .map(|c| (*c, stalled.iter().any(|(s, _)| s == c)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Option<Instant>>> {
        self.waiting_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(120);

    #[test]
    fn work_waiting_past_the_limit_is_a_stall() {
        let progress = Progress::default();
        let start = Instant::now();
        progress.delivered("lease", start);
        // A later delivery does not restart the clock: the oldest waiting one counts.
        progress.delivered("lease", start + Duration::from_secs(100));
        assert!(progress.stalled(start + LIMIT, LIMIT).is_empty());
        let stalled = progress.stalled(start + LIMIT + Duration::from_secs(1), LIMIT);
        assert_eq!(stalled, [("lease", LIMIT + Duration::from_secs(1))]);
    }

    #[test]
    fn a_completed_reconcile_clears_the_wait() {
        let progress = Progress::default();
        let start = Instant::now();
        progress.delivered("account", start);
        progress.reconciled("account");
        assert!(progress.stalled(start + 2 * LIMIT, LIMIT).is_empty());
        assert_eq!(progress.states(start, LIMIT), [("account", false)]);
    }

    #[test]
    fn an_idle_controller_never_stalls() {
        let progress = Progress::default();
        progress.reconciled("lease");
        let much_later = Instant::now() + 100 * LIMIT;
        assert!(progress.stalled(much_later, LIMIT).is_empty());
    }
}
