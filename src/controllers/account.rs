//! The Account reconciler: validates access, provisions the principal, tracks
//! Ready/NotReady/Leased, runs resets. Each reconcile takes three steps: **observe** (the facts,
//! into one [`AccountObservation`]), **decide** (one call to
//! [`crate::lifecycle::account::decide`], pure, returning the next status, the actions, the
//! Events and when to look again), **act** (carry the plan out).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ResourceExt};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::watch;

use super::{Context, Error, events, principal, requeue_at, reset, secrets, status};
use crate::aws::{AwsError, account_of_role_arn};
use crate::lifecycle::account::{
    self as decide, AccountAction, AccountObservation, AccountPlan, HolderState, JobState,
    Validation, reason as account_reason,
};
use crate::lifecycle::sync::{self, SyncSetting};
use crate::resources::{Account, Lease};

pub const CONTROLLER: &str = "account";
/// Keeps a Leased account from being deleted.
pub const FINALIZER: &str = "dce.dev/account-protection";
/// Session name the operator uses when it assumes an account's admin role.
const SYNC_SESSION: &str = "dce-operator-sync";
/// Lifetime of the admin credentials used to validate (the STS minimum).
const SYNC_CREDENTIALS_SECONDS: i32 = 900;
/// Retry delay when the cached Account is older than the stored one.
const STALE_CACHE_RETRY: Duration = Duration::from_millis(200);
/// How long a reconcile waits for the sync setting to be read after the controller starts.
const SYNC_SETTING_WAIT: Duration = Duration::from_secs(10);

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
    if error.is_conflict() {
        // Someone else (a lease claim or release) wrote the account first: re-read and retry.
        return Action::requeue(STALE_CACHE_RETRY);
    }
    if error.metric_label() == "deletion_blocked" {
        // Expected while the lease lasts; the Ready condition and an Event already say so.
        tracing::debug!(account = %account.name_any(), %error, "account deletion waits");
    } else {
        tracing::warn!(account = %account.name_any(), %error, "account reconcile failed");
    }
    ctx.backoff(&account.name_any(), error)
}

/// Whether `account` is the stored version (a live read; the cache may lag behind).
async fn is_latest(account: &Account, ctx: &Context) -> Result<bool, Error> {
    let api: Api<Account> = Api::all(ctx.client.clone());
    let stored = api
        .get_opt(&account.name_any())
        .await
        .map_err(Error::Kube)?;
    Ok(stored.is_some_and(|stored| stored.resource_version() == account.resource_version()))
}

async fn reconcile_account(
    account: &Account,
    ctx: &Context,
    deleting: bool,
) -> Result<Action, Error> {
    let observation = observe(account, ctx, deleting).await?;
    let plan = decide::decide(account, &observation);
    act(account, plan, ctx).await
}

/// Observe: the sync setting, the reset Job, the holder, and (when due, or after a reset) the
/// operator's access validated and the principal role provisioned. Provisioning writes to AWS
/// but is idempotent, and the account cannot be Ready without its outcome, so it is gathered
/// here with the validation it follows.
async fn observe(
    account: &Account,
    ctx: &Context,
    deleting: bool,
) -> Result<AccountObservation, Error> {
    let now = Timestamp::now();
    let sync_setting = current_sync_setting(ctx, decide::sync_requested(account)).await?;
    let reset_job = match account.status.as_ref().and_then(|s| s.reset_job.as_deref()) {
        Some(name) => reset::observe(ctx, name).await?,
        None => None,
    };
    // A finished reset is followed by provisioning the principal again (a reset may have
    // touched it), before the account can be Ready.
    let validation = if reset_job == Some(JobState::Succeeded)
        || (sync::validation_allowed(account, sync_setting)
            && decide::needs_validation(account, now, ctx.settings.sync_interval))
    {
        Some(validate(account, ctx).await)
    } else {
        None
    };
    let provisioning = match &validation {
        Some(Ok((number, access))) if !deleting => {
            Some(principal::provision_for(account, number, access, ctx).await)
        }
        _ => None,
    };
    Ok(AccountObservation {
        now,
        deleting,
        validation: validation.map(|outcome| match outcome {
            Ok((number, _)) => Validation::Valid(number),
            Err(failure) => failure,
        }),
        provisioning,
        holder: holder_state(account, ctx).await?,
        reset_job,
        reset_mode: ctx.settings.reset_mode,
        sync_interval: (sync_setting == SyncSetting::Enabled).then_some(ctx.settings.sync_interval),
        jitter: rand::random(),
    })
}

