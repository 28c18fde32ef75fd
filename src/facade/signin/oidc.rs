//! Sign-in through the cluster's OpenID Connect provider: the authorization-code flow with
//! PKCE (RFC 7636), state and nonce. The ID token it ends with goes to the API server's
//! TokenReview, as kubectl's would, so the user and groups are exactly the ones the cluster's
//! own OIDC authenticator maps from it (one person, one Kubernetes user, everywhere). Checked
//! here is what TokenReview cannot know: that the token answers this sign-in (nonce) and was
//! issued to this client.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::cookies::random_token;

/// Longest wait for the provider's discovery document or token endpoint.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How the operator signs users in through the provider.
pub struct OidcSettings {
    /// The issuer, as the API server's authentication configuration names it.
    pub issuer: Url,
    pub client_id: String,
    /// For a confidential client (sent with HTTP Basic); PKCE alone for a public one.
    pub client_secret: Option<String>,
    /// Scopes asked for (`openid` is always asked).
    pub scopes: Vec<String>,
    /// Shown on the sign-in button.
    pub provider_name: String,
}

/// A configured provider; its endpoints are discovered on first use.
pub struct Oidc {
    settings: OidcSettings,
    http: HttpsClient,
    endpoints: tokio::sync::OnceCell<Endpoints>,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.settings.issuer.as_str())
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Endpoints {
    issuer: String,
    authorization_endpoint: Url,
    token_endpoint: Url,
}

/// Why a sign-in through the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the identity provider answered unexpectedly: {0}")]
    Invalid(String),
    #[error("the identity provider refused: {0}")]
    Refused(String),
    #[error("the ID token does not answer this sign-in: {0}")]
    Mismatch(&'static str),
}

/// One sign-in in progress: kept in the browser's flow cookie between the redirect to the
/// provider and its callback. The verifier proves the code is redeemed by who asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub state: String,
    pub nonce: String,
    verifier: String,
}

impl Flow {
    pub fn begin() -> Flow {
        Flow {
            state: random_token(),
            nonce: random_token(),
            verifier: format!("{}{}", random_token(), random_token()),
        }
    }

    pub fn cookie_value(&self) -> String {
        format!("{}.{}.{}", self.state, self.nonce, self.verifier)
    }

    pub fn parse(value: &str) -> Option<Flow> {
        let mut parts = value.split('.');
        let flow = Flow {
            state: parts.next()?.to_string(),
            nonce: parts.next()?.to_string(),
            verifier: parts.next()?.to_string(),
        };
        let complete = parts.next().is_none()
            && [&flow.state, &flow.nonce, &flow.verifier]
                .iter()
                .all(|part| !part.is_empty());
        complete.then_some(flow)
    }

    /// The S256 code challenge of the verifier.
    fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }
}

impl Oidc {
    /// `ca_pem`: extra roots to trust for the provider (an in-cluster provider's CA).
    pub fn new(settings: OidcSettings, ca_pem: Option<&[u8]>) -> anyhow::Result<Oidc> {
        let connector = crate::tls::https_connector_trusting(ca_pem)?;
        Ok(Oidc {
            settings,
            http: Client::builder(TokioExecutor::new()).build(connector),
            endpoints: tokio::sync::OnceCell::new(),
        })
    }

