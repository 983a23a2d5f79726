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
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;

pub use access_entry_writer::{
    apply_access_entries, apply_access_entries_with_roles, no_roles, AccessEntryStore,
    EksAccessEntries, EntryError, DESCRIBE_CONCURRENCY,
};
pub use aws_auth_writer::{
    apply_aws_auth, apply_aws_auth_with_roles, ApplyOptions, AwsAuthStore, KubeAwsAuth, StoreError,
};
pub use retry::{Limits, DEFAULT_MAX_ATTEMPTS};

use crate::backend::{self, Choice, Store};
use crate::cluster::{ClusterDirectory, ClusterTarget};
use crate::config::{ClusterRef, Config};
use crate::credentials::CredentialsFor;
use crate::desired::{Desired, RoleArn};
use crate::event::{Invocation, Trigger};
use crate::fleet;
use crate::follow_up;
use crate::iam::{self, IamDirectory, IamError};
use crate::kube_clients::KubeClients;
use crate::report::{ClusterReport, Outcome, Report};
use crate::roles;

/// Opens the aws-auth of a described cluster; the real one keeps a client per cluster.
pub trait Connector: Send + Sync {
    fn aws_auth<'a>(
        &'a self,
        target: &'a ClusterTarget,
    ) -> BoxFuture<'a, Result<Box<dyn AwsAuthStore>, String>>;
}

/// [`Connector`] that authenticates as the identity the cluster is reached as (its `roleArn`,
/// or the function's own), with a token exactly like `aws eks get-token`'s, through a client
/// kept across warm invocations and renewed before its token expires ([`KubeClients`]).
pub struct TokenConnector {
    clients: Arc<KubeClients>,
}

impl TokenConnector {
    /// A plain `SharedCredentialsProvider` signs every token as the function itself;
    /// [`AssumeRoles`](crate::credentials::AssumeRoles) also serves clusters with `roleArn`.
    pub fn new(credentials: impl CredentialsFor + 'static) -> Self {
        Self {
            clients: Arc::new(KubeClients::new(Arc::new(credentials))),
        }
    }
}

impl Connector for TokenConnector {
    fn aws_auth<'a>(
        &'a self,
        target: &'a ClusterTarget,
    ) -> BoxFuture<'a, Result<Box<dyn AwsAuthStore>, String>> {
        Box::pin(
            async move { Ok(Box::new(self.clients.aws_auth(target)) as Box<dyn AwsAuthStore>) },
        )
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

