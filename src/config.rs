//! Operator configuration: every flag is also settable through its environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use jiff::SignedDuration;

use crate::lifecycle::nuke::{self, ExtraFilters};
use crate::lifecycle::principal::{self, DEFAULT_POLICY_TEMPLATE, PolicyInputs};
use crate::lifecycle::{BudgetPeriod, LeasePolicy, ResetMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BudgetPeriodArg {
    Weekly,
    Monthly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResetModeArg {
    Job,
    Disabled,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "dce-operator",
    version,
    about = "Leases disposable AWS accounts from a pool"
)]
pub struct Config {
    /// Log format.
    #[arg(long, env = "DCE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Address of the health (/healthz, /readyz) and metrics (/metrics) endpoints.
    #[arg(long, env = "DCE_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Address of the REST API (DCE and AWS-integration); empty or `off` disables it.
    #[arg(long, env = "DCE_API_ADDR", default_value = "0.0.0.0:8000", value_parser = parse_api_addr)]
    pub api_addr: ApiAddr,

    /// PEM certificate (chain) the REST API serves HTTPS with, re-read when the file changes;
    /// unset: plain HTTP (behind an Ingress or a proxy that terminates TLS).
    #[arg(long, env = "DCE_API_TLS_CERT_FILE", requires = "api_tls_key_file")]
    pub api_tls_cert_file: Option<PathBuf>,

    /// PEM private key of `--api-tls-cert-file`.
    #[arg(long, env = "DCE_API_TLS_KEY_FILE", requires = "api_tls_cert_file")]
    pub api_tls_key_file: Option<PathBuf>,

    /// Path the REST API is served under (e.g. `/api`, as DCE's API Gateway stage); empty: `/`.
    #[arg(long, env = "DCE_API_BASE_PATH", default_value = "", value_parser = parse_base_path)]
    pub api_base_path: String,

    /// ARN of the role the sign-in page assumes for callers' temporary credentials (a role in
    /// the operator's account that grants no AWS permissions); unset: sign-in issues none.
    #[arg(long, env = "DCE_API_CALLER_ROLE_ARN", value_parser = parse_role_arn)]
    pub api_caller_role_arn: Option<String>,

    /// Seconds the sign-in page's credentials last (the role's maximum session duration must
    /// allow it).
    #[arg(long, env = "DCE_API_SESSION_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(i32).range(900..=43200))]
    pub api_session_seconds: i32,

    /// Issuer of the cluster's OIDC provider, as the API server's authentication configuration
    /// names it: the sign-in page then offers sign-in through it (its ID tokens are checked
    /// with TokenReview, so the API server must accept them).
    #[arg(long, env = "DCE_OIDC_ISSUER_URL", requires = "oidc_client_id", value_parser = parse_oidc_issuer)]
    pub oidc_issuer_url: Option<url::Url>,

    /// The sign-in page's client id at the provider (an audience the API server accepts).
    #[arg(long, env = "DCE_OIDC_CLIENT_ID", requires = "oidc_issuer_url")]
    pub oidc_client_id: Option<String>,

    /// The client's secret, for a confidential client (PKCE alone for a public one). From the
    /// environment (from a Secret): a flag would show in the process list.
    #[arg(long, env = "DCE_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,

    /// PEM bundle of CAs to trust for the provider, beside the platform's.
    #[arg(long, env = "DCE_OIDC_CA_FILE")]
    pub oidc_ca_file: Option<PathBuf>,

    /// Scopes the page asks for (`openid` is always asked).
    #[arg(
        long,
        env = "DCE_OIDC_SCOPES",
        value_delimiter = ',',
        default_value = "openid,email,profile"
    )]
    pub oidc_scopes: Vec<String>,

    /// The provider's name on the sign-in button.
    #[arg(
        long,
        env = "DCE_OIDC_PROVIDER_NAME",
        default_value = "your identity provider"
    )]
    pub oidc_provider_name: String,

    /// Namespace of Leases created through the REST API.
    #[arg(long, env = "DCE_API_LEASE_NAMESPACE", default_value = "dce-leases")]
    pub api_lease_namespace: String,

    /// Seconds `POST /leases` waits for the new lease to get an account.
    #[arg(long, env = "DCE_API_LEASE_SETTLE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub api_lease_settle_seconds: u64,

    /// Namespace the operator runs in: leader-election lock, reset Jobs and their Secrets.
    #[arg(long, env = "DCE_NAMESPACE", default_value = "dce-system")]
    pub namespace: String,

    /// Elect a leader among replicas; only the leader reconciles.
    #[arg(long, env = "DCE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the coordination.k8s.io Lease used as the leader lock.
    #[arg(
        long,
        env = "DCE_LEADER_LEASE_NAME",
        default_value = "dce-operator-leader"
    )]
    pub leader_lease_name: String,

    /// Seconds a leader holds the lock without renewing it.
    #[arg(long, env = "DCE_LEADER_LEASE_SECONDS", default_value_t = 15)]
    pub leader_lease_seconds: u64,

    /// This replica's identity in leader election (defaults to the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// AWS region for STS.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub aws_region: String,

    /// STS endpoint override (e.g. a local moto_server).
    #[arg(long, env = "DCE_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,

    /// Console federation endpoint used to build sign-in URLs.
    #[arg(
        long,
        env = "DCE_FEDERATION_ENDPOINT",
        default_value = "https://signin.aws.amazon.com/federation"
    )]
    pub federation_endpoint: String,

    /// IAM endpoint override (e.g. a local moto_server).
    #[arg(long, env = "DCE_IAM_ENDPOINT")]
    pub iam_endpoint: Option<String>,

    /// Role lease holders get in each account, when the Account names no principalRoleArn. The
    /// operator creates it (and its policy `<name>DefaultPolicy`) through the admin role.
    #[arg(long, env = "DCE_PRINCIPAL_ROLE_NAME", default_value = "DCEPrincipal")]
    pub principal_role_name: String,

    /// Regions lease holders may use (the principal policy denies the others) and resets clean
    /// (repeat the flag, or separate with commas in the variable).
    #[arg(long, env = "DCE_ALLOWED_REGIONS", value_delimiter = ',', default_value = "us-east-1", value_parser = parse_region)]
    pub allowed_regions: Vec<String>,

    /// File holding the principal policy template (JSON with `{{placeholders}}`); unset uses
    /// the built-in policy.
    #[arg(long, env = "DCE_PRINCIPAL_POLICY_TEMPLATE_FILE")]
    pub principal_policy_template_file: Option<PathBuf>,

    /// Lifetime of lease credentials, in seconds (STS DurationSeconds, 900–43200).
    #[arg(long, env = "DCE_CREDENTIALS_LIFETIME_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(i64).range(900..=43200))]
    pub credentials_lifetime_seconds: i64,

    /// Seconds between re-validations ("syncs") of each account.
    #[arg(long, env = "DCE_SYNC_INTERVAL_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(i64).range(10..))]
    pub sync_interval_seconds: i64,

    /// How accounts are cleaned between leases.
    #[arg(long, env = "DCE_RESET_MODE", value_enum, default_value = "job")]
    pub reset_mode: ResetModeArg,

    /// Image of the reset Job.
    #[arg(
        long,
        env = "DCE_RESET_IMAGE",
        default_value = "ghcr.io/ekristen/aws-nuke:v3.64.1"
    )]
    pub reset_image: String,

    /// Command of the reset Job (repeat the flag, or separate with commas in the variable). The
    /// account's generated aws-nuke configuration is mounted at /etc/aws-nuke/config.yaml.
    #[arg(
        long,
        env = "DCE_RESET_COMMAND",
        value_delimiter = ',',
        default_value = "aws-nuke,run,--config,/etc/aws-nuke/config.yaml,--no-prompt,--no-alias-check,--no-dry-run"
    )]
    pub reset_command: Vec<String>,

    /// File holding extra aws-nuke filters (YAML: resource type to a list of filters) added to
    /// every reset's configuration; unset adds none.
    #[arg(long, env = "DCE_RESET_NUKE_FILTERS_FILE")]
    pub reset_nuke_filters_file: Option<PathBuf>,

    /// An AWS-compatible endpoint (http or https URL) the reset Job's aws-nuke sends every
    /// request to, for a private or local AWS API; unset: AWS's public endpoints.
    #[arg(
        long,
        env = "DCE_RESET_AWS_ENDPOINT",
        requires = "reset_resource_types"
    )]
    pub reset_aws_endpoint: Option<url::Url>,

    /// The resource types resets delete (aws-nuke names, e.g. S3Bucket; repeat the flag, or
    /// separate with commas in the variable); unset: every type aws-nuke knows. Required with
    /// --reset-aws-endpoint (aws-nuke stops at a type it has no endpoint for).
    #[arg(long, env = "DCE_RESET_RESOURCE_TYPES", value_delimiter = ',')]
    pub reset_resource_types: Vec<String>,

    /// Run reset Jobs in the node's network namespace, for an AWS endpoint that listens on the
    /// node's loopback (a development cluster).
    #[arg(long, env = "DCE_RESET_HOST_NETWORK", default_value_t = false, action = clap::ArgAction::Set)]
    pub reset_host_network: bool,

    /// Seconds a reset Job may run before it counts as failed.
    #[arg(long, env = "DCE_RESET_DEADLINE_SECONDS", default_value_t = 3600)]
    pub reset_deadline_seconds: i64,

    /// Longest lease allowed, in seconds.
    #[arg(long, env = "DCE_MAX_LEASE_PERIOD_SECONDS", default_value_t = 604_800)]
    pub max_lease_period_seconds: i64,

    /// Lease period when a lease names none, in seconds.
    #[arg(
        long,
        env = "DCE_DEFAULT_LEASE_PERIOD_SECONDS",
        default_value_t = 604_800
    )]
    pub default_lease_period_seconds: i64,

    /// Largest lease budget allowed (and the default).
    #[arg(long, env = "DCE_MAX_LEASE_BUDGET", default_value_t = 1000.0)]
    pub max_lease_budget: f64,

    /// Allow a principal more than one active lease.
    #[arg(long, env = "DCE_ALLOW_MULTIPLE_LEASES_PER_PRINCIPAL", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_multiple_leases_per_principal: bool,

    /// Reconciles each controller runs at once. Reconciles wait on the API server and AWS, not
    /// the CPU; when every slot is busy, queued objects are served in no particular order, so
    /// too few slots under a burst lets some leases wait for seconds (see docs/benchmarks.md).
    #[arg(long, env = "DCE_RECONCILE_CONCURRENCY", default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub reconcile_concurrency: u16,

    /// Kubernetes API requests the operator has in flight at once (watches excepted: a watch
    /// holds a slot only until its response starts).
    #[arg(long, env = "DCE_API_REQUEST_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub api_request_concurrency: u16,

    /// Seconds an Inactive lease is kept as history before it is deleted.
    #[arg(long, env = "DCE_LEASE_HISTORY_SECONDS", default_value_t = 2_592_000)]
    pub lease_history_seconds: i64,

    /// Cost Explorer endpoint override (e.g. a local moto_server).
    #[arg(long, env = "DCE_COST_EXPLORER_ENDPOINT")]
    pub cost_explorer_endpoint: Option<String>,

    /// Seconds between readings of an Active lease's spend from Cost Explorer.
    #[arg(long, env = "DCE_USAGE_COLLECTION_INTERVAL_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(i64).range(10..))]
    pub usage_collection_interval_seconds: i64,

    /// Seconds a day's usage record is kept; an ended lease is kept at least this long after
    /// its last recorded day.
    #[arg(long, env = "DCE_USAGE_RETENTION_SECONDS", default_value_t = 2_592_000, value_parser = clap::value_parser!(i64).range(0..))]
    pub usage_retention_seconds: i64,

    /// Spend allowed to one principal per budget period, across all their leases.
    #[arg(long, env = "DCE_PRINCIPAL_BUDGET_AMOUNT", default_value_t = 1000.0)]
    pub principal_budget_amount: f64,

    /// The principal budget's period: weekly (from Sunday 00:00 UTC) or monthly.
    #[arg(
        long,
        env = "DCE_PRINCIPAL_BUDGET_PERIOD",
        value_enum,
        default_value = "weekly"
    )]
    pub principal_budget_period: BudgetPeriodArg,

    /// Percentages of a lease's budget announced (Event, webhook) once each when reached.
    #[arg(long, env = "DCE_BUDGET_NOTIFICATION_THRESHOLDS", value_delimiter = ',', default_value = "75,100", value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub budget_notification_thresholds: Vec<i32>,

    /// URL that budget notices are POSTed to as JSON (with the lease's notification emails).
    #[arg(long, env = "DCE_BUDGET_NOTIFICATION_WEBHOOK_URL", value_parser = parse_webhook_url)]
    pub budget_notification_webhook_url: Option<url::Url>,
}

