//! The traceability audit: every path into every cluster of the fleet, classified, and whether
//! the control plane logs what is needed to trace it. Reads only; the one write is the opt-in
//! `--fix-logging`.
//!
//! ```text
//! fleet::resolve (listed + discovered, as reconcile) -> for each cluster, unordered, each cut
//! off at the deadline: DescribeCluster (fresh: logging, mode) + GetCallerIdentity as the
//! cluster's identity + aws-auth (GET) + access entries (list, describe, policies)
//! -> GetRole once per role whose paths carry the session name, in that role's account
//! (trust::session_naming, pure)
//! -> classify::classify every path (pure) -> report, summary, exit code
//! ```
//!
//! The machine identities are the function's own role ([`crate::config::ENV_FUNCTION_ROLE`]),
//! the configured `roleArn`s and `serviceIdentities`; not the identity the audit runs as.
//!
//! Which paths are *active* depends on the authentication mode: `CONFIG_MAP` reads only
//! aws-auth; `API` only access entries (aws-auth is still read when the tool can, and its paths
//! are listed as inactive: EKS ignores them, but they come back to life nowhere, since EKS
//! cannot move a cluster back from `API`); `API_AND_CONFIG_MAP` both, an access entry winning
//! over an aws-auth mapping of the same principal. Paths the authenticator never uses (an
//! earlier duplicate, a `mapRoles` ARN with a path) are inactive too. Only active paths count
//! towards the exit code.

pub mod classify;
mod read;
pub mod render;
#[cfg(test)]
mod run_tests;
mod source;
pub mod trust;
mod trusts;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

pub use classify::{AccessPolicy, Class, PathInput, Services, Source, Trusts};
pub use render::table;
pub use source::{ClusterSource, Described, EksSource, EntryRead, REQUIRED_LOG_TYPES};

use crate::fleet;
use crate::report::{ClusterReport, Outcome};
use crate::sync::App;
use read::{read_cluster, RawPath};
use trusts::TrustCache;

/// Exit code: every active path names a person, is a node, a machine or account-wide, or grants
/// no more than a node's groups, and every cluster logs `audit` and `authenticator`.
pub const EXIT_CLEAN: u8 = 0;
/// Exit code: a shared or self-declared path grants more than node groups, or a cluster lacks
/// `audit` or `authenticator` logging (after `--fix-logging`, if given and accepted).
pub const EXIT_FINDINGS: u8 = 3;
/// Exit code: a cluster (or a discovery region) could not be read; wins over
/// [`EXIT_FINDINGS`], since the audit is incomplete.
pub const EXIT_UNREADABLE: u8 = 4;

/// What the caller asks of the audit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditOptions {
    /// Enable `audit` and `authenticator` logging where either is off (UpdateClusterConfig).
    pub fix_logging: bool,
}

/// The direct invoke `{"action":"audit","fixLogging":bool}`: `None` when `input` asks for
/// something else, an error naming the field when it is malformed.
pub fn request(input: &Value) -> Option<Result<AuditOptions, String>> {
    let object = input.as_object()?;
    if object.get("action")?.as_str()? != "audit" {
        return None;
    }
    let mut options = AuditOptions::default();
    for (key, value) in object {
        match (key.as_str(), value) {
            ("action", _) => {}
            ("fixLogging", Value::Bool(fix)) => options.fix_logging = *fix,
            ("fixLogging", _) => {
                return Some(Err("audit: fixLogging must be true or false".into()))
            }
            (other, _) => return Some(Err(format!("audit: unknown field {other:?}"))),
        }
    }
    Some(Ok(options))
}

/// The whole audit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub clusters: Vec<ClusterAudit>,
    pub summary: Summary,
    /// What the audit could not know for the whole fleet (the function's role unset).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// [`EXIT_CLEAN`], [`EXIT_FINDINGS`] or [`EXIT_UNREADABLE`].
    pub exit_code: u8,
}

