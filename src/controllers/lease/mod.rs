//! The Lease reconciler: admission, exactly-once account assignment, the credentials Secret,
//! expiry to the second, release, and history retention.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ResourceExt};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;

use super::{Context, Error, events, secrets, status, usage};
use crate::aws::principal_role_arn;
use crate::lifecycle::conditions;
use crate::lifecycle::credentials::{
    SecretAction, SecretObservation, secret_action, with_refresh_request,
};
use crate::lifecycle::lease::{
    self as decide, FreeAccount, Holding, LeaseObservation, LeaseStep, Limit, QueueKey, Terms,
};
use crate::lifecycle::sync::CREDENTIALS_REFRESH_ANNOTATION;
use crate::resources::{
    Account, AccountPhase, AccountStatus, Lease, LeaseHolder, LeasePhase, LeaseReason, LeaseStatus,
};

mod claim;
mod credentials;
mod ending;

use claim::claim;
pub use credentials::principal_credentials;
use credentials::run;
use ending::end;

pub const CONTROLLER: &str = "lease";
/// Ends the lease (release, Secret deletion) before the object goes away.
pub const FINALIZER: &str = "dce.dev/lease-cleanup";
/// Look again this soon when the caches do not show this lease's last writes yet (the watch
/// event that brings them wakes it sooner).
const EXPECTATIONS_RECHECK: Duration = Duration::from_millis(500);
/// Retry delay after losing a race (an assignment, a release): long enough for the cache to
/// show the winner's write, jittered so the losers do not collide again.
const CONFLICT_RETRY: Duration = Duration::from_millis(50);

fn conflict_retry() -> Duration {
    CONFLICT_RETRY.mul_f64(1.0 + 2.0 * rand::random::<f64>())
}
/// Re-check the queue while accounts are free but taken by leases ahead in it.
const QUEUE_RECHECK: Duration = Duration::from_millis(500);
/// Re-check a Secret name held by someone else this often: a safety net, as the Secret's
/// deletion wakes the lease at once (see [`leases_blocked_by_secret`]).
const CONFLICT_RECHECK: Duration = Duration::from_secs(60);

/// Ready-condition reasons of a Lease.
pub mod reason {
    pub const CREDENTIALS_ISSUED: &str = "CredentialsIssued";
    pub const SECRET_CONFLICT: &str = "SecretNameConflict";
    pub const CREDENTIALS_FAILED: &str = "CredentialsFailed";
    /// AWS could not be reached to issue them; retried within seconds.
    pub const CREDENTIALS_PENDING: &str = "CredentialsPending";
}

