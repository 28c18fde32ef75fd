//! IAM, signed with an account's admin access: the principal role and its managed policy.
//!
//! Each call is one IAM request; deciding what to call is the lifecycle's job.

use std::collections::BTreeMap;
use std::error::Error as StdError;

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::Tag;
use jiff::Timestamp;

use super::{Aws, AwsError, Identity};

/// An IAM role as the operator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamRole {
    pub arn: String,
    /// The trust policy, URL-decoded.
    pub trust_policy: String,
    pub max_session_seconds: Option<i32>,
    pub tags: BTreeMap<String, String>,
}

/// A customer managed policy as the operator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamPolicy {
    pub default_version: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// One version of a managed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamPolicyVersion {
    pub id: String,
    pub is_default: bool,
    pub created: Option<Timestamp>,
}

impl Aws {
    /// The role `name`, or `None` if there is none.
    pub async fn get_role(
        &self,
        identity: Identity<'_>,
        name: &str,
    ) -> Result<Option<IamRole>, AwsError> {
        const OP: &str = "iam:GetRole";
        let request = self.inner.iam.get_role().role_name(name).customize();
        let output = match signed(request, identity).send().await {
            Ok(output) => output,
            Err(err) if is_no_such_entity(&err) => return Ok(None),
            Err(err) => return Err(AwsError::from_sdk(OP, err)),
        };
        let role = output.role().ok_or_else(|| invalid(OP, "no role"))?;
        Ok(Some(IamRole {
            arn: role.arn().to_string(),
            trust_policy: role
                .assume_role_policy_document()
                .map(decode_policy_document)
                .unwrap_or_default(),
            max_session_seconds: role.max_session_duration(),
            tags: tag_map(role.tags()),
        }))
    }

