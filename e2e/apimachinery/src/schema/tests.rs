use super::*;
use serde_json::json;

fn lease_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["principalId", "budgetAmount"],
                "properties": {
                    "principalId": {"type": "string", "minLength": 1, "maxLength": 10},
                    "id": {"type": "string", "pattern": "^[0-9]{12}$"},
                    "budgetAmount": {"type": "number", "minimum": 0},
                    "budgetCurrency": {"type": "string", "enum": ["USD", "EUR"], "default": "USD"},
                    "replicas": {"type": "integer", "format": "int32", "maximum": 10, "exclusiveMaximum": true},
                    "expiresOn": {"type": "string", "format": "date-time"},
                    "port": {"x-kubernetes-int-or-string": true},
                    "emails": {"type": "array", "items": {"type": "string"}, "maxItems": 2, "minItems": 1},
                    "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
                    "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "note": {"type": "string", "nullable": true},
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true
                    }
                }
            },
            "status": {
                "type": "object",
                "properties": {
                    "conditions": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["type"],
                        "items": {
                            "type": "object",
                            "required": ["type", "status"],
                            "properties": {
                                "type": {"type": "string"},
                                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                                "reason": {"type": "string", "default": "Unspecified"}
                            }
                        }
                    }
                }
            }
        }
    })
}

fn lease(spec: Value) -> Value {
    json!({"apiVersion": "dce.example.com/v1", "kind": "Lease", "metadata": {"name": "x"}, "spec": spec})
}

fn messages(errors: &[FieldError]) -> Vec<(String, String, String)> {
    errors
        .iter()
        .map(|e| (e.field.clone(), e.reason.clone(), e.message.clone()))
        .collect()
}

fn one(errors: Vec<FieldError>) -> (String, String, String) {
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    messages(&errors).remove(0)
}

fn t(field: &str, reason: &str, message: &str) -> (String, String, String) {
    (field.to_string(), reason.to_string(), message.to_string())
}

#[test]
fn valid_object_has_no_errors() {
    let obj = lease(json!({
        "principalId": "alice", "id": "123456789012", "budgetAmount": 1.5, "budgetCurrency": "EUR",
        "replicas": 3, "expiresOn": "2026-01-02T03:04:05Z", "port": "http", "emails": ["a@b.c"],
        "tags": ["a", "b"], "labels": {"x": "abc"}, "raw": {"anything": [1, {"x": null}]}, "note": null,
        "template": {"apiVersion": "v1", "kind": "ConfigMap"}
    }));
    assert_eq!(validate(&lease_schema(), &obj), vec![]);
}

#[test]
fn pattern_mismatch_names_field_and_pattern() {
    let errors = validate(
        &lease_schema(),
        &lease(json!({"principalId": "a", "budgetAmount": 1, "id": "123"})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.id",
            "FieldValueInvalid",
            r#"Invalid value: "123": spec.id in body should match '^[0-9]{12}$'"#
        )
    );
}

#[test]
fn missing_required_fields() {
    let errors = validate(&lease_schema(), &lease(json!({"budgetAmount": 1})));
    assert_eq!(
        one(errors),
        t("spec.principalId", "FieldValueRequired", "Required value")
    );
    let schema =
        json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}});
    assert_eq!(
        one(validate(&schema, &json!({}))),
        t("spec", "FieldValueRequired", "Required value")
    );
}

#[test]
fn enum_lists_supported_values() {
    let errors = validate(
        &lease_schema(),
        &lease(json!({"principalId": "a", "budgetAmount": 1, "budgetCurrency": "x"})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.budgetCurrency",
            "FieldValueNotSupported",
            r#"Unsupported value: "x": supported values: "USD", "EUR""#
        )
    );
    let numeric =
        json!({"type": "object", "properties": {"n": {"type": "integer", "enum": [1, 2]}}});
    assert_eq!(
        one(validate(&numeric, &json!({"n": 3}))),
        t(
            "n",
            "FieldValueNotSupported",
            r#"Unsupported value: 3: supported values: "1", "2""#
        )
    );
    assert_eq!(validate(&numeric, &json!({"n": 2.0})), vec![]);
}

