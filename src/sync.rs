//! The run: desired state from IAM, then every cluster brought in step, concurrently.
//!
//! ```text
//! Invocation -> iam::desired -> for each cluster (bounded): describe -> connect -> apply_aws_auth
//! ```
//! [`apply_aws_auth`] is the only writer. It reads aws-auth, lets the pure [`aws_auth::merge`]
//! decide, and writes back with the resourceVersion it read, so a concurrent writer makes the
//! PUT fail with 409 instead of being overwritten; it then re-reads and recomputes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use futures::future::BoxFuture;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::aws_auth::{self, MAP_USERS};
use crate::cluster::{self, ClusterDirectory, ClusterTarget};
use crate::config::{ClusterRef, Config};
use crate::desired::Desired;
use crate::event::{Invocation, Trigger};
use crate::iam::{self, IamDirectory, IamError};
use crate::report::{ClusterReport, Outcome, Report};
use crate::token;

const NAMESPACE: &str = "kube-system";
const NAME: &str = "aws-auth";

/// Tries of one cluster's read-merge-write cycle before giving up on conflicts. Default 5.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// A Kubernetes read or write of aws-auth failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// 409: someone else wrote since our read (or created it first). Re-read and recompute.
    #[error("aws-auth changed since it was read")]
    Conflict,
    #[error("{0}")]
    Api(String),
}

/// aws-auth in one cluster. The real one is [`KubeAwsAuth`]; tests wrap it to interleave writers.
pub trait AwsAuthStore: Send + Sync {
    fn get(&self) -> BoxFuture<'_, Result<Option<ConfigMap>, StoreError>>;
    /// PUT, carrying `metadata.resourceVersion` as the precondition.
    fn replace<'a>(&'a self, config_map: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>>;
    fn create<'a>(&'a self, config_map: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// [`AwsAuthStore`] over the Kubernetes API.
pub struct KubeAwsAuth {
    api: Api<ConfigMap>,
}

impl KubeAwsAuth {
    pub fn new(client: kube::Client) -> Self {
        Self {
            api: Api::namespaced(client, NAMESPACE),
        }
    }
}

fn store_error(e: kube::Error) -> StoreError {
    match e {
        kube::Error::Api(status) if status.code == 409 => StoreError::Conflict,
        kube::Error::Api(status) => StoreError::Api(format!(
            "Kubernetes API {} {}: {}",
            status.code, status.reason, status.message
        )),
        other => StoreError::Api(other.to_string()),
    }
}

impl AwsAuthStore for KubeAwsAuth {
    fn get(&self) -> BoxFuture<'_, Result<Option<ConfigMap>, StoreError>> {
        Box::pin(async move { self.api.get_opt(NAME).await.map_err(store_error) })
    }

    fn replace<'a>(&'a self, config_map: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.api
                .replace(NAME, &PostParams::default(), config_map)
                .await
                .map(drop)
                .map_err(store_error)
        })
    }

    fn create<'a>(&'a self, config_map: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.api
                .create(&PostParams::default(), config_map)
                .await
                .map(drop)
                .map_err(store_error)
        })
    }
}

/// How [`apply_aws_auth`] behaves.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub cluster: String,
    pub create_missing: bool,
    pub dry_run: bool,
    pub max_attempts: u32,
}