    /// Creates role `name` with a trust policy, a maximum session length and tags; `false` if
    /// a role of that name exists already.
    pub async fn create_role(
        &self,
        identity: Identity<'_>,
        name: &str,
        trust_policy: &str,
        max_session_seconds: i32,
        tags: &BTreeMap<String, String>,
    ) -> Result<bool, AwsError> {
        const OP: &str = "iam:CreateRole";
        let request = self
            .inner
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust_policy)
            .max_session_duration(max_session_seconds)
            .set_tags(Some(sdk_tags(OP, tags)?))
            .customize();
        created(OP, signed(request, identity).send().await).map(|output| output.is_some())
    }

    /// Replaces role `name`'s trust policy.
    pub async fn update_trust_policy(
        &self,
        identity: Identity<'_>,
        name: &str,
        trust_policy: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "iam:UpdateAssumeRolePolicy";
        let request = self
            .inner
            .iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(trust_policy)
            .customize();
        call(OP, signed(request, identity).send().await)
    }

    /// Sets role `name`'s maximum session length.
    pub async fn update_max_session(
        &self,
        identity: Identity<'_>,
        name: &str,
        max_session_seconds: i32,
    ) -> Result<(), AwsError> {
        const OP: &str = "iam:UpdateRole";
        let request = self
            .inner
            .iam
            .update_role()
            .role_name(name)
            .max_session_duration(max_session_seconds)
            .customize();
        call(OP, signed(request, identity).send().await)
    }

    /// Deletes role `name` (it must have no policies attached).
    pub async fn delete_role(&self, identity: Identity<'_>, name: &str) -> Result<(), AwsError> {
        const OP: &str = "iam:DeleteRole";
        let request = self.inner.iam.delete_role().role_name(name).customize();
        ignore_missing(OP, signed(request, identity).send().await)
    }

    /// The managed policies attached to role `name`, by ARN.
    pub async fn attached_policies(
        &self,
        identity: Identity<'_>,
        name: &str,
    ) -> Result<Vec<String>, AwsError> {
        const OP: &str = "iam:ListAttachedRolePolicies";
        all_pages(|marker| async move {
            let request = self
                .inner
                .iam
                .list_attached_role_policies()
                .role_name(name)
                .set_marker(marker)
                .customize();
            let output = signed(request, identity)
                .send()
                .await
                .map_err(|err| AwsError::from_sdk(OP, err))?;
            let arns = output
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string))
                .collect();
            Ok((arns, next_marker(output.is_truncated(), output.marker())))
        })
        .await
    }

    pub async fn attach_role_policy(
        &self,
        identity: Identity<'_>,
        role: &str,
        policy_arn: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "iam:AttachRolePolicy";
        let request = self
            .inner
            .iam
            .attach_role_policy()
            .role_name(role)
            .policy_arn(policy_arn)
            .customize();
        call(OP, signed(request, identity).send().await)
    }

    pub async fn detach_role_policy(
        &self,
        identity: Identity<'_>,
        role: &str,
        policy_arn: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "iam:DetachRolePolicy";
        let request = self
            .inner
            .iam
            .detach_role_policy()
            .role_name(role)
            .policy_arn(policy_arn)
            .customize();
        ignore_missing(OP, signed(request, identity).send().await)
    }

    /// The managed policy `arn`, or `None` if there is none.
    pub async fn get_policy(
        &self,
        identity: Identity<'_>,
        arn: &str,
    ) -> Result<Option<IamPolicy>, AwsError> {
        const OP: &str = "iam:GetPolicy";
        let request = self.inner.iam.get_policy().policy_arn(arn).customize();
        let output = match signed(request, identity).send().await {
            Ok(output) => output,
            Err(err) if is_no_such_entity(&err) => return Ok(None),
            Err(err) => return Err(AwsError::from_sdk(OP, err)),
        };
        let policy = output.policy().ok_or_else(|| invalid(OP, "no policy"))?;
        Ok(Some(IamPolicy {
            default_version: policy.default_version_id().map(str::to_string),
            tags: tag_map(policy.tags()),
        }))
    }

    /// Creates managed policy `name`; `false` if a policy of that name exists already.
    pub async fn create_policy(
        &self,
        identity: Identity<'_>,
        name: &str,
        document: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<bool, AwsError> {
        const OP: &str = "iam:CreatePolicy";
        let request = self
            .inner
            .iam
            .create_policy()
            .policy_name(name)
            .policy_document(document)
            .set_tags(Some(sdk_tags(OP, tags)?))
            .customize();
        created(OP, signed(request, identity).send().await).map(|output| output.is_some())
    }

    /// Deletes managed policy `arn` (only its default version may remain).
    pub async fn delete_policy(&self, identity: Identity<'_>, arn: &str) -> Result<(), AwsError> {
        const OP: &str = "iam:DeletePolicy";
        let request = self.inner.iam.delete_policy().policy_arn(arn).customize();
        ignore_missing(OP, signed(request, identity).send().await)
    }

    /// The document of version `version` of policy `arn`, URL-decoded.
    pub async fn policy_document(
        &self,
        identity: Identity<'_>,
        arn: &str,
        version: &str,
    ) -> Result<String, AwsError> {
        const OP: &str = "iam:GetPolicyVersion";
        let request = self
            .inner
            .iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .customize();
        let output = signed(request, identity)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk(OP, err))?;
        output
            .policy_version()
            .and_then(|v| v.document())
            .map(decode_policy_document)
            .ok_or_else(|| invalid(OP, "no policy document"))
    }

    pub async fn policy_versions(
        &self,
        identity: Identity<'_>,
        arn: &str,
    ) -> Result<Vec<IamPolicyVersion>, AwsError> {
        const OP: &str = "iam:ListPolicyVersions";
        all_pages(|marker| async move {
            let request = self
                .inner
                .iam
                .list_policy_versions()
                .policy_arn(arn)
                .set_marker(marker)
                .customize();
            let output = signed(request, identity)
                .send()
                .await
                .map_err(|err| AwsError::from_sdk(OP, err))?;
            let versions = output
                .versions()
                .iter()
                .map(|version| {
                    let id = version
                        .version_id()
                        .ok_or_else(|| invalid(OP, "a version without an id"))?;
                    Ok(IamPolicyVersion {
                        id: id.to_string(),
                        is_default: version.is_default_version(),
                        created: version
                            .create_date()
                            .and_then(|d| Timestamp::new(d.secs(), d.subsec_nanos() as i32).ok()),
                    })
                })
                .collect::<Result<Vec<_>, AwsError>>()?;
            Ok((
                versions,
                next_marker(output.is_truncated(), output.marker()),
            ))
        })
        .await
    }

    /// Adds a version to policy `arn` and makes it the default.
    pub async fn create_default_policy_version(
        &self,
        identity: Identity<'_>,
        arn: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "iam:CreatePolicyVersion";
        let request = self
            .inner
            .iam
            .create_policy_version()
            .policy_arn(arn)
            .policy_document(document)
            .set_as_default(true)
            .customize();
        call(OP, signed(request, identity).send().await)
    }

    pub async fn delete_policy_version(
        &self,
        identity: Identity<'_>,
        arn: &str,
        version: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "iam:DeletePolicyVersion";
        let request = self
            .inner
            .iam
            .delete_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .customize();
        ignore_missing(OP, signed(request, identity).send().await)
    }
}

