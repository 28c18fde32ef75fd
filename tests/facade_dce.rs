//! The DCE API of the REST facade, end to end: the real router over the operator's caches,
//! the in-process operator, a real control plane (TokenReview, SubjectAccessReview, RBAC
//! from `config/rbac/`) and moto.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::WAIT;
use common::facade::{
    ADMIN, ALICE, BOB, Facade, LEASE_NAMESPACE, NOBODY, account_id, add_account, error_of,
    wait_ready,
};
use dce_e2e::cluster::{OPERATOR_NAMESPACE, TestCluster, wait_for};
use dce_operator::aws::{Aws, AwsSettings, StaticKeys};
use dce_operator::facade;
use dce_operator::lifecycle::LeasePolicy;
use dce_operator::lifecycle::usage_store::store_name;
use dce_operator::operator::Caches;
use dce_operator::resources::{Account, Lease, LeaseSpec};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use serde_json::{Value, json};
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dce_api_end_to_end() {
    let facade = Facade::start().await;
    let now = jiff::Timestamp::now().as_second();

    // CORS preflight needs no token and answers `{}` with DCE's allowed headers; every
    // response allows any origin.
    let (status, headers, body) = facade
        .call(Method::OPTIONS, "/leases/x/auth", None, None)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(
        headers["access-control-allow-headers"],
        "Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token"
    );
    assert!(headers["access-control-allow-methods"].contains("POST"));

    // Authentication and authorization: without credentials DCE's 403, with bad ones 401.
    for header_value in [Some("Basic abc"), Some("Bearer")] {
        let mut request = Request::builder().uri("/accounts");
        if let Some(value) = header_value {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = facade
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{header_value:?}"
        );
    }
    let (status, _, body) = facade.get("/accounts", "wrong-token").await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::UNAUTHORIZED, "UnauthorizedError")
    );
    // Not allowed: 403 with DCE's code for authorization failures (the spec's "403 - Unauthorized").
    for (token, user) in [(NOBODY, "nobody"), (ALICE, "alice")] {
        let (status, _, body) = facade.get("/accounts", token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{token}: {body}");
        assert_eq!(
            error_of(&body),
            (
                "UnauthorizedError",
                format!("User [{user}] is not authorized to perform the requested action.")
                    .as_str()
            )
        );
    }
    let (status, _, _) = facade.get("/leases", NOBODY).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = facade
        .send(
            Method::POST,
            "/accounts",
            ALICE,
            json!({"id": account_id(9), "adminRoleArn": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Accounts.
    for (body, code) in [
        ("", "ClientError"),
        ("{not json", "ClientError"),
        (
            r#"{"id":"12","adminRoleArn":"arn:aws:iam::123456789012:role/A"}"#,
            "RequestValidationError",
        ),
        (
            r#"{"id":"123456789012","adminRoleArn":"not-an-arn"}"#,
            "RequestValidationError",
        ),
    ] {
        let (status, _, answer) = facade
            .call(Method::POST, "/accounts", Some(ADMIN), Some(body))
            .await;
        assert_eq!(
            (status, error_of(&answer).0),
            (StatusCode::BAD_REQUEST, code),
            "{body}"
        );
    }
    let (_, _, answer) = facade
        .call(Method::POST, "/accounts", Some(ADMIN), Some(""))
        .await;
    assert_eq!(
        error_of(&answer),
        ("ClientError", "invalid request parameters")
    );
    let (_, _, answer) = facade
        .call(Method::POST, "/accounts", Some(ADMIN), Some("{not json"))
        .await;
    assert_eq!(error_of(&answer).1, "Failed to Parse Request Body");
    let created = add_account(&facade, 1).await;
    assert_eq!(created["id"], account_id(1));
    assert_eq!(created["accountStatus"], "NotReady");
    assert!(created["createdOn"].as_i64().unwrap() >= now - 5);
    assert_eq!(
        created["principalRoleArn"],
        format!("arn:aws:iam::{}:role/DCEPrincipal", account_id(1))
    );
    let (status, body) = facade
        .send(
            Method::POST,
            "/accounts",
            ADMIN,
            json!({"id": account_id(1), "adminRoleArn": format!("arn:aws:iam::{}:role/Admin", account_id(1))}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        error_of(&body),
        (
            "AlreadyExistsError",
            format!("account \"{}\" already exists", account_id(1)).as_str()
        )
    );
    add_account(&facade, 2).await;
    wait_ready(&facade, &account_id(2)).await;
    // DCE's list filters: `id` and `status`.
    let ids_of = |body: &Value| -> Vec<String> {
        body.as_array()
            .unwrap_or_else(|| panic!("not a list: {body}"))
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, _, body) = facade
        .get(&format!("/accounts?id={}", account_id(2)), ADMIN)
        .await;
    assert_eq!(ids_of(&body), vec![account_id(2)]);
    let (_, _, body) = facade
        .get(
            &format!("/accounts?id={}&status=Leased", account_id(2)),
            ADMIN,
        )
        .await;
    assert_eq!(body, json!([]));
    let (_, _, body) = facade.get("/accounts?id=000000000000", ADMIN).await;
    assert_eq!(body, json!([]));
    let (_, _, body) = facade.get("/accounts?status=Ready", ADMIN).await;
    assert!(ids_of(&body).contains(&account_id(2)), "{body}");
    let (_, _, body) = facade.get("/accounts?status=Orphaned", ADMIN).await;
    assert_eq!(body, json!([]));
    let (status, _, body) = facade.get("/accounts/000000000000", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        error_of(&body),
        ("NotFoundError", "account \"000000000000\" not found")
    );
    // An update moves lastModifiedOn (a second on, so the move shows in epoch seconds).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before_update = jiff::Timestamp::now().as_second();
    let (status, body) = facade
        .send(
            Method::PUT,
            &format!("/accounts/{}", account_id(2)),
            ADMIN,
            json!({"metadata": {"team": "a"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["metadata"], json!({"team": "a"}));
    assert!(
        body["lastModifiedOn"].as_i64().unwrap() >= before_update,
        "{body}"
    );
    let (status, _) = facade
        .send(
            Method::PUT,
            &format!("/accounts/{}", account_id(2)),
            ADMIN,
            json!({"adminRoleArn": "bad"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = facade
        .send(
            Method::PUT,
            "/accounts/000000000000",
            ADMIN,
            json!({"metadata": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    wait_ready(&facade, &account_id(1)).await;
    wait_ready(&facade, &account_id(2)).await;

    // Lease creation errors: nothing is written.
    for (body, code, message) in [
        ("", "ClientError", "invalid request parameters".to_string()),
        ("[]", "ClientError", "Failed to Parse Request Body".to_string()),
        (
            &json!({"principalId": "alice", "expiresOn": now - 3600}).to_string(),
            "RequestValidationError",
            format!(
                "lease validation error: expiresOn: Requested lease has a desired expiry date less than today: {}.",
                now - 3600
            ),
        ),
        (
            &json!({"principalId": "alice", "budgetAmount": 5000}).to_string(),
            "RequestValidationError",
            "lease validation error: budgetAmount: Requested lease has a budget amount of 5000.000000, which is greater than max lease budget amount of 1000.000000.".to_string(),
        ),
    ] {
        let (status, _, answer) = facade.call(Method::POST, "/leases", Some(ALICE), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(error_of(&answer), (code, message.as_str()), "{body}");
    }
    let (status, body) = facade
        .post_lease(
            ALICE,
            json!({"principalId": "alice", "expiresOn": now + 30 * 86_400}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_of(&body).1.contains("max lease period"), "{body}");
    let (status, body) = facade
        .post_lease(ALICE, json!({"principalId": "bob"}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a lease user leases only for themselves"
    );
    assert_eq!(
        error_of(&body),
        (
            "UnauthorizedError",
            "User [alice] with role: [User] attempted to act on a lease for [bob], but was not authorized"
        )
    );
    let leases: Api<Lease> = Api::namespaced(facade.cluster.client.clone(), LEASE_NAMESPACE);
    assert!(
        leases
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Alice leases; a second lease for her conflicts, naming the account it would have got.
    let (status, alice_lease) = facade
        .post_lease(ALICE, json!({"principalId": "alice", "budgetAmount": 50, "budgetNotificationEmails": ["a@example.com"], "metadata": {"k": "v"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alice_lease}");
    assert_eq!(alice_lease["leaseStatus"], "Active");
    assert_eq!(alice_lease["principalId"], "alice");
    assert_eq!(alice_lease["budgetAmount"], 50.0);
    assert_eq!(alice_lease["budgetCurrency"], "USD");
    assert_eq!(alice_lease["metadata"], json!({"k": "v"}));
    let expires = alice_lease["expiresOn"].as_i64().unwrap();
    assert!((expires - (now + 604_800)).abs() < 60, "{alice_lease}");
    let alice_id = alice_lease["id"].as_str().unwrap().to_string();
    let alice_account = alice_lease["accountId"].as_str().unwrap().to_string();
    let (status, body) = facade
        .post_lease(ALICE, json!({"principalId": "alice"}))
        .await;
    let other_account = if alice_account == account_id(1) {
        account_id(2)
    } else {
        account_id(1)
    };
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        error_of(&body),
        (
            "AlreadyExistsError",
            format!("lease \"with principal alice and account {other_account}\" already exists")
                .as_str()
        )
    );
    assert_eq!(
        leases.list(&Default::default()).await.unwrap().items.len(),
        1,
        "a refused request writes nothing"
    );

    // A leased account cannot be deleted.
    let (status, _, body) = facade
        .call(
            Method::DELETE,
            &format!("/accounts/{alice_account}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        error_of(&body),
        (
            "ConflictError",
            format!("operation cannot be fulfilled on account \"{alice_account}\": accountStatus: must not be leased.").as_str()
        )
    );

    // Others' leases: DCE's 401, except lease auth, which does not find them.
    let (status, _, body) = facade.get(&format!("/leases/{alice_id}"), ALICE).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (StatusCode::OK, Some(alice_id.as_str()))
    );
    let (status, _, _) = facade.get(&format!("/leases/{alice_id}"), ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let not_bobs = (
        "UnauthorizedError",
        "User [bob] with role: [User] attempted to act on a lease for [alice], but was not authorized",
    );
    let (status, _, body) = facade.get(&format!("/leases/{alice_id}"), BOB).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::UNAUTHORIZED, not_bobs)
    );
    let (status, _, _) = facade
        .call(
            Method::POST,
            &format!("/leases/{alice_id}/auth"),
            Some(BOB),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = facade
        .call(
            Method::DELETE,
            &format!("/leases/{alice_id}"),
            Some(BOB),
            None,
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::UNAUTHORIZED, not_bobs)
    );
    let (status, body) = facade
        .send(
            Method::DELETE,
            "/leases",
            BOB,
            json!({"principalId": "alice", "accountId": alice_account}),
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::UNAUTHORIZED, not_bobs)
    );

    // Lease auth: fresh credentials that work, and a console URL through the federation endpoint.
    let (status, _, auth) = facade
        .call(
            Method::POST,
            &format!("/leases/{alice_id}/auth"),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{auth}");
    assert!(
        auth["consoleUrl"]
            .as_str()
            .unwrap()
            .starts_with(&facade.federation.endpoint())
    );
    let identity = facade.identity_of(&auth).await;
    assert_eq!(identity.account, alice_account);
    assert!(
        identity.arn.contains("DCEPrincipal/alice"),
        "{}",
        identity.arn
    );

    // Bob takes the other account; with the pool empty, a lease is refused and not kept.
    let (status, bob_lease) = facade
        .send(Method::POST, "/leases", BOB, json!({"principalId": "bob"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bob_lease}");
    let (status, body) = facade
        .post_lease(ADMIN, json!({"principalId": "carol"}))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        error_of(&body),
        ("ServerError", "No Available accounts at this moment")
    );
    // Counted apart, so the 5xx alert can leave pool exhaustion out.
    let text = facade.metrics.encode();
    assert!(
        text.contains(r#"dce_http_requests_total{method="POST",route="/leases",status="5xx",cause="pool_exhausted"} 1"#),
        "{text}"
    );
    wait_for(WAIT, || async {
        let items = leases.list(&Default::default()).await.ok()?.items;
        (items.len() == 2).then_some(())
    })
    .await
    .expect("the refused lease is removed");

    // Lists: a lease user sees their own; an admin pages through everything exactly once.
    let (status, _, body) = facade.get("/leases", ALICE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body[0]["id"], alice_id.as_str());
    let (_, _, body) = facade.get("/leases?principalId=bob", ALICE).await;
    assert_eq!(body, json!([]));
    let (_, _, body) = facade
        .get(
            "/leases?status=Active&accountId=".to_string().as_str(),
            ADMIN,
        )
        .await;
    assert_eq!(body, json!([]));
    let (_, _, body) = facade
        .get(&format!("/leases?accountId={alice_account}"), ADMIN)
        .await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    let (status, _, _) = facade.get("/leases?limit=zero", ADMIN).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A kubectl-created lease, refused by the controller, is listed and is Inactive.
    let mut invalid = Lease::new("too-rich", LeaseSpec::for_principal("alice"));
    invalid.spec.budget_amount = Some(1e6);
    let invalid = leases
        .create(&PostParams::default(), &invalid)
        .await
        .unwrap();
    let invalid_id = invalid.metadata.uid.clone().unwrap();
    wait_for(WAIT, || async {
        let (_, _, body) = facade.get(&format!("/leases/{invalid_id}"), ALICE).await;
        (body["leaseStatus"] == "Inactive").then_some(())
    })
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut uri = "/leases?limit=1".to_string();
    loop {
        let (status, headers, body) = facade.get(&uri, ADMIN).await;
        assert_eq!(status, StatusCode::OK);
        let page = body.as_array().unwrap();
        assert!(page.len() <= 1);
        seen.extend(page.iter().map(|l| l["id"].as_str().unwrap().to_string()));
        let Some(link) = headers.get("link") else {
            break;
        };
        assert!(link.ends_with(">; rel=\"next\""), "{link}");
        let url = link.trim_start_matches('<').split('>').next().unwrap();
        uri = url.trim_start_matches("http://dce.test").to_string();
        assert!(seen.len() <= 3, "paging does not end: {seen:?}");
    }
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!((seen.len(), unique.len()), (3, 3), "{seen:?}");

    // Inactive leases: no auth, no delete.
    let (status, _, body) = facade
        .call(
            Method::POST,
            &format!("/leases/{invalid_id}/auth"),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::UNAUTHORIZED, "UnauthorizedError")
    );
    let (status, _, body) = facade
        .call(
            Method::DELETE,
            &format!("/leases/{invalid_id}"),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (
            StatusCode::CONFLICT,
            (
                "ConflictError",
                format!("operation cannot be fulfilled on lease \"{invalid_id}\": leaseStatus: must be active lease.").as_str()
            )
        )
    );
    let (status, _, _) = facade
        .call(Method::DELETE, "/leases/no-such-lease", Some(ALICE), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Ending leases: by id, and by principal and account.
    let (status, _, ended) = facade
        .call(
            Method::DELETE,
            &format!("/leases/{alice_id}"),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(
        (
            ended["leaseStatus"].as_str(),
            ended["leaseStatusReason"].as_str()
        ),
        (Some("Inactive"), Some("Destroyed"))
    );
    // An ended lease stays, Inactive with its reason: fetched by id and listed.
    let (status, _, body) = facade.get(&format!("/leases/{alice_id}"), ALICE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["leaseStatus"].as_str(),
            body["leaseStatusReason"].as_str()
        ),
        (Some("Inactive"), Some("Destroyed"))
    );
    let bob_account = bob_lease["accountId"].as_str().unwrap();
    let (status, body) = facade
        .send(
            Method::DELETE,
            "/leases",
            BOB,
            json!({"principalId": "bob", "accountId": "000000000000"}),
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (
            StatusCode::NOT_FOUND,
            (
                "NotFoundError",
                "lease \"with Principal ID bob and Account ID 000000000000\" not found"
            )
        )
    );
    let (status, _, body) = facade
        .call(Method::DELETE, "/leases", Some(BOB), Some(""))
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (
            StatusCode::BAD_REQUEST,
            ("ClientError", "invalid request parameters")
        )
    );
    let (status, body) = facade
        .send(
            Method::DELETE,
            "/leases",
            BOB,
            json!({"principalId": "bob", "accountId": bob_account}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["leaseStatusReason"], "Destroyed");
    let bob_id = body["id"].as_str().unwrap().to_string();
    let (_, _, listed) = facade
        .get(
            &format!("/leases?principalId=bob&accountId={bob_account}"),
            BOB,
        )
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        (
            listed[0]["id"].as_str(),
            listed[0]["leaseStatus"].as_str(),
            listed[0]["leaseStatusReason"].as_str()
        ),
        (Some(bob_id.as_str()), Some("Inactive"), Some("Destroyed"))
    );
    // Ending it again: DCE's 409.
    let (status, body) = facade
        .send(
            Method::DELETE,
            "/leases",
            BOB,
            json!({"principalId": "bob", "accountId": bob_account}),
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (
            StatusCode::CONFLICT,
            (
                "ConflictError",
                format!("operation cannot be fulfilled on lease \"{bob_id}\": leaseStatus: must be active lease.").as_str()
            )
        )
    );
    // The ended lease's credentials Secret is gone; the Lease itself stays.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(facade.cluster.client.clone(), LEASE_NAMESPACE);
    wait_for(WAIT, || async {
        let items = secrets.list(&Default::default()).await.ok()?.items;
        items.is_empty().then_some(())
    })
    .await
    .expect("credentials Secrets of ended leases are deleted");
    assert_eq!(
        leases.list(&Default::default()).await.unwrap().items.len(),
        3,
        "ended leases are kept as history"
    );

    // Released accounts can go.
    wait_ready(&facade, &alice_account).await;
    let (status, _, _) = facade
        .call(
            Method::DELETE,
            &format!("/accounts/{alice_account}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_for(WAIT, || async {
        let (status, _, _) = facade
            .get(&format!("/accounts/{alice_account}"), ADMIN)
            .await;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await
    .expect("a deleted account is gone");

    // Usage.
    let (status, _, body) = facade.get("/usage?startDate=1&endDate=2", ALICE).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    for query in [
        "startDate=yesterday",
        "startDate=5&endDate=1",
        "endDate=99999999999999999999",
    ] {
        let (status, _, _) = facade.get(&format!("/usage?{query}"), ALICE).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }

    // Account paging.
    add_account(&facade, 3).await;
    // The list is served from the cache: wait until it holds the new account.
    wait_ready(&facade, &account_id(3)).await;
    let (_, headers, body) = facade.get("/accounts?limit=1", ADMIN).await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert!(headers["link"].contains("nextId="), "{headers:?}");
    let (_, _, body) = facade.get("/accounts?accountStatus=Orphaned", ADMIN).await;
    assert_eq!(body, json!([]));

    // Concurrent requests for one principal, with accounts free: one lease; the others are
    // refused as a second lease is, whether the facade or the controller saw the first one.
    wait_ready(&facade, bob_account).await;
    let answers = futures::future::join_all(
        (0..4).map(|_| facade.post_lease(ADMIN, json!({"principalId": "dave"}))),
    )
    .await;
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::CONFLICT, "{body}");
        let (code, message) = error_of(body);
        assert_eq!(code, "AlreadyExistsError");
        // The account is the one the refused request would have been given.
        assert!(
            message.starts_with("lease \"with principal dave and account ")
                && message.ends_with("\" already exists"),
            "{message}"
        );
    }
    wait_for(WAIT, || async {
        let items = leases.list(&Default::default()).await.ok()?.items;
        let daves = items
            .iter()
            .filter(|l| l.spec.principal_id == "dave")
            .count();
        (daves == 1).then_some(())
    })
    .await
    .expect("only the granted lease is left");

    // Per-route metrics.
    let text = facade.metrics.encode();
    assert!(
        text.contains(
            r#"dce_http_requests_total{method="GET",route="/leases/{id}",status="4xx",cause=""}"#
        ),
        "{text}"
    );
    assert!(
        text.contains("dce_http_request_duration_seconds_bucket"),
        "{text}"
    );
    facade.stop().await;
}

/// A lease ended through the API is kept, Inactive, for the lease history period, then goes,
/// as an expired lease does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_ended_through_the_api_are_kept_for_the_history_period() {
    let history = Duration::from_secs(3);
    let policy = LeasePolicy {
        history_retention: jiff::SignedDuration::try_from(history).unwrap(),
        ..LeasePolicy::default()
    };
    let facade = Facade::start_with_policy(true, Duration::from_secs(10), policy).await;
    add_account(&facade, 1).await;
    wait_ready(&facade, &account_id(1)).await;
    let (status, lease) = facade
        .post_lease(ALICE, json!({"principalId": "alice"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let id = lease["id"].as_str().unwrap().to_string();
    let (status, body) = facade
        .send(
            Method::DELETE,
            "/leases",
            ALICE,
            json!({"principalId": "alice", "accountId": account_id(1)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ended_at = std::time::Instant::now();
    let (status, _, body) = facade.get(&format!("/leases/{id}"), ALICE).await;
    assert_eq!(
        (status, body["leaseStatus"].as_str()),
        (StatusCode::OK, Some("Inactive")),
        "{body}"
    );
    wait_for(WAIT, || async {
        let (status, _, _) = facade.get(&format!("/leases/{id}"), ALICE).await;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await
    .expect("the ended lease is retired after the history period");
    // Status times are whole seconds: the end may be recorded up to a second early.
    assert!(
        ended_at.elapsed() >= history - Duration::from_secs(1),
        "retired after {:?}, before the history period",
        ended_at.elapsed()
    );
    facade.stop().await;
}

/// `POST /accounts` and `PUT /accounts/{id}` save an admin role only once the operator could
/// assume it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_refuse_an_admin_role_that_cannot_be_assumed() {
    let mut facade = Facade::start_with(false, Duration::from_secs(1)).await;
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": ["arn:aws:iam::*:role/Admin", "arn:aws:iam::*:role/NewAdmin"],
        }],
    });
    let moto = &facade.cluster.moto;
    let key = moto
        .create_user_with_key("dce-facade", Some(&policy.to_string()))
        .await
        .unwrap();
    moto.enforce_auth().await.unwrap();
    let aws = Aws::with_operator_keys(
        AwsSettings {
            sts_endpoint: Some(moto.endpoint()),
            ..AwsSettings::default()
        },
        &StaticKeys {
            access_key_id: key.access_key_id,
            secret_access_key: key.secret_access_key,
        },
    );
    facade.use_aws(aws);
    let not_assumable =
        "account validation error: adminRoleArn: must be an admin role arn that can be assumed.";
    let (status, body) = facade
        .send(
            Method::POST,
            "/accounts",
            ADMIN,
            json!({"id": account_id(1), "adminRoleArn": format!("arn:aws:iam::{}:role/Forbidden", account_id(1))}),
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (
            StatusCode::BAD_REQUEST,
            ("RequestValidationError", not_assumable)
        )
    );
    let created = add_account(&facade, 1).await;
    let uri = format!("/accounts/{}", account_id(1));

    let (status, body) = facade
        .send(
            Method::PUT,
            &uri,
            ADMIN,
            json!({"adminRoleArn": format!("arn:aws:iam::{}:role/Forbidden", account_id(1))}),
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (
            StatusCode::BAD_REQUEST,
            ("RequestValidationError", not_assumable)
        )
    );
    let (_, _, body) = facade.get(&uri, ADMIN).await;
    assert_eq!(
        body["adminRoleArn"], created["adminRoleArn"],
        "nothing is written"
    );

    let assumable = format!("arn:aws:iam::{}:role/NewAdmin", account_id(1));
    let (status, body) = facade
        .send(Method::PUT, &uri, ADMIN, json!({"adminRoleArn": assumable}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["adminRoleArn"], assumable.as_str());
    facade.stop().await;
}

/// With no controller to decide (none leads, or it is down), `POST /leases` gives up after the
/// settle timeout with a clear error and removes its Lease, also when the client hung up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_requests_nobody_decides_leave_nothing_behind() {
    let facade = Facade::start_with(false, Duration::from_secs(1)).await;
    let leases: Api<Lease> = Api::namespaced(facade.cluster.client.clone(), LEASE_NAMESPACE);
    let count = || async { leases.list(&Default::default()).await.unwrap().items.len() };

    let (status, body) = facade
        .post_lease(ALICE, json!({"principalId": "alice"}))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(
        error_of(&body),
        (
            "ServerError",
            "No account was assigned to the lease within 1 s; try again"
        )
    );
    assert_eq!(count().await, 0, "the Lease is deleted before the answer");

    // A client that hangs up once its Lease exists.
    let request = facade.post_lease(ALICE, json!({"principalId": "alice"}));
    let lease_exists = wait_for(WAIT, || async { (count().await == 1).then_some(()) });
    tokio::select! {
        answer = request => panic!("answered before the Lease was seen: {answer:?}"),
        seen = lease_exists => seen.expect("the Lease is created"),
    }
    wait_for(WAIT, || async { (count().await == 0).then_some(()) })
        .await
        .expect("the Lease of an abandoned request is deleted");
    facade.stop().await;
}

/// A Lease of `principal` on `account` with these daily costs recorded in its status, as the
/// lease controller records Cost Explorer readings.
async fn lease_with_usage(
    facade: &Facade,
    name: &str,
    principal: &str,
    account: &str,
    days: &[(jiff::civil::Date, f64)],
) {
    let leases: Api<Lease> = Api::namespaced(facade.cluster.client.clone(), LEASE_NAMESPACE);
    leases
        .create(
            &PostParams::default(),
            &Lease::new(name, LeaseSpec::for_principal(principal)),
        )
        .await
        .unwrap();
    let daily: Vec<Value> = days
        .iter()
        .map(|(date, amount)| json!({"date": date.to_string(), "amount": amount}))
        .collect();
    let total: f64 = days.iter().map(|(_, amount)| amount).sum();
    let status = json!({
        "apiVersion": "dce.dev/v1alpha1",
        "kind": "Lease",
        "status": {
            "leaseStatus": "Inactive",
            "leaseStatusReason": "Expired",
            "accountId": account,
            "usage": {"daily": daily, "total": total, "currency": "USD"},
        },
    });
    leases
        .patch_status(
            name,
            &kube::api::PatchParams::apply("usage-test").force(),
            &kube::api::Patch::Apply(status),
        )
        .await
        .unwrap();
}

/// `(principalId, accountId, startDate, costAmount)` of each usage item.
fn usage_rows(body: &Value) -> Vec<(String, String, i64, f64)> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|item| {
            (
                item["principalId"].as_str().unwrap().to_string(),
                item["accountId"].as_str().unwrap().to_string(),
                item["startDate"].as_i64().unwrap(),
                item["costAmount"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_served_in_each_dce_query_form_and_spenders_are_refused() {
    let facade = Facade::start_with(false, Duration::from_secs(1)).await;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let yesterday = today.yesterday().unwrap();
    let start_of = |date: jiff::civil::Date| {
        date.to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_second()
    };
    let (y, t) = (start_of(yesterday), start_of(today));
    let (a, b, c) = ("111111111111", "222222222222", "333333333333");
    lease_with_usage(
        &facade,
        "u1",
        "alice",
        a,
        &[(yesterday, 10.0), (today, 1500.0)],
    )
    .await;
    lease_with_usage(&facade, "u2", "bob", b, &[(today, 4.0)]).await;
    lease_with_usage(&facade, "u3", "alice", c, &[(yesterday, 2.0)]).await;
    let alice =
        |account: &str, day: i64, cost: f64| ("alice".to_string(), account.to_string(), day, cost);
    let bob = |day: i64, cost: f64| ("bob".to_string(), b.to_string(), day, cost);
    // The cache serves the list: wait until it shows every record.
    wait_for(WAIT, || async {
        let (_, _, body) = facade.get("/usage", ADMIN).await;
        (body.as_array()?.len() == 4).then_some(())
    })
    .await
    .unwrap();

    // startDate + endDate: one item per principal, summed, with the query's dates.
    let (status, _, body) = facade
        .get(
            &format!("/usage?startDate={}&endDate={}", y + 100, t + 86_399),
            ADMIN,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        usage_rows(&body)
            .into_iter()
            .map(|(p, _, _, cost)| (p, cost))
            .collect::<Vec<_>>(),
        vec![("alice".to_string(), 1512.0), ("bob".to_string(), 4.0)]
    );
    assert_eq!(body[0]["startDate"], json!(y + 100));
    assert_eq!(body[0]["endDate"], json!(t + 86_399));
    assert_eq!(body[0]["costCurrency"], json!("USD"));
    assert!(body[0]["timeToLive"].as_i64().unwrap() > t);

    // startDate + principalId: that principal's daily rows from that day on.
    let (_, _, body) = facade
        .get(&format!("/usage?startDate={y}&principalId=alice"), ADMIN)
        .await;
    assert_eq!(
        usage_rows(&body),
        vec![alice(a, y, 10.0), alice(c, y, 2.0), alice(a, t, 1500.0)]
    );
    assert_eq!(body[0]["endDate"], json!(y + 86_399));
    let (_, _, body) = facade
        .get(&format!("/usage?startDate={t}&principalId=alice"), ADMIN)
        .await;
    assert_eq!(usage_rows(&body), vec![alice(a, t, 1500.0)]);

    // The filtered list, paged by limit and the Link header's cursor.
    let pages: Vec<_> = facade
        .pages("/usage?limit=3", ADMIN)
        .await
        .iter()
        .map(usage_rows)
        .collect();
    assert_eq!(
        pages,
        vec![
            vec![alice(a, y, 10.0), alice(c, y, 2.0), alice(a, t, 1500.0)],
            vec![bob(t, 4.0)],
        ]
    );
    for (query, expected) in [
        ("principalId=bob".to_string(), vec![bob(t, 4.0)]),
        (format!("accountId={c}"), vec![alice(c, y, 2.0)]),
        (
            format!("startDate={t}"),
            vec![alice(a, t, 1500.0), bob(t, 4.0)],
        ),
    ] {
        let (_, _, body) = facade.get(&format!("/usage?{query}"), ADMIN).await;
        assert_eq!(usage_rows(&body), expected, "{query}");
    }
    // A lease user sees only their own usage.
    let (_, _, body) = facade.get("/usage", BOB).await;
    assert_eq!(usage_rows(&body), vec![bob(t, 4.0)]);
    let (_, _, body) = facade
        .get(&format!("/usage?startDate={y}&endDate={}", t + 86_399), BOB)
        .await;
    assert_eq!(usage_rows(&body).len(), 1);

    for (query, message) in [
        (
            "startDate=soon&endDate=1",
            "Failed to parse usage start date: strconv.ParseInt: parsing \"soon\": invalid syntax",
        ),
        (
            "startDate=1&endDate=99999999999999999999",
            "Failed to parse usage end date: strconv.ParseInt: parsing \"99999999999999999999\": value out of range",
        ),
        (
            "startDate=5&endDate=1",
            "startDate must not be after endDate",
        ),
        ("limit=0", "limit must be a positive integer"),
        ("nextStartDate=x", "nextStartDate must be epoch seconds"),
    ] {
        let (status, _, body) = facade.get(&format!("/usage?{query}"), ADMIN).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        let (code, text) = error_of(&body);
        assert_eq!(code, "RequestValidationError", "{query}");
        assert!(text.contains(message), "{query}: {text}");
    }

    // Alice spent 1500 this week, over the principal budget of 1000: refused, nothing written.
    let leases: Api<Lease> = Api::namespaced(facade.cluster.client.clone(), LEASE_NAMESPACE);
    let (status, body) = facade
        .post_lease(ALICE, json!({"principalId": "alice"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Yesterday's 12 count when it is in this week (today is not Sunday).
    let week_start = dce_operator::lifecycle::budget::period_start(
        jiff::Timestamp::now(),
        dce_operator::lifecycle::BudgetPeriod::Weekly,
    );
    let spent = if yesterday >= week_start {
        1512.0
    } else {
        1500.0
    };
    assert_eq!(
        error_of(&body),
        (
            "RequestValidationError",
            format!("lease validation error: budgetAmount: Unable to create lease: User principal alice has already spent {spent:.2} of their 1000.00 principal budget.").as_str()
        )
    );
    assert_eq!(
        leases.list(&Default::default()).await.unwrap().items.len(),
        3
    );
    facade.stop().await;
}

/// A deleted Lease's usage outlives it in the principal's usage store: `GET /usage` still
/// lists it, and it still counts against the principal's budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_of_a_deleted_lease_is_still_served_and_counted() {
    let facade = Facade::start().await;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let t = today
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second();
    let (a, b) = ("111111111111", "222222222222");
    lease_with_usage(&facade, "gone", "alice", a, &[(today, 1500.0)]).await;
    lease_with_usage(&facade, "kept", "bob", b, &[(today, 4.0)]).await;
    let stores: Api<ConfigMap> = Api::namespaced(facade.cluster.client.clone(), OPERATOR_NAMESPACE);
    wait_for(WAIT, || async {
        let store = stores.get_opt(&store_name("alice")).await.ok()??;
        (!store.data?.is_empty()).then_some(())
    })
    .await
    .expect("the controller stores the lease's usage");

    let leases: Api<Lease> = Api::namespaced(facade.cluster.client.clone(), LEASE_NAMESPACE);
    leases
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(WAIT, || async {
        let cached = facade.state.leases.store().state();
        cached
            .iter()
            .all(|lease| lease.metadata.name.as_deref() != Some("gone"))
            .then_some(())
    })
    .await
    .expect("the facade's cache drops the deleted lease");

    let rows =
        |who: &str, account: &str, cost: f64| (who.to_string(), account.to_string(), t, cost);
    let (_, _, body) = facade.get("/usage", ADMIN).await;
    assert_eq!(
        usage_rows(&body),
        vec![rows("alice", a, 1500.0), rows("bob", b, 4.0)]
    );
    let (_, _, body) = facade.get("/usage", ALICE).await;
    assert_eq!(usage_rows(&body), vec![rows("alice", a, 1500.0)]);
    let (_, _, body) = facade
        .get(
            &format!("/usage?startDate={t}&endDate={}", t + 86_399),
            ADMIN,
        )
        .await;
    assert_eq!(usage_rows(&body).len(), 2);

    let (status, body) = facade
        .post_lease(ALICE, json!({"principalId": "alice"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        error_of(&body),
        (
            "RequestValidationError",
            "lease validation error: budgetAmount: Unable to create lease: User principal alice has already spent 1500.00 of their 1000.00 principal budget."
        )
    );
    facade.stop().await;
}

/// Every route and method in the router is in the OpenAPI document, and every operation in
/// the document is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_router() {
    let facade = Facade::start().await;
    let document: serde_yaml::Value = serde_yaml::from_str(facade::dce::OPENAPI).unwrap();
    let paths = document["paths"].as_mapping().unwrap();
    let methods = ["get", "post", "put", "delete", "options"];
    for (path, item) in paths {
        let path = path.as_str().unwrap();
        let concrete = path.replace("{id}", "some-id");
        for method in methods {
            let documented = item.get(method).is_some();
            let (status, _, body) = facade
                .call(
                    method.to_uppercase().parse().unwrap(),
                    &concrete,
                    Some(ALICE),
                    None,
                )
                .await;
            let served = status != StatusCode::METHOD_NOT_ALLOWED
                && status != StatusCode::NOT_FOUND
                || (status == StatusCode::NOT_FOUND && error_of(&body).0 == "NotFoundError");
            assert_eq!(documented, served, "{method} {path}: {status} {body}");
        }
    }
    // And nothing outside the document answers (other APIs have their own documents).
    for path in ["/account", "/leases/a/b", "/usage/x"] {
        let (status, _, _) = facade.get(path, ALICE).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // The documents are public, as docs/api.md says: no credentials needed.
    for path in ["/openapi/dce.yaml", "/openapi/aws-integration.yaml"] {
        let (status, headers, body) = facade.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["content-type"], "application/yaml");
        assert!(body.as_str().unwrap().starts_with("openapi: 3"));
    }
    facade.stop().await;
}

/// Arbitrary bodies, headers and query strings at every route: never a 5xx, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_requests_never_fail_the_server() {
    use rand::{Rng, SeedableRng};
    let facade = Facade::start().await;
    add_account(&facade, 1).await;
    wait_ready(&facade, &account_id(1)).await;
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let paths = [
        "/accounts",
        "/accounts/{id}",
        "/leases",
        "/leases/{id}",
        "/leases/{id}/auth",
        "/usage",
    ];
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::PATCH,
    ];
    let ids = [
        account_id(1),
        "%00".into(),
        "..".into(),
        "x".repeat(300),
        "%F0%9F%92%A9".into(),
    ];
    let queries = [
        "",
        "limit=-1",
        "limit=99999999999999999999",
        "nextPrincipalId=%FF",
        "status=Active&status=x",
        "startDate=1e9",
        "&&==&",
        "accountId=%00&nextAccountId=z&nextId=",
        "limit=1&nextId=zzz",
    ];
    let bodies = |rng: &mut rand::rngs::StdRng| -> Vec<u8> {
        match rng.random_range(0..6) {
            0 => (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
            1 => json!({"principalId": rng.random::<u32>().to_string(), "budgetAmount": rng.random::<f64>() * 1e4 - 10.0, "expiresOn": rng.random::<i64>()}).to_string().into_bytes(),
            2 => json!({"id": rng.random::<u64>().to_string(), "adminRoleArn": "arn:aws:iam::123:role/x", "metadata": [1]}).to_string().into_bytes(),
            3 => json!({"principalId": "alice", "accountId": account_id(1), "budgetCurrency": "usd", "budgetNotificationEmails": "x"}).to_string().into_bytes(),
            4 => b"null".to_vec(),
            _ => vec![b'['; 100_000],
        }
    };
    for round in 0..300 {
        let path = paths[rng.random_range(0..paths.len())]
            .replace("{id}", &ids[rng.random_range(0..ids.len())]);
        let uri = format!("{path}?{}", queries[rng.random_range(0..queries.len())]);
        let method = methods[rng.random_range(0..methods.len())].clone();
        let mut request = Request::builder().method(method.clone()).uri(&uri);
        let token = [ADMIN, ALICE, NOBODY, "garbage"][rng.random_range(0..4)];
        match rng.random_range(0..4) {
            0 => {}
            1 => request = request.header(header::AUTHORIZATION, format!("Bearer {token}")),
            2 => request = request.header(header::AUTHORIZATION, vec![0x80u8, b'x'].as_slice()),
            _ => {
                request = request
                    .header(header::AUTHORIZATION, format!("bearer {token}"))
                    .header(header::CONTENT_TYPE, "text/plain")
                    .header(header::HOST, "<evil>")
            }
        }
        let body = bodies(&mut rng);
        let response = facade
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        // Leasing the only account a second time is DCE's documented 500.
        let documented =
            String::from_utf8_lossy(&bytes).contains("No Available accounts at this moment");
        assert!(
            !status.is_server_error() || documented,
            "seed {seed} round {round}: {method} {uri} -> {status} {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    facade.stop().await;
}

/// While a replica waits for leadership its controllers' subscriptions are parked: the watches
/// still fill the caches the facade serves from, past the shared streams' buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_fill_while_the_controllers_wait_for_leadership() {
    let cluster = TestCluster::start().await.unwrap();
    cluster.namespace(LEASE_NAMESPACE).await.unwrap();
    let (subscriptions, watches) = Caches::default()
        .watch(cluster.client.clone(), OPERATOR_NAMESPACE)
        .unwrap();
    let leases_cache = subscriptions.leases.clone();
    let parked = subscriptions.park();
    let watches = tokio::spawn(watches);
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), LEASE_NAMESPACE);
    const COUNT: usize = 1_500;
    for chunk in (0..COUNT).collect::<Vec<_>>().chunks(50) {
        futures::future::try_join_all(chunk.iter().map(|i| {
            let leases = leases.clone();
            async move {
                let lease = Lease::new(&format!("l{i}"), LeaseSpec::for_principal(format!("p{i}")));
                leases.create(&PostParams::default(), &lease).await
            }
        }))
        .await
        .unwrap();
    }
    wait_for(WAIT, || async {
        (leases_cache.len() == COUNT).then_some(())
    })
    .await
    .expect("the cache holds every lease");
    let resumed = parked.resume().await.unwrap();
    assert_eq!(resumed.leases.len(), COUNT);
    watches.abort();
    cluster.stop().await;
}

/// Asks the operator for a key pair acting as `user` (in `groups`): a labelled Secret in its
/// namespace. Returns the Secret's name and, once issued, the access key id and secret.
async fn issue_key(facade: &Facade, name: &str, user: &str, groups: &str) -> (String, String) {
    use k8s_openapi::api::core::v1::Secret;
    use std::collections::BTreeMap;
    let secrets: Api<Secret> = Api::namespaced(facade.cluster.client.clone(), OPERATOR_NAMESPACE);
    let request = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("dce.dev/api-key".into(), "true".into())])),
            annotations: Some(BTreeMap::from([
                ("dce.dev/user".into(), user.into()),
                ("dce.dev/groups".into(), groups.into()),
            ])),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &request)
        .await
        .unwrap();
    wait_for(WAIT, || async {
        let data = secrets.get(name).await.ok()?.data?;
        let text = |key: &str| String::from_utf8(data.get(key)?.0.clone()).ok();
        Some((text("aws_access_key_id")?, text("aws_secret_access_key")?))
    })
    .await
    .expect("the operator issues the key pair")
}

/// A request signed as dce-cli signs (AWS SigV4, service execute-api) at `at`; `send_body`
/// replaces the body after signing when given.
#[allow(clippy::too_many_arguments)]
async fn signed_call(
    facade: &Facade,
    method: Method,
    uri: &str,
    body: &str,
    (key_id, secret): (&str, &str),
    at: std::time::SystemTime,
    send_uri: Option<&str>,
    send_body: Option<&str>,
) -> (StatusCode, Value) {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity =
        aws_credential_types::Credentials::new(key_id, secret, None, None, "dce-cli").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("http://dce.test{uri}");
    let headers = [("content-type", "application/json")];
    let signable = SignableRequest::new(
        method.as_str(),
        &url,
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = Request::builder()
        .method(method)
        .uri(send_uri.unwrap_or(uri))
        .header(header::HOST, "dce.test")
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    let request = request
        .body(Body::from(send_body.unwrap_or(body).to_string()))
        .unwrap();
    let response = facade.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// DCE clients sign requests with AWS SigV4; key pairs the operator issues to Kubernetes users
/// and groups verify, and RBAC then governs them as it governs bearer tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dce_clients_sign_requests_with_issued_key_pairs() {
    let facade = Facade::start().await;
    let now = std::time::SystemTime::now;
    let (id, secret) = issue_key(&facade, "alice-key", "alice", "").await;
    let alice = (id.as_str(), secret.as_str());
    assert!(id.starts_with("DCEK") && secret.len() == 40, "{id}");

    // A valid signature acts as the key's user, under that user's RBAC.
    let (status, body) = signed_call(
        &facade,
        Method::GET,
        "/leases?principalId=alice",
        "",
        alice,
        now(),
        None,
        None,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    let (status, body) = signed_call(
        &facade,
        Method::GET,
        "/accounts",
        "",
        alice,
        now(),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        error_of(&body).1,
        "User [alice] is not authorized to perform the requested action."
    );
    let delete_body = r#"{"principalId":"alice","accountId":"000000000000"}"#;
    let (status, body) = signed_call(
        &facade,
        Method::DELETE,
        "/leases",
        delete_body,
        alice,
        now(),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Groups of the key count in RBAC: a group bound to the admin role administers the pool.
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some("pool-robots-dce-admin".into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "dce-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".into(),
            name: "pool-robots".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(facade.cluster.client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let (robot_id, robot_secret) = issue_key(&facade, "robot-key", "robot", "pool-robots").await;
    let robot = (robot_id.as_str(), robot_secret.as_str());
    let (status, body) = signed_call(
        &facade,
        Method::GET,
        "/accounts",
        "",
        robot,
        now(),
        None,
        None,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));

    let refused = |status: StatusCode, body: &Value, message: &str| {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (code, text) = error_of(body);
        assert_eq!(code, "UnauthorizedError", "{body}");
        assert!(text.contains(message), "{text}");
        assert!(
            !text.contains(&secret) && !text.contains(&robot_secret),
            "{text}"
        );
    };
    // A wrong secret.
    let (status, body) = signed_call(
        &facade,
        Method::GET,
        "/leases",
        "",
        (&id, "not-the-secret"),
        now(),
        None,
        None,
    )
    .await;
    refused(status, &body, "signature does not match");
    // Signed more than 15 minutes ago, or ahead.
    for at in [
        now() - Duration::from_secs(16 * 60),
        now() + Duration::from_secs(16 * 60),
    ] {
        let (status, body) =
            signed_call(&facade, Method::GET, "/leases", "", alice, at, None, None).await;
        refused(status, &body, "signature expired");
    }
    // A body or query changed after signing.
    let (status, body) = signed_call(
        &facade,
        Method::POST,
        "/leases",
        r#"{"principalId":"alice"}"#,
        alice,
        now(),
        None,
        Some(r#"{"principalId":"bob"}"#),
    )
    .await;
    refused(status, &body, "signature does not match");
    let (status, body) = signed_call(
        &facade,
        Method::GET,
        "/leases?principalId=alice",
        "",
        alice,
        now(),
        Some("/leases?principalId=bob"),
        None,
    )
    .await;
    refused(status, &body, "signature does not match");
    // A key never issued.
    let (status, body) = signed_call(
        &facade,
        Method::GET,
        "/leases",
        "",
        ("DCEKNOSUCHKEY0000000", "x"),
        now(),
        None,
        None,
    )
    .await;
    refused(status, &body, "is not known");
    // An identical request sent again (the same signature: dce-cli signs to the second) is
    // answered again, as AWS accepts a signature throughout its time window.
    let at = now() - Duration::from_secs(5);
    let (status, _) = signed_call(
        &facade,
        Method::DELETE,
        "/leases",
        delete_body,
        alice,
        at,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = signed_call(
        &facade,
        Method::DELETE,
        "/leases",
        delete_body,
        alice,
        at,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Disabled, then revoked (deleted): refused as soon as the facade's watch shows it.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(facade.cluster.client.clone(), OPERATOR_NAMESPACE);
    secrets
        .patch(
            "robot-key",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"annotations": {"dce.dev/disabled": "true"}}}),
            ),
        )
        .await
        .unwrap();
    wait_for(WAIT, || async {
        let (status, body) = signed_call(
            &facade,
            Method::GET,
            "/accounts",
            "",
            robot,
            now(),
            None,
            None,
        )
        .await;
        (status == StatusCode::UNAUTHORIZED && error_of(&body).1.contains("is disabled"))
            .then_some(())
    })
    .await
    .expect("a disabled key is refused");
    secrets
        .delete("alice-key", &Default::default())
        .await
        .unwrap();
    wait_for(WAIT, || async {
        let (status, body) = signed_call(
            &facade,
            Method::GET,
            "/leases",
            "",
            alice,
            now(),
            None,
            None,
        )
        .await;
        (status == StatusCode::UNAUTHORIZED && error_of(&body).1.contains("is not known"))
            .then_some(())
    })
    .await
    .expect("a revoked key is refused");

    // No credentials at all: DCE's (API Gateway's) answer.
    let (status, _, body) = facade.call(Method::GET, "/leases", None, None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({"message": "Missing Authentication Token"})
        )
    );
    facade.stop().await;
}

/// No Authorization header, however mangled, makes the server fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_authorization_headers_never_fail_the_server() {
    use rand::{Rng, SeedableRng};
    let facade = Facade::start_with(false, Duration::from_secs(1)).await;
    // A pair written by its issuer (no operator runs here to generate one).
    let (id, secret) = (
        "DCEKFUZZFUZZFUZZFUZZ",
        "fuzz-secret-fuzz-secret-fuzz-secret-fuzz",
    );
    let key = k8s_openapi::api::core::v1::Secret {
        metadata: ObjectMeta {
            name: Some("fuzz-key".into()),
            labels: Some([("dce.dev/api-key".to_string(), "true".to_string())].into()),
            annotations: Some([("dce.dev/user".to_string(), "alice".to_string())].into()),
            ..ObjectMeta::default()
        },
        string_data: Some(
            [
                ("aws_access_key_id".to_string(), id.to_string()),
                ("aws_secret_access_key".to_string(), secret.to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
        facade.cluster.client.clone(),
        OPERATOR_NAMESPACE,
    )
    .create(&PostParams::default(), &key)
    .await
    .unwrap();
    wait_for(WAIT, || async {
        let now = std::time::SystemTime::now();
        let (status, _) = signed_call(
            &facade,
            Method::GET,
            "/leases",
            "",
            (id, secret),
            now,
            None,
            None,
        )
        .await;
        (status == StatusCode::OK).then_some(())
    })
    .await
    .expect("the facade knows the key pair");
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let valid = format!(
        "AWS4-HMAC-SHA256 Credential={id}/20260101/us-east-1/execute-api/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={}",
        "0".repeat(64)
    );
    let pieces = [
        "AWS4-HMAC-SHA256",
        " ",
        ",",
        "=",
        "/",
        ";",
        "Credential",
        "SignedHeaders",
        "Signature",
        "aws4_request",
        "execute-api",
        "host",
        "x-amz-date",
        "\t",
        "Bearer",
        "%00",
        "é",
        id,
    ];
    for round in 0..400 {
        let value: Vec<u8> = match rng.random_range(0..4) {
            // The valid shape with bytes changed, cut or repeated.
            0 => {
                let mut bytes = valid.clone().into_bytes();
                for _ in 0..rng.random_range(1..6) {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] = rng.random_range(0x20..0x7f);
                }
                bytes
            }
            1 => valid.as_bytes()[..rng.random_range(0..valid.len())].to_vec(),
            2 => (0..rng.random_range(1..40))
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect::<String>()
                .into_bytes(),
            _ => (0..rng.random_range(0..200))
                .map(|_| rng.random_range(0x20..0x7f))
                .collect(),
        };
        let Ok(value) = axum::http::HeaderValue::from_bytes(&value) else {
            continue;
        };
        let mut request = Request::builder()
            .method(["GET", "POST", "DELETE"][rng.random_range(0..3)])
            .uri(["/leases", "/accounts?id=1", "/usage?startDate=1"][rng.random_range(0..3)])
            .header(header::AUTHORIZATION, value.clone())
            .header(header::HOST, "dce.test");
        if rng.random_bool(0.5) {
            request = request.header(
                "x-amz-date",
                ["20260101T000000Z", "garbage", ""][rng.random_range(0..3)],
            );
        }
        let response = facade
            .router
            .clone()
            .oneshot(request.body(Body::from("{}")).unwrap())
            .await
            .unwrap();
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "seed {seed} round {round}: {value:?} -> {status}"
        );
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "seed {seed} round {round}"
        );
    }
    facade.stop().await;
}

/// A hung Kubernetes API does not hang REST callers: past the deadline they get API Gateway's
/// timeout answer, and once the API server is back requests succeed again.
#[tokio::test]
async fn requests_are_answered_within_the_deadline_when_kubernetes_hangs() {
    let mut facade = Facade::start_with(false, Duration::from_secs(1)).await;
    facade.use_request_deadline(Duration::from_secs(2));
    facade.cluster.control_plane.set_apiserver_frozen(true);
    let started = std::time::Instant::now();
    let (status, _, body) =
        tokio::time::timeout(Duration::from_secs(20), facade.get("/accounts", ADMIN))
            .await
            .expect("an answer, not a hang");
    let waited = started.elapsed();
    facade.cluster.control_plane.set_apiserver_frozen(false);
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body, json!({ "message": "Endpoint request timed out" }));
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    let (status, _, _) = facade
        .call(
            Method::GET,
            "/api/npm.aws_config/1.0/status",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    facade.stop().await;
}

/// A lease user bound by a RoleBinding in the REST lease namespace only has the whole lease API:
/// every lease permission is checked there.
#[tokio::test]
async fn a_role_binding_in_the_lease_namespace_grants_the_whole_lease_api() {
    let facade = Facade::start().await;
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "nobody-leases", "namespace": LEASE_NAMESPACE },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "dce-lease-user" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "nobody" }],
    }))
    .unwrap();
    Api::namespaced(facade.cluster.client.clone(), LEASE_NAMESPACE)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    add_account(&facade, 1).await;
    wait_ready(&facade, &account_id(1)).await;

    let (status, lease) = facade
        .post_lease(NOBODY, json!({ "principalId": "nobody" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let id = lease["id"].as_str().unwrap().to_string();
    let (status, _, listed) = facade.get("/leases", NOBODY).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let (status, _, got) = facade.get(&format!("/leases/{id}"), NOBODY).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let (status, _, usage) = facade.get("/usage", NOBODY).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let (status, ended) = facade
        .send(
            Method::DELETE,
            &format!("/leases/{id}"),
            NOBODY,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    facade.stop().await;
}

/// principalId follows the one rule the CRD also enforces: characters (not bytes) are counted,
/// and control or invisible formatting characters are refused.
#[tokio::test]
async fn principal_ids_follow_the_crd_rule() {
    let facade = Facade::start_with(false, Duration::from_secs(1)).await;
    for bad in ["al\u{0}ice", "ali\nce", "al\u{202E}ecila"] {
        let (status, body) = facade
            .post_lease(ADMIN, json!({ "principalId": bad }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
        assert_eq!(
            error_of(&body),
            (
                "RequestValidationError",
                "invalid request parameters: principalId must not contain control or invisible formatting characters"
            )
        );
    }
    // 256 two-byte characters: within the rule (512 bytes), as the CRD counts them.
    let (status, body) = facade
        .post_lease(ADMIN, json!({ "principalId": "é".repeat(256) }))
        .await;
    assert_ne!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = facade
        .post_lease(ADMIN, json!({ "principalId": "é".repeat(257) }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    facade.stop().await;
}

/// Free-form metadata is bounded the same way for accounts and leases, before anything is
/// written.
#[tokio::test]
async fn metadata_nested_too_deep_is_refused() {
    let facade = Facade::start_with(false, Duration::from_secs(1)).await;
    let deep = (0..30).fold(json!("leaf"), |v, _| json!({ "a": v }));
    let (status, body) = facade
        .send(
            Method::POST,
            "/accounts",
            ADMIN,
            json!({
                "id": account_id(7),
                "adminRoleArn": format!("arn:aws:iam::{}:role/Admin", account_id(7)),
                "metadata": deep["a"],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        error_of(&body),
        (
            "RequestValidationError",
            "account validation error: metadata: nested deeper than 8 levels."
        )
    );
    let (status, body) = facade
        .post_lease(
            ALICE,
            json!({ "principalId": "alice", "metadata": deep["a"] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        error_of(&body),
        (
            "RequestValidationError",
            "lease validation error: metadata: nested deeper than 8 levels."
        )
    );
    let accounts: Api<Account> = Api::all(facade.cluster.client.clone());
    assert!(
        accounts
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    facade.stop().await;
}
