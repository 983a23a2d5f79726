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
//! credential scope in its `Authorization` header and its account from the access key id:
//! keys mapped with [`EksEmulator::map_access_key`], else whatever the
//! [`AccountResolver`] says (the test bed asks STS, i.e. moto, so the role sessions the
//! product assumes in another account act there), else the emulator's default account.
//! Signatures are not verified.
//!
//! Besides clusters it keeps each cluster's access entries (see `access_entries`), their
//! associated access policies (`access_policies`), its control-plane logging (`logging`,
//! changed by UpdateClusterConfig) and the tags of clusters and entries (see `tagging`), with EKS's rules, so the product's access-entry backend and
//! discovery meet the refusals they would meet on EKS.
//!
//! Tests and benchmarks observe the server through call counters per operation
//! ([`EksEmulator::calls`]) and per operation and cluster ([`EksEmulator::calls_for`]), and
//! can make the next calls of an operation fail, on every cluster
//! ([`EksEmulator::fail_next`]) or on one ([`EksEmulator::fail_next_for`]).
//!
//! Layout: this file holds the public handle and the HTTP plumbing shared by all operations
//! (counting, failure injection, caller resolution, locking, logging); `ops` holds the cluster
//! operations and the shared paging, `access_entries` and `tagging` theirs; `error` the wire
//! errors; `caller` the SigV4 parsing.

mod access_entries;
#[cfg(test)]
mod access_entry_tests;
mod access_policies;
#[cfg(test)]
mod audit_tests;
mod caller;
mod error;
mod logging;
mod ops;
mod tagging;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde_json::Value;

pub use access_entries::{
    AccessEntry, AccessEntryType, CreateAccessEntryRequest, UpdateAccessEntryRequest,
    DEFAULT_ACCESS_ENTRIES_LIMIT, RESERVED_PREFIXES,
};
pub use access_policies::AssociatedPolicy;
use caller::Caller;
use error::{error_response, ApiError};
pub use error::{EksError, InjectedError};
pub use logging::LOG_TYPES;

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

    /// The mode a wire value names.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::ConfigMap, Self::ApiAndConfigMap, Self::Api]
            .into_iter()
            .find(|mode| mode.as_str() == value)
    }
}

impl std::fmt::Display for AuthenticationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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

/// Says which account an access key id belongs to, for keys nobody mapped with
/// [`EksEmulator::map_access_key`]. Asynchronous because the answer may need a round trip to
/// STS (moto).
pub trait AccountResolver: Send + Sync + 'static {
    fn account_of<'a>(&'a self, access_key_id: &'a str) -> BoxFuture<'a, Option<String>>;
}

/// Says which unique id IAM has given the principal an access entry names (`AIDA...` for a
/// user, `AROA...` for a role), as EKS looks it up when the entry is created and stores it with
/// the entry. `None`: IAM has no principal of that ARN.
pub trait PrincipalDirectory: Send + Sync + 'static {
    fn principal_id<'a>(&'a self, principal_arn: &'a str) -> BoxFuture<'a, Option<String>>;
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
    resolver: RwLock<Option<Arc<dyn AccountResolver>>>,
    principals: RwLock<Option<Arc<dyn PrincipalDirectory>>>,
    state: RwLock<EmulatorState>,
    counters: Mutex<Counters>,
    failures: Mutex<HashMap<FailureKey, VecDeque<InjectedError>>>,
    request_seq: AtomicU64,
}

/// Requests per operation, and per operation and cluster.
#[derive(Default)]
struct Counters {
    by_op: HashMap<String, u64>,
    by_cluster: HashMap<(String, String), u64>,
}

/// Injected failures queue per operation, for every cluster (`None`) or for one.
type FailureKey = (String, Option<String>);

/// Everything the operations read and write.
struct EmulatorState {
    /// Clusters per (account, region), in name order so listing is stable.
    clusters: BTreeMap<Scope, BTreeMap<String, ClusterRecord>>,
    access_entries_limit: usize,
    /// Makes every access entry ARN unique, also for a recreated entry.
    entry_seq: u64,
}

impl Default for EmulatorState {
    fn default() -> Self {
        Self {
            clusters: BTreeMap::new(),
            access_entries_limit: DEFAULT_ACCESS_ENTRIES_LIMIT,
            entry_seq: 0,
        }
    }
}

