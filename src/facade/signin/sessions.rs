//! Sign-in sessions: temporary AWS credentials of the API caller role, issued to a Kubernetes
//! user and kept in a Secret like the key pairs (see `crate::lifecycle::api_keys`), so every
//! replica verifies them and deleting the Secret revokes them.

use std::collections::BTreeMap;

use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use rand::Rng;
use rand::distr::Alphanumeric;

use super::SignInSettings;
use crate::aws::{Aws, AwsError, TemporaryCredentials, role_session_name, session_tag_value};
use crate::facade::User;
use crate::lifecycle::api_keys::{
    ACCESS_KEY_ID_KEY, API_KEY_LABEL, ApiKey, BROWSER_SECRET_KEY, EXPIRES_ANNOTATION,
    GROUPS_ANNOTATION, SECRET_ACCESS_KEY_KEY, SESSION_LABEL, SESSION_NAME_PREFIX,
    SESSION_TOKEN_KEY, USER_ANNOTATION, api_key, browser_secret_hash,
};

/// Session tag carrying the Kubernetes user name (AWS CloudTrail shows it).
const USER_TAG: &str = "kubernetes-user";
/// Length of the cookie secret that finds a session again from the browser.
const BROWSER_SECRET_LENGTH: usize = 43;

/// A session just issued: its credentials and the cookie secret that refers to it.
pub struct Issued {
    pub credentials: TemporaryCredentials,
    pub browser_secret: String,
}

/// Why no session was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("sign-in is not set up: the operator has no API caller role (--api-caller-role-arn)")]
    NoCallerRole,
    #[error("AWS did not issue credentials: {0}")]
    Aws(#[from] AwsError),
    #[error("the credentials could not be stored: {0}")]
    Kube(#[from] kube::Error),
}

/// Assumes the API caller role for `user` and stores the credentials.
pub async fn issue(
    aws: &Aws,
    secrets: &Api<Secret>,
    settings: &SignInSettings,
    user: &User,
) -> Result<Issued, IssueError> {
    let role = settings
        .caller_role_arn
        .as_deref()
        .ok_or(IssueError::NoCallerRole)?;
    let tag = session_tag_value(&user.username);
    let credentials = aws
        .assume_role_tagged(
            None,
            role,
            &role_session_name(&user.username),
            settings.session_seconds,
            &[(USER_TAG, tag.as_str())],
        )
        .await?;
    let browser_secret: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(BROWSER_SECRET_LENGTH)
        .map(char::from)
        .collect();
    let secret = session_secret(user, &credentials, &browser_secret_hash(&browser_secret));
    secrets.create(&PostParams::default(), &secret).await?;
    Ok(Issued {
        credentials,
        browser_secret,
    })
}

/// The name of the Secret holding the session with `access_key_id`.
pub fn secret_name(access_key_id: &str) -> String {
    format!(
        "{SESSION_NAME_PREFIX}{}",
        access_key_id.to_ascii_lowercase()
    )
}

/// The session a browser's cookie refers to, if it holds and has not expired. Read from the
/// API server, not the cache: right after sign-in the cache may not show it yet.
pub async fn find(
    secrets: &Api<Secret>,
    access_key_id: &str,
    browser_secret: &str,
    now: Timestamp,
) -> Result<Option<ApiKey>, kube::Error> {
    let Some(secret) = secrets.get_opt(&secret_name(access_key_id)).await? else {
        return Ok(None);
    };
    Ok(api_key(&secret).filter(|key| {
        key.access_key_id == access_key_id
            && key.browser_secret_sha256.as_deref() == Some(&browser_secret_hash(browser_secret))
            && !key.disabled
            && !key.expired(now)
    }))
}

/// Revokes a session: its credentials stop working at once.
pub async fn revoke(secrets: &Api<Secret>, access_key_id: &str) -> Result<(), kube::Error> {
    match secrets
        .delete(&secret_name(access_key_id), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

/// The token `dce auth` asks for: base64 of the credentials as JSON, expiry in epoch seconds.
pub fn dce_cli_token(key: &ApiKey) -> String {
    let json = serde_json::json!({
        "accessKeyId": key.access_key_id,
        "secretAccessKey": key.secret_access_key,
        "sessionToken": key.session_token.as_deref().unwrap_or_default(),
        "expireTime": key.expires_at.map(|at| at.as_second()).unwrap_or_default(),
    });
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

/// The Secret of a session for `user`, found again by the hash of its cookie secret.
fn session_secret(
    user: &User,
    credentials: &TemporaryCredentials,
    browser_secret_sha256: &str,
) -> Secret {
    let text = |value: &str| ByteString(value.as_bytes().to_vec());
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&credentials.access_key_id)),
            labels: Some(BTreeMap::from([
                (API_KEY_LABEL.to_string(), "true".to_string()),
                (SESSION_LABEL.to_string(), "true".to_string()),
            ])),
            annotations: Some(BTreeMap::from([
                (USER_ANNOTATION.to_string(), user.username.clone()),
                (GROUPS_ANNOTATION.to_string(), user.groups.join(",")),
                (
                    EXPIRES_ANNOTATION.to_string(),
                    credentials.expiration.to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (
                ACCESS_KEY_ID_KEY.to_string(),
                text(&credentials.access_key_id),
            ),
            (
                SECRET_ACCESS_KEY_KEY.to_string(),
                text(&credentials.secret_access_key),
            ),
            (
                SESSION_TOKEN_KEY.to_string(),
                text(&credentials.session_token),
            ),
            (BROWSER_SECRET_KEY.to_string(), text(browser_secret_sha256)),
        ])),
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    }
}
