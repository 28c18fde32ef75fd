//! The API server's trust in an OpenID Connect issuer: its structured authentication
//! configuration, and the wait until it is in force.

use std::time::Duration;

use anyhow::bail;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};

use super::START_TIMEOUT;

/// The API server's JWT authenticator for one issuer (structured authentication
/// configuration): tokens for `audiences` become users named by `username_claim` and in the
/// groups of `groups_claim`, each with its prefix.
#[derive(Debug, Clone)]
pub struct OidcIssuerConfig {
    pub issuer_url: String,
    /// The CA the issuer's serving certificate chains to (PEM).
    pub ca_pem: String,
    pub audiences: Vec<String>,
    pub username_claim: String,
    pub username_prefix: String,
    pub groups_claim: String,
    pub groups_prefix: String,
}

impl OidcIssuerConfig {
    /// The `--authentication-config` file (`apiserver.config.k8s.io/v1`, the stable version).
    pub(crate) fn authentication_config(&self) -> anyhow::Result<String> {
        let config = serde_json::json!({
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "AuthenticationConfiguration",
            "jwt": [{
                "issuer": {
                    "url": self.issuer_url,
                    "certificateAuthority": self.ca_pem,
                    "audiences": self.audiences,
                },
                "claimMappings": {
                    "username": {"claim": self.username_claim, "prefix": self.username_prefix},
                    "groups": {"claim": self.groups_claim, "prefix": self.groups_prefix},
                },
            }],
        });
        Ok(serde_yaml::to_string(&config)?)
    }
}

/// Waits until the API server's authenticator for `issuer` has read the issuer's discovery
/// document, which it does in the background (retrying every 10 s) while `/readyz` already
/// passes: until then it rejects the issuer's tokens as "not initialized". Probed with an
/// unsigned token naming the issuer.
pub(crate) async fn wait_for_authenticator(
    client: &kube::Client,
    issuer: &str,
) -> anyhow::Result<()> {
    let part = |json: serde_json::Value| URL_SAFE_NO_PAD.encode(json.to_string());
    let probe = format!(
        "{}.{}.{}",
        part(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
        part(
            serde_json::json!({"iss": issuer, "aud": "probe", "sub": "probe", "exp": 4_102_444_800_u64})
        ),
        URL_SAFE_NO_PAD.encode("unsigned"),
    );
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(probe),
            ..Default::default()
        },
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        let reviewed = reviews.create(&PostParams::default(), &review).await?;
        let error = reviewed.status.and_then(|s| s.error).unwrap_or_default();
        if !error.contains("not initialized") {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the API server's authenticator for {issuer} not ready within {START_TIMEOUT:?}: {error}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authentication_configuration_maps_the_claims() {
        let config = OidcIssuerConfig {
            issuer_url: "https://127.0.0.1:8443".into(),
            ca_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            audiences: vec!["dce".into()],
            username_claim: "email".into(),
            username_prefix: String::new(),
            groups_claim: "groups".into(),
            groups_prefix: "oidc:".into(),
        };
        let yaml: serde_json::Value =
            serde_yaml::from_str(&config.authentication_config().unwrap()).unwrap();
        assert_eq!(yaml["apiVersion"], "apiserver.config.k8s.io/v1");
        let jwt = &yaml["jwt"][0];
        assert_eq!(jwt["issuer"]["url"], "https://127.0.0.1:8443");
        assert_eq!(jwt["issuer"]["certificateAuthority"], config.ca_pem);
        assert_eq!(jwt["issuer"]["audiences"], serde_json::json!(["dce"]));
        let mappings = &jwt["claimMappings"];
        assert_eq!(
            mappings["username"],
            serde_json::json!({"claim": "email", "prefix": ""})
        );
        assert_eq!(
            mappings["groups"],
            serde_json::json!({"claim": "groups", "prefix": "oidc:"})
        );
    }
}
