//! Act: carries out a [`LeasePlan`], one small function per action. The plan decided
//! everything; what an action learns (credentials issued or refused, a final usage reading)
//! only fills in the status written next.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::DeleteParams;

use super::*;
use crate::controllers::{events, requeue_at, status, usage};
use crate::lifecycle::lease::{AccountWrite, CredentialsIssue, LeaseAction, LeasePlan, Requeue};
use crate::resources::{LeaseStatus, LeaseUsage};

/// What the actions carried out so far learned, for the status written next.
#[derive(Default)]
struct Learned {
    /// Expiry of credentials just issued, and when to refresh them.
    issued: Option<(Timestamp, Timestamp)>,
    /// Why credentials could not be issued: the Ready reason and message, and the error.
    refused: Option<(&'static str, String, Error)>,
    /// A final usage reading.
    usage: Option<LeaseUsage>,
}

impl Learned {
    fn fill_in(&self, mut status: LeaseStatus, lease: &Lease) -> LeaseStatus {
        if let Some((expires_at, _)) = self.issued {
            status.credentials_expire_at = Some(Time(expires_at));
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
            LeaseAction::ClaimAccount(claim) => {
                if !claim_account(lease, &claim, ctx).await? {
                    return Ok(Action::requeue(conflict_retry()));
                }
            }
            LeaseAction::IssueCredentials(issue) => {
                issue_credentials(lease, &issue, ctx, &mut learned).await?
            }
            LeaseAction::TakeFinalReading(account) => {
                learned.usage = usage::final_reading(lease, &account, ctx).await
            }
            LeaseAction::WriteStatus(status) => {
                write_status(lease, ctx, learned.fill_in(*status, lease)).await?
            }
            LeaseAction::ReleaseAccount(release) => release_account(lease, &release, ctx).await?,
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
    let wake = match (plan.then, learned.issued) {
        (Requeue::At(at), Some((_, refresh))) => Requeue::At(at.min(refresh)),
        (then, _) => then,
    };
    Ok(match wake {
        Requeue::At(at) => requeue_at(at, Duration::from_millis(1)),
        Requeue::After(delay) => Action::requeue(delay),
        Requeue::OnChange => Action::await_change(),
    })
}

/// Writes the claim. `false` when another lease got there first, or the cache already shows the
/// account changed since the plan's copy was taken (then no request is made).
async fn claim_account(lease: &Lease, claim: &AccountWrite, ctx: &Context) -> Result<bool, Error> {
    let name = claim.account.name_any();
    let current = ctx.accounts.get(&ObjectRef::new(&name));
    if current.and_then(|a| a.resource_version()) != claim.account.resource_version() {
        ctx.metrics.account_claim("stale");
        return Ok(false);
    }
    match write_account(lease, claim, ctx).await {
        Ok(()) => {
            ctx.metrics.account_claim("claimed");
            Ok(true)
        }
        Err(Error::Conflict) => {
            ctx.metrics.account_claim("lost");
            tracing::debug!(lease = %lease.name_any(), account = name, "lost the race for an account");
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

async fn release_account(
    lease: &Lease,
    release: &AccountWrite,
    ctx: &Context,
) -> Result<(), Error> {
    write_account(lease, release, ctx).await
}

/// The account's status write, guarded by the resourceVersion of the plan's copy.
async fn write_account(lease: &Lease, write: &AccountWrite, ctx: &Context) -> Result<(), Error> {
    let api: Api<Account> = Api::all(ctx.client.clone());
    let written = status::apply_account(
        &api,
        &write.account.name_any(),
        write.account.resource_version().as_deref(),
        &write.status,
    )
    .await?;
    ctx.expectations.account_written(lease, &written);
    Ok(())
}

/// Issues credentials into the lease's Secret. A refusal (or AWS not answering) is reported
/// at once and recorded for the status; a failed Secret write ends the reconcile.
async fn issue_credentials(
    lease: &Lease,
    issue: &CredentialsIssue,
    ctx: &Context,
    learned: &mut Learned,
) -> Result<(), Error> {
    let creds = match credentials::issue_credentials(lease, ctx, &issue.account).await {
        Ok(creds) => creds,
        Err(error) => {
            // AWS not answering passes by itself; a refusal needs an admin.
            let reason = if error.is_transient() {
                reason::CREDENTIALS_PENDING
            } else {
                reason::CREDENTIALS_FAILED
            };
            let message = error.to_string();
            if issue.stored_reason.as_deref() != Some(reason) {
                events::publish(ctx, lease, "Lease", true, reason, message.clone()).await;
            }
            learned.refused = Some((reason, message, error));
            return Ok(());
        }
    };
    let namespace = lease.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    secrets::write(
        &api,
        lease,
        &secrets::credentials_secret_name(lease),
        issue.replace_version.as_deref(),
        &creds,
        &ctx.settings.region,
    )
    .await?;
    if let Some(cause) = issue.refresh {
        tracing::info!(lease = %lease.name_any(), namespace, cause = cause.as_str(), "credentials refreshed");
    }
    if let Some(notice) = &issue.announce {
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
    learned.issued = Some((creds.expiration, creds.expiration - issue.refresh_lead));
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
    let written = status::apply_lease(&api, lease, &status).await?;
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
