//! One error type for every AWS call, classified so controllers can decide what to do
//! (retry, surface to the user, count in a metric) without looking at SDK internals.
//!
//! Messages are safe to show to users and to log: they carry the AWS error code and message
//! or a transport description, never request parameters or credentials.

use std::error::Error as StdError;

// The AWS SDK's own list of the codes it retries as throttling.
use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::retry::ErrorKind;

/// Error codes AWS uses for authentication and authorization failures.
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignature",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "MissingAuthenticationToken",
    "RegionDisabledException",
    "SignatureDoesNotMatch",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
];

/// Error codes AWS uses for requests that are malformed or not acceptable as sent.
const INVALID_REQUEST_CODES: &[&str] = &[
    "InvalidParameterCombination",
    "InvalidParameterValue",
    "MalformedPolicyDocument",
    "MissingParameter",
    "PackedPolicyTooLarge",
    "ValidationError",
    "ValidationException",
];

/// A failed AWS call. `operation` names the call, e.g. `sts:AssumeRole`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// The credentials were rejected or lack permission (HTTP 403, `AccessDenied`,
    /// `InvalidClientTokenId`, `ExpiredToken`, …). Retrying with the same credentials won't help.
    #[error("{operation}: access denied: {detail}")]
    AccessDenied {
        operation: &'static str,
        detail: String,
    },
    /// The request itself is invalid (bad role ARN, duration out of range, …).
    #[error("{operation}: invalid request: {detail}")]
    InvalidRequest {
        operation: &'static str,
        detail: String,
    },
    /// AWS is rate limiting us.
    #[error("{operation}: throttled by AWS: {detail}")]
    Throttled {
        operation: &'static str,
        detail: String,
    },
    /// No response: connection failure or timeout.
    #[error("{operation}: endpoint unreachable: {detail}")]
    Unreachable {
        operation: &'static str,
        detail: String,
    },
    /// A response arrived but could not be understood, or lacks required fields.
    #[error("{operation}: invalid response: {detail}")]
    InvalidResponse {
        operation: &'static str,
        detail: String,
    },
    /// Anything else. `status` is the HTTP status when a response arrived.
    #[error("{operation} failed: {detail}")]
    Other {
        operation: &'static str,
        status: Option<u16>,
        detail: String,
    },
}

impl AwsError {
    /// Stable, low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            AwsError::AccessDenied { .. } => "access_denied",
            AwsError::InvalidRequest { .. } => "invalid_request",
            AwsError::Throttled { .. } => "throttled",
            AwsError::Unreachable { .. } => "unreachable",
            AwsError::InvalidResponse { .. } => "invalid_response",
            AwsError::Other { .. } => "other",
        }
    }

    /// Whether the same call may succeed later without any change on our side
    /// (throttling, network trouble, server-side faults).
    pub fn is_retryable(&self) -> bool {
        match self {
            AwsError::Throttled { .. }
            | AwsError::Unreachable { .. }
            | AwsError::InvalidResponse { .. } => true,
            AwsError::Other { status, .. } => status.is_some_and(|s| s >= 500),
            AwsError::AccessDenied { .. } | AwsError::InvalidRequest { .. } => false,
        }
    }

    /// The operation that failed, e.g. `sts:AssumeRole`.
    pub fn operation(&self) -> &'static str {
        match self {
            AwsError::AccessDenied { operation, .. }
            | AwsError::InvalidRequest { operation, .. }
            | AwsError::Throttled { operation, .. }
            | AwsError::Unreachable { operation, .. }
            | AwsError::InvalidResponse { operation, .. }
            | AwsError::Other { operation, .. } => operation,
        }
    }

    /// Classifies a failed SDK call.
    pub(crate) fn from_sdk<E>(operation: &'static str, err: SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        let status = err
            .raw_response()
            .map(|response| response.status().as_u16());
        match &err {
            SdkError::TimeoutError(_) => AwsError::Unreachable {
                operation,
                detail: describe(&err),
            },
            // A connection that closed mid-response is reported as "other", marked transient.
            SdkError::DispatchFailure(failure)
                if failure.is_io()
                    || failure.is_timeout()
                    || failure.as_other() == Some(ErrorKind::TransientError) =>
            {
                AwsError::Unreachable {
                    operation,
                    detail: describe(&err),
                }
            }
            SdkError::ResponseError(_) => AwsError::InvalidResponse {
                operation,
                detail: describe(&err),
            },
            SdkError::ServiceError(_) => {
                Self::from_service_error(operation, status, err.code(), err.message())
            }
            // Includes failures to load the operator's own credentials, which the SDK reports
            // as dispatch failures of kind "other".
            _ => AwsError::Other {
                operation,
                status,
                detail: describe(&err),
            },
        }
    }

    /// Classifies an error response by its AWS error code, falling back to the HTTP status when
    /// the body could not be parsed (moto's 403 bodies, for instance, are not understood by the SDK).
    pub(crate) fn from_service_error(
        operation: &'static str,
        status: Option<u16>,
        code: Option<&str>,
        message: Option<&str>,
    ) -> Self {
        let detail = match (code, message, status) {
            (Some(code), Some(message), _) => format!("{code}: {message}"),
            (Some(code), None, _) => code.to_string(),
            (None, Some(message), Some(status)) => format!("HTTP {status}: {message}"),
            (None, Some(message), None) => message.to_string(),
            (None, None, Some(status)) => {
                format!("HTTP {status} without a parseable AWS error code")
            }
            (None, None, None) => "error response without a parseable AWS error code".to_string(),
        };
        let is = |codes: &[&str]| code.is_some_and(|c| codes.contains(&c));
        if is(ACCESS_DENIED_CODES) || (code.is_none() && status == Some(403)) {
            AwsError::AccessDenied { operation, detail }
        } else if is(THROTTLING_ERRORS) || status == Some(429) {
            AwsError::Throttled { operation, detail }
        } else if is(INVALID_REQUEST_CODES) {
            AwsError::InvalidRequest { operation, detail }
        } else {
            AwsError::Other {
                operation,
                status,
                detail,
            }
        }
    }
}

