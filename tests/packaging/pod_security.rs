//! The restricted Pod Security Standard (the `restricted` profile, latest version) as checks of
//! a Pod spec, and the chart's Pod checked against it.

use serde_json::{Value, json};

use crate::{Cluster, NAMESPACE, only, render};

/// Capabilities the baseline profile lets a container add; restricted allows only the last.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
    "NET_BIND_SERVICE",
];
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const RESTRICTED_VOLUME_TYPES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Every way `pod` (a Pod template: `metadata` and `spec`) breaks the restricted profile.
pub fn restricted_violations(pod: &Value) -> Vec<String> {
    let spec = &pod["spec"];
    let pod_sc = &spec["securityContext"];
    let mut out = vec![];
    let mut fail = |rule: &str| out.push(rule.to_string());

    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[host] == true {
            fail(&format!("{host} must not be true"));
        }
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let kind = volume
            .as_object()
            .and_then(|v| v.keys().find(|k| *k != "name"))
            .map(String::as_str)
            .unwrap_or("");
        if !RESTRICTED_VOLUME_TYPES.contains(&kind) {
            fail(&format!("volume {} has type {kind:?}", volume["name"]));
        }
    }
    for sysctl in pod_sc["sysctls"].as_array().into_iter().flatten() {
        let name = sysctl["name"].as_str().unwrap_or("");
        if !SAFE_SYSCTLS.contains(&name) {
            fail(&format!("sysctl {name} is not safe"));
        }
    }
    check_selinux(&pod_sc["seLinuxOptions"], "pod", &mut fail);
    check_apparmor(&pod_sc["appArmorProfile"], "pod", &mut fail);
    if pod_sc["runAsUser"] == 0 {
        fail("pod runAsUser must not be 0");
    }
    if pod_sc["windowsOptions"]["hostProcess"] == true {
        fail("pod windowsOptions.hostProcess must not be true");
    }
    let pod_seccomp = pod_sc["seccompProfile"]["type"].as_str();
    if pod_seccomp.is_some_and(|t| t != "RuntimeDefault" && t != "Localhost") {
        fail("pod seccompProfile must be RuntimeDefault or Localhost");
    }
    for (key, value) in pod["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if key.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && value != "runtime/default"
            && !value.as_str().unwrap_or("").starts_with("localhost/")
        {
            fail(&format!("annotation {key} must not be {value}"));
        }
    }

    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().into_iter().flatten());
    for container in containers {
        let name = container["name"].as_str().unwrap_or("?");
        let sc = &container["securityContext"];
        let mut fail_in = |rule: &str| fail(&format!("container {name}: {rule}"));
        if sc["privileged"] == true {
            fail_in("privileged must not be true");
        }
        if sc["allowPrivilegeEscalation"] != false {
            fail_in("allowPrivilegeEscalation must be false");
        }
        let non_root = match &sc["runAsNonRoot"] {
            Value::Bool(own) => *own,
            _ => pod_sc["runAsNonRoot"] == true,
        };
        if !non_root {
            fail_in("runAsNonRoot must be true (in the container or the pod)");
        }
        if sc["runAsUser"] == 0 {
            fail_in("runAsUser must not be 0");
        }
        match sc["seccompProfile"]["type"].as_str().or(pod_seccomp) {
            Some("RuntimeDefault" | "Localhost") => {}
            _ => fail_in("seccompProfile must be RuntimeDefault or Localhost"),
        }
        let drop = sc["capabilities"]["drop"].as_array();
        if !drop.is_some_and(|d| d.iter().any(|c| c == "ALL")) {
            fail_in("capabilities must drop ALL");
        }
        for added in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            let cap = added.as_str().unwrap_or("");
            if cap != "NET_BIND_SERVICE" {
                let baseline = BASELINE_CAPABILITIES.contains(&cap);
                fail_in(&format!(
                    "capability {cap} may not be added (baseline allows it: {baseline})"
                ));
            }
        }
        if sc["procMount"].as_str().is_some_and(|m| m != "Default") {
            fail_in("procMount must be Default");
        }
        for port in container["ports"].as_array().into_iter().flatten() {
            if port["hostPort"].as_i64().is_some_and(|p| p != 0) {
                fail_in("hostPort must not be set");
            }
        }
        let mut nested = vec![];
        check_selinux(&sc["seLinuxOptions"], "container", &mut |r: &str| {
            nested.push(r.to_string())
        });
        check_apparmor(&sc["appArmorProfile"], "container", &mut |r: &str| {
            nested.push(r.to_string())
        });
        for rule in nested {
            fail_in(&rule);
        }
    }
    out
}

fn check_selinux(options: &Value, scope: &str, fail: &mut impl FnMut(&str)) {
    let kind = options["type"].as_str().unwrap_or("");
    if !SELINUX_TYPES.contains(&kind) {
        fail(&format!(
            "{scope} seLinuxOptions.type {kind} is not allowed"
        ));
    }
    for field in ["user", "role"] {
        if options[field].as_str().is_some_and(|v| !v.is_empty()) {
            fail(&format!("{scope} seLinuxOptions.{field} must not be set"));
        }
    }
}

