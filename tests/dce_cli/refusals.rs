//! What dce-cli prints when the operator refuses, as DCE does: someone else's lease, an empty
//! pool, a second lease; and what it does with credentials that have expired.
//!
//! The generated client decodes no error body (DCE's `{"error": {"message": …}}`): a status its
//! operation lists prints as `[<method> <path>][<status>] <operation><Reason> `, any other as
//! `unknown error (status <status>): <the response object, as Go prints a struct>`. So each
//! refusal is also asked of the API with the user's bearer token, to check what DCE's message
//! says.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::fixture::{
    ADMIN, ALICE, BASE_PATH, BOB, Deployment, Tools, alices_lease, auth_messages,
};
use crate::{printed_error, printed_json};

const FIRST: &str = "111111111111";
const SECOND: &str = "222222222222";

#[tokio::test]
async fn someone_elses_lease_is_refused() -> anyhow::Result<()> {
    let Some(tools) = Tools::find()? else {
        return Ok(());
    };
    let deployment = Deployment::start(tools).await?;
    let admin = deployment.signed_in(&ADMIN).await?;
    deployment.add_account(&admin, FIRST).await?;
    let alice = deployment.signed_in(&ALICE).await?;
    let created = printed_json(&deployment.dce(&alice, &alices_lease()).await?);
    let id = created["id"].as_str().unwrap_or_default();
    let bob = deployment.signed_in(&BOB).await?;

    // The client's API description lists no 401 for GET or DELETE /leases/{id}: an unknown
    // error, with the response object where DCE's message would be.
    for command in ["describe", "end"] {
        let refused = printed_error(&deployment.dce(&bob, &["leases", command, id]).await?);
        assert!(
            refused.starts_with("unknown error (status 401): {resp:0x"),
            "{command}: {refused}"
        );
    }
    let path = format!("{BASE_PATH}/leases/{id}");
    let answer = deployment.api_as(&BOB, "DELETE", &path, "").await?;
    let message = "User [bob] with role: [User] attempted to act on a lease for [alice], but \
                   was not authorized";
    assert_eq!(
        (answer.status, error_message(&answer.body)),
        (401, message.into())
    );

    let described = deployment.dce(&alice, &["leases", "describe", id]).await?;
    assert_eq!(printed_json(&described)["leaseStatus"], "Active");
    deployment.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_empty_pool_and_a_second_lease_are_refused() -> anyhow::Result<()> {
    let Some(tools) = Tools::find()? else {
        return Ok(());
    };
    let deployment = Deployment::start(tools).await?;
    let alice = deployment.signed_in(&ALICE).await?;
    let lease_for_alice = json!({"principalId": "alice"}).to_string();
    let leases = format!("{BASE_PATH}/leases");

    let refused = printed_error(&deployment.dce(&alice, &alices_lease()).await?);
    assert_eq!(
        refused,
        "[POST /leases][500] postLeasesInternalServerError "
    );
    let answer = deployment
        .api_as(&ALICE, "POST", &leases, &lease_for_alice)
        .await?;
    let none = "No Available accounts at this moment";
    assert_eq!(
        (answer.status, error_message(&answer.body)),
        (500, none.into())
    );

    let admin = deployment.signed_in(&ADMIN).await?;
    for account in [FIRST, SECOND] {
        deployment.add_account(&admin, account).await?;
    }
    let created = printed_json(&deployment.dce(&alice, &alices_lease()).await?);
    assert_eq!(created["accountId"], FIRST);
    let refused = printed_error(&deployment.dce(&alice, &alices_lease()).await?);
    assert_eq!(refused, "[POST /leases][409] postLeasesConflict ");
    // As DCE, the 409 names the account this request would have got, not the one she holds.
    let answer = deployment
        .api_as(&ALICE, "POST", &leases, &lease_for_alice)
        .await?;
    let exists = format!("lease \"with principal alice and account {SECOND}\" already exists");
    assert_eq!((answer.status, error_message(&answer.body)), (409, exists));

    deployment.stop().await;
    Ok(())
}

#[tokio::test]
async fn expired_credentials_send_the_user_back_to_sign_in() -> anyhow::Result<()> {
    let Some(tools) = Tools::find()? else {
        return Ok(());
    };
    let deployment = Deployment::start(tools).await?;
    let home = deployment.signed_in(&ALICE).await?;
    let mut config: serde_yaml::Value = serde_yaml::from_str(&home.dce_config()?)?;
    let token = config["api"]["token"].as_str().unwrap_or_default();
    let mut credentials: serde_json::Value = serde_json::from_slice(&STANDARD.decode(token)?)?;
    credentials["expireTime"] = json!(jiff::Timestamp::now().as_second() - 60);
    config["api"]["token"] = STANDARD.encode(credentials.to_string()).into();
    std::fs::write(home.dce_config_path(), serde_yaml::to_string(&config)?)?;

    // dce-cli finds no valid credentials (its own check, before any call), sends the user to
    // the sign-in page and saves the token they paste; but the command goes on with the
    // credentials it loaded at start-up, so it fails to sign, and only the next one runs.
    let fresh = deployment.page_token(&ALICE).await?;
    let list = ["leases", "list"];
    let output = deployment
        .dce_answering(&home, &list, &[&format!("{fresh}\n")])
        .await?;
    assert_eq!(
        (output.status.code(), output.stdout.as_str()),
        (Some(1), "")
    );
    let unsigned = "Error while v4 signing request.  NoCredentialProviders: no valid providers \
                    in chain. Deprecated.\n\tFor verbose messaging see \
                    aws.Config.CredentialsChainVerboseErrors\n";
    let signing_in = auth_messages(&home);
    let expected = format!("No valid DCE credentials found\n{signing_in}{unsigned}");
    assert_eq!(output.stderr, expected, "{output}");
    assert_eq!(
        home.opened_urls(),
        [deployment.sign_in_url(), deployment.sign_in_url()]
    );
    let config: serde_yaml::Value = serde_yaml::from_str(&home.dce_config()?)?;
    assert_eq!(config["api"]["token"].as_str(), Some(fresh.as_str()));
    let listed = printed_json(&deployment.dce(&home, &list).await?);
    assert_eq!(listed, json!([]));

    // The page refuses, saying why: a token the cluster does not accept, a form without the
    // CSRF token of its cookie (forged elsewhere, or stale).
    let refused = deployment.post_sign_in("not-a-token").await?;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert!(
        refused
            .body
            .contains("The cluster did not accept that token"),
        "{refused:?}"
    );
    let token = format!("csrf=forged&token={}", ALICE.token());
    let forged = deployment
        .request("POST", &format!("{BASE_PATH}/auth/token"), &token)
        .await?;
    assert_eq!(forged.status, 403, "{forged:?}");
    assert!(forged.body.contains("The form had expired"), "{forged:?}");

    deployment.stop().await;
    Ok(())
}

/// DCE's error message in an error body.
fn error_message(body: &str) -> String {
    let error: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    error["error"]["message"]
        .as_str()
        .unwrap_or(body)
        .to_string()
}
