//! Reading one cluster for the audit: DescribeCluster (fresh), who the tool is there, aws-auth
//! and access entries, which of them are active in the cluster's mode, and `--fix-logging`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::StreamExt;

use super::classify::{self, PathInput, Services, Source};
use super::trusts::TrustCache;
use super::{
    AuditOptions, ClusterAudit, ClusterSource, Described, LoggingState, REQUIRED_LOG_TYPES,
};
use crate::aws_auth;
use crate::cluster::AuthenticationMode;
use crate::config::{role_account, ClusterRef};
use crate::iam::IAM_CONCURRENCY;
use crate::report::{ClusterReport, Outcome};
use crate::sync::retry::{self, Attempt};
use crate::sync::{App, Limits, StoreError};

/// A path read from a cluster, not yet classified (the services are known only once every
/// cluster has said who the tool is there).
pub(super) struct RawPath {
    pub(super) input: PathInput,
    pub(super) inactive: Option<String>,
}

pub(super) struct ClusterRead {
    pub(super) audit: ClusterAudit,
    pub(super) paths: Vec<RawPath>,
}

/// One cluster, cut off at `deadline`: a hung cluster is reported unreadable alone. The trust
/// policies of the session-named roles in the cluster's own account are read here too, into
/// `trusts` (each role once per audit), as the cluster's identity.
pub(super) async fn read_cluster(
    app: &App,
    cluster: &ClusterRef,
    options: AuditOptions,
    trusts: (&Services, &TrustCache),
    deadline: Instant,
) -> ClusterRead {
    let started = Instant::now();
    let read = read_cluster_inner(app, cluster, options, deadline);
    match tokio::time::timeout_at(deadline.into(), read).await {
        Ok(Ok(read)) => {
            // Each trust read is cut off at the deadline itself, and classed conservatively
            // then; the cluster stays read.
            read_own_trusts(app, &read, trusts, deadline).await;
            read
        }
        Ok(Err(error)) => unreadable(cluster, error),
        Err(_) => unreadable(
            cluster,
            format!(
                "cluster {}: no answer before the run's deadline ({} ms)",
                cluster.name,
                started.elapsed().as_millis()
            ),
        ),
    }
}

/// The trust policies of the session-named roles of `read` that are in the account the
/// cluster was read as.
async fn read_own_trusts(
    app: &App,
    read: &ClusterRead,
    (services, cache): (&Services, &TrustCache),
    deadline: Instant,
) {
    let account = read.audit.caller_arn.as_deref().and_then(role_account);
    let own = read.paths.iter().filter(|raw| {
        classify::needs_trust(&raw.input, services) && role_account(&raw.input.principal) == account
    });
    futures::stream::iter(own)
        .for_each_concurrent(IAM_CONCURRENCY, |raw| async move {
            cache
                .naming(
                    app,
                    read.audit.role_arn.as_deref(),
                    &raw.input.principal,
                    deadline,
                )
                .await;
        })
        .await;
}

fn unreadable(cluster: &ClusterRef, error: String) -> ClusterRead {
    ClusterRead {
        audit: ClusterAudit {
            error: Some(error),
            ..ClusterAudit::new(&cluster.name, &cluster.region, cluster.role_arn.clone())
        },
        paths: Vec::new(),
    }
}

