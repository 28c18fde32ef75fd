//! Bounds on the free-form fields (DCE's `metadata`): one rule for every way in (REST, kubectl),
//! so that no client can hand the operator, the API server or another client a document whose
//! walk costs more than its owner meant.

use std::collections::BTreeMap;

use serde_json::Value;

/// Deepest nesting allowed: the field itself is level 1, an object or array in it level 2.
pub const MAX_FREE_FORM_DEPTH: usize = 8;
/// Most keys at the top level of the field (also in the CRD schema, as `maxProperties`).
pub const MAX_FREE_FORM_KEYS: usize = 64;
/// Largest the field may be, as compact JSON.
pub const MAX_FREE_FORM_BYTES: usize = 16 * 1024;

/// Checks `value`, the content of free-form field `field`, against the bounds.
pub fn check_free_form(field: &str, value: &BTreeMap<String, Value>) -> Result<(), String> {
    if value.len() > MAX_FREE_FORM_KEYS {
        return Err(format!(
            "{field}: has {} keys, more than the {MAX_FREE_FORM_KEYS} allowed",
            value.len()
        ));
    }
    // Iterative, so the check itself cannot be made to recurse deeply.
    let mut pending: Vec<(&Value, usize)> = value.values().map(|v| (v, 2)).collect();
    while let Some((item, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match item {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        if depth > MAX_FREE_FORM_DEPTH {
            return Err(format!(
                "{field}: nested deeper than {MAX_FREE_FORM_DEPTH} levels"
            ));
        }
        pending.extend(children.map(|child| (child, depth + 1)));
    }
    let size = serde_json::to_vec(value).map_or(usize::MAX, |json| json.len());
    if size > MAX_FREE_FORM_BYTES {
        return Err(format!(
            "{field}: {size} bytes as JSON, more than the {MAX_FREE_FORM_BYTES} allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(value: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(value).unwrap()
    }

    /// `{"a": {"a": … "leaf"}}` with `levels` objects in all, the field itself included.
    fn nested(levels: usize) -> BTreeMap<String, Value> {
        let mut value = json!("leaf");
        for _ in 0..levels {
            value = json!({ "a": value });
        }
        field(value)
    }

    #[test]
    fn depth_is_bounded_for_objects_and_arrays() {
        assert_eq!(
            check_free_form("metadata", &nested(MAX_FREE_FORM_DEPTH)),
            Ok(())
        );
        assert_eq!(
            check_free_form("metadata", &nested(MAX_FREE_FORM_DEPTH + 1)),
            Err("metadata: nested deeper than 8 levels".into())
        );
        let arrays = field(json!({ "a": [[[[[[[["leaf"]]]]]]]] }));
        assert!(check_free_form("metadata", &arrays).is_err());
        let flat = field(json!({ "a": [1, 2, {"b": [3]}], "c": "d" }));
        assert_eq!(check_free_form("metadata", &flat), Ok(()));
    }

    #[test]
    fn keys_and_size_are_bounded() {
        let many: BTreeMap<String, Value> = (0..=MAX_FREE_FORM_KEYS)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        assert_eq!(
            check_free_form("metadata", &many),
            Err("metadata: has 65 keys, more than the 64 allowed".into())
        );
        let big = field(json!({ "blob": "x".repeat(MAX_FREE_FORM_BYTES) }));
        let error = check_free_form("metadata", &big).unwrap_err();
        assert!(
            error.starts_with("metadata: 16395 bytes as JSON"),
            "{error}"
        );
    }
}
