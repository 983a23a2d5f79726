//! What a run did, per cluster: the JSON result of an invocation and its log lines.
//!
//! One failing cluster never hides the others: each gets its own [`ClusterReport`], and the
//! invocation as a whole fails only when some cluster failed, so that Lambda's retry and
//! failure destination take exactly those runs.

use serde::Serialize;

/// The outcome of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The cluster already said what IAM says; nothing was written.
    Unchanged,
    /// mapUsers or access entries were written (or, in a dry run, would be).
    Updated,
    /// Some desired user already has an entry this tool does not own; everything else was applied.
    Conflict,
    /// The cluster was not touched on purpose (aws-auth absent and `createMissingAwsAuth`
    /// false).
    Skipped,
    /// The cluster could not be brought in step; `reason` says why. Nothing was lost.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Updated => "updated",
            Outcome::Conflict => "conflict",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

/// One cluster's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReport {
    pub cluster: String,
    pub region: String,
    pub outcome: Outcome,
    /// The store written: `configMap` (aws-auth) or `accessEntries`; absent when the cluster
    /// failed or was skipped before one was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<&'static str>,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    /// Owned entries removed from the store the cluster no longer uses for these users (in
    /// `API_AND_CONFIG_MAP`, the other of aws-auth and access entries), so that revoking in one
    /// store is not undone by a stale entry in the other.
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub retired: usize,
    /// ARNs of desired users whose existing entry belongs to someone else.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// In a dry run: the unified diff of mapUsers, or the access-entry changes, that would be
    /// written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Writes that lost a race with another writer (a 409 on aws-auth, an access entry created
    /// or deleted meanwhile) and were recomputed.
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// Entries written again after IAM was re-read and had changed since the run first read it
    /// (an overlapping run, a change during a reconcile); they are included in the counts above.
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub corrected: usize,
    pub duration_ms: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

impl ClusterReport {
    pub fn new(cluster: &str, region: &str, outcome: Outcome) -> Self {
        Self {
            cluster: cluster.to_string(),
            region: region.to_string(),
            outcome,
            backend: None,
            added: 0,
            removed: 0,
            changed: 0,
            retired: 0,
            conflicts: Vec::new(),
            reason: None,
            diff: None,
            retries: 0,
            corrected: 0,
            duration_ms: 0,
        }
    }

    /// Whether this cluster's store was changed (or, in a dry run, would be), including a
    /// partial write before a failure.
    pub fn wrote(&self) -> bool {
        self.added + self.removed + self.changed + self.retired > 0
    }

    /// Whether the store written now holds the users in scope: written, already right, or
    /// held by someone else's entry (a conflict). Not after a skip or a failure.
    pub fn holds_users(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Updated | Outcome::Unchanged | Outcome::Conflict
        )
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The report as failed for `reason`; the counts so far stay, to show how far it got.
    pub fn failed(mut self, reason: impl Into<String>) -> Self {
        self.outcome = Outcome::Failed;
        self.reason = Some(reason.into());
        self
    }

    /// Sets the outcome of a finished write: `otherwise`, unless some user was in conflict,
    /// which is reported even when everything else was applied.
    pub fn settle(&mut self, otherwise: Outcome) {
        self.outcome = if self.conflicts.is_empty() {
            otherwise
        } else {
            Outcome::Conflict
        };
    }
}

/// The result of one invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// `all`, or the IAM user names reconciled.
    pub trigger: String,
    pub dry_run: bool,
    /// Set when the input asked for no run (e.g. a failed IAM call); then `clusters` is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    /// How often IAM was read again after writing, to check the writes against its latest
    /// state (0 when nothing was written).
    #[serde(skip_serializing_if = "is_zero")]
    pub iam_rereads: u32,
    /// Users a revoking event (`RemoveUserFromGroup`, `DeleteUser`, a rename) named whom IAM
    /// still grants. IAM is eventually consistent, so the read may predate the change: the
    /// function reads them again later (a delayed follow-up), and the CLI says so.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recheck: Vec<String>,
    pub clusters: Vec<ClusterReport>,
}

impl Report {
    /// The clusters that failed, for the invocation's error.
    pub fn failed(&self) -> Vec<&ClusterReport> {
        self.clusters
            .iter()
            .filter(|c| c.outcome == Outcome::Failed)
            .collect()
    }

    /// One line naming each failed cluster and why, for Lambda's error message.
    pub fn failure_summary(&self) -> Option<String> {
        let failed = self.failed();
        (!failed.is_empty()).then(|| {
            let parts: Vec<String> = failed
                .iter()
                .map(|c| format!("{}: {}", c.cluster, c.reason.as_deref().unwrap_or("failed")))
                .collect();
            format!(
                "{} of {} clusters failed: {}",
                failed.len(),
                self.clusters.len(),
                parts.join("; ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcomes: &[Outcome]) -> Report {
        Report {
            event_id: Some("e1".into()),
            event_name: Some("AddUserToGroup".into()),
            trigger: "alice".into(),
            dry_run: false,
            ignored: None,
            iam_rereads: 0,
            recheck: Vec::new(),
            clusters: outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    ClusterReport::new(&format!("c{i}"), "us-east-1", *o).with_reason("boom")
                })
                .collect(),
        }
    }

    #[test]
    fn no_failure_means_no_summary() {
        assert_eq!(
            report(&[Outcome::Updated, Outcome::Skipped]).failure_summary(),
            None
        );
    }

    #[test]
    fn failure_summary_names_each_failed_cluster() {
        let summary = report(&[Outcome::Updated, Outcome::Failed])
            .failure_summary()
            .unwrap();
        assert_eq!(summary, "1 of 2 clusters failed: c1: boom");
    }

    #[test]
    fn outcome_serialises_lowercase() {
        let json = serde_json::to_value(ClusterReport::new("c", "r", Outcome::Conflict)).unwrap();
        assert_eq!(json["outcome"], "conflict");
        assert_eq!(json["durationMs"], 0);
        assert!(json.get("diff").is_none());
    }
}