/// One cluster: its mode, its logging and every path into it; or why it could not be read.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAudit {
    pub cluster: String,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingState>,
    pub paths: Vec<PathReport>,
    /// What the audit could not read here without failing the cluster (an unreadable aws-auth
    /// key, aws-auth out of reach on an `API` cluster).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Set when the cluster could not be read; its paths are then unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The identity the cluster was read as (STS GetCallerIdentity): the operator's for the
    /// CLI, the function's (or its `roleArn`'s) for the Lambda. Not classed as a machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_arn: Option<String>,
}

/// Control-plane logging, and what `--fix-logging` did about it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggingState {
    pub enabled_types: Vec<String>,
    pub audit: bool,
    pub authenticator: bool,
    /// The types `--fix-logging` enabled (UpdateClusterConfig accepted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix_error: Option<String>,
}

impl LoggingState {
    /// Whether both required types are on, or being turned on by an accepted update.
    pub fn traceable(&self) -> bool {
        REQUIRED_LOG_TYPES
            .iter()
            .all(|t| self.enabled_types.iter().any(|e| e == t) || self.fixed.iter().any(|f| f == t))
    }
}

/// One path, classified.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathReport {
    pub source: Source,
    pub principal: String,
    pub username: String,
    pub groups: Vec<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub entry_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_policies: Vec<AccessPolicy>,
    pub class: Class,
    /// The rule that gave the class; for a self-declared path, how to pin its session name.
    pub why: String,
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inactive_reason: Option<String>,
    /// Grants groups beyond `system:bootstrappers`/`system:nodes`, or an access policy.
    pub beyond_node_groups: bool,
}

impl PathReport {
    /// An active shared or self-declared path that grants more than a node: what fails the
    /// audit. Either way the username does not tell who acted.
    pub fn is_finding(&self) -> bool {
        self.active
            && matches!(self.class, Class::Shared | Class::SelfDeclared)
            && self.beyond_node_groups
    }
}

/// The line a compliance pipeline reads.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub clusters: usize,
    pub unreadable: usize,
    pub paths: usize,
    pub active_paths: usize,
    /// Active shared paths, and those of them granting more than node groups.
    pub shared_paths: usize,
    pub shared_beyond_node_groups: usize,
    /// Active self-declared paths, and those of them granting more than node groups.
    pub self_declared_paths: usize,
    pub self_declared_beyond_node_groups: usize,
    pub without_audit_logging: usize,
    /// Active paths per class.
    pub by_class: BTreeMap<&'static str, usize>,
}

/// Audits the fleet, finishing before `deadline`. Never fails as a whole: a cluster or a
/// discovery region that cannot be read is reported as such, and the others are audited.
pub async fn run(app: &App, options: AuditOptions, deadline: Instant) -> AuditReport {
    // Discovery matches tags: a warm Lambda must not audit last quarter-hour's fleet.
    app.clusters.forget_cached();
    let fleet = tokio::time::timeout_at(
        deadline.into(),
        fleet::resolve(&app.config, app.clusters.as_ref()),
    )
    .await
    .unwrap_or_else(|_| fleet::Fleet {
        clusters: Vec::new(),
        failures: vec![ClusterReport::new("discovery", "-", Outcome::Failed)
            .with_reason("finding the clusters did not finish before the deadline")],
    });
    let services = Services::new(app.config.machine_identities());
    let cache = TrustCache::default();
    let reads = crate::sync::unordered(&fleet.clusters, app.config.max_concurrency, |cluster| {
        read_cluster(app, cluster, options, (&services, &cache), deadline)
    })
    .await;
    let wanted = reads
        .iter()
        .flat_map(|read| &read.paths)
        .filter(|raw| classify::needs_trust(&raw.input, &services))
        .map(|raw| raw.input.principal.as_str());
    let trusts = cache.finish(app, &reads, wanted, deadline).await;
    let mut clusters: Vec<ClusterAudit> = reads
        .into_iter()
        .map(|read| {
            let mut audit = read.audit;
            audit.paths = read
                .paths
                .into_iter()
                .map(|raw| report_path(raw, &services, &trusts))
                .collect();
            audit
        })
        .collect();
    clusters.extend(fleet.failures.into_iter().map(|failure| ClusterAudit {
        error: Some(failure.reason.unwrap_or_else(|| "discovery failed".into())),
        ..ClusterAudit::new(&failure.cluster, &failure.region, None)
    }));
    let summary = summarise(&clusters);
    let exit_code = exit_code(&summary);
    for cluster in &clusters {
        log_cluster(cluster);
    }
    let notes = if app.config.function_role.is_none() {
        vec![format!(
            "{} is not set: the function's own role is classed like any other role (set it to the stack's FunctionRoleArn output)",
            crate::config::ENV_FUNCTION_ROLE
        )]
    } else {
        Vec::new()
    };
    AuditReport {
        clusters,
        summary,
        notes,
        exit_code,
    }
}

