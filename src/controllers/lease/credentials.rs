//! An Active lease's credentials Secret: issued, refreshed before expiry, repaired.

use super::*;

/// Keeps an Active lease's status (`status`, built on the stored one) and credentials Secret in
/// place; wakes at refresh, usage collection or expiry. `just_claimed`: the account was taken
/// in this reconcile.
pub(super) async fn run(
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
