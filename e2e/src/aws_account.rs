//! Resources in one account of the local AWS endpoint, made and listed with the AWS SDK for
//! Python from the test venv (`e2e/aws/account_resources.py`): what a lease holder leaves
//! behind, and what a reset left.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, bail};

use crate::moto::{venv_dir, workspace_root};

/// Resource type (aws-nuke's names, e.g. `S3Bucket`) to the names of those resources.
pub type Inventory = BTreeMap<String, BTreeSet<String>>;

/// One account, reached with a key pair (a lease's credentials) or by assuming a role in it.
pub struct AwsAccount {
    endpoint: String,
    region: String,
    /// `AWS_*` variables: a key pair, with its session token if any.
    keys: BTreeMap<String, String>,
    assume: Option<String>,
}

impl AwsAccount {
    /// The account `keys` belong to (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN` as a lease's Secret holds them; other entries are ignored).
    pub fn with_keys(endpoint: &str, region: &str, keys: &BTreeMap<String, String>) -> Self {
        let keys = keys
            .iter()
            .filter(|(name, _)| {
                [
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_SESSION_TOKEN",
                ]
                .contains(&name.as_str())
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Self {
            endpoint: endpoint.to_string(),
            region: region.to_string(),
            keys,
            assume: None,
        }
    }

    /// The account of `role_arn`, reached by assuming it (the local endpoint accepts any caller).
    pub fn assuming(endpoint: &str, region: &str, role_arn: &str) -> Self {
        let keys = BTreeMap::from([
            ("AWS_ACCESS_KEY_ID".to_string(), "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "test".to_string()),
        ]);
        Self {
            endpoint: endpoint.to_string(),
            region: region.to_string(),
            keys,
            assume: Some(role_arn.to_string()),
        }
    }

    /// Makes `count` resources named after `prefix` (buckets with objects, IAM users with keys,
    /// roles, policies, EC2 instances, Lambda functions) and returns them.
    pub async fn populate(&self, count: usize, prefix: &str) -> anyhow::Result<Inventory> {
        self.run(&["populate", &count.to_string(), prefix]).await
    }

    /// What the account holds, of those kinds (plus the policies attached to its roles).
    pub async fn inventory(&self) -> anyhow::Result<Inventory> {
        self.run(&["inventory"]).await
    }

    /// Creates the role `name` (trusting Lambda; enough to exist and be kept or deleted).
    pub async fn create_role(&self, name: &str) -> anyhow::Result<()> {
        self.run(&["role", name]).await.map(|_| ())
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<Inventory> {
        let script = workspace_root().join("e2e/aws/account_resources.py");
        let mut command = tokio::process::Command::new(venv_dir().join("bin/python"));
        command.arg(&script);
        if let Some(role) = &self.assume {
            command.args(["--assume", role]);
        }
        // Only this account's settings: none of the caller's AWS configuration leaks in.
        for (name, _) in
            std::env::vars_os().filter(|(n, _)| n.to_string_lossy().starts_with("AWS_"))
        {
            command.env_remove(name);
        }
        let output = command
            .args(args)
            .envs(&self.keys)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", &self.region)
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running {}", script.display()))?;
        if !output.status.success() {
            bail!(
                "account_resources.py {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(serde_json::from_slice(&output.stdout)?)
    }
}
