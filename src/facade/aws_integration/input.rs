//! Request bodies and headers of the AWS-integration API, validated as a whole before anything
//! is written. Bodies are read as JSON values and checked field by field, so no error message
//! ever echoes a submitted value (a secret key could be one).

use std::collections::BTreeSet;
use std::fmt;

use axum::http::{HeaderMap, header};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::lifecycle::sync::SyncSetting;

/// Longest `acc_id` (the Account's `spec.id` allows 256 characters).
pub const MAX_ACC_ID: usize = 256;
/// Longest access key or secret key accepted.
pub const MAX_KEY: usize = 512;
/// Characters of the sanitized `acc_id` kept in an object name.
const NAME_PREFIX_LEN: usize = 40;
/// Hex digits of the `acc_id` hash in an object name.
const NAME_HASH_LEN: usize = 12;

/// One `PUT /auth_codes` item. `Debug` never shows the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCode {
    pub acc_id: String,
    pub access_key: String,
    pub secret_key: String,
}

impl fmt::Debug for AuthCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCode")
            .field("acc_id", &self.acc_id)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Rejects a body whose declared media type is not JSON. A missing `Content-Type` is accepted.
pub fn require_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media_type = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some("application/json") => Ok(()),
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => Ok(()),
        _ => Err(ApiError::invalid_header(
            "Content-Type must be application/json",
        )),
    }
}

/// `POST /sync` takes no body.
pub fn require_empty(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(())
    } else {
        Err(ApiError::invalid_input("this request takes no body"))
    }
}

/// `PUT /sync/status`: `{"status": "ENABLED" | "DISABLED"}`.
pub fn sync_status(headers: &HeaderMap, body: &[u8]) -> Result<SyncSetting, ApiError> {
    require_json_content_type(headers)?;
    let value = json_body(body)?;
    let object = value
        .as_object()
        .ok_or_else(|| ApiError::invalid_input("the body must be a JSON object"))?;
    only_fields(object, &["status"], None)?;
    let status = string_field(object, "status", None)?;
    SyncSetting::parse(status).ok_or_else(|| {
        ApiError::invalid_input("status must be ENABLED or DISABLED")
            .with_info(json!({ "field": "status" }))
    })
}

/// `PUT /auth_codes`: `[{"acc_id", "access_key", "secret_key"}]`, each `acc_id` once.
pub fn auth_codes(headers: &HeaderMap, body: &[u8]) -> Result<Vec<AuthCode>, ApiError> {
    const FIELDS: [&str; 3] = ["acc_id", "access_key", "secret_key"];
    let items = array_body(headers, body)?;
    let mut codes = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let object = item_object(item, index)?;
        only_fields(object, &FIELDS, Some(index))?;
        let acc_id = acc_id_field(object, index)?;
        let access_key = key_field(object, "access_key", index)?;
        let secret_key = key_field(object, "secret_key", index)?;
        codes.push(AuthCode {
            acc_id,
            access_key,
            secret_key,
        });
    }
    unique(codes.iter().map(|c| c.acc_id.as_str()))?;
    Ok(codes)
}

/// `DELETE /auth_codes`: `[{"acc_id"}]`, each `acc_id` once.
pub fn acc_ids(headers: &HeaderMap, body: &[u8]) -> Result<Vec<String>, ApiError> {
    let items = array_body(headers, body)?;
    let mut ids = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let object = item_object(item, index)?;
        only_fields(object, &["acc_id"], Some(index))?;
        ids.push(acc_id_field(object, index)?);
    }
    unique(ids.iter().map(String::as_str))?;
    Ok(ids)
}

/// The Kubernetes object name for `acc_id`: its sanitized start plus a hash of all of it. Valid
/// as a DNS label (so as any object name and label value), stable, and distinct for distinct ids.
pub fn object_name(acc_id: &str) -> String {
    let mut prefix = String::new();
    for c in acc_id.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            prefix.push(c);
        } else if !prefix.is_empty() && !prefix.ends_with('-') {
            prefix.push('-');
        }
        if prefix.len() >= NAME_PREFIX_LEN {
            break;
        }
    }
    let prefix = prefix.trim_end_matches('-');
    let prefix = if prefix.is_empty() { "account" } else { prefix };
    let hash = hex::encode(Sha256::digest(acc_id.as_bytes()));
    format!("{prefix}-{}", &hash[..NAME_HASH_LEN])
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_input("a JSON body is required"));
    }
    // serde_json's syntax errors give a position, never the text around it.
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_input(format!("the body is not valid JSON: {e}")))
}

fn array_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Value>, ApiError> {
    require_json_content_type(headers)?;
    match json_body(body)? {
        Value::Array(items) => Ok(items),
        _ => Err(ApiError::invalid_input("the body must be a JSON array")),
    }
}

