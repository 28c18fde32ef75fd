//! `make bench`: the operator (its release binary, as a separate process) against a real
//! control plane (etcd, kube-apiserver, kube-controller-manager) + moto. Prints Lease-created → credentials-Secret latency, throughput, operator
//! peak memory, API writes per lease, expiry lag, writes during an idle period, and Cost Explorer
//! calls per usage-collection round.
//!
//! Target: a control plane started here (default); or, with BENCH_KUBECONFIG=<path>, that
//! cluster — a disposable one with the CRDs installed and no operator deployed (the benchmark
//! runs its own, against a local moto). Request and write counts come from the API server's
//! audit log of the operator's user, and are reported only for the control plane started here.
//!
//! First the same control plane is driven with the bare writes one lease needs, with no operator
//! and no AWS (`limit.rs`): the API server's own limit, printed beside the operator's figures
//! with the ratios between them.
//!
//! Sizes: BENCH_LEASES (default 1000), BENCH_IN_FLIGHT (100 leases waiting for their Secret at
//! once), BENCH_IDLE_SECONDS (60). Then the operator is restarted with a collection interval of
//! BENCH_USAGE_INTERVAL_SECONDS (30) and Cost Explorer calls are counted over BENCH_USAGE_ROUNDS
//! (2) intervals.

use std::collections::HashMap;

use anyhow::Context as _;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dce_e2e::cluster::wait_for;
use dce_e2e::control_plane::RequestStats;
use dce_operator::resources::{Account, AccountPhase, AccountSpec, Lease, LeasePhase, LeaseSpec};
use futures::{StreamExt, TryStreamExt, stream};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

#[path = "lifecycle/cluster.rs"]
mod cluster;
#[path = "lifecycle/limit.rs"]
mod limit;

use cluster::{BenchCluster, counted, or_not_counted};

/// Pause between the last activation and the idle measurement.
const IDLE_SETTLE: Duration = Duration::from_secs(1);
/// How long one lease may wait for its Secret before the benchmark gives up.
const SECRET_TIMEOUT: Duration = Duration::from_secs(300);
/// The IAM user the operator signs as.
pub const OPERATOR_USER: &str = "dce-operator";
/// The Kubernetes user the operator authenticates as, and its token.
pub const OPERATOR_KUBE_USER: &str = "dce-operator-bench";
pub const OPERATOR_TOKEN: &str = "dce-operator-bench-token";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Peak, current, anonymous (heap) and file-backed (mapped code) resident memory of a process,
/// in MiB.
fn memory_mib(pid: u32) -> (f64, f64, f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (
        field("VmHWM:"),
        field("VmRSS:"),
        field("RssAnon:"),
        field("RssFile:"),
    )
}

struct Operator(Child);

impl Operator {
    /// Starts the operator binary against `cluster`, its metrics on `metrics_port`, logging to
    /// `log` in `dir`; `env` adds or overrides settings.
    fn spawn(
        cluster: &BenchCluster,
        dir: &std::path::Path,
        log: &str,
        metrics_port: u16,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(dir.join(log))?;
        let binary = std::env::var_os("BENCH_OPERATOR_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_dce-operator").into());
        let mut command = Command::new(binary);
        command
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("AWS_ACCESS_KEY_ID", &cluster.operator_keys.access_key_id)
            .env(
                "AWS_SECRET_ACCESS_KEY",
                &cluster.operator_keys.secret_access_key,
            )
            .env("DCE_STS_ENDPOINT", &cluster.sts_endpoint)
            .env("DCE_COST_EXPLORER_ENDPOINT", &cluster.sts_endpoint)
            .env("DCE_IAM_ENDPOINT", &cluster.sts_endpoint)
            .env("DCE_RESET_MODE", "disabled")
            .env("DCE_LEADER_ELECTION", "false")
            .env("DCE_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("DCE_API_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("DCE_LOG_FORMAT", "json")
            .env(
                "RUST_LOG",
                std::env::var("BENCH_OPERATOR_LOG").unwrap_or_else(|_| "warn".into()),
            );
        for (name, value) in env {
            command.env(name, value);
        }
        Ok(Operator(
            command.stdout(log.try_clone()?).stderr(log).spawn()?,
        ))
    }
}