async fn read_cluster_inner(
    app: &App,
    cluster: &ClusterRef,
    options: AuditOptions,
    deadline: Instant,
) -> Result<ClusterRead, String> {
    let source = app.clusters.auditor(cluster).map_err(|e| e.to_string())?;
    let described = source.describe().await.map_err(|e| e.to_string())?;
    let caller = source.caller_arn().await?;
    let mode = described.target.mode.clone();
    let mut audit = ClusterAudit::new(&cluster.name, &cluster.region, cluster.role_arn.clone());
    audit.caller_arn = Some(caller);
    audit.authentication_mode = Some(mode_name(&mode));
    if let AuthenticationMode::Other(other) = &mode {
        return Err(format!(
            "cluster {}: authentication mode {other} is unknown to this version; which paths are effective cannot be told",
            cluster.name
        ));
    }
    let mut paths = Vec::new();
    let entries = if mode == AuthenticationMode::ConfigMap {
        Vec::new()
    } else {
        source.access_entries().await?
    };
    let with_entries: BTreeSet<String> = entries
        .iter()
        .map(|e| classify::identity_key(&e.principal_arn))
        .collect();
    match read_aws_auth(app, &described, deadline).await {
        Ok(Some(data)) => {
            let read = aws_auth::read_paths(&data);
            for (key, why) in &read.unreadable {
                audit
                    .notes
                    .push(format!("aws-auth {key} grants nothing: {why}"));
            }
            let inactive = |never: &Option<String>, arn: &str| -> Option<String> {
                if mode == AuthenticationMode::Api {
                    return Some("authentication mode API does not read aws-auth".into());
                }
                if let Some(never) = never {
                    return Some(never.clone());
                }
                (mode == AuthenticationMode::ApiAndConfigMap
                    && with_entries.contains(&classify::identity_key(arn)))
                .then(|| "an access entry for the same principal takes precedence".into())
            };
            for (source, mapped) in [
                (Source::MapUsers, &read.users),
                (Source::MapRoles, &read.roles),
            ] {
                for m in mapped {
                    paths.push(RawPath {
                        inactive: inactive(&m.never_matches, &m.arn),
                        input: PathInput {
                            source,
                            principal: m.arn.clone(),
                            username: m.username.clone(),
                            groups: m.groups.clone(),
                            entry_type: None,
                            policies: Vec::new(),
                        },
                    });
                }
            }
            for account in &read.accounts {
                paths.push(RawPath {
                    inactive: inactive(&None, account),
                    input: PathInput {
                        source: Source::MapAccounts,
                        principal: account.clone(),
                        username: String::new(),
                        groups: Vec::new(),
                        entry_type: None,
                        policies: Vec::new(),
                    },
                });
            }
        }
        Ok(None) => audit
            .notes
            .push("kube-system/aws-auth does not exist".into()),
        // EKS ignores aws-auth in API mode, and the tool may not be let in through it there.
        Err(e) if mode == AuthenticationMode::Api => audit
            .notes
            .push(format!("aws-auth not read (ignored in API mode): {e}")),
        Err(e) => return Err(format!("cluster {}: reading aws-auth: {e}", cluster.name)),
    }
    for entry in entries {
        paths.push(RawPath {
            inactive: None,
            input: PathInput {
                source: Source::AccessEntry,
                principal: entry.principal_arn,
                username: entry.username,
                groups: entry.groups,
                entry_type: Some(entry.entry_type),
                policies: entry.policies,
            },
        });
    }
    audit.logging = Some(logging_state(source.as_ref(), &described, options).await);
    Ok(ClusterRead { audit, paths })
}

/// aws-auth's data; `None` when it does not exist. A read that meets a transient error (429,
/// 5xx, a broken connection) is tried again as the writers do ([`retry::until_settled`]),
/// within `deadline`.
async fn read_aws_auth(
    app: &App,
    described: &Described,
    deadline: Instant,
) -> Result<Option<BTreeMap<String, String>>, String> {
    let target = &described.target;
    let store = app.connector.aws_auth(target).await?;
    let read = std::sync::Mutex::new(None);
    let report = retry::until_settled(
        "aws-auth",
        &target.name,
        Limits::until(deadline),
        || async {
            let report = ClusterReport::new(&target.name, &target.region, Outcome::Unchanged);
            match store.get().await {
                Ok(config_map) => {
                    *read.lock().expect("aws-auth read lock") = Some(config_map);
                    Attempt::Done(report)
                }
                Err(StoreError::Transient {
                    detail,
                    retry_after,
                }) => Attempt::Transient {
                    report,
                    reason: format!("reading kube-system/aws-auth: {detail}"),
                    retry_after,
                },
                Err(e) => {
                    Attempt::Done(report.failed(format!("reading kube-system/aws-auth: {e}")))
                }
            }
        },
    )
    .await;
    if report.outcome == Outcome::Failed {
        return Err(report.reason.unwrap_or_default());
    }
    let config_map = read.into_inner().expect("aws-auth read lock").flatten();
    Ok(config_map.map(|cm| cm.data.unwrap_or_default()))
}

/// The logging as described, and, with `--fix-logging`, the update that turns on what is off.
async fn logging_state(
    source: &dyn ClusterSource,
    described: &Described,
    options: AuditOptions,
) -> LoggingState {
    let enabled = &described.enabled_log_types;
    let mut state = LoggingState {
        enabled_types: enabled.iter().cloned().collect(),
        audit: enabled.contains("audit"),
        authenticator: enabled.contains("authenticator"),
        fixed: Vec::new(),
        update_id: None,
        fix_error: None,
    };
    let missing: Vec<String> = REQUIRED_LOG_TYPES
        .iter()
        .filter(|t| !enabled.contains(**t))
        .map(|t| t.to_string())
        .collect();
    if options.fix_logging && !missing.is_empty() {
        match source.enable_logging(&missing).await {
            Ok(id) => {
                tracing::info!(cluster = %described.target.name, region = %described.target.region, enabled = %missing.join(","), update_id = %id, "control-plane logging enabled");
                state.fixed = missing;
                state.update_id = Some(id);
            }
            Err(e) => state.fix_error = Some(e),
        }
    }
    state
}

fn mode_name(mode: &AuthenticationMode) -> String {
    match mode {
        AuthenticationMode::ConfigMap => "CONFIG_MAP".into(),
        AuthenticationMode::ApiAndConfigMap => "API_AND_CONFIG_MAP".into(),
        AuthenticationMode::Api => "API".into(),
        AuthenticationMode::Other(other) => other.clone(),
    }
}
