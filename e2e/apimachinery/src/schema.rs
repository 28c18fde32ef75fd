//! Structural OpenAPI v3 schemas of CustomResourceDefinitions: validation, pruning, defaulting.
//!
//! The real API server runs, for every custom-resource write: decode → [`prune`] (which also drops
//! `null`s of non-nullable fields without a default) → [`apply_defaults`] → [`validate`]. Defaults
//! are also applied when objects are read from storage. Call them in that order.
//!
//! Error texts follow kube-openapi's messages as converted by the apiextensions server into
//! `field.Error`s (e.g. `Invalid value: "x": spec.id in body should match '^a$'`).

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::go_format::{self, Number};

/// One failing field, as a real API server lists it in a `422 Invalid` Status's `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueTypeInvalid`, …
    pub reason: String,
    /// Full message, e.g. `Invalid value: "123": spec.id in body should match '^[0-9]{12}$'`.
    pub message: String,
    /// Dotted path of the field, e.g. `spec.id` or `spec.items[2].name`.
    pub field: String,
}

impl FieldError {
    fn new(reason: &str, field: &str, message: String) -> Self {
        // An empty Go `*field.Path` prints as `<nil>`.
        let field = if field.is_empty() { "<nil>" } else { field };
        FieldError {
            reason: reason.to_string(),
            message,
            field: field.to_string(),
        }
    }

    /// `field.Required`.
    pub fn required(field: &str, detail: &str) -> Self {
        Self::new(
            "FieldValueRequired",
            field,
            with_detail("Required value".into(), detail),
        )
    }

    /// `field.Invalid`; `bad` is the bad value as JSON.
    pub fn invalid(field: &str, bad: &Value, detail: &str) -> Self {
        Self::new(
            "FieldValueInvalid",
            field,
            with_detail(
                format!("Invalid value: {}", go_format::bad_value(bad)),
                detail,
            ),
        )
    }

    /// `field.TypeInvalid`.
    pub fn type_invalid(field: &str, bad: &Value, detail: &str) -> Self {
        Self::new(
            "FieldValueTypeInvalid",
            field,
            with_detail(
                format!("Invalid value: {}", go_format::bad_value(bad)),
                detail,
            ),
        )
    }

    /// `field.NotSupported`.
    pub fn not_supported(field: &str, bad: &Value, supported: &[String]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|s| go_format::quote(s)).collect();
        let detail = if quoted.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            "FieldValueNotSupported",
            field,
            with_detail(
                format!("Unsupported value: {}", go_format::bad_value(bad)),
                &detail,
            ),
        )
    }

    /// `field.Forbidden`.
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self::new(
            "FieldValueForbidden",
            field,
            with_detail("Forbidden".into(), detail),
        )
    }

    /// `field.Duplicate`.
    pub fn duplicate(field: &str, bad: &Value) -> Self {
        Self::new(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {}", go_format::bad_value(bad)),
        )
    }

    /// `field.TooLong` without a known limit: kube-openapi does not pass the limit on.
    fn too_long(field: &str) -> Self {
        Self::new(
            "FieldValueTooLong",
            field,
            "Too long: value is too long".into(),
        )
    }

    /// `field.TooMany` without a known limit: kube-openapi does not pass the limit on.
    fn too_many(field: &str, actual: usize) -> Self {
        Self::new(
            "FieldValueTooMany",
            field,
            format!("Too many: {actual}: has too many items"),
        )
    }
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

/// kube-openapi names a field by its path with a leading `.` at the root; the server trims it.
fn field_of(name: &str) -> &str {
    name.strip_prefix('.').unwrap_or(name)
}

