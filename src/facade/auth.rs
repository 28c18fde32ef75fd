//! Authentication by bearer token (TokenReview) or by an AWS Signature Version 4 signature
//! made with a key pair the operator issued (how DCE clients sign), and authorization
//! (SubjectAccessReview) of the user either names, so the Kubernetes RBAC policy that governs
//! kubectl also governs the REST APIs.
//!
//! Both review results are cached briefly: a burst of requests from one client costs one review
//! of each kind, and a revoked token or role binding takes effect within [`CACHE_TTL`]. Cache
//! keys hold a SHA-256 of the token, never the token itself.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use super::api_keys::ApiKeys;
use super::sigv4::{self, SignatureError, SignedRequest};
use crate::resources::GROUP;

/// How long a review result is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Most results kept per cache; a full cache drops expired entries, then everything.
const CACHE_CAPACITY: u64 = 10_000;

/// An authenticated caller, as the API server's TokenReview described them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct User {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Why a request could not be authenticated or authorized. No message names a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing Authorization header")]
    Missing,
    /// An `Authorization` header that is neither `Bearer <token>` nor AWS4-HMAC-SHA256.
    #[error(
        "malformed Authorization header: expected \"Bearer <token>\" or an AWS4-HMAC-SHA256 signature"
    )]
    Malformed,
    /// The API server rejected the token.
    #[error("invalid or expired token")]
    Invalid,
    /// A signature that does not hold.
    #[error("{0}")]
    Signature(SignatureError),
    /// No issued key pair has this access key id (never issued, or revoked).
    #[error("the access key id {0:?} is not known: it was never issued or it was revoked")]
    UnknownKey(String),
    /// The key pair is suspended.
    #[error("the access key {0:?} is disabled")]
    DisabledKey(String),
    /// A session's credentials used after they expired.
    #[error("the security token included in the request is expired; sign in again")]
    ExpiredToken,
    /// A session's credentials without their session token, or with another; or a token with
    /// a key pair, which has none.
    #[error("the security token included in the request is invalid")]
    InvalidSecurityToken,
    /// A review could not be performed (the API server failed or is unreachable).
    #[error("authorization review failed: {0}")]
    Unavailable(String),
}

/// What a request wants to do, in RBAC terms (API group `dce.dev`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Access {
    pub verb: &'static str,
    /// `accounts` or `leases`.
    pub resource: &'static str,
    /// `None` for cluster-scoped resources, or all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Access {
    pub fn new(verb: &'static str, resource: &'static str) -> Self {
        Self {
            verb,
            resource,
            namespace: None,
            name: None,
        }
    }

    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// A request's credentials: its `Authorization` header and, for a SigV4-signed request, the
/// outcome of checking the signature (made before the handler runs, as it covers the body).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    authorization: Option<HeaderValue>,
    signed: Option<Result<User, AuthError>>,
}

impl Credentials {
    /// A request's bearer token only (the AWS-integration API takes no signatures).
    pub fn bearer(headers: &HeaderMap) -> Self {
        Credentials {
            authorization: headers.get(header::AUTHORIZATION).cloned(),
            signed: None,
        }
    }

    /// A token handed over another way (the sign-in page's form), as if sent as a bearer
    /// token; `None` when it could not be sent in a header at all.
    pub fn token(token: &str) -> Option<Self> {
        let header = HeaderValue::from_str(&format!("Bearer {}", token.trim())).ok()?;
        Some(Credentials {
            authorization: Some(header),
            signed: None,
        })
    }
}

/// The outcome of checking a request's signature, left in its extensions for [`Credentials`].
#[derive(Debug, Clone)]
pub struct CheckedSignature(pub Result<User, AuthError>);

impl<S: Send + Sync> FromRequestParts<S> for Credentials {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Credentials {
            authorization: parts.headers.get(header::AUTHORIZATION).cloned(),
            signed: parts
                .extensions
                .get::<CheckedSignature>()
                .map(|checked| checked.0.clone()),
        })
    }
}

/// Reviews tokens and access against the Kubernetes API, and signatures against the issued
/// key pairs. Cheap to clone; clones share caches.
#[derive(Clone)]
pub struct Authorizer {
    client: Client,
    api_keys: ApiKeys,
    tokens: Cache<[u8; 32], User>,
    decisions: Cache<(User, Access), bool>,
}

impl Authorizer {
    pub fn new(client: Client, api_keys: ApiKeys) -> Self {
        Self {
            client,
            api_keys,
            tokens: review_cache(),
            decisions: review_cache(),
        }
    }

