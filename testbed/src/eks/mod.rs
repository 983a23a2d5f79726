//! A local emulator of the Amazon EKS control-plane API.
//!
//! The product talks to EKS through the unmodified `aws-sdk-eks` client. To test it end to
//! end without an AWS account, the test bed serves the EKS REST-JSON wire protocol itself:
//! point the SDK at it with `AWS_ENDPOINT_URL_EKS=http://127.0.0.1:PORT` (or `endpoint_url`
//! on the SDK config) and it answers like the real service, including its error shapes
//! (`x-amzn-ErrorType` header plus a JSON body) and opaque pagination tokens. moto's EKS
//! cannot stand in: the clusters it describes have endpoints and CA data nothing listens on,
//! while here every cluster is registered with the endpoint and CA of a real kube-apiserver.
//!
//! Clusters are keyed by (account, region, name). A request's region comes from the SigV4
//! credential scope in its `Authorization` header and its account from the access key id
//! (see [`EksEmulator::map_access_key`]), falling back to the emulator's default account.
//! Signatures are not verified.
//!
//! Tests and benchmarks observe the server through per-operation call counters
//! ([`EksEmulator::calls`]) and can make the next calls of an operation fail
//! ([`EksEmulator::fail_next`]).
//!
//! Layout: this file holds the public handle and the HTTP plumbing shared by all operations
//! (counting, failure injection, caller resolution, logging); `ops` holds one function per
//! operation over the locked state; `error` the wire errors; `caller` the SigV4 parsing.

mod caller;
mod error;
mod ops;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use caller::Caller;
pub use error::InjectedError;
use error::{error_response, ApiError};

/// How a cluster authenticates IAM principals: EKS `accessConfig.authenticationMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AuthenticationMode {
    /// Only the `aws-auth` ConfigMap (`CONFIG_MAP`).
    #[default]
    ConfigMap,
    /// Access entries and the `aws-auth` ConfigMap (`API_AND_CONFIG_MAP`).
    ApiAndConfigMap,
    /// Only access entries (`API`).
    Api,
}

impl AuthenticationMode {
    /// The value EKS puts on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigMap => "CONFIG_MAP",
            Self::ApiAndConfigMap => "API_AND_CONFIG_MAP",
            Self::Api => "API",
        }
    }
}

/// A cluster to register with the emulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EksClusterSpec {
    pub name: String,
    pub region: String,
    pub account: String,
    /// The API server URL DescribeCluster reports, e.g. `https://127.0.0.1:6443`.
    pub endpoint: String,
    /// The cluster CA certificate as PEM; DescribeCluster reports it base64-encoded.
    pub ca_pem: String,
    pub authentication_mode: AuthenticationMode,
    pub tags: BTreeMap<String, String>,
}

impl EksClusterSpec {
    /// A spec in `CONFIG_MAP` mode without tags.
    pub fn new(name: &str, region: &str, account: &str, endpoint: &str, ca_pem: &str) -> Self {
        Self {
            name: name.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            endpoint: endpoint.to_owned(),
            ca_pem: ca_pem.to_owned(),
            authentication_mode: AuthenticationMode::default(),
            tags: BTreeMap::new(),
        }
    }

    /// The cluster ARN, `arn:aws:eks:REGION:ACCOUNT:cluster/NAME`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:eks:{}:{}:cluster/{}",
            self.region, self.account, self.name
        )
    }
}

/// The emulator: a cheap, cloneable handle on shared state.
#[derive(Clone)]
pub struct EksEmulator {
    shared: Arc<Shared>,
}

struct Shared {
    default_account: String,
    /// Access key id -> account; apart from the cluster state so that resolving a caller
    /// never contends with the state lock.
    access_keys: Mutex<HashMap<String, String>>,
    state: RwLock<EmulatorState>,
    calls: Mutex<HashMap<String, u64>>,
    failures: Mutex<HashMap<String, VecDeque<InjectedError>>>,
    request_seq: AtomicU64,
}

