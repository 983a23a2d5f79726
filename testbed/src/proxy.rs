//! A deterministic fault-injecting reverse proxy for the test bed's servers.
//!
//! Races and faults must be forced, not hoped for: a test that wants "run A reads IAM, then
//! run B finishes, then A writes" cannot get that order from sleeps. [`FaultProxy`] stands on a
//! loopback port in front of one upstream (moto for IAM, the EKS emulator, or one
//! kube-apiserver over TLS) and forwards every request, except where the test said otherwise:
//!
//! - [`FaultProxy::hold`]: the first matching request is forwarded and its *answer* kept back
//!   until the test calls [`Hold::release`]. The upstream has really answered (IAM was read at
//!   that moment), only the client does not know yet: exactly the window of a slow run.
//! - [`FaultProxy::inject`]: the next matching requests get a [`Fault`] instead of reaching the
//!   upstream: a throttling or server error with the body and headers the real service sends
//!   (per [`Protocol`], so the SDK or kube client classifies it as it would in AWS), a TCP reset,
//!   or a black hole (the request is read and never answered, the socket stays open).
//! - [`FaultProxy::count`]: how many requests matched, faulted ones included, so a test can show
//!   that a retry happened without reading logs.
//!
//! Every request and answer is buffered whole; the product never streams (no watches), and a
//! whole answer is what makes a held answer a finished upstream read.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::pki::ServingCert;

/// The upstream's wire protocol: decides what an injected error looks like, so that clients
/// parse and classify it exactly as they would the real service's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// AWS query protocol (IAM, STS): an `ErrorResponse` XML document.
    AwsQuery,
    /// AWS REST-JSON (EKS): the `x-amzn-ErrorType` header and a JSON body with `message`.
    RestJson,
    /// The Kubernetes API: a `Status` object.
    Kubernetes,
}

/// What an injected request gets instead of the upstream's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After` (seconds): IAM `Throttling`, EKS `ThrottlingException`,
    /// Kubernetes `TooManyRequests`.
    Throttle { retry_after_secs: u32 },
    /// 500: IAM `ServiceFailure`, EKS `ServerException`, Kubernetes `InternalError`.
    ServerError,
    /// 503: IAM `ServiceUnavailable`, EKS `ServiceUnavailableException`, Kubernetes
    /// `ServiceUnavailable`.
    Unavailable,
    /// The connection is reset (TCP RST: `SO_LINGER` 0, then closed) once the request is read.
    Reset,
    /// The request is read and never answered; the connection stays open until the client
    /// gives up or the proxy is dropped. What a hung or firewalled endpoint looks like.
    BlackHole,
}

impl Fault {
    /// A short name for [`Seen::outcome`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Throttle { .. } => "throttle",
            Self::ServerError => "server-error",
            Self::Unavailable => "unavailable",
            Self::Reset => "reset",
            Self::BlackHole => "black-hole",
        }
    }
}

/// How many matching requests an injection applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    /// The next `n` matching requests.
    Next(u32),
    /// Every matching request until [`FaultProxy::clear`].
    Always,
}

impl From<u32> for Times {
    fn from(n: u32) -> Self {
        Self::Next(n)
    }
}

/// Which requests a hold, an injection or a counter applies to. Every given condition must
/// hold; [`Matcher::any`] matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matcher {
    method: Option<String>,
    path_prefix: Option<String>,
    path_contains: Option<String>,
    /// Query or form parameters (IAM's `Action`, `UserName`, ...), all required.
    params: Vec<(String, String)>,
}

impl Matcher {
    pub fn any() -> Self {
        Self::default()
    }

    /// An IAM (AWS query protocol) action: the `Action` form field or query parameter.
    pub fn iam(action: &str) -> Self {
        Self::any().param("Action", action)
    }

    /// A method (`GET`, `PUT`, ...) and a path prefix, e.g. `("GET", "/clusters/prod")`.
    pub fn request(method: &str, path_prefix: &str) -> Self {
        Self {
            method: Some(method.to_ascii_uppercase()),
            path_prefix: Some(path_prefix.to_owned()),
            ..Self::default()
        }
    }

    /// Any method, paths that start with `prefix`.
    pub fn path(prefix: &str) -> Self {
        Self {
            path_prefix: Some(prefix.to_owned()),
            ..Self::default()
        }
    }

    /// Also require the path to contain `part` (e.g. `"/configmaps/aws-auth"`).
    pub fn path_contains(mut self, part: &str) -> Self {
        self.path_contains = Some(part.to_owned());
        self
    }

    /// Also require the method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Also require a query or form parameter, e.g. `("UserName", "alice")`.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }

    fn matches(&self, seen: &Seen) -> bool {
        self.method.as_ref().is_none_or(|m| *m == seen.method)
            && self
                .path_prefix
                .as_ref()
                .is_none_or(|p| seen.path.starts_with(p.as_str()))
            && self
                .path_contains
                .as_ref()
                .is_none_or(|p| seen.path.contains(p.as_str()))
            && self
                .params
                .iter()
                .all(|(k, v)| seen.params.iter().any(|(pk, pv)| pk == k && pv == v))
    }
}

/// One request the proxy received, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Query and form parameters, decoded.
    pub params: Vec<(String, String)>,
    /// `forwarded`, `held`, or the [`Fault::name`] it got.
    pub outcome: &'static str,
}

impl Seen {
    /// The IAM action, if the request is an AWS query-protocol call.
    pub fn action(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.as_str())
    }
}

/// A held answer; see [`FaultProxy::hold`]. Dropping it releases the answer, so a failing test
/// never leaves a client hanging.
pub struct Hold {
    state: Arc<HoldState>,
}

struct HoldState {
    matcher: Matcher,
    claimed: AtomicBool,
    reached: watch::Sender<bool>,
    released: watch::Sender<bool>,
}

impl Hold {
    /// Resolves once a matching request has been answered by the upstream and that answer is
    /// being held.
    pub async fn reached(&self) {
        let mut reached = self.state.reached.subscribe();
        // Fails only if the sender is gone, which `self` prevents.
        let _ = reached.wait_for(|r| *r).await;
    }

    /// Whether the answer is being held (or was, and has been released).
    pub fn is_reached(&self) -> bool {
        *self.state.reached.borrow()
    }

