//! Thin, endpoint-configurable AWS adapter: STS (AssumeRole, GetCallerIdentity), IAM (the
//! principal role and policy), Cost Explorer and console federation sign-in. Every failure is an [`AwsError`]; no secret ever reaches a log line or
//! an error message.

mod arn;
mod cost;
mod credentials;
mod error;
mod federation;
mod iam;

use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_sts::client::customize::CustomizableOperation;
use aws_sdk_sts::config::SharedHttpClient;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls;
use jiff::Timestamp;

pub use arn::{account_of_role_arn, principal_role_arn, role_session_name, session_tag_value};
pub use cost::DayCost;
pub use credentials::{CallerIdentity, StaticKeys, TemporaryCredentials};
pub use error::AwsError;
pub use iam::{IamPolicy, IamPolicyVersion, IamRole};

/// AWS console federation endpoint (getSigninToken / login).
pub const DEFAULT_FEDERATION_ENDPOINT: &str = "https://signin.aws.amazon.com/federation";
/// Where a console sign-in lands.
pub const DEFAULT_CONSOLE_URL: &str = "https://console.aws.amazon.com/";
/// Where IAM, a global service, signs and is served from.
const IAM_REGION: &str = "us-east-1";
/// Where Cost Explorer is served from.
const COST_EXPLORER_REGION: &str = "us-east-1";
/// Region used when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";

/// A single attempt must not hang a reconcile; the SDK retries throttling and transient
/// failures within the overall operation budget.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

const ASSUME_ROLE: &str = "sts:AssumeRole";
const GET_CALLER_IDENTITY: &str = "sts:GetCallerIdentity";

/// Where and how to reach AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// STS endpoint override (e.g. a local moto server); `None` uses the regional AWS endpoint.
    pub sts_endpoint: Option<String>,
    /// Cost Explorer endpoint override; `None` uses AWS's.
    pub cost_explorer_endpoint: Option<String>,
    /// IAM endpoint override; `None` uses AWS's.
    pub iam_endpoint: Option<String>,
    pub region: String,
    /// Console federation endpoint; must be https (plain http is accepted for loopback only).
    pub federation_endpoint: String,
    /// Console page a sign-in URL lands on.
    pub console_url: String,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            sts_endpoint: None,
            cost_explorer_endpoint: None,
            iam_endpoint: None,
            region: DEFAULT_REGION.to_string(),
            federation_endpoint: DEFAULT_FEDERATION_ENDPOINT.to_string(),
            console_url: DEFAULT_CONSOLE_URL.to_string(),
        }
    }
}

/// The AWS adapter. Cheap to clone; all clones share the SDK clients and one connection pool.
#[derive(Clone)]
pub struct Aws {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AwsSettings,
    /// STS client with the operator's own identity; other identities are per-call overrides.
    sts: aws_sdk_sts::Client,
    /// Cost Explorer client; every call is signed with an account's own credentials.
    cost_explorer: aws_sdk_costexplorer::Client,
    /// IAM client; every call is signed with an account's admin access.
    iam: aws_sdk_iam::Client,
    federation: federation::FederationClient,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// Whose credentials sign a request.
#[derive(Clone, Copy)]
pub enum Identity<'a> {
    Operator,
    Static(&'a StaticKeys),
    Temporary(&'a TemporaryCredentials),
}

impl Identity<'_> {
    pub fn from_static(via: Option<&StaticKeys>) -> Identity<'_> {
        via.map_or(Identity::Operator, Identity::Static)
    }

    fn credentials(self) -> Option<Credentials> {
        match self {
            Identity::Operator => None,
            Identity::Static(keys) => Some(keys.to_sdk()),
            Identity::Temporary(creds) => Some(creds.to_sdk()),
        }
    }
}

