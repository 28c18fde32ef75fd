//! DCE's error body `{"error":{"message","code"}}` and its codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::facade::{AuthError, ErrorCause};

/// A DCE API error: the HTTP status, DCE's code and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DceError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Why, for the request metrics, where the status alone would mislead (see [`ErrorCause`]).
    pub cause: Option<ErrorCause>,
}

impl DceError {
    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// No account is free: DCE's documented 500, which is not a fault of the service.
    pub fn pool_exhausted() -> Self {
        Self {
            cause: Some(ErrorCause::PoolExhausted),
            ..Self::server("No Available accounts at this moment")
        }
    }

    pub fn client(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::BAD_REQUEST, "ClientError", message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::BAD_REQUEST, "RequestValidationError", message)
    }

    /// The body could not be parsed (DCE's wording).
    pub fn unparsable_body() -> Self {
        Self::client("Failed to Parse Request Body")
    }

    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::with_status(
            StatusCode::NOT_FOUND,
            "NotFoundError",
            format!("{kind} {id:?} not found"),
        )
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::CONFLICT, "AlreadyExistsError", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::CONFLICT, "ConflictError", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::UNAUTHORIZED, "UnauthorizedError", message)
    }

    pub fn forbidden(username: &str) -> Self {
        Self::with_status(
            StatusCode::FORBIDDEN,
            "UnauthorizedError",
            format!("User [{username}] is not authorized to perform the requested action."),
        )
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self::with_status(StatusCode::INTERNAL_SERVER_ERROR, "ServerError", message)
    }
}

/// Code of API Gateway's answer to a request without credentials, which DCE clients see from
/// DCE; its body is `{"message": …}`, not DCE's error body.
const MISSING_AUTHENTICATION_TOKEN: &str = "MissingAuthenticationToken";

impl From<AuthError> for DceError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing => Self::with_status(
                StatusCode::FORBIDDEN,
                MISSING_AUTHENTICATION_TOKEN,
                "Missing Authentication Token",
            ),
            AuthError::Unavailable(detail) => {
                tracing::warn!(%detail, "authorization review failed");
                Self::server("Could not authorize the request; try again")
            }
            other => Self::unauthorized(other.to_string()),
        }
    }
}

impl From<kube::Error> for DceError {
    /// A Kubernetes API failure the handler did not expect.
    fn from(error: kube::Error) -> Self {
        tracing::warn!(%error, "Kubernetes API request failed");
        Self::server("The request could not be completed; try again")
    }
}

impl IntoResponse for DceError {
    fn into_response(self) -> Response {
        let body = if self.code == MISSING_AUTHENTICATION_TOKEN {
            json!({"message": self.message})
        } else {
            json!({"error": {"message": self.message, "code": self.code}})
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(cause);
        }
        response
    }
}