#[test]
fn type_mismatch_reports_actual_type() {
    let errors = validate(
        &lease_schema(),
        &lease(json!({"principalId": "a", "budgetAmount": "string"})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.budgetAmount",
            "FieldValueTypeInvalid",
            r#"Invalid value: "string": spec.budgetAmount in body must be of type number: "string""#
        )
    );
    let errors = validate(
        &lease_schema(),
        &lease(json!({"principalId": 5, "budgetAmount": 1})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.principalId",
            "FieldValueTypeInvalid",
            r#"Invalid value: "integer": spec.principalId in body must be of type string: "integer""#
        )
    );
}

#[test]
fn integer_versus_number() {
    let schema = lease_schema();
    // An integer is a valid number; an integral float is a valid integer; 1.5 is not.
    assert_eq!(
        validate(
            &schema,
            &lease(json!({"principalId": "a", "budgetAmount": 2}))
        ),
        vec![]
    );
    assert_eq!(
        validate(
            &schema,
            &lease(json!({"principalId": "a", "budgetAmount": 2, "replicas": 2.0}))
        ),
        vec![]
    );
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "a", "budgetAmount": 2, "replicas": 1.5})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.replicas",
            "FieldValueTypeInvalid",
            r#"Invalid value: "number": spec.replicas in body must be of type integer: "number""#
        )
    );
}

#[test]
fn numeric_bounds() {
    let schema = lease_schema();
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "a", "budgetAmount": -1})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.budgetAmount",
            "FieldValueInvalid",
            "Invalid value: -1: spec.budgetAmount in body should be greater than or equal to 0"
        )
    );
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "a", "budgetAmount": -0.5})),
    );
    assert_eq!(
        one(errors).2,
        "Invalid value: -0.5: spec.budgetAmount in body should be greater than or equal to 0"
    );
    assert_eq!(
        validate(
            &schema,
            &lease(json!({"principalId": "a", "budgetAmount": 0}))
        ),
        vec![]
    );
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "a", "budgetAmount": 1, "replicas": 10})),
    );
    assert_eq!(
        one(errors).2,
        "Invalid value: 10: spec.replicas in body should be less than 10"
    );
    assert_eq!(
        validate(
            &schema,
            &lease(json!({"principalId": "a", "budgetAmount": 1, "replicas": 9}))
        ),
        vec![]
    );
    let exclusive_min = json!({"type": "object", "properties": {"n": {"type": "number", "minimum": 1, "exclusiveMinimum": true, "multipleOf": 2}}});
    let errors = validate(&exclusive_min, &json!({"n": 1}));
    assert_eq!(
        messages(&errors)
            .into_iter()
            .map(|m| m.2)
            .collect::<Vec<_>>(),
        vec![
            "Invalid value: 1: n in body should be a multiple of 2",
            "Invalid value: 1: n in body should be greater than 1",
        ]
    );
}

#[test]
fn string_lengths() {
    let schema = lease_schema();
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "", "budgetAmount": 1})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.principalId",
            "FieldValueInvalid",
            r#"Invalid value: "": spec.principalId in body should be at least 1 chars long"#
        )
    );
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "abcdefghijk", "budgetAmount": 1})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.principalId",
            "FieldValueTooLong",
            "Too long: value is too long"
        )
    );
    // Length counts characters, not bytes.
    assert_eq!(
        validate(
            &schema,
            &lease(json!({"principalId": "éééééééééé", "budgetAmount": 1}))
        ),
        vec![]
    );
}

#[test]
fn array_sizes_and_item_paths() {
    let schema = lease_schema();
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "a", "budgetAmount": 1, "emails": ["a", "b", "c"]})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.emails",
            "FieldValueTooMany",
            "Too many: 3: has too many items"
        )
    );
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "a", "budgetAmount": 1, "emails": []})),
    );
    assert_eq!(
        one(errors).2,
        "Invalid value: 0: spec.emails in body should have at least 1 items"
    );
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "a", "budgetAmount": 1, "emails": ["a", 7]})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.emails[1]",
            "FieldValueTypeInvalid",
            r#"Invalid value: "integer": spec.emails[1] in body must be of type string: "integer""#
        )
    );
}