fn child_name(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

// ---------------------------------------------------------------------------------------------
// Schema accessors
// ---------------------------------------------------------------------------------------------

fn flag(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn properties(s: &Value) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

/// `additionalProperties` given as a schema (a map's value schema).
fn additional_schema(s: &Value) -> Option<&Value> {
    s.get("additionalProperties").filter(|v| v.is_object())
}

fn items(s: &Value) -> Option<&Value> {
    s.get("items").filter(|v| v.is_object())
}

fn is_nullable(s: &Value) -> bool {
    flag(s, "nullable")
}

fn has_default(s: &Value) -> bool {
    s.get("default").is_some_and(|d| !d.is_null())
}

fn as_i64(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// The types the validator checks: `x-kubernetes-int-or-string` becomes `integer,string` as in
/// the server's schema conversion.
fn types(s: &Value) -> Vec<&str> {
    if flag(s, "x-kubernetes-int-or-string") {
        return vec!["integer", "string"];
    }
    match s.get("type").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => vec![t],
        _ => vec![],
    }
}

/// The string formats the apiextensions server validates; others are dropped before validation.
const SUPPORTED_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
];

fn normalized_format(f: &str) -> String {
    f.replace('-', "")
}

/// The schema's format if the server validates it.
fn format(s: &Value) -> Option<&str> {
    let f = s.get("format").and_then(Value::as_str)?;
    SUPPORTED_FORMATS
        .contains(&normalized_format(f).as_str())
        .then_some(f)
}

/// JSON type name of a decoded value, as kube-openapi infers it.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) => match go_format::number(n) {
            Number::Int(_) => "integer",
            Number::Float(_) => "number",
        },
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a float is an integer JSON can carry exactly.
fn is_json_integer(f: f64) -> bool {
    f.is_finite() && f.fract() == 0.0 && f.abs() <= (1u64 << 53) as f64
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Validates `object` against `schema` (the CRD version's `schema.openAPIV3Schema`), with the
/// server's error texts: OpenAPI value validations, then `x-kubernetes-embedded-resource`
/// invariants, then `x-kubernetes-list-type` set/map uniqueness. ObjectMeta rules of the root
/// `metadata` are the server's to check. CEL rules (`x-kubernetes-validations`) are not evaluated.
pub fn validate(schema: &Value, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_node(schema, object, "", &mut errors);
    validate_embedded_resources(schema, object, "", &mut errors);
    validate_list_types(schema, object, "", &mut errors);
    errors
}

fn validate_node(s: &Value, data: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if data.is_null() {
        check_null(s, path, errors);
        check_enum(s, data, path, errors);
        return;
    }
    check_type(s, data, path, errors);
    check_combinators(s, data, path, errors);
    match data {
        Value::String(text) => {
            check_string(s, text, data, path, errors);
            check_format(s, text, data, path, errors);
        }
        Value::Number(n) => check_number(s, go_format::number(n), data, path, errors),
        Value::Array(list) => check_array(s, list, path, errors),
        _ => {}
    }
    check_enum(s, data, path, errors);
    if let Value::Object(map) = data {
        check_object(s, map, path, errors);
    }
}

fn check_null(s: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let types = types(s);
    if !types.is_empty() && !types.contains(&"null") && !is_nullable(s) {
        errors.push(type_error(path, &types.join(","), "null"));
    }
}

/// kube-openapi's `InvalidType`: the bad value is the name of the actual type (or format).
fn type_error(path: &str, expected: &str, actual: &str) -> FieldError {
    let detail = format!(
        "{path} in body must be of type {expected}: {}",
        go_format::quote(actual)
    );
    FieldError::type_invalid(field_of(path), &Value::String(actual.into()), &detail)
}

fn check_type(s: &Value, data: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let types = types(s);
    let format = format(s);
    if types.is_empty() && format.is_none() {
        return;
    }
    let actual = json_type(data);
    let data_format = match data.as_number().map(go_format::number) {
        Some(Number::Int(_)) => "int64",
        Some(Number::Float(_)) => "float64",
        None => "",
    };
    let declares = |t: &str| types.contains(&t);
    let float_as_int = matches!(data.as_number().map(go_format::number), Some(Number::Float(f)) if is_json_integer(f))
        && declares("integer");
    let int_as_number = actual == "integer" && declares("number");
    let string_or_array = data.is_string() || data.is_array();
    if let Some(format) = format
        && !string_or_array
        && !(declares(actual) || data_format == format || float_as_int || int_as_number)
    {
        errors.push(type_error(path, format, data_format));
        return;
    }
    // kube-openapi accepts any string or array for a non-numeric type that carries a format.
    if format.is_some() && string_or_array && !(declares("number") || declares("integer")) {
        return;
    }
    if !(declares(actual) || float_as_int || int_as_number) {
        errors.push(type_error(path, &types.join(","), actual));
    }
}

/// `allOf`/`anyOf`/`oneOf`/`not` (value validations only in structural schemas). kube-openapi
/// reports these as plain errors, which the server turns into a cause without a field.
fn check_combinators(s: &Value, data: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let passes = |sub: &Value| {
        let mut errs = Vec::new();
        validate_node(sub, data, path, &mut errs);
        errs.is_empty()
    };
    let plain = |msg: String| FieldError::invalid("", &Value::String(String::new()), &msg);
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        let mut failed = false;
        for sub in all {
            let before = errors.len();
            validate_node(sub, data, path, errors);
            failed |= errors.len() > before;
        }
        if failed {
            errors.push(plain(format!(
                "{path} must validate all the schemas (allOf)"
            )));
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
        && !any.iter().any(passes)
    {
        errors.push(plain(format!(
            "{path} must validate at least one schema (anyOf)"
        )));
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
        && one.iter().filter(|sub| passes(sub)).count() != 1
    {
        errors.push(plain(format!(
            "{path} must validate one and only one schema (oneOf)"
        )));
    }
    if let Some(not) = s.get("not").filter(|v| v.is_object())
        && passes(not)
    {
        errors.push(plain(format!("{path} must not validate the schema (not)")));
    }
}

/// String constraints; like kube-openapi, only the first failing one is reported.
fn check_string(s: &Value, text: &str, data: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let chars = text.chars().count() as i64;
    if let Some(max) = as_i64(s.get("maxLength"))
        && chars > max
    {
        errors.push(FieldError::too_long(field_of(path)));
        return;
    }
    if let Some(min) = as_i64(s.get("minLength"))
        && chars < min
    {
        errors.push(FieldError::invalid(
            field_of(path),
            data,
            &format!("{path} in body should be at least {min} chars long"),
        ));
        return;
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
        let shown = match compile_go_regex(pattern) {
            Ok(re) if re.is_match(text) => return,
            Ok(_) => pattern.to_string(),
            Err(e) => format!("{pattern}, but pattern is invalid: {e}"),
        };
        errors.push(FieldError::invalid(
            field_of(path),
            data,
            &format!("{path} in body should match '{shown}'"),
        ));
    }
}

fn check_format(s: &Value, text: &str, data: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(format) = format(s) else { return };
    if !format_accepts(&normalized_format(format), text) {
        let detail = format!(
            "{path} in body must be of type {format}: {}",
            go_format::quote(text)
        );
        errors.push(FieldError::type_invalid(field_of(path), data, &detail));
    }
}

fn check_number(s: &Value, n: Number, data: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let field = field_of(path);
    if let Some(factor) = s.get("multipleOf").and_then(Value::as_f64) {
        let (ok, shown) = match n {
            Number::Int(i) => {
                let f = factor as i64;
                (
                    f == 0 || i.checked_rem(f).is_none_or(|r| r == 0),
                    f.to_string(),
                )
            }
            Number::Float(x) => {
                let mult = if factor < 1.0 {
                    1.0 / factor * x
                } else {
                    x / factor
                };
                (is_json_integer(mult), go_format::float(factor))
            }
        };
        if !ok {
            errors.push(FieldError::invalid(
                field,
                data,
                &format!("{path} in body should be a multiple of {shown}"),
            ));
        }
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMaximum");
        // Integers are compared with the bound truncated to an integer, as kube-openapi does.
        let (over, shown) = match n {
            Number::Int(i) => {
                let m = max as i64;
                (if exclusive { i >= m } else { i > m }, m.to_string())
            }
            Number::Float(x) => (
                if exclusive { x >= max } else { x > max },
                go_format::float(max),
            ),
        };
        if over {
            let op = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(FieldError::invalid(
                field,
                data,
                &format!("{path} in body should be {op} {shown}"),
            ));
        }
    }
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMinimum");
        let (under, shown) = match n {
            Number::Int(i) => {
                let m = min as i64;
                (if exclusive { i <= m } else { i < m }, m.to_string())
            }
            Number::Float(x) => (
                if exclusive { x <= min } else { x < min },
                go_format::float(min),
            ),
        };
        if under {
            let op = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(FieldError::invalid(
                field,
                data,
                &format!("{path} in body should be {op} {shown}"),
            ));
        }
    }
}

fn check_array(s: &Value, list: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    if let Some(item_schema) = items(s) {
        for (i, item) in list.iter().enumerate() {
            validate_node(item_schema, item, &format!("{path}[{i}]"), errors);
        }
    }
    if let Some(min) = as_i64(s.get("minItems"))
        && (list.len() as i64) < min
    {
        let detail = format!("{path} in body should have at least {min} items");
        errors.push(FieldError::invalid(
            field_of(path),
            &Value::from(list.len()),
            &detail,
        ));
    }
    if let Some(max) = as_i64(s.get("maxItems"))
        && (list.len() as i64) > max
    {
        errors.push(FieldError::too_many(field_of(path), list.len()));
    }
}

fn enum_matches(allowed: &Value, data: &Value) -> bool {
    match (allowed.as_number(), data.as_number()) {
        (Some(a), Some(d)) => a.as_f64() == d.as_f64(),
        _ => allowed == data,
    }
}

fn check_enum(s: &Value, data: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(allowed) = s
        .get("enum")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    else {
        return;
    };
    if allowed.iter().any(|a| enum_matches(a, data)) {
        return;
    }
    let names: Vec<String> = allowed
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| go_format::json(v))
        })
        .collect();
    errors.push(FieldError::not_supported(field_of(path), data, &names));
}

