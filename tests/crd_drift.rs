//! The committed CRD YAML must be exactly what the Rust types generate (`make crds` rewrites it).

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for crd in dce_operator::resources::crds() {
        let name = crd.metadata.name.clone().expect("CRDs are named");
        let path = dir.join(format!("{name}.yaml"));
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run `make crds`", path.display()));
        let generated = serde_yaml::to_string(&crd).expect("CRDs serialize");
        assert!(
            committed == generated,
            "{} is out of date with the Rust types; run `make crds`",
            path.display()
        );
    }
}

#[test]
fn schemas_carry_the_validation_rules() {
    let crds = serde_json::to_value(dce_operator::resources::crds()).unwrap();
    let account = &crds[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"];
    assert_eq!(account["awsAccountId"]["pattern"], "^[0-9]{12}$");
    assert!(
        account["adminRoleArn"]["pattern"]
            .as_str()
            .unwrap()
            .starts_with("^arn:aws")
    );
    assert_eq!(
        account["metadata"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    let lease = &crds[1]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    assert_eq!(lease["spec"]["properties"]["budgetAmount"]["minimum"], 0.0);
    assert_eq!(
        lease["spec"]["required"],
        serde_json::json!(["principalId"])
    );
    // An optional enum is nullable, without null among its values (see below).
    assert_eq!(
        lease["status"]["properties"]["leaseStatus"]["enum"],
        serde_json::json!(["Pending", "Active", "Inactive"])
    );
    assert_eq!(
        lease["status"]["properties"]["leaseStatus"]["nullable"],
        true
    );
    assert_eq!(
        lease["status"]["properties"]["conditions"]["x-kubernetes-list-type"],
        "map"
    );
}

/// kubectl's client-side validation (used against servers without server-side field validation)
/// refuses a schema whose `enum` lists `null`.
#[test]
fn no_enum_lists_null() {
    fn enums_with_null(schema: &serde_json::Value, path: &str, found: &mut Vec<String>) {
        match schema {
            serde_json::Value::Object(map) => {
                if let Some(values) = map.get("enum").and_then(|e| e.as_array())
                    && values.iter().any(serde_json::Value::is_null)
                {
                    found.push(path.to_string());
                }
                for (key, value) in map {
                    enums_with_null(value, &format!("{path}/{key}"), found);
                }
            }
            serde_json::Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    enums_with_null(item, &format!("{path}/{index}"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = vec![];
    let crds = serde_json::to_value(dce_operator::resources::crds()).unwrap();
    enums_with_null(&crds, "", &mut found);
    assert!(found.is_empty(), "enums listing null: {found:?}");
}
