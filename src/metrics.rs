//! CloudWatch metrics of a run, in the embedded metric format (EMF): JSON lines that CloudWatch
//! Logs turns into metrics as the function's log group receives them, so alarms and the
//! dashboard cost no API call and no permission (`cloudwatch:PutMetricData` is not granted).
//!
//! Two documents per run, each one line:
//! - the run: `Runs`, `Clusters`, `EntriesAdded`, `EntriesChanged`, `EntriesRemoved`,
//!   `Conflicts`, `Retries`, `FailedClusters`, `Duration` (ms), and for a full reconcile
//!   `FullReconcileSucceeded` (1 when no cluster failed, else 0: the heartbeat alarm's metric),
//!   by `RunType` (`fullReconcile`, `users`, `roles`) and without dimensions;
//! - the clusters by outcome: `Clusters` with the dimension `Outcome`, every outcome every run
//!   (zeros included), so an alarm on `failed` always has data.
//!
//! No cluster dimension: a fleet can have hundreds of clusters and discovery changes them, and
//! each dimension value is a metric billed of its own. The per-cluster facts are in the log
//! line of each cluster (see the README's Logs Insights queries).
//!
//! Specification: "Specification: Embedded metric format" in the Amazon CloudWatch User Guide;
//! `tests/metrics_schema.rs` validates these lines against the schema published there.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::report::{Outcome, Report};

/// The namespace when `EKS_IAM_SYNC_METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "EksIamSync";

/// Every metric name the documents carry, for the dashboard and alarm checks.
pub const METRIC_NAMES: [&str; 10] = [
    "Runs",
    "Clusters",
    "EntriesAdded",
    "EntriesChanged",
    "EntriesRemoved",
    "Conflicts",
    "Retries",
    "FailedClusters",
    "Duration",
    "FullReconcileSucceeded",
];

const OUTCOMES: [Outcome; 5] = [
    Outcome::Unchanged,
    Outcome::Updated,
    Outcome::Conflict,
    Outcome::Skipped,
    Outcome::Failed,
];

/// What kind of run a report is, for the `RunType` dimension (three values, bounded).
fn run_type(report: &Report) -> &'static str {
    if report.trigger == "all" {
        "fullReconcile"
    } else if report.trigger.starts_with("roles:") {
        "roles"
    } else {
        "users"
    }
}

/// The EMF documents of one finished run; none for a dry run (it changes nothing) or a run that
/// was ignored.
pub fn documents(
    report: &Report,
    took: Duration,
    namespace: &str,
    timestamp_ms: u64,
) -> Vec<Value> {
    if report.dry_run || report.ignored.is_some() {
        return Vec::new();
    }
    let run_type = run_type(report);
    let sum = |f: fn(&crate::report::ClusterReport) -> usize| -> usize {
        report.clusters.iter().map(f).sum()
    };
    let failed = report.failed().len();
    let mut values: Vec<(&str, &str, Value)> = vec![
        ("Runs", "Count", json!(1)),
        ("Clusters", "Count", json!(report.clusters.len())),
        ("EntriesAdded", "Count", json!(sum(|c| c.added))),
        ("EntriesChanged", "Count", json!(sum(|c| c.changed))),
        (
            "EntriesRemoved",
            "Count",
            json!(sum(|c| c.removed + c.retired)),
        ),
        ("Conflicts", "Count", json!(sum(|c| c.conflicts.len()))),
        ("Retries", "Count", json!(sum(|c| c.retries as usize))),
        ("FailedClusters", "Count", json!(failed)),
        ("Duration", "Milliseconds", json!(took.as_millis() as u64)),
    ];
    if run_type == "fullReconcile" {
        values.push((
            "FullReconcileSucceeded",
            "Count",
            json!(u8::from(failed == 0)),
        ));
    }
    let run = document(
        namespace,
        timestamp_ms,
        &[vec!["RunType"], vec![]],
        &[("RunType", run_type)],
        &values,
    );
    let outcomes = OUTCOMES.iter().map(|outcome| {
        let count = report
            .clusters
            .iter()
            .filter(|c| c.outcome == *outcome)
            .count();
        document(
            namespace,
            timestamp_ms,
            &[vec!["Outcome"]],
            &[("Outcome", outcome.as_str())],
            &[("Clusters", "Count", json!(count))],
        )
    });
    std::iter::once(run).chain(outcomes).collect()
}

