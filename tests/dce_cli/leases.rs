//! A lease user leases an account, logs in to it every way dce-cli offers, checks the
//! credentials with the `aws` CLI, asks for usage and ends the lease.

use crate::fixture::{ADMIN, ALICE, Deployment, Tools, alices_lease};
use crate::{keys, printed_error, printed_json};

const ACCOUNT: &str = "111122223333";

/// Every field of dce-cli's lease: the operator fills them all.
const LEASE_KEYS: [&str; 12] = [
    "accountId",
    "budgetAmount",
    "budgetCurrency",
    "budgetNotificationEmails",
    "createdOn",
    "expiresOn",
    "id",
    "lastModifiedOn",
    "leaseStatus",
    "leaseStatusModifiedOn",
    "leaseStatusReason",
    "principalId",
];

#[tokio::test]
async fn a_user_leases_an_account_logs_in_and_ends_the_lease() -> anyhow::Result<()> {
    let Some(tools) = Tools::find()? else {
        return Ok(());
    };
    let deployment = Deployment::start(tools).await?;
    let admin = deployment.signed_in(&ADMIN).await?;
    deployment.add_account(&admin, ACCOUNT).await?;
    let home = deployment.signed_in(&ALICE).await?;

    let created = printed_json(&deployment.dce(&home, &alices_lease()).await?);
    assert_eq!(keys(&created), LEASE_KEYS, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let expected = serde_json::json!({
        "accountId": ACCOUNT, "principalId": "alice", "leaseStatus": "Active",
        "leaseStatusReason": "Active", "budgetAmount": 50, "budgetCurrency": "USD",
        "budgetNotificationEmails": ["alice@example.com"],
    });
    for (key, value) in expected.as_object().into_iter().flatten() {
        assert_eq!(&created[key], value, "{key}: {created}");
    }
    // dce-cli's default lease period: seven days from now.
    let week_on = jiff::Timestamp::now().as_second() + 7 * 24 * 3600;
    let expires_on = created["expiresOn"].as_f64().unwrap_or_default() as i64;
    assert!((week_on - 60..=week_on).contains(&expires_on), "{created}");

    let listed = printed_json(&deployment.dce(&home, &["leases", "list"]).await?);
    assert_eq!(listed, serde_json::json!([created]));
    let described = deployment.dce(&home, &["leases", "describe", &id]).await?;
    assert_eq!(printed_json(&described), created);

    // The lease's credentials are the principal role's session in the leased account, named
    // after the user, whichever way dce-cli hands them over.
    let principal = format!("arn:aws:sts::{ACCOUNT}:assumed-role/DCEPrincipal/alice");
    let printed = deployment
        .dce(&home, &["leases", "login", "--print-creds", &id])
        .await?;
    let mut shell = deployment.bare_home()?;
    for (name, value) in exported(&printed) {
        shell.set_env(&name, &value);
    }
    assert_eq!(deployment.aws_identity(&shell, &[]).await?, principal);

    let configured = deployment.dce(&home, &["leases", "login", &id]).await?;
    let adding = "Adding credentials to .aws/credentials using AWS CLI\n";
    assert_eq!(
        (configured.success(), configured.stderr.as_str()),
        (true, adding)
    );
    let default_profile = ["--profile", "default"];
    assert_eq!(
        deployment.aws_identity(&home, &default_profile).await?,
        principal
    );

    // Without an id: the caller's own Active lease (POST /leases/auth).
    let own = deployment
        .dce(&home, &["leases", "login", "--profile", "own"])
        .await?;
    assert_eq!((own.success(), own.stderr.as_str()), (true, adding));
    let own_profile = ["--profile", "own"];
    assert_eq!(
        deployment.aws_identity(&home, &own_profile).await?,
        principal
    );

    // dce-cli sets its dates as path parameters of a path that has none, so it asks for
    // `GET /usage` without them, and decodes one object where DCE, and so the operator, answers
    // a list of usage items: the client's bug against DCE, which fails with Go's decoding error.
    let usage = [
        "usage",
        "--start-date",
        "1765000000",
        "--end-date",
        "1765100000",
    ];
    let decoding = printed_error(&deployment.dce(&home, &usage).await?);
    assert_eq!(
        decoding,
        "json: cannot unmarshal array into Go value of type operations.GetUsageOKBody"
    );

    let ended = deployment.dce(&home, &["leases", "end", &id]).await?;
    assert_eq!(
        (ended.success(), ended.stdout.as_str()),
        (true, "Lease ended\n")
    );
    let described = deployment.dce(&home, &["leases", "describe", &id]).await?;
    let ended = printed_json(&described);
    assert_eq!(
        (&ended["leaseStatus"], &ended["leaseStatusReason"]),
        (&"Inactive".into(), &"Destroyed".into()),
        "{ended}"
    );
    let listed = printed_json(&deployment.dce(&home, &["leases", "list"]).await?);
    assert_eq!(listed, serde_json::json!([ended]));

    deployment.stop().await;
    Ok(())
}

/// The variables `dce leases login --print-creds` prints as shell `export`s.
fn exported(output: &dce_e2e::dce_cli::CliOutput) -> Vec<(String, String)> {
    assert!(output.success(), "{output}");
    let exports = output.stdout.lines().filter(|line| !line.is_empty());
    let pairs = exports.map(|line| {
        let assignment = line.strip_prefix("export ");
        let pair = assignment.and_then(|a| a.split_once('='));
        let (name, value) = pair.unwrap_or_else(|| panic!("not an export: {output}"));
        (name.to_string(), value.to_string())
    });
    let pairs: Vec<(String, String)> = pairs.collect();
    let names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
    let expected = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ];
    assert_eq!(names, expected, "{output}");
    pairs
}