pub async fn reconcile(lease: Arc<Lease>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let namespace = lease.namespace().unwrap_or_default();
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &namespace);
    let key = format!("{namespace}/{}", lease.name_any());
    tracing::trace!(lease = %key, resource_version = lease.resource_version(), "reconciling");
    let action = finalizer(&api, FINALIZER, lease, |event| async {
        match event {
            Finalizer::Apply(lease) => reconcile_lease(&lease, &ctx, false).await,
            Finalizer::Cleanup(lease) => reconcile_lease(&lease, &ctx, true).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    ctx.succeeded(&key);
    Ok(action)
}

pub fn error_policy(lease: Arc<Lease>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failed(CONTROLLER, error.metric_label());
    let key = format!(
        "{}/{}",
        lease.namespace().unwrap_or_default(),
        lease.name_any()
    );
    if error.is_conflict() {
        return Action::requeue(conflict_retry());
    }
    tracing::warn!(lease = %key, %error, "lease reconcile failed");
    ctx.backoff(&key, error)
}

/// Leases to reconcile when an account changes: its holder, and when it is free, the waiting ones.
pub fn leases_for_account(
    account: &Account,
    leases: &kube::runtime::reflector::Store<Lease>,
) -> Vec<ObjectRef<Lease>> {
    let mut refs = Vec::new();
    if let Some(holder) = account.holder() {
        refs.push(ObjectRef::new(&holder.name).within(&holder.namespace));
    } else if account.phase() == Some(AccountPhase::Ready) {
        refs.extend(
            leases
                .state()
                .iter()
                .filter(|l| is_waiting(l))
                .map(|l| ObjectRef::from(l.as_ref())),
        );
    }
    refs
}

/// Leases to reconcile when a Secret is deleted: those that found its name taken by it, so
/// they create their own credentials Secret at once.
pub fn leases_blocked_by_secret(
    namespace: Option<&str>,
    name: &str,
    leases: &kube::runtime::reflector::Store<Lease>,
) -> Vec<ObjectRef<Lease>> {
    leases
        .state()
        .iter()
        .filter(|l| {
            l.namespace().as_deref() == namespace
                && secrets::credentials_secret_name(l) == name
                && l.status.as_ref().is_some_and(|s| {
                    conditions::ready_reason(&s.conditions) == Some(reason::SECRET_CONFLICT)
                })
        })
        .map(|l| ObjectRef::from(l.as_ref()))
        .collect()
}

/// Ready, held by no lease, and not being deleted.
fn is_free(account: &Account) -> bool {
    account.phase() == Some(AccountPhase::Ready)
        && account.holder().is_none()
        && account.metadata.deletion_timestamp.is_none()
}

fn is_waiting(lease: &Lease) -> bool {
    lease.metadata.deletion_timestamp.is_none()
        && matches!(lease.phase(), None | Some(LeasePhase::Pending))
}

fn created(lease: &Lease) -> Timestamp {
    lease
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_else(Timestamp::now)
}

async fn reconcile_lease(lease: &Lease, ctx: &Context, deleting: bool) -> Result<Action, Error> {
    if !ctx.expectations.met(lease, &ctx.accounts) {
        return Ok(Action::requeue(EXPECTATIONS_RECHECK));
    }
    let now = Timestamp::now();
    let (holding, held_account) = holding(lease, ctx).await?;
    let collected =
        usage::collect_when_due(lease, held_account.as_deref(), deleting, ctx, now).await?;
    let lease = collected.as_ref().unwrap_or(lease);
    let observation = LeaseObservation {
        now,
        created: created(lease),
        deleting,
        holding,
        principal_has_earlier_lease: principal_has_earlier_lease(lease, ctx),
        principal_period_spend: usage::principal_period_spend(lease, ctx, now),
    };
    let step = decide::decide(lease, &observation, &ctx.settings.policy);
    tracing::debug!(lease = %lease.name_any(), ?step, "lease step");
    match step {
        LeaseStep::Reject(rejection) => {
            if rejection.limit == Limit::PrincipalBudget
                && lease.phase() != Some(LeasePhase::Inactive)
            {
                ctx.metrics.budget_action(
                    "refused",
                    LeaseReason::OverPrincipalBudget.as_str().to_string(),
                );
            }
            let status = inactive_status(
                lease,
                LeaseReason::Invalid,
                Some(rejection.message.clone()),
                now,
            );
            write_status(lease, ctx, status).await?;
            Ok(Action::requeue(
                ctx.settings.policy.history_retention.unsigned_abs(),
            ))
        }
        LeaseStep::Claim(terms) => claim(lease, ctx, terms, now).await,
        LeaseStep::Run(terms) => {
            let account = held_account
                .ok_or_else(|| Error::Invalid("held account vanished from cache".into()))?;
            let mut status = lease.status.clone().unwrap_or_default();
            status.budget_amount = Some(terms.budget_amount);
            run(lease, status, ctx, &account, terms.expires_on, now, false).await
        }
        LeaseStep::End(reason) => {
            if matches!(
                reason,
                LeaseReason::OverBudget | LeaseReason::OverPrincipalBudget
            ) && lease.phase() != Some(LeasePhase::Inactive)
            {
                ctx.metrics
                    .budget_action("ended", reason.as_str().to_string());
            }
            end(lease, ctx, reason, held_account.as_deref(), now, now).await?;
            if deleting {
                Ok(Action::await_change())
            } else {
                Ok(Action::requeue(
                    ctx.settings.policy.history_retention.unsigned_abs(),
                ))
            }
        }
        LeaseStep::Expire { at } => {
            end(
                lease,
                ctx,
                LeaseReason::Expired,
                held_account.as_deref(),
                at,
                now,
            )
            .await?;
            Ok(Action::requeue(
                ctx.settings.policy.history_retention.unsigned_abs(),
            ))
        }
        LeaseStep::Finalize => Ok(Action::await_change()),
        LeaseStep::Retire { at } => {
            if now >= at {
                let api: Api<Lease> =
                    Api::namespaced(ctx.client.clone(), &lease.namespace().unwrap_or_default());
                api.delete(&lease.name_any(), &DeleteParams::default())
                    .await?;
                Ok(Action::await_change())
            } else {
                Ok(Action::requeue(at.duration_since(now).unsigned_abs()))
            }
        }
    }
}

/// Which account, if any, records this lease as its holder. The cache answers; a live read
/// confirms before an Active lease is declared to have lost its account.
async fn holding(lease: &Lease, ctx: &Context) -> Result<(Holding, Option<Arc<Account>>), Error> {
    let uid = lease.uid().unwrap_or_default();
    if let Some(account) = ctx
        .accounts
        .find(|a| a.holder().is_some_and(|h| h.uid == uid))
    {
        return Ok((Holding::Held, Some(account)));
    }
    let Some(name) = lease.status.as_ref().and_then(|s| s.account_name.clone()) else {
        return Ok((Holding::None, None));
    };
    if lease.phase() == Some(LeasePhase::Inactive) {
        return Ok((Holding::None, None));
    }
    let api: Api<Account> = Api::all(ctx.client.clone());
    Ok(match api.get_opt(&name).await.map_err(Error::Kube)? {
        Some(account) if account.holder().is_some_and(|h| h.uid == uid) => {
            (Holding::Held, Some(Arc::new(account)))
        }
        _ => (Holding::Lost, None),
    })
}

fn queue_key(lease: &Lease, ctx: &Context) -> QueueKey {
    QueueKey {
        created: created(lease),
        arrival: ctx.arrivals.of(lease),
        uid: lease.uid().unwrap_or_default(),
    }
}

fn principal_has_earlier_lease(lease: &Lease, ctx: &Context) -> bool {
    let me = queue_key(lease, ctx);
    ctx.leases
        .find(|other| {
            other.spec.principal_id == lease.spec.principal_id
                && other.uid() != lease.uid()
                && other.metadata.deletion_timestamp.is_none()
                && other.phase() != Some(LeasePhase::Inactive)
                && queue_key(other, ctx) < me
        })
        .is_some()
}

fn inactive_status(
    lease: &Lease,
    reason: LeaseReason,
    message: Option<String>,
    now: Timestamp,
) -> LeaseStatus {
    let mut status = lease.status.clone().unwrap_or_default();
    set_phase(&mut status, LeasePhase::Inactive, reason, now);
    status.message = message.clone();
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
    status
}

fn set_phase(status: &mut LeaseStatus, phase: LeasePhase, reason: LeaseReason, now: Timestamp) {
    if status.lease_status != Some(phase) {
        status.lease_status_modified_on = Some(Time(now));
    }
    status.lease_status = Some(phase);
    status.lease_status_reason = Some(reason);
}

/// Writes the status if it changed, and announces phase/reason transitions.
async fn write_status(lease: &Lease, ctx: &Context, mut status: LeaseStatus) -> Result<(), Error> {
    status.observed_generation = lease.metadata.generation;
    let old = lease.status.clone().unwrap_or_default();
    let mut compare = status.clone();
    compare.last_modified_on = old.last_modified_on.clone();
    if status::same_when_stored(&compare, &old) {
        return Ok(());
    }
    status.last_modified_on = Some(Time(Timestamp::now()));
    let api: Api<Lease> =
        Api::namespaced(ctx.client.clone(), &lease.namespace().unwrap_or_default());
    let written = status::apply_lease(&api, &lease.name_any(), &status).await?;
    ctx.expectations.lease_written(lease, &written);
    if old.lease_status != status.lease_status
        || old.lease_status_reason != status.lease_status_reason
    {
        let phase = status.lease_status.map(|p| p.as_str()).unwrap_or("Unknown");
        let reason = status
            .lease_status_reason
            .map(|r| r.as_str())
            .unwrap_or("Unknown");
        let warning = matches!(
            status.lease_status_reason,
            Some(LeaseReason::Invalid | LeaseReason::AccountOrphaned)
        );
        let note = match (&status.message, &status.account_id) {
            (Some(message), _) => format!("{phase}: {message}"),
            (None, Some(account)) => match &status.credentials_secret_name {
                Some(secret) => format!(
                    "{phase} ({reason}) with account {account}; credentials in Secret {secret}"
                ),
                None => format!("{phase} ({reason}) with account {account}"),
            },
            (None, None) => format!("{phase} ({reason})"),
        };
        events::publish(ctx, lease, "Lease", warning, reason, note).await;
    }
    Ok(())
}
