//! The DCE API where DCE's clients (dce-cli) and DCE's own records shape the answer, end to end
//! against a real control plane, moto and the in-process operator: `POST /leases/auth`, one
//! listed lease per principal and account, the account named when a second lease is refused,
//! account updates racing status writes, and `GET /usage` as a list.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::facade::{
    ADMIN, ALICE, BOB, Facade, LEASE_NAMESPACE, NOBODY, account_id, add_account, error_of,
    wait_ready,
};

use dce_operator::resources::{Account, Lease};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// A lease granted through the API: 201, Active.
async fn lease(facade: &Facade, token: &str, request: Value) -> Value {
    let (status, body) = facade.post_lease(token, request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["leaseStatus"], "Active", "{body}");
    body
}

/// Ends the lease with REST id `id`, and waits until its account is Ready again.
async fn end(facade: &Facade, token: &str, lease: &Value) {
    let id = lease["id"].as_str().unwrap();
    let (status, _, body) = facade
        .call(Method::DELETE, &format!("/leases/{id}"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_ready(facade, lease["accountId"].as_str().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_auth_without_an_id_serves_the_callers_active_lease() {
    let facade = Facade::start().await;
    add_account(&facade, 1).await;
    wait_ready(&facade, &account_id(1)).await;
    let auth_own = |token| facade.call(Method::POST, "/leases/auth", Some(token), None);

    // No active lease: DCE's 404. RBAC still decides first.
    let (status, _, body) = auth_own(ALICE).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        error_of(&body),
        ("NotFoundError", "lease for user \"alice\" not found")
    );
    let (status, _, _) = auth_own(NOBODY).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Alice's active lease: the same answer as `POST /leases/{id}/auth`.
    let alice = lease(&facade, ALICE, json!({"principalId": "alice"})).await;
    let (status, _, own) = auth_own(ALICE).await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    let by_id = format!("/leases/{}/auth", alice["id"].as_str().unwrap());
    let (status, _, named) = facade.call(Method::POST, &by_id, Some(ALICE), None).await;
    assert_eq!(status, StatusCode::CREATED, "{named}");
    let fields = |body: &Value| {
        body.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(fields(&own), fields(&named));
    for answer in [&own, &named] {
        let identity = facade.identity_of(answer).await;
        assert_eq!(identity.account, alice["accountId"].as_str().unwrap());
        assert!(
            identity.arn.contains("DCEPrincipal/alice"),
            "{}",
            identity.arn
        );
        let console = answer["consoleUrl"].as_str().unwrap();
        assert!(
            console.starts_with(&facade.federation.endpoint()),
            "{console}"
        );
    }

    // Only one's own lease: an admin and another user have none.
    for (token, user) in [(BOB, "bob"), (ADMIN, "pool-admin")] {
        let (status, _, body) = auth_own(token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{user}: {body}");
        assert_eq!(
            error_of(&body).1,
            format!("lease for user \"{user}\" not found")
        );
    }

    // Once the lease has ended, there is none again.
    end(&facade, ALICE, &alice).await;
    let (status, _, _) = auth_own(ALICE).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // `dce usage` asks with startDate and endDate: the answer is DCE's list (dce-cli's generated
    // client decodes one object, a bug of the client against DCE itself).
    let (status, _, usage) = facade.get("/usage?startDate=1&endDate=2", ALICE).await;
    assert_eq!(
        (status, usage.is_array()),
        (StatusCode::OK, true),
        "{usage}"
    );
    facade.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_show_the_newest_lease_of_each_principal_and_account() {
    let facade = Facade::start().await;
    for n in [1, 2] {
        add_account(&facade, n).await;
        wait_ready(&facade, &account_id(n)).await;
    }
    let (a, b) = (account_id(1), account_id(2));
    // Alice leases account A three times, ending the first two; Bob leases B once.
    let alice_on_a = json!({"principalId": "alice", "accountId": &a});
    let first = lease(&facade, ALICE, alice_on_a.clone()).await;
    end(&facade, ALICE, &first).await;
    let second = lease(&facade, ALICE, alice_on_a.clone()).await;
    end(&facade, ALICE, &second).await;
    let newest = lease(&facade, ALICE, alice_on_a).await;
    let bobs = lease(&facade, BOB, json!({"principalId": "bob", "accountId": &b})).await;
    let ids = |body: &Value| -> Vec<String> {
        let items = body
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {body}"));
        items
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect()
    };

    // DCE keeps one record per principal and account: the newest lease.
    let query = format!("/leases?principalId=alice&accountId={a}");
    let (status, _, body) = facade.get(&query, ALICE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), [newest["id"].as_str().unwrap()]);
    assert_eq!(body[0]["leaseStatus"], "Active");
    let (_, _, body) = facade.get(&format!("{query}&status=Inactive"), ALICE).await;
    assert_eq!(
        body,
        json!([]),
        "the ended leases are not DCE records any more"
    );

    // Paged one at a time, each pair comes once and the last page has no Link.
    let pages = facade.pages("/leases?limit=1", ADMIN).await;
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    let expected = [&newest, &bobs].map(|l| l["id"].as_str().unwrap().to_string());
    assert_eq!(listed, expected);

    // The Lease objects keep the history, and an ended lease is still served by its id.
    let leases: Api<Lease> = Api::namespaced(facade.cluster.client.clone(), LEASE_NAMESPACE);
    let kept = leases.list(&Default::default()).await.unwrap().items;
    assert_eq!(kept.len(), 4);
    let first_id = first["id"].as_str().unwrap();
    let (status, _, body) = facade.get(&format!("/leases/{first_id}"), ALICE).await;
    assert_eq!(
        (status, &body["leaseStatus"]),
        (StatusCode::OK, &json!("Inactive"))
    );
    facade.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_lease_is_refused_naming_the_account_it_would_have_got() {
    let facade = Facade::start().await;
    for n in [1, 2] {
        add_account(&facade, n).await;
        wait_ready(&facade, &account_id(n)).await;
    }
    // Alice takes the first account by name.
    let alice = lease(&facade, ALICE, json!({"principalId": "alice"})).await;
    assert_eq!(alice["accountId"], account_id(1));

    // DCE picks the account for the request, then refuses the principal naming that account.
    let (status, body) = facade
        .post_lease(ALICE, json!({"principalId": "alice"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = format!(
        "lease \"with principal alice and account {}\" already exists",
        account_id(2)
    );
    assert_eq!(error_of(&body), ("AlreadyExistsError", message.as_str()));

    // With no account left to pick, DCE answers that first.
    lease(&facade, BOB, json!({"principalId": "bob"})).await;
    let (status, body) = facade
        .post_lease(ALICE, json!({"principalId": "alice"}))
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            ("ServerError", "No Available accounts at this moment")
        )
    );
    let leases: Api<Lease> = Api::namespaced(facade.cluster.client.clone(), LEASE_NAMESPACE);
    let kept = leases.list(&Default::default()).await.unwrap().items;
    assert_eq!(kept.len(), 2, "refused requests write nothing");
    facade.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_updates_do_not_conflict_with_status_writes() {
    let facade = Facade::start_with(false, Duration::from_secs(1)).await;
    let id = account_id(1);
    add_account(&facade, 1).await;

    // The controller's part, played fast: status writes, one after the other, throughout.
    let accounts: Api<Account> = Api::all(facade.cluster.client.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let status_writes = tokio::spawn({
        let (accounts, stop, id) = (accounts.clone(), stop.clone(), id.clone());
        async move {
            let mut writes = 0;
            while !stop.load(Ordering::Relaxed) {
                let status = json!({"status": {"principalPolicyHash": format!("hash-{writes}")}});
                accounts
                    .patch_status(&id, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .unwrap();
                writes += 1;
            }
            writes
        }
    });

    let uri = format!("/accounts/{id}");
    for round in 0..10 {
        let mut metadata = json!({"round": round});
        metadata[format!("key-{round}")] = json!(true);
        let (status, body) = facade
            .send(Method::PUT, &uri, ADMIN, json!({"metadata": metadata}))
            .await;
        assert_eq!(status, StatusCode::OK, "round {round}: {body}");
        assert_eq!(body["metadata"], metadata, "replaced as a whole");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(
        status_writes.await.unwrap() > 10,
        "the writes overlapped the updates"
    );

    let stored = accounts.get(&id).await.unwrap();
    let keys: BTreeSet<_> = stored.spec.metadata.unwrap().into_keys().collect();
    assert_eq!(
        keys,
        BTreeSet::from(["key-9".to_string(), "round".to_string()])
    );
    facade.stop().await;
}