impl Aws {
    /// An adapter whose own identity comes from the standard AWS credential chain
    /// (environment, profile, web identity / IRSA, container and instance metadata).
    pub async fn new(settings: AwsSettings) -> Aws {
        let http = https_client();
        let sdk_config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .http_client(http.clone())
            .load()
            .await;
        Self::from_configs(
            settings,
            http,
            aws_sdk_sts::config::Builder::from(&sdk_config),
            aws_sdk_costexplorer::config::Builder::from(&sdk_config),
            aws_sdk_iam::config::Builder::from(&sdk_config),
        )
    }

    /// An adapter whose own identity is the given key pair, with nothing read from the
    /// environment.
    pub fn with_operator_keys(settings: AwsSettings, keys: &StaticKeys) -> Aws {
        let sts = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(keys.to_sdk());
        let cost_explorer = aws_sdk_costexplorer::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(keys.to_sdk());
        let iam = aws_sdk_iam::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(keys.to_sdk());
        Self::from_configs(settings, https_client(), sts, cost_explorer, iam)
    }

    fn from_configs(
        settings: AwsSettings,
        http: SharedHttpClient,
        mut sts: aws_sdk_sts::config::Builder,
        mut cost_explorer: aws_sdk_costexplorer::config::Builder,
        mut iam: aws_sdk_iam::config::Builder,
    ) -> Aws {
        // Names the operator in AWS's request logs and CloudTrail (`app/dce-operator`).
        let app = aws_sdk_sts::config::AppName::new("dce-operator").expect("a valid app name");
        sts = sts.http_client(http.clone()).app_name(app.clone());
        cost_explorer = cost_explorer
            .http_client(http.clone())
            .app_name(app.clone());
        iam = iam
            .http_client(http)
            .region(Region::new(IAM_REGION))
            .app_name(app);
        if let Some(endpoint) = &settings.iam_endpoint {
            iam = iam.endpoint_url(endpoint);
        }
        if let Some(endpoint) = &settings.sts_endpoint {
            sts = sts.endpoint_url(endpoint);
        }
        // Cost Explorer has a single endpoint in the commercial partition, whatever the region
        // the rest of the operator uses.
        cost_explorer = cost_explorer.region(Region::new(COST_EXPLORER_REGION));
        if let Some(endpoint) = &settings.cost_explorer_endpoint {
            cost_explorer = cost_explorer.endpoint_url(endpoint);
        }
        let timeouts = TimeoutConfig::builder()
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        Aws {
            inner: Arc::new(Inner {
                settings,
                sts: aws_sdk_sts::Client::from_conf(sts.timeout_config(timeouts.clone()).build()),
                cost_explorer: aws_sdk_costexplorer::Client::from_conf(
                    cost_explorer.timeout_config(timeouts.clone()).build(),
                ),
                iam: aws_sdk_iam::Client::from_conf(iam.timeout_config(timeouts).build()),
                federation: federation::FederationClient::default(),
            }),
        }
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.inner.settings
    }

    /// Assumes `role_arn`, signed by the operator's identity (`via: None`) or a static key pair.
    pub async fn assume_role(
        &self,
        via: Option<&StaticKeys>,
        role_arn: &str,
        session_name: &str,
        duration_seconds: i32,
    ) -> Result<TemporaryCredentials, AwsError> {
        self.assume_role_tagged(via, role_arn, session_name, duration_seconds, &[])
            .await
    }

