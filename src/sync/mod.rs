//! The run: desired state from IAM, the fleet (configured and discovered clusters), then every
//! cluster brought in step, concurrently.
//!
//! ```text
//! Invocation -> iam::desired -> fleet::resolve -> for each cluster (bounded):
//!   describe -> backend::choose -> write the chosen store -> retire the other (API_AND_CONFIG_MAP)
//! ```
//! Both writers, [`apply_aws_auth`] and [`apply_access_entries`], read, let a pure function
//! decide, write only what changed, and re-read when another writer got in between
//! ([`retry`]). Everything around them (the fan-out, the per-cluster report, its log line, the
//! retirement of the store a cluster no longer uses) is written once, here, for both.

mod access_entry_writer;
mod aws_auth_writer;
pub mod retry;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use futures::future::BoxFuture;
use futures::StreamExt;

pub use access_entry_writer::{
    apply_access_entries, AccessEntryStore, EksAccessEntries, EntryError, DESCRIBE_CONCURRENCY,
};
pub use aws_auth_writer::{apply_aws_auth, ApplyOptions, AwsAuthStore, KubeAwsAuth, StoreError};
pub use retry::DEFAULT_MAX_ATTEMPTS;

use crate::backend::{self, Choice, Store};
use crate::cluster::{self, ClusterDirectory, ClusterTarget};
use crate::config::{ClusterRef, Config};
use crate::credentials::CredentialsFor;
use crate::desired::Desired;
use crate::event::{Invocation, Trigger};
use crate::fleet;
use crate::follow_up;
use crate::iam::{self, IamDirectory, IamError};
use crate::report::{ClusterReport, Outcome, Report};
use crate::token;

/// Opens the aws-auth of a described cluster; the real one signs a token per connection.
pub trait Connector: Send + Sync {
    fn aws_auth<'a>(
        &'a self,
        target: &'a ClusterTarget,
    ) -> BoxFuture<'a, Result<Box<dyn AwsAuthStore>, String>>;
}

/// [`Connector`] that authenticates as the identity the cluster is reached as (its `roleArn`,
/// or the function's own), with a token exactly like `aws eks get-token`'s.
pub struct TokenConnector {
    credentials: Arc<dyn CredentialsFor>,
}

