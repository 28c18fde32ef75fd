use super::*;
use serde_json::json;

fn schema() -> Value {
    json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "replicas": {"type": "integer"}, "image": {"type": "string"}, "args": {"type": "array", "items": {"type": "string"}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}
        }},
        "status": {"type": "object", "properties": {
            "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}}
        }}
    }})
}

fn ctx<'a>(manager: &'a str, now: &'a str) -> ApplyContext<'a> {
    ApplyContext {
        manager,
        subresource: None,
        now,
        api_version: "dce.example.com/v1",
    }
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "dce.example.com/v1", "kind": "Lease", "metadata": {"name": "l", "namespace": "ns"}, "spec": spec})
}

fn entries(v: &Value) -> Vec<Value> {
    v["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn fields_of_manager(v: &Value, manager: &str) -> Value {
    entries(v)
        .into_iter()
        .find(|e| e["manager"] == manager)
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn apply_on_create_records_exact_managed_fields_entry() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let applied =
        obj(json!({"replicas": 1, "tags": ["a"], "ports": [{"name": "http", "port": 80}]}));
    let mut applied = applied;
    applied["metadata"]["labels"] = json!({"app": "x"});
    applied["metadata"]["finalizers"] = json!(["dce/finalizer"]);
    let out = apply(
        None,
        &applied,
        &ctx("kubectl", "2026-01-01T00:00:00Z"),
        false,
        &lt,
    )
    .unwrap();
    assert_eq!(out["spec"], applied["spec"]);
    assert_eq!(
        entries(&out),
        vec![json!({
            "manager": "kubectl", "operation": "Apply", "apiVersion": "dce.example.com/v1", "time": "2026-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:finalizers": {"v:\"dce/finalizer\"": {}}, "f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:ports": {"k:{\"name\":\"http\"}": {".": {}, "f:name": {}, "f:port": {}}},
                    "f:replicas": {},
                    "f:tags": {"v:\"a\"": {}}
                }
            }
        })]
    );
}

#[test]
fn conflicting_apply_fails_unless_forced_and_then_transfers_ownership() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let live = apply(
        None,
        &obj(json!({"replicas": 1, "image": "a"})),
        &ctx("alice", "t1"),
        false,
        &lt,
    )
    .unwrap();
    let conflict = apply(
        Some(&live),
        &obj(json!({"replicas": 2})),
        &ctx("bob", "t2"),
        false,
        &lt,
    );
    assert_eq!(
        conflict,
        Err(vec![Conflict {
            manager: "alice".into(),
            field: ".spec.replicas".into()
        }])
    );

    let forced = apply(
        Some(&live),
        &obj(json!({"replicas": 2})),
        &ctx("bob", "t2"),
        true,
        &lt,
    )
    .unwrap();
    assert_eq!(forced["spec"], json!({"replicas": 2, "image": "a"}));
    assert_eq!(
        fields_of_manager(&forced, "alice"),
        json!({"f:spec": {"f:image": {}}})
    );
    assert_eq!(
        fields_of_manager(&forced, "bob"),
        json!({"f:spec": {"f:replicas": {}}})
    );
}

#[test]
fn equal_values_are_shared_without_conflict() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let live = apply(
        None,
        &obj(json!({"replicas": 1})),
        &ctx("alice", "t1"),
        false,
        &lt,
    )
    .unwrap();
    let shared = apply(
        Some(&live),
        &obj(json!({"replicas": 1})),
        &ctx("bob", "t2"),
        false,
        &lt,
    )
    .unwrap();
    assert_eq!(
        fields_of_manager(&shared, "alice"),
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        fields_of_manager(&shared, "bob"),
        json!({"f:spec": {"f:replicas": {}}})
    );
    // Alice dropping the field does not remove it while Bob still applies it.
    let after = apply(
        Some(&shared),
        &obj(json!({"image": "x"})),
        &ctx("alice", "t3"),
        false,
        &lt,
    )
    .unwrap();
    assert_eq!(after["spec"], json!({"replicas": 1, "image": "x"}));
    assert_eq!(
        fields_of_manager(&after, "alice"),
        json!({"f:spec": {"f:image": {}}})
    );
}