    /// Sends the held answer (or lets the first matching request through, if none came yet).
    pub fn release(&self) {
        self.state.released.send_replace(true);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

struct Injection {
    matcher: Matcher,
    fault: Fault,
    remaining: Option<u32>,
}

#[derive(Default)]
struct Rules {
    holds: Vec<Arc<HoldState>>,
    injections: Vec<Injection>,
    seen: Vec<Seen>,
}

/// Where answers come from.
enum Upstream {
    Http {
        addr: String,
    },
    Tls {
        addr: String,
        connector: tokio_rustls::TlsConnector,
    },
}

struct Shared {
    protocol: Protocol,
    upstream: Upstream,
    rules: Mutex<Rules>,
    request_seq: AtomicU64,
}

/// A running proxy; dropping it closes the port and every connection (black-holed and held
/// ones too) and runs its restore hook (e.g. DescribeCluster's endpoint goes back).
pub struct FaultProxy {
    shared: Arc<Shared>,
    endpoint: String,
    accept: tokio::task::JoinHandle<()>,
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl FaultProxy {
    /// A plain-HTTP proxy in front of `upstream` (`http://127.0.0.1:PORT`: moto, the EKS
    /// emulator), on the current tokio runtime.
    pub async fn http(protocol: Protocol, upstream: &str) -> anyhow::Result<Self> {
        let addr = authority(upstream, "http://")?;
        Self::start(protocol, Upstream::Http { addr }, None).await
    }

    /// A TLS proxy in front of a kube-apiserver at `upstream` (`https://127.0.0.1:PORT`): it
    /// presents `serving` (signed by the cluster's CA, so clients trusting that CA accept it)
    /// and forwards over TLS, trusting `ca_pem`.
    pub async fn tls(upstream: &str, ca_pem: &str, serving: &ServingCert) -> anyhow::Result<Self> {
        let addr = authority(upstream, "https://")?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let certs = CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        // The proxy speaks HTTP/1.1 only; saying so keeps clients off HTTP/2.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let upstream = Upstream::Tls {
            addr,
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        Self::start(Protocol::Kubernetes, upstream, Some(acceptor)).await
    }

    async fn start(
        protocol: Protocol,
        upstream: Upstream,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared {
            protocol,
            upstream,
            rules: Mutex::default(),
            request_seq: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone(), tls));
        Ok(Self {
            shared,
            endpoint: format!("{scheme}://{local}"),
            accept,
            on_drop: None,
        })
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs `hook` when the proxy is dropped (after it stopped serving).
    pub fn on_drop(mut self, hook: impl FnOnce() + Send + Sync + 'static) -> Self {
        self.on_drop = Some(Box::new(hook));
        self
    }

    /// Holds the answer to the first request matching `matcher` (from now on) until
    /// [`Hold::release`]; later matching requests pass. Holds are tried in the order made, so
    /// two holds on the same matcher catch the first two such requests.
    pub fn hold(&self, matcher: Matcher) -> Hold {
        let state = Arc::new(HoldState {
            matcher,
            claimed: AtomicBool::new(false),
            reached: watch::Sender::new(false),
            released: watch::Sender::new(false),
        });
        self.rules().holds.push(state.clone());
        Hold { state }
    }

    /// Gives the next matching requests `fault` instead of the upstream's answer. Injections
    /// are tried in the order made, before holds.
    pub fn inject(&self, matcher: Matcher, fault: Fault, times: impl Into<Times>) {
        let remaining = match times.into() {
            Times::Next(n) => Some(n),
            Times::Always => None,
        };
        self.rules().injections.push(Injection {
            matcher,
            fault,
            remaining,
        });
    }

    /// How many requests matching `matcher` arrived since the start or the last
    /// [`clear`](Self::clear), faulted and held ones included.
    pub fn count(&self, matcher: &Matcher) -> usize {
        self.rules()
            .seen
            .iter()
            .filter(|s| matcher.matches(s))
            .count()
    }

    /// How many requests matching `matcher` got an injected fault.
    pub fn faulted(&self, matcher: &Matcher) -> usize {
        self.rules()
            .seen
            .iter()
            .filter(|s| matcher.matches(s) && s.outcome != "forwarded" && s.outcome != "held")
            .count()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.rules().seen.clone()
    }

    /// Drops every injection and the request log, and releases and forgets every hold.
    pub fn clear(&self) {
        let mut rules = self.rules();
        for hold in rules.holds.drain(..) {
            hold.released.send_replace(true);
        }
        rules.injections.clear();
        rules.seen.clear();
    }

    fn rules(&self) -> MutexGuard<'_, Rules> {
        self.shared.rules()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        if let Some(hook) = self.on_drop.take() {
            hook();
        }
    }
}

impl Shared {
    fn rules(&self) -> MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs the request and decides its fate: a fault, a hold to honour, or plain forwarding.
    fn decide(&self, mut seen: Seen) -> Decision {
        let mut rules = self.rules();
        let fault = rules.injections.iter_mut().find_map(|injection| {
            let applies =
                injection.matcher.matches(&seen) && injection.remaining.is_none_or(|n| n > 0);
            applies.then(|| {
                if let Some(n) = injection.remaining.as_mut() {
                    *n -= 1;
                }
                injection.fault
            })
        });
        let decision = match fault {
            Some(fault) => {
                seen.outcome = fault.name();
                Decision::Fault(fault)
            }
            None => match rules.holds.iter().find(|hold| {
                hold.matcher.matches(&seen) && !hold.claimed.swap(true, Ordering::SeqCst)
            }) {
                Some(hold) => {
                    seen.outcome = "held";
                    Decision::Hold(hold.clone())
                }
                None => Decision::Forward,
            },
        };
        rules.seen.push(seen);
        decision
    }

    async fn handle(&self, request: Request<Incoming>, reset: &Notify) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable request body"),
        };
        let seen = Seen {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            params: params(parts.uri.query(), &parts.headers, &body),
            outcome: "forwarded",
        };
        let hold = match self.decide(seen) {
            Decision::Fault(Fault::Reset) => {
                reset.notify_one();
                return std::future::pending().await;
            }
            Decision::Fault(Fault::BlackHole) => return std::future::pending().await,
            Decision::Fault(fault) => return self.fault_response(fault),
            Decision::Hold(hold) => Some(hold),
            Decision::Forward => None,
        };
        let answer = match self
            .forward(Request::from_parts(parts, Full::new(body)))
            .await
        {
            Ok(answer) => answer,
            Err(e) => plain(StatusCode::BAD_GATEWAY, &format!("proxy upstream: {e:#}")),
        };
        if let Some(hold) = hold {
            hold.reached.send_replace(true);
            let mut released = hold.released.subscribe();
            let _ = released.wait_for(|r| *r).await;
        }
        answer
    }

    /// One fresh upstream connection per request: no pool whose state could reorder requests.
    async fn forward(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> anyhow::Result<Response<Full<Bytes>>> {
        strip_hop_by_hop(request.headers_mut());
        let response = match &self.upstream {
            Upstream::Http { addr } => send(TcpStream::connect(addr).await?, request).await?,
            Upstream::Tls { addr, connector } => {
                let tcp = TcpStream::connect(addr).await?;
                let name = ServerName::IpAddress(tcp.peer_addr()?.ip().into());
                send(connector.connect(name, tcp).await?, request).await?
            }
        };
        let (mut parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, Full::new(body)))
    }

    fn fault_response(&self, fault: Fault) -> Response<Full<Bytes>> {
        let request_id = format!(
            "00000000-0000-4000-9000-{:012x}",
            self.request_seq.fetch_add(1, Ordering::Relaxed)
        );
        error_response(self.protocol, fault, &request_id)
    }
}

