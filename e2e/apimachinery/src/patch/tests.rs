use super::*;
use serde_json::json;

#[test]
fn merge_patch_follows_rfc_7386() {
    // Examples from RFC 7386 appendix A.
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (target, patch, expected) in cases {
        let mut doc = target.clone();
        merge_patch(&mut doc, &patch);
        assert_eq!(doc, expected, "{target} + {patch}");
    }
}

#[test]
fn json_patch_operations() {
    let doc = json!({"spec": {"a": 1, "list": [1, 2, 3], "a/b": 0, "m~n": 0}});
    let patch = json!([
        {"op": "add", "path": "/spec/b", "value": {"x": 1}},
        {"op": "add", "path": "/spec/list/-", "value": 4},
        {"op": "add", "path": "/spec/list/0", "value": 0},
        {"op": "remove", "path": "/spec/list/1"},
        {"op": "replace", "path": "/spec/a", "value": 2},
        {"op": "replace", "path": "/spec/a~1b", "value": "slash"},
        {"op": "replace", "path": "/spec/m~0n", "value": "tilde"},
        {"op": "copy", "from": "/spec/b", "path": "/spec/c"},
        {"op": "move", "from": "/spec/b/x", "path": "/spec/moved"},
        {"op": "test", "path": "/spec/moved", "value": 1.0},
        {"op": "test", "path": "/spec/list", "value": [0, 2, 3, 4]}
    ]);
    assert_eq!(
        json_patch(&doc, &patch).unwrap(),
        json!({"spec": {"a": 2, "a/b": "slash", "m~n": "tilde", "b": {}, "c": {"x": 1}, "moved": 1, "list": [0, 2, 3, 4]}})
    );
}

#[test]
fn json_patch_is_atomic_and_reports_errors() {
    let doc = json!({"spec": {"a": 1, "list": [1]}});
    let failing = [
        json!([{"op": "replace", "path": "/spec/a", "value": 5}, {"op": "test", "path": "/spec/a", "value": 1}]),
        json!([{"op": "replace", "path": "/spec/missing", "value": 1}]),
        json!([{"op": "remove", "path": "/spec/missing"}]),
        json!([{"op": "remove", "path": "/spec/list/1"}]),
        json!([{"op": "add", "path": "/spec/list/2", "value": 1}]),
        json!([{"op": "add", "path": "/nope/x", "value": 1}]),
        json!([{"op": "add", "path": "/spec/list/01", "value": 1}]),
        json!([{"op": "add", "path": "spec", "value": 1}]),
        json!([{"op": "add", "path": "/spec/b"}]),
        json!([{"op": "bogus", "path": "/spec"}]),
        json!([{"path": "/spec"}]),
        json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}]),
        json!([{"op": "copy", "from": "/none", "path": "/x"}]),
        json!({"op": "add"}),
    ];
    for patch in failing {
        assert!(json_patch(&doc, &patch).is_err(), "{patch}");
    }
    assert_eq!(
        json_patch(
            &doc,
            &json!([{"op": "test", "path": "/spec/a", "value": 2}])
        ),
        Err(PatchError(
            "testing value /spec/a failed: test failed".into()
        ))
    );
    // Whole-document operations.
    assert_eq!(
        json_patch(&doc, &json!([{"op": "replace", "path": "", "value": [1]}])).unwrap(),
        json!([1])
    );
}

fn pod() -> Value {
    json!({
        "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"],
            "ownerReferences": [{"uid": "u1", "name": "o1", "kind": "Job", "apiVersion": "batch/v1"}]},
        "spec": {
            "containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "ports": [{"containerPort": 80, "protocol": "TCP"}], "args": ["--x"]},
                {"name": "side", "image": "side:1"}
            ],
            "tolerations": [{"key": "k"}]
        },
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Scheduled", "status": "True"}]}
    })
}

#[test]
fn strategic_merge_merges_keyed_lists() {
    let patch = json!({
        "metadata": {"finalizers": ["y", "x"], "labels": {"a": null, "b": "2"}},
        "spec": {
            "containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}], "args": ["--y"]},
                           {"name": "new", "image": "new:1"}],
            "tolerations": [{"key": "other"}]
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    });
    let out = strategic_merge_patch(&pod(), &patch).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
    assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(
        out["spec"]["containers"],
        json!([
            {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}], "args": ["--y"]},
            {"name": "side", "image": "side:1"},
            {"name": "new", "image": "new:1"}
        ])
    );
    // Lists without a patch strategy are replaced.
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "other"}]));
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "True"}])
    );
}

#[test]
fn strategic_merge_directives() {
    let patch = json!({
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "ownerReferences": [{"uid": "u1", "$patch": "delete"}]},
        "spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
            "containers": [{"name": "side", "$patch": "delete"}, {"name": "app", "ports": [{"containerPort": 8080}, {"$patch": "replace"}]}]
        },
        "status": {"$patch": "replace", "phase": "Running"}
    });
    let out = strategic_merge_patch(&pod(), &patch).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!([]));
    assert_eq!(out["metadata"]["ownerReferences"], json!([]));
    assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
    assert_eq!(
        out["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 8080}])
    );
    assert_eq!(out["status"], json!({"phase": "Running"}));
    assert!(!out.to_string().contains('$'), "directive leaked: {out}");
}

#[test]
fn strategic_merge_retain_keys_and_map_delete() {
    let target = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "extra": {"a": 1}}});
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}, "extra": {"$patch": "delete"}}});
    let out = strategic_merge_patch(&target, &patch).unwrap();
    assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
}

#[test]
fn strategic_merge_directives_never_leak_into_new_fields() {
    // kubectl apply sends directives also for fields the live object does not have yet.
    let target = json!({"kind": "Secret", "data": {"a": "YQ=="}});
    let patch = json!({
        "data": {"b": "Yg=="},
        "metadata": {"annotations": {"x": "y"}, "$setElementOrder/finalizers": ["f"], "finalizers": ["f"]},
        "spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "a", "$setElementOrder/env": [{"name": "E"}], "env": [{"name": "E", "value": "1"}]}]}
    });
    let out = strategic_merge_patch(&target, &patch).unwrap();
    assert_eq!(
        out,
        json!({
            "kind": "Secret", "data": {"a": "YQ==", "b": "Yg=="},
            "metadata": {"annotations": {"x": "y"}, "finalizers": ["f"]},
            "spec": {"containers": [{"name": "a", "env": [{"name": "E", "value": "1"}]}]}
        })
    );
}

#[test]
fn strategic_merge_errors() {
    assert!(strategic_merge_patch(&pod(), &json!([1])).is_err());
    assert!(strategic_merge_patch(&pod(), &json!({"$patch": "explode"})).is_err());
    let missing_key = json!({"spec": {"containers": [{"image": "x"}]}});
    assert_eq!(
        strategic_merge_patch(&pod(), &missing_key),
        Err(PatchError(
            r#"map: {"image":"x"} does not contain declared merge key: name"#.into()
        ))
    );
}

#[test]
fn service_ports_merge_by_port() {
    let svc =
        json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}});
    let out = strategic_merge_patch(
        &svc,
        &json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "name": "http", "targetPort": 8080}, {"port": 443, "name": "https"}])
    );
}

#[test]
fn json_patch_test_of_null_matches_an_absent_member() {
    let doc = json!({"metadata": {"name": "x"}});
    let patch = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
    ]);
    assert_eq!(
        json_patch(&doc, &patch).unwrap(),
        json!({"metadata": {"name": "x", "finalizers": ["f"]}})
    );
    let present = json!({"metadata": {"finalizers": ["g"]}});
    assert!(json_patch(&present, &patch).is_err());
}
