//! Progress of a run as each cluster finishes, for a person watching a terminal.
//!
//! The fan-out is shared by the Lambda, the CLI and the tests, and only a person at a terminal
//! wants a line per cluster while a long run goes on. So progress is a scoped observer: the
//! CLI runs the reconcile inside [`observed`], and the fan-out tells whoever observes (nobody,
//! elsewhere) about each cluster as it finishes. Nothing else changes: no field every caller
//! must set, and no output where nobody looks.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use eks_iam_sync::progress;
//! let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
//! let sink = seen.clone();
//! progress::observed(move |p| sink.lock().unwrap().push(p.done), async {
//!     // ... a run ...
//! })
//! .await;
//! # });
//! ```

use std::future::Future;
use std::sync::Arc;

use crate::report::ClusterReport;

/// One cluster finished: its report, and how many of the run's clusters are done so far.
pub struct Progress<'a> {
    pub report: &'a ClusterReport,
    pub done: usize,
    pub total: usize,
}

type Observer = Arc<dyn Fn(Progress<'_>) + Send + Sync>;

tokio::task_local! {
    static OBSERVER: Observer;
}

/// Runs `future`, calling `observer` for each cluster the run's fan-out finishes (in the order
/// they finish). The fan-out polls its clusters in this task, so they all see the observer.
pub async fn observed<F: Future>(
    observer: impl Fn(Progress<'_>) + Send + Sync + 'static,
    future: F,
) -> F::Output {
    OBSERVER.scope(Arc::new(observer), future).await
}

/// Tells the observer, if any, that a cluster finished.
pub(crate) fn finished(report: &ClusterReport, done: usize, total: usize) {
    let _ = OBSERVER.try_with(|observe| {
        observe(Progress {
            report,
            done,
            total,
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;
    use std::sync::Mutex;

    #[tokio::test]
    async fn the_observer_sees_each_finished_cluster_and_nobody_else_does() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let report = ClusterReport::new("a", "us-east-1", Outcome::Updated);
        observed(
            move |p| {
                sink.lock()
                    .unwrap()
                    .push((p.report.cluster.clone(), p.done, p.total))
            },
            async { finished(&report, 1, 2) },
        )
        .await;
        // Outside the scope: no observer, nothing happens.
        finished(&report, 2, 2);
        assert_eq!(*seen.lock().unwrap(), [("a".to_string(), 1, 2)]);
    }
}