#[test]
fn omitted_fields_are_removed_when_nobody_else_owns_them() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let live = apply(
        None,
        &obj(json!({"replicas": 1, "image": "a", "tags": ["x", "y"], "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]})),
        &ctx("alice", "t1"),
        false,
        &lt,
    )
    .unwrap();
    let out = apply(
        Some(&live),
        &obj(json!({"image": "a", "tags": ["y"], "ports": [{"name": "b", "port": 2}]})),
        &ctx("alice", "t2"),
        false,
        &lt,
    )
    .unwrap();
    assert_eq!(
        out["spec"],
        json!({"image": "a", "tags": ["y"], "ports": [{"name": "b", "port": 2}]})
    );
    // Fields never applied by this manager are untouched.
    let mut updated = out.clone();
    updated["spec"]["replicas"] = json!(5);
    record_update(Some(&out), &mut updated, &ctx("controller", "t3"), &lt);
    let out2 = apply(
        Some(&updated),
        &obj(json!({"tags": ["y"]})),
        &ctx("alice", "t4"),
        false,
        &lt,
    )
    .unwrap();
    assert_eq!(out2["spec"], json!({"replicas": 5, "tags": ["y"]}));
}

#[test]
fn updates_take_ownership_and_cause_conflicts_for_appliers() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let live = apply(
        None,
        &obj(json!({"replicas": 1})),
        &ctx("alice", "t1"),
        false,
        &lt,
    )
    .unwrap();
    let mut updated = live.clone();
    updated["spec"]["replicas"] = json!(3);
    updated["metadata"]["labels"] = json!({"team": "x"});
    record_update(Some(&live), &mut updated, &ctx("kube-rs", "t2"), &lt);
    assert_eq!(fields_of_manager(&updated, "alice"), Value::Null);
    let entry = entries(&updated)
        .into_iter()
        .find(|e| e["manager"] == "kube-rs")
        .unwrap();
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["time"], "t2");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:team": {}}}, "f:spec": {"f:replicas": {}}})
    );
    let conflict = apply(
        Some(&updated),
        &obj(json!({"replicas": 1})),
        &ctx("alice", "t3"),
        false,
        &lt,
    );
    assert_eq!(
        conflict,
        Err(vec![Conflict {
            manager: "kube-rs".into(),
            field: ".spec.replicas".into()
        }])
    );
}

#[test]
fn create_update_records_all_fields_and_removal_drops_ownership() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let mut created = obj(json!({"replicas": 1, "args": ["a", "b"]}));
    record_update(None, &mut created, &ctx("creator", "t1"), &lt);
    assert_eq!(
        fields_of_manager(&created, "creator"),
        json!({"f:spec": {".": {}, "f:args": {}, "f:replicas": {}}})
    );
    let mut next = created.clone();
    next["spec"].as_object_mut().unwrap().remove("args");
    record_update(Some(&created), &mut next, &ctx("other", "t2"), &lt);
    // Removing a field takes it from its owner; a write that only removes records no entry.
    assert_eq!(
        fields_of_manager(&next, "creator"),
        json!({"f:spec": {".": {}, "f:replicas": {}}})
    );
    assert_eq!(fields_of_manager(&next, "other"), Value::Null);
}

#[test]
fn status_subresource_entries_are_separate() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let live = apply(
        None,
        &obj(json!({"replicas": 1})),
        &ctx("alice", "t1"),
        false,
        &lt,
    )
    .unwrap();
    let status_ctx = ApplyContext {
        manager: "controller",
        subresource: Some("status"),
        now: "t2",
        api_version: "dce.example.com/v1",
    };
    let mut status = json!({"apiVersion": "dce.example.com/v1", "kind": "Lease", "metadata": {"name": "l"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let out = apply(Some(&live), &status, &status_ctx, false, &lt).unwrap();
    let entry = entries(&out)
        .into_iter()
        .find(|e| e["manager"] == "controller")
        .unwrap();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
    );
    // Updating the condition through another manager moves only that field.
    status["status"]["conditions"][0]["status"] = json!("False");
    let mut updated = out.clone();
    updated["status"] = status["status"].clone();
    record_update(
        Some(&out),
        &mut updated,
        &ApplyContext {
            manager: "other",
            ..status_ctx
        },
        &lt,
    );
    assert_eq!(
        fields_of_manager(&updated, "controller"),
        json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:type": {}}}}})
    );
    assert_eq!(
        fields_of_manager(&updated, "other"),
        json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {"f:status": {}}}}})
    );
}

#[test]
fn map_list_items_merge_by_key_and_conflict_per_field() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let live = apply(
        None,
        &obj(json!({"ports": [{"name": "a", "port": 1}]})),
        &ctx("alice", "t1"),
        false,
        &lt,
    )
    .unwrap();
    let out = apply(
        Some(&live),
        &obj(json!({"ports": [{"name": "b", "port": 2}]})),
        &ctx("bob", "t2"),
        false,
        &lt,
    )
    .unwrap();
    assert_eq!(
        out["spec"]["ports"],
        json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}])
    );
    let conflict = apply(
        Some(&out),
        &obj(json!({"ports": [{"name": "a", "port": 9}]})),
        &ctx("bob", "t3"),
        false,
        &lt,
    );
    assert_eq!(
        conflict,
        Err(vec![Conflict {
            manager: "alice".into(),
            field: ".spec.ports[name=\"a\"].port".into()
        }])
    );
}