    /// Who a SigV4-signed request was signed by: the user its credentials were issued to. As
    /// with AWS, a signature holds for its time window, repeats included: dce-cli sends an
    /// identical request (same second, same signature) when a user runs a command twice.
    pub fn authenticate_signed(
        &self,
        request: &SignedRequest<'_>,
        now: Timestamp,
    ) -> Result<User, AuthError> {
        let value = request
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or(AuthError::Malformed)?;
        let authorization = sigv4::parse_authorization(value).map_err(AuthError::Signature)?;
        let key = self
            .api_keys
            .find(authorization.access_key_id)
            .ok_or_else(|| AuthError::UnknownKey(authorization.access_key_id.to_string()))?;
        sigv4::verify(request, &authorization, &key.secret_access_key, now)
            .map_err(AuthError::Signature)?;
        if key.disabled {
            return Err(AuthError::DisabledKey(key.access_key_id));
        }
        let token = request
            .headers
            .get(SECURITY_TOKEN_HEADER)
            .map(|value| value.as_bytes());
        if !same_token(key.session_token.as_deref().map(str::as_bytes), token) {
            return Err(AuthError::InvalidSecurityToken);
        }
        if key.expired(now) {
            return Err(AuthError::ExpiredToken);
        }
        Ok(User {
            username: key.user,
            uid: String::new(),
            groups: key.groups,
            extra: BTreeMap::new(),
        })
    }

    /// Who the request's credentials belong to: its checked signature, or its bearer token.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<User, AuthError> {
        if let Some(signed) = &credentials.signed {
            return signed.clone();
        }
        let token = bearer_token(credentials.authorization.as_ref())?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(user) = self.tokens.get(&key) {
            return Ok(user);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|err| AuthError::Unavailable(review_failure("TokenReview", &err)))?;
        let status = reviewed.status.unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(info)) => User {
                username: info.username.unwrap_or_default(),
                uid: info.uid.unwrap_or_default(),
                groups: info.groups.unwrap_or_default(),
                extra: info.extra.unwrap_or_default().into_iter().collect(),
            },
            _ => return Err(AuthError::Invalid),
        };
        if user.username.is_empty() {
            return Err(AuthError::Invalid);
        }
        self.tokens.insert(key, user.clone());
        Ok(user)
    }

    /// Whether RBAC lets `user` perform `access`.
    pub async fn allowed(&self, user: &User, access: &Access) -> Result<bool, AuthError> {
        let key = (user.clone(), access.clone());
        if let Some(allowed) = self.decisions.get(&key) {
            return Ok(allowed);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.username.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone().into_iter().collect()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(GROUP.to_string()),
                    resource: Some(access.resource.to_string()),
                    verb: Some(access.verb.to_string()),
                    namespace: access.namespace.clone(),
                    name: access.name.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|err| AuthError::Unavailable(review_failure("SubjectAccessReview", &err)))?;
        let allowed = reviewed
            .status
            .is_some_and(|s| s.allowed && s.denied != Some(true));
        self.decisions.insert(key, allowed);
        Ok(allowed)
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
/// Where SigV4 clients send a session token.
const SECURITY_TOKEN_HEADER: &str = "x-amz-security-token";

/// Whether a request's session token is the one its credentials were issued with (both absent
/// for a key pair). Digests are compared, so the time taken says nothing about the token.
fn same_token(issued: Option<&[u8]>, sent: Option<&[u8]>) -> bool {
    match (issued, sent) {
        (None, None) => true,
        (Some(issued), Some(sent)) => Sha256::digest(issued) == Sha256::digest(sent),
        _ => false,
    }
}

/// Reviews are remembered for [`CACHE_TTL`], at most [`CACHE_CAPACITY`] of each kind.
fn review_cache<K, V>() -> Cache<K, V>
where
    K: Eq + std::hash::Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(CACHE_CAPACITY)
        .time_to_live(CACHE_TTL)
        .build()
}

fn bearer_token(authorization: Option<&HeaderValue>) -> Result<&str, AuthError> {
    let value = authorization
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// A failed review, described without the request (which holds the token).
fn review_failure(kind: &str, err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{kind}: {} ({})", status.reason, status.code),
        _ => format!("{kind}: the API server could not be reached"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    #[test]
    fn bearer_token_parsing() {
        assert_eq!(bearer_token(None), Err(AuthError::Missing));
        assert_eq!(bearer_token(Some(&headers("Bearer abc"))), Ok("abc"));
        assert_eq!(bearer_token(Some(&headers("bearer  abc "))), Ok("abc"));
        assert_eq!(
            bearer_token(Some(&headers("Basic abc"))),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            bearer_token(Some(&headers("Bearer"))),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            bearer_token(Some(&headers("Bearer "))),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            bearer_token(Some(&headers("Bearer a b"))),
            Err(AuthError::Malformed)
        );
    }
}
