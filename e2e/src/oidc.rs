//! The OpenID Connect provider of the tests (`e2e/kube/oidc`, built by `make kube-tools` into
//! `e2e/kube/bin/oidc-provider`), and the API server's trust in it
//! ([`crate::control_plane::ControlPlaneConfig::oidc`]).
//!
//! The provider serves HTTPS on loopback with a certificate of the test CA; its issuer is
//! `https://127.0.0.1:<port>`. People sign in through a plain HTML form (element ids
//! `username`, `password`, `submit`, and `error` after a failed attempt) in the
//! authorization-code flow with PKCE (S256). Its id_tokens, for the audience of the client ID,
//! name a user by `sub` and `preferred_username` (the username), `email` (verified) and
//! `groups`. [`OidcProvider::id_token_for`] gets such a token without a browser, from an
//! endpoint of the test provider alone (its library has no password grant).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::Rng as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::control_plane::kube_binary;
use crate::https::HttpsClient;
use crate::process::ServerProcess;
use crate::target::ScratchDir;
use crate::tls::TestCa;

mod issuer;
pub use issuer::OidcIssuerConfig;
pub(crate) use issuer::wait_for_authenticator;

/// How long the provider, or the API server's authenticator for it, may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A person who can sign in.
#[derive(Debug, Clone)]
pub struct OidcUser {
    pub username: String,
    pub password: String,
    pub email: String,
    pub groups: Vec<String>,
}

/// The provider's one client: public (PKCE, no secret) or confidential (`client_secret_basic`
/// or `client_secret_post`).
#[derive(Debug, Clone)]
pub struct OidcClient {
    pub id: String,
    pub secret: Option<String>,
    pub redirect_uris: Vec<String>,
}

/// A PKCE pair: the client keeps the verifier and sends the S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        let verifier = URL_SAFE_NO_PAD.encode(rand::rng().random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// The token endpoint's answer to a code.
#[derive(Debug, Deserialize)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
}

/// The discovery document's endpoints used here.
#[derive(Deserialize)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
}

/// A running provider. Dropping it stops it and removes its files.
pub struct OidcProvider {
    process: ServerProcess,
    issuer: String,
    ca_pem: String,
    client: OidcClient,
    _dir: ScratchDir,
}

impl OidcProvider {
    /// Starts the provider with a serving certificate from `ca` for `users` and `client`, and
    /// waits until it serves its discovery document.
    pub async fn start(
        ca: &TestCa,
        users: &[OidcUser],
        client: &OidcClient,
    ) -> anyhow::Result<Self> {
        let binary = kube_binary("oidc-provider")?;
        let dir = ScratchDir::new()?;
        let (cert, key) = ca
            .issue(&["127.0.0.1", "localhost"])?
            .write(dir.path(), "provider")?;
        let config = serde_json::json!({
            "users": users.iter().map(|u| serde_json::json!({
                "username": u.username, "password": u.password, "email": u.email, "groups": u.groups,
            })).collect::<Vec<_>>(),
            "client": {
                "id": client.id,
                "secret": client.secret.clone().unwrap_or_default(),
                "redirect_uris": client.redirect_uris,
            },
        });
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, config.to_string())?;
        let issuer_file = dir.path().join("issuer");
        let mut command = Command::new(binary);
        command
            .arg(arg("--config", &config_path))
            .arg(arg("--tls-cert", &cert))
            .arg(arg("--tls-key", &key))
            .arg(arg("--issuer-file", &issuer_file));
        let mut process =
            ServerProcess::spawn("oidc-provider", command, &dir.path().join("provider.log"))?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let issuer = loop {
            process.check_running()?;
            if let Ok(issuer) = std::fs::read_to_string(&issuer_file) {
                break issuer;
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "oidc-provider not listening within {START_TIMEOUT:?}:\n{}",
                    process.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let provider = OidcProvider {
            process,
            issuer,
            ca_pem: ca.pem(),
            client: client.clone(),
            _dir: dir,
        };
        provider.discovery().await?;
        Ok(provider)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The CA of the provider's serving certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The API server's trust in this provider: for the client's tokens, the user named by the
    /// `email` claim and in the groups of `groups`, without prefixes.
    pub fn issuer_config(&self) -> OidcIssuerConfig {
        OidcIssuerConfig {
            issuer_url: self.issuer.clone(),
            ca_pem: self.ca_pem.clone(),
            audiences: vec![self.client.id.clone()],
            username_claim: "email".into(),
            username_prefix: String::new(),
            groups_claim: "groups".into(),
            groups_prefix: String::new(),
        }
    }

    /// Where a browser starts signing in for the client, as the discovery document names it.
    pub async fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        pkce: &Pkce,
    ) -> anyhow::Result<String> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client.id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid profile email")
            .append_pair("state", state)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        Ok(format!(
            "{}?{query}",
            self.discovery().await?.authorization_endpoint
        ))
    }