/// Where the REST API listens, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiAddr(pub Option<SocketAddr>);

fn parse_api_addr(value: &str) -> Result<ApiAddr, String> {
    match value.trim() {
        "" | "off" => Ok(ApiAddr(None)),
        addr => addr
            .parse()
            .map(|addr| ApiAddr(Some(addr)))
            .map_err(|err| format!("{err} (use host:port, or \"off\")")),
    }
}

fn parse_oidc_issuer(value: &str) -> Result<url::Url, String> {
    crate::tls::secure_url(value, "OIDC issuer")
}

fn parse_base_path(value: &str) -> Result<String, String> {
    let path = value.trim().trim_end_matches('/');
    let valid_segment = |segment: &str| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if path.is_empty() {
        return Ok(String::new());
    }
    match path.strip_prefix('/') {
        Some(rest) if rest.split('/').all(valid_segment) => Ok(path.to_string()),
        _ => Err(format!(
            "{value:?} is not a base path: /segment[/segment…] of letters, digits and -._~"
        )),
    }
}

fn parse_role_arn(value: &str) -> Result<String, String> {
    let arn = value.trim();
    crate::aws::account_of_role_arn(arn)
        .map(|_| arn.to_string())
        .ok_or_else(|| {
            format!("{value:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        })
}

fn parse_region(value: &str) -> Result<String, String> {
    let region = value.trim();
    let valid = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(region.to_string())
    } else {
        Err(format!(
            "{value:?} is not an AWS region name (e.g. us-east-1)"
        ))
    }
}

fn parse_webhook_url(value: &str) -> Result<url::Url, String> {
    crate::tls::secure_url(value, "budget notification webhook")
}

impl Config {
    pub fn lease_policy(&self) -> LeasePolicy {
        LeasePolicy {
            max_lease_period: SignedDuration::from_secs(self.max_lease_period_seconds),
            default_lease_period: SignedDuration::from_secs(self.default_lease_period_seconds),
            max_budget: self.max_lease_budget,
            one_active_lease_per_principal: !self.allow_multiple_leases_per_principal,
            history_retention: SignedDuration::from_secs(self.lease_history_seconds),
            credentials_lifetime: SignedDuration::from_secs(self.credentials_lifetime_seconds),
            principal_budget: self.principal_budget_amount,
            principal_budget_period: match self.principal_budget_period {
                BudgetPeriodArg::Weekly => BudgetPeriod::Weekly,
                BudgetPeriodArg::Monthly => BudgetPeriod::Monthly,
            },
            usage_collection_interval: SignedDuration::from_secs(
                self.usage_collection_interval_seconds,
            ),
            usage_retention: SignedDuration::from_secs(self.usage_retention_seconds),
            budget_notice_thresholds: self.budget_notification_thresholds.clone(),
        }
    }

    /// The REST API's certificate and key, when it serves HTTPS.
    pub fn api_tls_files(&self) -> Option<crate::facade::server::TlsFiles> {
        Some(crate::facade::server::TlsFiles {
            cert: self.api_tls_cert_file.clone()?,
            key: self.api_tls_key_file.clone()?,
        })
    }

    /// What the sign-in page issues, and through which provider.
    pub fn sign_in(&self) -> anyhow::Result<crate::facade::signin::SignInSettings> {
        use crate::facade::signin::oidc::{Oidc, OidcSettings};
        let oidc = match (&self.oidc_issuer_url, &self.oidc_client_id) {
            (Some(issuer), Some(client_id)) => {
                let ca = match &self.oidc_ca_file {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        anyhow::anyhow!("cannot read the OIDC CA file {}: {e}", path.display())
                    })?),
                    None => None,
                };
                let settings = OidcSettings {
                    issuer: issuer.clone(),
                    client_id: client_id.clone(),
                    client_secret: self.oidc_client_secret.clone().filter(|s| !s.is_empty()),
                    scopes: self.oidc_scopes.clone(),
                    provider_name: self.oidc_provider_name.clone(),
                };
                Some(std::sync::Arc::new(Oidc::new(settings, ca.as_deref())?))
            }
            _ => None,
        };
        Ok(crate::facade::signin::SignInSettings {
            caller_role_arn: self.api_caller_role_arn.clone(),
            session_seconds: self.api_session_seconds,
            oidc,
        })
    }

    pub fn reset_mode(&self) -> ResetMode {
        match self.reset_mode {
            ResetModeArg::Job => ResetMode::Job,
            ResetModeArg::Disabled => ResetMode::Disabled,
        }
    }

    pub fn sync_interval(&self) -> SignedDuration {
        SignedDuration::from_secs(self.sync_interval_seconds)
    }

    /// The principal policy template: the file's, else the built-in one. Checked by rendering
    /// it, so a broken template stops the operator at start-up rather than every account.
    pub fn principal_policy_template(&self) -> anyhow::Result<String> {
        let template = match &self.principal_policy_template_file {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the principal policy template {}: {e}",
                    path.display()
                )
            })?,
            None => DEFAULT_POLICY_TEMPLATE.to_string(),
        };
        principal::render_policy(
            &template,
            &PolicyInputs {
                account: "123456789012",
                principal_role_arn: "arn:aws:iam::123456789012:role/check",
                principal_policy_arn: "arn:aws:iam::123456789012:policy/check",
                admin_role_arn: Some("arn:aws:iam::123456789012:role/admin"),
                allowed_regions: &self.allowed_regions,
            },
        )
        .map_err(anyhow::Error::msg)?;
        Ok(template)
    }

    /// The extra aws-nuke filters from `--reset-nuke-filters-file`, if any.
    pub fn nuke_extra_filters(&self) -> anyhow::Result<ExtraFilters> {
        let Some(path) = &self.reset_nuke_filters_file else {
            return Ok(ExtraFilters::new());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the extra aws-nuke filters {}: {e}",
                path.display()
            )
        })?;
        nuke::parse_extra_filters(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_dce_limits() {
        let config = Config::parse_from(["dce-operator"]);
        assert_eq!(config.lease_policy(), LeasePolicy::default());
        assert_eq!(config.reset_mode(), ResetMode::Job);
        assert!(config.leader_election);
    }

    #[test]
    fn flags_override() {
        let config = Config::parse_from([
            "dce-operator",
            "--reset-mode=disabled",
            "--leader-election=false",
            "--reset-command=nuke,--all",
            "--max-lease-budget=50",
            "--principal-budget-period=monthly",
            "--budget-notification-thresholds=50,90,100",
        ]);
        assert_eq!(
            config.lease_policy().principal_budget_period,
            BudgetPeriod::Monthly
        );
        assert_eq!(
            config.lease_policy().budget_notice_thresholds,
            vec![50, 90, 100]
        );
        assert_eq!(config.reset_mode(), ResetMode::Disabled);
        assert!(!config.leader_election);
        assert_eq!(config.reset_command, vec!["nuke", "--all"]);
        assert_eq!(config.lease_policy().max_budget, 50.0);
    }

    #[test]
    fn api_can_be_turned_off() {
        let default = Config::parse_from(["dce-operator"]);
        assert_eq!(
            default.api_addr,
            ApiAddr(Some("0.0.0.0:8000".parse().unwrap()))
        );
        for off in ["--api-addr=off", "--api-addr="] {
            assert_eq!(
                Config::parse_from(["dce-operator", off]).api_addr,
                ApiAddr(None)
            );
        }
        assert!(Config::try_parse_from(["dce-operator", "--api-addr=nowhere"]).is_err());
    }

    /// The README's configuration table lists every flag with its variable and default, and
    /// nothing else.
    #[test]
    fn readme_configuration_table_matches_the_flags() {
        use clap::CommandFactory;
        let readme = include_str!("../README.md");
        let cell = |text: &str| text.trim().trim_matches('`').to_string();
        let documented: std::collections::BTreeMap<String, (String, String)> = readme
            .lines()
            .filter(|line| line.starts_with("| `--"))
            .map(|line| {
                let cells: Vec<&str> = line.split(" | ").collect();
                let default = cells[2].trim();
                // A default in backticks is a value; anything else describes its absence.
                let default = if default.starts_with('`') {
                    cell(default.split(" (").next().unwrap_or_default())
                } else {
                    String::new()
                };
                (
                    cell(cells[0].trim_start_matches('|')),
                    (cell(cells[1]), default),
                )
            })
            .collect();
        let command = Config::command();
        let defined: std::collections::BTreeMap<String, (String, String)> = command
            .get_arguments()
            .filter_map(|arg| {
                let long = arg.get_long()?;
                let env = arg.get_env()?.to_string_lossy().into_owned();
                let default = arg
                    .get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(",");
                Some((format!("--{long}"), (env, default)))
            })
            .collect();
        // `--identity` defaults to the host name at run time, which the table shows as such.
        let mut documented = documented;
        if let Some((_, default)) = documented.get_mut("--identity") {
            assert_eq!(default, "$HOSTNAME");
            default.clear();
        }
        assert_eq!(documented, defined);
    }

    #[test]
    fn credentials_lifetime_is_bounded_by_sts_limits() {
        assert!(
            Config::try_parse_from(["dce-operator", "--credentials-lifetime-seconds=60"]).is_err()
        );
    }

    #[test]
    fn a_custom_reset_endpoint_needs_the_resource_types() {
        let alone =
            Config::try_parse_from(["dce-operator", "--reset-aws-endpoint=http://127.0.0.1:5000"]);
        let error = alone.expect_err("refused").to_string();
        assert!(error.contains("--reset-resource-types"), "{error}");
        let config = Config::try_parse_from([
            "dce-operator",
            "--reset-aws-endpoint=http://127.0.0.1:5000",
            "--reset-resource-types=S3Bucket,IAMRole",
        ])
        .unwrap();
        assert_eq!(config.reset_resource_types, ["S3Bucket", "IAMRole"]);
    }
}
