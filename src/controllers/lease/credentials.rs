//! Credentials for a lease: AssumeRole into the account's principal role as the lease's principal.

use super::*;
use crate::aws::principal_role_arn;

/// AssumeRole into the account's principal role, as the lease's principal.
pub(super) async fn issue_credentials(
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
        .assume_role(
            via.as_ref(),
            &role,
            &crate::aws::role_session_name(principal),
            lifetime,
        )
        .await;
    metrics.aws_call("AssumeRole", if result.is_ok() { "ok" } else { "error" });
    Ok(result?)
}