#[test]
fn map_values_use_additional_properties() {
    let errors = validate(
        &lease_schema(),
        &lease(json!({"principalId": "a", "budgetAmount": 1, "labels": {"k": "long"}})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.labels.k",
            "FieldValueTooLong",
            "Too long: value is too long"
        )
    );
}

#[test]
fn int_or_string() {
    let schema = lease_schema();
    assert_eq!(
        validate(
            &schema,
            &lease(json!({"principalId": "a", "budgetAmount": 1, "port": 80}))
        ),
        vec![]
    );
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "a", "budgetAmount": 1, "port": true})),
    );
    assert_eq!(
        one(errors).2,
        r#"Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#
    );
}

#[test]
fn nullable_and_null() {
    let schema = lease_schema();
    assert_eq!(
        validate(
            &schema,
            &lease(json!({"principalId": "a", "budgetAmount": 1, "note": null}))
        ),
        vec![]
    );
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "a", "budgetAmount": null})),
    );
    assert_eq!(
        one(errors).2,
        r#"Invalid value: "null": spec.budgetAmount in body must be of type number: "null""#
    );
}

#[test]
fn date_time_format() {
    let schema = lease_schema();
    for ok in [
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05.123+02:00",
        "2026-01-02t03:04:05z",
    ] {
        assert_eq!(
            validate(
                &schema,
                &lease(json!({"principalId": "a", "budgetAmount": 1, "expiresOn": ok}))
            ),
            vec![],
            "{ok}"
        );
    }
    for bad in [
        "tomorrow",
        "2026-13-02T03:04:05Z",
        "2026-02-30T03:04:05Z",
        "2026-01-02T24:00:00Z",
        "2026-01-02 03:04:05Z",
    ] {
        let errors = validate(
            &schema,
            &lease(json!({"principalId": "a", "budgetAmount": 1, "expiresOn": bad})),
        );
        assert_eq!(
            one(errors),
            t(
                "spec.expiresOn",
                "FieldValueTypeInvalid",
                &format!(
                    "Invalid value: \"{bad}\": spec.expiresOn in body must be of type date-time: \"{bad}\""
                )
            ),
        );
    }
    // A number where a formatted string is expected names the format and the number's kind.
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "a", "budgetAmount": 1, "expiresOn": 5})),
    );
    assert_eq!(
        one(errors).2,
        r#"Invalid value: "int64": spec.expiresOn in body must be of type date-time: "int64""#
    );
}

#[test]
fn other_formats() {
    let cases = [
        ("date", "2024-02-29", "2023-02-29"),
        ("duration", "1h30m", "soon"),
        ("byte", "aGVsbG8=", "a=b"),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123"),
        ("ipv4", "10.0.0.1", "10.0.0.256"),
        ("ipv6", "::1", "10.0.0.1"),
        ("cidr", "10.0.0.0/8", "10.0.0.0/33"),
        ("mac", "00:1a:2B:3c:4d:5e", "00:1a"),
        ("hostname", "example.com", "-bad-"),
        ("email", "a@b.c", "nope"),
    ];
    for (format, ok, bad) in cases {
        let schema =
            json!({"type": "object", "properties": {"v": {"type": "string", "format": format}}});
        assert_eq!(
            validate(&schema, &json!({"v": ok})),
            vec![],
            "{format} {ok}"
        );
        assert_eq!(
            validate(&schema, &json!({"v": bad})).len(),
            1,
            "{format} {bad}"
        );
    }
    // int32 and unknown formats are not validated by the server.
    let schema = json!({"type": "object", "properties": {"v": {"type": "integer", "format": "int32"}, "w": {"type": "string", "format": "color"}}});
    assert_eq!(
        validate(&schema, &json!({"v": 1i64 << 40, "w": "x"})),
        vec![]
    );
}