enum Decision {
    Forward,
    Hold(Arc<HoldState>),
    Fault(Fault),
}

async fn send<S>(io: S, request: Request<Full<Bytes>>) -> anyhow::Result<Response<Incoming>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(connection);
    Ok(sender.send_request(request).await?)
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    // Owned here, so aborting this task (dropping the proxy) drops every connection.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(serve_connection(stream, shared.clone(), tls.clone()));
    }
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let fd = stream.as_raw_fd();
    match tls {
        None => serve_io(stream, fd, shared).await,
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(stream).await {
                serve_io(stream, fd, shared).await;
            }
        }
    }
}

/// Serves HTTP/1.1 on one connection until it ends or a request asks for a reset; `fd` is the
/// TCP socket under `io`, still open while `io` is.
async fn serve_io<S>(io: S, fd: RawFd, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let reset = Arc::new(Notify::new());
    let service = {
        let reset = reset.clone();
        hyper::service::service_fn(move |request| {
            let shared = shared.clone();
            let reset = reset.clone();
            async move { Ok::<_, Infallible>(shared.handle(request, &reset).await) }
        })
    };
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = connection => {}
        _ = reset.notified() => {
            // SO_LINGER 0: closing the socket (dropping `connection`) sends RST, not FIN.
            set_linger_zero(fd);
        }
    }
}

fn set_linger_zero(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is the open socket of a connection this task still owns, and `linger` is a
    // valid `struct linger` of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Query parameters, plus form fields when the body is a form (AWS query protocol).
fn params(query: Option<&str>, headers: &hyper::HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(url::form_urlencoded::parse(body).into_owned());
    }
    params
}

fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    for name in [CONNECTION, TRANSFER_ENCODING, CONTENT_LENGTH] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}

/// The error each service sends for `fault`, as its clients expect to parse it. Sources: the
/// AWS query protocol error shape (`ErrorResponse/Error/{Type,Code,Message}`, IAM's
/// `Throttling`, `ServiceFailure`, `ServiceUnavailable`); REST-JSON errors carry the code in
/// `x-amzn-ErrorType` (EKS: `ThrottlingException`, `ServerException`,
/// `ServiceUnavailableException`); Kubernetes answers a `Status` with `reason` and, for 429,
/// `details.retryAfterSeconds`.
fn error_response(protocol: Protocol, fault: Fault, request_id: &str) -> Response<Full<Bytes>> {
    let (status, retry_after) = match fault {
        Fault::Throttle { retry_after_secs } => {
            (StatusCode::TOO_MANY_REQUESTS, Some(retry_after_secs))
        }
        Fault::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, None),
        _ => (StatusCode::SERVICE_UNAVAILABLE, None),
    };
    let message = match status {
        StatusCode::TOO_MANY_REQUESTS => "Rate exceeded",
        StatusCode::INTERNAL_SERVER_ERROR => {
            "An internal error occurred (injected by the test bed proxy)"
        }
        _ => "Service unavailable (injected by the test bed proxy)",
    };
    let (content_type, body, error_type) = match protocol {
        Protocol::AwsQuery => {
            let (kind, code) = match status {
                StatusCode::TOO_MANY_REQUESTS => ("Sender", "Throttling"),
                StatusCode::INTERNAL_SERVER_ERROR => ("Receiver", "ServiceFailure"),
                _ => ("Receiver", "ServiceUnavailable"),
            };
            let body = format!(
                "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            );
            ("text/xml", body, None)
        }
        Protocol::RestJson => {
            let code = match status {
                StatusCode::TOO_MANY_REQUESTS => "ThrottlingException",
                StatusCode::INTERNAL_SERVER_ERROR => "ServerException",
                _ => "ServiceUnavailableException",
            };
            let body = serde_json::json!({"message": message}).to_string();
            ("application/json", body, Some(code))
        }
        Protocol::Kubernetes => {
            let reason = match status {
                StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
                StatusCode::INTERNAL_SERVER_ERROR => "InternalError",
                _ => "ServiceUnavailable",
            };
            let mut status_object = serde_json::json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": status.as_u16(),
            });
            if let Some(seconds) = retry_after {
                status_object["details"] = serde_json::json!({"retryAfterSeconds": seconds});
            }
            ("application/json", status_object.to_string(), None)
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(code) = error_type {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(seconds) = retry_after {
        headers.insert("retry-after", HeaderValue::from(seconds));
    }
    response
}

/// `HOST:PORT` of `url`, which must use `scheme`.
fn authority(url: &str, scheme: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix(scheme)
        .ok_or_else(|| anyhow::anyhow!("{url} does not start with {scheme}"))?;
    Ok(rest.trim_end_matches('/').to_owned())
}