/// Why a run produced no per-cluster report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("reading the desired state from IAM: {0}")]
    Iam(#[from] IamError),
    /// The writes are done, but whether IAM still supports them is unknown: the run fails so
    /// that it is retried (and re-reads IAM) rather than leave a possibly stale grant.
    #[error("re-reading IAM after writing, to check the writes against its latest state: {0}")]
    Reread(IamError),
    #[error("{during} did not finish before the run's deadline")]
    Deadline { during: &'static str },
}

/// How long a run may take when the caller gives no deadline (the CLI's default `--timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Re-reads of IAM after writing, at most: each one that finds IAM changed undoes what it no
/// longer supports and is itself checked by the next. Three covers any realistic burst; a
/// longer one has events of its own.
pub const MAX_REREADS: u32 = 3;
/// At most this much of the time left is kept back from the clusters' deadline, for the IAM
/// re-read, the corrections and the report.
const MAX_RESERVE: Duration = Duration::from_secs(5);

/// Recomputes from IAM and brings every configured and discovered cluster in step, finishing
/// before `deadline`. A full reconcile describes and discovers afresh; a user event may use
/// cached answers. A discovery that failed (a region that could not be listed) is reported like
/// a failed cluster, after the clusters.
///
/// IAM is read once before writing and, when anything was written, once more afterwards: a run
/// that read IAM before a change and wrote after the change's own run (overlapping events, a
/// reconcile still running) would otherwise leave the stale state. Whatever the re-read no
/// longer supports is applied again, for just the users that changed, on the clusters reached.
pub async fn run(
    app: &App,
    invocation: &Invocation,
    deadline: Instant,
) -> Result<Report, RunError> {
    // The first read, discovery and the clusters get the time left less a reserve; the re-read,
    // the corrections and the report get the reserve, and everything ends a little before
    // `deadline` so the result is out in time.
    let reserve = deadline
        .saturating_duration_since(Instant::now())
        .div_f64(5.0)
        .min(MAX_RESERVE);
    let clusters_deadline = deadline - reserve;
    let final_deadline = deadline - reserve / 10;
    let desired = read_iam(app, &invocation.trigger, clusters_deadline).await?;
    if invocation.trigger == Trigger::All {
        app.clusters.forget_cached();
    }
    let fleet = tokio::time::timeout_at(
        clusters_deadline.into(),
        fleet::resolve(&app.config, app.clusters.as_ref()),
    )
    .await
    .map_err(|_| RunError::Deadline {
        during: "finding the clusters, configured and discovered (nothing was written)",
    })?;
    // A follow-up retries only the clusters that failed (see `follow_up`).
    let fleet = match &invocation.clusters {
        Some(filter) => filter.apply(fleet),
        None => fleet,
    };
    let targets: Vec<&ClusterRef> = fleet.clusters.iter().collect();
    let mut clusters = fan_out(app, &targets, &desired, invocation, clusters_deadline, true).await;
    let verified = if invocation.dry_run {
        Ok((0, desired))
    } else {
        verify(
            app,
            invocation,
            &targets,
            desired,
            &mut clusters,
            final_deadline,
        )
        .await
    };
    // What was done is logged even when the re-read failed.
    for report in clusters.iter().chain(&fleet.failures) {
        log_cluster(report, invocation);
    }
    let (iam_rereads, latest) = verified?;
    clusters.extend(fleet.failures);
    Ok(Report {
        event_id: invocation.event_id.clone(),
        event_name: invocation.event_name.clone(),
        trigger: trigger_label(&invocation.trigger),
        dry_run: invocation.dry_run,
        ignored: None,
        iam_rereads,
        // IAM is eventually consistent: a revoking event that still reads a grant is re-checked.
        recheck: follow_up::still_granted(&latest, &invocation.revoked),
        clusters,
    })
}

/// Removes this installation's own entries (users and roles, in every store the cluster's
/// authentication mode reads) from `cluster`, which has left the fleet: taken out of the config,
/// or no longer matching discovery. Nothing else is touched: another installation's entries,
/// hand entries, other keys. IAM is not read; with `dry_run` the report's diff shows what would
/// go. A cluster still in the fleet is refused, since the next reconcile would add its users
/// back.
pub async fn release(
    app: &App,
    cluster: &ClusterRef,
    dry_run: bool,
    deadline: Instant,
) -> Result<ClusterReport, ReleaseError> {
    let fleet = tokio::time::timeout_at(
        deadline.into(),
        fleet::resolve(&app.config, app.clusters.as_ref()),
    )
    .await
    .map_err(|_| ReleaseError::Deadline)?;
    if fleet
        .clusters
        .iter()
        .any(|c| c.name == cluster.name && c.region == cluster.region)
    {
        return Err(ReleaseError::StillInFleet {
            cluster: cluster.name.clone(),
            region: cluster.region.clone(),
        });
    }
    if let Some(failed) = fleet.failures.first() {
        return Err(ReleaseError::FleetUnknown {
            cluster: cluster.name.clone(),
            reason: failed.reason.clone().unwrap_or_default(),
        });
    }
    let nobody = Desired {
        scope: crate::desired::Scope::All,
        entries: Default::default(),
    };
    let no_role = Desired::<RoleArn> {
        scope: crate::desired::Scope::All,
        entries: Default::default(),
    };
    Ok(sync_cluster(app, cluster, &nobody, Some(&no_role), dry_run, deadline).await)
}

/// Why `release` did not look at the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "cluster {cluster} ({region}) is still in the fleet (listed in the config or matched by \
         discovery), so the next reconcile would add its users back; take it out of the fleet \
         first. Nothing was changed."
    )]
    StillInFleet { cluster: String, region: String },
    #[error(
        "cannot tell whether cluster {cluster} is still in the fleet, since discovery failed: \
         {reason}. Nothing was changed."
    )]
    FleetUnknown { cluster: String, reason: String },
    #[error("finding the fleet did not finish before the deadline; nothing was changed")]
    Deadline,
}

