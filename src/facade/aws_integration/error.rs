//! The AWS-integration API's error body: `{"error_id", "error_text", "error_info"}` with the IDs
//! and HTTP statuses of the spec's error table.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::facade::AuthError;

/// An error response. Texts never hold secret keys or tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub id: &'static str,
    pub text: String,
    pub info: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, id: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            id,
            text: text.into(),
            info: None,
        }
    }

    /// Adds the error-specific data structure.
    pub fn with_info(mut self, info: Value) -> Self {
        self.info = Some(info);
        self
    }

    /// 400 `REQUEST_INVALID_INPUT`: the body is malformed or breaks a rule.
    pub fn invalid_input(text: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "REQUEST_INVALID_INPUT", text)
    }

    /// 400 `HTTP_INVALID_HEADER`.
    pub fn invalid_header(text: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "HTTP_INVALID_HEADER", text)
    }

    /// 403 `AUTH_FORBIDDEN`.
    pub fn forbidden(text: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AUTH_FORBIDDEN", text)
    }

    /// 404 `RESOURCE_NOT_FOUND`.
    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND", text)
    }

    /// 405 `HTTP_INVALID_METHOD`.
    pub fn invalid_method(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "HTTP_INVALID_METHOD",
            format!("method {method} is not available for this resource"),
        )
    }

    /// 500 `INTERNAL_ERROR`.
    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", text)
    }

    /// 500 for a failed Kubernetes API request. The full error goes to the log (API server
    /// messages carry no Secret data); the caller sees what failed and the API status.
    pub fn kube(what: &str, error: &kube::Error) -> Self {
        tracing::warn!(%error, "{what} failed");
        let detail = match error {
            kube::Error::Api(status) => format!("{} ({})", status.reason, status.code),
            _ => "the Kubernetes API is unreachable".to_string(),
        };
        Self::internal(format!("{what} failed: {detail}"))
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing => {
                Self::new(StatusCode::UNAUTHORIZED, "AUTH_REQUIRED", error.to_string())
            }
            AuthError::Malformed => Self::invalid_header(error.to_string()),
            // Signed requests are the DCE API's; here only bearer tokens are read.
            AuthError::Invalid
            | AuthError::Signature(_)
            | AuthError::UnknownKey(_)
            | AuthError::DisabledKey(_)
            | AuthError::ExpiredToken
            | AuthError::InvalidSecurityToken => Self::new(
                StatusCode::UNAUTHORIZED,
                "AUTH_INVALID_TOKEN",
                error.to_string(),
            ),
            AuthError::Unavailable(_) => Self::internal(error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error_id": self.id, "error_text": self.text });
        if let Some(info) = self.info {
            body["error_info"] = info;
        }
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_map_to_the_spec_ids() {
        let cases = [
            (AuthError::Missing, 401, "AUTH_REQUIRED"),
            (AuthError::Malformed, 400, "HTTP_INVALID_HEADER"),
            (AuthError::Invalid, 401, "AUTH_INVALID_TOKEN"),
            (AuthError::Unavailable("x".into()), 500, "INTERNAL_ERROR"),
        ];
        for (error, status, id) in cases {
            let mapped = ApiError::from(error);
            assert_eq!((mapped.status.as_u16(), mapped.id), (status, id));
        }
    }
}
