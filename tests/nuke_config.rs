//! The aws-nuke configuration a reset Job gets: a golden file, and a check of its structure
//! against aws-nuke v3's documented configuration.
//!
//! The structure is checked against aws-nuke's documented schema (top-level keys, the account
//! blocklist, per-account filters and the filter syntax), and the file is loaded by aws-nuke's
//! own parser and filters (`aws-nuke-config-check`, built by `make kube-tools` from
//! `e2e/kube/aws-nuke`), which must accept the account and keep what the pool depends on.
//!
//! `DCE_UPDATE_GOLDEN=1 cargo test --test nuke_config` rewrites the golden file.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dce_operator::lifecycle::nuke::{self, NukeInputs};
use serde_json::{Value, json};

const ACCOUNT: &str = "210987654321";
const OPERATOR_ACCOUNT: &str = "123456789012";

/// Top-level keys aws-nuke v3 reads.
const TOP_LEVEL_KEYS: &[&str] = &[
    "blocklist",
    "blocklist-terms",
    "no-blocklist-terms-default",
    "regions",
    "accounts",
    "presets",
    "resource-types",
    "settings",
    "bypass-alias-check-accounts",
    "endpoints",
];
/// Keys of one filter written as a map.
const FILTER_KEYS: &[&str] = &["type", "value", "property", "invert", "values", "group"];
/// Filter types aws-nuke v3 knows (a filter without `type` is `exact`).
const FILTER_TYPES: &[&str] = &[
    "exact",
    "glob",
    "regex",
    "contains",
    "dateOlderThan",
    "dateOlderThanNow",
    "prefix",
    "suffix",
    "In",
    "NotIn",
];

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/aws-nuke-config.yaml")
}

fn generated() -> String {
    let regions = vec!["us-east-1".to_string(), "eu-west-1".to_string()];
    let blocklist = vec![OPERATOR_ACCOUNT.to_string()];
    let roles = vec![
        "OrganizationAccountAccessRole".to_string(),
        "DCEPrincipal".to_string(),
    ];
    let extra = nuke::parse_extra_filters(
        "S3Bucket:\n  - property: Name\n    type: glob\n    value: \"keep-*\"\n",
    )
    .unwrap();
    nuke::config(&NukeInputs {
        account: ACCOUNT,
        allowed_regions: &regions,
        blocklist: &blocklist,
        kept_roles: &roles,
        principal_policy: Some("DCEPrincipalDefaultPolicy"),
        extra_filters: &extra,
        endpoint: None,
        resource_types: &[],
    })
}

#[test]
fn config_matches_the_golden_file() {
    let text = generated();
    let path = golden_path();
    if std::env::var_os("DCE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with DCE_UPDATE_GOLDEN=1", path.display()));
    assert!(
        golden == text,
        "the generated aws-nuke config differs from {} (rerun with DCE_UPDATE_GOLDEN=1 if \
         intended):\n{text}",
        path.display()
    );
}

/// Whether `filter` (aws-nuke syntax) keeps a resource whose `property` is `value`. Only the
/// filter types the generated configuration uses are evaluated.
fn keeps(filter: &Value, property: &str, value: &str) -> bool {
    match filter {
        Value::String(exact) => property.is_empty() && exact == value,
        Value::Object(map) => {
            let on = map.get("property").and_then(Value::as_str).unwrap_or("");
            let kind = map.get("type").and_then(Value::as_str).unwrap_or("exact");
            let wanted = map.get("value").and_then(Value::as_str).unwrap_or("");
            on == property && kind == "exact" && wanted == value
        }
        _ => false,
    }
}