    /// Exchanges a code the redirect brought for tokens, as the client (with its secret by
    /// HTTP Basic when it has one).
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce: &Pkce,
    ) -> anyhow::Result<Tokens> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", &pkce.verifier);
        // RFC 6749 §2.3.1: each part form-encoded, then together in Base64.
        let encode =
            |part: &str| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
        let basic = match &self.client.secret {
            Some(secret) => format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", encode(&self.client.id), encode(secret)))
            ),
            None => {
                form.append_pair("client_id", &self.client.id);
                String::new()
            }
        };
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if !basic.is_empty() {
            headers.push(("Authorization", basic.as_str()));
        }
        let token_endpoint = self.discovery().await?.token_endpoint;
        let body = self
            .fetch("POST", &token_endpoint, &headers, form.finish().as_bytes())
            .await?;
        serde_json::from_slice(&body).context("token response")
    }

    /// An id_token for `user` (who must be one of the provider's, with their password), as the
    /// code flow would give the client, without a browser.
    pub async fn id_token_for(&self, user: &OidcUser) -> anyhow::Result<String> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("username", &user.username)
            .append_pair("password", &user.password)
            .finish();
        let headers = [("Content-Type", "application/x-www-form-urlencoded")];
        let url = format!("{}/test/id-token", self.issuer);
        let body = self.fetch("POST", &url, &headers, form.as_bytes()).await?;
        #[derive(Deserialize)]
        struct Answer {
            id_token: String,
        }
        Ok(serde_json::from_slice::<Answer>(&body)?.id_token)
    }

    async fn discovery(&self) -> anyhow::Result<Discovery> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        Ok(serde_json::from_slice(
            &self.fetch("GET", &url, &[], b"").await?,
        )?)
    }

    /// The body of a successful exchange with the provider; an error with its log otherwise.
    async fn fetch(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        let parsed = url::Url::parse(url).with_context(|| format!("URL {url}"))?;
        let addr = parsed
            .socket_addrs(|| None)?
            .into_iter()
            .next()
            .with_context(|| format!("URL {url} names no address"))?;
        let target = &parsed[url::Position::BeforePath..url::Position::AfterQuery];
        let client = HttpsClient::trusting(&self.ca_pem, addr)?;
        let response = client.request(method, target, headers, body).await?;
        let (status, body) = (response.status, response.body.into_bytes());
        if status != 200 {
            bail!(
                "{method} {url}: HTTP {status}: {}\noidc-provider log:\n{}",
                String::from_utf8_lossy(&body),
                self.process.log_tail(20)
            );
        }
        Ok(body)
    }
}

/// The claims of a JWT, read without checking its signature (the API server checks it).
pub fn unverified_claims(token: &str) -> anyhow::Result<serde_json::Value> {
    let payload = token.split('.').nth(1).context("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

fn arg(name: &str, path: &Path) -> String {
    format!("{name}={}", path.display())
}