fn check_object(s: &Value, map: &Map<String, Value>, path: &str, errors: &mut Vec<FieldError>) {
    let count = map.len();
    if let Some(min) = as_i64(s.get("minProperties"))
        && (count as i64) < min
    {
        let detail = format!("{path} in body should have at least {min} properties");
        errors.push(FieldError::invalid(
            field_of(path),
            &Value::from(count),
            &detail,
        ));
        return;
    }
    if let Some(max) = as_i64(s.get("maxProperties"))
        && (count as i64) > max
    {
        errors.push(FieldError::too_many(field_of(path), count));
        return;
    }
    let props = properties(s);
    let declared = |k: &str| props.is_some_and(|p| p.contains_key(k));
    if s.get("additionalProperties") == Some(&Value::Bool(false)) {
        for key in map.keys().filter(|k| !declared(k)) {
            let detail = format!("{path}.{key} in body is a forbidden property");
            errors.push(FieldError::invalid(
                field_of(path),
                &Value::String(key.clone()),
                &detail,
            ));
        }
    } else if let Some(value_schema) = additional_schema(s) {
        for (key, value) in map.iter().filter(|(k, _)| !declared(k)) {
            validate_node(value_schema, value, &format!("{path}.{key}"), errors);
        }
    }
    if let Some(props) = props {
        for (name, prop) in props {
            if let Some(value) = map.get(name) {
                validate_node(prop, value, &child_name(path, name), errors);
            }
        }
    }
    for key in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(key) {
            errors.push(FieldError::required(field_of(&format!("{path}.{key}")), ""));
        }
    }
}

