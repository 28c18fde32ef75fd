//! AWS console federation: exchanges temporary credentials for a sign-in token and builds the
//! console login URL (`getSigninToken`, then `Action=login`).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use serde::Deserialize;
use tokio::sync::OnceCell;
use url::Url;

use super::error::describe;
use super::{Aws, AwsError, TemporaryCredentials};

const GET_SIGNIN_TOKEN: &str = "signin:getSigninToken";
/// The whole exchange (connect, request, body) must finish within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A sign-in token response is a few KiB; anything much larger is not one.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Console session bounds AWS accepts for AssumeRole credentials (SessionDuration).
const MIN_SESSION_SECONDS: i64 = 900;
const MAX_SESSION_SECONDS: i64 = 43_200;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// HTTP client for the federation endpoint, built on first use: loading the platform's root
/// certificates can fail, and that should fail a sign-in, not the operator's start.
#[derive(Default)]
pub(super) struct FederationClient(OnceCell<HttpsClient>);

impl FederationClient {
    async fn get(&self) -> Result<&HttpsClient, AwsError> {
        self.0
            .get_or_try_init(|| async {
                let connector = crate::tls::https_connector().map_err(|err| AwsError::Other {
                    operation: GET_SIGNIN_TOKEN,
                    status: None,
                    detail: format!("no TLS root certificates: {err}"),
                })?;
                Ok(Client::builder(TokioExecutor::new()).build(connector))
            })
            .await
    }
}

#[derive(Deserialize)]
struct SigninTokenResponse {
    #[serde(rename = "SigninToken")]
    signin_token: String,
}

impl Aws {
    /// A URL that signs its holder into the AWS console as `creds`, landing on the configured
    /// console page. `issuer` names who issued the link (shown by AWS when the session ends).
    ///
    /// The URL embeds a sign-in token: treat it as a secret.
    pub async fn console_sign_in_url(
        &self,
        creds: &TemporaryCredentials,
        issuer: &str,
    ) -> Result<String, AwsError> {
        let settings = self.settings();
        let endpoint = federation_endpoint(&settings.federation_endpoint)?;

        let session = serde_json::json!({
            "sessionId": creds.access_key_id,
            "sessionKey": creds.secret_access_key,
            "sessionToken": creds.session_token,
        })
        .to_string();
        let mut token_url = endpoint.clone();
        token_url
            .query_pairs_mut()
            .append_pair("Action", "getSigninToken")
            .append_pair(
                "SessionDuration",
                &session_duration(creds.expiration, Timestamp::now()).to_string(),
            )
            .append_pair("Session", &session);
        let body = self.inner.federation.fetch(&token_url).await?;
        let token = serde_json::from_slice::<SigninTokenResponse>(&body)
            .map_err(|_| AwsError::InvalidResponse {
                operation: GET_SIGNIN_TOKEN,
                detail: "response is not a JSON object with a SigninToken".to_string(),
            })?
            .signin_token;

        let mut login_url = endpoint;
        {
            let mut query = login_url.query_pairs_mut();
            query.append_pair("Action", "login");
            if !issuer.is_empty() {
                query.append_pair("Issuer", issuer);
            }
            query
                .append_pair("Destination", &settings.console_url)
                .append_pair("SigninToken", &token);
        }
        Ok(login_url.into())
    }
}

impl FederationClient {
    /// GETs `url` and returns the body of a 2xx answer. `url` carries credentials: it must
    /// never appear in an error.
    async fn fetch(&self, url: &Url) -> Result<Bytes, AwsError> {
        let client = self.get().await?;
        let unreachable = |detail: String| AwsError::Unreachable {
            operation: GET_SIGNIN_TOKEN,
            detail,
        };
        let request = hyper::Request::get(url.as_str())
            .body(Empty::new())
            .map_err(|err| AwsError::InvalidRequest {
                operation: GET_SIGNIN_TOKEN,
                detail: err.to_string(),
            })?;
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|err| unreachable(describe(&err)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|err| AwsError::InvalidResponse {
                    operation: GET_SIGNIN_TOKEN,
                    detail: format!("reading the response failed: {err}"),
                })?
                .to_bytes();
            if !status.is_success() {
                return Err(AwsError::from_service_error(
                    GET_SIGNIN_TOKEN,
                    Some(status.as_u16()),
                    None,
                    Some("the federation endpoint issued no sign-in token"),
                ));
            }
            Ok(body)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())))?
    }
}

/// Parses the configured federation endpoint. Sign-in requests carry credentials in the query,
/// so plain http is refused unless the endpoint is on this machine (a test stub).
fn federation_endpoint(configured: &str) -> Result<Url, AwsError> {
    crate::tls::secure_url(configured, "federation endpoint").map_err(|detail| {
        AwsError::InvalidRequest {
            operation: GET_SIGNIN_TOKEN,
            detail,
        }
    })
}

/// Console session length: what is left of the credentials, within the bounds AWS accepts.
fn session_duration(expiration: Timestamp, now: Timestamp) -> i64 {
    expiration
        .duration_since(now)
        .as_secs()
        .clamp(MIN_SESSION_SECONDS, MAX_SESSION_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_must_be_https_unless_loopback() {
        for ok in [
            "https://signin.aws.amazon.com/federation",
            "http://127.0.0.1:8080/federation",
            "http://localhost/federation",
            "http://[::1]:1/federation",
        ] {
            assert!(federation_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://signin.example.com/federation",
            "ftp://127.0.0.1/",
            "not a url",
        ] {
            let err = federation_endpoint(bad).unwrap_err();
            assert!(
                matches!(err, AwsError::InvalidRequest { .. }),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn session_duration_follows_the_credentials_within_aws_bounds() {
        let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let at = |secs: i64| now + jiff::SignedDuration::from_secs(secs);
        assert_eq!(session_duration(at(3600), now), 3600);
        assert_eq!(session_duration(at(60), now), MIN_SESSION_SECONDS);
        assert_eq!(session_duration(at(-60), now), MIN_SESSION_SECONDS);
        assert_eq!(session_duration(at(100_000), now), MAX_SESSION_SECONDS);
    }
}