/// The value of the counter sample `name{labels}` on the operator's `/metrics`, 0 if absent.
async fn scrape_counter(metrics_port: u16, sample: &str) -> anyhow::Result<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0))
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

fn account(i: usize) -> Account {
    let id = format!("{:012}", 200_000_000_000u64 + i as u64);
    Account::new(
        &id,
        AccountSpec::with_admin_role(id.to_string(), format!("arn:aws:iam::{id}:role/Admin")),
    )
}

fn lease(name: &str, expires_on: Option<Timestamp>) -> Lease {
    Lease::new(
        name,
        LeaseSpec {
            budget_amount: Some(10.0),
            expires_on: expires_on.map(Time),
            ..LeaseSpec::for_principal(name)
        },
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = env_usize("BENCH_LEASES", 1000);
    let in_flight = env_usize("BENCH_IN_FLIGHT", 100);
    let idle_seconds = env_usize("BENCH_IDLE_SECONDS", 60);
    let usage_interval = env_usize("BENCH_USAGE_INTERVAL_SECONDS", 30) as u64;
    let usage_rounds = env_usize("BENCH_USAGE_ROUNDS", 2) as u64;
    let expiring = (n / 10).max(10);

    let dir = std::env::temp_dir().join(format!("dce-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cluster = BenchCluster::start(&dir).await?;
    let processes = cluster.processes();
    let limit = match processes {
        Some(processes) => Some(limit::measure(&cluster.client, processes, n, in_flight).await?),
        None => None,
    };
    let metrics_port = free_port();
    let operator = Operator::spawn(&cluster, &dir, "operator.log", metrics_port, &[])?;
    let pid = operator.0.id();
    let client = cluster.client.clone();

    // Accounts: n for the latency leases plus the short-lived expiry probes.
    let accounts: Api<Account> = Api::all(client.clone());
    stream::iter(0..n + expiring)
        .map(|i| {
            let accounts = accounts.clone();
            async move { accounts.create(&PostParams::default(), &account(i)).await }
        })
        .buffer_unordered(in_flight)
        .try_collect::<Vec<_>>()
        .await?;
    wait_for(Duration::from_secs(600), || async {
        let list = accounts.list(&ListParams::default()).await.ok()?;
        (list
            .items
            .iter()
            .filter(|a| a.phase() == Some(AccountPhase::Ready))
            .count()
            == n + expiring)
            .then_some(())
    })
    .await
    .context("every account Ready")?;

    // Secret arrival times, from a watch; each arrival also frees an in-flight slot.
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let arrived = Arc::new(tokio::sync::Notify::new());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "bench");
    let watch_seen = seen.clone();
    let watch_arrived = arrived.clone();
    let secret_watch = tokio::spawn(async move {
        let mut events = watcher(secrets, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(secret)) = events.next().await {
            watch_seen
                .lock()
                .unwrap()
                .entry(secret.name_any())
                .or_insert_with(Instant::now);
            watch_arrived.notify_waiters();
        }
    });

    // Closed loop: at most `in_flight` leases wait for their Secret at any time, so the latency
    // is the operator's service time under that concurrency rather than the queueing of a burst.
    let assume_role = r#"dce_aws_calls_total{operation="AssumeRole",result="ok"}"#;
    let assumed_before = scrape_counter(metrics_port, assume_role).await?;
    let before = cluster.stats();
    let audited_before = cluster.audited();
    let cpu_before = processes.map(|p| p.mark());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "bench");
    let started = Instant::now();
    let created: Vec<(String, Instant)> = stream::iter(0..n)
        .map(|i| {
            let leases = leases.clone();
            let seen = seen.clone();
            let arrived = arrived.clone();
            async move {
                let name = format!("bench-{i:05}");
                let secret = format!("{name}-aws-credentials");
                leases
                    .create(&PostParams::default(), &lease(&name, None))
                    .await?;
                let at = Instant::now();
                loop {
                    if at.elapsed() > SECRET_TIMEOUT {
                        anyhow::bail!("no credentials Secret for {name} after {SECRET_TIMEOUT:?}");
                    }
                    let notified = arrived.notified();
                    if seen.lock().unwrap().contains_key(&secret) {
                        break;
                    }
                    // A bounded wait: a notification between the check and here is not lost
                    // for longer than this.
                    let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
                }
                anyhow::Ok((name, at))
            }
        })
        .buffer_unordered(in_flight)
        .try_collect()
        .await?;
    let elapsed = started.elapsed();
    let cpu_after = processes.map(|p| p.mark());
    let mut latencies: Vec<f64> = {
        let seen = seen.lock().unwrap();
        created
            .iter()
            .filter_map(|(name, at)| {
                seen.get(&format!("{name}-aws-credentials"))
                    .map(|s| s.saturating_duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    if let Ok(path) = std::env::var("BENCH_LATENCIES_CSV") {
        // Per lease (names number them in creation order), to see when slow ones happened.
        let seen = seen.lock().unwrap();
        let rows: String = created
            .iter()
            .filter_map(|(name, at)| {
                let secret = seen.get(&format!("{name}-aws-credentials"))?;
                Some(format!(
                    "{name},{}\n",
                    secret.saturating_duration_since(*at).as_millis()
                ))
            })
            .collect();
        std::fs::write(&path, rows)?;
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let after_create = cluster.stats();
    let writes_by_kind = audited_before.and_then(|since| cluster.writes_by_kind(since));
    let (peak_mib, ..) = memory_mib(pid);
    let claims = |result: &'static str| {
        let sample = format!("dce_account_claims_total{{result=\"{result}\"}}");
        async move { scrape_counter(metrics_port, &sample).await }
    };
    let assumed = scrape_counter(metrics_port, assume_role).await? - assumed_before;
    let lost = claims("lost").await?;
    let stale = claims("stale").await?;

    // Idle: every lease Active with its credentials recorded, and the Events of the last
    // activations (sent in the background) given a moment to land; then nothing should change.
    wait_for(Duration::from_secs(120), || async {
        let list = leases.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .all(|l| {
                l.phase() == Some(LeasePhase::Active)
                    && l.status
                        .as_ref()
                        .is_some_and(|s| s.credentials_secret_name.is_some())
            })
            .then_some(())
    })
    .await
    .context("every lease Active with its credentials")?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let idle_before = cluster.stats();
    tokio::time::sleep(Duration::from_secs(idle_seconds as u64)).await;
    let idle_after = cluster.stats();

    // Expiry lag: leases that expire a few seconds from now.
    let expires_on =
        Timestamp::from_second((Timestamp::now() + SignedDuration::from_secs(8)).as_second())?;
    for i in 0..expiring {
        leases
            .create(
                &PostParams::default(),
                &lease(&format!("expiry-{i:04}"), Some(expires_on)),
            )
            .await?;
    }
    let ended = wait_for(Duration::from_secs(120), || async {
        let list = leases.list(&ListParams::default()).await.ok()?;
        let ended: Vec<Lease> = list
            .items
            .into_iter()
            .filter(|l| {
                l.name_any().starts_with("expiry-") && l.phase() == Some(LeasePhase::Inactive)
            })
            .collect();
        (ended.len() == expiring).then_some(ended)
    })
    .await
    .context("expiry leases ended")?;
    let mut lags: Vec<f64> = ended
        .iter()
        .filter_map(|l| {
            l.status
                .as_ref()?
                .lease_status_modified_on
                .as_ref()
                .map(|t| t.0.duration_since(expires_on).as_secs_f64() * 1000.0)
        })
        .collect();
    lags.sort_by(|a, b| a.total_cmp(b));
    let (peak_end, rss_end, anon_end, file_end) = memory_mib(pid);

    secret_watch.abort();
    // Only the operator's user is audited: the benchmark's own requests are not counted.
    let operator_writes = counted(&before, &after_create, RequestStats::writes);
    let operator_requests = counted(&before, &after_create, RequestStats::total);
    println!("dce-operator benchmark: {n} accounts, {n} leases, {in_flight} in flight");
    println!(
        "  lease created -> credentials Secret: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms (max {:.0} ms, {} samples)",
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
        latencies.len()
    );
    println!(
        "  throughput: {:.1} leases/s",
        n as f64 / elapsed.as_secs_f64()
    );
    if let (Some(limit), Some(from), Some(to)) = (&limit, cpu_before, cpu_after) {
        let operator = limit::Phase::new(n, elapsed, latencies.clone(), from, to);
        limit::print_beside(limit, &operator);
    }
    let per_lease = |count: Option<u64>| count.map(|c| format!("{:.2}", c as f64 / n as f64));
    println!(
        "  API requests per lease (operator, until Secret): {}; writes per lease: {}",
        or_not_counted(per_lease(operator_requests)),
        or_not_counted(per_lease(operator_writes))
    );
    if let Some(kinds) = writes_by_kind {
        let kinds: Vec<String> = kinds
            .iter()
            .map(|(kind, count)| format!("{kind} {:.2}", *count as f64 / n as f64))
            .collect();
        println!("  writes per lease by kind: {}", kinds.join(", "));
    }
    println!(
        "  STS AssumeRole calls per lease: {:.2}",
        assumed / n as f64
    );
    println!(
        "  claims lost to another lease: {:.3} per lease ({lost} lost at the write, {stale} seen taken in the cache)",
        (lost + stale) / n as f64
    );
    println!(
        "  operator peak RSS: {peak_mib:.1} MiB after creation, {peak_end:.1} MiB at end (current {rss_end:.1} MiB: {anon_end:.1} heap and stacks, {file_end:.1} mapped files)"
    );
    println!(
        "  writes during {idle_seconds} s idle with {n} active leases: {}",
        or_not_counted(
            counted(&idle_before, &idle_after, RequestStats::writes).map(|w| w.to_string())
        )
    );

    println!(
        "  expiry lag (Inactive time - expiresOn, status has 1 s resolution) over {expiring} leases: p50 {:.0} ms, p99 {:.0} ms",
        percentile(&lags, 50.0),
        percentile(&lags, 99.0)
    );
    drop(operator);

    // Usage collection: the operator restarted with a short collection interval, so every one
    // of the n Active leases is due at once (the first round), then once per interval.
    let usage_port = free_port();
    let operator = Operator::spawn(
        &cluster,
        &dir,
        "operator-usage.log",
        usage_port,
        &[(
            "DCE_USAGE_COLLECTION_INTERVAL_SECONDS",
            usage_interval.to_string(),
        )],
    )?;
    let collected_since = |since: Timestamp| {
        let leases = leases.clone();
        async move {
            let list = leases.list(&ListParams::default()).await.ok()?;
            let active: Vec<&Lease> = list
                .items
                .iter()
                .filter(|l| l.phase() == Some(LeasePhase::Active))
                .collect();
            let done = active
                .iter()
                .filter(|l| {
                    l.status
                        .as_ref()
                        .and_then(|s| s.usage.as_ref()?.collected_at.as_ref())
                        .is_some_and(|t| t.0 >= since)
                })
                .count();
            (done == active.len()).then_some(active.len())
        }
    };
    // Round k is complete when every lease has a collection at or after restart + (k-1)
    // intervals; since each lease is due one interval after its last collection, by then each
    // has been collected exactly k times if nothing is collected twice.
    let restarted = Timestamp::from_second(Timestamp::now().as_second())?;
    let cost_calls = r#"dce_aws_calls_total{operation="GetCostAndUsage",result="ok"}"#;
    let mut per_round = Vec::new();
    let mut active = 0;
    let mut previous = 0.0;
    for round in 0..=usage_rounds {
        let since = restarted + SignedDuration::from_secs((usage_interval * round) as i64);
        active = wait_for(Duration::from_secs(600), || collected_since(since))
            .await
            .with_context(|| format!("collection round {}", round + 1))?;
        let calls = scrape_counter(usage_port, cost_calls).await?;
        per_round.push(calls - previous);
        previous = calls;
    }
    let first_round = per_round.remove(0);
    let failed = scrape_counter(
        usage_port,
        r#"dce_aws_calls_total{operation="GetCostAndUsage",result="error"}"#,
    )
    .await?;
    drop(operator);
    println!(
        "  Cost Explorer calls per collection round ({active} active leases on {active} accounts, interval {usage_interval} s): first round {first_round:.0}, then {} ({failed:.0} failed)",
        per_round
            .iter()
            .map(|calls| format!("{calls:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    cluster.stop().await;
    if std::env::var("BENCH_OPERATOR_LOG").is_ok() {
        println!("  operator log: {}", dir.join("operator.log").display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
