//! Where the benchmark runs: the control plane it starts (with the operator's requests in its
//! audit log), or the cluster BENCH_KUBECONFIG names.

use std::collections::BTreeMap;

use dce_e2e::cluster::{TestCluster, client_for, create_namespace, install_crypto_provider};
use dce_e2e::control_plane::{ControlPlaneConfig, RequestStats, StaticToken};
use dce_e2e::moto::{AccessKey, Moto};
use kube::Client;

use super::{OPERATOR_KUBE_USER, OPERATOR_TOKEN, OPERATOR_USER, limit};

/// Where the benchmark runs.
pub struct BenchCluster {
    pub client: Client,
    pub kubeconfig: std::path::PathBuf,
    pub sts_endpoint: String,
    /// An IAM user's key in moto's default account, the operator's own identity. moto finds
    /// the account of a request's key by scanning every account it has seen, so an unknown key
    /// (like the e2e tests' fixed one) makes each call cost O(accounts) once the operator has
    /// assumed roles in a thousand of them; a known key is found in the first account.
    pub operator_keys: AccessKey,
    /// The test control plane (and its moto), when no BENCH_KUBECONFIG is given.
    local: Option<TestCluster>,
    /// moto for a cluster named by BENCH_KUBECONFIG.
    external_moto: Option<Moto>,
}

impl BenchCluster {
    pub async fn start(dir: &std::path::Path) -> anyhow::Result<Self> {
        let cluster = match std::env::var_os("BENCH_KUBECONFIG") {
            Some(path) => {
                install_crypto_provider();
                let kubeconfig = std::path::PathBuf::from(path);
                let client = client_for(&std::fs::read_to_string(&kubeconfig)?).await?;
                let moto = Moto::start().await?;
                Self {
                    client,
                    kubeconfig,
                    sts_endpoint: moto.endpoint(),
                    operator_keys: moto.create_user_with_key(OPERATOR_USER, None).await?,
                    local: None,
                    external_moto: Some(moto),
                }
            }
            None => {
                // The operator authenticates as its own user, whose requests the audit log counts.
                let local = TestCluster::start_with(ControlPlaneConfig {
                    tokens: vec![StaticToken {
                        token: OPERATOR_TOKEN.into(),
                        username: OPERATOR_KUBE_USER.into(),
                        uid: OPERATOR_KUBE_USER.into(),
                        groups: vec!["system:masters".into()],
                    }],
                    audited_users: vec![OPERATOR_KUBE_USER.into()],
                    ..ControlPlaneConfig::default()
                })
                .await?;
                let kubeconfig = dir.join("kubeconfig");
                local
                    .control_plane
                    .write_kubeconfig(&kubeconfig, OPERATOR_TOKEN)?;
                Self {
                    client: local.client.clone(),
                    kubeconfig,
                    sts_endpoint: local.moto.endpoint(),
                    operator_keys: local.moto.create_user_with_key(OPERATOR_USER, None).await?,
                    local: Some(local),
                    external_moto: None,
                }
            }
        };
        create_namespace(&cluster.client, "bench").await?;
        Ok(cluster)
    }

    /// The API server and moto processes, to charge CPU time to (control plane started here only).
    pub fn processes(&self) -> Option<limit::Processes> {
        let local = self.local.as_ref()?;
        Some(limit::Processes {
            apiserver: local.control_plane.apiserver_pid(),
            moto: local.moto.pid(),
        })
    }

    /// How many requests of the operator the audit log holds so far (control plane started
    /// here only).
    pub fn audited(&self) -> Option<usize> {
        let local = self.local.as_ref()?;
        local
            .control_plane
            .authorization_decisions()
            .ok()
            .map(|d| d.len())
    }

    /// The operator's writes after the first `since` audited requests, by verb and resource.
    pub fn writes_by_kind(&self, since: usize) -> Option<BTreeMap<String, u64>> {
        let local = self.local.as_ref()?;
        let decisions = local.control_plane.authorization_decisions().ok()?;
        let mut kinds = BTreeMap::new();
        for decision in decisions.iter().skip(since) {
            if !matches!(
                decision.verb.as_str(),
                "create" | "update" | "patch" | "delete"
            ) {
                continue;
            }
            let resource = match decision.subresource.as_str() {
                "" => decision.resource.clone(),
                sub => format!("{}/{sub}", decision.resource),
            };
            *kinds
                .entry(format!("{} {resource}", decision.verb))
                .or_insert(0) += 1;
        }
        Some(kinds)
    }

    /// The operator's requests so far (control plane started here only).
    pub fn stats(&self) -> Option<RequestStats> {
        let local = self.local.as_ref()?;
        match local.control_plane.request_stats() {
            Ok(stats) => Some(stats),
            Err(error) => {
                eprintln!("reading the audit log: {error:#}");
                None
            }
        }
    }

    pub async fn stop(self) {
        if let Some(local) = self.local {
            local.stop().await;
        }
        drop(self.external_moto);
    }
}

/// `after - before` of a counter, when counted.
pub fn counted(
    before: &Option<RequestStats>,
    after: &Option<RequestStats>,
    counter: fn(&RequestStats) -> u64,
) -> Option<u64> {
    Some(counter(after.as_ref()?) - counter(before.as_ref()?))
}

pub fn or_not_counted(value: Option<String>) -> String {
    value.unwrap_or_else(|| "not counted (needs the control plane started by the benchmark)".into())
}