impl ClusterAudit {
    pub(crate) fn new(cluster: &str, region: &str, role_arn: Option<String>) -> Self {
        Self {
            cluster: cluster.to_owned(),
            region: region.to_owned(),
            role_arn,
            authentication_mode: None,
            logging: None,
            paths: Vec::new(),
            notes: Vec::new(),
            error: None,
            caller_arn: None,
        }
    }
}

fn report_path(raw: RawPath, services: &Services, trusts: &Trusts) -> PathReport {
    let classified = classify::classify(&raw.input, services, trusts);
    let beyond = classify::beyond_node_groups(&raw.input);
    let input = raw.input;
    PathReport {
        source: input.source,
        principal: input.principal,
        username: input.username,
        groups: input.groups,
        entry_type: input.entry_type,
        access_policies: input.policies,
        class: classified.class,
        why: classified.why,
        active: raw.inactive.is_none(),
        inactive_reason: raw.inactive,
        beyond_node_groups: beyond,
    }
}

/// The summary of the clusters as reported.
pub fn summarise(clusters: &[ClusterAudit]) -> Summary {
    let mut summary = Summary {
        clusters: clusters.len(),
        ..Summary::default()
    };
    for class in Class::ALL {
        summary.by_class.insert(class.as_str(), 0);
    }
    for cluster in clusters {
        if cluster.error.is_some() {
            summary.unreadable += 1;
            continue;
        }
        if !cluster
            .logging
            .as_ref()
            .is_some_and(LoggingState::traceable)
        {
            summary.without_audit_logging += 1;
        }
        for path in &cluster.paths {
            summary.paths += 1;
            if !path.active {
                continue;
            }
            summary.active_paths += 1;
            *summary.by_class.entry(path.class.as_str()).or_default() += 1;
            let beyond = usize::from(path.beyond_node_groups);
            match path.class {
                Class::Shared => {
                    summary.shared_paths += 1;
                    summary.shared_beyond_node_groups += beyond;
                }
                Class::SelfDeclared => {
                    summary.self_declared_paths += 1;
                    summary.self_declared_beyond_node_groups += beyond;
                }
                _ => {}
            }
        }
    }
    summary
}

/// [`EXIT_UNREADABLE`] if any cluster could not be read, else [`EXIT_FINDINGS`] if any shared
/// or self-declared path grants more than node groups or any cluster lacks audit logging, else
/// [`EXIT_CLEAN`].
pub fn exit_code(summary: &Summary) -> u8 {
    if summary.unreadable > 0 {
        EXIT_UNREADABLE
    } else if summary.shared_beyond_node_groups > 0
        || summary.self_declared_beyond_node_groups > 0
        || summary.without_audit_logging > 0
    {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    }
}

