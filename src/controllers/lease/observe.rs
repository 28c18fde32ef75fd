//! Observe: everything a lease decision needs, read from the caches (and, where the cache
//! cannot be trusted, from the API server) into one [`LeaseFacts`].

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;

use super::queue::{Queue, created, is_waiting, queue_key};
use super::*;
use crate::controllers::usage;
use crate::lifecycle::credentials::SecretObservation;
use crate::lifecycle::lease::{Claims, Holding, LeaseFacts, LeaseObservation, sort_claims};

pub(super) async fn observe(
    lease: &Lease,
    ctx: &Context,
    deleting: bool,
) -> Result<LeaseFacts, Error> {
    let now = Timestamp::now();
    let Claims {
        holding,
        held,
        strays,
    } = claims(lease, ctx).await?;
    let secret_name = secrets::credentials_secret_name(lease);
    let (secret, secret_version) = match held {
        Some(_) => {
            let api: Api<Secret> =
                Api::namespaced(ctx.client.clone(), &lease.namespace().unwrap_or_default());
            let uid = lease.uid().unwrap_or_default();
            secrets::observe(&api, &secret_name, &uid).await?
        }
        None => (SecretObservation::Absent, None),
    };
    // Only a lease that holds nothing and has not ended can claim an account.
    let candidates = (holding == Holding::None && !deleting && is_waiting(lease))
        .then(|| Queue::read(ctx).candidates(lease, ctx));
    Ok(LeaseFacts {
        step: LeaseObservation {
            now,
            created: created(lease),
            deleting,
            holding,
            principal_has_earlier_lease: principal_has_earlier_lease(lease, ctx),
            principal_period_spend: usage::principal_period_spend(lease, ctx, now),
        },
        held,
        strays,
        secret,
        secret_version,
        secret_name,
        candidates,
    })
}

/// The accounts that record this lease as their holder, sorted out by
/// [`crate::lifecycle::lease::sort_claims`]. The cache answers; a live read confirms before an
/// unfinished lease is declared to have lost the account its status names.
async fn claims(lease: &Lease, ctx: &Context) -> Result<Claims<Arc<Account>>, Error> {
    let uid = lease.uid().unwrap_or_default();
    let mut claims: Vec<(String, Arc<Account>)> = ctx
        .accounts
        .state()
        .into_iter()
        .filter(|a| a.holder().is_some_and(|h| h.uid == uid))
        .map(|a| (a.name_any(), a))
        .collect();
    claims.sort_by(|a, b| a.0.cmp(&b.0));
    let named = lease.status.as_ref().and_then(|s| s.account_name.clone());
    if let Some(name) = named
        && lease.phase() != Some(LeasePhase::Inactive)
        && !claims.iter().any(|(claimed, _)| *claimed == name)
    {
        let api: Api<Account> = Api::all(ctx.client.clone());
        if let Some(account) = api.get_opt(&name).await.map_err(Error::Kube)?
            && account.holder().is_some_and(|h| h.uid == uid)
        {
            claims.push((name, Arc::new(account)));
        }
    }
    Ok(sort_claims(lease, claims))
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
