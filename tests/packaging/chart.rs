//! The chart with real Helm: lint, values schema, install, upgrade and uninstall.

use std::collections::BTreeSet;

use clap::CommandFactory;
use dce_e2e::helm::{Helm, chart_dir, manifest_objects};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use crate::{Cluster, NAMESPACE, RELEASE, find, only, render};

#[tokio::test]
async fn lint_reports_no_warnings_or_errors() {
    let lint = Helm::lint(&chart_dir()).await.expect("lint runs");
    assert!(lint.passed, "{}", lint.output);
    assert!(
        lint.output.contains("1 chart(s) linted, 0 chart(s) failed"),
        "{}",
        lint.output
    );
    for severity in ["[WARNING]", "[ERROR]"] {
        assert!(!lint.output.contains(severity), "{}", lint.output);
    }
}

#[tokio::test]
async fn bad_values_are_refused_before_anything_is_written() {
    let cluster = Cluster::start().await.unwrap();
    for (values, expected) in [
        (
            json!({ "config": { "reconcileConcurrency": 0 } }),
            "reconcileConcurrency",
        ),
        (
            json!({ "config": { "credentialsLifetimeSeconds": 60 } }),
            "credentialsLifetimeSeconds",
        ),
        (json!({ "reset": { "mode": "sometimes" } }), "mode"),
        (json!({ "confg": {} }), "confg"),
        (
            json!({ "replicaCount": 2, "leaderElection": { "enabled": false } }),
            "replicaCount > 1 needs leaderElection.enabled",
        ),
        (
            json!({ "reset": { "awsEndpoint": "http://127.0.0.1:5000" } }),
            "reset.awsEndpoint needs reset.resourceTypes",
        ),
    ] {
        let error = cluster.install(&values).await.unwrap_err().to_string();
        assert!(error.contains(expected), "{values}: {error}");
    }
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    assert!(deployments.get_opt(RELEASE).await.unwrap().is_none());
    cluster.stop().await;
}

/// Environment variable names the operator reads its settings from (every flag has one).
fn operator_settings() -> BTreeSet<String> {
    dce_operator::config::Config::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect()
}

fn env_of(deployment: &Value) -> Vec<(String, Value)> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("the container has env")
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