impl EmulatorState {
    fn clusters_in(&self, scope: &Scope) -> Option<&BTreeMap<String, ClusterRecord>> {
        self.clusters.get(scope)
    }

    /// The cluster `name` of `scope`, or EKS's ResourceNotFoundException.
    fn cluster(&self, scope: &Scope, name: &str) -> Result<&ClusterRecord, ApiError> {
        self.clusters_in(scope)
            .and_then(|clusters| clusters.get(name))
            .ok_or_else(|| ApiError::ClusterNotFound(name.to_owned()))
    }

    fn cluster_mut(&mut self, scope: &Scope, name: &str) -> Result<&mut ClusterRecord, ApiError> {
        self.clusters
            .get_mut(scope)
            .and_then(|clusters| clusters.get_mut(name))
            .ok_or_else(|| ApiError::ClusterNotFound(name.to_owned()))
    }

    fn next_entry_seq(&mut self) -> u64 {
        self.entry_seq += 1;
        self.entry_seq
    }
}

/// The (account, region) a cluster lives in and a request is addressed to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Scope {
    account: String,
    region: String,
}

impl Scope {
    fn new(account: &str, region: &str) -> Self {
        Self {
            account: account.to_owned(),
            region: region.to_owned(),
        }
    }
}

/// A registered cluster plus what the service adds at creation.
#[derive(Clone, Debug)]
struct ClusterRecord {
    spec: EksClusterSpec,
    /// Seconds since the Unix epoch, as EKS reports `createdAt`.
    created_at: f64,
    /// Keyed by the principal ARN the entry was created with.
    access_entries: BTreeMap<String, AccessEntry>,
    /// The access policies of each entry (same key), by policy ARN.
    policies: BTreeMap<String, BTreeMap<String, AssociatedPolicy>>,
    /// The control-plane log types exported; none on a new cluster, as on EKS.
    logging: BTreeSet<String>,
}

/// The operations the emulator serves; the names are the EKS API operation names used by
/// [`EksEmulator::calls`] and [`EksEmulator::fail_next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    ListClusters,
    DescribeCluster,
    ListTagsForResource,
    TagResource,
    UntagResource,
    CreateAccessEntry,
    DescribeAccessEntry,
    UpdateAccessEntry,
    DeleteAccessEntry,
    ListAccessEntries,
    UpdateClusterConfig,
    AssociateAccessPolicy,
    ListAssociatedAccessPolicies,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::ListClusters => "ListClusters",
            Self::DescribeCluster => "DescribeCluster",
            Self::ListTagsForResource => "ListTagsForResource",
            Self::TagResource => "TagResource",
            Self::UntagResource => "UntagResource",
            Self::CreateAccessEntry => "CreateAccessEntry",
            Self::DescribeAccessEntry => "DescribeAccessEntry",
            Self::UpdateAccessEntry => "UpdateAccessEntry",
            Self::DeleteAccessEntry => "DeleteAccessEntry",
            Self::ListAccessEntries => "ListAccessEntries",
            Self::UpdateClusterConfig => "UpdateClusterConfig",
            Self::AssociateAccessPolicy => "AssociateAccessPolicy",
            Self::ListAssociatedAccessPolicies => "ListAssociatedAccessPolicies",
        }
    }
}

