//! The Lease reconciler. Each reconcile takes three steps:
//!
//! 1. **observe** ([`observe`]): reads what the decision needs (the account holding the lease,
//!    its credentials Secret, the queue and the free accounts, the principal's recorded spend)
//!    into one [`LeaseFacts`];
//! 2. **decide**: one call to [`crate::lifecycle::lease::plan`], pure, which returns the plan:
//!    ordered actions (claim an account, issue credentials, write the status, release it,
//!    publish an Event...) and when to look again;
//! 3. **act** ([`act`]): carries out the actions, each with one small function.
//!
//! Cost is read by the usage loop ([`super::usage`]): this reconcile reads recorded spend, and
//! takes one last reading when a lease ends, before its account is released.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, ResourceExt};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;

use super::{Context, Error, secrets};
use crate::lifecycle::conditions;
use crate::lifecycle::lease::reason;
use crate::resources::{Account, AccountPhase, Lease, LeasePhase};

mod act;
mod credentials;
mod observe;

use act::act;
pub use credentials::principal_credentials;
use observe::observe;

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

fn is_waiting(lease: &Lease) -> bool {
    lease.metadata.deletion_timestamp.is_none()
        && matches!(lease.phase(), None | Some(LeasePhase::Pending))
}

async fn reconcile_lease(lease: &Lease, ctx: &Context, deleting: bool) -> Result<Action, Error> {
    if !ctx.expectations.met(lease, &ctx.accounts) {
        return Ok(Action::requeue(EXPECTATIONS_RECHECK));
    }
    let facts = observe(lease, ctx, deleting).await?;
    let plan = crate::lifecycle::lease::plan(lease, &facts, &ctx.settings.policy);
    let actions: Vec<&str> = plan.actions.iter().map(|a| a.kind()).collect();
    tracing::debug!(lease = %lease.name_any(), ?actions, then = ?plan.then, "lease plan");
    act(lease, plan, ctx).await
}
