//! Observe: everything a lease decision needs, read from the caches (and, where the cache
//! cannot be trusted, from the API server) into one [`LeaseFacts`].

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;

use super::*;
use crate::controllers::usage;
use crate::lifecycle::credentials::SecretObservation;
use crate::lifecycle::lease::{Candidates, Holding, LeaseFacts, LeaseObservation, QueueKey};

pub(super) async fn observe(
    lease: &Lease,
    ctx: &Context,
    deleting: bool,
) -> Result<LeaseFacts, Error> {
    let now = Timestamp::now();
    let (holding, held) = holding(lease, ctx).await?;
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
        .then(|| candidates(lease, ctx));
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
        secret,
        secret_version,
        secret_name,
        candidates,
        jitter: rand::random(),
    })
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

/// The waiting leases and the free accounts. A lease that has claimed an account but not yet
/// written its own status is no longer waiting: counting it would push every lease behind it
/// one account further along.
fn candidates(lease: &Lease, ctx: &Context) -> Candidates {
    let mut free = Vec::new();
    let mut holders = std::collections::HashSet::new();
    for account in ctx.accounts.state() {
        if let Some(holder) = account.holder() {
            holders.insert(holder.uid.clone());
        } else if is_free(&account) {
            free.push(account);
        }
    }
    let queue = ctx
        .leases
        .state()
        .iter()
        .filter(|l| {
            is_waiting(l)
                && l.spec.account_id.is_none()
                && !l.uid().is_some_and(|uid| holders.contains(&uid))
        })
        .map(|l| queue_key(l, ctx))
        .collect();
    Candidates {
        me: queue_key(lease, ctx),
        queue,
        free,
    }
}

/// Ready, held by no lease, and not being deleted.
fn is_free(account: &Account) -> bool {
    account.phase() == Some(AccountPhase::Ready)
        && account.holder().is_none()
        && account.metadata.deletion_timestamp.is_none()
}

fn created(lease: &Lease) -> Timestamp {
    lease
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_else(Timestamp::now)
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
