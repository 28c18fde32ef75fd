//! Provisions an account's principal role and its managed policy through the admin access, and
//! removes them when the Account goes. Only a role or policy carrying the operator's tags is
//! ever changed or deleted.

use super::account::{AdminAccess, admin_access};
use super::{Context, Error, events};
use crate::aws::{Aws, AwsError, Identity, principal_role_arn};
use crate::lifecycle::principal::{
    self, ObservedRole, ObservedVersion, PolicyInputs, RenderedPolicy, RoleChange,
};
use crate::lifecycle::provisioning::Provisioning;
use crate::resources::Account;

/// The principal role and policy as they should be in one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPrincipal {
    pub role_name: String,
    pub policy_name: String,
    pub policy_arn: String,
    pub trust_policy: String,
    pub max_session_seconds: i32,
    pub policy: RenderedPolicy,
}

/// Why provisioning failed, in words an admin can act on (never holding secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisionError {
    #[error(
        "{kind} {name} exists but was not created by the operator (no {tag}={value} tag): \
         delete or rename it, or name it as the Account's principalRoleArn"
    )]
    NotManaged {
        kind: &'static str,
        name: String,
        tag: &'static str,
        value: &'static str,
    },
    #[error("{0} {1} keeps appearing and disappearing while it is created; retrying")]
    Contended(&'static str, String),
    #[error("{0}")]
    Aws(#[from] AwsError),
}

impl ProvisionError {
    fn not_managed(kind: &'static str, name: &str) -> Self {
        ProvisionError::NotManaged {
            kind,
            name: name.to_string(),
            tag: principal::MANAGED_BY_TAG,
            value: principal::MANAGED_BY_VALUE,
        }
    }
}

/// Creates or updates the role and policy so they are as `desired` says.
pub async fn provision(
    aws: &Aws,
    identity: Identity<'_>,
    desired: &DesiredPrincipal,
) -> Result<(), ProvisionError> {
    ensure_role(aws, identity, desired).await?;
    ensure_policy(aws, identity, desired).await?;
    let attached = aws.attached_policies(identity, &desired.role_name).await?;
    if !attached.contains(&desired.policy_arn) {
        aws.attach_role_policy(identity, &desired.role_name, &desired.policy_arn)
            .await?;
    }
    Ok(())
}

/// Attempts at reading and creating: a create that finds the role or policy made meanwhile
/// (by another Account naming the same AWS account) reads it again.
const CREATE_ATTEMPTS: usize = 2;

async fn ensure_role(
    aws: &Aws,
    identity: Identity<'_>,
    desired: &DesiredPrincipal,
) -> Result<(), ProvisionError> {
    for _ in 0..CREATE_ATTEMPTS {
        let role = aws.get_role(identity, &desired.role_name).await?;
        let observed = role.as_ref().map(|role| ObservedRole {
            trust_policy: role.trust_policy.clone(),
            max_session_seconds: role.max_session_seconds,
            managed: principal::is_managed(&role.tags),
        });
        match principal::role_change(
            observed.as_ref(),
            &desired.trust_policy,
            desired.max_session_seconds,
        ) {
            RoleChange::Create => {
                let tags = principal::managed_tags(&desired.role_name);
                let created = aws
                    .create_role(
                        identity,
                        &desired.role_name,
                        &desired.trust_policy,
                        desired.max_session_seconds,
                        &tags,
                    )
                    .await?;
                if created {
                    return Ok(());
                }
            }
            RoleChange::Update { trust, max_session } => {
                if trust {
                    aws.update_trust_policy(identity, &desired.role_name, &desired.trust_policy)
                        .await?;
                }
                if max_session {
                    aws.update_max_session(
                        identity,
                        &desired.role_name,
                        desired.max_session_seconds,
                    )
                    .await?;
                }
                return Ok(());
            }
            RoleChange::UpToDate => return Ok(()),
            RoleChange::NotManaged => {
                return Err(ProvisionError::not_managed("role", &desired.role_name));
            }
        }
    }
    Err(ProvisionError::Contended("role", desired.role_name.clone()))
}

async fn ensure_policy(
    aws: &Aws,
    identity: Identity<'_>,
    desired: &DesiredPrincipal,
) -> Result<(), ProvisionError> {
    for _ in 0..CREATE_ATTEMPTS {
        match aws.get_policy(identity, &desired.policy_arn).await? {
            None => {
                let tags = principal::managed_tags(&desired.role_name);
                let created = aws
                    .create_policy(
                        identity,
                        &desired.policy_name,
                        &desired.policy.document,
                        &tags,
                    )
                    .await?;
                if created {
                    return Ok(());
                }
            }
            Some(policy) if !principal::is_managed(&policy.tags) => {
                return Err(ProvisionError::not_managed("policy", &desired.policy_name));
            }
            Some(policy) => {
                return update_policy(aws, identity, desired, policy.default_version).await;
            }
        }
    }
    Err(ProvisionError::Contended(
        "policy",
        desired.policy_name.clone(),
    ))
}

/// Makes the template's document the policy's default version when it is not already,
/// pruning the oldest versions first to stay within IAM's limit.
async fn update_policy(
    aws: &Aws,
    identity: Identity<'_>,
    desired: &DesiredPrincipal,
    default_version: Option<String>,
) -> Result<(), ProvisionError> {
    if let Some(version) = &default_version {
        let current = aws
            .policy_document(identity, &desired.policy_arn, version)
            .await?;
        if principal::same_document(&current, &desired.policy.document) {
            return Ok(());
        }
    }
    let versions: Vec<ObservedVersion> = aws
        .policy_versions(identity, &desired.policy_arn)
        .await?
        .into_iter()
        .map(|v| ObservedVersion {
            id: v.id,
            is_default: v.is_default,
            created: v.created,
        })
        .collect();
    for version in principal::versions_to_prune(&versions) {
        aws.delete_policy_version(identity, &desired.policy_arn, &version)
            .await?;
    }
    aws.create_default_policy_version(identity, &desired.policy_arn, &desired.policy.document)
        .await?;
    Ok(())
}

/// What [`remove`] deleted and what it left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    pub deleted: Vec<String>,
    /// Found but not the operator's: kept.
    pub kept: Vec<String>,
}