fn check_apparmor(profile: &Value, scope: &str, fail: &mut impl FnMut(&str)) {
    if profile["type"] == "Unconfined" {
        fail(&format!("{scope} appArmorProfile must not be Unconfined"));
    }
}

/// The Pod template of the chart's Deployment for `values`.
async fn chart_pod(values: Value) -> Value {
    let objects = render(&values).await.expect("the chart renders");
    only(&objects, "Deployment")["spec"]["template"].clone()
}

#[tokio::test]
async fn the_default_pod_meets_the_restricted_standard() {
    let pod = chart_pod(json!({})).await;
    assert_eq!(restricted_violations(&pod), Vec::<String>::new());
    // Two replicas with election change nothing about the Pod's security.
    let ha = chart_pod(json!({ "replicaCount": 2 })).await;
    assert_eq!(restricted_violations(&ha), Vec::<String>::new());
}

/// The API server's own Pod Security admission, enforcing `restricted` (latest) on the release
/// namespace, admits the chart's Pod and refuses its hostNetwork variant (for clusters whose
/// API server and AWS endpoint only the node's network reaches; it needs `privileged`).
#[tokio::test]
async fn a_restricted_namespace_admits_the_chart_pod() {
    let cluster = Cluster::start().await.unwrap();
    let label = "pod-security.kubernetes.io/enforce=restricted";
    let namespace = format!("namespace/{NAMESPACE}");
    cluster
        .kubectl
        .ok(&["label", &namespace, label], None)
        .await
        .unwrap();
    // The Pod runs as the chart's ServiceAccount, which admission looks up.
    let account = ["create", "serviceaccount", crate::RELEASE, "-n", NAMESPACE];
    cluster.kubectl.ok(&account, None).await.unwrap();
    for (values, admitted) in [
        (json!({}), true),
        (json!({ "replicaCount": 2 }), true),
        (json!({ "hostNetwork": { "enabled": true } }), false),
    ] {
        let template = chart_pod(values.clone()).await;
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": "dce-operator-check", "namespace": NAMESPACE },
            "spec": template["spec"],
        });
        let outcome = cluster
            .kubectl
            .run(
                &["create", "--dry-run=server", "-f", "-"],
                Some(&pod.to_string()),
            )
            .await
            .unwrap();
        assert_eq!(outcome.success, admitted, "{values}: {}", outcome.stderr);
        if !admitted {
            assert!(outcome.stderr.contains("hostNetwork"), "{}", outcome.stderr);
        }
    }
    cluster.stop().await;
}

#[tokio::test]
async fn weakened_security_contexts_are_reported() {
    // Helm merges values into the defaults; null removes a default.
    let pod = chart_pod(json!({
        "podSecurityContext": { "runAsUser": 0, "runAsNonRoot": null, "seccompProfile": null },
        "securityContext": {
            "allowPrivilegeEscalation": null,
            "runAsNonRoot": null,
            "capabilities": { "drop": null, "add": ["NET_ADMIN"] },
        },
    }))
    .await;
    let violations = restricted_violations(&pod);
    for expected in [
        "pod runAsUser must not be 0",
        "container operator: allowPrivilegeEscalation must be false",
        "container operator: runAsNonRoot must be true (in the container or the pod)",
        "container operator: seccompProfile must be RuntimeDefault or Localhost",
        "container operator: capabilities must drop ALL",
        "container operator: capability NET_ADMIN may not be added (baseline allows it: false)",
    ] {
        assert!(
            violations.iter().any(|v| v == expected),
            "{expected} not in {violations:?}"
        );
    }
}

#[test]
fn host_namespaces_volumes_and_profiles_are_checked() {
    let pod = json!({
        "metadata": { "annotations": { "container.apparmor.security.beta.kubernetes.io/c": "unconfined" } },
        "spec": {
            "hostNetwork": true,
            "securityContext": {
                "runAsNonRoot": true,
                "seccompProfile": { "type": "Unconfined" },
                "sysctls": [{ "name": "kernel.msgmax", "value": "1" }],
                "seLinuxOptions": { "user": "system_u" },
            },
            "volumes": [{ "name": "root", "hostPath": { "path": "/" } }, { "name": "tmp", "emptyDir": {} }],
            "containers": [{
                "name": "c",
                "ports": [{ "containerPort": 80, "hostPort": 80 }],
                "securityContext": {
                    "allowPrivilegeEscalation": false, "privileged": true, "procMount": "Unmasked",
                    "capabilities": { "drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CHOWN"] },
                },
            }],
        },
    });
    let violations = restricted_violations(&pod);
    assert_eq!(
        violations,
        vec![
            "hostNetwork must not be true",
            "volume \"root\" has type \"hostPath\"",
            "sysctl kernel.msgmax is not safe",
            "pod seLinuxOptions.user must not be set",
            "pod seccompProfile must be RuntimeDefault or Localhost",
            "annotation container.apparmor.security.beta.kubernetes.io/c must not be \"unconfined\"",
            "container c: privileged must not be true",
            "container c: seccompProfile must be RuntimeDefault or Localhost",
            "container c: capability CHOWN may not be added (baseline allows it: true)",
            "container c: procMount must be Default",
            "container c: hostPort must not be set",
        ]
    );
}