/// The desired state for `trigger`, read before `deadline`.
async fn read_iam(app: &App, trigger: &Trigger, deadline: Instant) -> Result<Desired, RunError> {
    let read = iam::desired(app.iam.as_ref(), &app.config, trigger);
    match tokio::time::timeout_at(deadline.into(), read).await {
        Ok(desired) => Ok(desired?),
        Err(_) => Err(RunError::Deadline {
            during: "reading the desired state from IAM (nothing was written)",
        }),
    }
}

/// After a run wrote, re-reads IAM and re-applies, for the users whose state changed meanwhile,
/// what IAM says now; repeats while that itself writes, up to [`MAX_REREADS`]. Clusters that
/// failed or were skipped are left out (a failed cluster fails the invocation, whose retry
/// re-reads IAM anyway). Returns the number of re-reads and IAM's state as last read.
async fn verify(
    app: &App,
    invocation: &Invocation,
    targets: &[&ClusterRef],
    mut written: Desired,
    clusters: &mut [ClusterReport],
    deadline: Instant,
) -> Result<(u32, Desired), RunError> {
    let mut wrote = clusters.iter().any(ClusterReport::wrote);
    let mut rereads = 0;
    while wrote && rereads < MAX_REREADS {
        rereads += 1;
        let fresh = read_iam(app, &invocation.trigger, deadline)
            .await
            .map_err(|e| match e {
                RunError::Iam(e) => RunError::Reread(e),
                _ => RunError::Deadline {
                    during: "re-reading IAM after writing (the writes are not checked against its latest state yet)",
                },
            })?;
        let changed = written.changed_users(&fresh);
        if changed.is_empty() {
            break;
        }
        tracing::warn!(
            event_id = invocation.event_id.as_deref().unwrap_or(""),
            users = %changed.iter().cloned().collect::<Vec<_>>().join(","),
            reread = rereads,
            "IAM changed while this run wrote; applying its latest state for these users"
        );
        let correction = fresh.restricted_to(&changed);
        let reached: Vec<usize> = (0..clusters.len())
            .filter(|&i| !matches!(clusters[i].outcome, Outcome::Failed | Outcome::Skipped))
            .collect();
        let again_targets: Vec<&ClusterRef> = reached.iter().map(|&i| targets[i]).collect();
        let again = fan_out(
            app,
            &again_targets,
            &correction,
            invocation,
            deadline,
            false,
        )
        .await;
        wrote = again.iter().any(ClusterReport::wrote);
        for (i, report) in reached.into_iter().zip(again) {
            absorb_correction(&mut clusters[i], report);
        }
        written = fresh;
    }
    Ok((rereads, written))
}

/// Every target at once (at most `maxConcurrency` in flight), unordered, so that one slow
/// cluster holds only its own slot; the reports come back in the targets' order. With
/// `observe`, each cluster is told to the run's [`progress`](crate::progress) observer as it
/// finishes (the first pass only: corrections are part of the same clusters' work).
async fn fan_out(
    app: &App,
    targets: &[&ClusterRef],
    desired: &Desired,
    invocation: &Invocation,
    deadline: Instant,
    observe: bool,
) -> Vec<ClusterReport> {
    let done = std::sync::atomic::AtomicUsize::new(0);
    let done = &done;
    unordered(targets, app.config.max_concurrency, |cluster| async move {
        let report = sync_cluster(app, cluster, desired, None, invocation.dry_run, deadline).await;
        if observe {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            crate::progress::finished(&report, n, targets.len());
        }
        report
    })
    .await
}