/// One structured line per cluster, for CloudWatch Logs Insights.
fn log_cluster(cluster: &ClusterAudit) {
    let count = |class: Class| {
        cluster
            .paths
            .iter()
            .filter(|p| p.active && p.class == class)
            .count()
    };
    let findings = |class: Class| {
        cluster
            .paths
            .iter()
            .filter(|p| p.class == class && p.is_finding())
            .count()
    };
    let logging = cluster.logging.as_ref();
    tracing::info!(
        cluster = %cluster.cluster,
        region = %cluster.region,
        mode = cluster.authentication_mode.as_deref().unwrap_or(""),
        audit_log = logging.is_some_and(|l| l.audit),
        authenticator_log = logging.is_some_and(|l| l.authenticator),
        paths = cluster.paths.len(),
        shared = count(Class::Shared),
        shared_beyond_node_groups = findings(Class::Shared),
        self_declared = count(Class::SelfDeclared),
        self_declared_beyond_node_groups = findings(Class::SelfDeclared),
        per_person = count(Class::PerPerson),
        error = cluster.error.as_deref().unwrap_or(""),
        "cluster audited"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_invoke_is_recognised_and_checked() {
        assert_eq!(request(&serde_json::json!({"action": "reconcile"})), None);
        assert_eq!(
            request(&serde_json::json!({"action": "audit"})),
            Some(Ok(AuditOptions::default()))
        );
        assert_eq!(
            request(&serde_json::json!({"action": "audit", "fixLogging": true})),
            Some(Ok(AuditOptions { fix_logging: true }))
        );
        assert!(matches!(
            request(&serde_json::json!({"action": "audit", "fix": true})),
            Some(Err(_))
        ));
    }

    fn path(class: Class, active: bool, beyond: bool) -> PathReport {
        PathReport {
            source: Source::MapRoles,
            principal: "arn:aws:iam::123456789012:role/r".into(),
            username: "u".into(),
            groups: Vec::new(),
            entry_type: None,
            access_policies: Vec::new(),
            class,
            why: String::new(),
            active,
            inactive_reason: None,
            beyond_node_groups: beyond,
        }
    }

    fn cluster(paths: Vec<PathReport>, logging: &[&str]) -> ClusterAudit {
        ClusterAudit {
            logging: Some(LoggingState {
                enabled_types: logging.iter().map(|t| t.to_string()).collect(),
                audit: logging.contains(&"audit"),
                authenticator: logging.contains(&"authenticator"),
                fixed: Vec::new(),
                update_id: None,
                fix_error: None,
            }),
            paths,
            ..ClusterAudit::new("c", "us-east-1", None)
        }
    }

    #[test]
    fn the_exit_code_names_the_worst_finding() {
        let both = ["audit", "authenticator"];
        let clean = cluster(vec![path(Class::Shared, true, false)], &both);
        assert_eq!(
            exit_code(&summarise(std::slice::from_ref(&clean))),
            EXIT_CLEAN
        );
        let shared = cluster(vec![path(Class::Shared, true, true)], &both);
        assert_eq!(exit_code(&summarise(&[shared])), EXIT_FINDINGS);
        let self_declared = cluster(vec![path(Class::SelfDeclared, true, true)], &both);
        let summary = summarise(&[self_declared]);
        assert_eq!(
            (
                summary.self_declared_paths,
                summary.self_declared_beyond_node_groups
            ),
            (1, 1)
        );
        assert_eq!(exit_code(&summary), EXIT_FINDINGS);
        let within = cluster(vec![path(Class::SelfDeclared, true, false)], &both);
        assert_eq!(exit_code(&summarise(&[within])), EXIT_CLEAN);
        let inactive = cluster(vec![path(Class::Shared, false, true)], &both);
        assert_eq!(exit_code(&summarise(&[inactive])), EXIT_CLEAN);
        let half = cluster(Vec::new(), &["audit", "api"]);
        assert_eq!(
            exit_code(&summarise(std::slice::from_ref(&half))),
            EXIT_FINDINGS
        );
        let mut fixed = half;
        fixed.logging.as_mut().unwrap().fixed = vec!["authenticator".into()];
        assert_eq!(exit_code(&summarise(&[fixed])), EXIT_CLEAN);
        let broken = ClusterAudit {
            error: Some("down".into()),
            ..ClusterAudit::new("d", "us-east-1", None)
        };
        assert_eq!(exit_code(&summarise(&[clean, broken])), EXIT_UNREADABLE);
    }
}