#[test]
fn config_has_the_documented_structure_and_keeps_the_pools_roles() {
    let config: Value = serde_yaml::from_str(&generated()).expect("valid YAML");
    let top: BTreeSet<&str> = config
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let unknown: Vec<&&str> = top.iter().filter(|k| !TOP_LEVEL_KEYS.contains(k)).collect();
    assert!(
        unknown.is_empty(),
        "keys aws-nuke does not read: {unknown:?}"
    );

    // aws-nuke refuses to run without a blocklist entry, and on a blocklisted account.
    let blocklist = config["blocklist"].as_array().unwrap();
    assert_eq!(blocklist, &vec![json!(OPERATOR_ACCOUNT)]);
    assert!(!blocklist.contains(&json!(ACCOUNT)));
    assert_eq!(
        config["regions"],
        json!(["global", "us-east-1", "eu-west-1"])
    );
    // --no-alias-check takes effect only for listed accounts.
    assert_eq!(config["bypass-alias-check-accounts"], json!([ACCOUNT]));
    assert_eq!(config["resource-types"]["excludes"], json!(["S3Object"]));

    let accounts = config["accounts"].as_object().unwrap();
    assert_eq!(accounts.keys().collect::<Vec<_>>(), vec![ACCOUNT]);
    let filters = accounts[ACCOUNT]["filters"].as_object().unwrap();
    for (resource, list) in filters {
        for filter in list.as_array().unwrap() {
            if let Some(map) = filter.as_object() {
                for key in map.keys() {
                    assert!(FILTER_KEYS.contains(&key.as_str()), "{resource}: key {key}");
                }
                let kind = map.get("type").and_then(Value::as_str).unwrap_or("exact");
                assert!(FILTER_TYPES.contains(&kind), "{resource}: type {kind}");
                assert!(map["value"].is_string(), "{resource}: {filter}");
            } else {
                assert!(filter.is_string(), "{resource}: {filter}");
            }
        }
    }

    let kept = |resource: &str, property: &str, value: &str| {
        filters
            .get(resource)
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|f| keeps(f, property, value)))
    };
    for role in ["OrganizationAccountAccessRole", "DCEPrincipal"] {
        assert!(kept("IAMRole", "Name", role), "role {role}");
        assert!(
            kept("IAMRolePolicyAttachment", "RoleName", role),
            "attachments of {role}"
        );
        assert!(
            kept("IAMRolePolicy", "role:RoleName", role),
            "inline policies of {role}"
        );
    }
    assert!(kept("IAMPolicy", "Name", "DCEPrincipalDefaultPolicy"));
    assert!(kept("__global__", "tag:dce.dev/protected", "true"));
    // Nothing else is kept by name: another role goes.
    assert!(!kept("IAMRole", "Name", "SomeoneElse"));
    // Extra filters are added as given.
    assert_eq!(
        filters["S3Bucket"],
        json!([{ "property": "Name", "type": "glob", "value": "keep-*" }])
    );
}

#[test]
fn aws_nukes_own_parser_accepts_the_config_and_keeps_the_pools_roles() {
    let checker = dce_e2e::control_plane::kube_binary("aws-nuke-config-check").unwrap();
    let dir = std::env::temp_dir().join(format!("nuke-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, generated()).unwrap();
    // (aws-nuke resource type, the fields its lister fills, kept?): the checker builds
    // aws-nuke's own resource from them, so the properties and string forms the filters see
    // are aws-nuke's.
    let policy_arn = format!("policyArn=arn:aws:iam::{ACCOUNT}:policy/DCEPrincipalDefaultPolicy");
    let cases: &[(&str, &str, bool)] = &[
        ("IAMRole", "Name=OrganizationAccountAccessRole", true),
        ("IAMRole", "Name=DCEPrincipal", true),
        ("IAMRole", "Name=LeftBehind", false),
        (
            "IAMRolePolicyAttachment",
            &format!(
                "role.RoleName=DCEPrincipal,policyName=DCEPrincipalDefaultPolicy,{policy_arn}"
            ),
            true,
        ),
        (
            "IAMRolePolicyAttachment",
            "role.RoleName=LeftBehind,policyName=AdministratorAccess,\
             policyArn=arn:aws:iam::aws:policy/AdministratorAccess",
            false,
        ),
        (
            "IAMRolePolicy",
            "roleName=OrganizationAccountAccessRole,policyName=inline",
            true,
        ),
        (
            "IAMRolePolicy",
            "roleName=LeftBehind,policyName=inline",
            false,
        ),
        ("IAMPolicy", "Name=DCEPrincipalDefaultPolicy", true),
        ("IAMPolicy", "Name=SomethingElse", false),
        (
            "EC2Instance",
            "ID=i-0123456789abcdef0,Tags=dce.dev/protected:true",
            true,
        ),
        (
            "EC2Instance",
            "ID=i-0123456789abcdef0,Tags=dce.dev/protected:false",
            false,
        ),
        (
            "LambdaFunction",
            "Name=protected,Tags=dce.dev/protected:true",
            true,
        ),
        // The documented extra-filter example: a bucket filter on its name.
        ("S3Bucket", "Name=keep-me", true),
        ("S3Bucket", "Name=scratch", false),
    ];
    let mut args = vec![path.display().to_string(), ACCOUNT.to_string()];
    for (resource, properties, _) in cases {
        args.push(resource.to_string());
        args.push(properties.to_string());
    }
    let output = std::process::Command::new(&checker)
        .args(&args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "aws-nuke rejected the configuration: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Vec<bool> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line == "kept")
        .collect();
    let expected: Vec<bool> = cases.iter().map(|(_, _, kept)| *kept).collect();
    assert_eq!(answers, expected, "kept per case: {cases:?}");

    // aws-nuke refuses the operator's own account.
    let refused = std::process::Command::new(&checker)
        .args([path.display().to_string(), OPERATOR_ACCOUNT.to_string()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("blocklist"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