/// One EMF document: the `_aws` metadata naming the metrics, then the dimension values and the
/// metric values as top-level members.
fn document(
    namespace: &str,
    timestamp_ms: u64,
    dimension_sets: &[Vec<&str>],
    dimensions: &[(&str, &str)],
    values: &[(&str, &str, Value)],
) -> Value {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": dimension_sets,
                "Metrics": values
                    .iter()
                    .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).into(), json!(value));
    }
    for (name, _, value) in values {
        root.insert((*name).into(), value.clone());
    }
    Value::Object(root)
}

/// The namespace from `EKS_IAM_SYNC_METRICS_NAMESPACE`, or [`DEFAULT_NAMESPACE`].
pub fn namespace_from_env() -> String {
    std::env::var("EKS_IAM_SYNC_METRICS_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ClusterReport;

    pub(crate) fn report(trigger: &str, clusters: Vec<ClusterReport>) -> Report {
        Report {
            event_id: None,
            event_name: None,
            trigger: trigger.into(),
            dry_run: false,
            ignored: None,
            iam_rereads: 0,
            recheck: Vec::new(),
            clusters,
        }
    }

    #[test]
    fn a_full_reconcile_counts_entries_outcomes_and_beats_the_heartbeat() {
        let mut a = ClusterReport::new("a", "us-east-1", Outcome::Updated);
        a.added = 2;
        a.retries = 1;
        let mut b = ClusterReport::new("b", "us-east-1", Outcome::Conflict);
        b.removed = 1;
        b.retired = 1;
        b.conflicts = vec!["arn:aws:iam::123456789012:user/x".into()];
        let docs = documents(
            &report("all", vec![a, b]),
            Duration::from_millis(1234),
            "Ns",
            7,
        );
        assert_eq!(docs.len(), 1 + OUTCOMES.len());
        let run = &docs[0];
        assert_eq!(run["RunType"], "fullReconcile");
        assert_eq!(
            (
                &run["EntriesAdded"],
                &run["EntriesRemoved"],
                &run["Conflicts"],
                &run["Retries"],
                &run["Duration"],
                &run["FullReconcileSucceeded"]
            ),
            (
                &json!(2),
                &json!(2),
                &json!(1),
                &json!(1),
                &json!(1234),
                &json!(1)
            )
        );
        assert_eq!(run["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Ns");
        assert_eq!(
            run["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["RunType"], []])
        );
        let by_outcome: Vec<(String, u64)> = docs[1..]
            .iter()
            .map(|d| {
                (
                    d["Outcome"].as_str().unwrap().to_owned(),
                    d["Clusters"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            by_outcome,
            [
                ("unchanged".into(), 0),
                ("updated".into(), 1),
                ("conflict".into(), 1),
                ("skipped".into(), 0),
                ("failed".into(), 0)
            ]
        );
    }

    #[test]
    fn a_failed_cluster_fails_the_heartbeat_and_events_have_none() {
        let failed = ClusterReport::new("a", "us-east-1", Outcome::Failed).with_reason("x");
        let docs = documents(
            &report("all", vec![failed.clone()]),
            Duration::ZERO,
            "Ns",
            0,
        );
        assert_eq!(docs[0]["FullReconcileSucceeded"], 0);
        assert_eq!(docs[0]["FailedClusters"], 1);
        let event = documents(&report("alice", vec![failed]), Duration::ZERO, "Ns", 0);
        assert_eq!(event[0]["RunType"], "users");
        assert!(event[0].get("FullReconcileSucceeded").is_none());
        assert_eq!(
            documents(&report("roles:x", vec![]), Duration::ZERO, "Ns", 0)[0]["RunType"],
            "roles"
        );
    }

    #[test]
    fn dry_and_ignored_runs_emit_nothing() {
        let mut dry = report("all", vec![]);
        dry.dry_run = true;
        assert!(documents(&dry, Duration::ZERO, "Ns", 0).is_empty());
        let mut ignored = report("none", vec![]);
        ignored.ignored = Some("failed call".into());
        assert!(documents(&ignored, Duration::ZERO, "Ns", 0).is_empty());
    }

    #[test]
    fn every_emitted_metric_is_a_listed_name() {
        let docs = documents(
            &report("all", vec![ClusterReport::new("a", "r", Outcome::Updated)]),
            Duration::ZERO,
            "Ns",
            0,
        );
        for doc in docs {
            for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
            {
                assert!(METRIC_NAMES.contains(&metric["Name"].as_str().unwrap()));
            }
        }
    }
}