/// Brings one cluster's aws-auth in step with `desired`. Never writes what it could not parse;
/// every write carries the resourceVersion it read.
pub async fn apply_aws_auth(
    store: &dyn AwsAuthStore,
    desired: &Desired,
    options: &ApplyOptions,
) -> ClusterReport {
    let mut report = ClusterReport::new(&options.cluster, "", Outcome::Unchanged);
    for attempt in 1..=options.max_attempts {
        report.retries = attempt - 1;
        let current = match store.get().await {
            Ok(current) => current,
            Err(e) => return failed(report, format!("reading {NAMESPACE}/{NAME}: {e}")),
        };
        if current.is_none() && !options.create_missing {
            report.outcome = Outcome::Skipped;
            return report.with_reason("aws-auth does not exist and createMissingAwsAuth is false");
        }
        let data = current.as_ref().and_then(|cm| cm.data.clone());
        let data = match (&current, data) {
            (Some(_), None) => Some(BTreeMap::new()),
            (_, data) => data,
        };
        let merge = match aws_auth::merge(data.as_ref(), desired) {
            Ok(merge) => merge,
            Err(e) => return failed(report, e.to_string()),
        };
        report.added = merge.added.len();
        report.removed = merge.removed.len();
        report.changed = merge.changed.len();
        report.conflicts = merge.conflicts.iter().map(ToString::to_string).collect();
        let Some(new_value) = merge.map_users.clone() else {
            report.outcome = settled(&report, Outcome::Unchanged);
            return report;
        };
        if options.dry_run {
            report.diff = Some(aws_auth::unified_diff(
                &options.cluster,
                merge.previous.as_deref(),
                &new_value,
            ));
            report.outcome = settled(&report, Outcome::Updated);
            return report;
        }
        let written = match current {
            Some(mut config_map) => {
                config_map
                    .data
                    .get_or_insert_with(BTreeMap::new)
                    .insert(MAP_USERS.to_string(), new_value);
                store.replace(&config_map).await
            }
            None => store.create(&new_aws_auth(new_value)).await,
        };
        match written {
            Ok(()) => {
                report.outcome = settled(&report, Outcome::Updated);
                return report;
            }
            Err(StoreError::Conflict) => {
                let delay = backoff(attempt);
                tracing::info!(
                    cluster = %options.cluster,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    "aws-auth changed since it was read; re-reading"
                );
                tokio::time::sleep(delay).await;
            }
            Err(e) => return failed(report, format!("writing {NAMESPACE}/{NAME}: {e}")),
        }
    }
    let attempts = options.max_attempts;
    failed(
        report,
        format!("aws-auth kept changing under us: gave up after {attempts} conflicting writes"),
    )
}

/// A run with conflicts reports them even when the rest was applied.
fn settled(report: &ClusterReport, otherwise: Outcome) -> Outcome {
    if report.conflicts.is_empty() {
        otherwise
    } else {
        Outcome::Conflict
    }
}

fn failed(mut report: ClusterReport, reason: String) -> ClusterReport {
    report.outcome = Outcome::Failed;
    report.reason = Some(reason);
    report
}

/// Jittered exponential backoff: 50 ms, 100 ms, 200 ms, ... capped at 1 s, each +-50%.
fn backoff(attempt: u32) -> Duration {
    let base = 50u64
        .saturating_mul(1 << attempt.min(5).saturating_sub(1))
        .min(1000);
    Duration::from_millis(base / 2 + fastrand::u64(0..=base))
}

fn new_aws_auth(map_users: String) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(NAME.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(MAP_USERS.to_string(), map_users)])),
        ..ConfigMap::default()
    }
}

/// Opens the aws-auth of a described cluster; the real one signs a token per connection.
pub trait Connector: Send + Sync {
    fn aws_auth<'a>(
        &'a self,
        target: &'a ClusterTarget,
    ) -> BoxFuture<'a, Result<Box<dyn AwsAuthStore>, String>>;
}

/// [`Connector`] that authenticates as the function's own IAM identity, with a token exactly
/// like `aws eks get-token`'s.
pub struct TokenConnector {
    credentials: SharedCredentialsProvider,
}

impl TokenConnector {
    pub fn new(credentials: SharedCredentialsProvider) -> Self {
        Self { credentials }
    }
}

impl Connector for TokenConnector {
    fn aws_auth<'a>(
        &'a self,
        target: &'a ClusterTarget,
    ) -> BoxFuture<'a, Result<Box<dyn AwsAuthStore>, String>> {
        Box::pin(async move {
            let credentials = self
                .credentials
                .provide_credentials()
                .await
                .map_err(|e| format!("no AWS credentials to sign the cluster token: {e}"))?;
            let token = token::token(
                &credentials,
                &target.region,
                &target.name,
                SystemTime::now(),
            )
            .map_err(|e| e.to_string())?;
            let client = cluster::kube_client(target, token.expose()).map_err(|e| e.to_string())?;
            Ok(Box::new(KubeAwsAuth::new(client)) as Box<dyn AwsAuthStore>)
        })
    }
}

/// Everything a run needs, built once per process and reused across warm invocations.
pub struct App {
    pub config: Config,
    pub iam: Box<dyn IamDirectory>,
    pub clusters: Box<dyn ClusterDirectory>,
    pub connector: Box<dyn Connector>,
}

