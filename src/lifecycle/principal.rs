//! The principal role lease holders get, and its managed policy: what they should be and what
//! to change so they are. The operator provisions them itself unless an Account names its own
//! `principalRoleArn`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::resources::Arn;

/// Tag marking a role or policy as the operator's: it never updates or deletes one without it.
pub const MANAGED_BY_TAG: &str = "dce.dev/managed-by";
pub const MANAGED_BY_VALUE: &str = "dce-operator";
/// Resources tagged so are denied to lease holders and kept by resets.
pub const PROTECTED_TAG: &str = "dce.dev/protected";
pub const PROTECTED_VALUE: &str = "true";
/// The built-in principal policy template, modelled on DCE's default principal policy.
pub const DEFAULT_POLICY_TEMPLATE: &str = include_str!("principal-policy.json");
/// Versions IAM keeps of one managed policy.
pub const MAX_POLICY_VERSIONS: usize = 5;
/// Shortest `MaxSessionDuration` IAM accepts (and its default).
const MIN_MAX_SESSION_SECONDS: i32 = 3600;
/// The template placeholders, each replaced by a JSON value or a plain string.
pub const PLACEHOLDERS: &[&str] = &[
    "accountId",
    "principalRoleArn",
    "principalPolicyArn",
    "adminRoleArn",
    "managedArns",
    "allowedRegions",
    "protectedTagKey",
    "protectedTagValue",
];

/// The principal policy's name for a principal role name (DCE: `DCEPrincipalDefaultPolicy`).
pub fn policy_name(role_name: &str) -> String {
    format!("{role_name}DefaultPolicy")
}

/// The ARN of customer managed policy `name` in `account`.
pub fn policy_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:policy/{name}")
}

/// The tags the operator puts on what it creates.
pub fn managed_tags(role_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_TAG.to_string(), MANAGED_BY_VALUE.to_string()),
        ("Name".to_string(), role_name.to_string()),
    ])
}

/// Whether tags mark a role or policy as created by the operator.
pub fn is_managed(tags: &BTreeMap<String, String>) -> bool {
    tags.get(MANAGED_BY_TAG).map(String::as_str) == Some(MANAGED_BY_VALUE)
}

/// The principal a role trust policy names for an identity ARN from GetCallerIdentity: an
/// assumed-role session is trusted through its role (a session ARN cannot be a principal).
pub fn trust_principal(identity_arn: &str) -> String {
    if let Some(arn) = Arn::parse(identity_arn).filter(|arn| arn.service == "sts")
        && let Some(role) = arn
            .resource
            .strip_prefix("assumed-role/")
            .and_then(|r| r.split('/').next())
    {
        return format!("arn:{}:iam::{}:role/{role}", arn.partition, arn.account);
    }
    identity_arn.to_string()
}

/// The trust policy letting `principal` assume the principal role.
pub fn trust_policy(principal: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": principal },
            "Action": "sts:AssumeRole",
        }],
    })
    .to_string()
}

/// The role's `MaxSessionDuration`: long enough for lease credentials of `lifetime_seconds`.
pub fn max_session_seconds(lifetime_seconds: i64) -> i32 {
    i32::try_from(lifetime_seconds)
        .unwrap_or(i32::MAX)
        .max(MIN_MAX_SESSION_SECONDS)
}

/// What a template is rendered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInputs<'a> {
    pub account: &'a str,
    pub principal_role_arn: &'a str,
    pub principal_policy_arn: &'a str,
    pub admin_role_arn: Option<&'a str>,
    pub allowed_regions: &'a [String],
}

/// A rendered principal policy: compact JSON and its hash (recorded in the Account's status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPolicy {
    pub document: String,
    pub hash: String,
}

