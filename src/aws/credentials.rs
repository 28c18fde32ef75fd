//! Credential values. Their `Debug` output redacts the secret parts, so they can sit inside
//! structs that get logged without leaking anything.

use std::fmt;

use aws_credential_types::Credentials;
use jiff::Timestamp;

/// What `Debug` prints instead of a secret.
const REDACTED: &str = "<redacted>";
/// Provider name the SDK attaches to credentials we hand it (shows up in SDK debug logs).
const PROVIDER_NAME: &str = "dce-operator";

/// A long-lived access key pair (an IAM user's), e.g. from an Account's credentials Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl StaticKeys {
    pub(crate) fn to_sdk(&self) -> Credentials {
        Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            PROVIDER_NAME,
        )
    }
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &REDACTED)
            .finish()
    }
}

/// Temporary STS credentials (from AssumeRole).
#[derive(Clone, PartialEq, Eq)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: Timestamp,
}

impl TemporaryCredentials {
    pub(crate) fn to_sdk(&self) -> Credentials {
        // No expiry for the SDK: AWS is the judge of expired credentials, and its answer
        // (ExpiredToken) is classified like any other.
        Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            Some(self.session_token.clone()),
            None,
            PROVIDER_NAME,
        )
    }
}

impl fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &REDACTED)
            .field("session_token", &REDACTED)
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Who a set of credentials belongs to (STS GetCallerIdentity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The 12-digit account number.
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";

    #[test]
    fn static_keys_debug_redacts_the_secret() {
        let keys = StaticKeys {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: SECRET.into(),
        };
        let shown = format!("{keys:?} {keys:#?}");
        assert!(shown.contains("AKIAEXAMPLE"));
        assert!(!shown.contains(SECRET), "{shown}");
    }

    #[test]
    fn temporary_credentials_debug_redacts_secret_and_token() {
        let creds = TemporaryCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: SECRET.into(),
            session_token: TOKEN.into(),
            expiration: "2030-01-01T00:00:00Z".parse().unwrap(),
        };
        let shown = format!("{creds:?} {:?}", Some(&creds));
        assert!(shown.contains("ASIAEXAMPLE"));
        assert!(shown.contains("2030-01-01T00:00:00Z"));
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains(TOKEN), "{shown}");
    }

    #[test]
    fn sdk_credentials_keep_secrets_out_of_debug_too() {
        let keys = StaticKeys {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: SECRET.into(),
        };
        assert!(!format!("{:?}", keys.to_sdk()).contains(SECRET));
    }
}
