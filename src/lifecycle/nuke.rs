//! The aws-nuke configuration of an account's reset (ekristen/aws-nuke v3 syntax): what the
//! reset Job may delete, and what it must keep.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::principal::{PROTECTED_TAG, PROTECTED_VALUE};

/// Directory the reset Job mounts the configuration in, and the file in it.
pub const CONFIG_DIR: &str = "/etc/aws-nuke";
pub const CONFIG_FILE: &str = "config.yaml";

/// Extra filters from the operator's configuration: resource type → aws-nuke filters.
pub type ExtraFilters = BTreeMap<String, Vec<Value>>;

/// Reads extra filters (YAML or JSON: a map from resource type to a list of filters).
pub fn parse_extra_filters(text: &str) -> Result<ExtraFilters, String> {
    if text.trim().is_empty() {
        return Ok(ExtraFilters::new());
    }
    serde_yaml::from_str::<Option<ExtraFilters>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            format!("extra aws-nuke filters must map resource types to lists of filters: {e}")
        })
}

/// What an account's configuration is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct NukeInputs<'a> {
    /// The 12-digit account to reset.
    pub account: &'a str,
    pub allowed_regions: &'a [String],
    /// Accounts aws-nuke must refuse to touch (the operator's own).
    pub blocklist: &'a [String],
    /// Roles kept with their policies: the admin role and the principal role.
    pub kept_roles: &'a [String],
    /// The principal policy the operator created, if any.
    pub principal_policy: Option<&'a str>,
    pub extra_filters: &'a ExtraFilters,
    /// An AWS-compatible endpoint every request goes to instead of AWS's public ones (a private
    /// or local AWS API); `None` for AWS itself.
    pub endpoint: Option<&'a str>,
    /// The resource types to reset; empty: every type aws-nuke knows (not with `endpoint`).
    pub resource_types: &'a [String],
}

/// Services aws-nuke must find in a custom region to read the account's identity (without
/// them it invents an account id and refuses the account).
const IDENTITY_SERVICES: [&str; 2] = ["sts", "iam"];
/// The region aws-nuke opens its default and global sessions in.
const DEFAULT_REGION: &str = "us-east-1";

/// The configuration aws-nuke reads, as YAML.
pub fn config(inputs: &NukeInputs) -> String {
    let mut filters: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut keep = |resource: &str, filter: Value| {
        filters
            .entry(resource.to_string())
            .or_default()
            .push(filter);
    };
    // Anything tagged as protected, whatever its type.
    keep(
        "__global__",
        json!({ "property": format!("tag:{PROTECTED_TAG}"), "value": PROTECTED_VALUE }),
    );
    for role in inputs.kept_roles {
        keep("IAMRole", json!({ "property": "Name", "value": role }));
        keep(
            "IAMRolePolicyAttachment",
            json!({ "property": "RoleName", "value": role }),
        );
        keep(
            "IAMRolePolicy",
            json!({ "property": "role:RoleName", "value": role }),
        );
    }
    if let Some(policy) = inputs.principal_policy {
        keep("IAMPolicy", json!({ "property": "Name", "value": policy }));
    }
    for (resource, extra) in inputs.extra_filters {
        for filter in extra {
            keep(resource, filter.clone());
        }
    }
    // Against a custom endpoint aws-nuke lists every type in every region, global ones too:
    // without the global pseudo-region each resource is listed once (with one region).
    let mut regions = match inputs.endpoint {
        Some(_) => Vec::new(),
        None => vec!["global".to_string()],
    };
    regions.extend(inputs.allowed_regions.iter().cloned());
    let mut resource_types = json!({
        // Deleting a bucket deletes its objects; listing each object would take ages.
        "excludes": ["S3Object"],
    });
    if !inputs.resource_types.is_empty() {
        resource_types["includes"] = json!(inputs.resource_types);
    }
    let mut document = json!({
        "regions": regions,
        "blocklist": inputs.blocklist,
        // Pool accounts need no alias: the Job passes --no-alias-check, which takes effect
        // only for the accounts listed here.
        "bypass-alias-check-accounts": [inputs.account],
        "resource-types": resource_types,
        "accounts": {
            inputs.account: { "filters": filters },
        },
    });
    if let Some(url) = inputs.endpoint {
        document["endpoints"] = custom_endpoints(&regions, url, inputs.resource_types);
    }
    serde_yaml::to_string(&document).unwrap_or_default()
}

