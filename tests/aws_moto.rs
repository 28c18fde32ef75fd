//! The AWS adapter against a real `moto_server` (and a stub of the console federation endpoint).
//!
//! Needs the Python virtualenv from `e2e/scripts/venv.sh`. The operator identity is given
//! explicitly (`Aws::with_operator_keys`), so no test touches the process environment.

use dce_e2e::cluster::install_crypto_provider;
use dce_e2e::moto::{FederationStub, Moto};
use dce_operator::aws::{
    Aws, AwsError, AwsSettings, StaticKeys, TemporaryCredentials, principal_role_arn,
};
use jiff::{SignedDuration, Timestamp};

const LEASED_ACCOUNT: &str = "111122223333";
const ROLE_NAME: &str = "DCEPrincipal";
/// Unsigned IAM calls that set up users before moto starts enforcing authentication:
/// CreateUser + CreateAccessKey (+ PutUserPolicy).
const SETUP_CALLS: &str = "5";
const ALLOW_ASSUME_ROLE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#;

/// Keys moto has never seen: fine while moto does not authenticate, rejected when it does.
fn unknown_operator_keys() -> StaticKeys {
    StaticKeys {
        access_key_id: "AKIAOPERATOR00000000".into(),
        secret_access_key: "operator-secret".into(),
    }
}

fn aws_for(moto: &Moto) -> Aws {
    install_crypto_provider();
    let settings = AwsSettings {
        sts_endpoint: Some(moto.endpoint()),
        ..AwsSettings::default()
    };
    Aws::with_operator_keys(settings, &unknown_operator_keys())
}

fn role_arn() -> String {
    principal_role_arn(LEASED_ACCOUNT, ROLE_NAME)
}

/// Asserts `expiration` is `seconds` from now, give or take a clock tick and a slow machine.
fn assert_expires_in(creds: &TemporaryCredentials, seconds: i64) {
    let remaining = creds.expiration.duration_since(Timestamp::now());
    let expected = SignedDuration::from_secs(seconds);
    let slack = SignedDuration::from_secs(60);
    assert!(
        remaining <= expected + slack && remaining >= expected - slack,
        "expires in {remaining:?}, expected about {expected:?}"
    );
}

/// moto enforcing SigV4 + IAM, with one user allowed to assume roles and one allowed nothing.
async fn moto_with_auth() -> (Moto, StaticKeys, StaticKeys) {
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_CALLS)])
        .await
        .unwrap();
    let allowed = moto
        .create_user_with_key("admin", Some(ALLOW_ASSUME_ROLE))
        .await
        .unwrap();
    let denied = moto.create_user_with_key("nobody", None).await.unwrap();
    let keys = |k: dce_e2e::moto::AccessKey| StaticKeys {
        access_key_id: k.access_key_id,
        secret_access_key: k.secret_access_key,
    };
    (moto, keys(allowed), keys(denied))
}

#[tokio::test]
async fn operator_identity_assumes_a_role_in_the_leased_account() {
    let moto = Moto::start().await.unwrap();
    let aws = aws_for(&moto);

    let creds = aws
        .assume_role(None, &role_arn(), "dce-lease-1", 3600)
        .await
        .unwrap();
    assert!(
        !creds.access_key_id.is_empty()
            && !creds.secret_access_key.is_empty()
            && !creds.session_token.is_empty()
    );
    assert_expires_in(&creds, 3600);

    let identity = aws.caller_identity_of(&creds).await.unwrap();
    assert_eq!(identity.account, LEASED_ACCOUNT);
    assert!(
        identity.arn.starts_with(&format!(
            "arn:aws:sts::{LEASED_ACCOUNT}:assumed-role/{ROLE_NAME}/dce-lease-1"
        )),
        "{}",
        identity.arn
    );
}

#[tokio::test]
async fn duration_seconds_sets_the_expiration() {
    let moto = Moto::start().await.unwrap();
    let aws = aws_for(&moto);
    for seconds in [900, 7200] {
        let creds = aws
            .assume_role(None, &role_arn(), "dce-duration", seconds)
            .await
            .unwrap();
        assert_expires_in(&creds, i64::from(seconds));
    }
}

#[tokio::test]
async fn static_keys_sign_the_request() {
    let (moto, allowed, _) = moto_with_auth().await;
    let aws = aws_for(&moto);

    let me = aws.caller_identity(Some(&allowed)).await.unwrap();
    assert!(me.arn.ends_with(":user/admin"), "{}", me.arn);

    let creds = aws
        .assume_role(Some(&allowed), &role_arn(), "dce-static", 900)
        .await
        .unwrap();
    assert_eq!(
        aws.caller_identity_of(&creds).await.unwrap().account,
        LEASED_ACCOUNT
    );
}

#[tokio::test]
async fn rejected_credentials_are_access_denied() {
    let (moto, _, denied) = moto_with_auth().await;
    let aws = aws_for(&moto);

    // Unknown key (the operator's own, here) and a known user without permission.
    let unknown = aws
        .assume_role(None, &role_arn(), "dce-denied", 900)
        .await
        .unwrap_err();
    let forbidden = aws
        .assume_role(Some(&denied), &role_arn(), "dce-denied", 900)
        .await
        .unwrap_err();
    for err in [unknown, forbidden] {
        assert!(matches!(err, AwsError::AccessDenied { .. }), "{err:?}");
        assert_eq!(err.metric_label(), "access_denied");
        assert!(!err.is_retryable());
        let message = err.to_string();
        assert!(
            message.starts_with("sts:AssumeRole: access denied: "),
            "{message}"
        );
        for secret in [
            &denied.secret_access_key,
            &unknown_operator_keys().secret_access_key,
        ] {
            assert!(
                !message.contains(secret.as_str()) && !format!("{err:?}").contains(secret.as_str())
            );
        }
    }
    assert!(matches!(
        aws.caller_identity(None).await,
        Err(AwsError::AccessDenied { .. })
    ));
}