#[test]
fn atomic_lists_are_owned_whole() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let live = apply(
        None,
        &obj(json!({"args": ["a"]})),
        &ctx("alice", "t1"),
        false,
        &lt,
    )
    .unwrap();
    assert_eq!(
        fields_of_manager(&live, "alice"),
        json!({"f:spec": {"f:args": {}}})
    );
    let conflict = apply(
        Some(&live),
        &obj(json!({"args": ["a", "b"]})),
        &ctx("bob", "t2"),
        false,
        &lt,
    );
    assert_eq!(
        conflict,
        Err(vec![Conflict {
            manager: "alice".into(),
            field: ".spec.args".into()
        }])
    );
}

#[test]
fn objects_without_managed_fields_belong_to_before_first_apply() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let live = obj(json!({"replicas": 1}));
    let conflict = apply(
        Some(&live),
        &obj(json!({"replicas": 2})),
        &ctx("alice", "t1"),
        false,
        &lt,
    );
    assert_eq!(
        conflict,
        Err(vec![Conflict {
            manager: "before-first-apply".into(),
            field: ".spec.replicas".into()
        }])
    );
}

#[test]
fn untracked_metadata_is_never_owned_and_entries_are_sorted() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let mut applied = obj(json!({"replicas": 1}));
    applied["metadata"]["uid"] = json!("u");
    applied["metadata"]["resourceVersion"] = json!("1");
    let live = apply(None, &applied, &ctx("z-applier", "t5"), false, &lt).unwrap();
    assert_eq!(
        fields_of_manager(&live, "z-applier"),
        json!({"f:spec": {"f:replicas": {}}})
    );
    let mut updated = live.clone();
    updated["spec"]["image"] = json!("i");
    record_update(Some(&live), &mut updated, &ctx("a-updater", "t1"), &lt);
    let order: Vec<(Value, Value)> = entries(&updated)
        .into_iter()
        .map(|e| (e["manager"].clone(), e["operation"].clone()))
        .collect();
    assert_eq!(
        order,
        vec![
            (json!("z-applier"), json!("Apply")),
            (json!("a-updater"), json!("Update"))
        ]
    );
}

#[test]
fn builtin_list_types_cover_metadata_and_containers() {
    let lt = BuiltinListTypes;
    assert_eq!(
        lt.list_type(&["spec", "template", "spec", "containers"]),
        ListType::Map(vec!["name".into()])
    );
    assert_eq!(
        lt.list_type(&["spec", "containers", "ports"]),
        ListType::Map(vec!["containerPort".into()])
    );
    assert_eq!(lt.list_type(&["metadata", "finalizers"]), ListType::Set);
    assert_eq!(lt.list_type(&["rules"]), ListType::Atomic);
    let s = schema();
    assert_eq!(
        SchemaListTypes(&s).list_type(&["status", "conditions"]),
        ListType::Map(vec!["type".into()])
    );
    assert_eq!(
        SchemaListTypes(&s).list_type(&["spec", "args"]),
        ListType::Atomic
    );
    assert_eq!(
        SchemaListTypes(&s).list_type(&["nope", "x"]),
        ListType::Atomic
    );
}

#[test]
fn odd_input_does_not_panic() {
    let lt = BuiltinListTypes;
    let odd = [
        json!(null),
        json!([1]),
        json!({"metadata": {"managedFields": [{"fieldsV1": 3}, 7]}}),
        json!({"spec": {"containers": [1, {"x": 1}]}}),
    ];
    for a in &odd {
        for b in &odd {
            let _ = apply(Some(a), b, &ctx("m", "t"), false, &lt);
            let mut n = b.clone();
            record_update(Some(a), &mut n, &ctx("m", "t"), &lt);
        }
    }
}

#[test]
fn dropping_all_applied_metadata_keeps_the_object_identity() {
    let s = schema();
    let lt = SchemaListTypes(&s);
    let mut applied = obj(json!({"replicas": 1}));
    applied["metadata"]["labels"] = json!({"a": "b"});
    let live = apply(None, &applied, &ctx("alice", "t1"), false, &lt).unwrap();
    let out = apply(
        Some(&live),
        &obj(json!({"replicas": 1})),
        &ctx("alice", "t2"),
        false,
        &lt,
    )
    .unwrap();
    assert_eq!(out["metadata"]["name"], "l");
    assert_eq!(out["metadata"]["namespace"], "ns");
    assert_eq!(out["metadata"].get("labels"), None);
    assert_eq!(out["apiVersion"], "dce.example.com/v1");
}