/// Renders `template`: each `{{name}}` placeholder (see [`PLACEHOLDERS`]) becomes its value, and
/// the result must be a JSON object. `managedArns` and `allowedRegions` become JSON arrays; the
/// others are strings to be used inside JSON strings.
pub fn render_policy(template: &str, inputs: &PolicyInputs) -> Result<RenderedPolicy, String> {
    let mut managed = vec![inputs.principal_role_arn, inputs.principal_policy_arn];
    managed.extend(inputs.admin_role_arn);
    let json = |value: serde_json::Value| value.to_string();
    let values: BTreeMap<&str, String> = BTreeMap::from([
        ("accountId", inputs.account.to_string()),
        ("principalRoleArn", inputs.principal_role_arn.to_string()),
        (
            "principalPolicyArn",
            inputs.principal_policy_arn.to_string(),
        ),
        (
            "adminRoleArn",
            inputs.admin_role_arn.unwrap_or_default().to_string(),
        ),
        ("managedArns", json(serde_json::json!(managed))),
        (
            "allowedRegions",
            json(serde_json::json!(inputs.allowed_regions)),
        ),
        ("protectedTagKey", PROTECTED_TAG.to_string()),
        ("protectedTagValue", PROTECTED_VALUE.to_string()),
    ]);
    let mut rendered = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        rendered.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or("the principal policy template has an unclosed {{")?;
        let name = after[..end].trim();
        let value = values.get(name).ok_or_else(|| {
            format!(
                "the principal policy template names an unknown placeholder {{{{{name}}}}} (known: {})",
                PLACEHOLDERS.join(", ")
            )
        })?;
        rendered.push_str(value);
        rest = &after[end + 2..];
    }
    rendered.push_str(rest);
    let document: serde_json::Value = serde_json::from_str(&rendered)
        .map_err(|e| format!("the rendered principal policy is not valid JSON: {e}"))?;
    if !document.is_object() {
        return Err("the rendered principal policy is not a JSON object".to_string());
    }
    let document = document.to_string();
    let hash = hex::encode(Sha256::digest(document.as_bytes()));
    Ok(RenderedPolicy { document, hash })
}

/// Whether two policy documents say the same (IAM may reformat what it stores).
pub fn same_document(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The principal role as found in the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRole {
    pub trust_policy: String,
    pub max_session_seconds: Option<i32>,
    pub managed: bool,
}

/// What to do to the principal role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    Create,
    Update {
        trust: bool,
        max_session: bool,
    },
    UpToDate,
    /// A role of that name exists that the operator did not create: leave it alone.
    NotManaged,
}

pub fn role_change(
    observed: Option<&ObservedRole>,
    trust_policy: &str,
    max_session_seconds: i32,
) -> RoleChange {
    let Some(role) = observed else {
        return RoleChange::Create;
    };
    if !role.managed {
        return RoleChange::NotManaged;
    }
    let trust = !same_document(&role.trust_policy, trust_policy);
    let max_session = role.max_session_seconds != Some(max_session_seconds);
    if trust || max_session {
        RoleChange::Update { trust, max_session }
    } else {
        RoleChange::UpToDate
    }
}

/// One stored version of the principal policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVersion {
    pub id: String,
    pub is_default: bool,
    pub created: Option<Timestamp>,
}

