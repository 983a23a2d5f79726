//! A run's report as a person reads it at a terminal: the diffs of a dry run, then one line per
//! cluster. The JSON report (`--output json`, and always from the Lambda) carries the same facts
//! for machines; this view leaves out what a person does not need twice (a dry run's diffs are
//! shown once, not again inside JSON).

use crate::report::{ClusterReport, Report};

/// `name (region): outcome, added A, changed C, removed R[, retired N][, conflicts K: arns][ — reason]`.
pub fn summary_line(cluster: &ClusterReport) -> String {
    let mut line = format!(
        "{} ({}): {}, added {}, changed {}, removed {}",
        cluster.cluster,
        cluster.region,
        cluster.outcome.as_str(),
        cluster.added,
        cluster.changed,
        cluster.removed
    );
    if cluster.retired > 0 {
        line.push_str(&format!(", retired {}", cluster.retired));
    }
    if !cluster.conflicts.is_empty() {
        line.push_str(&format!(
            ", conflicts {}: {}",
            cluster.conflicts.len(),
            cluster.conflicts.join(" ")
        ));
    }
    if let Some(reason) = &cluster.reason {
        line.push_str(&format!(" — {reason}"));
    }
    line
}

/// The progress line of a cluster that finished: `[done/total] <summary line>`.
pub fn progress_line(cluster: &ClusterReport, done: usize, total: usize) -> String {
    format!("[{done}/{total}] {}", summary_line(cluster))
}

/// The whole report for a person: in a dry run each cluster's diff first, then a line per
/// cluster, then what the run leaves for later or ignored, and a closing count.
pub fn for_people(report: &Report) -> String {
    let mut out = String::new();
    if report.dry_run {
        for cluster in &report.clusters {
            if let Some(diff) = &cluster.diff {
                out.push_str(diff);
                if !diff.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        if report.clusters.iter().any(|c| c.diff.is_some()) {
            out.push('\n');
        }
    }
    if let Some(reason) = &report.ignored {
        out.push_str(&format!("ignored: {reason}\n"));
    }
    for cluster in &report.clusters {
        out.push_str(&summary_line(cluster));
        out.push('\n');
    }
    if !report.recheck.is_empty() {
        out.push_str(&format!(
            "still granted by IAM after a revoking event, to check again later: {}\n",
            report.recheck.join(", ")
        ));
    }
    let failed = report.failed().len();
    out.push_str(&format!(
        "{}{} clusters, {} failed{}\n",
        if report.dry_run { "dry run: " } else { "" },
        report.clusters.len(),
        failed,
        if report.dry_run {
            ", nothing written"
        } else {
            ""
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;

    fn cluster(name: &str, outcome: Outcome) -> ClusterReport {
        ClusterReport::new(name, "us-east-1", outcome)
    }

    fn report(dry_run: bool, clusters: Vec<ClusterReport>) -> Report {
        Report {
            event_id: None,
            event_name: Some("reconcile".into()),
            trigger: "all".into(),
            dry_run,
            ignored: None,
            iam_rereads: 0,
            recheck: Vec::new(),
            clusters,
        }
    }

    #[test]
    fn a_summary_line_names_outcome_counts_conflicts_and_reason() {
        let mut c = cluster("prod", Outcome::Conflict);
        c.added = 2;
        c.removed = 1;
        c.conflicts = vec!["arn:aws:iam::123456789012:user/bob".into()];
        assert_eq!(
            summary_line(&c),
            "prod (us-east-1): conflict, added 2, changed 0, removed 1, conflicts 1: arn:aws:iam::123456789012:user/bob"
        );
        let failed = cluster("dev", Outcome::Failed).with_reason("DescribeCluster: throttled");
        assert_eq!(
            summary_line(&failed),
            "dev (us-east-1): failed, added 0, changed 0, removed 0 — DescribeCluster: throttled"
        );
    }

    #[test]
    fn a_dry_run_shows_each_diff_once_then_one_line_per_cluster() {
        let mut a = cluster("a", Outcome::Updated);
        a.added = 1;
        a.diff = Some("--- a\n+++ a\n+alice\n".into());
        let b = cluster("b", Outcome::Unchanged);
        let text = for_people(&report(true, vec![a, b]));
        assert_eq!(
            text,
            "--- a\n+++ a\n+alice\n\n\
             a (us-east-1): updated, added 1, changed 0, removed 0\n\
             b (us-east-1): unchanged, added 0, changed 0, removed 0\n\
             dry run: 2 clusters, 0 failed, nothing written\n"
        );
        assert_eq!(text.matches("+alice").count(), 1);
        assert!(!text.contains('{'), "no JSON for people: {text}");
    }

    #[test]
    fn a_real_run_counts_failures_and_names_rechecks() {
        let mut r = report(
            false,
            vec![cluster("a", Outcome::Failed).with_reason("timeout")],
        );
        r.recheck = vec!["alice".into()];
        let text = for_people(&r);
        assert!(text.contains("to check again later: alice\n"), "{text}");
        assert!(text.ends_with("1 clusters, 1 failed\n"), "{text}");
    }

    #[test]
    fn progress_lines_count_the_clusters_done() {
        assert_eq!(
            progress_line(&cluster("a", Outcome::Unchanged), 3, 12),
            "[3/12] a (us-east-1): unchanged, added 0, changed 0, removed 0"
        );
    }
}