/// Walks object/array values together with their schemas, calling `visit` on each node with a
/// `field.Path`-style name (`a.b`, `a[1]`, `a[key]`).
fn walk(s: &Value, data: &Value, path: &str, visit: &mut dyn FnMut(&Value, &Value, &str)) {
    visit(s, data, path);
    match data {
        Value::Object(map) => {
            let props = properties(s);
            for (key, value) in map {
                if let Some(prop) = props.and_then(|p| p.get(key)) {
                    walk(prop, value, &child_name(path, key), visit);
                } else if let Some(value_schema) = additional_schema(s) {
                    walk(value_schema, value, &format!("{path}[{key}]"), visit);
                }
            }
        }
        Value::Array(list) => {
            if let Some(item_schema) = items(s) {
                for (i, item) in list.iter().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), visit);
                }
            }
        }
        _ => {}
    }
}

/// Embedded objects (`x-kubernetes-embedded-resource`) need a string `apiVersion` and `kind`.
fn validate_embedded_resources(
    schema: &Value,
    object: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    walk(schema, object, path, &mut |s, data, path| {
        let Value::Object(map) = data else { return };
        if !flag(s, "x-kubernetes-embedded-resource") {
            return;
        }
        for key in ["apiVersion", "kind"] {
            let field = child_name(path, key);
            match map.get(key) {
                None => errors.push(FieldError::required(&field, "must not be empty")),
                Some(Value::String(v)) if v.is_empty() => errors.push(FieldError::invalid(
                    &field,
                    &Value::from(""),
                    "must not be empty",
                )),
                Some(Value::String(v)) if key == "apiVersion" => {
                    if v.matches('/').count() > 1 {
                        let detail = format!("unexpected GroupVersion string: {v}");
                        errors.push(FieldError::invalid(
                            &field,
                            &Value::from(v.as_str()),
                            &detail,
                        ));
                    }
                }
                Some(Value::String(v)) => {
                    let problems = crate::names::dns1035_label_errors(&v.to_lowercase());
                    if !problems.is_empty() {
                        let detail = format!(
                            "may have mixed case, but should otherwise match: {}",
                            problems.join(",")
                        );
                        errors.push(FieldError::invalid(
                            &field,
                            &Value::from(v.as_str()),
                            &detail,
                        ));
                    }
                }
                Some(other) => errors.push(FieldError::invalid(&field, other, "must be a string")),
            }
        }
    });
}

