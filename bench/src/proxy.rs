//! A counting reverse proxy in front of moto, so IAM calls are counted where a server sees them.
//!
//! moto keeps no per-request log that names the operation (its access log shows `POST /` for
//! every IAM call), so the product's `AWS_ENDPOINT_URL_IAM` points here instead: each request's
//! `Action=` (form body of the AWS query protocol, or the query string) is counted, then the
//! request is forwarded unchanged and moto's answer returned unchanged.
//!
//! moto answers on the same machine in a millisecond or two, where IAM in AWS takes tens of
//! milliseconds per call; a bench against moto alone hides what concurrent IAM reads save. So the
//! proxy can hold each request for a fixed time first (`--iam-latency-ms`), as the network
//! and IAM's front end would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Calls per operation name since the last [`ActionCounts::take`].
#[derive(Clone, Default)]
pub struct ActionCounts(Arc<Mutex<BTreeMap<String, u64>>>);

impl ActionCounts {
    fn add(&self, action: String) {
        *self
            .0
            .lock()
            .expect("counts lock")
            .entry(action)
            .or_default() += 1;
    }

    /// The counts so far, resetting them.
    pub fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().expect("counts lock"))
    }
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    counts: ActionCounts,
    latency: std::time::Duration,
}

/// Starts the proxy on a loopback port of the current runtime, holding each request `latency`
/// before forwarding it; returns its endpoint.
pub async fn start(
    upstream: &str,
    latency: std::time::Duration,
) -> anyhow::Result<(String, ActionCounts)> {
    let counts = ActionCounts::default();
    let proxy = Proxy {
        upstream: upstream.trim_end_matches('/').to_string(),
        client: Client::builder(TokioExecutor::new()).build_http(),
        counts: counts.clone(),
        latency,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let router = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("[bench] IAM counting proxy stopped: {e}");
        }
    });
    Ok((endpoint, counts))
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Result<Response, StatusCode> {
    let (mut parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| StatusCode::BAD_REQUEST)?
        .to_bytes();
    proxy.counts.add(action(&parts.uri, &body));
    if !proxy.latency.is_zero() {
        tokio::time::sleep(proxy.latency).await;
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{}{path}", proxy.upstream)
        .parse()
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    let response = proxy
        .client
        .request(axum::http::Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok(response.map(Body::new))
}

/// The AWS query protocol names the operation in `Action=`, in the body or the query string.
fn action(uri: &Uri, body: &[u8]) -> String {
    let query = uri.query().unwrap_or("").as_bytes();
    [body, query]
        .into_iter()
        .flat_map(url::form_urlencoded::parse)
        .find(|(key, _)| key == "Action")
        .map_or_else(
            || "(no Action)".to_string(),
            |(_, value)| value.into_owned(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_comes_from_the_body_or_the_query() {
        let root: Uri = "/".parse().unwrap();
        assert_eq!(
            action(&root, b"Action=GetUser&Version=2010-05-08&UserName=alice"),
            "GetUser"
        );
        let query: Uri = "/?Action=ListUsers".parse().unwrap();
        assert_eq!(action(&query, b""), "ListUsers");
        assert_eq!(action(&root, b"UserName=alice"), "(no Action)");
    }
}