/// Act: the plan's actions, then its status write (when it changed) and Events. Starting a
/// reset and allowing deletion happen only from the latest Account.
async fn act(account: &Account, mut plan: AccountPlan, ctx: &Context) -> Result<Action, Error> {
    for action in &plan.actions {
        match action {
            AccountAction::StartReset | AccountAction::AllowDeletion
                if !is_latest(account, ctx).await? =>
            {
                // A Job cannot be taken back when the status write after it fails, and removing
                // the principal takes AWS calls: neither from a stale copy. The cache is
                // behind; its update wakes us.
                return Ok(Action::requeue(STALE_CACHE_RETRY));
            }
            AccountAction::StartReset => {
                plan.status.reset_job = Some(start_reset(account, ctx).await?);
            }
            AccountAction::DeleteResetJob(name) => reset::delete(ctx, name).await?,
            AccountAction::AllowDeletion => principal::remove_for(account, ctx).await?,
        }
    }
    if !account
        .status
        .as_ref()
        .is_some_and(|old| status::same_when_stored(old, &plan.status))
    {
        let api: Api<Account> = Api::all(ctx.client.clone());
        status::write_account(&api, account, &plan.status).await?;
        for notice in plan.notices {
            if notice.reason == account_reason::STRAY_CLAIM_RELEASED {
                ctx.metrics.account_claim("repaired");
                tracing::warn!(account = %account.name_any(), "{}", notice.note);
            }
            events::publish(
                ctx,
                account,
                "Account",
                notice.warning,
                &notice.reason,
                notice.note,
            )
            .await;
        }
    }
    if let Some(holder) = plan.blocked_by {
        return Err(Error::DeletionBlocked(holder));
    }
    Ok(match plan.wake_at {
        Some(at) => requeue_at(at, Duration::from_secs(1)),
        None => Action::await_change(),
    })
}

/// Starts a reset Job with admin credentials and the aws-nuke configuration; returns its name.
async fn start_reset(account: &Account, ctx: &Context) -> Result<String, Error> {
    match reset_inputs(account, ctx).await {
        Ok((credentials, nuke_config)) => {
            reset::start(ctx, account, credentials, nuke_config).await
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
            Err(error)
        }
    }
}

/// The cluster-wide sync setting, once it has been read (a just-started controller waits
/// briefly, so a restart never re-validates accounts while sync is disabled). A pending sync
/// request meeting a cached `DISABLED` is checked against the stored setting: the facade reads
/// it live, so `PUT /sync/status` ENABLED followed at once by `POST /sync` must not find a
/// watch that is a moment behind and set the request aside.
async fn current_sync_setting(ctx: &Context, sync_requested: bool) -> Result<SyncSetting, Error> {
    let mut setting = ctx.sync_setting.clone();
    let cached =
        match tokio::time::timeout(SYNC_SETTING_WAIT, setting.wait_for(Option::is_some)).await {
            Ok(Ok(value)) => value.unwrap_or(SyncSetting::Enabled),
            _ => {
                return Err(Error::Invalid(format!(
                    "the sync setting (ConfigMap {}) could not be read yet",
                    sync::SETTING_CONFIG_MAP
                )));
            }
        };
    if cached == SyncSetting::Enabled || !sync_requested {
        return Ok(cached);
    }
    let stored = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.settings.namespace)
        .get_opt(sync::SETTING_CONFIG_MAP)
        .await?;
    Ok(SyncSetting::from_config_data(
        stored.as_ref().and_then(|cm| cm.data.as_ref()),
    ))
}

/// Watches the sync setting ConfigMap (by name, in `namespace`) and publishes its value once
/// read. The stream yields whenever the value changes, for `Controller::reconcile_all_on`:
/// enabling sync must re-validate the accounts that fell due while it was disabled. It must be
/// polled for the value to be published.
pub fn watch_sync_setting(
    client: Client,
    namespace: &str,
) -> (
    watch::Receiver<Option<SyncSetting>>,
    impl Stream<Item = ()> + Send + 'static,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let by_name =
        watcher::Config::default().fields(&format!("metadata.name={}", sync::SETTING_CONFIG_MAP));
    let (store, writer) = reflector::store::<ConfigMap>();
    let (publish, setting) = watch::channel(None);
    let changes = reflector(writer, watcher(api, by_name))
        .default_backoff()
        .filter_map(move |event| {
            // The store holds the ConfigMap once a listing is complete or a change arrived.
            let settled = match event {
                Ok(
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone,
                ) => {
                    let stored = store.state();
                    let current = SyncSetting::from_config_data(
                        stored.first().and_then(|cm| cm.data.as_ref()),
                    );
                    publish
                        .send_replace(Some(current))
                        .is_some_and(|old| old != current)
                }
                Ok(_) => false,
                Err(error) => {
                    tracing::warn!(%error, "sync setting watch error");
                    false
                }
            };
            std::future::ready(settled.then_some(()))
        });
    (setting, changes)
}