fn item_object(item: &Value, index: usize) -> Result<&Map<String, Value>, ApiError> {
    item.as_object().ok_or_else(|| {
        ApiError::invalid_input(format!("item {index} must be a JSON object"))
            .with_info(json!({ "index": index }))
    })
}

fn info(index: Option<usize>, field: &str) -> Value {
    match index {
        Some(index) => json!({ "index": index, "field": field }),
        None => json!({ "field": field }),
    }
}

fn at(index: Option<usize>) -> String {
    index.map(|i| format!(" in item {i}")).unwrap_or_default()
}

fn only_fields(
    object: &Map<String, Value>,
    allowed: &[&str],
    index: Option<usize>,
) -> Result<(), ApiError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        // Field names are the client's structure, not its data: naming one is safe.
        Some(unknown) => Err(ApiError::invalid_input(format!(
            "unknown field {unknown:?}{}; expected {}",
            at(index),
            allowed.join(", ")
        ))
        .with_info(info(index, unknown))),
        None => Ok(()),
    }
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    field: &str,
    index: Option<usize>,
) -> Result<&'a str, ApiError> {
    match object.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(
            ApiError::invalid_input(format!("{field}{} must be a string", at(index)))
                .with_info(info(index, field)),
        ),
        None => Err(
            ApiError::invalid_input(format!("{field} is required{}", at(index)))
                .with_info(info(index, field)),
        ),
    }
}

fn acc_id_field(object: &Map<String, Value>, index: usize) -> Result<String, ApiError> {
    let value = string_field(object, "acc_id", Some(index))?;
    let problem = if value.trim().is_empty() {
        Some("must not be empty".to_string())
    } else if value.chars().count() > MAX_ACC_ID {
        Some(format!("must be at most {MAX_ACC_ID} characters"))
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(
            ApiError::invalid_input(format!("acc_id in item {index} {problem}"))
                .with_info(info(Some(index), "acc_id")),
        ),
        None => Ok(value.to_string()),
    }
}

/// A key goes into HTTP signatures: printable ASCII without spaces.
fn key_field(object: &Map<String, Value>, field: &str, index: usize) -> Result<String, ApiError> {
    let value = string_field(object, field, Some(index))?;
    let problem = if value.is_empty() {
        Some("must not be empty".to_string())
    } else if value.len() > MAX_KEY {
        Some(format!("must be at most {MAX_KEY} characters"))
    } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
        Some("must be printable ASCII without spaces".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(
            ApiError::invalid_input(format!("{field} in item {index} {problem}"))
                .with_info(info(Some(index), field)),
        ),
        None => Ok(value.to_string()),
    }
}