/// The messages of `err` and its sources, joined: "dispatch failure: io error: … refused".
pub(crate) fn describe(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const OP: &str = "sts:AssumeRole";

    fn classify(status: u16, code: Option<&str>) -> AwsError {
        AwsError::from_service_error(OP, Some(status), code, Some("message from AWS"))
    }

    #[test]
    fn authentication_and_authorization_codes_are_access_denied() {
        for code in [
            "AccessDenied",
            "InvalidClientTokenId",
            "ExpiredToken",
            "SignatureDoesNotMatch",
        ] {
            let err = classify(403, Some(code));
            assert!(
                matches!(err, AwsError::AccessDenied { .. }),
                "{code}: {err:?}"
            );
            assert_eq!(err.metric_label(), "access_denied");
            assert!(!err.is_retryable());
        }
    }

    #[test]
    fn unparseable_403_is_access_denied_and_says_so() {
        let err = AwsError::from_service_error(OP, Some(403), None, None);
        assert!(matches!(err, AwsError::AccessDenied { .. }));
        assert_eq!(
            err.to_string(),
            "sts:AssumeRole: access denied: HTTP 403 without a parseable AWS error code"
        );
    }

    #[test]
    fn throttling_is_retryable() {
        for err in [classify(400, Some("Throttling")), classify(429, None)] {
            assert!(matches!(err, AwsError::Throttled { .. }), "{err:?}");
            assert_eq!(err.metric_label(), "throttled");
            assert!(err.is_retryable());
        }
    }

    #[test]
    fn validation_errors_are_invalid_requests() {
        let err = classify(400, Some("ValidationError"));
        assert!(matches!(err, AwsError::InvalidRequest { .. }));
        assert_eq!(err.metric_label(), "invalid_request");
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "sts:AssumeRole: invalid request: ValidationError: message from AWS"
        );
    }

    #[test]
    fn server_faults_are_retryable_others() {
        let err = classify(500, Some("InternalFailure"));
        assert!(matches!(
            err,
            AwsError::Other {
                status: Some(500),
                ..
            }
        ));
        assert_eq!(err.metric_label(), "other");
        assert!(err.is_retryable());
        assert!(!classify(400, Some("SomethingNew")).is_retryable());
    }

    #[test]
    fn the_code_outranks_the_status() {
        assert!(matches!(
            classify(400, Some("ExpiredToken")),
            AwsError::AccessDenied { .. }
        ));
        assert!(matches!(
            classify(403, Some("Throttling")),
            AwsError::Throttled { .. }
        ));
    }

    #[test]
    fn describe_follows_the_source_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(
            describe(&WithSource("tcp connect error", io)),
            "tcp connect error: connection refused"
        );
    }

    #[derive(Debug)]
    struct WithSource(&'static str, std::io::Error);

    impl std::fmt::Display for WithSource {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for WithSource {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn display_names_the_operation() {
        let err = classify(403, Some("AccessDenied"));
        assert_eq!(err.operation(), OP);
        assert_eq!(
            err.to_string(),
            "sts:AssumeRole: access denied: AccessDenied: message from AWS"
        );
    }
}
