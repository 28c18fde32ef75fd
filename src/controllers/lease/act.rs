//! Act: carries out a [`LeasePlan`], one small function per action. The plan decided
//! everything; what an action learns (credentials issued or refused, a final usage reading)
//! only fills in the status written next.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::DeleteParams;

use super::*;
use crate::aws::TemporaryCredentials;
use crate::controllers::{events, requeue_at, status, usage};
use crate::lifecycle::Notice;
use crate::lifecycle::lease::{
    AccountWrite, CredentialsRequest, LeaseAction, LeasePlan, Requeue, SecretWrite,
};
use crate::resources::{AccountStatus, LeaseStatus, LeaseUsage};

/// What the actions carried out so far learned, for the status and the Secret written next.
#[derive(Default)]
struct Learned {
    /// Credentials just obtained, and when to refresh them.
    obtained: Option<(TemporaryCredentials, Timestamp)>,
    /// Why credentials could not be obtained: the Ready reason and message, and the error.
    refused: Option<(&'static str, String, Error)>,
    /// A final usage reading.
    usage: Option<LeaseUsage>,
    /// The account this reconcile claimed, as the claim left it, and its status before: undone
    /// if the lease's status cannot be written to name it.
    claimed: Option<(Account, AccountStatus)>,
}

impl Learned {
    fn fill_in(&self, mut status: LeaseStatus, lease: &Lease) -> LeaseStatus {
        if let Some((creds, _)) = &self.obtained {
            status.credentials_expire_at = Some(Time(creds.expiration));
        }
        if let Some((reason, message, _)) = &self.refused {
            conditions::set_ready(
                &mut status.conditions,
                false,
                reason,
                message,
                lease.metadata.generation,
                Timestamp::now(),
            );
        }
        if let Some(usage) = &self.usage {
            status.usage = Some(usage.clone());
        }
        status
    }
}

pub(super) async fn act(lease: &Lease, plan: LeasePlan, ctx: &Context) -> Result<Action, Error> {
    let mut learned = Learned::default();
    for action in plan.actions {
        match action {
            LeaseAction::ClaimAccount(claim) => match claim_account(lease, &claim, ctx).await? {
                // An adoption re-writes a claim unchanged: nothing to undo then.
                Some(claimed) if claimed.resource_version() != claim.account.resource_version() => {
                    learned.claimed =
                        Some((claimed, claim.account.status.clone().unwrap_or_default()))
                }
                Some(_) => {}
                None => return Ok(Action::requeue(conflict_retry())),
            },
            LeaseAction::ObtainCredentials(request) => {
                obtain_credentials(lease, &request, ctx, &mut learned).await
            }
            LeaseAction::TakeFinalReading(account) => {
                learned.usage = usage::final_reading(lease, &account, ctx).await
            }
            LeaseAction::WriteStatus(status) => {
                let status = learned.fill_in(*status, lease);
                match (
                    write_status(lease, ctx, status).await,
                    learned.claimed.take(),
                ) {
                    (Err(Error::Conflict), Some((claimed, before))) => {
                        undo_claim(lease, claimed, before, ctx).await;
                        return Ok(Action::requeue(conflict_retry()));
                    }
                    (result, _) => result?,
                }
            }
            LeaseAction::WriteSecret(write) => write_secret(lease, &write, ctx, &learned).await?,
            LeaseAction::ReleaseAccount(release) => {
                write_account(lease, &release, ctx).await?;
            }
            LeaseAction::ReleaseStray(release, notice) => {
                release_stray(lease, &release, notice, ctx).await?
            }
            LeaseAction::DeleteSecret => delete_secret(lease, ctx).await?,
            LeaseAction::Publish(notice) => {
                events::publish(
                    ctx,
                    lease,
                    "Lease",
                    notice.warning,
                    &notice.reason,
                    notice.note,
                )
                .await
            }
            LeaseAction::CountBudgetAction { action, reason } => ctx
                .metrics
                .budget_action(action, reason.as_str().to_string()),
            LeaseAction::DeleteLease => delete_lease(lease, ctx).await?,
        }
    }
    if let Some((_, _, error)) = learned.refused {
        return Err(error);
    }
    let wake = match (plan.then, &learned.obtained) {
        (Requeue::At(at), Some((_, refresh))) => Requeue::At(at.min(*refresh)),
        (then, _) => then,
    };
    Ok(match wake {
        Requeue::At(at) => requeue_at(at, Duration::from_millis(1)),
        Requeue::After(delay) => Action::requeue(delay),
        Requeue::OnChange => Action::await_change(),
    })
}

/// Writes the claim; the account as written, or `None` when another lease got there first or
/// the cache already shows the account changed since the plan's copy was taken (then no request
/// is made).
async fn claim_account(
    lease: &Lease,
    claim: &AccountWrite,
    ctx: &Context,
) -> Result<Option<Account>, Error> {
    let name = claim.account.name_any();
    let current = ctx.accounts.get(&ObjectRef::new(&name));
    if current.and_then(|a| a.resource_version()) != claim.account.resource_version() {
        ctx.metrics.account_claim("stale");
        return Ok(None);
    }
    match write_account(lease, claim, ctx).await {
        Ok(written) => {
            ctx.metrics.account_claim("claimed");
            Ok(Some(written))
        }
        Err(Error::Conflict) => {
            ctx.metrics.account_claim("lost");
            tracing::debug!(lease = %lease.name_any(), account = name, "lost the race for an account");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Gives back an account this reconcile claimed but could not record in the lease's status
/// (the lease changed since the copy the plan was made from). No credentials for it were
/// written anywhere, so it goes straight back to what it was. If this fails too, the claim is
/// a stray that the lease's next reconcile releases through a reset.
async fn undo_claim(lease: &Lease, claimed: Account, before: AccountStatus, ctx: &Context) {
    let undo = AccountWrite {
        account: Arc::new(claimed),
        status: before,
    };
    match write_account(lease, &undo, ctx).await {
        Ok(_) => ctx.metrics.account_claim("undone"),
        Err(error) => tracing::warn!(
            lease = %lease.name_any(),
            account = undo.account.name_any(),
            %error,
            "could not undo a claim the lease's status does not record; it is released on the lease's next reconcile"
        ),
    }
}

/// Returns a leaked claim to the pool through a reset.
async fn release_stray(
    lease: &Lease,
    release: &AccountWrite,
    notice: Notice,
    ctx: &Context,
) -> Result<(), Error> {
    write_account(lease, release, ctx).await?;
    ctx.metrics.account_claim("repaired");
    tracing::warn!(
        lease = %lease.name_any(),
        account = release.account.name_any(),
        "released an account that recorded this lease as holder without being its account"
    );
    events::publish(
        ctx,
        release.account.as_ref(),
        "Account",
        notice.warning,
        &notice.reason,
        notice.note,
    )
    .await;
    Ok(())
}

/// The account's status write, guarded by the resourceVersion of the plan's copy.
async fn write_account(
    lease: &Lease,
    write: &AccountWrite,
    ctx: &Context,
) -> Result<Account, Error> {
    let api: Api<Account> = Api::all(ctx.client.clone());
    let written = status::write_account(&api, &write.account, &write.status).await?;
    ctx.expectations.account_written(lease, &written);
    Ok(written)
}

/// Obtains credentials for the lease's principal in the account. A refusal (or AWS not
/// answering) is reported at once and recorded for the status; the reconcile then fails.
async fn obtain_credentials(
    lease: &Lease,
    request: &CredentialsRequest,
    ctx: &Context,
    learned: &mut Learned,
) {
    match credentials::issue_credentials(lease, ctx, &request.account).await {
        Ok(creds) => {
            let refresh = creds.expiration - request.refresh_lead;
            learned.obtained = Some((creds, refresh));
        }
        Err(error) => {
            // AWS not answering passes by itself; a refusal needs an admin.
            let reason = if error.is_transient() {
                reason::CREDENTIALS_PENDING
            } else {
                reason::CREDENTIALS_FAILED
            };
            let message = error.to_string();
            if request.stored_reason.as_deref() != Some(reason) {
                events::publish(ctx, lease, "Lease", true, reason, message.clone()).await;
            }
            learned.refused = Some((reason, message, error));
        }
    }
}

/// Writes the credentials just obtained into the lease's Secret (nothing when none were).
async fn write_secret(
    lease: &Lease,
    write: &SecretWrite,
    ctx: &Context,
    learned: &Learned,
) -> Result<(), Error> {
    let Some((creds, _)) = &learned.obtained else {
        return Ok(());
    };
    let namespace = lease.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    secrets::write(
        &api,
        lease,
        &secrets::credentials_secret_name(lease),
        write.replace_version.as_deref(),
        secrets::SecretContent {
            creds,
            account: &write.account_id,
            region: &ctx.settings.region,
        },
    )
    .await?;
    if let Some(cause) = write.refresh {
        tracing::info!(lease = %lease.name_any(), namespace, cause = cause.as_str(), "credentials refreshed");
    }
    if let Some(notice) = &write.announce {
        events::publish(
            ctx,
            lease,
            "Lease",
            notice.warning,
            &notice.reason,
            notice.note.clone(),
        )
        .await;
    }
    Ok(())
}

/// Writes the status if it changed (the time of the write is not a change).
async fn write_status(lease: &Lease, ctx: &Context, mut status: LeaseStatus) -> Result<(), Error> {
    let stored = lease.status.clone().unwrap_or_default();
    status.last_modified_on = stored.last_modified_on.clone();
    if status::same_when_stored(&status, &stored) {
        return Ok(());
    }
    status.last_modified_on = Some(Time(Timestamp::now()));
    let api: Api<Lease> =
        Api::namespaced(ctx.client.clone(), &lease.namespace().unwrap_or_default());
    let written = status::write_lease(&api, lease, &status).await?;
    ctx.expectations.lease_written(lease, &written);
    Ok(())
}

async fn delete_secret(lease: &Lease, ctx: &Context) -> Result<(), Error> {
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &lease.namespace().unwrap_or_default());
    secrets::delete_if_owned(
        &api,
        &secrets::credentials_secret_name(lease),
        &lease.uid().unwrap_or_default(),
    )
    .await
}

async fn delete_lease(lease: &Lease, ctx: &Context) -> Result<(), Error> {
    let api: Api<Lease> =
        Api::namespaced(ctx.client.clone(), &lease.namespace().unwrap_or_default());
    api.delete(&lease.name_any(), &DeleteParams::default())
        .await?;
    Ok(())
}
