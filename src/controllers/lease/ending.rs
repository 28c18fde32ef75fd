//! Ending a lease: a final usage reading, its status, the account released, its Secret gone.

use super::*;

/// Ends `lease` as of `ended_at`: a final usage reading, its status (so a crash leaves the reason
/// recorded), then the account is released for reset (`now` stamps it), then the credentials
/// Secret goes.
pub(super) async fn end(
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
