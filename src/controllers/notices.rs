//! Budget notices sent to a webhook: one JSON POST per threshold reached.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::sync::OnceCell;
use url::Url;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What the webhook receives.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetNotice {
    pub namespace: String,
    pub lease: String,
    pub principal_id: String,
    pub account_id: String,
    /// The threshold reached, in percent of the lease budget.
    pub threshold_percent: i32,
    pub spend: f64,
    pub budget_amount: f64,
    pub currency: String,
    /// The lease's `budgetNotificationEmails`.
    pub recipients: Vec<String>,
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The configured webhook, if any. The client is built on first use.
pub struct BudgetWebhook {
    url: Option<Url>,
    client: OnceCell<HttpsClient>,
}

impl BudgetWebhook {
    pub fn new(url: Option<Url>) -> Self {
        Self {
            url,
            client: OnceCell::new(),
        }
    }

    /// Posts `notice`; nothing to do without a webhook. Errors never include the URL, which
    /// may carry a token.
    pub async fn send(&self, notice: &BudgetNotice) -> Result<(), String> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        let client = self
            .client
            .get_or_try_init(|| async {
                crate::tls::https_connector()
                    .map(|connector| Client::builder(TokioExecutor::new()).build(connector))
            })
            .await
            .map_err(|err| format!("no TLS root certificates: {err}"))?;
        let body = serde_json::to_vec(notice).map_err(|err| err.to_string())?;
        let request = hyper::Request::post(url.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| format!("could not build the request: {err}"))?;
        match tokio::time::timeout(TIMEOUT, client.request(request)).await {
            Err(_) => Err(format!(
                "the webhook did not answer within {}s",
                TIMEOUT.as_secs()
            )),
            Ok(Err(_)) => Err("the webhook could not be reached".to_string()),
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(format!("the webhook answered {}", response.status())),
        }
    }
}
