//! The retry loop every writer shares: read, decide, write; when another writer got in between
//! (a 409 on aws-auth, an access entry created or deleted meanwhile), back off, re-read and
//! decide again, so nothing is lost and nothing is overwritten blindly.
//!
//! Throttling and transient errors of the AWS API are retried by the SDK itself (its standard
//! retry mode) and are not races; only what a writer recognises as a race comes back here.

use std::future::Future;
use std::time::Duration;

use crate::report::ClusterReport;

/// Tries of one cluster's read-decide-write cycle before giving up on races. Default 5.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// What one read-decide-write attempt ended in.
pub enum Attempt {
    /// Finished: written, nothing to write, or failed for good.
    Done(ClusterReport),
    /// Another writer changed the store after it was read; the report so far.
    Raced(ClusterReport),
}

/// Runs `attempt` until it is done, at most `max_attempts` times, and records the retries.
/// `store` names what raced in the log line and the final error (`aws-auth`, `access entries`).
pub async fn until_settled<F, Fut>(
    store: &str,
    cluster: &str,
    max_attempts: u32,
    mut attempt: F,
) -> ClusterReport
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt>,
{
    let max_attempts = max_attempts.max(1);
    let mut last = None;
    for n in 1..=max_attempts {
        match attempt().await {
            Attempt::Done(mut report) => {
                report.retries = n - 1;
                return report;
            }
            Attempt::Raced(report) => {
                last = Some(report);
                if n < max_attempts {
                    let delay = backoff(n);
                    tracing::info!(
                        cluster,
                        store,
                        attempt = n,
                        delay_ms = delay.as_millis() as u64,
                        "changed since it was read; re-reading"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
    let mut report = last.expect("at least one attempt ran");
    report.retries = max_attempts - 1;
    report.failed(format!(
        "{store} kept changing under us: gave up after {max_attempts} conflicting writes"
    ))
}

/// Jittered exponential backoff: 50 ms, 100 ms, 200 ms, ... capped at 1 s, each +-50%.
pub fn backoff(attempt: u32) -> Duration {
    let base = 50u64
        .saturating_mul(1 << attempt.min(5).saturating_sub(1))
        .min(1000);
    Duration::from_millis(base / 2 + fastrand::u64(0..=base))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 1..20 {
            let d = backoff(attempt);
            assert!(d <= Duration::from_millis(1500), "attempt {attempt}: {d:?}");
            assert!(d >= Duration::from_millis(25), "attempt {attempt}: {d:?}");
        }
        assert!(backoff(1) <= Duration::from_millis(75));
    }

    #[tokio::test]
    async fn a_race_is_retried_and_counted() {
        let mut races = 2;
        let report = until_settled("aws-auth", "c", 5, || {
            let raced = races > 0;
            races -= 1;
            async move {
                let report = ClusterReport::new("c", "", Outcome::Updated);
                if raced {
                    Attempt::Raced(report)
                } else {
                    Attempt::Done(report)
                }
            }
        })
        .await;
        assert_eq!(report.outcome, Outcome::Updated);
        assert_eq!(report.retries, 2);
    }

    #[tokio::test]
    async fn endless_races_fail_naming_the_store() {
        let report = until_settled("access entries", "c", 2, || async {
            Attempt::Raced(ClusterReport::new("c", "", Outcome::Updated))
        })
        .await;
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(report.retries, 1);
        let reason = report.reason.unwrap();
        assert!(reason.contains("access entries kept changing"), "{reason}");
    }
}
