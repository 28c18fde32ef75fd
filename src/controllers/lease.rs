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

/// Tries to take an account. The claim is a status write on the Account guarded by the
/// resourceVersion read from the cache: of two leases racing for one account, one write fails.
async fn claim(
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

/// Keeps an Active lease's status (`status`, built on the stored one) and credentials Secret in
/// place; wakes at refresh, usage collection or expiry. `just_claimed`: the account was taken
/// in this reconcile.
async fn run(
    lease: &Lease,
    mut status: LeaseStatus,
    ctx: &Context,
    account: &Account,
    expires_on: Timestamp,
    now: Timestamp,
    just_claimed: bool,
) -> Result<Action, Error> {
    let namespace = lease.namespace().unwrap_or_default();
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret_name = secrets::credentials_secret_name(lease);
    let uid = lease.uid().unwrap_or_default();
    let lifetime = ctx.settings.policy.credentials_lifetime;
    let (observed, existing) = if just_claimed {
        // Nothing of this operator's can be there yet: any earlier claim by this lease would
        // have made it Held. Creating fails on a Secret that exists anyway (someone else's),
        // and the next reconcile reads and reports it.
        (SecretObservation::Absent, None)
    } else {
        secrets::observe(&secret_api, &secret_name, &uid).await?
    };

    if status.lease_status != Some(LeasePhase::Active) {
        set_phase(&mut status, LeasePhase::Active, LeaseReason::Active, now);
    }
    status.account_id = Some(account.spec.id.clone());
    status.account_name = Some(account.name_any());
    status.expires_on = Some(Time(expires_on));
    status.credentials_secret_name = Some(secret_name.clone());

    let refresh_request = lease
        .annotations()
        .get(CREDENTIALS_REFRESH_ANNOTATION)
        .cloned();
    let refresh_requested = refresh_request.is_some()
        && refresh_request
            != lease
                .status
                .as_ref()
                .and_then(|s| s.observed_refresh_request.clone());
    status.observed_refresh_request = refresh_request;
    let action = with_refresh_request(secret_action(&observed, lifetime, now), refresh_requested);
    let wake = match action {
        SecretAction::Keep { next } => {
            conditions::set_ready(
                &mut status.conditions,
                true,
                reason::CREDENTIALS_ISSUED,
                "",
                lease.metadata.generation,
                now,
            );
            next
        }
        SecretAction::Conflict => {
            let message = format!(
                "Secret {secret_name} exists and is not managed by dce-operator for this lease; it is left alone"
            );
            if conditions::ready_reason(&status.conditions) != Some(reason::SECRET_CONFLICT) {
                events::publish(
                    ctx,
                    lease,
                    "Lease",
                    true,
                    reason::SECRET_CONFLICT,
                    message.clone(),
                )
                .await;
            }
            conditions::set_ready(
                &mut status.conditions,
                false,
                reason::SECRET_CONFLICT,
                &message,
                lease.metadata.generation,
                now,
            );
            status.credentials_secret_name = None;
            now + jiff::SignedDuration::try_from(CONFLICT_RECHECK).unwrap_or_default()
        }
        action @ (SecretAction::Create | SecretAction::Refresh(_)) => {
            let creds = match issue_credentials(lease, ctx, account).await {
                Ok(creds) => creds,
                Err(error) => {
                    let message = error.to_string();
                    // AWS not answering passes by itself; a refusal needs an admin.
                    let why = if error.is_transient() {
                        reason::CREDENTIALS_PENDING
                    } else {
                        reason::CREDENTIALS_FAILED
                    };
                    if conditions::ready_reason(&status.conditions) != Some(why) {
                        events::publish(ctx, lease, "Lease", true, why, message.clone()).await;
                    }
                    conditions::set_ready(
                        &mut status.conditions,
                        false,
                        why,
                        &message,
                        lease.metadata.generation,
                        now,
                    );
                    write_status(lease, ctx, status).await?;
                    return Err(error);
                }
            };
            secrets::write(
                &secret_api,
                lease,
                &secret_name,
                existing.as_ref(),
                &creds,
                &ctx.settings.region,
            )
            .await?;
            if let SecretAction::Refresh(cause) = action {
                tracing::info!(lease = %lease.name_any(), namespace, cause = cause.as_str(), "credentials refreshed");
            }
            // A lease becoming Active announces its credentials in its transition Event; this one
            // is for a lease that was Active without them (after a failure or a conflict).
            let was_active = lease.phase() == Some(LeasePhase::Active);
            if was_active
                && conditions::ready_reason(&status.conditions) != Some(reason::CREDENTIALS_ISSUED)
            {
                events::publish(
                    ctx,
                    lease,
                    "Lease",
                    false,
                    reason::CREDENTIALS_ISSUED,
                    format!(
                        "credentials for account {} in Secret {secret_name}",
                        account.spec.id
                    ),
                )
                .await;
            }
            conditions::set_ready(
                &mut status.conditions,
                true,
                reason::CREDENTIALS_ISSUED,
                "",
                lease.metadata.generation,
                now,
            );
            status.credentials_expire_at = Some(Time(creds.expiration));
            crate::lifecycle::credentials::refresh_at(creds.expiration - lifetime, creds.expiration)
        }
    };
    if let Some(at) = intact_expiry(&observed) {
        status.credentials_expire_at = Some(Time(at));
    }
    // `status` is Active here, so its phase time is the activation.
    let collect_at = crate::lifecycle::usage::next_collection(
        status.usage.as_ref(),
        status
            .lease_status_modified_on
            .as_ref()
            .map_or(now, |t| t.0),
        ctx.settings.policy.usage_collection_interval,
    );
    write_status(lease, ctx, status).await?;
    let next = wake.min(expires_on).min(collect_at);
    Ok(Action::requeue(
        next.duration_since(Timestamp::now())
            .unsigned_abs()
            .max(Duration::from_millis(1)),
    ))
}

/// Expiry of the credentials in an intact, operator-owned Secret.
fn intact_expiry(observed: &SecretObservation) -> Option<Timestamp> {
    match observed {
        SecretObservation::Owned {
            labelled: true,
            expires_at,
            recorded_hash,
            actual_hash,
        } if recorded_hash.as_deref() == Some(actual_hash.as_str()) => *expires_at,
        _ => None,
    }
}

/// AssumeRole into the account's principal role, as the lease's principal.
async fn issue_credentials(
    lease: &Lease,
    ctx: &Context,
    account: &Account,
) -> Result<crate::aws::TemporaryCredentials, Error> {
    principal_credentials(
        &ctx.client,
        &ctx.aws,
        &ctx.metrics,
        account,
        &ctx.settings.principal_role_name,
        ctx.settings.policy.credentials_lifetime,
        &lease.spec.principal_id,
    )
    .await
}

/// Fresh credentials in `account`'s principal role, with `principal` as the role session name:
/// what the credentials Secret holds, and what the REST API's lease auth returns.
pub async fn principal_credentials(
    client: &kube::Client,
    aws: &crate::aws::Aws,
    metrics: &crate::metrics::Metrics,
    account: &Account,
    principal_role_name: &str,
    lifetime: jiff::SignedDuration,
    principal: &str,
) -> Result<crate::aws::TemporaryCredentials, Error> {
    let role = match (
        &account.spec.principal_role_arn,
        account.aws_account_number(),
    ) {
        (Some(arn), _) => arn.clone(),
        (None, Some(number)) => principal_role_arn(number, principal_role_name),
        (None, None) => {
            return Err(Error::Invalid(format!(
                "account {} has no known AWS account number yet",
                account.spec.id
            )));
        }
    };
    let via = match &account.spec.credentials_secret_ref {
        Some(reference) if account.spec.admin_role_arn.is_none() => {
            Some(secrets::read_static_keys(client, reference).await?)
        }
        _ => None,
    };
    let lifetime = i32::try_from(lifetime.as_secs()).unwrap_or(3600);
    let result = aws
        .assume_role(via.as_ref(), &role, &session_name(principal), lifetime)
        .await;
    metrics.aws_call("AssumeRole", if result.is_ok() { "ok" } else { "error" });
    Ok(result?)
}

/// An STS role session name from a principal id: `[\w+=,.@-]`, at most 64 characters.
fn session_name(principal: &str) -> String {
    let cleaned: String = principal
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.len() < 2 {
        format!("dce-{cleaned}")
    } else {
        cleaned
    }
}

/// Ends `lease` as of `ended_at`: a final usage reading, its status (so a crash leaves the reason
/// recorded), then the account is released for reset (`now` stamps it), then the credentials
/// Secret goes.
async fn end(
    lease: &Lease,
    ctx: &Context,
    reason: LeaseReason,
    held: Option<&Account>,
    ended_at: Timestamp,
    now: Timestamp,
) -> Result<(), Error> {
    let read = match held {
        Some(account) => Some(usage::final_reading(lease, account, ctx, now).await),
        None => None,
    };
    let lease = read.as_ref().unwrap_or(lease);
    if lease.phase() != Some(LeasePhase::Inactive) || lease.reason() != Some(reason) {
        let status = inactive_status(lease, reason, None, ended_at);
        write_status(lease, ctx, status).await?;
    }
    if let Some(account) = held {
        let mut account_status: AccountStatus = account.status.clone().unwrap_or_default();
        account_status.lease = None;
        account_status.reset_required = true;
        account_status.account_status = Some(AccountPhase::NotReady);
        conditions::set_ready(
            &mut account_status.conditions,
            false,
            crate::lifecycle::account::reason::RESETTING,
            "lease ended; reset pending",
            account.metadata.generation,
            now,
        );
        let api: Api<Account> = Api::all(ctx.client.clone());
        let released = status::apply_account(
            &api,
            &account.name_any(),
            account.resource_version().as_deref(),
            &account_status,
        )
        .await?;
        ctx.expectations.account_written(lease, &released);
    }
    let secret_api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &lease.namespace().unwrap_or_default());
    secrets::delete_if_owned(
        &secret_api,
        &secrets::credentials_secret_name(lease),
        &lease.uid().unwrap_or_default(),
    )
    .await
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

#[cfg(test)]
mod tests {
    use super::session_name;

    #[test]
    fn session_names_are_sts_safe() {
        assert_eq!(session_name("alice@example.com"), "alice@example.com");
        assert_eq!(
            session_name("system:serviceaccount:team:bot"),
            "system-serviceaccount-team-bot"
        );
        assert_eq!(session_name("x"), "dce-x");
        assert_eq!(session_name(&"a".repeat(100)).len(), 64);
    }
}
