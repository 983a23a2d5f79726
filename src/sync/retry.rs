//! The retry loop every writer shares: read, decide, write; when another writer got in between
//! (a 409 on aws-auth, a ConfigMap deleted since it was read, an access entry created or
//! deleted meanwhile), back off, re-read and decide again, so nothing is lost and nothing is
//! overwritten blindly. A store that is briefly unwell (429, 5xx, a reset connection) is tried
//! again too, but fewer times: a cluster that stays down must fail and be reported, not hold
//! the run.
//!
//! Every wait is bounded by the run's deadline, so a cluster never outlives the invocation.
//! Throttling and transient errors of the AWS APIs are retried by the SDK itself (its standard
//! retry mode, see [`crate::aws`]); only what a writer recognises comes back here.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use eks_iam_sync::sync::retry::Limits;
//!
//! let limits = Limits::until(Instant::now() + Duration::from_secs(30));
//! assert_eq!(limits.max_races, eks_iam_sync::sync::retry::DEFAULT_MAX_ATTEMPTS);
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

use crate::report::ClusterReport;

/// Tries of one cluster's read-decide-write cycle that may lose a race before giving up.
/// Default 10: a storm of concurrent writers on one aws-auth settles well within that, with the
/// jittered backoff spreading them out.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// Transient failures (429, 5xx, connection errors) tolerated per cluster. Default 4, about
/// 1.5 s of backoff: enough for a throttling burst or a restarting API server, short enough
/// that a cluster that is really down fails fast and leaves the time to the others.
pub const DEFAULT_MAX_TRANSIENT: u32 = 4;
/// The longest `Retry-After` honoured; a server asking for more is treated as down.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long and how often one cluster's writer may keep trying.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_races: u32,
    pub max_transient: u32,
    /// No retry starts unless its backoff ends before this instant.
    pub deadline: Instant,
}

impl Limits {
    /// The default counts, bounded by `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Self {
            max_races: DEFAULT_MAX_ATTEMPTS,
            max_transient: DEFAULT_MAX_TRANSIENT,
            deadline,
        }
    }
}

/// What one read-decide-write attempt ended in.
pub enum Attempt {
    /// Finished: written, nothing to write, or failed for good.
    Done(ClusterReport),
    /// Another writer changed the store after it was read; the report so far.
    Raced(ClusterReport),
    /// The store answered with a transient error; try again after `retry_after` (the server's
    /// hint) or the backoff.
    Transient {
        report: ClusterReport,
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// Runs `attempt` until it is done or the limits are reached, and records the retries.
/// `store` names what raced in the log line and the final error (`aws-auth`, `access entries`).
pub async fn until_settled<F, Fut>(
    store: &str,
    cluster: &str,
    limits: Limits,
    mut attempt: F,
) -> ClusterReport
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt>,
{
    let max_races = limits.max_races.max(1);
    let (mut races, mut transients, mut tries) = (0u32, 0u32, 0u32);
    loop {
        tries += 1;
        let (report, delay, why) = match attempt().await {
            Attempt::Done(mut report) => {
                report.retries = tries - 1;
                return report;
            }
            Attempt::Raced(report) => {
                races += 1;
                if races >= max_races {
                    return give_up(
                        report,
                        tries,
                        format!(
                            "{store} kept changing under us: gave up after {races} conflicting writes"
                        ),
                    );
                }
                (
                    report,
                    backoff(races),
                    "changed since it was read".to_string(),
                )
            }
            Attempt::Transient {
                report,
                reason,
                retry_after,
            } => {
                transients += 1;
                if transients > limits.max_transient {
                    return give_up(
                        report,
                        tries,
                        format!("{reason} (gave up after {tries} tries)"),
                    );
                }
                let delay = match retry_after {
                    Some(hint) if hint > MAX_RETRY_AFTER => {
                        return give_up(
                            report,
                            tries,
                            format!(
                                "{reason} (the server asked to retry after {} s)",
                                hint.as_secs()
                            ),
                        )
                    }
                    Some(hint) => hint,
                    None => backoff(transients),
                };
                (report, delay, reason)
            }
        };
        if Instant::now() + delay >= limits.deadline {
            return give_up(
                report,
                tries,
                format!("{why}; no time left before the run's deadline to try again"),
            );
        }
        tracing::info!(
            cluster,
            store,
            attempt = tries,
            delay_ms = delay.as_millis() as u64,
            reason = %why,
            "retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

fn give_up(mut report: ClusterReport, tries: u32, reason: String) -> ClusterReport {
    report.retries = tries - 1;
    report.failed(reason)
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

    fn limits() -> Limits {
        Limits::until(Instant::now() + Duration::from_secs(60))
    }

    fn updated() -> ClusterReport {
        ClusterReport::new("c", "", Outcome::Updated)
    }

    fn transient(retry_after: Option<Duration>) -> Attempt {
        Attempt::Transient {
            report: updated(),
            reason: "Kubernetes API 503".into(),
            retry_after,
        }
    }

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
        let report = until_settled("aws-auth", "c", limits(), || {
            let raced = races > 0;
            races -= 1;
            async move {
                if raced {
                    Attempt::Raced(updated())
                } else {
                    Attempt::Done(updated())
                }
            }
        })
        .await;
        assert_eq!(report.outcome, Outcome::Updated);
        assert_eq!(report.retries, 2);
    }

    #[tokio::test]
    async fn endless_races_fail_naming_the_store() {
        let limits = Limits {
            max_races: 2,
            ..limits()
        };
        let report = until_settled("access entries", "c", limits, || async {
            Attempt::Raced(updated())
        })
        .await;
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(report.retries, 1);
        let reason = report.reason.unwrap();
        assert!(reason.contains("access entries kept changing"), "{reason}");
    }

    #[tokio::test]
    async fn transient_errors_are_retried_a_few_times_then_fail_with_their_reason() {
        let mut tries = 0;
        let report = until_settled("aws-auth", "c", limits(), || {
            tries += 1;
            async { transient(None) }
        })
        .await;
        assert_eq!(tries, DEFAULT_MAX_TRANSIENT + 1);
        assert_eq!(report.outcome, Outcome::Failed);
        let reason = report.reason.unwrap();
        assert!(reason.contains("Kubernetes API 503"), "{reason}");
        assert!(reason.contains("gave up after 5 tries"), "{reason}");
    }

    #[tokio::test]
    async fn a_transient_error_then_success_settles() {
        let mut first = true;
        let report = until_settled("aws-auth", "c", limits(), || {
            let fail = std::mem::take(&mut first);
            async move {
                if fail {
                    transient(Some(Duration::from_millis(10)))
                } else {
                    Attempt::Done(updated())
                }
            }
        })
        .await;
        assert_eq!(report.outcome, Outcome::Updated);
        assert_eq!(report.retries, 1);
    }

    #[tokio::test]
    async fn no_retry_starts_that_would_end_after_the_deadline() {
        let limits = Limits::until(Instant::now() + Duration::from_millis(20));
        let report = until_settled("aws-auth", "c", limits, || async {
            transient(Some(Duration::from_secs(1)))
        })
        .await;
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(report.retries, 0);
        assert!(report.reason.unwrap().contains("deadline"));
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_cap_fails_at_once() {
        let report = until_settled("aws-auth", "c", limits(), || async {
            transient(Some(Duration::from_secs(60)))
        })
        .await;
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(report.retries, 0);
        assert!(report.reason.unwrap().contains("retry after 60 s"));
    }
}