/// What a request addresses, for the log and for per-cluster counting and failures.
#[derive(Clone, Copy)]
enum Target<'a> {
    Account,
    Cluster(&'a str),
    /// A resource ARN (tagging operations); its cluster is parsed out of it.
    Resource(&'a str),
}

impl<'a> Target<'a> {
    fn cluster(self) -> Option<&'a str> {
        match self {
            Self::Account => None,
            Self::Cluster(name) => Some(name),
            Self::Resource(arn) => tagging::cluster_of_arn(arn),
        }
    }

    fn label(self) -> &'a str {
        match self {
            Self::Account => "-",
            Self::Cluster(label) | Self::Resource(label) => label,
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
                resolver: RwLock::default(),
                principals: RwLock::default(),
                state: RwLock::default(),
                counters: Mutex::default(),
                failures: Mutex::default(),
                request_seq: AtomicU64::new(0),
            }),
        }
    }

    /// Registers (or replaces, without its access entries) a cluster; it is `ACTIVE` at once.
    pub fn add_cluster(&self, spec: EksClusterSpec) {
        let scope = Scope::new(&spec.account, &spec.region);
        let record = ClusterRecord {
            created_at: epoch_seconds_now(),
            spec,
            access_entries: BTreeMap::new(),
            policies: BTreeMap::new(),
            logging: BTreeSet::new(),
        };
        self.write()
            .clusters
            .entry(scope)
            .or_default()
            .insert(record.spec.name.clone(), record);
    }

    /// Deregisters a cluster and its access entries; false if there was none.
    pub fn remove_cluster(&self, account: &str, region: &str, name: &str) -> bool {
        self.write()
            .clusters
            .get_mut(&Scope::new(account, region))
            .is_some_and(|clusters| clusters.remove(name).is_some())
    }

    /// The registered cluster, with the tags it has now.
    pub fn cluster(&self, account: &str, region: &str, name: &str) -> Option<EksClusterSpec> {
        let state = self.read();
        let record = state.cluster(&Scope::new(account, region), name).ok()?;
        Some(record.spec.clone())
    }

    /// Makes DescribeCluster report `endpoint` as the cluster's API server (a proxy in front of
    /// the real one, say); returns the endpoint it reported before, `None` if there is no such
    /// cluster.
    pub fn set_endpoint(
        &self,
        account: &str,
        region: &str,
        name: &str,
        endpoint: &str,
    ) -> Option<String> {
        let mut state = self.write();
        let record = state.cluster_mut(&Scope::new(account, region), name).ok()?;
        Some(std::mem::replace(
            &mut record.spec.endpoint,
            endpoint.to_owned(),
        ))
    }

    /// Switches a cluster's authentication mode, as UpdateClusterConfig does (EKS only allows
    /// `CONFIG_MAP` -> `API_AND_CONFIG_MAP` -> `API`; the emulator allows any change so tests
    /// can set up any state). Access entries are kept. False if there is no such cluster.
    pub fn set_authentication_mode(
        &self,
        account: &str,
        region: &str,
        name: &str,
        mode: AuthenticationMode,
    ) -> bool {
        let mut state = self.write();
        let record = state.cluster_mut(&Scope::new(account, region), name);
        record
            .map(|record| record.spec.authentication_mode = mode)
            .is_ok()
    }

    /// The access entry of the cluster for the IAM principal of `principal_arn`, matched by
    /// identity as EKS does (a role's path and the name's case do not matter), whatever the
    /// cluster's mode.
    pub fn access_entry_for(
        &self,
        account: &str,
        region: &str,
        cluster: &str,
        principal_arn: &str,
    ) -> Option<AccessEntry> {
        let state = self.read();
        let scope = Scope::new(account, region);
        access_entries::find(&state, &scope, cluster, principal_arn).cloned()
    }

    /// Every access entry of the cluster, in principal ARN order (empty for an unknown one).
    pub fn access_entries(&self, account: &str, region: &str, cluster: &str) -> Vec<AccessEntry> {
        let state = self.read();
        state
            .cluster(&Scope::new(account, region), cluster)
            .map(|record| record.access_entries.values().cloned().collect())
            .unwrap_or_default()
    }

    /// CreateAccessEntry without HTTP, with every check the API makes; not counted, and
    /// injected failures do not apply. For seeding and for "created by hand" entries. IAM is
    /// not asked for the principal's id, so the entry is bound by its ARN alone.
    pub fn create_access_entry(
        &self,
        account: &str,
        region: &str,
        cluster: &str,
        request: CreateAccessEntryRequest,
    ) -> Result<AccessEntry, EksError> {
        let scope = Scope::new(account, region);
        Ok(access_entries::create(
            &mut self.write(),
            &scope,
            cluster,
            request,
            None,
        )?)
    }

    /// Sets the control-plane log types the cluster exports (the others off), as
    /// UpdateClusterConfig would; false if there is no such cluster. Not counted.
    pub fn set_logging(&self, account: &str, region: &str, name: &str, enabled: &[&str]) -> bool {
        let mut state = self.write();
        let record = state.cluster_mut(&Scope::new(account, region), name);
        record
            .map(|record| record.logging = enabled.iter().map(|t| t.to_string()).collect())
            .is_ok()
    }

    /// The control-plane log types the cluster exports now.
    pub fn logging(&self, account: &str, region: &str, name: &str) -> Option<BTreeSet<String>> {
        let state = self.read();
        let record = state.cluster(&Scope::new(account, region), name).ok()?;
        Some(record.logging.clone())
    }

    /// The access policies associated with the cluster's entry for `principal_arn`, in policy
    /// ARN order.
    pub fn associated_policies(
        &self,
        account: &str,
        region: &str,
        cluster: &str,
        principal_arn: &str,
    ) -> Vec<AssociatedPolicy> {
        let state = self.read();
        let Ok(record) = state.cluster(&Scope::new(account, region), cluster) else {
            return Vec::new();
        };
        access_entries::entry_key(&record.access_entries, principal_arn)
            .and_then(|key| record.policies.get(&key))
            .map(|policies| policies.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The most access entries a cluster may hold (EKS's quota; 3,000 unless set).
    pub fn set_access_entries_limit(&self, limit: usize) {
        self.write().access_entries_limit = limit;
    }

    /// Makes requests signed with access key id `akid` act in `account`.
    pub fn map_access_key(&self, akid: &str, account: &str) {
        self.shared
            .caller_accounts()
            .insert(akid.to_owned(), account.to_owned());
    }

    /// Asks `principals` for the unique id of each principal an entry is created for over the
    /// API; without it entries are bound by ARN alone.
    pub fn set_principal_directory(&self, principals: Arc<dyn PrincipalDirectory>) {
        *self
            .shared
            .principals
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(principals);
    }

    /// The unique id IAM reports today for `principal_arn`, if a directory is set and knows it.
    async fn principal_id(&self, principal_arn: &str) -> Option<String> {
        let principals = self
            .shared
            .principals
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        principals.principal_id(principal_arn).await
    }

    /// Asks `resolver` for the account of access keys nobody mapped.
    pub fn set_account_resolver(&self, resolver: Arc<dyn AccountResolver>) {
        *self
            .shared
            .resolver
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(resolver);
    }

    /// How many requests for operation `op` (e.g. `"DescribeCluster"`) arrived since the
    /// last [`reset_calls`](Self::reset_calls), failed ones included. Requests no operation
    /// matched count as `"UnknownOperation"`.
    pub fn calls(&self, op: &str) -> u64 {
        lock(&self.shared.counters)
            .by_op
            .get(op)
            .copied()
            .unwrap_or(0)
    }

    /// How many requests for operation `op` addressed cluster `cluster` (by name, or by an
    /// ARN of the cluster or of one of its access entries).
    pub fn calls_for(&self, op: &str, cluster: &str) -> u64 {
        lock(&self.shared.counters)
            .by_cluster
            .get(&(op.to_owned(), cluster.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Zeroes all call counters.
    pub fn reset_calls(&self) {
        *lock(&self.shared.counters) = Counters::default();
    }

    /// Makes the next `n` requests for operation `op` fail with `error`, whatever cluster they
    /// address (queued after failures already pending for `op`).
    pub fn fail_next(&self, op: &str, n: u32, error: InjectedError) {
        self.queue_failures((op.to_owned(), None), n, error);
    }

    /// Makes the next `n` requests for operation `op` on cluster `cluster` fail with `error`:
    /// one throttled or failing cluster among healthy ones. These are used before the
    /// failures [`fail_next`](Self::fail_next) queued for every cluster.
    pub fn fail_next_for(&self, op: &str, cluster: &str, n: u32, error: InjectedError) {
        self.queue_failures((op.to_owned(), Some(cluster.to_owned())), n, error);
    }

    /// The HTTP routes of the EKS API; anything else is answered `UnknownOperationException`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/clusters", get(list_clusters))
            .route("/clusters/{name}", get(describe_cluster))
            .route(
                "/clusters/{name}/access-entries",
                get(list_access_entries).post(create_access_entry),
            )
            .route(
                "/clusters/{name}/access-entries/{principal}",
                get(describe_access_entry)
                    .post(update_access_entry)
                    .delete(delete_access_entry),
            )
            .route(
                "/clusters/{name}/update-config",
                post(update_cluster_config),
            )
            .route(
                "/clusters/{name}/access-entries/{principal}/access-policies",
                get(list_associated_access_policies).post(associate_access_policy),
            )
            .route(
                "/tags/{*arn}",
                get(list_tags_for_resource)
                    .post(tag_resource)
                    .delete(untag_resource),
            )
            .fallback(unknown_operation)
            .method_not_allowed_fallback(unknown_operation)
            .with_state(self.clone())
    }

    /// Serves the API on `listener` until the task is dropped or the listener fails.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Runs one request of `op` against `target`: counts it, resolves the caller, applies
    /// injected failures, runs `body` with the caller's (account, region) and logs the
    /// outcome. `body` takes the lock it needs itself (see [`read`](Self::read) and
    /// [`write`](Self::write)), after the caller is resolved, so no lock is held across an
    /// await.
    async fn dispatch<F>(
        &self,
        op: Op,
        headers: &HeaderMap,
        target: Target<'_>,
        body: F,
    ) -> Response
    where
        F: FnOnce(&Scope) -> Result<Value, ApiError>,
    {
        self.count(op.name(), target.cluster());
        let caller = self.resolve_caller(headers).await;
        let (region, account) = caller.as_ref().map_or_else(
            |_| ("-".to_owned(), "-".to_owned()),
            |caller| (caller.region.clone(), caller.account.clone()),
        );
        let result = caller.and_then(|caller| {
            self.take_injected_failure(op, target.cluster())?;
            body(&caller.scope())
        });
        let request_id = self.next_request_id();
        let (status, error, response) = match result {
            Ok(value) => (StatusCode::OK, "-", ok_response(value, &request_id)),
            Err(err) => (err.status(), err.code(), error_response(&err, &request_id)),
        };
        tracing::info!(
            op = op.name(),
            cluster = target.label(),
            region,
            account,
            status = status.as_u16(),
            error,
            request_id,
            "eks emulator request"
        );
        response
    }

    /// The caller's region from the credential scope and account from its access key.
    async fn resolve_caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let (access_key_id, region) = caller::credential_scope_of(headers)?;
        let account = self.account_of(&access_key_id).await;
        Ok(Caller { account, region })
    }

    async fn account_of(&self, akid: &str) -> String {
        if let Some(account) = self.shared.caller_accounts().get(akid).cloned() {
            return account;
        }
        let resolver = self
            .shared
            .resolver
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(resolver) = resolver {
            if let Some(account) = resolver.account_of(akid).await {
                return account;
            }
        }
        self.shared.default_account.clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, EmulatorState> {
        self.shared
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, EmulatorState> {
        self.shared
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, op: &str, cluster: Option<&str>) {
        let mut counters = lock(&self.shared.counters);
        *counters.by_op.entry(op.to_owned()).or_default() += 1;
        if let Some(cluster) = cluster {
            *counters
                .by_cluster
                .entry((op.to_owned(), cluster.to_owned()))
                .or_default() += 1;
        }
    }

    fn queue_failures(&self, key: FailureKey, n: u32, error: InjectedError) {
        lock(&self.shared.failures)
            .entry(key)
            .or_default()
            .extend((0..n).map(|_| error));
    }

    /// The next failure queued for `op` on `cluster`, else for `op` on every cluster.
    fn take_injected_failure(&self, op: Op, cluster: Option<&str>) -> Result<(), ApiError> {
        let mut failures = lock(&self.shared.failures);
        let mut pop = |cluster: Option<&str>| {
            failures
                .get_mut(&(op.name().to_owned(), cluster.map(str::to_owned)))
                .and_then(VecDeque::pop_front)
        };
        let injected = cluster
            .and_then(|name| pop(Some(name)))
            .or_else(|| pop(None));
        injected.map_or(Ok(()), |error| Err(ApiError::Injected(error)))
    }

    fn next_request_id(&self) -> String {
        let seq = self.shared.request_seq.fetch_add(1, Ordering::Relaxed);
        format!("00000000-0000-4000-8000-{seq:012x}")
    }
}

impl Shared {
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

type Emulator = State<EksEmulator>;

async fn list_clusters(
    State(eks): Emulator,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    eks.dispatch(Op::ListClusters, &headers, Target::Account, |scope| {
        ops::list_clusters(&eks.read(), scope, &query)
    })
    .await
}

async fn describe_cluster(
    State(eks): Emulator,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    eks.dispatch(
        Op::DescribeCluster,
        &headers,
        Target::Cluster(&name),
        |scope| ops::describe_cluster(&eks.read(), scope, &name),
    )
    .await
}

async fn list_access_entries(
    State(eks): Emulator,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    eks.dispatch(
        Op::ListAccessEntries,
        &headers,
        Target::Cluster(&name),
        |scope| access_entries::list_op(&eks.read(), scope, &name, &query),
    )
    .await
}

async fn create_access_entry(
    State(eks): Emulator,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    // EKS resolves the principal to its unique id as it creates the entry; asked before the
    // state is locked, since the answer comes from IAM.
    let principal_id = match access_entries::principal_arn_of(&body) {
        Some(arn) => eks.principal_id(&arn).await,
        None => None,
    };
    eks.dispatch(
        Op::CreateAccessEntry,
        &headers,
        Target::Cluster(&name),
        |scope| access_entries::create_op(&mut eks.write(), scope, &name, &body, principal_id),
    )
    .await
}

async fn describe_access_entry(
    State(eks): Emulator,
    headers: HeaderMap,
    Path((name, principal)): Path<(String, String)>,
) -> Response {
    eks.dispatch(
        Op::DescribeAccessEntry,
        &headers,
        Target::Cluster(&name),
        |scope| access_entries::describe_op(&eks.read(), scope, &name, &principal),
    )
    .await
}

async fn update_access_entry(
    State(eks): Emulator,
    headers: HeaderMap,
    Path((name, principal)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    eks.dispatch(
        Op::UpdateAccessEntry,
        &headers,
        Target::Cluster(&name),
        |scope| access_entries::update_op(&mut eks.write(), scope, &name, &principal, &body),
    )
    .await
}

async fn delete_access_entry(
    State(eks): Emulator,
    headers: HeaderMap,
    Path((name, principal)): Path<(String, String)>,
) -> Response {
    eks.dispatch(
        Op::DeleteAccessEntry,
        &headers,
        Target::Cluster(&name),
        |scope| access_entries::delete_op(&mut eks.write(), scope, &name, &principal),
    )
    .await
}

async fn update_cluster_config(
    State(eks): Emulator,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    eks.dispatch(
        Op::UpdateClusterConfig,
        &headers,
        Target::Cluster(&name),
        |scope| logging::update_config_op(&mut eks.write(), scope, &name, &body),
    )
    .await
}

async fn associate_access_policy(
    State(eks): Emulator,
    headers: HeaderMap,
    Path((name, principal)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    eks.dispatch(
        Op::AssociateAccessPolicy,
        &headers,
        Target::Cluster(&name),
        |scope| access_policies::associate_op(&mut eks.write(), scope, &name, &principal, &body),
    )
    .await
}

async fn list_associated_access_policies(
    State(eks): Emulator,
    headers: HeaderMap,
    Path((name, principal)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    eks.dispatch(
        Op::ListAssociatedAccessPolicies,
        &headers,
        Target::Cluster(&name),
        |scope| access_policies::list_op(&eks.read(), scope, &name, &principal, &query),
    )
    .await
}

async fn list_tags_for_resource(
    State(eks): Emulator,
    headers: HeaderMap,
    Path(arn): Path<String>,
) -> Response {
    eks.dispatch(
        Op::ListTagsForResource,
        &headers,
        Target::Resource(&arn),
        |scope| tagging::list_tags_for_resource(&eks.read(), scope, &arn),
    )
    .await
}

async fn tag_resource(
    State(eks): Emulator,
    headers: HeaderMap,
    Path(arn): Path<String>,
    body: Bytes,
) -> Response {
    eks.dispatch(Op::TagResource, &headers, Target::Resource(&arn), |scope| {
        tagging::tag_resource(&mut eks.write(), scope, &arn, &body)
    })
    .await
}

async fn untag_resource(
    State(eks): Emulator,
    headers: HeaderMap,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    eks.dispatch(
        Op::UntagResource,
        &headers,
        Target::Resource(&arn),
        |scope| tagging::untag_resource(&mut eks.write(), scope, &arn, &query),
    )
    .await
}

async fn unknown_operation(
    State(emulator): State<EksEmulator>,
    method: Method,
    OriginalUri(uri): OriginalUri,
) -> Response {
    emulator.count(UNKNOWN_OPERATION, None);
    let err = ApiError::UnknownOperation {
        method: method.to_string(),
        path: uri.path().to_owned(),
    };
    tracing::warn!(%method, path = uri.path(), status = err.status().as_u16(), "eks emulator: unsupported operation");
    error_response(&err, &emulator.next_request_id())
}