/// Deletes the role and policy if they carry the operator's tags: detaches the policy from the
/// role, deletes the policy's other versions, the policy and the role.
pub async fn remove(
    aws: &Aws,
    identity: Identity<'_>,
    role_name: &str,
    policy_name: &str,
    policy_arn: &str,
) -> Result<Removal, AwsError> {
    let mut removal = Removal::default();
    let role = aws.get_role(identity, role_name).await?;
    let policy = aws.get_policy(identity, policy_arn).await?;
    let role_managed = role
        .as_ref()
        .is_some_and(|r| principal::is_managed(&r.tags));
    let policy_managed = policy
        .as_ref()
        .is_some_and(|p| principal::is_managed(&p.tags));
    // Only the operator's own role is changed; a policy attached to someone else's role stays.
    if role_managed && policy.is_some() {
        aws.detach_role_policy(identity, role_name, policy_arn)
            .await?;
    }
    match &policy {
        Some(_) if policy_managed => {
            for version in aws.policy_versions(identity, policy_arn).await? {
                if !version.is_default {
                    aws.delete_policy_version(identity, policy_arn, &version.id)
                        .await?;
                }
            }
            aws.delete_policy(identity, policy_arn).await?;
            removal.deleted.push(format!("policy {policy_name}"));
        }
        Some(_) => removal.kept.push(format!("policy {policy_name}")),
        None => {}
    }
    match &role {
        Some(_) if role_managed => {
            aws.delete_role(identity, role_name).await?;
            removal.deleted.push(format!("role {role_name}"));
        }
        Some(_) => removal.kept.push(format!("role {role_name}")),
        None => {}
    }
    Ok(removal)
}

/// Session name of the operator's admin access while it removes a deleted Account's principal.
const CLEANUP_SESSION: &str = "dce-operator-cleanup";
/// Lifetime of that access (the STS minimum).
const CLEANUP_CREDENTIALS_SECONDS: i32 = 900;

/// Provisions `account`'s principal (AWS account `number`) through `access`, unless the
/// Account names its own principal role.
pub async fn provision_for(
    account: &Account,
    number: &str,
    access: &AdminAccess,
    ctx: &Context,
) -> Provisioning {
    if account.spec.principal_role_arn.is_some() {
        return Provisioning::NotManaged;
    }
    let desired = match desired_for(account, number, access, ctx).await {
        Ok(desired) => desired,
        Err(message) => return Provisioning::Failed(message),
    };
    let result = provision(&ctx.aws, access.identity(), &desired).await;
    ctx.metrics.aws_call(
        "ProvisionPrincipal",
        if result.is_ok() { "ok" } else { "error" },
    );
    match result {
        Ok(()) => Provisioning::Provisioned {
            role: desired.role_name,
            policy: desired.policy_name,
            hash: desired.policy.hash,
        },
        Err(error) => Provisioning::Failed(format!(
            "cannot provision principal role {} and policy {}: {error}",
            desired.role_name, desired.policy_name
        )),
    }
}