/// The run failed before any cluster was touched.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("reading the desired state from IAM: {0}")]
    Iam(#[from] IamError),
}

/// Recomputes from IAM and brings every configured cluster in step.
pub async fn run(app: &App, invocation: &Invocation) -> Result<Report, RunError> {
    let desired = iam::desired(app.iam.as_ref(), &app.config, &invocation.trigger).await?;
    let clusters = futures::stream::iter(&app.config.clusters)
        .map(|cluster| sync_cluster(app, cluster, &desired, invocation))
        .buffered(app.config.max_concurrency.max(1))
        .collect()
        .await;
    Ok(Report {
        event_id: invocation.event_id.clone(),
        event_name: invocation.event_name.clone(),
        trigger: trigger_label(&invocation.trigger),
        dry_run: invocation.dry_run,
        ignored: None,
        clusters,
    })
}

fn trigger_label(trigger: &Trigger) -> String {
    match trigger {
        Trigger::All => "all".to_string(),
        Trigger::Users(names) => names.iter().cloned().collect::<Vec<_>>().join(","),
    }
}

async fn sync_cluster(
    app: &App,
    cluster: &ClusterRef,
    desired: &Desired,
    invocation: &Invocation,
) -> ClusterReport {
    let started = Instant::now();
    let mut report = sync_cluster_inner(app, cluster, desired, invocation.dry_run).await;
    report.region = cluster.region.clone();
    report.duration_ms = started.elapsed().as_millis() as u64;
    log_cluster(&report, invocation);
    report
}

async fn sync_cluster_inner(
    app: &App,
    cluster: &ClusterRef,
    desired: &Desired,
    dry_run: bool,
) -> ClusterReport {
    let fail = |reason: String| {
        ClusterReport::new(&cluster.name, &cluster.region, Outcome::Failed).with_reason(reason)
    };
    let target = match app.clusters.describe(cluster).await {
        Ok(target) => target,
        Err(e) => return fail(e.to_string()),
    };
    if !target.mode.reads_aws_auth() {
        return ClusterReport::new(&cluster.name, &cluster.region, Outcome::Skipped).with_reason(
            format!(
                "authentication mode {:?} ignores aws-auth; access entries are not supported yet",
                target.mode
            ),
        );
    }
    let store = match app.connector.aws_auth(&target).await {
        Ok(store) => store,
        Err(e) => return fail(format!("connecting to {}: {e}", target.endpoint)),
    };
    let options = ApplyOptions {
        cluster: cluster.name.clone(),
        create_missing: app.config.create_missing_aws_auth,
        dry_run,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
    };
    apply_aws_auth(store.as_ref(), desired, &options).await
}

/// One structured line per cluster, ready for CloudWatch Logs Insights.
fn log_cluster(report: &ClusterReport, invocation: &Invocation) {
    let conflicts = report.conflicts.join(",");
    let reason = report.reason.as_deref().unwrap_or("");
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                event_id = invocation.event_id.as_deref().unwrap_or(""),
                event_name = invocation.event_name.as_deref().unwrap_or(""),
                principal = invocation.principal.as_deref().unwrap_or(""),
                cluster = %report.cluster,
                region = %report.region,
                outcome = report.outcome.as_str(),
                added = report.added,
                removed = report.removed,
                changed = report.changed,
                conflicts = %conflicts,
                retries = report.retries,
                dry_run = invocation.dry_run,
                duration_ms = report.duration_ms,
                error = %reason,
                "cluster synced"
            )
        };
    }
    match report.outcome {
        Outcome::Failed => line!(error),
        Outcome::Conflict => line!(warn),
        _ => line!(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 1..20 {
            let d = backoff(attempt);
            assert!(d <= Duration::from_millis(1500), "attempt {attempt}: {d:?}");
            assert!(d >= Duration::from_millis(25), "attempt {attempt}: {d:?}");
        }
        assert!(backoff(1) <= Duration::from_millis(75));
    }

    #[test]
    fn trigger_label_lists_users_or_all() {
        assert_eq!(trigger_label(&Trigger::All), "all");
        let users = Trigger::Users(["bob".to_string(), "alice".to_string()].into());
        assert_eq!(trigger_label(&users), "alice,bob");
    }
}
