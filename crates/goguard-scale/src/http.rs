//! A small HTTP client over hyper for the sources and the webhook: one pooled client, a
//! timeout on the whole exchange, and errors as one line naming the URL.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// A cheap-to-clone HTTP/1.1 client.
#[derive(Clone)]
pub struct HttpClient(Client<HttpConnector, Full<Bytes>>);

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

/// An answer: status and whole body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl HttpClient {
    pub fn new() -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        HttpClient(
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        )
    }

    pub async fn get(&self, url: &str, timeout: Duration) -> Result<Answer, String> {
        self.send(Method::GET, url, None, timeout).await
    }

    pub async fn post_json(
        &self,
        url: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, String> {
        self.send(Method::POST, url, Some(body), timeout).await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let mut req = Request::builder().method(method).uri(url);
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .header(http::header::USER_AGENT, "goguard-scale")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| format!("{url}: {e}"))?;
        let exchange = async {
            let resp = self.0.request(req).await.map_err(|e| describe(&e))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>(Answer { status, body })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(format!("{url}: {e}")),
            Err(_) => Err(format!(
                "{url}: no answer within {}",
                humantime::format_duration(timeout)
            )),
        }
    }
}

/// The innermost cause of a client error ("connection refused"), which is what a person
/// needs; hyper_util's outer message is only "client error (Connect)".
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