/// Everything the operations read and (later) write.
#[derive(Default)]
struct EmulatorState {
    /// Clusters per (account, region), in name order so listing is stable.
    clusters: BTreeMap<Scope, BTreeMap<String, ClusterRecord>>,
}

impl EmulatorState {
    fn clusters_in(&self, scope: &Scope) -> Option<&BTreeMap<String, ClusterRecord>> {
        self.clusters.get(scope)
    }
}

/// The (account, region) a cluster lives in and a request is addressed to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Scope {
    account: String,
    region: String,
}

/// A registered cluster plus what the service adds at creation.
#[derive(Clone, Debug)]
struct ClusterRecord {
    spec: EksClusterSpec,
    /// Seconds since the Unix epoch, as EKS reports `createdAt`.
    created_at: f64,
}

/// The operations the emulator serves; the names are the EKS API operation names used by
/// [`EksEmulator::calls`] and [`EksEmulator::fail_next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    ListClusters,
    DescribeCluster,
    ListTagsForResource,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::ListClusters => "ListClusters",
            Self::DescribeCluster => "DescribeCluster",
            Self::ListTagsForResource => "ListTagsForResource",
        }
    }
}

/// The counter key for requests no operation matched.
const UNKNOWN_OPERATION: &str = "UnknownOperation";

impl EksEmulator {
    /// An emulator without clusters; callers whose access key is not mapped belong to
    /// `default_account`.
    pub fn new(default_account: &str) -> Self {
        Self {
            shared: Arc::new(Shared {
                default_account: default_account.to_owned(),
                access_keys: Mutex::default(),
                state: RwLock::default(),
                calls: Mutex::default(),
                failures: Mutex::default(),
                request_seq: AtomicU64::new(0),
            }),
        }
    }

    /// Registers (or replaces) a cluster; it is `ACTIVE` at once.
    pub fn add_cluster(&self, spec: EksClusterSpec) {
        let scope = Scope {
            account: spec.account.clone(),
            region: spec.region.clone(),
        };
        let record = ClusterRecord {
            created_at: epoch_seconds_now(),
            spec,
        };
        let mut state = self
            .shared
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        state
            .clusters
            .entry(scope)
            .or_default()
            .insert(record.spec.name.clone(), record);
    }

    /// Deregisters a cluster; false if there was none.
    pub fn remove_cluster(&self, account: &str, region: &str, name: &str) -> bool {
        let scope = Scope {
            account: account.to_owned(),
            region: region.to_owned(),
        };
        let mut state = self
            .shared
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        state
            .clusters
            .get_mut(&scope)
            .is_some_and(|clusters| clusters.remove(name).is_some())
    }

    /// Makes requests signed with access key id `akid` act in `account`.
    pub fn map_access_key(&self, akid: &str, account: &str) {
        self.shared
            .caller_accounts()
            .insert(akid.to_owned(), account.to_owned());
    }

    /// How many requests for operation `op` (e.g. `"DescribeCluster"`) arrived since the
    /// last [`reset_calls`](Self::reset_calls), failed ones included. Requests no operation
    /// matched count as `"UnknownOperation"`.
    pub fn calls(&self, op: &str) -> u64 {
        lock(&self.shared.calls).get(op).copied().unwrap_or(0)
    }

    /// Zeroes all call counters.
    pub fn reset_calls(&self) {
        lock(&self.shared.calls).clear();
    }

    /// Makes the next `n` requests for operation `op` fail with `error` (queued after
    /// failures already pending for `op`).
    pub fn fail_next(&self, op: &str, n: u32, error: InjectedError) {
        lock(&self.shared.failures)
            .entry(op.to_owned())
            .or_default()
            .extend((0..n).map(|_| error));
    }