#[test]
fn list_type_set_and_map_uniqueness() {
    let schema = lease_schema();
    let errors = validate(
        &schema,
        &lease(json!({"principalId": "a", "budgetAmount": 1, "tags": ["a", "b", "a", "a"]})),
    );
    assert_eq!(
        one(errors),
        t(
            "spec.tags[2]",
            "FieldValueDuplicate",
            r#"Duplicate value: "a""#
        )
    );
    let obj = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True"}, {"type": "Synced", "status": "True"}, {"type": "Ready", "status": "False"}
    ]}});
    assert_eq!(
        one(validate(&schema, &obj)),
        t(
            "status.conditions[2]",
            "FieldValueDuplicate",
            r#"Duplicate value: {"type":"Ready"}"#
        )
    );
}

#[test]
fn nested_required_and_enum_in_list_items() {
    let obj = json!({"status": {"conditions": [{"type": "Ready", "status": "Maybe"}, {"status": "True"}]}});
    let errors = validate(&lease_schema(), &obj);
    assert_eq!(
        messages(&errors),
        vec![
            t(
                "status.conditions[0].status",
                "FieldValueNotSupported",
                r#"Unsupported value: "Maybe": supported values: "True", "False", "Unknown""#
            ),
            t(
                "status.conditions[1].type",
                "FieldValueRequired",
                "Required value"
            ),
        ]
    );
}

#[test]
fn embedded_resource_needs_api_version_and_kind() {
    let errors = validate(
        &lease_schema(),
        &lease(json!({"principalId": "a", "budgetAmount": 1, "template": {"kind": ""}})),
    );
    assert_eq!(
        messages(&errors),
        vec![
            t(
                "spec.template.apiVersion",
                "FieldValueRequired",
                "Required value: must not be empty"
            ),
            t(
                "spec.template.kind",
                "FieldValueInvalid",
                r#"Invalid value: "": must not be empty"#
            ),
        ]
    );
}

#[test]
fn go_regex_semantics() {
    // \d is ASCII-only in RE2.
    let re = compile_go_regex(r"^\d+$").unwrap();
    assert!(re.is_match("123"));
    assert!(!re.is_match("١٢٣"));
    let re = compile_go_regex(r"^[\w.-]+$").unwrap();
    assert!(re.is_match("a_b.c-d"));
    assert!(!re.is_match("é"));
    // `[` and `&&` are literals inside an RE2 class.
    let re = compile_go_regex(r"^[a[&&]+$").unwrap();
    assert!(re.is_match("a[&"));
    let re = compile_go_regex(r"^[]a]+$").unwrap();
    assert!(re.is_match("]a"));
    let schema = json!({"type": "object", "properties": {"v": {"type": "string", "pattern": "("}}});
    let (_, _, msg) = one(validate(&schema, &json!({"v": "x"})));
    assert!(
        msg.starts_with(
            r#"Invalid value: "x": v in body should match '(, but pattern is invalid: "#
        ),
        "{msg}"
    );
}

#[test]
fn prune_drops_undeclared_fields() {
    let mut obj = lease(json!({
        "principalId": "a", "unknown": 1, "raw": {"kept": {"deep": true}},
        "labels": {"a": "b"}, "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}},
        "budgetAmount": null, "note": null
    }));
    obj["extra"] = json!("gone");
    obj["metadata"]["unknownMeta"] = json!(1);
    obj["status"] =
        json!({"conditions": [{"type": "Ready", "status": "True", "bogus": 1}], "other": 1});
    prune(&lease_schema(), &mut obj);
    assert_eq!(
        obj,
        json!({
            "apiVersion": "dce.example.com/v1", "kind": "Lease", "metadata": {"name": "x", "unknownMeta": 1},
            "spec": {
                "principalId": "a", "raw": {"kept": {"deep": true}}, "labels": {"a": "b"},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}},
                "note": null
            },
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        })
    );
}

