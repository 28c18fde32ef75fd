use super::*;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        username: name.into(),
        uid: "1".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        non_resource_path: None,
    }
}

fn path(verb: &str, p: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        non_resource_path: Some(p.into()),
        ..Default::default()
    }
}

fn objects() -> RbacObjects {
    let mut rbac = RbacObjects::default();
    for o in bootstrap_policy() {
        match o["kind"].as_str() {
            Some("ClusterRole") => rbac.cluster_roles.push(o),
            Some("ClusterRoleBinding") => rbac.cluster_role_bindings.push(o),
            _ => {}
        }
    }
    rbac.cluster_roles.push(json!({"metadata": {"name": "lease-admin", "labels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
        "rules": [{"apiGroups": ["dce.example.com"], "resources": ["leases", "leases/status"], "verbs": ["*"]}]}));
    rbac.cluster_roles.push(json!({"metadata": {"name": "account-reader"},
        "rules": [{"apiGroups": ["dce.example.com"], "resources": ["accounts"], "verbs": ["get"], "resourceNames": ["acc-1"]}]}));
    rbac.roles.push(json!({"metadata": {"name": "pod-reader", "namespace": "team-a"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "*/scale"], "verbs": ["get", "list"]}]}));
    rbac.role_bindings.push(json!({"metadata": {"name": "read-pods", "namespace": "team-a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "bot"}]}));
    rbac.role_bindings.push(json!({"metadata": {"name": "team-admin", "namespace": "team-a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "Group", "name": "team-a-admins"}]}));
    rbac.cluster_role_bindings.push(json!({"metadata": {"name": "readers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "account-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "dce-system"}]}));
    rbac
}

#[test]
fn masters_are_allowed_everything() {
    let d = authorize(
        &user("root", &["system:masters"]),
        &res("delete", "x", "y", "", "", ""),
        &RbacObjects::default(),
    );
    assert!(d.allowed);
}

#[test]
fn role_binding_applies_only_in_its_namespace() {
    let rbac = objects();
    let alice = user("alice", &["system:authenticated"]);
    let d = authorize(&alice, &res("get", "", "pods", "", "team-a", "p"), &rbac);
    assert_eq!(d, Decision { allowed: true, reason: r#"RBAC: allowed by RoleBinding "read-pods/team-a" of Role "pod-reader" to User "alice""#.into() });
    assert!(!authorize(&alice, &res("get", "", "pods", "", "team-b", "p"), &rbac).allowed);
    assert!(!authorize(&alice, &res("delete", "", "pods", "", "team-a", "p"), &rbac).allowed);
    assert!(!authorize(&alice, &res("get", "", "pods", "log", "team-a", "p"), &rbac).allowed);
    assert!(
        !authorize(
            &alice,
            &res("get", "apps", "deployments", "scale", "team-a", "d"),
            &rbac
        )
        .allowed
    );
    // A cluster-scoped request is never allowed by a RoleBinding.
    assert!(!authorize(&alice, &res("get", "", "pods", "", "", ""), &rbac).allowed);
}

#[test]
fn star_slash_subresource_and_group_matching() {
    let rbac = objects();
    let alice = user("alice", &[]);
    assert!(
        authorize(
            &alice,
            &res("get", "", "replicationcontrollers", "scale", "team-a", "x"),
            &rbac
        )
        .allowed
    );
    assert!(
        !authorize(
            &alice,
            &res("get", "", "replicationcontrollers", "", "team-a", "x"),
            &rbac
        )
        .allowed
    );
    assert!(
        !authorize(
            &alice,
            &res("get", "apps", "pods", "", "team-a", "x"),
            &rbac
        )
        .allowed
    );
}

#[test]
fn service_accounts_match_by_username() {
    let rbac = objects();
    let bot = UserInfo::service_account("team-a", "bot", "u");
    let d = authorize(&bot, &res("list", "", "pods", "", "team-a", ""), &rbac);
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by RoleBinding "read-pods/team-a" of Role "pod-reader" to ServiceAccount "bot/team-a""#
    );
    let other_ns = UserInfo::service_account("team-b", "bot", "u");
    assert!(!authorize(&other_ns, &res("list", "", "pods", "", "team-a", ""), &rbac).allowed);
    // A user named like a service account but without the exact username is not the service account.
    assert!(
        !authorize(
            &user("bot", &[]),
            &res("list", "", "pods", "", "team-a", ""),
            &rbac
        )
        .allowed
    );
}

#[test]
fn resource_names_restrict_rules() {
    let rbac = objects();
    let op = UserInfo::service_account("dce-system", "op", "u");
    let d = authorize(
        &op,
        &res("get", "dce.example.com", "accounts", "", "", "acc-1"),
        &rbac,
    );
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "account-reader" to ServiceAccount "op/dce-system""#
    );
    assert!(
        !authorize(
            &op,
            &res("get", "dce.example.com", "accounts", "", "", "acc-2"),
            &rbac
        )
        .allowed
    );
    assert!(
        !authorize(
            &op,
            &res("list", "dce.example.com", "accounts", "", "", ""),
            &rbac
        )
        .allowed
    );
}

#[test]
fn aggregated_roles_pick_up_labelled_rules() {
    let rbac = objects();
    let admin = user("carol", &["team-a-admins"]);
    // From the labelled custom role, aggregated into admin.
    let d = authorize(
        &admin,
        &res("delete", "dce.example.com", "leases", "", "team-a", "l"),
        &rbac,
    );
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by RoleBinding "team-admin/team-a" of ClusterRole "admin" to Group "team-a-admins""#
    );
    assert!(
        authorize(
            &admin,
            &res(
                "update",
                "dce.example.com",
                "leases",
                "status",
                "team-a",
                "l"
            ),
            &rbac
        )
        .allowed
    );
    // Transitively: view → edit → admin.
    assert!(
        authorize(
            &admin,
            &res("watch", "apps", "deployments", "", "team-a", ""),
            &rbac
        )
        .allowed
    );
    assert!(
        authorize(
            &admin,
            &res(
                "create",
                "rbac.authorization.k8s.io",
                "rolebindings",
                "",
                "team-a",
                ""
            ),
            &rbac
        )
        .allowed
    );
    assert!(
        !authorize(
            &admin,
            &res("delete", "dce.example.com", "leases", "", "team-b", "l"),
            &rbac
        )
        .allowed
    );
    let roles = aggregate_cluster_roles(&rbac.cluster_roles);
    let view = roles
        .iter()
        .find(|r| r["metadata"]["name"] == "view")
        .unwrap();
    let edit = roles
        .iter()
        .find(|r| r["metadata"]["name"] == "edit")
        .unwrap();
    assert!(!view["rules"].as_array().unwrap().is_empty());
    assert!(edit["rules"].as_array().unwrap().len() > view["rules"].as_array().unwrap().len());
    assert!(
        !view["rules"].to_string().contains("secrets"),
        "view must not read secrets"
    );
}

#[test]
fn discovery_and_non_resource_urls() {
    let rbac = objects();
    let anyone = user("dave", &["system:authenticated"]);
    assert!(authorize(&anyone, &path("get", "/apis/dce.example.com/v1"), &rbac).allowed);
    assert!(authorize(&anyone, &path("get", "/version"), &rbac).allowed);
    assert!(!authorize(&anyone, &path("post", "/version"), &rbac).allowed);
    assert!(!authorize(&anyone, &path("get", "/metrics"), &rbac).allowed);
    assert!(
        authorize(
            &anyone,
            &res(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
                ""
            ),
            &rbac
        )
        .allowed
    );
    assert!(
        !authorize(
            &anyone,
            &res(
                "create",
                "authorization.k8s.io",
                "subjectaccessreviews",
                "",
                "",
                ""
            ),
            &rbac
        )
        .allowed
    );
    let anonymous = user("system:anonymous", &["system:unauthenticated"]);
    assert!(authorize(&anonymous, &path("get", "/healthz"), &rbac).allowed);
    assert!(!authorize(&anonymous, &path("get", "/apis"), &rbac).allowed);
}

#[test]
fn bootstrap_objects_carry_bootstrap_markers() {
    let objects = bootstrap_policy();
    for name in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
    ] {
        let role = objects
            .iter()
            .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == name)
            .unwrap();
        assert_eq!(
            role["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
            "true"
        );
        assert_eq!(
            role["metadata"]["labels"]["kubernetes.io/bootstrapping"],
            "rbac-defaults"
        );
        assert_eq!(role["apiVersion"], "rbac.authorization.k8s.io/v1");
    }
    let admin_binding = objects
        .iter()
        .find(|o| o["kind"] == "ClusterRoleBinding" && o["metadata"]["name"] == "cluster-admin")
        .unwrap();
    assert_eq!(admin_binding["subjects"][0]["name"], "system:masters");
    assert_eq!(
        objects
            .iter()
            .find(|o| o["metadata"]["name"] == "edit")
            .unwrap()["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"],
        "true"
    );
}

#[test]
fn malformed_objects_are_ignored() {
    let rbac = RbacObjects {
        roles: vec![json!(null), json!({"rules": "x"})],
        role_bindings: vec![
            json!({"metadata": {"namespace": "a"}, "subjects": 5}),
            json!(7),
        ],
        cluster_roles: vec![
            json!({"aggregationRule": {"clusterRoleSelectors": [null, 3]}, "metadata": {"name": "x"}}),
        ],
        cluster_role_bindings: vec![
            json!({"roleRef": {"kind": "ClusterRole", "name": "x"}, "subjects": [{"kind": "User", "name": "u"}]}),
        ],
    };
    assert!(!authorize(&user("u", &[]), &res("get", "", "pods", "", "a", ""), &rbac).allowed);
}
