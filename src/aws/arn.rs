//! IAM role ARN helpers.

use crate::resources::Arn;

/// The ARN of role `role_name` in account `account_number`, in the standard `aws` partition.
pub fn principal_role_arn(account_number: &str, role_name: &str) -> String {
    format!("arn:aws:iam::{account_number}:role/{role_name}")
}

/// The 12-digit account id of an IAM role ARN (`arn:<partition>:iam::<account>:role/<path/name>`),
/// or `None` when `arn` is not a role ARN.
pub fn account_of_role_arn(arn: &str) -> Option<&str> {
    let arn = Arn::parse(arn)?;
    let role_name = arn.resource.strip_prefix("role/")?.rsplit('/').next()?;
    let valid = arn.service == "iam"
        && arn.region.is_empty()
        && is_account_number(arn.account)
        && !role_name.is_empty();
    valid.then_some(arn.account)
}

fn is_account_number(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// An STS role session name for `name` (a principal, a Kubernetes user): AWS allows
/// `[\w+=,.@-]`, 2 to 64 characters, so other characters become `-` and a long name is cut.
pub fn role_session_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.len() < 2 {
        format!("dce-{cleaned}")
    } else {
        cleaned
    }
}

/// The value of an STS session tag carrying `text`: AWS allows letters, digits, spaces and
/// `_.:/=+-@`, up to 256 characters.
pub fn session_tag_value(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_role_arn_uses_the_aws_partition() {
        assert_eq!(
            principal_role_arn("123456789012", "DCEPrincipal"),
            "arn:aws:iam::123456789012:role/DCEPrincipal"
        );
    }

    #[test]
    fn account_of_role_arn_round_trips() {
        let arn = principal_role_arn("210987654321", "admin");
        assert_eq!(account_of_role_arn(&arn), Some("210987654321"));
    }

    #[test]
    fn account_of_role_arn_accepts_paths_and_other_partitions() {
        assert_eq!(
            account_of_role_arn("arn:aws:iam::123456789012:role/team/dce/Admin"),
            Some("123456789012")
        );
        assert_eq!(
            account_of_role_arn("arn:aws-cn:iam::123456789012:role/Admin"),
            Some("123456789012")
        );
    }

    #[test]
    fn account_of_role_arn_rejects_non_role_arns() {
        for arn in [
            "",
            "not-an-arn",
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/path/",
            "arn:aws:iam::12345678901:role/Admin",
            "arn:aws:iam::1234567890123:role/Admin",
            "arn:aws:iam::12345678901a:role/Admin",
            "arn:aws:sts::123456789012:assumed-role/Admin/session",
            "arn:aws:iam:us-east-1:123456789012:role/Admin",
            "arn::iam::123456789012:role/Admin",
            "arn:gcp:iam::123456789012:role/Admin",
        ] {
            assert_eq!(account_of_role_arn(arn), None, "{arn}");
        }
    }

    #[test]
    fn account_numbers_are_twelve_digits() {
        assert!(is_account_number("000000000000"));
        assert!(!is_account_number("12345678901"));
        assert!(!is_account_number("１２３４５６７８９０１２"));
    }

    #[test]
    fn session_names_and_tags_keep_to_what_sts_allows() {
        assert_eq!(role_session_name("alice@example.com"), "alice@example.com");
        assert_eq!(
            role_session_name("system:serviceaccount:team:bot"),
            "system-serviceaccount-team-bot"
        );
        assert_eq!(role_session_name("x"), "dce-x");
        assert_eq!(role_session_name(&"a".repeat(100)).len(), 64);
        assert_eq!(session_tag_value("oidc:bob smith#1"), "oidc:bob smith_1");
        assert_eq!(session_tag_value(&"b".repeat(300)).len(), 256);
    }
}