/// aws-nuke's custom endpoints sending every service of every region to `url`. aws-nuke
/// serves a resource type from the first service whose name prefixes the lowercased type, and
/// stops on a type none serves: each type gets a service named after it. `sts` and `iam` let it
/// read the account's identity; the catch-all `""`, last, serves the sessions it opens without
/// a service. Its default and global sessions run in us-east-1, so that region is always listed.
fn custom_endpoints(regions: &[String], url: &str, resource_types: &[String]) -> Value {
    let mut names: Vec<&str> = regions.iter().map(String::as_str).collect();
    if !names.contains(&DEFAULT_REGION) {
        names.push(DEFAULT_REGION);
    }
    let type_services = resource_types.iter().map(|t| t.to_lowercase());
    let services: Vec<Value> = IDENTITY_SERVICES
        .iter()
        .map(|s| s.to_string())
        .chain(type_services)
        .chain(std::iter::once(String::new()))
        .map(|service| json!({ "service": service, "url": url }))
        .collect();
    Value::Array(
        names
            .into_iter()
            .map(|region| json!({ "region": region, "services": services }))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_filters_parse_from_yaml() {
        let parsed = parse_extra_filters(
            "S3Bucket:\n  - type: glob\n    value: keep-*\nIAMUser:\n  - admin\n",
        )
        .unwrap();
        assert_eq!(parsed["S3Bucket"][0]["type"], "glob");
        assert_eq!(parsed["IAMUser"][0], "admin");
        assert!(parse_extra_filters("  ").unwrap().is_empty());
        assert!(parse_extra_filters("null").unwrap().is_empty());
        let error = parse_extra_filters("- S3Bucket").unwrap_err();
        assert!(error.contains("map resource types"), "{error}");
    }

    #[test]
    fn extra_filters_are_added_to_the_kept_ones() {
        let extra = parse_extra_filters("IAMRole:\n  - BreakGlass\n").unwrap();
        let regions = vec!["us-east-1".to_string()];
        let blocklist = vec!["999999999999".to_string()];
        let roles = vec!["Admin".to_string()];
        let yaml = config(&NukeInputs {
            account: "123456789012",
            allowed_regions: &regions,
            blocklist: &blocklist,
            kept_roles: &roles,
            principal_policy: None,
            extra_filters: &extra,
            endpoint: None,
            resource_types: &[],
        });
        let parsed: Value = serde_yaml::from_str(&yaml).unwrap();
        let kept = &parsed["accounts"]["123456789012"]["filters"]["IAMRole"];
        assert_eq!(
            kept,
            &json!([{ "property": "Name", "value": "Admin" }, "BreakGlass"])
        );
        assert!(
            parsed["accounts"]["123456789012"]["filters"]
                .get("IAMPolicy")
                .is_none()
        );
        assert!(parsed.get("endpoints").is_none());
        assert!(parsed["resource-types"].get("includes").is_none());
    }

    #[test]
    fn a_custom_endpoint_serves_every_region_and_service() {
        let regions = vec!["eu-west-1".to_string()];
        let types = vec!["S3Bucket".to_string(), "IAMRole".to_string()];
        let yaml = config(&NukeInputs {
            account: "123456789012",
            allowed_regions: &regions,
            blocklist: &[],
            kept_roles: &[],
            principal_policy: None,
            extra_filters: &ExtraFilters::new(),
            endpoint: Some("http://127.0.0.1:5000"),
            resource_types: &types,
        });
        let parsed: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed["resource-types"]["includes"], json!(types));
        let endpoints = parsed["endpoints"].as_array().unwrap();
        let listed: Vec<&str> = endpoints
            .iter()
            .map(|e| e["region"].as_str().unwrap())
            .collect();
        assert_eq!(listed, ["eu-west-1", "us-east-1"]);
        assert_eq!(parsed["regions"], json!(["eu-west-1"]));
        for region in endpoints {
            let services: Vec<&str> = region["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["service"].as_str().unwrap())
                .collect();
            // The catch-all last: an earlier one would shadow the named services.
            assert_eq!(services, ["sts", "iam", "s3bucket", "iamrole", ""]);
            assert!(
                region["services"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s["url"] == "http://127.0.0.1:5000")
            );
        }
    }
}
