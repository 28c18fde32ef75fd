//! Authentication by static bearer tokens, authorization through the RBAC authorizer, and the
//! TokenReview / SubjectAccessReview APIs that expose both.

use std::collections::HashMap;

use local_apimachinery::rbac::{self, Attributes, UserInfo};
use serde_json::{Value, json};

use crate::StaticToken;
use crate::app::App;
use crate::registry::{ResourceInfo, Special};
use crate::status::{ApiError, ApiResult, Cause, Target};

pub const ADMIN_USER: &str = "admin";

pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
}

impl Authenticator {
    pub fn new(tokens: &[StaticToken]) -> Self {
        let tokens = tokens
            .iter()
            .map(|t| {
                let mut groups = t.groups.clone();
                // Every authenticated identity is in this group on a real server.
                if !groups.iter().any(|g| g == "system:authenticated") {
                    groups.push("system:authenticated".into());
                }
                (
                    t.token.clone(),
                    UserInfo {
                        username: t.username.clone(),
                        uid: t.uid.clone(),
                        groups,
                    },
                )
            })
            .collect();
        Authenticator { tokens }
    }

    pub fn authenticate_token(&self, token: &str) -> Option<&UserInfo> {
        self.tokens.get(token)
    }

    /// The identity of an `Authorization: Bearer` header value.
    pub fn authenticate_header(&self, header: Option<&str>) -> Option<&UserInfo> {
        let token = header?
            .strip_prefix("Bearer ")
            .or_else(|| header?.strip_prefix("bearer "))?;
        self.authenticate_token(token.trim())
    }
}

/// The real server's wording of a denial.
fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    if let Some(path) = &attrs.non_resource_path {
        return format!(
            "User {:?} cannot {} path {:?}",
            user.username, attrs.verb, path
        );
    }
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", attrs.namespace)
    };
    format!(
        "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        user.username, attrs.verb, attrs.api_group
    )
}

/// Authorizes a request, answering 403 like the real server when RBAC denies it.
pub fn authorize(app: &App, user: &UserInfo, attrs: &Attributes) -> ApiResult<()> {
    let allowed = rbac::authorize(user, attrs, &app.rbac_objects()).allowed;
    app.audit.record(user, attrs, allowed);
    if allowed {
        return Ok(());
    }
    let why = forbidden_message(user, attrs);
    Err(match &attrs.non_resource_path {
        Some(_) => ApiError::forbidden_path(&why),
        None => ApiError::forbidden(
            Target {
                group: &attrs.api_group,
                resource: &attrs.resource,
            },
            &attrs.name,
            &why,
        ),
    })
}

/// Answers a create of a review resource: nothing is stored.
pub fn review(
    app: &App,
    info: &ResourceInfo,
    namespace: &str,
    requester: &UserInfo,
    body: Value,
) -> ApiResult<Value> {
    let mut obj = body;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    obj["apiVersion"] = json!(info.api_version());
    obj["kind"] = json!(info.kind);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    obj["status"] = match info.special {
        Special::TokenReview => token_review_status(app, &spec),
        Special::SelfSubjectAccessReview => access_review_status(app, requester, &spec, info, "")?,
        Special::SubjectAccessReview | Special::LocalSubjectAccessReview => {
            let user = UserInfo {
                username: spec
                    .get("user")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                uid: spec
                    .get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                groups: string_list(spec.get("groups")),
            };
            if user.username.is_empty() && user.groups.is_empty() {
                return Err(invalid_review(
                    info,
                    "spec.user",
                    "at least one of user or group must be specified",
                ));
            }
            let ns = if info.special == Special::LocalSubjectAccessReview {
                namespace
            } else {
                ""
            };
            access_review_status(app, &user, &spec, info, ns)?
        }
        Special::None | Special::Namespace | Special::Crd => {
            return Err(ApiError::method_not_allowed());
        }
    };
    Ok(obj)
}

fn token_review_status(app: &App, spec: &Value) -> Value {
    let token = spec
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match app.auth.authenticate_token(token) {
        Some(user) => {
            let mut status = json!({
                "authenticated": true,
                "user": { "username": user.username, "groups": user.groups },
            });
            if !user.uid.is_empty() {
                status["user"]["uid"] = json!(user.uid);
            }
            if let Some(aud) = spec
                .get("audiences")
                .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
            {
                status["audiences"] = aud.clone();
            }
            status
        }
        // `authenticated: false` is omitted from the wire form.
        None => json!({ "user": {} }),
    }
}

fn access_review_status(
    app: &App,
    user: &UserInfo,
    spec: &Value,
    info: &ResourceInfo,
    namespace: &str,
) -> ApiResult<Value> {
    let attrs = if let Some(ra) = spec.get("resourceAttributes") {
        let s = |k: &str| {
            ra.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let ns = if namespace.is_empty() {
            s("namespace")
        } else {
            namespace.to_string()
        };
        if !namespace.is_empty() && !s("namespace").is_empty() && s("namespace") != namespace {
            return Err(invalid_review(
                info,
                "spec.resourceAttributes.namespace",
                "must match metadata.namespace",
            ));
        }
        Attributes {
            verb: s("verb"),
            api_group: s("group"),
            resource: s("resource"),
            subresource: s("subresource"),
            namespace: ns,
            name: s("name"),
            non_resource_path: None,
        }
    } else if let Some(nra) = spec.get("nonResourceAttributes") {
        let s = |k: &str| {
            nra.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Attributes {
            verb: s("verb"),
            non_resource_path: Some(s("path")),
            ..Default::default()
        }
    } else {
        return Err(invalid_review(
            info,
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    };
    let decision = rbac::authorize(user, &attrs, &app.rbac_objects());
    let mut status = json!({ "allowed": decision.allowed });
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    Ok(status)
}

fn invalid_review(info: &ResourceInfo, field: &str, detail: &str) -> ApiError {
    let message = if field == "spec.user" {
        format!("Invalid value: \"\": {detail}")
    } else {
        format!("Invalid value: \"null\": {detail}")
    };
    ApiError::invalid(
        &info.group,
        &info.kind,
        "",
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    )
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
