//! The usage loop: reads each Active lease's cost from Cost Explorer when it is due, with the
//! account's admin access; records it in the principal's usage store and the lease's status, and
//! announces budget thresholds reached. It runs beside the lease controller, on the same watch
//! of Leases. Ending a lease for its spend is the lease's decision, made from what this records;
//! the lease takes one last reading itself ([`final_reading`]) before it gives its account back.
//!
//! Each reconcile: observe (is the lease Active on an account, and when is its cost due), then
//! read and record it when due; otherwise only make sure the usage store holds what the lease
//! has recorded.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Api, ResourceExt};
use kube::runtime::controller::Action;

use super::account::admin_access;
use super::notices::BudgetNotice;
use super::{Context, Error, events, requeue_at, status, usage_store};
use crate::lifecycle::budget;
use crate::lifecycle::usage::{self, FetchedDay};
use crate::lifecycle::usage_store::principal_spend;
use crate::resources::{Account, Lease, LeasePhase, LeaseStatus, LeaseUsage};

pub const CONTROLLER: &str = "usage";
/// Admin credentials for one Cost Explorer reading need not outlive it.
const COLLECTION_CREDENTIALS_SECONDS: i32 = 900;
const COLLECTION_SESSION: &str = "dce-operator-usage";
/// Look again this soon when the cache does not show the lease's last writes yet.
const EXPECTATIONS_RECHECK: Duration = Duration::from_millis(500);
/// Soonest a lease is looked at again when its next collection is already past.
const REQUEUE_FLOOR: Duration = Duration::from_millis(1);
/// Look again this soon for an Active lease whose account the cache does not show yet.
const CACHE_RECHECK: jiff::SignedDuration = jiff::SignedDuration::from_secs(1);
/// Retry delay after the lease changed under a write.
const CONFLICT_RETRY: Duration = Duration::from_millis(100);

pub mod reason {
    pub const THRESHOLD_REACHED: &str = "BudgetThresholdReached";
    pub const NOTICE_FAILED: &str = "BudgetNoticeFailed";
    pub const COLLECTION_FAILED: &str = "UsageCollectionFailed";
}

fn backoff_key(lease: &Lease) -> String {
    format!(
        "usage:{}/{}",
        lease.namespace().unwrap_or_default(),
        lease.name_any()
    )
}

pub async fn reconcile(lease: Arc<Lease>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    if !ctx.expectations.met(&lease, &ctx.accounts) {
        return Ok(Action::requeue(EXPECTATIONS_RECHECK));
    }
    let now = Timestamp::now();
    let action = match due_collection(&lease, &ctx) {
        Some(Due {
            at,
            account: Some(account),
        }) if at <= now => {
            let written = collect(&lease, &account, &ctx, now).await?;
            match next_collection(&written, &ctx) {
                Some(next) => requeue_at(next, REQUEUE_FLOOR),
                None => Action::await_change(),
            }
        }
        due => {
            usage_store::record(&lease, &ctx, now).await?;
            match due {
                // Also when the holding account is not in the cache yet (just started): account
                // changes do not wake this loop.
                Some(Due { at, .. }) => requeue_at(at.max(now + CACHE_RECHECK), REQUEUE_FLOOR),
                None => Action::await_change(),
            }
        }
    };
    ctx.succeeded(&backoff_key(&lease));
    Ok(action)
}

pub fn error_policy(lease: Arc<Lease>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failed(CONTROLLER, error.metric_label());
    if error.is_conflict() {
        return Action::requeue(CONFLICT_RETRY);
    }
    tracing::warn!(lease = %lease.name_any(), %error, "usage reconcile failed");
    ctx.backoff(&backoff_key(&lease), error)
}

/// When an Active lease's cost is next due, and the account it holds as the cache shows it.
struct Due {
    at: Timestamp,
    account: Option<Arc<Account>>,
}

/// The collection of an Active lease, unless it is being deleted (that ends it, with a final
/// reading).
fn due_collection(lease: &Lease, ctx: &Context) -> Option<Due> {
    if lease.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let at = next_collection(lease, ctx)?;
    let uid = lease.uid()?;
    let account = ctx
        .accounts
        .find(|a| a.holder().is_some_and(|h| h.uid == uid));
    Some(Due { at, account })
}

/// When an Active lease became Active.
pub fn activated_at(lease: &Lease) -> Option<Timestamp> {
    let status = lease.status.as_ref()?;
    (status.lease_status == Some(LeasePhase::Active))
        .then(|| status.lease_status_modified_on.as_ref().map(|t| t.0))
        .flatten()
}

/// When the lease's cost should next be read, if it is Active.
pub fn next_collection(lease: &Lease, ctx: &Context) -> Option<Timestamp> {
    Some(usage::next_collection(
        lease.status.as_ref()?.usage.as_ref(),
        activated_at(lease)?,
        ctx.settings.policy.usage_collection_interval,
    ))
}

/// What the principal of `lease` has spent in the current budget period over all their leases,
/// deleted ones included, counting `lease` as given (it may be fresher than the cache).
pub fn principal_period_spend(lease: &Lease, ctx: &Context, now: Timestamp) -> f64 {
    let from = budget::period_start(now, ctx.settings.policy.principal_budget_period);
    let uid = lease.uid();
    let cached = ctx.leases.state();
    let others = cached
        .iter()
        .map(|other| other.as_ref())
        .filter(|other| other.uid() != uid);
    principal_spend(
        others.chain([lease]),
        &usage_store::days_of(&lease.spec.principal_id, ctx),
        &lease.spec.principal_id,
        from,
    )
}