#[tokio::test]
async fn malformed_role_arn_is_an_invalid_request() {
    let moto = Moto::start().await.unwrap();
    let aws = aws_for(&moto);
    let err = aws
        .assume_role(None, "arn:aws:iam::123:role/Admin", "dce-bad-arn", 900)
        .await
        .unwrap_err();
    assert!(matches!(err, AwsError::InvalidRequest { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("is not an IAM role ARN"), "{err}");
}

#[tokio::test]
async fn closed_endpoint_is_unreachable() {
    install_crypto_provider();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let settings = AwsSettings {
        sts_endpoint: Some(format!("http://{closed}")),
        ..AwsSettings::default()
    };
    let aws = Aws::with_operator_keys(settings, &unknown_operator_keys());
    let err = aws.caller_identity(None).await.unwrap_err();
    assert!(matches!(err, AwsError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.metric_label(), "unreachable");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn console_sign_in_url_exchanges_the_credentials_for_a_token() {
    let moto = Moto::start().await.unwrap();
    let stub = FederationStub::start().await.unwrap();
    install_crypto_provider();
    let settings = AwsSettings {
        sts_endpoint: Some(moto.endpoint()),
        federation_endpoint: stub.endpoint(),
        console_url: "https://console.example.test/home".into(),
        ..AwsSettings::default()
    };
    let aws = Aws::with_operator_keys(settings, &unknown_operator_keys());
    let creds = aws
        .assume_role(None, &role_arn(), "dce-console", 3600)
        .await
        .unwrap();

    let url = aws
        .console_sign_in_url(&creds, "dce-operator")
        .await
        .unwrap();

    let requests = stub.requests();
    assert_eq!(requests.len(), 1);
    let token_request = &requests[0];
    let session: serde_json::Value =
        serde_json::from_str(&token_request.params["Session"]).unwrap();
    assert_eq!(session["sessionId"], creds.access_key_id.as_str());
    assert_eq!(session["sessionKey"], creds.secret_access_key.as_str());
    assert_eq!(session["sessionToken"], creds.session_token.as_str());
    let session_duration: i64 = token_request.params["SessionDuration"].parse().unwrap();
    assert!(
        (3500..=3600).contains(&session_duration),
        "{session_duration}"
    );

    let url = url::Url::parse(&url).unwrap();
    assert_eq!(
        url.as_str().split('?').next(),
        Some(stub.endpoint().as_str())
    );
    let query: std::collections::BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["Action"], "login");
    assert_eq!(query["Issuer"], "dce-operator");
    assert_eq!(query["Destination"], "https://console.example.test/home");
    assert_eq!(
        Some(&query["SigninToken"]),
        token_request.signin_token.as_ref()
    );
    assert!(!url.as_str().contains(&creds.secret_access_key));

    stub.shutdown().await;
}

#[tokio::test]
async fn federation_failures_are_classified_without_leaking_secrets() {
    install_crypto_provider();
    let creds = TemporaryCredentials {
        access_key_id: "ASIAEXAMPLE".into(),
        secret_access_key: "temporary-secret".into(),
        session_token: "temporary-token".into(),
        expiration: Timestamp::now() + SignedDuration::from_secs(3600),
    };
    let with_endpoint = |federation_endpoint: String| {
        Aws::with_operator_keys(
            AwsSettings {
                federation_endpoint,
                ..AwsSettings::default()
            },
            &unknown_operator_keys(),
        )
    };

    // Something that is not a federation endpoint answers: moto has no such page.
    let moto = Moto::start().await.unwrap();
    let not_federation = with_endpoint(format!("{}/federation", moto.endpoint()));
    let answered = not_federation
        .console_sign_in_url(&creds, "dce")
        .await
        .unwrap_err();
    assert!(
        matches!(
            answered,
            AwsError::Other { .. } | AwsError::InvalidResponse { .. }
        ),
        "{answered:?}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = with_endpoint(format!("http://{closed}/federation"))
        .console_sign_in_url(&creds, "dce")
        .await
        .unwrap_err();
    assert!(
        matches!(unreachable, AwsError::Unreachable { .. }),
        "{unreachable:?}"
    );

    let plain_http = with_endpoint("http://signin.example.test/federation".into())
        .console_sign_in_url(&creds, "dce")
        .await
        .unwrap_err();
    assert!(
        matches!(plain_http, AwsError::InvalidRequest { .. }),
        "{plain_http:?}"
    );

    for err in [answered, unreachable, plain_http] {
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("temporary-secret") && !shown.contains("temporary-token"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn moto_control_api_queues_cost_results_and_resets() {
    let moto = Moto::start().await.unwrap();
    let results = serde_json::json!({
        "results": [{
            "ResultsByTime": [{
                "TimePeriod": {"Start": "2030-01-01", "End": "2030-01-02"},
                "Total": {"UnblendedCost": {"Amount": "12.5", "Unit": "USD"}},
                "Groups": [],
                "Estimated": false
            }]
        }]
    });
    moto.queue_cost_and_usage(&results).await.unwrap();
    moto.reset().await.unwrap();
}
