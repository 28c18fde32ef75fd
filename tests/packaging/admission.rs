//! The chart's lease admission policy on a real API server: a user may write only Leases whose
//! principal is themselves, unless RBAC grants them `lease-for-others`.

use std::time::Duration;

use dce_e2e::cluster::{client_for, wait_for};
use dce_e2e::control_plane::{ControlPlaneConfig, StaticToken};
use dce_operator::resources::Lease;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::Cluster;
use crate::common::lease;
use dce_e2e::chart_cluster::bind;

const TEAM: &str = "team-admission";

fn user(name: &str) -> StaticToken {
    StaticToken {
        token: format!("{name}-token"),
        username: name.into(),
        uid: format!("{name}-uid"),
        groups: vec![],
    }
}

async fn client_of(cluster: &Cluster, name: &str) -> Client {
    let kubeconfig = cluster
        .control_plane
        .kubeconfig_yaml(&format!("{name}-token"));
    client_for(&kubeconfig).await.unwrap()
}

/// The API server's answer to `create`, as (HTTP status, message) when it refuses.
async fn create(
    leases: &Api<Lease>,
    params: &PostParams,
    lease: &Lease,
) -> Result<(), (u16, String)> {
    match leases.create(params, lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err((status.code, status.message)),
        Err(other) => panic!("create failed outside the API: {other}"),
    }
}

fn refused(outcome: Result<(), (u16, String)>, user: &str) {
    let (code, message) = outcome.expect_err("the policy must refuse it");
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains(&format!(
            "spec.principalId must be your own user name ({user})"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn users_write_only_their_own_leases_unless_allowed_to_lease_for_others() {
    let cluster = Cluster::start_with(ControlPlaneConfig {
        tokens: vec![
            user("alice"),
            user("bob"),
            user("carol"),
            user("pool-admin"),
        ],
        ..ControlPlaneConfig::default()
    })
    .await
    .unwrap();
    cluster.install(&json!({})).await.expect("install");
    cluster.kubectl.create_namespace(TEAM).await.unwrap();
    bind(&cluster.client, "dce-namespace-lease-user", "alice").await;
    bind(&cluster.client, "dce-namespace-lease-user", "bob").await;
    bind(&cluster.client, "dce-lease-user", "carol").await;
    bind(&cluster.client, "dce-admin", "pool-admin").await;
    let as_alice: Api<Lease> = Api::namespaced(client_of(&cluster, "alice").await, TEAM);
    let as_bob: Api<Lease> = Api::namespaced(client_of(&cluster, "bob").await, TEAM);
    let as_admin: Api<Lease> = Api::namespaced(client_of(&cluster, "pool-admin").await, TEAM);
    let as_carol: Api<Lease> = Api::namespaced(client_of(&cluster, "carol").await, TEAM);

    // A new policy takes effect once the API server has compiled it: probe with dry runs.
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    wait_for(Duration::from_secs(30), || async {
        matches!(
            create(&as_alice, &dry_run, &lease("probe", "bob")).await,
            Err((403, _))
        )
        .then_some(())
    })
    .await
    .expect("the admission policy never took effect");

    let write = PostParams::default();
    refused(
        create(&as_alice, &write, &lease("for-bob", "bob")).await,
        "alice",
    );
    create(&as_alice, &write, &lease("alices", "alice"))
        .await
        .expect("alice leases for herself");

    // Changing the principal of one's own lease is leasing for someone else.
    let to_bob = Patch::Merge(json!({ "spec": { "principalId": "bob" } }));
    let changed = as_alice
        .patch("alices", &PatchParams::default(), &to_bob)
        .await;
    assert!(
        matches!(&changed, Err(kube::Error::Api(s)) if s.code == 403),
        "{changed:?}"
    );

    // Nobody else may end alice's lease, not even with delete rights on leases.
    let deleted = as_bob.delete("alices", &DeleteParams::default()).await;
    assert!(
        matches!(&deleted, Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("(bob)")),
        "{deleted:?}"
    );
    assert!(as_alice.get("alices").await.is_ok());

    // The REST API's lease-user role grants leasing, not reading: through kubectl a REST lease
    // user sees no more than the REST API shows them (their own leases).
    create(&as_carol, &write, &lease("carols", "carol"))
        .await
        .expect("carol leases for herself");
    let listed = as_carol.list(&Default::default()).await;
    assert!(
        matches!(&listed, Err(kube::Error::Api(s)) if s.code == 403),
        "{listed:?}"
    );

    // The admin role holds `lease-for-others`.
    create(&as_admin, &write, &lease("admins-for-bob", "bob"))
        .await
        .expect("an admin leases for bob");
    let retargeted = as_admin
        .patch(
            "alices",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "principalId": "carol" } })),
        )
        .await
        .expect("an admin changes the principal");
    assert_eq!(retargeted.spec.principal_id, "carol");

    // Bob ends his own lease.
    as_bob
        .delete("admins-for-bob", &DeleteParams::default())
        .await
        .expect("bob ends his own lease");
    let remaining: Vec<String> = as_admin
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|l| l.name_any())
        .collect();
    assert!(!remaining.contains(&"for-bob".to_string()), "{remaining:?}");

    cluster.stop().await;
}