/// The last reading of a lease that is ending, before its account is released, so the spend
/// since the last collection is counted: best effort, a failure is reported and the lease ends
/// regardless. The reading is recorded in the usage store; the caller writes it in the status.
pub async fn final_reading(lease: &Lease, account: &Account, ctx: &Context) -> Option<LeaseUsage> {
    match read(lease, account, ctx, Timestamp::now()).await {
        Ok(usage) => Some(usage),
        Err(error) => {
            tracing::warn!(lease = %lease.name_any(), %error, "final usage reading not recorded");
            None
        }
    }
}

/// Reads the lease's cost and writes it in its status. Returns the lease as written.
async fn collect(
    lease: &Lease,
    account: &Account,
    ctx: &Context,
    now: Timestamp,
) -> Result<Lease, Error> {
    let usage = read(lease, account, ctx, now).await?;
    let api: Api<Lease> =
        Api::namespaced(ctx.client.clone(), &lease.namespace().unwrap_or_default());
    let written = status::replace_lease_usage(&api, &lease.name_any(), &usage).await?;
    ctx.expectations.lease_written(lease, &written);
    Ok(written)
}

/// Reads the lease's cost (or records why it could not) and announces thresholds newly
/// reached. A successful reading goes to the usage store first: a failure to store it leaves the
/// status as it was, so the collection is still due when retried.
async fn read(
    lease: &Lease,
    account: &Account,
    ctx: &Context,
    now: Timestamp,
) -> Result<LeaseUsage, Error> {
    tracing::debug!(lease = %lease.name_any(), resource_version = lease.resource_version(), "collecting usage");
    let status = lease.status.clone().unwrap_or_default();
    let activated = activated_at(lease).unwrap_or(now);
    let window = usage::query_window(activated, now);
    let previous = status.usage.clone();
    let mut recorded = match fetch(account, ctx, window).await {
        Ok(days) => {
            ctx.metrics.usage_collection("ok");
            usage::record_collection(previous.as_ref(), &days, window, now)
        }
        Err(error) => {
            ctx.metrics.usage_collection(error.metric_label());
            let message = error.to_string();
            tracing::warn!(lease = %lease.name_any(), %message, "usage collection failed");
            if previous.as_ref().and_then(|u| u.last_error.as_ref()) != Some(&message) {
                events::publish(
                    ctx,
                    lease,
                    "Lease",
                    true,
                    reason::COLLECTION_FAILED,
                    message.clone(),
                )
                .await;
            }
            usage::record_failure(previous.as_ref(), message, now)
        }
    };
    if recorded.last_error.is_none()
        && let Some(budget) = status.budget_amount
    {
        announce_thresholds(lease, account, ctx, budget, &mut recorded).await;
    }
    if recorded.last_error.is_none() {
        let mut read = lease.clone();
        read.status = Some(LeaseStatus {
            usage: Some(recorded.clone()),
            ..status
        });
        usage_store::record(&read, ctx, now).await?;
    }
    Ok(recorded)
}

async fn fetch(
    account: &Account,
    ctx: &Context,
    (start, end): (jiff::civil::Date, jiff::civil::Date),
) -> Result<Vec<FetchedDay>, Error> {
    let access = admin_access(
        account,
        ctx,
        COLLECTION_SESSION,
        COLLECTION_CREDENTIALS_SECONDS,
    )
    .await?
    .ok_or_else(|| {
        Error::Invalid(format!(
            "account {} names neither an admin role nor a key pair",
            account.spec.id
        ))
    })?;
    let result = ctx.aws.daily_cost(access.identity(), start, end).await;
    ctx.metrics.aws_call(
        "GetCostAndUsage",
        if result.is_ok() { "ok" } else { "error" },
    );
    Ok(result?
        .into_iter()
        .map(|day| FetchedDay {
            date: day.date,
            amount: day.amount,
            currency: day.currency,
        })
        .collect())
}

/// Announces each threshold newly reached (Event, and the webhook if configured) and records it
/// in `usage`. A threshold whose webhook call fails stays unrecorded, so the next collection
/// tries again.
async fn announce_thresholds(
    lease: &Lease,
    account: &Account,
    ctx: &Context,
    budget: f64,
    usage: &mut LeaseUsage,
) {
    let due = budget::notices_due(
        usage.total,
        budget,
        &ctx.settings.policy.budget_notice_thresholds,
        &usage.notified_thresholds,
    );
    for threshold in due {
        let summary = format!(
            "spend {:.2} {} reached {threshold}% of the lease budget of {:.2}",
            usage.total, usage.currency, budget
        );
        let notice = BudgetNotice {
            namespace: lease.namespace().unwrap_or_default(),
            lease: lease.name_any(),
            principal_id: lease.spec.principal_id.clone(),
            account_id: account.spec.id.clone(),
            threshold_percent: threshold,
            spend: usage.total,
            budget_amount: budget,
            currency: usage.currency.clone(),
            recipients: lease.spec.budget_notification_emails.clone(),
        };
        match ctx.budget_webhook.send(&notice).await {
            Ok(()) => {
                events::publish(
                    ctx,
                    lease,
                    "Lease",
                    threshold >= 100,
                    reason::THRESHOLD_REACHED,
                    summary,
                )
                .await;
                ctx.metrics
                    .budget_action("notified", format!("{threshold}%"));
                usage.notified_thresholds.push(threshold);
            }
            Err(error) => {
                events::publish(
                    ctx,
                    lease,
                    "Lease",
                    true,
                    reason::NOTICE_FAILED,
                    format!("{summary}; the notice could not be delivered: {error}"),
                )
                .await;
            }
        }
    }
}