/// The versions to delete before a new one is added, oldest first, so that IAM's limit is kept
/// and the default version (in force until the new one replaces it) survives.
pub fn versions_to_prune(versions: &[ObservedVersion]) -> Vec<String> {
    let excess = (versions.len() + 1).saturating_sub(MAX_POLICY_VERSIONS);
    let mut old: Vec<&ObservedVersion> = versions.iter().filter(|v| !v.is_default).collect();
    // IAM numbers versions v1, v2, …: the number breaks ties between equal creation times.
    let number = |v: &ObservedVersion| {
        v.id.trim_start_matches('v')
            .parse::<u64>()
            .unwrap_or(u64::MAX)
    };
    old.sort_by_key(|v| (v.created, number(v)));
    old.into_iter().take(excess).map(|v| v.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(regions: &[String]) -> PolicyInputs<'_> {
        PolicyInputs {
            account: "123456789012",
            principal_role_arn: "arn:aws:iam::123456789012:role/DCEPrincipal",
            principal_policy_arn: "arn:aws:iam::123456789012:policy/DCEPrincipalDefaultPolicy",
            admin_role_arn: Some("arn:aws:iam::123456789012:role/Admin"),
            allowed_regions: regions,
        }
    }

    fn statement<'a>(policy: &'a serde_json::Value, sid: &str) -> &'a serde_json::Value {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"))
    }

    #[test]
    fn default_policy_restricts_regions_and_protects_the_operators_roles() {
        let regions = vec!["us-east-1".to_string(), "eu-west-1".to_string()];
        let rendered = render_policy(DEFAULT_POLICY_TEMPLATE, &inputs(&regions)).unwrap();
        let policy: serde_json::Value = serde_json::from_str(&rendered.document).unwrap();
        let regions_deny = statement(&policy, "DenyOutsideAllowedRegions");
        assert_eq!(regions_deny["Effect"], "Deny");
        assert_eq!(
            regions_deny["Condition"]["StringNotEquals"]["aws:RequestedRegion"],
            serde_json::json!(["us-east-1", "eu-west-1"])
        );
        let self_deny = statement(&policy, "DoNotModifySelf");
        assert_eq!(
            self_deny["Resource"],
            serde_json::json!([
                "arn:aws:iam::123456789012:role/DCEPrincipal",
                "arn:aws:iam::123456789012:policy/DCEPrincipalDefaultPolicy",
                "arn:aws:iam::123456789012:role/Admin"
            ])
        );
        let protected = statement(&policy, "DenyProtectedResources");
        assert_eq!(
            protected["Condition"]["StringEquals"]["aws:ResourceTag/dce.dev/protected"],
            "true"
        );
        for sid in ["DenyAccountIAM", "DenySupportAndBilling"] {
            assert_eq!(statement(&policy, sid)["Effect"], "Deny");
        }
        assert_eq!(rendered.hash.len(), 64);
    }

    #[test]
    fn hash_follows_the_rendered_document() {
        let one = vec!["us-east-1".to_string()];
        let two = vec!["us-west-2".to_string()];
        let a = render_policy(DEFAULT_POLICY_TEMPLATE, &inputs(&one)).unwrap();
        let again = render_policy(DEFAULT_POLICY_TEMPLATE, &inputs(&one)).unwrap();
        let b = render_policy(DEFAULT_POLICY_TEMPLATE, &inputs(&two)).unwrap();
        assert_eq!(a, again);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn template_errors_are_explained() {
        let regions = vec!["us-east-1".to_string()];
        let unknown = render_policy(r#"{"a":"{{nope}}"}"#, &inputs(&regions)).unwrap_err();
        assert!(
            unknown.contains("unknown placeholder {{nope}}"),
            "{unknown}"
        );
        let unclosed = render_policy(r#"{"a":"{{accountId"}"#, &inputs(&regions)).unwrap_err();
        assert!(unclosed.contains("unclosed"), "{unclosed}");
        let not_json = render_policy("{{allowedRegions}", &inputs(&regions)).unwrap_err();
        assert!(not_json.contains("unclosed"), "{not_json}");
        let array = render_policy("{{allowedRegions}}", &inputs(&regions)).unwrap_err();
        assert!(array.contains("not a JSON object"), "{array}");
        let broken =
            render_policy(r#"{"a": {{principalRoleArn}}}"#, &inputs(&regions)).unwrap_err();
        assert!(broken.contains("not valid JSON"), "{broken}");
    }

    #[test]
    fn static_key_accounts_have_no_admin_role_to_protect() {
        let regions = vec!["us-east-1".to_string()];
        let inputs = PolicyInputs {
            admin_role_arn: None,
            ..inputs(&regions)
        };
        let rendered = render_policy(
            r#"{"r": {{managedArns}}, "a": "{{adminRoleArn}}"}"#,
            &inputs,
        )
        .unwrap();
        let policy: serde_json::Value = serde_json::from_str(&rendered.document).unwrap();
        assert_eq!(policy["r"].as_array().unwrap().len(), 2);
        assert_eq!(policy["a"], "");
    }

    #[test]
    fn trust_goes_to_the_role_behind_a_session() {
        assert_eq!(
            trust_principal("arn:aws:sts::111111111111:assumed-role/dce-operator/session-1"),
            "arn:aws:iam::111111111111:role/dce-operator"
        );
        assert_eq!(
            trust_principal("arn:aws-cn:sts::111111111111:assumed-role/op/s"),
            "arn:aws-cn:iam::111111111111:role/op"
        );
        for kept in [
            "arn:aws:iam::111111111111:user/operator",
            "arn:aws:iam::111111111111:root",
        ] {
            assert_eq!(trust_principal(kept), kept);
        }
    }

    #[test]
    fn role_changes() {
        let trust = trust_policy("arn:aws:iam::111111111111:user/op");
        let role = ObservedRole {
            trust_policy: serde_json::to_string_pretty(
                &serde_json::from_str::<serde_json::Value>(&trust).unwrap(),
            )
            .unwrap(),
            max_session_seconds: Some(3600),
            managed: true,
        };
        assert_eq!(role_change(None, &trust, 3600), RoleChange::Create);
        assert_eq!(
            role_change(Some(&role), &trust, 3600),
            RoleChange::UpToDate,
            "reformatted JSON is the same document"
        );
        assert_eq!(
            role_change(Some(&role), &trust, 7200),
            RoleChange::Update {
                trust: false,
                max_session: true
            }
        );
        let other = trust_policy("arn:aws:iam::222222222222:root");
        assert_eq!(
            role_change(Some(&role), &other, 3600),
            RoleChange::Update {
                trust: true,
                max_session: false
            }
        );
        let foreign = ObservedRole {
            managed: false,
            ..role
        };
        assert_eq!(
            role_change(Some(&foreign), &other, 7200),
            RoleChange::NotManaged
        );
    }

    #[test]
    fn max_session_covers_the_credentials_lifetime() {
        assert_eq!(max_session_seconds(900), 3600);
        assert_eq!(max_session_seconds(3600), 3600);
        assert_eq!(max_session_seconds(43_200), 43_200);
    }

    #[test]
    fn pruning_keeps_room_for_one_new_version_and_the_default() {
        let at = |s: i64| Some(Timestamp::from_second(s).unwrap());
        let version = |id: &str, created, is_default| ObservedVersion {
            id: id.to_string(),
            is_default,
            created,
        };
        // Fewer than the limit: nothing to prune.
        let few = vec![version("v1", at(1), false), version("v2", at(2), true)];
        assert!(versions_to_prune(&few).is_empty());
        // Full: the oldest non-default goes, even when the default is older.
        let full = vec![
            version("v3", at(3), false),
            version("v1", at(1), true),
            version("v2", at(2), false),
            version("v4", at(4), false),
            version("v5", at(5), false),
        ];
        assert_eq!(versions_to_prune(&full), vec!["v2"]);
        // Equal creation times: the lower version number is older.
        let same_time = vec![
            version("v10", at(1), false),
            version("v9", at(1), false),
            version("v8", at(1), false),
            version("v7", at(1), false),
            version("v11", at(1), true),
        ];
        assert_eq!(versions_to_prune(&same_time), vec!["v7"]);
    }

    #[test]
    fn managed_tags_mark_what_the_operator_created() {
        let tags = managed_tags("DCEPrincipal");
        assert!(is_managed(&tags));
        assert_eq!(tags["Name"], "DCEPrincipal");
        assert!(!is_managed(&BTreeMap::from([(
            "Name".to_string(),
            "DCEPrincipal".to_string()
        )])));
    }
}