#[test]
fn prune_object_without_properties_drops_everything() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object"}}});
    let mut obj = json!({"spec": {"a": 1}});
    prune(&schema, &mut obj);
    assert_eq!(obj, json!({"spec": {}}));
}

#[test]
fn defaults_fill_absent_and_null_fields_recursively() {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "default": {},
                "properties": {
                    "currency": {"type": "string", "default": "USD"},
                    "limits": {"type": "object", "default": {"max": 5}, "properties": {"max": {"type": "integer"}, "min": {"type": "integer", "default": 0}}},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"w": {"type": "integer", "default": 1}}}},
                    "map": {"type": "object", "additionalProperties": {"type": "string", "default": "d"}},
                    "keep": {"type": "string", "nullable": true, "default": "x"}
                }
            }
        }
    });
    let mut obj = json!({});
    apply_defaults(&schema, &mut obj);
    assert_eq!(
        obj,
        json!({"spec": {"currency": "USD", "keep": "x", "limits": {"max": 5, "min": 0}}})
    );

    let mut obj = json!({"spec": {"currency": null, "items": [{}, {"w": 7}], "map": {"a": null, "b": "v"}, "keep": null}});
    apply_defaults(&schema, &mut obj);
    assert_eq!(
        obj,
        json!({"spec": {
            "currency": "USD", "limits": {"max": 5, "min": 0}, "items": [{"w": 1}, {"w": 7}],
            "map": {"a": "d", "b": "v"}, "keep": null
        }})
    );
}

#[test]
fn structural_schema_checks() {
    assert_eq!(check_structural(&lease_schema()), vec![]);
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {"properties": {"a": {"type": "string"}}},
            "list": {"type": "array"},
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "map"},
            "weird": {"type": "strin"},
            "ios": {"type": "string", "x-kubernetes-int-or-string": true},
            "free": {"x-kubernetes-preserve-unknown-fields": true}
        }
    });
    let errors = check_structural(&schema);
    let got: Vec<(String, String)> = errors
        .iter()
        .map(|e| (e.field.clone(), e.message.clone()))
        .collect();
    let expected = vec![
        (
            "properties[ios].type",
            r#"Invalid value: "string": must be empty if x-kubernetes-int-or-string is true"#,
        ),
        (
            "properties[list].items",
            "Required value: must be specified",
        ),
        (
            "properties[spec].type",
            "Required value: must not be empty for specified object fields",
        ),
        (
            "properties[tags].x-kubernetes-list-map-keys",
            "Required value: must not be empty if x-kubernetes-list-type is map",
        ),
        (
            "properties[weird].type",
            r#"Unsupported value: "strin": supported values: "array", "boolean", "integer", "number", "object", "string""#,
        ),
    ];
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(
        got_sorted,
        expected
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    let root = check_structural(&json!({"type": "string"}));
    assert_eq!(
        one(root).2,
        r#"Invalid value: "string": must be object at the root"#
    );
    let root = check_structural(&json!({"properties": {}}));
    assert_eq!(
        one(root),
        t(
            "type",
            "FieldValueRequired",
            "Required value: must not be empty at the root"
        )
    );
}

#[test]
fn never_panics_on_odd_schemas() {
    let extreme = json!({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": -1, "maximum": 1e300, "minimum": -1e300}}});
    assert_eq!(validate(&extreme, &json!({"n": i64::MIN})), vec![]);
    let odd = [
        json!(null),
        json!(5),
        json!({"type": 5, "properties": 3, "items": "x", "required": [1], "enum": [], "pattern": 2}),
    ];
    let data = [
        json!(null),
        json!({"a": [1, {"b": null}]}),
        json!([1, 2]),
        json!("s"),
    ];
    for s in &odd {
        for d in &data {
            let _ = validate(s, d);
            let mut d2 = d.clone();
            prune(s, &mut d2);
            apply_defaults(s, &mut d2);
            let _ = check_structural(s);
        }
    }
}
