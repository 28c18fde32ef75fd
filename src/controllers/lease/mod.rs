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

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ResourceExt};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};

use super::{Context, Error, secrets};
use crate::lifecycle::conditions;
use crate::lifecycle::lease::reason;
use crate::resources::{Account, Lease, LeasePhase};

mod act;
mod credentials;
mod observe;
mod queue;

use act::act;
pub use credentials::principal_credentials;
use observe::observe;
pub use queue::{leases_behind, leases_for_account};

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

/// A filter for the lease controller's own watch of Leases: passes an object only when
/// something this controller does not write itself changed — the spec (generation), deletion,
/// finalizers, annotations (an end or refresh request) or the usage the usage loop records. A
/// status the lease reconcile just wrote needs no reconcile of its own: the reconcile that wrote
/// it already planned what follows, and the caches hold the new copy for the next one. Without
/// this every status write came back as one more reconcile that found nothing to do.
pub fn changed_inputs() -> impl FnMut(&Arc<Lease>) -> bool + Send + 'static {
    let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    move |lease| {
        let Some(uid) = lease.uid() else {
            return true;
        };
        let meta = &lease.metadata;
        if meta.deletion_timestamp.is_some() && lease.finalizers().is_empty() {
            // Its last state: nothing more will come for it.
            seen.remove(&uid);
            return true;
        }
        let inputs = serde_json::json!([
            meta.generation,
            meta.deletion_timestamp,
            meta.finalizers,
            meta.annotations,
            lease.status.as_ref().and_then(|s| s.usage.as_ref()),
        ]);
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            inputs.to_string().hash(&mut hasher);
            hasher.finish()
        };
        seen.insert(uid, hash) != Some(hash)
    }
}

/// Changes to the operator's credentials Secrets that their lease must act on: a deletion (or
/// the managed label removed, which a label-selected watch reports as one), or data no longer
/// as the operator wrote it. The operator's own writes leave a Secret intact and wake nobody.
pub fn credentials_secret_changes(
    client: kube::Client,
    managed: watcher::Config,
) -> impl futures::Stream<Item = Result<Secret, watcher::Error>> + Send + 'static {
    watcher(Api::<Secret>::all(client), managed)
        .default_backoff()
        .try_filter_map(|event| {
            std::future::ready(Ok(match event {
                watcher::Event::Delete(secret) => Some(secret),
                watcher::Event::Apply(secret) if !secrets::is_intact(&secret) => Some(secret),
                _ => None,
            }))
        })
}

/// The lease whose credentials Secret `secret` is.
pub fn lease_of_secret(secret: &Secret) -> Option<ObjectRef<Lease>> {
    secrets::owning_lease(secret)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{LeaseSpec, LeaseStatus, LeaseUsage};

    #[test]
    fn only_changes_the_lease_reconcile_did_not_write_pass() {
        let mut pass = changed_inputs();
        let mut lease = Lease::new("l", LeaseSpec::for_principal("p"));
        lease.metadata.uid = Some("u".into());
        assert!(pass(&Arc::new(lease.clone())), "first sight");
        lease.status = Some(LeaseStatus {
            lease_status: Some(LeasePhase::Active),
            ..LeaseStatus::default()
        });
        assert!(!pass(&Arc::new(lease.clone())), "its own status write");
        lease.status.as_mut().unwrap().usage = Some(LeaseUsage {
            total: 5.0,
            ..LeaseUsage::default()
        });
        assert!(
            pass(&Arc::new(lease.clone())),
            "usage recorded by the usage loop"
        );
        lease.metadata.annotations =
            Some([("dce.dev/end-requested".to_string(), "x".to_string())].into());
        assert!(pass(&Arc::new(lease.clone())), "an end request");
        lease.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
        assert!(pass(&Arc::new(lease.clone())), "its finalizer added");
        lease.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert!(pass(&Arc::new(lease.clone())), "deletion");
        lease.metadata.finalizers = None;
        assert!(pass(&Arc::new(lease.clone())), "its last state");
        assert!(pass(&Arc::new(lease)), "forgotten once gone");
    }
}