    /// The HTTP routes of the EKS API; anything else is answered `UnknownOperationException`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/clusters", get(list_clusters))
            .route("/clusters/{name}", get(describe_cluster))
            .route("/tags/{*arn}", get(list_tags_for_resource))
            .fallback(unknown_operation)
            .method_not_allowed_fallback(unknown_operation)
            .with_state(self.clone())
    }

    /// Serves the API on `listener` until the task is dropped or the listener fails.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Runs one request of `op` against `target` (a cluster name or ARN, for the log):
    /// counts it, resolves the caller, applies injected failures, runs `body` on the
    /// read-locked state and logs the outcome. Mutating operations will get a write-locked
    /// twin of this.
    fn dispatch<F>(&self, op: Op, headers: &HeaderMap, target: &str, body: F) -> Response
    where
        F: FnOnce(&EmulatorState, &Caller) -> Result<Value, ApiError>,
    {
        self.count(op.name());
        let caller = Caller::from_headers(headers, |akid| self.account_of(akid));
        let (region, account) = caller.as_ref().map_or_else(
            |_| ("-".to_owned(), "-".to_owned()),
            |caller| (caller.region.clone(), caller.account.clone()),
        );
        let result = caller.and_then(|caller| {
            self.take_injected_failure(op)?;
            body(&self.shared.read_state(), &caller)
        });
        let request_id = self.next_request_id();
        let (status, error, response) = match result {
            Ok(value) => (StatusCode::OK, "-", ok_response(value, &request_id)),
            Err(err) => (err.status(), err.code(), error_response(&err, &request_id)),
        };
        tracing::info!(
            op = op.name(),
            cluster = target,
            region,
            account,
            status = status.as_u16(),
            error,
            request_id,
            "eks emulator request"
        );
        response
    }

    fn count(&self, op: &str) {
        *lock(&self.shared.calls).entry(op.to_owned()).or_default() += 1;
    }

    fn take_injected_failure(&self, op: Op) -> Result<(), ApiError> {
        let injected = lock(&self.shared.failures)
            .get_mut(op.name())
            .and_then(VecDeque::pop_front);
        injected.map_or(Ok(()), |error| Err(ApiError::Injected(error)))
    }

    fn account_of(&self, akid: &str) -> String {
        self.shared
            .caller_accounts()
            .get(akid)
            .cloned()
            .unwrap_or_else(|| self.shared.default_account.clone())
    }

    fn next_request_id(&self) -> String {
        let seq = self.shared.request_seq.fetch_add(1, Ordering::Relaxed);
        format!("00000000-0000-4000-8000-{seq:012x}")
    }
}

impl Shared {
    fn read_state(&self) -> RwLockReadGuard<'_, EmulatorState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn caller_accounts(&self) -> MutexGuard<'_, HashMap<String, String>> {
        lock(&self.access_keys)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn epoch_seconds_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

fn ok_response(body: Value, request_id: &str) -> Response {
    let mut response = (StatusCode::OK, Json(body)).into_response();
    error::set_request_id(&mut response, request_id);
    response
}

async fn list_clusters(
    State(emulator): State<EksEmulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    emulator.dispatch(Op::ListClusters, &headers, "-", |state, caller| {
        ops::list_clusters(state, caller, query.as_deref().unwrap_or(""))
    })
}

async fn describe_cluster(
    State(emulator): State<EksEmulator>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    emulator.dispatch(Op::DescribeCluster, &headers, &name, |state, caller| {
        ops::describe_cluster(state, caller, &name)
    })
}

async fn list_tags_for_resource(
    State(emulator): State<EksEmulator>,
    headers: HeaderMap,
    Path(arn): Path<String>,
) -> Response {
    emulator.dispatch(Op::ListTagsForResource, &headers, &arn, |state, caller| {
        ops::list_tags_for_resource(state, caller, &arn)
    })
}

async fn unknown_operation(
    State(emulator): State<EksEmulator>,
    method: Method,
    OriginalUri(uri): OriginalUri,
) -> Response {
    emulator.count(UNKNOWN_OPERATION);
    let err = ApiError::UnknownOperation {
        method: method.to_string(),
        path: uri.path().to_owned(),
    };
    tracing::warn!(%method, path = uri.path(), status = err.status().as_u16(), "eks emulator: unsupported operation");
    error_response(&err, &emulator.next_request_id())
}
