//! A pool admin sets dce-cli up (`dce init`, `dce auth`) and manages the account pool with it.

use crate::fixture::{ADMIN, BASE_PATH, Deployment, REGION, Tools};
use crate::{keys, printed_json};

const ACCOUNT: &str = "210987654321";

#[tokio::test]
async fn a_pool_admin_sets_up_dce_cli_and_manages_the_pool() -> anyhow::Result<()> {
    let Some(tools) = Tools::find()? else {
        return Ok(());
    };
    let deployment = Deployment::start(tools).await?;
    let home = deployment.bare_home()?;

    // `dce init` asks for the API's host and base path, and writes them with the default region.
    let answers = [
        format!("{}\n", deployment.api_host()),
        format!("{BASE_PATH}\n"),
    ];
    let answers: Vec<&str> = answers.iter().map(String::as_str).collect();
    let output = deployment.dce_answering(&home, &["init"], &answers).await?;
    assert!(output.success(), "{output}");
    let config_path = home.dce_config_path();
    let created = format!("Config file created at: {}\n", config_path.display());
    assert_eq!(output.stderr, created, "{output}");
    let config: serde_yaml::Value = serde_yaml::from_str(&home.dce_config()?)?;
    assert_eq!(
        config["api"]["host"].as_str(),
        Some(&*deployment.api_host())
    );
    assert_eq!(config["api"]["basepath"].as_str(), Some(BASE_PATH));
    assert_eq!(config["region"].as_str(), Some(REGION));

    deployment.auth(&home, &ADMIN).await?;
    let listed = printed_json(&deployment.dce(&home, &["accounts", "list"]).await?);
    assert_eq!(listed, serde_json::json!([]), "an empty pool");

    deployment.add_account(&home, ACCOUNT).await?;
    let listed = printed_json(&deployment.dce(&home, &["accounts", "list"]).await?);
    let [account] = listed.as_array().map(Vec::as_slice).unwrap_or_default() else {
        panic!("one account expected: {listed}");
    };
    // Every field of dce-cli's account is filled.
    assert_eq!(
        keys(account),
        [
            "accountStatus",
            "adminRoleArn",
            "createdOn",
            "id",
            "lastModifiedOn",
            "metadata",
            "principalPolicyHash",
            "principalRoleArn"
        ],
        "{account}"
    );
    assert_eq!(account["id"], ACCOUNT);
    assert_eq!(account["accountStatus"], "Ready");
    assert_eq!(account["metadata"], serde_json::json!({}));
    let role = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");
    assert_eq!(account["adminRoleArn"], role("Admin"));
    assert_eq!(account["principalRoleArn"], role("DCEPrincipal"));

    let described = deployment
        .dce(&home, &["accounts", "describe", ACCOUNT])
        .await?;
    assert_eq!(&printed_json(&described), account);

    let removed = deployment
        .dce(&home, &["accounts", "remove", ACCOUNT])
        .await?;
    assert!(removed.success(), "{removed}");
    let message = "Account removed from DCE accounts pool\n";
    assert_eq!(
        (removed.stdout.as_str(), removed.stderr.as_str()),
        ("\n", message)
    );
    let listed = printed_json(&deployment.dce(&home, &["accounts", "list"]).await?);
    assert_eq!(listed, serde_json::json!([]), "the account is gone");

    deployment.stop().await;
    Ok(())
}