/// `f` over every item, at most `concurrency` in flight, finishing in any order (one slow item
/// holds only its own slot); the results in the items' order. The sync's fan-out and the
/// audit's share it.
pub async fn unordered<'a, T, R, F, Fut>(items: &'a [T], concurrency: usize, f: F) -> Vec<R>
where
    F: Fn(&'a T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    let f = &f;
    let mut done: Vec<(usize, R)> = futures::stream::iter(items.iter().enumerate())
        .map(|(i, item)| async move { (i, f(item).await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

fn trigger_label(trigger: &Trigger) -> String {
    match trigger {
        Trigger::All => "all".to_string(),
        Trigger::Users(names) => names.iter().cloned().collect::<Vec<_>>().join(","),
        Trigger::Roles(names) => format!(
            "roles:{}",
            names.iter().cloned().collect::<Vec<_>>().join(",")
        ),
    }
}

/// One cluster, cut off at `deadline`: a cluster that hangs (an endpoint that accepts and never
/// answers) fails alone, with a reason, and the run still returns in time.
///
/// `roles`: the role part to write; `None` resolves it from the config ([`cluster_roles`]).
async fn sync_cluster(
    app: &App,
    cluster: &ClusterRef,
    desired: &Desired,
    roles: Option<&Desired<RoleArn>>,
    dry_run: bool,
    deadline: Instant,
) -> ClusterReport {
    let started = Instant::now();
    let inner = sync_cluster_inner(app, cluster, desired, roles, dry_run, deadline);
    let mut report = match tokio::time::timeout_at(deadline.into(), inner).await {
        Ok(report) => report,
        Err(_) => ClusterReport::new(&cluster.name, &cluster.region, Outcome::Failed).with_reason(
            format!(
                "cluster {}: no answer before the run's deadline ({} ms); a write in flight may or may not have landed, the next run re-reads and repairs",
                cluster.name,
                started.elapsed().as_millis()
            ),
        ),
    };
    report.cluster = cluster.name.clone();
    report.region = cluster.region.clone();
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

async fn sync_cluster_inner(
    app: &App,
    cluster: &ClusterRef,
    desired: &Desired,
    roles: Option<&Desired<RoleArn>>,
    dry_run: bool,
    deadline: Instant,
) -> ClusterReport {
    let report = |outcome| ClusterReport::new(&cluster.name, &cluster.region, outcome);
    let target = match app.clusters.describe(cluster).await {
        Ok(target) => target,
        Err(e) => return report(Outcome::Failed).with_reason(e.to_string()),
    };
    let (store, retire) = match backend::choose(&cluster.name, cluster.backend, &target.mode) {
        Choice::Write { store, retire } => (store, retire),
        Choice::Refuse(e) => return report(Outcome::Failed).with_reason(e.to_string()),
    };
    let options = ApplyOptions {
        cluster: cluster.name.clone(),
        create_missing: app.config.create_missing_aws_auth,
        dry_run,
        limits: Limits::until(deadline),
        installation: app.config.installation(),
    };
    let (roles, roles_failed) = match roles {
        Some(roles) => (roles.clone(), None),
        None => cluster_roles(app, cluster, desired).await,
    };
    let mut report = write(app, &target, store, desired, &roles, &options).await;
    report.backend = Some(store.as_str());
    // Only once the chosen store holds the users: retiring after a skipped or failed write
    // would take away the only entries that still grant access.
    if let (Some(retired), true) = (retire, report.holds_users()) {
        let cleanup = write(
            app,
            &target,
            retired,
            &desired.emptied(),
            &roles.emptied(),
            &options,
        )
        .await;
        absorb_retirement(&mut report, retired, cleanup);
    }
    match roles_failed {
        Some(reason) if report.outcome != Outcome::Failed => report.failed(reason),
        _ => report,
    }
}

/// The role part of a cluster's run: the `roles` entries resolved in the cluster's account
/// (through its `roleArn`), within the run's scope. A user event has none (its scope covers no
/// role). A config without `roles` still decides about role entries on a full reconcile or a
/// role event: it wants none, so the tool's own entries of roles since taken out of the config
/// go (removing the whole section must revoke as surely as removing one entry). When IAM cannot
/// be read for the roles, the users are still written, no role entry is touched, and the
/// cluster fails with the reason.
async fn cluster_roles(
    app: &App,
    cluster: &ClusterRef,
    desired: &Desired,
) -> (Desired<RoleArn>, Option<String>) {
    if !desired.scope.covers_roles() {
        return (no_roles(), None);
    }
    if app.config.roles.is_empty() {
        let none = Desired {
            scope: desired.scope.clone(),
            entries: Default::default(),
        };
        return (none, None);
    }
    let identity = cluster.role_arn.as_deref();
    match roles::resolve(
        app.iam.as_ref(),
        identity,
        &app.config.roles,
        &desired.scope,
    )
    .await
    {
        Ok(resolved) => {
            let (roles, notes) = roles::desired(&app.config.roles, &desired.scope, &resolved);
            for note in notes {
                tracing::warn!(cluster = %cluster.name, entry = note.entry, "{}", note.message);
            }
            (roles, None)
        }
        Err(e) => (
            no_roles(),
            Some(format!(
                "cluster {}: role mappings not applied, reading their roles failed: {e}",
                cluster.name
            )),
        ),
    }
}

/// Writes `desired` to one store of the cluster.
async fn write(
    app: &App,
    target: &ClusterTarget,
    store: Store,
    desired: &Desired,
    roles: &Desired<RoleArn>,
    options: &ApplyOptions,
) -> ClusterReport {
    let failed = |reason: String| {
        ClusterReport::new(&target.name, &target.region, Outcome::Failed).with_reason(reason)
    };
    match store {
        Store::AwsAuth => match app.connector.aws_auth(target).await {
            Ok(aws_auth) => {
                apply_aws_auth_with_roles(aws_auth.as_ref(), desired, roles, options).await
            }
            Err(e) => failed(format!("connecting to {}: {e}", target.endpoint)),
        },
        Store::AccessEntries => match app.clusters.access_entries(target) {
            Ok(entries) => {
                apply_access_entries_with_roles(entries.as_ref(), desired, roles, options).await
            }
            Err(e) => failed(e.to_string()),
        },
    }
}

/// Folds the retirement of `retired` into the cluster's report: its removals count as
/// `retired`, its failure fails the cluster, its diff follows the main one.
fn absorb_retirement(report: &mut ClusterReport, retired: Store, cleanup: ClusterReport) {
    report.retired = cleanup.removed;
    report.retries += cleanup.retries;
    if let Some(diff) = &cleanup.diff {
        report.diff = Some(report.diff.take().unwrap_or_default() + diff);
    }
    let context = format!(
        "removing owned entries from {} (retired in this authentication mode)",
        retired.as_str()
    );
    fold_outcome(report, &cleanup, &context);
}

/// Folds a correction (the same cluster written again after IAM was re-read) into the
/// cluster's report: the counts add up, and `corrected` says how many entries it changed.
fn absorb_correction(report: &mut ClusterReport, correction: ClusterReport) {
    report.added += correction.added;
    report.removed += correction.removed;
    report.changed += correction.changed;
    report.retired += correction.retired;
    report.retries += correction.retries;
    report.duration_ms += correction.duration_ms;
    report.corrected +=
        correction.added + correction.removed + correction.changed + correction.retired;
    for conflict in &correction.conflicts {
        if !report.conflicts.contains(conflict) {
            report.conflicts.push(conflict.clone());
        }
    }
    fold_outcome(
        report,
        &correction,
        "applying IAM's latest state after re-reading it",
    );
}

/// The outcome of a cluster after a second write to it: a failure fails it (naming what was
/// being done), a write makes an unchanged cluster updated.
fn fold_outcome(report: &mut ClusterReport, second: &ClusterReport, context: &str) {
    match second.outcome {
        Outcome::Failed => {
            report.outcome = Outcome::Failed;
            report.reason = Some(format!(
                "{context}: {}",
                second.reason.as_deref().unwrap_or("failed")
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
