//! Object metadata helpers: identity, timestamps, generated names and name validation.

use local_apimachinery::names;
use rand::Rng;
use serde_json::{Map, Value};

use crate::status::Cause;

/// RFC 3339 UTC with second precision, as `metav1.Time` serializes.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn new_uid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    // Version 4 / RFC 4122 variant bits.
    let v = format!("4{}", &h(6..8)[1..]);
    let var = format!("{:x}{}", 8 | (b[8] & 0x3), &h(8..10)[1..]);
    format!("{}-{}-{}-{}-{}", h(0..4), h(4..6), v, var, h(10..16))
}

/// The five-character suffix of `generateName`, from the same alphabet the real server uses.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    metadata(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid")
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    metadata(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_finalizers(obj: &mut Value, finalizers: Vec<String>) {
    let m = metadata_mut(obj);
    if finalizers.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), Value::from(finalizers));
    }
}

pub fn is_deleting(obj: &Value) -> bool {
    metadata(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()))
}

pub fn owner_references(obj: &Value) -> Vec<Value> {
    metadata(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub fn generation(obj: &Value) -> i64 {
    metadata(obj)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// How a kind constrains `metadata.name`.
#[derive(Debug, Clone, Copy)]
pub enum NameRule {
    Dns1123Subdomain,
    Dns1123Label,
    Dns1035Label,
    /// RBAC objects: anything that is a valid path segment.
    PathSegment,
}

pub fn name_rule(group: &str, plural: &str) -> NameRule {
    match (group, plural) {
        ("", "namespaces") => NameRule::Dns1123Label,
        ("", "services") => NameRule::Dns1035Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Dns1123Subdomain,
    }
}

/// `IsDNS1123Label`, which the shared name checks do not cover.
fn dns1123_label_errors(name: &str) -> Vec<String> {
    let mut out = vec![];
    if name.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        out.push(DNS1123_LABEL_MSG.to_string());
    }
    out
}

/// Validates `metadata.name` like the real server, returning the field causes.
pub fn validate_name(name: &str, rule: NameRule) -> Vec<Cause> {
    let details = match rule {
        NameRule::Dns1123Label => dns1123_label_errors(name),
        NameRule::Dns1123Subdomain => names::dns1123_subdomain_errors(name),
        NameRule::Dns1035Label => names::dns1035_label_errors(name),
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                vec![format!("may not be '{name}'")]
            } else {
                ["/", "%"]
                    .iter()
                    .filter(|s| name.contains(**s))
                    .map(|s| format!("may not contain '{s}'"))
                    .take(1)
                    .collect()
            }
        }
    };
    details
        .into_iter()
        .map(|d| Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {name:?}: {d}"),
            field: "metadata.name".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_shape() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn names() {
        assert!(validate_name("abc-1.x", NameRule::Dns1123Subdomain).is_empty());
        assert_eq!(validate_name("Abc", NameRule::Dns1123Subdomain).len(), 1);
        assert_eq!(validate_name("a.b", NameRule::Dns1123Label).len(), 1);
        assert!(validate_name("system:admin", NameRule::PathSegment).is_empty());
    }
}