#[tokio::test]
async fn every_operator_setting_is_a_chart_value() {
    // The settings without a default appear once set.
    let values = json!({
        "config": {
            "stsEndpoint": "http://sts.example",
            "iamEndpoint": "http://iam.example",
            "maxLeaseBudget": 50,
            "logFilter": "debug",
            "allowedRegions": ["us-east-1", "eu-west-1"],
            "principalPolicyTemplate": "{\"Version\": \"2012-10-17\", \"Statement\": []}",
        },
        "usage": {
            "costExplorerEndpoint": "http://ce.example",
            "notificationWebhookUrl": "https://hooks.example/budget",
            "notificationThresholds": [50, 90],
        },
        "reset": {
            "command": ["nuke", "--all"],
            "nukeFilters": { "S3Bucket": [{ "property": "Name", "type": "glob", "value": "keep-*" }] },
            "awsEndpoint": "http://127.0.0.1:5000",
            "resourceTypes": ["S3Bucket", "IAMRole"],
        },
        "api": {
            "enabled": false,
            "callerRoleArn": "arn:aws:iam::123456789012:role/DCEApiCaller",
            "oidc": {
                "issuerUrl": "https://idp.example",
                "clientId": "dce",
                "clientSecret": { "secretName": "dce-oidc" },
                "caBundle": "-----BEGIN CERTIFICATE-----",
            },
            "tls": { "enabled": true },
        },
    });
    let objects = render(&values).await.unwrap();
    let env = env_of(only(&objects, "Deployment"));
    let names: BTreeSet<String> = env.iter().map(|(n, _)| n.clone()).collect();
    let missing: Vec<String> = operator_settings().difference(&names).cloned().collect();
    assert!(missing.is_empty(), "settings without a value: {missing:?}");
    let value = |name: &str| env.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(value("DCE_STS_ENDPOINT")["value"], "http://sts.example");
    assert_eq!(value("DCE_MAX_LEASE_BUDGET")["value"], "50");
    assert_eq!(value("DCE_RESET_COMMAND")["value"], "nuke,--all");
    assert_eq!(value("DCE_IAM_ENDPOINT")["value"], "http://iam.example");
    assert_eq!(value("DCE_ALLOWED_REGIONS")["value"], "us-east-1,eu-west-1");
    // The settings files are a ConfigMap mounted where the operator reads them.
    let settings = only(&objects, "ConfigMap");
    let deployment = only(&objects, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["configMap"]["name"],
        settings["metadata"]["name"]
    );
    let mount = pod["containers"][0]["volumeMounts"][0]["mountPath"]
        .as_str()
        .unwrap();
    for (setting, key) in [
        (
            "DCE_PRINCIPAL_POLICY_TEMPLATE_FILE",
            "principal-policy.json",
        ),
        ("DCE_RESET_NUKE_FILTERS_FILE", "nuke-filters.yaml"),
        ("DCE_OIDC_CA_FILE", "oidc-ca.pem"),
    ] {
        assert_eq!(value(setting)["value"], format!("{mount}/{key}"));
        assert!(settings["data"][key].is_string(), "{key} in {settings}");
    }
    let filters: Value =
        serde_yaml::from_str(settings["data"]["nuke-filters.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(filters["S3Bucket"][0]["value"], "keep-*");
    assert_eq!(
        value("DCE_COST_EXPLORER_ENDPOINT")["value"],
        "http://ce.example"
    );
    assert_eq!(
        value("DCE_BUDGET_NOTIFICATION_WEBHOOK_URL")["value"],
        "https://hooks.example/budget"
    );
    assert_eq!(
        value("DCE_BUDGET_NOTIFICATION_THRESHOLDS")["value"],
        "50,90"
    );
    assert_eq!(value("DCE_API_ADDR")["value"], "off");
    assert_eq!(
        value("DCE_OIDC_CLIENT_SECRET")["valueFrom"]["secretKeyRef"],
        json!({ "name": "dce-oidc", "key": "client-secret" })
    );
    // The TLS Secret is mounted where the certificate settings point.
    let tls = &pod["volumes"][1];
    assert_eq!(tls["secret"]["secretName"], "dce-operator-api-tls");
    let tls_mount = &pod["containers"][0]["volumeMounts"][1];
    assert_eq!(tls_mount["name"], tls["name"]);
    assert_eq!(
        value("DCE_API_TLS_CERT_FILE")["value"],
        format!("{}/tls.crt", tls_mount["mountPath"].as_str().unwrap())
    );
    assert_eq!(
        value("DCE_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        value("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // No REST API: no port, Service port or Ingress for it.
    let service = only(&objects, "Service");
    assert_eq!(service["spec"]["ports"].as_array().unwrap().len(), 1);
}

/// A permissive ServiceMonitor CRD, standing in for the Prometheus Operator's.
fn service_monitor_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": { "name": "servicemonitors.monitoring.coreos.com" },
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": { "plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor" },
            "versions": [{ "name": "v1", "served": true, "storage": true, "schema": { "openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": true,
            } } }],
        },
    }))
    .unwrap()
}

/// Names of the objects of `kind` (group/version/plural) in the release namespace.
async fn names(cluster: &Cluster, api_version: &str, kind: &str, plural: &str) -> Vec<String> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), NAMESPACE, &resource);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect()
}

/// (apiVersion, kind, plural) of the objects the chart renders only when asked to.
const OPTIONAL_OBJECTS: [(&str, &str, &str); 4] = [
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        "servicemonitors",
    ),
];

