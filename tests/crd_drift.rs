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
    // kube-derive renders an optional enum as nullable, with null among the values.
    assert_eq!(
        lease["status"]["properties"]["leaseStatus"]["enum"],
        serde_json::json!(["Pending", "Active", "Inactive", null])
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