/// `x-kubernetes-list-type: set` items must be unique; `map` items unique by their keys.
fn validate_list_types(schema: &Value, object: &Value, path: &str, errors: &mut Vec<FieldError>) {
    walk(schema, object, path, &mut |s, data, path| {
        let Value::Array(list) = data else { return };
        match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => {
                let mut seen: Vec<(&Value, usize)> = Vec::new();
                for (i, item) in list.iter().enumerate() {
                    match seen.iter_mut().find(|(v, _)| *v == item) {
                        Some((_, times)) => {
                            // Reported once per duplicated value, at its second occurrence.
                            if *times == 1 {
                                errors.push(FieldError::duplicate(&format!("{path}[{i}]"), item));
                            }
                            *times += 1;
                        }
                        None => seen.push((item, 1)),
                    }
                }
            }
            Some("map") => {
                if let Some(err) = list
                    .iter()
                    .enumerate()
                    .find(|(_, x)| !x.is_object() && !x.is_null())
                {
                    let (i, item) = err;
                    let detail = "must be an object for an array of list-type map";
                    errors.push(FieldError::invalid(&format!("{path}[{i}]"), item, detail));
                    return;
                }
                let keys = map_keys(s);
                let key_schemas = items(s).and_then(properties);
                let mut seen: Vec<Value> = Vec::new();
                for (i, item) in list.iter().enumerate() {
                    let Some(obj) = item.as_object() else {
                        continue;
                    };
                    let mut key = Map::new();
                    for k in &keys {
                        let value = obj.get(k).cloned().or_else(|| {
                            key_schemas
                                .and_then(|p| p.get(k))
                                .and_then(|p| p.get("default"))
                                .cloned()
                        });
                        // An absent key without default counts as one shared "unspecified" value.
                        key.insert(
                            k.clone(),
                            value.unwrap_or_else(|| Value::Object(Map::new())),
                        );
                    }
                    let key = Value::Object(key);
                    if seen.contains(&key) {
                        errors.push(FieldError::duplicate(&format!("{path}[{i}]"), &key));
                    } else {
                        seen.push(key);
                    }
                }
            }
            _ => {}
        }
    });
}

fn map_keys(s: &Value) -> Vec<String> {
    s.get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Regular expressions and formats
// ---------------------------------------------------------------------------------------------

/// Compiles a Go (RE2) pattern. RE2's `\d`, `\w`, `\s` are ASCII-only and `[`, `&`, `~`, `-`
/// inside a class are literals, so those are rewritten for Rust's Unicode-aware syntax.
pub fn compile_go_regex(pattern: &str) -> Result<Regex, regex::Error> {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let ascii = match next {
                    'd' => Some(("0-9", false)),
                    'D' => Some(("0-9", true)),
                    'w' => Some(("0-9A-Za-z_", false)),
                    'W' => Some(("0-9A-Za-z_", true)),
                    's' => Some(("\\t\\n\\f\\r ", false)),
                    'S' => Some(("\\t\\n\\f\\r ", true)),
                    _ => None,
                };
                match ascii {
                    Some((set, false)) if in_class => out.push_str(set),
                    Some((set, negated)) => {
                        out.push_str(if negated { "[^" } else { "[" });
                        out.push_str(set);
                        out.push(']');
                    }
                    None => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // POSIX class such as [:alpha:], supported by both dialects.
                out.push('[');
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            ']' if in_class && at_class_start => out.push_str("\\]"),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '-' if in_class && chars.peek() == Some(&'-') => out.push_str("\\-"),
            c => out.push(c),
        }
    }
    Regex::new(&out)
}

