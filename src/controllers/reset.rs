//! Reset Jobs: a Job from the configured image cleans an account, given its admin credentials
//! through a Secret and its aws-nuke configuration through a ConfigMap, all three owned by the
//! Account.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EnvFromSource, PodSecurityContext,
    PodSpec, PodTemplateSpec, SeccompProfile, Secret, SecretEnvSource, SecurityContext, Volume,
    VolumeMount,
};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams, PropagationPolicy};
use kube::{Api, Resource, ResourceExt};

use super::error::is_status;
use super::{Context, Error};
use crate::lifecycle::account::JobState;
use crate::lifecycle::credentials::{MANAGED_LABEL, MANAGED_VALUE};
use crate::lifecycle::nuke::{self, NukeInputs};
use crate::lifecycle::principal;
use crate::resources::Account;

/// Label on reset Jobs naming their Account.
pub const ACCOUNT_LABEL: &str = "dce.dev/account";
/// The reset container's user and group: images such as aws-nuke's name a non-numeric user,
/// which `runAsNonRoot` cannot verify.
const RESET_USER: i64 = 65532;
const NUKE_CONFIG_VOLUME: &str = "aws-nuke-config";

/// The aws-nuke configuration of `account`'s next reset.
pub async fn nuke_config(ctx: &Context, account: &Account) -> Result<String, Error> {
    let number = account.aws_account_number().ok_or_else(|| {
        Error::Invalid(format!(
            "account {} has no known AWS account number yet",
            account.spec.id
        ))
    })?;
    let operator = ctx.operator_identity().await?;
    let role_name = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_string();
    let principal_role = match &account.spec.principal_role_arn {
        Some(arn) => role_name(arn),
        None => ctx.settings.principal_role_name.clone(),
    };
    let mut kept_roles: Vec<String> = account
        .spec
        .admin_role_arn
        .as_deref()
        .map(role_name)
        .into_iter()
        .collect();
    kept_roles.push(principal_role);
    // Whether the operator manages the principal follows from the spec, not from the status
    // read here: a new account's first reset starts in the reconcile that provisions it.
    let policy = account
        .spec
        .principal_role_arn
        .is_none()
        .then(|| principal::policy_name(&ctx.settings.principal_role_name));
    Ok(nuke::config(&NukeInputs {
        account: number,
        allowed_regions: &ctx.settings.allowed_regions,
        blocklist: std::slice::from_ref(&operator.account),
        kept_roles: &kept_roles,
        principal_policy: policy.as_deref(),
        extra_filters: &ctx.settings.nuke_extra_filters,
        endpoint: ctx.settings.nuke_endpoint.as_deref(),
        resource_types: &ctx.settings.nuke_resource_types,
    }))
}

/// The state of a Job from its status conditions; a failure carries the Job's reason and
/// message (e.g. `DeadlineExceeded`, or `BackoffLimitExceeded` when its container failed).
pub fn job_state(job: &Job) -> JobState {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let find = |type_: &str| {
        conditions.and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == "True"))
    };
    if find("Complete").is_some() {
        JobState::Succeeded
    } else if let Some(failed) = find("Failed") {
        let reason = failed.reason.as_deref().unwrap_or("Failed");
        JobState::Failed(match failed.message.as_deref() {
            Some(message) if !message.is_empty() => format!("{reason}: {message}"),
            _ => reason.to_string(),
        })
    } else {
        JobState::Running
    }
}

/// Observes the reset Job `name`, if it exists.
pub async fn observe(ctx: &Context, name: &str) -> Result<Option<JobState>, Error> {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    Ok(api
        .get_opt(name)
        .await
        .map_err(Error::Kube)?
        .as_ref()
        .map(job_state))
}

/// An unfinished reset Job of `account` that its status does not record: started by a reconcile
/// whose status write then failed. Adopting it keeps one reset from running twice at once.
async fn unrecorded_running_job(ctx: &Context, account: &Account) -> Result<Option<String>, Error> {
    let Some(uid) = account.uid() else {
        return Ok(None);
    };
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let selector = format!("{ACCOUNT_LABEL}={}", account_label(account));
    let jobs = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::Kube)?;
    Ok(jobs
        .items
        .iter()
        .filter(|job| job.metadata.deletion_timestamp.is_none())
        .filter(|job| job.owner_references().iter().any(|o| o.uid == uid))
        .find(|job| job_state(job) == JobState::Running)
        .map(|job| job.name_any()))
}

