//! Claiming an account for a lease: one guarded status write on the Account.

use super::*;

/// Tries to take an account. The claim is a status write on the Account guarded by the
/// resourceVersion read from the cache: of two leases racing for one account, one write fails.
pub(super) async fn claim(
    lease: &Lease,
    ctx: &Context,
    terms: Terms,
    now: Timestamp,
) -> Result<Action, Error> {
    let mut free = Vec::new();
    let mut holders = HashSet::new();
    for account in ctx.accounts.state() {
        if let Some(holder) = account.holder() {
            holders.insert(holder.uid.clone());
        } else if is_free(&account) {
            free.push(FreeAccount {
                name: account.name_any(),
                id: account.spec.id.clone(),
            });
        }
    }
    // A lease that has claimed an account but not yet written its own status is no longer
    // waiting: counting it would push every lease behind it one account further along.
    let queue: Vec<QueueKey> = ctx
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
    let chosen = decide::choose_account(
        &queue_key(lease, ctx),
        lease.spec.account_id.as_deref(),
        &queue,
        &free,
    );
    let Some(chosen) = chosen else {
        tracing::debug!(lease = %lease.name_any(), free = free.len(), waiting = queue.len(), "no account for this lease yet");
        let mut status = lease.status.clone().unwrap_or_default();
        set_phase(
            &mut status,
            LeasePhase::Pending,
            LeaseReason::WaitingForAccount,
            now,
        );
        status.expires_on = Some(Time(terms.expires_on));
        status.budget_amount = Some(terms.budget_amount);
        status.message = Some(match &lease.spec.account_id {
            Some(id) => format!("waiting for account {id} to be Ready"),
            None => "waiting for a Ready account".to_string(),
        });
        conditions::set_ready(
            &mut status.conditions,
            false,
            LeaseReason::WaitingForAccount.as_str(),
            "no account is free",
            lease.metadata.generation,
            now,
        );
        write_status(lease, ctx, status).await?;
        if !free.is_empty() && lease.spec.account_id.is_none() {
            // Accounts are free but older leases rank ahead; once they are served (or leave the
            // queue) this lease moves up. Queue changes are not watched, so look again shortly.
            return Ok(Action::requeue(
                QUEUE_RECHECK.mul_f64(1.0 + rand::random::<f64>()),
            ));
        }
        // Woken by account changes; the expiry bounds the wait.
        return Ok(Action::requeue(
            terms.expires_on.duration_since(now).unsigned_abs(),
        ));
    };
    // The claim is guarded by the resourceVersion of this copy, so this copy must be the one
    // that is free: the cache may have moved on since the free list was taken, and a claim
    // built on a newer copy that another lease already holds would pass the guard and take
    // the account from it.
    let Some(account) = ctx
        .accounts
        .get(&ObjectRef::new(&chosen.name))
        .filter(|account| is_free(account))
    else {
        ctx.metrics.account_claim("stale");
        return Ok(Action::requeue(conflict_retry()));
    };
    let mut account_status = account.status.clone().unwrap_or_default();
    account_status.lease = Some(LeaseHolder {
        namespace: lease.namespace().unwrap_or_default(),
        name: lease.name_any(),
        uid: lease.uid().unwrap_or_default(),
    });
    account_status.account_status = Some(AccountPhase::Leased);
    let message = format!(
        "leased by {}/{}",
        lease.namespace().unwrap_or_default(),
        lease.name_any()
    );
    conditions::set_ready(
        &mut account_status.conditions,
        true,
        crate::lifecycle::account::reason::LEASED,
        &message,
        account.metadata.generation,
        now,
    );
    let api: Api<Account> = Api::all(ctx.client.clone());
    let claimed = match status::apply_account(
        &api,
        &chosen.name,
        account.resource_version().as_deref(),
        &account_status,
    )
    .await
    {
        Ok(claimed) => {
            ctx.metrics.account_claim("claimed");
            claimed
        }
        // Another lease won this account, or it changed: choose again with fresher data.
        Err(Error::Conflict) => {
            ctx.metrics.account_claim("lost");
            tracing::debug!(lease = %lease.name_any(), account = chosen.name, "lost the race for an account");
            return Ok(Action::requeue(conflict_retry()));
        }
        Err(e) => return Err(e),
    };
    ctx.expectations.account_written(lease, &claimed);

    // The claim on the Account is the record of the assignment; the lease's own status is
    // written once, with its credentials, by `run` (a crash before that is recovered from the
    // claim: the next reconcile finds the lease Held).
    let mut status = lease.status.clone().unwrap_or_default();
    set_phase(&mut status, LeasePhase::Active, LeaseReason::Active, now);
    status.message = None;
    status.budget_amount = Some(terms.budget_amount);
    run(lease, status, ctx, &claimed, terms.expires_on, now, true).await
}