/// Signs one IAM operation with `identity` (see `signed_as` for why an override).
/// Every page of a marker-paginated IAM listing. (The SDK's paginators cannot carry the
/// per-call credentials of [`signed`].) `page` fetches the page at a marker and returns its items
/// and the next marker, if any.
async fn all_pages<T, Page>(
    mut page: impl FnMut(Option<String>) -> Page,
) -> Result<Vec<T>, AwsError>
where
    Page: Future<Output = Result<(Vec<T>, Option<String>), AwsError>>,
{
    let mut items = Vec::new();
    let mut marker = None;
    loop {
        let (more, next) = page(marker.take()).await?;
        items.extend(more);
        match next {
            Some(next) => marker = Some(next),
            None => return Ok(items),
        }
    }
}

/// The marker of the next page, when there is one.
fn next_marker(truncated: bool, marker: Option<&str>) -> Option<String> {
    marker.filter(|_| truncated).map(str::to_string)
}

fn signed<T, E, B>(
    operation: aws_sdk_iam::client::customize::CustomizableOperation<T, E, B>,
    identity: Identity<'_>,
) -> aws_sdk_iam::client::customize::CustomizableOperation<T, E, B> {
    match identity.credentials() {
        Some(credentials) => operation
            .config_override(aws_sdk_iam::Config::builder().credentials_provider(credentials)),
        None => operation,
    }
}

fn call<T, E>(operation: &'static str, result: Result<T, SdkError<E>>) -> Result<(), AwsError>
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    result
        .map(|_| ())
        .map_err(|err| AwsError::from_sdk(operation, err))
}

/// A delete of something already gone succeeds.
fn ignore_missing<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E>>,
) -> Result<(), AwsError>
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match result {
        Err(err) if is_no_such_entity(&err) => Ok(()),
        other => call(operation, other),
    }
}

/// A create of something that exists already (made by someone else meanwhile) is `None`.
fn created<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E>>,
) -> Result<Option<T>, AwsError>
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(err) if err.code() == Some("EntityAlreadyExists") => Ok(None),
        Err(err) => Err(AwsError::from_sdk(operation, err)),
    }
}

fn is_no_such_entity<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.code() == Some("NoSuchEntity")
}

fn invalid(operation: &'static str, detail: &str) -> AwsError {
    AwsError::InvalidResponse {
        operation,
        detail: detail.to_string(),
    }
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn sdk_tags(
    operation: &'static str,
    tags: &BTreeMap<String, String>,
) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|err| AwsError::InvalidRequest {
                    operation,
                    detail: err.to_string(),
                })
        })
        .collect()
}

/// IAM returns policy documents URL-encoded (RFC 3986); a document that is JSON already (as
/// some endpoints return it) is kept as it is.
fn decode_policy_document(raw: &str) -> String {
    if raw.trim_start().starts_with('{') {
        return raw.to_string();
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::decode_policy_document;

    #[test]
    fn policy_documents_are_url_decoded() {
        assert_eq!(
            decode_policy_document("%7B%22Version%22%3A%222012-10-17%22%7D"),
            r#"{"Version":"2012-10-17"}"#
        );
        assert_eq!(decode_policy_document(r#"{"a":"%41"}"#), r#"{"a":"%41"}"#);
        // A stray percent sign is kept.
        assert_eq!(decode_policy_document("100%"), "100%");
    }
}
