//! Prometheus metrics: reconciles, errors, AWS calls, and resource gauges read at scrape time.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::progress::Progress;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsCallLabels {
    pub operation: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabels {
    pub namespace: String,
    pub lease: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetActionLabels {
    /// `ended`, `refused` or `notified`.
    pub action: &'static str,
    /// The lease reason, or the threshold announced (`75%`).
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub kind: &'static str,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route template (e.g. `/leases/{id}`), so ids do not explode the label set.
    pub route: String,
    /// `2xx`, `4xx`, `5xx`, …
    pub status: &'static str,
    /// Why an error was given where the status alone would mislead (`pool_exhausted`), else empty.
    pub cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub reconciles: Family<ControllerLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    pub aws_calls: Family<AwsCallLabels, Counter>,
    pub transitions: Family<EventLabels, Counter>,
    pub accounts: Family<StatusLabels, Gauge>,
    pub leases: Family<StatusLabels, Gauge>,
    pub credentials_expiry: Family<LeaseLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub lease_cost: Family<LeaseLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub usage_collections: Family<ResultLabels, Counter>,
    pub budget_actions: Family<BudgetActionLabels, Counter>,
    pub account_claims: Family<ResultLabels, Counter>,
    pub leader: Gauge,
    pub controller_stalled: Family<ControllerLabels, Gauge>,
    /// Whether each controller keeps up (see [`crate::progress`]); read by `/healthz`.
    pub progress: Progress,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_request_duration: Family<RouteLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dce");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciliations run, by controller",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by controller and error kind",
            reconcile_errors.clone(),
        );
        let reconcile_duration =
            Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            });
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            reconcile_duration.clone(),
        );
        let aws_calls = Family::<AwsCallLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "AWS API calls, by operation and result",
            aws_calls.clone(),
        );
        let transitions = Family::<EventLabels, Counter>::default();
        registry.register(
            "state_transitions",
            "State transitions and errors announced as Events, by kind and reason",
            transitions.clone(),
        );
        let accounts = Family::<StatusLabels, Gauge>::default();
        registry.register("accounts", "Accounts by accountStatus", accounts.clone());
        let leases = Family::<StatusLabels, Gauge>::default();
        registry.register("leases", "Leases by leaseStatus", leases.clone());
        let credentials_expiry =
            Family::<LeaseLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "lease_credentials_expiry_seconds",
            "Seconds until each active lease's credentials expire",
            credentials_expiry.clone(),
        );
        let lease_cost = Family::<LeaseLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "lease_cost",
            "Spend of each active lease so far, in its budget currency",
            lease_cost.clone(),
        );
        let usage_collections = Family::<ResultLabels, Counter>::default();
        registry.register(
            "usage_collections",
            "Readings of a lease's spend from Cost Explorer, by result",
            usage_collections.clone(),
        );
        let budget_actions = Family::<BudgetActionLabels, Counter>::default();
        registry.register(
            "budget_actions",
            "Leases ended or refused for spend, and budget notices sent, by reason",
            budget_actions.clone(),
        );
        let account_claims = Family::<ResultLabels, Counter>::default();
        registry.register(
            "account_claims",
            "Claims on accounts by result: claimed, lost (another lease's claim got there first), stale (the cache already showed it taken), undone (the lease changed before its status could record the claim) or repaired (an account recording a lease that does not hold it, returned to the pool through a reset)",
            account_claims.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica is the elected leader",
            leader.clone(),
        );
        let controller_stalled = Family::<ControllerLabels, Gauge>::default();
        registry.register(
            "controller_stalled",
            "1 while a controller has had work waiting with no request finished for 120 s",
            controller_stalled.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "REST API requests, by method, route and status class",
            http_requests.clone(),
        );
        let http_request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 15.0,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "REST API request latency, by method and route",
            http_request_duration.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            reconcile_errors,
            reconcile_duration,
            aws_calls,
            transitions,
            accounts,
            leases,
            credentials_expiry,
            lease_cost,
            usage_collections,
            budget_actions,
            account_claims,
            leader,
            controller_stalled,
            progress: Progress::default(),
            http_requests,
            http_request_duration,
        }
    }
}

impl Metrics {
    /// Starts timing one reconciliation; the duration is recorded when the guard drops.
    pub fn reconcile_started(&self, controller: &'static str) -> ReconcileTimer {
        self.reconciles
            .get_or_create(&ControllerLabels { controller })
            .inc();
        ReconcileTimer {
            start: Instant::now(),
            histogram: self
                .reconcile_duration
                .get_or_create(&ControllerLabels { controller })
                .clone(),
        }
    }

    pub fn reconcile_failed(&self, controller: &'static str, error: &'static str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels { controller, error })
            .inc();
    }

    pub fn aws_call(&self, operation: &'static str, result: &'static str) {
        self.aws_calls
            .get_or_create(&AwsCallLabels { operation, result })
            .inc();
    }

    pub fn usage_collection(&self, result: &'static str) {
        self.usage_collections
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn account_claim(&self, result: &'static str) {
        self.account_claims
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn budget_action(&self, action: &'static str, reason: String) {
        self.budget_actions
            .get_or_create(&BudgetActionLabels { action, reason })
            .inc();
    }

    /// Records one REST API request.
    pub fn http_request(
        &self,
        method: &str,
        route: &str,
        status: u16,
        cause: &'static str,
        seconds: f64,
    ) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
                cause,
            })
            .inc();
        self.http_request_duration
            .get_or_create(&RouteLabels {
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(seconds);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub struct ReconcileTimer {
    start: Instant,
    histogram: Histogram,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_counters_with_labels() {
        let metrics = Metrics::default();
        drop(metrics.reconcile_started("lease"));
        metrics.reconcile_failed("lease", "kube");
        metrics.aws_call("AssumeRole", "ok");
        metrics.usage_collection("throttled");
        metrics.budget_action("ended", "OverBudget".into());
        let text = metrics.encode();
        assert!(
            text.contains("dce_usage_collections_total{result=\"throttled\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dce_budget_actions_total{action=\"ended\",reason=\"OverBudget\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dce_reconciles_total{controller=\"lease\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dce_reconcile_errors_total{controller=\"lease\",error=\"kube\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dce_aws_calls_total{operation=\"AssumeRole\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dce_reconcile_duration_seconds_count{controller=\"lease\"} 1"),
            "{text}"
        );
    }
}