fn unique<'a>(ids: impl Iterator<Item = &'a str>) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(
                ApiError::invalid_input(format!("acc_id {id:?} appears more than once"))
                    .with_info(json!({ "acc_id": id })),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers
    }

    fn rejected(result: Result<impl fmt::Debug, ApiError>) -> ApiError {
        result.expect_err("should be rejected")
    }

    #[test]
    fn content_type_must_be_json_when_given() {
        assert!(require_json_content_type(&HeaderMap::new()).is_ok());
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ok));
            assert!(require_json_content_type(&h).is_ok(), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", ""] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(bad));
            assert_eq!(
                rejected(require_json_content_type(&h)).id,
                "HTTP_INVALID_HEADER"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_bytes(b"application/\xffjson").unwrap(),
        );
        assert_eq!(
            rejected(require_json_content_type(&h)).id,
            "HTTP_INVALID_HEADER"
        );
    }

    #[test]
    fn sync_status_accepts_exactly_the_two_values() {
        let h = json_headers();
        assert_eq!(
            sync_status(&h, br#"{"status":"ENABLED"}"#).unwrap(),
            SyncSetting::Enabled
        );
        assert_eq!(
            sync_status(&h, br#" {"status": "DISABLED"} "#).unwrap(),
            SyncSetting::Disabled
        );
        for bad in [
            &br#"{"status":"enabled"}"#[..],
            br#"{"status":true}"#,
            br#"{"status":"ENABLED","x":1}"#,
            br#"{}"#,
            br#"["ENABLED"]"#,
            br#"{"status":"ENABLED""#,
            b"",
            b"null",
        ] {
            let error = rejected(sync_status(&h, bad));
            assert_eq!(error.id, "REQUEST_INVALID_INPUT", "{bad:?}");
            assert_eq!(error.status.as_u16(), 400);
        }
    }

    #[test]
    fn auth_codes_parse() {
        let codes = auth_codes(
            &json_headers(),
            br#"[{"access_key":"AK1","secret_key":"s/1+x","acc_id":"Prod Account"},
                 {"access_key":"AK2","secret_key":"s2","acc_id":"123456789012"}]"#,
        )
        .unwrap();
        assert_eq!(codes.len(), 2);
        assert_eq!(codes[0].acc_id, "Prod Account");
        assert_eq!(codes[0].secret_key, "s/1+x");
        assert!(auth_codes(&HeaderMap::new(), b"[]").unwrap().is_empty());
    }

    #[test]
    fn auth_codes_reject_every_malformed_item_without_echoing_secrets() {
        let h = json_headers();
        let cases: &[(&str, &str)] = &[
            (r#"{"acc_id":"a"}"#, "array"),
            (r#"[1]"#, "item 0 must be a JSON object"),
            (
                r#"[{"access_key":"AK","acc_id":"a"}]"#,
                "secret_key is required",
            ),
            (
                r#"[{"access_key":"AK","secret_key":"","acc_id":"a"}]"#,
                "secret_key in item 0 must not be empty",
            ),
            (
                r#"[{"access_key":"AK","secret_key":"TOPSECRET with space","acc_id":"a"}]"#,
                "printable ASCII",
            ),
            (
                r#"[{"access_key":"AK","secret_key":12345678,"acc_id":"a"}]"#,
                "secret_key in item 0 must be a string",
            ),
            (
                r#"[{"access_key":"AK","secret_key":"s","acc_id":"  "}]"#,
                "acc_id in item 0 must not be empty",
            ),
            (
                r#"[{"access_key":"AK","secret_key":"s","acc_id":"a\nb"}]"#,
                "control characters",
            ),
            (
                r#"[{"access_key":"AK","secret_key":"s","acc_id":"a","extra":"TOPSECRET"}]"#,
                "unknown field \"extra\"",
            ),
            (
                r#"[{"access_key":"AK","secret_key":"s","acc_id":"a"},
                    {"access_key":"AK2","secret_key":"s2","acc_id":"a"}]"#,
                "appears more than once",
            ),
            (
                r#"[{"access_key":"AK","secret_key":"TOPSECRET"#,
                "not valid JSON",
            ),
        ];
        for (body, expected) in cases {
            let error = rejected(auth_codes(&h, body.as_bytes()));
            assert_eq!(error.id, "REQUEST_INVALID_INPUT", "{body}");
            assert!(error.text.contains(expected), "{body}: {}", error.text);
            let shown = format!("{} {:?}", error.text, error.info);
            assert!(
                !shown.contains("TOPSECRET") && !shown.contains("12345678"),
                "{shown}"
            );
        }
        let long = format!(
            r#"[{{"access_key":"AK","secret_key":"s","acc_id":"{}"}}]"#,
            "x".repeat(MAX_ACC_ID + 1)
        );
        assert!(
            rejected(auth_codes(&h, long.as_bytes()))
                .text
                .contains("at most")
        );
    }

    #[test]
    fn debug_hides_the_secret_key() {
        let code = AuthCode {
            acc_id: "a".into(),
            access_key: "AK".into(),
            secret_key: "TOPSECRET".into(),
        };
        assert!(!format!("{code:?}").contains("TOPSECRET"));
    }

    #[test]
    fn acc_ids_parse_and_reject_duplicates() {
        let h = json_headers();
        assert_eq!(
            acc_ids(&h, br#"[{"acc_id":"a"},{"acc_id":"b"}]"#).unwrap(),
            vec!["a", "b"]
        );
        for bad in [
            &br#"[{"acc_id":"a"},{"acc_id":"a"}]"#[..],
            br#"[{"acc_id":""}]"#,
            br#"[{"id":"a"}]"#,
            br#"{"acc_id":"a"}"#,
            b"",
        ] {
            assert_eq!(rejected(acc_ids(&h, bad)).id, "REQUEST_INVALID_INPUT");
        }
    }

    #[test]
    fn post_sync_takes_no_body() {
        assert!(require_empty(b"").is_ok());
        assert!(require_empty(b" \n").is_ok());
        assert_eq!(rejected(require_empty(b"{}")).status.as_u16(), 400);
    }

    fn is_dns_label(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    }

    #[test]
    fn object_names_are_valid_stable_and_distinct() {
        let ids = [
            "aws1",
            "AWS1",
            "Prod Account/eu",
            "123456789012",
            "---",
            "",
            "ünïcödé",
            &"x".repeat(256),
            &format!("{}y", "x".repeat(255)),
        ];
        let mut names = BTreeSet::new();
        for id in ids {
            let name = object_name(id);
            assert!(is_dns_label(&name), "{id:?} -> {name}");
            assert_eq!(object_name(id), name, "stable");
            assert!(names.insert(name), "distinct");
        }
        assert!(object_name("Prod Account/eu").starts_with("prod-account-eu-"));
        assert!(object_name("---").starts_with("account-"));
    }
}
