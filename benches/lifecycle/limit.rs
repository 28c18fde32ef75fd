//! The API server's own limit for the lease path: the writes one lease needs — create the
//! Lease, claim the Account's status, set the Lease's status, create the credentials Secret —
//! made directly by the benchmark, with no operator and no AWS, at the same size and
//! concurrency as the operator's run. Its figures are printed beside the operator's, and the
//! ratios between them are what carries from one machine to the next.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dce_e2e::process::cpu_time;
use dce_operator::resources::{Account, AccountSpec, Lease, LeaseSpec};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::percentile;

const NAMESPACE: &str = "bench-limit";

/// The processes whose CPU time a phase is charged with.
#[derive(Clone, Copy)]
pub struct Processes {
    pub apiserver: u32,
    pub moto: u32,
}

/// CPU time of the API server and moto at one moment.
#[derive(Clone, Copy)]
pub struct CpuMark {
    apiserver: Duration,
    moto: Duration,
}

impl Processes {
    pub fn mark(&self) -> CpuMark {
        CpuMark {
            apiserver: cpu_time(self.apiserver),
            moto: cpu_time(self.moto),
        }
    }
}

/// What one phase (the limit, or the operator) measured for `leases` leases.
pub struct Phase {
    pub leases: usize,
    pub elapsed: Duration,
    /// Per lease, sorted, in milliseconds.
    pub latencies: Vec<f64>,
    pub apiserver_cpu: Duration,
    pub moto_cpu: Duration,
}

impl Phase {
    pub fn new(
        leases: usize,
        elapsed: Duration,
        latencies: Vec<f64>,
        from: CpuMark,
        to: CpuMark,
    ) -> Self {
        Self {
            leases,
            elapsed,
            latencies,
            apiserver_cpu: to.apiserver.saturating_sub(from.apiserver),
            moto_cpu: to.moto.saturating_sub(from.moto),
        }
    }

    fn throughput(&self) -> f64 {
        self.leases as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_per_lease(cpu: Duration, leases: usize) -> f64 {
        cpu.as_secs_f64() * 1000.0 / leases as f64
    }

    fn line(&self, name: &str) -> String {
        format!(
            "  {name:<9} {:>7.1} leases/s; latency p50 {:>5.0} ms, p95 {:>5.0} ms, p99 {:>5.0} ms; CPU per lease: API server {:>5.2} ms, moto {:>5.2} ms",
            self.throughput(),
            percentile(&self.latencies, 50.0),
            percentile(&self.latencies, 95.0),
            percentile(&self.latencies, 99.0),
            Self::cpu_per_lease(self.apiserver_cpu, self.leases),
            Self::cpu_per_lease(self.moto_cpu, self.leases),
        )
    }
}

/// Prints the operator's phase beside the limit, with the ratios.
pub fn print_beside(limit: &Phase, operator: &Phase) {
    println!(
        "  the lease path against the API server's own limit (same leases, same concurrency):"
    );
    println!("{}", limit.line("limit"));
    println!("{}", operator.line("operator"));
    let p99 = |phase: &Phase| percentile(&phase.latencies, 99.0);
    println!(
        "  ratios operator / limit: throughput {:.2}, API-server CPU per lease {:.2}, p99 {:.2}",
        operator.throughput() / limit.throughput(),
        Phase::cpu_per_lease(operator.apiserver_cpu, operator.leases)
            / Phase::cpu_per_lease(limit.apiserver_cpu, limit.leases),
        p99(operator) / p99(limit),
    );
}

fn account_name(i: usize) -> String {
    format!("{:012}", 300_000_000_000u64 + i as u64)
}

/// Runs the bare writes of `n` leases, `in_flight` at a time, then removes everything it made.
pub async fn measure(
    client: &Client,
    processes: Processes,
    n: usize,
    in_flight: usize,
) -> anyhow::Result<Phase> {
    dce_e2e::cluster::create_namespace(client, NAMESPACE).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<Account> = Api::all(client.clone());
    stream::iter(0..n)
        .map(|i| {
            let accounts = accounts.clone();
            async move {
                let id = account_name(i);
                let spec = AccountSpec::with_admin_role(
                    id.clone(),
                    format!("arn:aws:iam::{id}:role/Admin"),
                );
                accounts
                    .create(&PostParams::default(), &Account::new(&id, spec))
                    .await
            }
        })
        .buffer_unordered(in_flight)
        .try_collect::<Vec<_>>()
        .await?;

    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let from = processes.mark();
    let started = Instant::now();
    let mut latencies: Vec<f64> = stream::iter(0..n)
        .map(|i| {
            let (leases, secrets, accounts) = (leases.clone(), secrets.clone(), accounts.clone());
            async move { one_lease(&leases, &secrets, &accounts, i).await }
        })
        .buffer_unordered(in_flight)
        .try_collect()
        .await?;
    let elapsed = started.elapsed();
    let to = processes.mark();
    latencies.sort_by(|a, b| a.total_cmp(b));

    // Nothing of it is left for the operator to see.
    namespaces
        .delete(NAMESPACE, &DeleteParams::default())
        .await?;
    accounts
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    dce_e2e::cluster::wait_for(Duration::from_secs(120), || async {
        let left = accounts
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .len();
        let namespace_gone = namespaces.get_opt(NAMESPACE).await.ok()?.is_none();
        (left == 0 && namespace_gone).then_some(())
    })
    .await?;
    Ok(Phase::new(n, elapsed, latencies, from, to))
}

/// The four writes of lease `i`; the time from the Lease's creation to its Secret's, in ms.
async fn one_lease(
    leases: &Api<Lease>,
    secrets: &Api<Secret>,
    accounts: &Api<Account>,
    i: usize,
) -> anyhow::Result<f64> {
    let name = format!("limit-{i:05}");
    let spec = LeaseSpec {
        budget_amount: Some(10.0),
        ..LeaseSpec::for_principal(&name)
    };
    let lease = leases
        .create(&PostParams::default(), &Lease::new(&name, spec))
        .await?;
    let created = Instant::now();
    let account = account_name(i);
    let merge = PatchParams::default();
    accounts
        .patch_status(
            &account,
            &merge,
            &Patch::Merge(json!({ "status": {
                "accountStatus": "Leased",
                "lease": { "namespace": NAMESPACE, "name": name, "uid": lease.uid() },
            }})),
        )
        .await?;
    leases
        .patch_status(
            &name,
            &merge,
            &Patch::Merge(json!({ "status": {
                "leaseStatus": "Active",
                "leaseStatusReason": "Active",
                "accountId": account,
                "accountName": account,
                "credentialsSecretName": format!("{name}-aws-credentials"),
            }})),
        )
        .await?;
    // As large as the operator's: three keys, the expiry, the region and a credentials file.
    let data: BTreeMap<String, ByteString> = [
        ("AWS_ACCESS_KEY_ID", "ASIA".repeat(5)),
        ("AWS_SECRET_ACCESS_KEY", "s".repeat(40)),
        ("AWS_SESSION_TOKEN", "t".repeat(360)),
        ("AWS_CREDENTIAL_EXPIRATION", "2026-12-07T12:00:00Z".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("credentials", "c".repeat(480)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(format!("{name}-aws-credentials")),
            owner_references: lease.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    };
    secrets.create(&PostParams::default(), &secret).await?;
    Ok(created.elapsed().as_secs_f64() * 1000.0)
}