/// The account's name as a label value (labels hold at most 63 characters); Jobs are matched to
/// their Account by owner uid as well, so a shared prefix cannot mix two accounts up.
fn account_label(account: &Account) -> String {
    account.name_any().chars().take(40).collect()
}

/// Starts a reset Job for `account` with `credentials` (environment variables) and its
/// aws-nuke configuration, or adopts the one an interrupted reconcile started, and returns its
/// name.
pub async fn start(
    ctx: &Context,
    account: &Account,
    credentials: BTreeMap<String, String>,
    nuke_config: String,
) -> Result<String, Error> {
    if let Some(running) = unrecorded_running_job(ctx, account).await? {
        return Ok(running);
    }
    let namespace = &ctx.settings.namespace;
    let suffix: String = (0..5)
        .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
        .collect();
    let account_label = account_label(account);
    let name = format!("dce-reset-{account_label}-{suffix}");
    let owner = account
        .controller_owner_ref(&())
        .ok_or_else(|| Error::Invalid("account has no uid yet".into()))?;
    let labels = BTreeMap::from([
        (MANAGED_LABEL.to_string(), MANAGED_VALUE.to_string()),
        (ACCOUNT_LABEL.to_string(), account_label),
    ]);
    let metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace.clone()),
        labels: Some(labels.clone()),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };
    let secret = Secret {
        metadata: metadata.clone(),
        data: Some(
            credentials
                .into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    secrets.create(&PostParams::default(), &secret).await?;
    let config_map = ConfigMap {
        metadata: metadata.clone(),
        data: Some(BTreeMap::from([(
            nuke::CONFIG_FILE.to_string(),
            nuke_config,
        )])),
        ..ConfigMap::default()
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    config_maps
        .create(&PostParams::default(), &config_map)
        .await?;
    let job = Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(ctx.settings.reset_deadline_seconds),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    host_network: ctx.settings.reset_host_network.then_some(true),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RESET_USER),
                        run_as_group: Some(RESET_USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_string(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    volumes: Some(vec![Volume {
                        name: NUKE_CONFIG_VOLUME.to_string(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: name.clone(),
                            optional: Some(false),
                            ..ConfigMapVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    containers: vec![Container {
                        name: "reset".to_string(),
                        image: Some(ctx.settings.reset_image.clone()),
                        command: Some(ctx.settings.reset_command.clone()),
                        env_from: Some(vec![EnvFromSource {
                            secret_ref: Some(SecretEnvSource {
                                name: name.clone(),
                                optional: Some(false),
                            }),
                            ..EnvFromSource::default()
                        }]),
                        volume_mounts: Some(vec![VolumeMount {
                            name: NUKE_CONFIG_VOLUME.to_string(),
                            mount_path: nuke::CONFIG_DIR.to_string(),
                            read_only: Some(true),
                            ..VolumeMount::default()
                        }]),
                        security_context: Some(SecurityContext {
                            allow_privilege_escalation: Some(false),
                            read_only_root_filesystem: Some(true),
                            capabilities: Some(Capabilities {
                                drop: Some(vec!["ALL".to_string()]),
                                ..Capabilities::default()
                            }),
                            ..SecurityContext::default()
                        }),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    };
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    jobs.create(&PostParams::default(), &job).await?;
    Ok(name)
}

/// Deletes a finished reset Job, its credentials Secret and its aws-nuke configuration.
pub async fn delete(ctx: &Context, name: &str) -> Result<(), Error> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.settings.namespace);
    for result in [
        jobs.delete(name, &params).await.map(|_| ()),
        secrets.delete(name, &params).await.map(|_| ()),
        config_maps.delete(name, &params).await.map(|_| ()),
    ] {
        match result {
            Ok(()) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