/// Validates the operator's access: assume the admin role, or check the static key pair.
/// Returns the AWS account number and the admin access, or why not: refused (an admin must act)
/// or AWS unavailable (says nothing about the account). The error text is shown in status; it
/// never holds secret material.
async fn validate(account: &Account, ctx: &Context) -> Result<(String, AdminAccess), Validation> {
    // AWS failing to answer says nothing about the account; a refusal does.
    let failed = |context: &str, error: AwsError| {
        let message = format!("{context}: {error}");
        if error.is_retryable() {
            Validation::Unavailable(message)
        } else {
            Validation::Invalid(message)
        }
    };
    let (learned, access) = if let Some(arn) = &account.spec.admin_role_arn {
        let result = ctx
            .aws
            .assume_role(None, arn, SYNC_SESSION, SYNC_CREDENTIALS_SECONDS)
            .await;
        ctx.metrics
            .aws_call("AssumeRole", if result.is_ok() { "ok" } else { "error" });
        let credentials = result.map_err(|e| failed("cannot assume adminRoleArn", e))?;
        let number = account_of_role_arn(arn)
            .map(str::to_string)
            .ok_or_else(|| Validation::Invalid(format!("adminRoleArn {arn} names no account")))?;
        (number, AdminAccess::Assumed(credentials))
    } else if let Some(reference) = &account.spec.credentials_secret_ref {
        let keys = match secrets::read_static_keys(&ctx.client, reference).await {
            Ok(keys) => keys,
            Err(error @ Error::Invalid(_)) => return Err(Validation::Invalid(error.to_string())),
            Err(error) => return Err(Validation::Unavailable(error.to_string())),
        };
        let result = ctx.aws.caller_identity(Some(&keys)).await;
        ctx.metrics.aws_call(
            "GetCallerIdentity",
            if result.is_ok() { "ok" } else { "error" },
        );
        let number = result
            .map_err(|e| failed("static key pair rejected", e))?
            .account;
        (number, AdminAccess::Keys(keys))
    } else {
        return Err(Validation::Invalid(
            "neither adminRoleArn nor credentialsSecretRef is set".to_string(),
        ));
    };
    if let Some(expected) = account.spec.aws_account_id.as_deref().or_else(|| {
        crate::resources::is_aws_account_number(&account.spec.id)
            .then_some(account.spec.id.as_str())
    }) && expected != learned
    {
        return Err(Validation::Invalid(format!(
            "credentials belong to account {learned}, not {expected}"
        )));
    }
    Ok((learned, access))
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

/// How the operator acts as an account's administrator.
pub enum AdminAccess {
    /// The account's admin role, assumed.
    Assumed(crate::aws::TemporaryCredentials),
    /// The account's static key pair.
    Keys(crate::aws::StaticKeys),
}

impl AdminAccess {
    pub fn identity(&self) -> crate::aws::Identity<'_> {
        match self {
            AdminAccess::Assumed(creds) => crate::aws::Identity::Temporary(creds),
            AdminAccess::Keys(keys) => crate::aws::Identity::Static(keys),
        }
    }
}

/// Admin access to `account` (its admin role, else its key pair), or `None` if it names neither.
pub async fn admin_access(
    account: &Account,
    ctx: &Context,
    session_name: &str,
    lifetime_seconds: i32,
) -> Result<Option<AdminAccess>, Error> {
    if let Some(arn) = &account.spec.admin_role_arn {
        let result = ctx
            .aws
            .assume_role(None, arn, session_name, lifetime_seconds)
            .await;
        ctx.metrics
            .aws_call("AssumeRole", if result.is_ok() { "ok" } else { "error" });
        return Ok(Some(AdminAccess::Assumed(result?)));
    }
    match &account.spec.credentials_secret_ref {
        Some(reference) => Ok(Some(AdminAccess::Keys(
            secrets::read_static_keys(&ctx.client, reference).await?,
        ))),
        None => Ok(None),
    }
}

/// What the reset Job is given: admin credentials and the aws-nuke configuration.
async fn reset_inputs(
    account: &Account,
    ctx: &Context,
) -> Result<(BTreeMap<String, String>, String), Error> {
    let nuke_config = reset::nuke_config(ctx, account).await?;
    Ok((reset_credentials(account, ctx).await?, nuke_config))
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
    let lifetime =
        i32::try_from(ctx.settings.reset_deadline_seconds.clamp(900, 43_200)).unwrap_or(3600);
    match admin_access(account, ctx, "dce-operator-reset", lifetime).await? {
        Some(AdminAccess::Assumed(creds)) => {
            env.insert("AWS_ACCESS_KEY_ID".to_string(), creds.access_key_id.clone());
            env.insert(
                "AWS_SECRET_ACCESS_KEY".to_string(),
                creds.secret_access_key.clone(),
            );
            env.insert("AWS_SESSION_TOKEN".to_string(), creds.session_token.clone());
        }
        Some(AdminAccess::Keys(keys)) => {
            env.insert("AWS_ACCESS_KEY_ID".to_string(), keys.access_key_id.clone());
            env.insert(
                "AWS_SECRET_ACCESS_KEY".to_string(),
                keys.secret_access_key.clone(),
            );
        }
        None => {}
    }
    Ok(env)
}
