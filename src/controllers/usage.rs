//! Usage collection for Active leases: read the account's daily cost from Cost Explorer with
//! the account's admin access, record it in the lease status, and announce budget thresholds.
//! Whether the lease must end for its spend is decided afterwards, with the lease's decisions.

use jiff::Timestamp;
use kube::api::{Api, ResourceExt};

use super::account::admin_access;
use super::notices::BudgetNotice;
use super::{Context, Error, events, status, usage_store};
use crate::lifecycle::usage::{self, FetchedDay};
use crate::lifecycle::usage_store::principal_spend;
use crate::resources::{Account, Lease, LeasePhase, LeaseUsage};

/// Admin credentials for one Cost Explorer reading need not outlive it.
const COLLECTION_CREDENTIALS_SECONDS: i32 = 900;
const COLLECTION_SESSION: &str = "dce-operator-usage";

pub mod reason {
    pub const THRESHOLD_REACHED: &str = "BudgetThresholdReached";
    pub const NOTICE_FAILED: &str = "BudgetNoticeFailed";
    pub const COLLECTION_FAILED: &str = "UsageCollectionFailed";
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
    let from = usage::period_start(now, ctx.settings.policy.principal_budget_period);
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

/// Reads the cost of a lease holding `held` when its collection is due (and the lease is not
/// being deleted: that ends it, with a final reading), returning the lease as written. Otherwise
/// makes sure the usage store holds what the lease has recorded (a lease recorded before the
/// store existed, or whose store write failed).
pub async fn collect_when_due(
    lease: &Lease,
    held: Option<&Account>,
    deleting: bool,
    ctx: &Context,
    now: Timestamp,
) -> Result<Option<Lease>, Error> {
    match held {
        Some(account) if !deleting && next_collection(lease, ctx).is_some_and(|at| at <= now) => {
            Ok(Some(collect(lease, account, ctx, now).await?))
        }
        _ => {
            usage_store::record(lease, ctx, now).await?;
            Ok(None)
        }
    }
}

/// The last reading of an Active lease that is ending, before its account is released, so the
/// spend since the last collection is counted: best effort, a failure is reported and the lease
/// ends regardless. Returns the lease as written (as given if nothing was).
pub async fn final_reading(
    lease: &Lease,
    account: &Account,
    ctx: &Context,
    now: Timestamp,
) -> Lease {
    let just_read = lease
        .status
        .as_ref()
        .and_then(|s| s.usage.as_ref())
        .and_then(|u| u.last_attempt_at.as_ref())
        .is_some_and(|at| at.0 >= now);
    if lease.phase() != Some(LeasePhase::Active) || just_read {
        return lease.clone();
    }
    match collect(lease, account, ctx, now).await {
        Ok(written) => written,
        Err(error) => {
            tracing::warn!(lease = %lease.name_any(), %error, "final usage reading not recorded");
            lease.clone()
        }
    }
}

/// Reads the lease's cost, records it (or the failure) in its status, and announces thresholds
/// newly reached. A successful reading goes to the usage store first: a failure to store it
/// leaves the status as it was, so the collection is still due when retried. Returns the lease
/// as written.
pub async fn collect(
    lease: &Lease,
    account: &Account,
    ctx: &Context,
    now: Timestamp,
) -> Result<Lease, Error> {
    tracing::debug!(lease = %lease.name_any(), resource_version = lease.resource_version(), "collecting usage");
    let mut status = lease.status.clone().unwrap_or_default();
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
    let stored = recorded.last_error.is_none();
    status.usage = Some(recorded);
    if stored {
        let mut read = lease.clone();
        read.status = Some(status.clone());
        usage_store::record(&read, ctx, now).await?;
    }
    let api: Api<Lease> =
        Api::namespaced(ctx.client.clone(), &lease.namespace().unwrap_or_default());
    let written = status::apply_lease(&api, &lease.name_any(), &status).await?;
    ctx.expectations.lease_written(lease, &written);
    Ok(written)
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
    let due = usage::notices_due(
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