fn format_regexes() -> &'static HashMap<&'static str, Regex> {
    static REGEXES: OnceLock<HashMap<&'static str, Regex>> = OnceLock::new();
    REGEXES.get_or_init(|| {
        let octet = r"(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])";
        let table = [
            ("bsonobjectid", r"^[0-9a-fA-F]{24}$".to_string()),
            ("uuid", r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$".to_string()),
            ("uuid3", r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$".to_string()),
            ("uuid4", r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$".to_string()),
            ("uuid5", r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$".to_string()),
            ("hexcolor", r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$".to_string()),
            ("rgbcolor", format!(r"^rgb\(\s*{octet}\s*,\s*{octet}\s*,\s*{octet}\s*\)$")),
            ("ssn", r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$".to_string()),
            ("email", r"^[^@\s<>]+@[^@\s<>]+$".to_string()),
            (
                "hostname",
                r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$".to_string(),
            ),
            ("datetimeclock", r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$".to_string()),
            ("duration", r"((\d+)\s*([A-Za-zµ]+))".to_string()),
        ];
        table.into_iter().filter_map(|(name, re)| Regex::new(&re).ok().map(|re| (name, re))).collect()
    })
}

fn regex_accepts(name: &str, text: &str) -> bool {
    format_regexes()
        .get(name)
        .is_some_and(|re| re.is_match(text))
}

/// Whether `text` is valid for a (normalized) supported format, as the Go `strfmt` registry
/// decides. `isbn*` and `creditcard` are not checked.
fn format_accepts(format: &str, text: &str) -> bool {
    use std::net::IpAddr;
    match format {
        "datetime" => is_date_time(text),
        "date" => is_date(text),
        "duration" => is_duration(text),
        "byte" => is_base64(text),
        "ipv4" => text.parse::<IpAddr>().is_ok() && text.contains('.'),
        "ipv6" => text.parse::<IpAddr>().is_ok() && text.contains(':'),
        "cidr" => is_cidr(text),
        "mac" => is_mac(text),
        "uri" => is_uri(text),
        "hostname" => text.len() <= 255 && regex_accepts("hostname", text),
        "password" | "isbn" | "isbn10" | "isbn13" | "creditcard" => true,
        other => regex_accepts(other, text),
    }
}

/// strfmt `IsDate`: Go layout `2006-01-02`.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        text.get(r)
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))?
            .parse::<i32>()
            .ok()
    };
    match (num(0..4), num(5..7), num(8..10)) {
        (Some(y), Some(m), Some(d)) => i8::try_from(m).is_ok_and(|m| {
            i8::try_from(d).is_ok_and(|d| jiff::civil::Date::new(y as i16, m, d).is_ok())
        }),
        _ => false,
    }
}

/// strfmt `IsDateTime`: a date, `t`/`T`, then `hh:mm:ss[.frac](Z|±hh:mm)`.
fn is_date_time(text: &str) -> bool {
    if text.len() < 4 {
        return false;
    }
    let lower = text.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    let Some(caps) = format_regexes()
        .get("datetimeclock")
        .and_then(|re| re.captures(parts[1]))
    else {
        return false;
    };
    let part = |i: usize| caps.get(i).map_or("", |m| m.as_str());
    part(1) <= "23" && part(2) <= "59" && part(3) <= "59"
}

/// strfmt `ParseDuration`: a Go duration (`1h30m`), or `<n> <unit>` phrases such as `3 days`.
fn is_duration(text: &str) -> bool {
    if is_go_duration(text) {
        return true;
    }
    const UNITS: &[&str] = &[
        "ns", "nano", "nanos", "us", "µs", "micro", "micros", "ms", "milli", "millis", "s", "sec",
        "secs", "m", "min", "mins", "h", "hr", "hrs", "hour", "hours", "d", "day", "days", "w",
        "wk", "wks", "week", "weeks",
    ];
    let Some(re) = format_regexes().get("duration") else {
        return false;
    };
    re.captures_iter(text).any(|c| {
        c.get(2).is_some_and(|n| n.as_str().parse::<i64>().is_ok())
            && c.get(3)
                .is_some_and(|u| UNITS.contains(&u.as_str().trim().to_lowercase().as_str()))
    })
}

/// Go `time.ParseDuration` syntax.
fn is_go_duration(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text);
    if s == "0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number = &rest[..digits];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if !["ns", "us", "µs", "μs", "ms", "s", "m", "h"].contains(&&rest[..unit_len]) {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}

/// Go `base64.StdEncoding.DecodeString` (which skips CR and LF).
fn is_base64(text: &str) -> bool {
    let data: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    if !data.len().is_multiple_of(4) {
        return false;
    }
    let padding = data.iter().rev().take_while(|b| **b == b'=').count();
    padding <= 2
        && data[..data.len() - padding]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

fn is_cidr(text: &str) -> bool {
    let Some((ip, bits)) = text.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    !bits.is_empty()
        && bits.len() <= 3
        && bits.bytes().all(|b| b.is_ascii_digit())
        && bits.parse::<u32>().is_ok_and(|b| b <= max)
}

/// Go `net.ParseMAC`: 6, 8 or 20 octets separated by `:` or `-`, or dotted groups of 4 hex digits.
fn is_mac(text: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    for sep in [':', '-'] {
        let groups: Vec<&str> = text.split(sep).collect();
        if [6, 8, 20].contains(&groups.len()) && groups.iter().all(|g| hex(g, 2)) {
            return true;
        }
    }
    let groups: Vec<&str> = text.split('.').collect();
    [3, 4, 10].contains(&groups.len()) && groups.iter().all(|g| hex(g, 4))
}

/// Go `url.ParseRequestURI`: an absolute URI or an absolute path, without spaces or controls.
fn is_uri(text: &str) -> bool {
    if text.is_empty() || text.chars().any(|c| c.is_control() || c == ' ') {
        return false;
    }
    if text.starts_with('/') {
        return true;
    }
    match text.split_once(':') {
        Some((scheme, _)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Pruning
// ---------------------------------------------------------------------------------------------

/// Removes fields the schema does not declare (unless `x-kubernetes-preserve-unknown-fields`),
/// keeping `apiVersion`, `kind` and `metadata` at the root and in embedded resources (metadata
/// is left as it is). Like the server's decoder, it also drops `null` values of non-nullable
/// fields that have no default.
pub fn prune(schema: &Value, object: &mut Value) {
    prune_node(schema, object, true);
}

fn prune_node(s: &Value, x: &mut Value, resource_root: bool) {
    match x {
        Value::Object(map) => {
            let props = properties(s);
            let value_schema = additional_schema(s);
            let keep_unknown = flag(s, "x-kubernetes-preserve-unknown-fields")
                || s.get("additionalProperties") == Some(&Value::Bool(true));
            map.retain(|key, value| {
                if resource_root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    return true;
                }
                match props.and_then(|p| p.get(key)).or(value_schema) {
                    Some(sub) => {
                        if value.is_null() && !is_nullable(sub) && !has_default(sub) {
                            return false;
                        }
                        prune_node(sub, value, flag(sub, "x-kubernetes-embedded-resource"));
                        true
                    }
                    None => keep_unknown,
                }
            });
        }
        Value::Array(list) => {
            let item_schema = items(s).unwrap_or(&Value::Null);
            for item in list {
                prune_node(
                    item_schema,
                    item,
                    flag(item_schema, "x-kubernetes-embedded-resource"),
                );
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Defaulting
// ---------------------------------------------------------------------------------------------

/// Applies `default` values of the schema to absent fields (and to `null`s of non-nullable
/// fields), recursively: defaults inside a defaulted object apply too.
pub fn apply_defaults(schema: &Value, object: &mut Value) {
    match object {
        Value::Object(map) => {
            let props = properties(schema);
            for (name, prop) in props.into_iter().flatten() {
                let Some(default) = prop.get("default").filter(|d| !d.is_null()) else {
                    continue;
                };
                let missing = map
                    .get(name)
                    .is_none_or(|v| v.is_null() && !is_nullable(prop));
                if missing {
                    map.insert(name.clone(), default.clone());
                }
            }
            let value_schema = additional_schema(schema);
            for (key, value) in map.iter_mut() {
                if let Some(prop) = props.and_then(|p| p.get(key)) {
                    apply_defaults(prop, value);
                } else if let Some(value_schema) = value_schema {
                    fill_null(value_schema, value);
                    apply_defaults(value_schema, value);
                }
            }
        }
        Value::Array(list) => {
            if let Some(item_schema) = items(schema) {
                for item in list {
                    fill_null(item_schema, item);
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn fill_null(s: &Value, value: &mut Value) {
    if value.is_null()
        && !is_nullable(s)
        && let Some(default) = s.get("default").filter(|d| !d.is_null())
    {
        *value = default.clone();
    }
}

// ---------------------------------------------------------------------------------------------
// Structural schema check
// ---------------------------------------------------------------------------------------------

/// Checks that a CRD version's schema is structural, as the API server requires on CRD create.
/// Fields are relative to the schema (`properties[spec].type`); the server prefixes them with
/// e.g. `spec.versions[0].schema.openAPIV3Schema.`.
pub fn check_structural(schema: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_schema_node(schema, "", NodeKind::Root, &mut errors);
    errors
}

#[derive(Clone, Copy, PartialEq)]
enum NodeKind {
    Root,
    Property,
    Items,
}

const OPENAPI_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

fn check_schema_node(s: &Value, path: &str, kind: NodeKind, errors: &mut Vec<FieldError>) {
    let at = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    let Some(node) = s.as_object() else {
        errors.push(FieldError::invalid(
            if path.is_empty() { "<nil>" } else { path },
            s,
            "must be an object",
        ));
        return;
    };
    let ty = node.get("type").and_then(Value::as_str).unwrap_or("");
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");

    if node.get("type").is_some_and(|t| !t.is_string()) {
        errors.push(FieldError::invalid(
            &at("type"),
            &node["type"],
            "must be a string",
        ));
    } else if ty.is_empty() {
        if kind == NodeKind::Root {
            errors.push(FieldError::required(
                &at("type"),
                "must not be empty at the root",
            ));
        } else if !int_or_string && !preserve {
            let detail = if kind == NodeKind::Items {
                "must not be empty for specified array items"
            } else {
                "must not be empty for specified object fields"
            };
            errors.push(FieldError::required(&at("type"), detail));
        }
    } else if !OPENAPI_TYPES.contains(&ty) {
        let supported: Vec<String> = OPENAPI_TYPES.iter().map(|t| t.to_string()).collect();
        errors.push(FieldError::not_supported(
            &at("type"),
            &Value::from(ty),
            &supported,
        ));
    } else if kind == NodeKind::Root && ty != "object" {
        errors.push(FieldError::invalid(
            &at("type"),
            &Value::from(ty),
            "must be object at the root",
        ));
    }
    if int_or_string && !ty.is_empty() {
        errors.push(FieldError::invalid(
            &at("type"),
            &Value::from(ty),
            "must be empty if x-kubernetes-int-or-string is true",
        ));
    }
    if node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errors.push(FieldError::invalid(
            &at("x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(false),
            "must be true or undefined",
        ));
    }
    if flag(s, "x-kubernetes-embedded-resource") && ty != "object" {
        errors.push(FieldError::invalid(
            &at("type"),
            &Value::from(ty),
            "must be object if x-kubernetes-embedded-resource is true",
        ));
    }
    if ty == "array" && items(s).is_none() {
        errors.push(FieldError::required(&at("items"), "must be specified"));
    }
    if flag(s, "uniqueItems") {
        errors.push(FieldError::forbidden(
            &at("uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if node.contains_key("properties") && node.contains_key("additionalProperties") {
        errors.push(FieldError::forbidden(
            &at("additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if let Some(list_type) = node.get("x-kubernetes-list-type") {
        match list_type.as_str() {
            Some("atomic" | "set" | "map") if ty != "array" => {
                errors.push(FieldError::invalid(
                    &at("x-kubernetes-list-type"),
                    list_type,
                    "must only be used on type=array",
                ));
            }
            Some("map") if map_keys(s).is_empty() => {
                errors.push(FieldError::required(
                    &at("x-kubernetes-list-map-keys"),
                    "must not be empty if x-kubernetes-list-type is map",
                ));
            }
            Some("atomic" | "set" | "map") => {}
            _ => {
                let supported = ["atomic", "map", "set"].map(String::from);
                errors.push(FieldError::not_supported(
                    &at("x-kubernetes-list-type"),
                    list_type,
                    &supported,
                ));
            }
        }
    }
    if kind == NodeKind::Root
        && let Some(meta) = properties(s).and_then(|p| p.get("metadata"))
        && properties(meta).is_some_and(|p| p.keys().any(|k| k != "name" && k != "generateName"))
    {
        errors.push(FieldError::forbidden(
            &at("properties[metadata]"),
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }
    for (name, prop) in properties(s).into_iter().flatten() {
        check_schema_node(
            prop,
            &at(&format!("properties[{name}]")),
            NodeKind::Property,
            errors,
        );
    }
    if let Some(item_schema) = node.get("items") {
        check_schema_node(item_schema, &at("items"), NodeKind::Items, errors);
    }
    if let Some(value_schema) = additional_schema(s) {
        check_schema_node(
            value_schema,
            &at("additionalProperties"),
            NodeKind::Property,
            errors,
        );
    }
}

#[cfg(test)]
mod tests;