    /// [`Self::assume_role`] with session tags (the role's trust policy must allow
    /// `sts:TagSession`).
    pub async fn assume_role_tagged(
        &self,
        via: Option<&StaticKeys>,
        role_arn: &str,
        session_name: &str,
        duration_seconds: i32,
        tags: &[(&str, &str)],
    ) -> Result<TemporaryCredentials, AwsError> {
        // Checked here so a typo reads as such, whatever the endpoint does with it.
        if account_of_role_arn(role_arn).is_none() {
            return Err(AwsError::InvalidRequest {
                operation: ASSUME_ROLE,
                detail: format!(
                    "{role_arn:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
                ),
            });
        }
        let request = self
            .inner
            .sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .duration_seconds(duration_seconds)
            .set_tags(session_tags(tags)?)
            .customize();
        let output = signed_as(request, Identity::from_static(via))
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(ASSUME_ROLE, err))?;
        let invalid = |detail: &str| AwsError::InvalidResponse {
            operation: ASSUME_ROLE,
            detail: detail.to_string(),
        };
        let credentials = output
            .credentials()
            .ok_or_else(|| invalid("no credentials in the response"))?;
        let expiration = credentials.expiration();
        let expiration = Timestamp::new(expiration.secs(), expiration.subsec_nanos() as i32)
            .map_err(|_| invalid("credential expiration out of range"))?;
        Ok(TemporaryCredentials {
            access_key_id: credentials.access_key_id().to_string(),
            secret_access_key: credentials.secret_access_key().to_string(),
            session_token: credentials.session_token().to_string(),
            expiration,
        })
    }

    /// Who the operator's identity (`via: None`) or a static key pair is.
    pub async fn caller_identity(
        &self,
        via: Option<&StaticKeys>,
    ) -> Result<CallerIdentity, AwsError> {
        self.get_caller_identity(Identity::from_static(via)).await
    }

    /// Who temporary credentials belong to; proves they work.
    pub async fn caller_identity_of(
        &self,
        creds: &TemporaryCredentials,
    ) -> Result<CallerIdentity, AwsError> {
        self.get_caller_identity(Identity::Temporary(creds)).await
    }

    async fn get_caller_identity(
        &self,
        identity: Identity<'_>,
    ) -> Result<CallerIdentity, AwsError> {
        let request = self.inner.sts.get_caller_identity().customize();
        let output = signed_as(request, identity)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(GET_CALLER_IDENTITY, err))?;
        let field = |value: Option<&str>, name: &str| {
            value
                .map(str::to_string)
                .ok_or_else(|| AwsError::InvalidResponse {
                    operation: GET_CALLER_IDENTITY,
                    detail: format!("no {name} in the response"),
                })
        };
        Ok(CallerIdentity {
            account: field(output.account(), "Account")?,
            arn: field(output.arn(), "Arn")?,
            user_id: field(output.user_id(), "UserId")?,
        })
    }
}

/// STS session tags, `None` for none.
fn session_tags(tags: &[(&str, &str)]) -> Result<Option<Vec<aws_sdk_sts::types::Tag>>, AwsError> {
    if tags.is_empty() {
        return Ok(None);
    }
    tags.iter()
        .map(|(key, value)| {
            aws_sdk_sts::types::Tag::builder()
                .key(*key)
                .value(*value)
                .build()
                .map_err(|err| AwsError::InvalidRequest {
                    operation: ASSUME_ROLE,
                    detail: format!("session tag {key:?}: {err}"),
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The one HTTPS client, and so one connection pool, of every AWS call, on kube's TLS stack
/// (ring), so only one crypto library is compiled in.
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Signs one operation with `identity`. An override (rather than a client per key pair) keeps
/// one connection pool; the SDK gives overridden credentials their own short-lived cache.
fn signed_as<T, E, B>(
    operation: CustomizableOperation<T, E, B>,
    identity: Identity<'_>,
) -> CustomizableOperation<T, E, B> {
    match identity.credentials() {
        Some(credentials) => operation
            .config_override(aws_sdk_sts::Config::builder().credentials_provider(credentials)),
        None => operation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_names_the_operator() {
        let keys = StaticKeys {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
        };
        let aws = Aws::with_operator_keys(AwsSettings::default(), &keys);
        let names = [
            aws.inner.sts.config().app_name(),
            aws.inner.cost_explorer.config().app_name(),
            aws.inner.iam.config().app_name(),
        ];
        for name in names {
            assert_eq!(
                name.map(ToString::to_string).as_deref(),
                Some("dce-operator")
            );
        }
    }
}
