//! `meta/v1` Status errors with the codes, reasons and message forms a real API server uses.

use serde_json::{Value, json};

/// A failed request, rendered as a `Status` object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// What a Status' `details` name: the group and resource (plural) of the object concerned.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub group: &'a str,
    pub resource: &'a str,
}

impl Target<'_> {
    /// `accounts.dce.dev` or `secrets`, as messages spell a group-resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self, name: &str) -> Value {
        let mut d = json!({ "kind": self.resource });
        if !name.is_empty() {
            d["name"] = json!(name);
        }
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }
}

/// One entry of `details.causes`.
#[derive(Debug, Clone)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

impl ApiError {
    fn new(
        code: u16,
        reason: &'static str,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details,
        }
    }

    pub fn not_found(t: Target<'_>, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", t.qualified()),
            Some(t.details(name)),
        )
    }

    /// An unknown path or resource.
    pub fn unknown_resource() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        )
    }

    pub fn already_exists(t: Target<'_>, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", t.qualified()),
            Some(t.details(name)),
        )
    }

    /// 409 `Conflict`; `why` is the reason text after the colon.
    pub fn conflict(t: Target<'_>, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                t.qualified()
            ),
            Some(t.details(name)),
        )
    }

    pub fn stale_resource_version(t: Target<'_>, name: &str) -> Self {
        Self::conflict(
            t,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 `Invalid`: `kind` is the object's Kind (e.g. `Account`), causes carry field paths.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let list = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut details = json!({ "name": name, "kind": kind, "causes": causes_json(&causes) });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self::new(
            422,
            "Invalid",
            format!("{qualified} {name:?} is invalid: {list}"),
            Some(details),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized", None)
    }

    /// 403 with the authorizer's or an admission plugin's reason.
    pub fn forbidden(t: Target<'_>, name: &str, why: &str) -> Self {
        let subject = if name.is_empty() {
            t.qualified()
        } else {
            format!("{} {name:?}", t.qualified())
        };
        Self::new(
            403,
            "Forbidden",
            format!("{subject} is forbidden: {why}"),
            Some(t.details(name)),
        )
    }

    /// 403 for a non-resource path.
    pub fn forbidden_path(why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("forbidden: {why}"),
            Some(json!({})),
        )
    }

    /// 410 `Expired` (watch or continue from a compacted resourceVersion).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message, None)
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        let _ = content_type;
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
            None,
        )
    }

    pub fn internal(message: impl AsRef<str>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.as_ref()),
            None,
        )
    }

    /// 504 for a resourceVersion newer than the store has reached.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
            Some(
                json!({ "causes": [{ "reason": "ResourceVersionTooLarge", "message": "Too large resource version" }], "retryAfterSeconds": 1 }),
            ),
        )
    }

    /// Appends causes to the details (creating them if absent).
    pub fn with_causes(mut self, causes: Vec<Cause>) -> Self {
        let details = self.details.get_or_insert_with(|| json!({}));
        details["causes"] = causes_json(&causes);
        self
    }

    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

fn causes_json(causes: &[Cause]) -> Value {
    Value::Array(
        causes
            .iter()
            .map(|c| {
                let mut v = json!({ "reason": c.reason, "message": c.message });
                if !c.field.is_empty() {
                    v["field"] = json!(c.field);
                }
                v
            })
            .collect(),
    )
}

impl From<local_apimachinery::schema::FieldError> for Cause {
    fn from(e: local_apimachinery::schema::FieldError) -> Self {
        Cause {
            reason: e.reason,
            message: e.message,
            field: e.field,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
