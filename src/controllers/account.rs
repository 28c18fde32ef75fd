//! The Account reconciler: validates access, tracks Ready/NotReady/Leased, runs resets.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use kube::api::{Api, ResourceExt};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use super::{Context, Error, events, reset, secrets, status};
use crate::aws::account_of_role_arn;
use crate::lifecycle::account::{self as decide, AccountAction, AccountObservation, HolderState};
use crate::lifecycle::conditions::ready_reason;
use crate::resources::{Account, Lease};

pub const CONTROLLER: &str = "account";
/// Keeps a Leased account from being deleted.
pub const FINALIZER: &str = "dce.dev/account-protection";
/// Session name the operator uses when it assumes an account's admin role.
const SYNC_SESSION: &str = "dce-operator-sync";
/// Lifetime of the admin credentials used to validate (the STS minimum).
const SYNC_CREDENTIALS_SECONDS: i32 = 900;

pub async fn reconcile(account: Arc<Account>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let api: Api<Account> = Api::all(ctx.client.clone());
    let key = account.name_any();
    let action = finalizer(&api, FINALIZER, account, |event| async {
        match event {
            Finalizer::Apply(account) => reconcile_account(&account, &ctx, false).await,
            Finalizer::Cleanup(account) => reconcile_account(&account, &ctx, true).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    ctx.succeeded(&key);
    Ok(action)
}

pub fn error_policy(account: Arc<Account>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_failed(CONTROLLER, error.metric_label());
    tracing::warn!(account = %account.name_any(), %error, "account reconcile failed");
    ctx.backoff(&account.name_any())
}

async fn reconcile_account(
    account: &Account,
    ctx: &Context,
    deleting: bool,
) -> Result<Action, Error> {
    let now = Timestamp::now();
    let validation = if decide::needs_validation(account, now, ctx.settings.sync_interval) {
        Some(validate(account, ctx).await)
    } else {
        None
    };
    let holder = holder_state(account, ctx).await?;
    let reset_job = match account.status.as_ref().and_then(|s| s.reset_job.as_deref()) {
        Some(name) => reset::observe(ctx, name).await?,
        None => None,
    };
    let observation = AccountObservation {
        now,
        deleting,
        validation,
        holder,
        reset_job,
        reset_mode: ctx.settings.reset_mode,
        jitter: rand::random(),
    };
    let mut plan = decide::decide(account, &observation);

    let mut allow_deletion = false;
    for action in &plan.actions {
        match action {
            AccountAction::StartReset => match reset_credentials(account, ctx).await {
                Ok(credentials) => {
                    plan.status.reset_job = Some(reset::start(ctx, account, credentials).await?)
                }
                Err(error) => {
                    events::publish(
                        ctx,
                        account,
                        "Account",
                        true,
                        "ResetFailed",
                        format!("cannot start reset: {error}"),
                    )
                    .await;
                    return Err(error);
                }
            },
            AccountAction::DeleteResetJob(name) => reset::delete(ctx, name).await?,
            AccountAction::AllowDeletion => allow_deletion = true,
        }
    }

    if !account
        .status
        .as_ref()
        .is_some_and(|old| status::same_when_stored(old, &plan.status))
    {
        let api: Api<Account> = Api::all(ctx.client.clone());
        status::apply_account(
            &api,
            &account.name_any(),
            account.resource_version().as_deref(),
            &plan.status,
        )
        .await?;
        announce(ctx, account, &plan.status).await;
    }

    if deleting && !allow_deletion {
        let holder = plan
            .status
            .lease
            .as_ref()
            .map(|h| format!("{}/{}", h.namespace, h.name))
            .unwrap_or_default();
        return Err(Error::DeletionBlocked(holder));
    }
    let next_sync = decide::next_validation(&plan.status, ctx.settings.sync_interval);
    let wake = [next_sync, plan.wake_at].into_iter().flatten().min();
    Ok(match wake {
        Some(at) => Action::requeue(
            at.duration_since(now)
                .unsigned_abs()
                .max(std::time::Duration::from_secs(1)),
        ),
        None => Action::await_change(),
    })
}

/// An Event when the account's status or Ready reason changes.
async fn announce(ctx: &Context, account: &Account, new: &crate::resources::AccountStatus) {
    let old = account.status.as_ref();
    let old_phase = old.and_then(|s| s.account_status);
    let old_reason = old.and_then(|s| ready_reason(&s.conditions));
    let new_reason = ready_reason(&new.conditions);
    if old_phase == new.account_status && old_reason == new_reason {
        return;
    }
    let ready = new
        .conditions
        .iter()
        .find(|c| c.type_ == crate::resources::CONDITION_READY);
    let message = ready.map(|c| c.message.clone()).unwrap_or_default();
    let phase = new.account_status.map(|p| p.as_str()).unwrap_or("Unknown");
    let warning = ready.is_some_and(|c| c.status != "True");
    events::publish(
        ctx,
        account,
        "Account",
        warning,
        new_reason.unwrap_or(phase),
        format!("{phase}: {message}"),
    )
    .await;
}

/// Validates the operator's access: assume the admin role, or check the static key pair.
/// The error text is shown in status; it never holds secret material.
async fn validate(account: &Account, ctx: &Context) -> Result<String, String> {
    let learned = if let Some(arn) = &account.spec.admin_role_arn {
        let result = ctx
            .aws
            .assume_role(None, arn, SYNC_SESSION, SYNC_CREDENTIALS_SECONDS)
            .await;
        ctx.metrics
            .aws_call("AssumeRole", if result.is_ok() { "ok" } else { "error" });
        result.map_err(|e| format!("cannot assume adminRoleArn: {e}"))?;
        account_of_role_arn(arn)
            .map(str::to_string)
            .ok_or_else(|| format!("adminRoleArn {arn} names no account"))?
    } else if let Some(reference) = &account.spec.credentials_secret_ref {
        let keys = secrets::read_static_keys(&ctx.client, reference)
            .await
            .map_err(|e| e.to_string())?;
        let result = ctx.aws.caller_identity(Some(&keys)).await;
        ctx.metrics.aws_call(
            "GetCallerIdentity",
            if result.is_ok() { "ok" } else { "error" },
        );
        result
            .map_err(|e| format!("static key pair rejected: {e}"))?
            .account
    } else {
        return Err("neither adminRoleArn nor credentialsSecretRef is set".to_string());
    };
    if let Some(expected) = account.spec.aws_account_id.as_deref().or_else(|| {
        crate::resources::is_aws_account_number(&account.spec.id)
            .then_some(account.spec.id.as_str())
    }) && expected != learned
    {
        return Err(format!(
            "credentials belong to account {learned}, not {expected}"
        ));
    }
    Ok(learned)
}

/// Whether the recorded holder lease still exists (a live read, only when the cache lacks it).
async fn holder_state(account: &Account, ctx: &Context) -> Result<HolderState, Error> {
    let Some(holder) = account.holder() else {
        return Ok(HolderState::Consistent);
    };
    if ctx
        .leases
        .find(|l| l.uid().as_deref() == Some(holder.uid.as_str()))
        .is_some()
    {
        return Ok(HolderState::Consistent);
    }
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &holder.namespace);
    let live = api.get_opt(&holder.name).await.map_err(Error::Kube)?;
    Ok(match live {
        Some(lease) if lease.uid().as_deref() == Some(holder.uid.as_str()) => {
            HolderState::Consistent
        }
        _ => HolderState::Missing,
    })
}

/// Admin credentials handed to the reset Job.
async fn reset_credentials(
    account: &Account,
    ctx: &Context,
) -> Result<BTreeMap<String, String>, Error> {
    let mut env = BTreeMap::from([("AWS_REGION".to_string(), ctx.settings.region.clone())]);
    if let Some(number) = account.aws_account_number() {
        env.insert("AWS_ACCOUNT_ID".to_string(), number.to_string());
    }
    if let Some(arn) = &account.spec.admin_role_arn {
        let lifetime =
            i32::try_from(ctx.settings.reset_deadline_seconds.clamp(900, 43_200)).unwrap_or(3600);
        let result = ctx
            .aws
            .assume_role(None, arn, "dce-operator-reset", lifetime)
            .await;
        ctx.metrics
            .aws_call("AssumeRole", if result.is_ok() { "ok" } else { "error" });
        let creds = result?;
        env.insert("AWS_ACCESS_KEY_ID".to_string(), creds.access_key_id.clone());
        env.insert(
            "AWS_SECRET_ACCESS_KEY".to_string(),
            creds.secret_access_key.clone(),
        );
        env.insert("AWS_SESSION_TOKEN".to_string(), creds.session_token.clone());
    } else if let Some(reference) = &account.spec.credentials_secret_ref {
        let keys = secrets::read_static_keys(&ctx.client, reference).await?;
        env.insert("AWS_ACCESS_KEY_ID".to_string(), keys.access_key_id.clone());
        env.insert(
            "AWS_SECRET_ACCESS_KEY".to_string(),
            keys.secret_access_key.clone(),
        );
    }
    Ok(env)
}
