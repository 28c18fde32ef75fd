//! What a principal id may be: one rule, used by the CRD schema (Kubernetes checks it on every
//! write, kubectl included) and by the REST facade, so the two never disagree.

use std::sync::LazyLock;

use regex::Regex;

/// Longest principal id, in characters (Unicode scalar values, as the schema's `maxLength`
/// counts them; not bytes).
pub const MAX_PRINCIPAL_ID_CHARS: usize = 256;

/// No control characters (NUL, newlines, …) and no invisible formatting characters (bidi
/// overrides, zero-width spaces, …), which would let two different ids look alike in a listing,
/// an Event or a log line. RE2 (the API server) and Rust's regex read it alike.
pub const PRINCIPAL_ID_PATTERN: &str = r"^[^\p{Cc}\p{Cf}]+$";

static PATTERN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(PRINCIPAL_ID_PATTERN).expect("the principal id pattern compiles"));

/// Checks a principal id against the rule, saying what is wrong.
pub fn check_principal_id(id: &str) -> Result<(), String> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_PRINCIPAL_ID_CHARS {
        return Err(format!(
            "principalId must be 1 to {MAX_PRINCIPAL_ID_CHARS} characters"
        ));
    }
    if !PATTERN.is_match(id) {
        return Err(
            "principalId must not contain control or invisible formatting characters".to_string(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(check_principal_id(&"é".repeat(256)), Ok(()));
        assert!(check_principal_id(&"é".repeat(257)).is_err());
        assert!(check_principal_id("").is_err());
    }

    #[test]
    fn control_and_formatting_characters_are_refused() {
        for bad in [
            "al\0ice",
            "alice\n",
            "al\u{202E}ecila",
            "al\u{200B}ice",
            "\u{FEFF}alice",
        ] {
            assert!(check_principal_id(bad).is_err(), "{bad:?}");
        }
        for good in [
            "alice",
            "alice@example.com",
            "Ålice Ünïcode",
            "組織/ユーザー",
        ] {
            assert_eq!(check_principal_id(good), Ok(()), "{good:?}");
        }
    }
}