#[tokio::test]
async fn install_upgrade_rollback_and_uninstall() {
    let cluster = Cluster::start().await.unwrap();
    let client = cluster.client.clone();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &service_monitor_crd())
        .await
        .unwrap();

    let installed = cluster.install(&json!({})).await.expect("install");
    for (kind, name) in [
        ("CustomResourceDefinition", "accounts.dce.dev"),
        ("CustomResourceDefinition", "leases.dce.dev"),
        ("ServiceAccount", RELEASE),
        ("ClusterRole", RELEASE),
        ("ClusterRoleBinding", RELEASE),
        ("Role", RELEASE),
        ("RoleBinding", RELEASE),
        ("ClusterRole", "dce-admin"),
        ("ClusterRole", "dce-lease-user"),
        ("ClusterRole", "dce-namespace-lease-user"),
        ("Namespace", "dce-leases"),
        ("Service", RELEASE),
        ("Deployment", RELEASE),
    ] {
        assert!(
            find(&installed, kind, name).is_some(),
            "{kind} {name} not rendered"
        );
    }
    let crd = find(&installed, "CustomResourceDefinition", "accounts.dce.dev").unwrap();
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let deployment = deployments.get(RELEASE).await.unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(1));
    for optional in OPTIONAL_OBJECTS {
        assert!(
            names(&cluster, optional.0, optional.1, optional.2)
                .await
                .is_empty(),
            "{optional:?} is off by default"
        );
    }
    // The CRDs work: the pool can be filled.
    cluster
        .kubectl
        .ok(&["apply", "-f", "config/samples/accounts.yaml"], None)
        .await
        .unwrap();

    let everything = json!({
        "replicaCount": 2,
        "metrics": { "serviceMonitor": { "enabled": true } },
        "networkPolicy": { "enabled": true },
        "ingress": { "enabled": true, "className": "nginx", "tls": [{ "hosts": ["dce.example.com"], "secretName": "dce-tls" }] },
    });
    let upgraded = cluster
        .helm
        .upgrade(RELEASE, &chart_dir(), &everything)
        .await
        .expect("upgrade");
    assert_eq!(upgraded["version"], 2);
    let deployment = deployments.get(RELEASE).await.unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(2));
    for optional in OPTIONAL_OBJECTS {
        assert_eq!(
            names(&cluster, optional.0, optional.1, optional.2).await,
            vec![RELEASE],
            "{optional:?}"
        );
    }
    let objects = manifest_objects(&upgraded).unwrap();
    let ingress = only(&objects, "Ingress");
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"],
        "api"
    );

    // Back to the defaults: the optional objects go away.
    cluster
        .helm
        .upgrade(RELEASE, &chart_dir(), &json!({}))
        .await
        .expect("second upgrade");
    assert!(
        names(
            &cluster,
            "policy/v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets"
        )
        .await
        .is_empty()
    );
    assert!(
        names(&cluster, "networking.k8s.io/v1", "Ingress", "ingresses")
            .await
            .is_empty()
    );

    // Rolling back to revision 2 brings its objects back, as revision 4.
    cluster.helm.rollback(RELEASE, 2).await.expect("rollback");
    let deployment = deployments.get(RELEASE).await.unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(2));
    assert_eq!(
        names(&cluster, "networking.k8s.io/v1", "Ingress", "ingresses").await,
        vec![RELEASE]
    );
    let current = cluster.helm.manifest(RELEASE).await.expect("get manifest");
    assert!(find(&current, "PodDisruptionBudget", RELEASE).is_some());

    cluster.helm.uninstall(RELEASE).await.expect("uninstall");
    assert!(deployments.get_opt(RELEASE).await.unwrap().is_none());
    let role = cluster
        .kubectl
        .exists("clusterrole", RELEASE, None)
        .await
        .unwrap();
    assert!(!role, "the operator's ClusterRole is uninstalled");
    // Kept: the CRDs with the pool in them, and the REST API's lease namespace.
    let accounts = cluster
        .kubectl
        .list("accounts.dce.dev", None)
        .await
        .unwrap();
    assert_eq!(accounts.len(), 3);
    assert!(
        cluster
            .kubectl
            .exists("namespace", "dce-leases", None)
            .await
            .unwrap()
    );
    cluster.stop().await;
}