    pub fn provider_name(&self) -> &str {
        &self.settings.provider_name
    }

    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    /// Where to send the browser to sign in.
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        flow: &Flow,
    ) -> Result<Url, OidcError> {
        let endpoints = self.endpoints().await?;
        let mut scopes = vec!["openid".to_string()];
        scopes.extend(
            self.settings
                .scopes
                .iter()
                .filter(|s| *s != "openid")
                .cloned(),
        );
        let mut url = endpoints.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &flow.state)
            .append_pair("nonce", &flow.nonce)
            .append_pair("code_challenge", &flow.challenge())
            .append_pair("code_challenge_method", "S256");
        Ok(url)
    }

    /// Redeems the authorization code for the ID token.
    pub async fn redeem(
        &self,
        code: &str,
        redirect_uri: &str,
        flow: &Flow,
    ) -> Result<String, OidcError> {
        let endpoints = self.endpoints().await?;
        // Built apart: the serializer is not Send and must not live across an await.
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", &flow.verifier)
            .append_pair("client_id", &self.settings.client_id)
            .finish();
        let mut request = hyper::Request::post(endpoints.token_endpoint.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        if let Some(secret) = &self.settings.client_secret {
            // RFC 6749 §2.3.1: both parts form-encoded before Basic.
            let encode = |text: &str| {
                url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
            };
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                encode(&self.settings.client_id),
                encode(secret)
            ));
            request = request.header("authorization", format!("Basic {basic}"));
        }
        let request = request
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| OidcError::Invalid(e.to_string()))?;
        let (status, body) = self.send(request).await?;
        if !status.is_success() {
            let error = body["error"].as_str().unwrap_or("no error code");
            return Err(OidcError::Refused(format!(
                "token endpoint answered {status}: {error}"
            )));
        }
        body["id_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| OidcError::Invalid("no id_token in the token response".into()))
    }

    async fn endpoints(&self) -> Result<&Endpoints, OidcError> {
        self.endpoints
            .get_or_try_init(|| async {
                let issuer = self.settings.issuer.as_str().trim_end_matches('/');
                let url = format!("{issuer}/.well-known/openid-configuration");
                let request = hyper::Request::get(url)
                    .header("accept", "application/json")
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| OidcError::Invalid(e.to_string()))?;
                let (status, body) = self.send(request).await?;
                if !status.is_success() {
                    return Err(OidcError::Invalid(format!("discovery answered {status}")));
                }
                let endpoints: Endpoints = serde_json::from_value(body)
                    .map_err(|e| OidcError::Invalid(format!("discovery document: {e}")))?;
                if endpoints.issuer.trim_end_matches('/') != issuer {
                    return Err(OidcError::Invalid(format!(
                        "discovery names issuer {:?}, not {issuer:?}",
                        endpoints.issuer
                    )));
                }
                Ok(endpoints)
            })
            .await
    }

    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(hyper::StatusCode, Value), OidcError> {
        let response = tokio::time::timeout(PROVIDER_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| OidcError::Unreachable("no answer in time".into()))?
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| OidcError::Unreachable(e.to_string()))?
            .to_bytes();
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

/// Checks an ID token the API server has verified (signature, issuer, expiry) against this
/// sign-in: its nonce, and that this client is its audience (and authorized party, if named).
pub fn answers(id_token: &str, flow: &Flow, client_id: &str) -> Result<(), OidcError> {
    let claims = id_token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok())
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .ok_or(OidcError::Mismatch("the token's claims cannot be read"))?;
    if claims["nonce"].as_str() != Some(flow.nonce.as_str()) {
        return Err(OidcError::Mismatch("its nonce is not this sign-in's"));
    }
    let audience = match &claims["aud"] {
        Value::String(one) => one == client_id,
        Value::Array(many) => many.iter().any(|aud| aud == client_id),
        _ => false,
    };
    if !audience {
        return Err(OidcError::Mismatch("it was not issued to this client"));
    }
    if claims["azp"].as_str().is_some_and(|azp| azp != client_id) {
        return Err(OidcError::Mismatch(
            "another client is its authorized party",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: Value) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn flows_round_trip_through_their_cookie() {
        let flow = Flow::begin();
        assert_eq!(Flow::parse(&flow.cookie_value()), Some(flow.clone()));
        assert_eq!(Flow::parse("a.b"), None);
        assert_eq!(Flow::parse("a..c"), None);
        assert_eq!(Flow::parse("a.b.c.d"), None);
    }

    #[test]
    fn the_challenge_is_rfc_7636_s256() {
        // The example of RFC 7636, appendix B.
        let flow = Flow {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(
            flow.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_token_must_carry_the_nonce_and_name_the_client() {
        let flow = Flow::begin();
        let good = token(serde_json::json!({"nonce": flow.nonce, "aud": ["dce", "other"]}));
        assert!(answers(&good, &flow, "dce").is_ok());
        let replayed = token(serde_json::json!({"nonce": "old", "aud": "dce"}));
        assert!(answers(&replayed, &flow, "dce").is_err());
        let elsewhere = token(serde_json::json!({"nonce": flow.nonce, "aud": "other"}));
        assert!(answers(&elsewhere, &flow, "dce").is_err());
        let other_party = token(serde_json::json!({"nonce": flow.nonce, "aud": "dce", "azp": "x"}));
        assert!(answers(&other_party, &flow, "dce").is_err());
        assert!(answers("not-a-jwt", &flow, "dce").is_err());
    }
}
