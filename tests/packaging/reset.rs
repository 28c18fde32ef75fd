//! A reset that works out of the box: the operator binary, run with the chart's default
//! settings, creates reset Jobs whose command reads an aws-nuke configuration that exists where
//! it looks, generated for the account, and keeps the roles the pool depends on.

use dce_e2e::cluster::wait_for;
use dce_e2e::moto::Moto;
use dce_e2e::operator_process::{OperatorLaunch, OperatorProcess};
use dce_operator::resources::{Account, AccountPhase};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::common::{JobOutcome, WAIT, account, finish_job};
use crate::{Cluster, NAMESPACE};
use dce_e2e::chart_cluster::deployment_env;

/// moto's account for keys it has never seen: the operator's own identity here.
const OPERATOR_ACCOUNT: &str = "123456789012";
const POOL_ACCOUNT: &str = "222233334444";

#[tokio::test]
async fn default_reset_job_reads_its_generated_config_where_its_command_looks() {
    let cluster = Cluster::start().await.unwrap();
    let objects = cluster.install(&json!({})).await.expect("install");
    let env = deployment_env(&objects);
    let setting = |name: &str| {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("the chart sets {name}"))
    };
    assert_eq!(setting("DCE_RESET_MODE"), "job", "resets are on by default");

    let moto = Moto::start().await.unwrap();
    let launch = OperatorLaunch {
        kubeconfig: cluster.operator_kubeconfig().await.unwrap(),
        sts_endpoint: moto.endpoint(),
        args: vec![],
        env: env.clone(),
        log_dir: cluster.dir.path().to_path_buf(),
    };
    let operator = OperatorProcess::start(&launch, 0).await.unwrap();
    let client = cluster.client.clone();
    let accounts: Api<Account> = Api::all(client.clone());
    accounts
        .create(&PostParams::default(), &account(POOL_ACCOUNT))
        .await
        .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    let job = wait_for(WAIT, || async {
        let name = accounts.get(POOL_ACCOUNT).await.ok()?.status?.reset_job?;
        jobs.get_opt(&name).await.ok()?
    })
    .await
    .unwrap_or_else(|e| panic!("no reset Job: {e}\n{}", operator.log_tail()));

    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some(setting("DCE_RESET_IMAGE").as_str())
    );
    let command = container.command.clone().unwrap();
    assert_eq!(command.join(","), setting("DCE_RESET_COMMAND"));
    let path = command
        .iter()
        .skip_while(|arg| *arg != "--config")
        .nth(1)
        .expect("the default command names its --config file");

    // The file is a key of a ConfigMap mounted at the directory the path names.
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| path.starts_with(&format!("{}/", m.mount_path)))
        .unwrap_or_else(|| panic!("nothing is mounted where {path} is"));
    let key = &path[mount.mount_path.len() + 1..];
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the mount's volume");
    let source = volume.config_map.as_ref().expect("a ConfigMap volume");
    assert!(source.items.is_none(), "every key appears as a file");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let config_map = config_maps.get(&source.name).await.unwrap();
    let text = config_map
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("ConfigMap {} has no {key}", source.name));

    let config: Value = serde_yaml::from_str(text).unwrap();
    assert_eq!(config["blocklist"], json!([OPERATOR_ACCOUNT]));
    assert_eq!(config["regions"], json!(["global", "us-east-1"]));
    let kept_roles: Vec<&Value> = config["accounts"][POOL_ACCOUNT]["filters"]["IAMRole"]
        .as_array()
        .expect("roles are kept")
        .iter()
        .map(|f| &f["value"])
        .collect();
    assert_eq!(
        kept_roles,
        vec![
            &json!("OrganizationAccountAccessRole"),
            &json!("DCEPrincipal")
        ]
    );
    // The first reset starts as the principal is provisioned: its policy is kept too.
    assert_eq!(
        config["accounts"][POOL_ACCOUNT]["filters"]["IAMPolicy"],
        json!([{ "property": "Name", "value": "DCEPrincipalDefaultPolicy" }])
    );

    // Non-root with a read-only root filesystem; the image's user is a name, so the pod
    // names a numeric one `runAsNonRoot` can check.
    let pod_security = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert!(pod_security.run_as_user.is_some_and(|uid| uid > 0));
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert!(mount.read_only.unwrap_or(false));

    // Once the reset succeeds the account is Ready, its principal provisioned again.
    finish_job(
        &client,
        &job.metadata.name.clone().unwrap(),
        JobOutcome::Complete,
    )
    .await
    .unwrap();
    let ready = wait_for(WAIT, || async {
        let account = accounts.get(POOL_ACCOUNT).await.ok()?;
        (account.phase() == Some(AccountPhase::Ready)).then_some(account)
    })
    .await
    .unwrap_or_else(|e| panic!("not Ready: {e}\n{}", operator.log_tail()));
    assert!(
        ready.status.unwrap().principal_policy_hash.is_some(),
        "the principal role and policy were provisioned"
    );
    assert!(
        config_maps.get_opt(&source.name).await.unwrap().is_none(),
        "the finished reset's configuration is deleted with its Job"
    );

    drop(operator);
    drop(moto);
    cluster.stop().await;
}