impl TokenConnector {
    /// A plain `SharedCredentialsProvider` signs every token as the function itself;
    /// [`AssumeRoles`](crate::credentials::AssumeRoles) also serves clusters with `roleArn`.
    pub fn new(credentials: impl CredentialsFor + 'static) -> Self {
        Self {
            credentials: Arc::new(credentials),
        }
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
                .credentials_for(target.role_arn.as_deref())
                .map_err(|e| e.to_string())?
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
    /// The EKS control plane: describing and discovering clusters, and their access entries.
    pub clusters: Box<dyn ClusterDirectory>,
    /// The Kubernetes side: each cluster's aws-auth.
    pub connector: Box<dyn Connector>,
}

/// The run failed before any cluster was touched.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("reading the desired state from IAM: {0}")]
    Iam(#[from] IamError),
}

/// Recomputes from IAM and brings every configured and discovered cluster in step. A full
/// reconcile describes and discovers afresh; a user event may use cached answers. A discovery
/// that failed (a region that could not be listed) is reported like a failed cluster, after the
/// clusters.
pub async fn run(app: &App, invocation: &Invocation) -> Result<Report, RunError> {
    let desired = iam::desired(app.iam.as_ref(), &app.config, &invocation.trigger).await?;
    if invocation.trigger == Trigger::All {
        app.clusters.forget_cached();
    }
    let fleet = fleet::resolve(&app.config, app.clusters.as_ref()).await;
    // A follow-up retries only the clusters that failed (issue 8, part 1: queue serialisation).
    let fleet = match &invocation.clusters {
        Some(filter) => filter.apply(fleet),
        None => fleet,
    };
    let mut clusters: Vec<ClusterReport> = futures::stream::iter(&fleet.clusters)
        .map(|cluster| sync_cluster(app, cluster, &desired, invocation))
        .buffered(app.config.max_concurrency.max(1))
        .collect()
        .await;
    for failure in &fleet.failures {
        log_cluster(failure, invocation);
    }
    clusters.extend(fleet.failures);
    Ok(Report {
        event_id: invocation.event_id.clone(),
        event_name: invocation.event_name.clone(),
        trigger: trigger_label(&invocation.trigger),
        dry_run: invocation.dry_run,
        ignored: None,
        // IAM is eventually consistent: a revoking event that still reads a grant is re-checked.
        recheck: follow_up::still_granted(&desired, &invocation.revoked),
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
    report.cluster = cluster.name.clone();
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
    let report = |outcome| ClusterReport::new(&cluster.name, &cluster.region, outcome);
    let target = match app.clusters.describe(cluster).await {
        Ok(target) => target,
        Err(e) => return report(Outcome::Failed).with_reason(e.to_string()),
    };
    let (store, retire) = match backend::choose(&cluster.name, cluster.backend, &target.mode) {
        Choice::Write { store, retire } => (store, retire),
        Choice::Skip(reason) => return report(Outcome::Skipped).with_reason(reason),
        Choice::Refuse(e) => return report(Outcome::Failed).with_reason(e.to_string()),
    };
    let options = ApplyOptions {
        cluster: cluster.name.clone(),
        create_missing: app.config.create_missing_aws_auth,
        dry_run,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
    };
    let mut report = write(app, &target, store, desired, &options).await;
    report.backend = Some(store.as_str());
    // Only once the chosen store holds the users: retiring first could leave a gap in access.
    if let (Some(retired), false) = (retire, report.outcome == Outcome::Failed) {
        let cleanup = write(app, &target, retired, &desired.emptied(), &options).await;
        absorb_retirement(&mut report, retired, cleanup);
    }
    report
}

/// Writes `desired` to one store of the cluster.
async fn write(
    app: &App,
    target: &ClusterTarget,
    store: Store,
    desired: &Desired,
    options: &ApplyOptions,
) -> ClusterReport {
    let failed = |reason: String| {
        ClusterReport::new(&target.name, &target.region, Outcome::Failed).with_reason(reason)
    };
    match store {
        Store::AwsAuth => match app.connector.aws_auth(target).await {
            Ok(aws_auth) => apply_aws_auth(aws_auth.as_ref(), desired, options).await,
            Err(e) => failed(format!("connecting to {}: {e}", target.endpoint)),
        },
        Store::AccessEntries => match app.clusters.access_entries(target) {
            Ok(entries) => apply_access_entries(entries.as_ref(), desired, options).await,
            Err(e) => failed(e.to_string()),
        },
    }
}

/// Folds the retirement of `retired` into the cluster's report: its removals count as
/// `retired`, its failure fails the cluster, its diff follows the main one.
fn absorb_retirement(report: &mut ClusterReport, retired: Store, cleanup: ClusterReport) {
    report.retired = cleanup.removed;
    report.retries += cleanup.retries;
    if let Some(diff) = cleanup.diff {
        report.diff = Some(report.diff.take().unwrap_or_default() + &diff);
    }
    match cleanup.outcome {
        Outcome::Failed => {
            report.outcome = Outcome::Failed;
            report.reason = Some(format!(
                "removing owned entries from {} (retired in this authentication mode): {}",
                retired.as_str(),
                cleanup.reason.as_deref().unwrap_or("failed")
            ));
        }
        Outcome::Updated if report.outcome == Outcome::Unchanged => {
            report.outcome = Outcome::Updated;
        }
        _ => {}
    }
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
                backend = report.backend.unwrap_or(""),
                added = report.added,
                removed = report.removed,
                changed = report.changed,
                retired = report.retired,
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
    fn trigger_label_lists_users_or_all() {
        assert_eq!(trigger_label(&Trigger::All), "all");
        let users = Trigger::Users(["bob".to_string(), "alice".to_string()].into());
        assert_eq!(trigger_label(&users), "alice,bob");
    }
}