/// The principal role and policy `account` should have.
async fn desired_for(
    account: &Account,
    number: &str,
    access: &AdminAccess,
    ctx: &Context,
) -> Result<DesiredPrincipal, String> {
    let role_name = ctx.settings.principal_role_name.clone();
    // Lease credentials are issued by what reaches the account: the operator's identity
    // through the admin role, or the account's own key pair.
    let trusted = match access {
        AdminAccess::Assumed(_) => {
            let operator = ctx
                .operator_identity()
                .await
                .map_err(|e| format!("cannot learn the operator's own AWS identity: {e}"))?;
            principal::trust_principal(&operator.arn)
        }
        AdminAccess::Keys(_) => format!("arn:aws:iam::{number}:root"),
    };
    let policy_name = principal::policy_name(&role_name);
    let policy_arn = principal::policy_arn(number, &policy_name);
    let role_arn = principal_role_arn(number, &role_name);
    let policy = principal::render_policy(
        &ctx.settings.principal_policy_template,
        &PolicyInputs {
            account: number,
            principal_role_arn: &role_arn,
            principal_policy_arn: &policy_arn,
            admin_role_arn: account.spec.admin_role_arn.as_deref(),
            allowed_regions: &ctx.settings.allowed_regions,
        },
    )?;
    Ok(DesiredPrincipal {
        role_name,
        policy_name,
        policy_arn,
        trust_policy: principal::trust_policy(&trusted),
        max_session_seconds: principal::max_session_seconds(
            ctx.settings.policy.credentials_lifetime.as_secs(),
        ),
        policy,
    })
}

/// On Account deletion: removes the principal role and policy the operator provisioned. A
/// failure that retrying cannot fix (the admin access is gone) is announced and does not
/// block the deletion; the admin is told what to delete by hand.
pub async fn remove_for(account: &Account, ctx: &Context) -> Result<(), Error> {
    let provisioned = account
        .status
        .as_ref()
        .is_some_and(|s| s.principal_policy_hash.is_some());
    let (true, None, Some(number)) = (
        provisioned,
        account.spec.principal_role_arn.as_ref(),
        account.aws_account_number(),
    ) else {
        return Ok(());
    };
    let role_name = &ctx.settings.principal_role_name;
    let policy_name = principal::policy_name(role_name);
    let policy_arn = principal::policy_arn(number, &policy_name);
    let give_up = |error: &dyn std::fmt::Display| {
        format!(
            "cannot remove principal role {role_name} and policy {policy_name} from account \
             {number}: {error}; delete them by hand"
        )
    };
    let access =
        match admin_access(account, ctx, CLEANUP_SESSION, CLEANUP_CREDENTIALS_SECONDS).await {
            Ok(Some(access)) => access,
            Ok(None) => return Ok(()),
            Err(Error::Aws(error)) if !error.is_retryable() => {
                removal_failed(ctx, account, give_up(&error)).await;
                return Ok(());
            }
            Err(error) => return Err(error),
        };
    let result = remove(
        &ctx.aws,
        access.identity(),
        role_name,
        &policy_name,
        &policy_arn,
    )
    .await;
    ctx.metrics.aws_call(
        "RemovePrincipal",
        if result.is_ok() { "ok" } else { "error" },
    );
    match result {
        Ok(removal) => {
            let mut note = match removal.deleted.is_empty() {
                true => "nothing to delete".to_string(),
                false => format!("deleted {}", removal.deleted.join(" and ")),
            };
            if !removal.kept.is_empty() {
                note.push_str(&format!(
                    "; kept {} (not created by the operator)",
                    removal.kept.join(" and ")
                ));
            }
            events::publish(ctx, account, "Account", false, "PrincipalRoleRemoved", note).await;
            Ok(())
        }
        Err(error) if error.is_retryable() => Err(error.into()),
        Err(error) => {
            removal_failed(ctx, account, give_up(&error)).await;
            Ok(())
        }
    }
}

/// A removal retrying cannot fix: said once, as a Warning naming what to delete by hand.
async fn removal_failed(ctx: &Context, account: &Account, note: String) {
    events::publish(
        ctx,
        account,
        "Account",
        true,
        "PrincipalRemovalFailed",
        note,
    )
    .await;
}
