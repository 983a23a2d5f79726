//! Work a run leaves for later, as a message on the retry queue: the clusters that failed, and
//! the users a revoking event still found granted.
//!
//! Events arrive on a FIFO queue with one message group, so that runs never overlap in AWS. A
//! FIFO group stalls while its head message keeps failing, so a batch whose run reached some
//! clusters but not others is *not* failed: the run's remaining work becomes a follow-up
//! message on a standard queue (which, unlike FIFO, delays each message on its own, up to
//! [`MAX_DELAY_SECONDS`]), and the event queue moves on. A follow-up carries its attempt number;
//! after [`RetryPolicy::max_attempts`] it goes to the dead-letter queue instead, where an alarm
//! sees it. IAM is re-read by every attempt, so a follow-up is only a hint, like an event.
//!
//! IAM is eventually consistent: a `RemoveUserFromGroup` event can still read the old
//! membership. When a revoking event finds IAM still granting, the same mechanism schedules a
//! delayed re-check of those users ([`Reason::Recheck`]).
//!
//! Everything here is pure: [`plan`] turns a run's outcome into the messages to send.
//!
//! ```
//! use eks_iam_sync::follow_up::RetryPolicy;
//!
//! let policy = RetryPolicy::default();
//! assert_eq!(policy.delay_seconds(1), 30);
//! assert_eq!(policy.delay_seconds(20), 900);
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::desired::Desired;
use crate::event::{Invocation, Trigger};
use crate::fleet::Fleet;
use crate::report::{ClusterReport, Report};

/// SQS's limit for a message's `DelaySeconds` (standard queues only).
pub const MAX_DELAY_SECONDS: u32 = 900;

/// The name prefix of the report entries for discovery regions that could not be listed.
const DISCOVERY_PREFIX: &str = "discovery[";

/// One cluster, as a report names it. The account is not part of it (a report does not carry
/// it), so two clusters of the same name and region in two accounts are retried together:
/// harmless, since a run that finds nothing to change writes nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterId {
    pub name: String,
    pub region: String,
}

/// The clusters a follow-up run may touch; a run without one touches the whole fleet.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClusterFilter(pub BTreeSet<ClusterId>);

impl ClusterFilter {
    pub fn covers(&self, name: &str, region: &str) -> bool {
        self.0.iter().any(|c| c.name == name && c.region == region)
    }

    /// The part of `fleet` the filter covers: its clusters and their failures, and the
    /// discovery failures of its regions (a cluster found in a region that can no longer be
    /// listed is missing from the fleet, and that is what the run must report).
    pub fn apply(&self, fleet: Fleet) -> Fleet {
        let regions: BTreeSet<&str> = self.0.iter().map(|c| c.region.as_str()).collect();
        let failure_covered = |report: &ClusterReport| {
            self.covers(&report.cluster, &report.region)
                || (report.cluster.starts_with(DISCOVERY_PREFIX)
                    && regions.contains(report.region.as_str()))
        };
        Fleet {
            clusters: fleet
                .clusters
                .into_iter()
                .filter(|c| self.covers(&c.name, &c.region))
                .collect(),
            failures: fleet.failures.into_iter().filter(failure_covered).collect(),
        }
    }

    pub fn union(&mut self, other: &ClusterFilter) {
        self.0.extend(other.0.iter().cloned());
    }
}

/// Why a follow-up was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// Some clusters failed; only they are retried.
    ClustersFailed,
    /// A revoking event found IAM still granting these users; read IAM again later.
    Recheck,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ClustersFailed => "clustersFailed",
            Reason::Recheck => "recheck",
        }
    }
}

/// The body of a follow-up message: `{"action": "followUp", ...}`, a direct invoke like
/// `{"action": "reconcile"}`, so the same parser reads it wherever it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FollowUp {
    pub action: FollowUpAction,
    pub reason: Reason,
    /// 1 for the first follow-up of an event, n + 1 for the follow-up of attempt n.
    pub attempt: u32,
    /// The IAM users to recompute; absent: every mapped group (a full reconcile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<BTreeSet<String>>,
    /// The clusters to touch; absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<ClusterFilter>,
    /// The event ids of the run that left this work, for the logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// The `action` of a follow-up; one value, so that serde checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FollowUpAction {
    #[serde(rename = "followUp")]
    FollowUp,
}

impl FollowUp {
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("a follow-up serialises")
    }
}

/// A follow-up ready to send: to the retry queue after `delay_seconds`, or to the dead-letter
/// queue when its attempts are used up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub message: FollowUp,
    pub delay_seconds: u32,
    pub dead_letter: bool,
}

/// How follow-ups back off and when they give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Follow-ups with a higher attempt number go to the dead-letter queue. Default 8: with the
    /// default delays, about an hour of retries, the default reconcile interval.
    pub max_attempts: u32,
    /// Delay of attempt 1; each later attempt doubles it. Default 30 s.
    pub base_delay_seconds: u32,
    /// Cap of the delay. Default (and at most) [`MAX_DELAY_SECONDS`].
    pub max_delay_seconds: u32,
    /// Delay before a re-check reads IAM again. Default 30 s: IAM changes usually show
    /// everywhere within seconds.
    pub recheck_delay_seconds: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay_seconds: 30,
            max_delay_seconds: MAX_DELAY_SECONDS,
            recheck_delay_seconds: 30,
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff without jitter: one follow-up per run, so nothing stampedes, and a
    /// fixed schedule is easier to read in the logs.
    pub fn delay_seconds(&self, attempt: u32) -> u32 {
        let doubled = self.base_delay_seconds.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        doubled.min(self.max_delay_seconds).min(MAX_DELAY_SECONDS)
    }
}

/// The users a revoking event named that IAM still grants (case-insensitively, as IAM compares
/// names): the read may predate the change, so they are re-checked later.
pub fn still_granted(desired: &Desired, revoked: &BTreeSet<String>) -> Vec<String> {
    revoked
        .iter()
        .filter(|name| {
            desired
                .entries
                .keys()
                .any(|arn| arn.user_name().eq_ignore_ascii_case(name))
        })
        .cloned()
        .collect()
}

/// The follow-ups a finished run calls for: one for its failed clusters (all clusters when a
/// discovery region failed, since its clusters are unknown), one re-check of the users it
/// found still granted. A dry run leaves nothing behind.
pub fn plan(invocation: &Invocation, report: &Report, policy: &RetryPolicy) -> Vec<Planned> {
    if invocation.dry_run {
        return Vec::new();
    }
    let attempt = invocation.attempt.saturating_add(1);
    let dead_letter = attempt > policy.max_attempts;
    let cause = invocation.event_id.clone();
    let mut planned = Vec::new();
    let failed = report.failed();
    if !failed.is_empty() {
        let clusters = (!failed
            .iter()
            .any(|c| c.cluster.starts_with(DISCOVERY_PREFIX)))
        .then(|| {
            ClusterFilter(
                failed
                    .iter()
                    .map(|c| ClusterId {
                        name: c.cluster.clone(),
                        region: c.region.clone(),
                    })
                    .collect(),
            )
        });
        planned.push(Planned {
            message: FollowUp {
                action: FollowUpAction::FollowUp,
                reason: Reason::ClustersFailed,
                attempt,
                users: match &invocation.trigger {
                    Trigger::Users(names) => Some(names.clone()),
                    // A role run is retried as a full reconcile of those clusters: a superset.
                    Trigger::Roles(_) | Trigger::All => None,
                },
                clusters,
                cause: cause.clone(),
            },
            delay_seconds: policy.delay_seconds(attempt),
            dead_letter,
        });
    }
    if !report.recheck.is_empty() {
        planned.push(Planned {
            message: FollowUp {
                action: FollowUpAction::FollowUp,
                reason: Reason::Recheck,
                attempt,
                users: Some(report.recheck.iter().cloned().collect()),
                clusters: invocation.clusters.clone(),
                cause,
            },
            delay_seconds: policy.recheck_delay_seconds.min(MAX_DELAY_SECONDS),
            dead_letter,
        });
    }
    planned
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::ClusterRef;
    use crate::desired::{Mapping, Scope, UserArn};
    use crate::report::Outcome;
    use proptest::prelude::*;

    fn id(name: &str, region: &str) -> ClusterId {
        ClusterId {
            name: name.into(),
            region: region.into(),
        }
    }

    fn users(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn invocation(trigger: Trigger) -> Invocation {
        Invocation {
            event_id: Some("e1".into()),
            ..Invocation::new(trigger)
        }
    }

    fn report(outcomes: &[(&str, Outcome)]) -> Report {
        Report {
            event_id: None,
            event_name: None,
            trigger: "x".into(),
            dry_run: false,
            ignored: None,
            iam_rereads: 0,
            recheck: Vec::new(),
            clusters: outcomes
                .iter()
                .map(|(name, o)| ClusterReport::new(name, "eu-west-1", *o).with_reason("down"))
                .collect(),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_sqs_limit() {
        let policy = RetryPolicy::default();
        let delays: Vec<u32> = (1..=8).map(|a| policy.delay_seconds(a)).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 900, 900, 900]);
        assert_eq!(policy.delay_seconds(u32::MAX), 900);
        let zero = RetryPolicy {
            base_delay_seconds: 0,
            ..policy
        };
        assert_eq!(zero.delay_seconds(5), 0);
    }

    #[test]
    fn failed_clusters_become_one_follow_up_for_just_them() {
        let run = invocation(Trigger::Users(users(&["alice", "bob"])));
        let outcome = report(&[
            ("a", Outcome::Updated),
            ("b", Outcome::Failed),
            ("c", Outcome::Failed),
        ]);
        let planned = plan(&run, &outcome, &RetryPolicy::default());
        assert_eq!(planned.len(), 1);
        let follow_up = &planned[0];
        assert_eq!(follow_up.delay_seconds, 30);
        assert!(!follow_up.dead_letter);
        assert_eq!(follow_up.message.attempt, 1);
        assert_eq!(follow_up.message.reason, Reason::ClustersFailed);
        assert_eq!(follow_up.message.users, Some(users(&["alice", "bob"])));
        assert_eq!(follow_up.message.cause.as_deref(), Some("e1"));
        assert_eq!(
            follow_up.message.clusters,
            Some(ClusterFilter(
                [id("b", "eu-west-1"), id("c", "eu-west-1")].into()
            ))
        );
    }

    #[test]
    fn a_failed_discovery_retries_every_cluster() {
        let run = invocation(Trigger::All);
        let outcome = report(&[("a", Outcome::Failed), ("discovery[0]", Outcome::Failed)]);
        let planned = plan(&run, &outcome, &RetryPolicy::default());
        assert_eq!(planned[0].message.clusters, None);
        assert_eq!(planned[0].message.users, None);
    }

    #[test]
    fn nothing_failed_and_nothing_still_granted_plans_nothing() {
        let outcome = report(&[("a", Outcome::Updated), ("b", Outcome::Unchanged)]);
        assert!(plan(&invocation(Trigger::All), &outcome, &RetryPolicy::default()).is_empty());
    }

    #[test]
    fn a_dry_run_plans_nothing() {
        let run = Invocation {
            dry_run: true,
            ..invocation(Trigger::All)
        };
        let outcome = report(&[("a", Outcome::Failed)]);
        assert!(plan(&run, &outcome, &RetryPolicy::default()).is_empty());
    }

    #[test]
    fn attempts_past_the_maximum_go_to_the_dead_letter_queue() {
        let policy = RetryPolicy::default();
        let outcome = report(&[("a", Outcome::Failed)]);
        let run = |attempt| Invocation {
            attempt,
            ..invocation(Trigger::All)
        };
        assert!(!plan(&run(policy.max_attempts - 1), &outcome, &policy)[0].dead_letter);
        let last = &plan(&run(policy.max_attempts), &outcome, &policy)[0];
        assert!(last.dead_letter);
        assert_eq!(last.message.attempt, policy.max_attempts + 1);
    }

    #[test]
    fn still_granted_users_are_rechecked_after_the_recheck_delay() {
        let run = Invocation {
            revoked: users(&["alice"]),
            ..invocation(Trigger::Users(users(&["alice"])))
        };
        let mut outcome = report(&[("a", Outcome::Unchanged)]);
        outcome.recheck = vec!["alice".into()];
        let planned = plan(&run, &outcome, &RetryPolicy::default());
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].message.reason, Reason::Recheck);
        assert_eq!(planned[0].message.users, Some(users(&["alice"])));
        assert_eq!(planned[0].message.clusters, None);
        assert_eq!(planned[0].delay_seconds, 30);
    }

    #[test]
    fn still_granted_compares_names_ignoring_case() {
        let arn = UserArn::parse("arn:aws:iam::123456789012:user/Alice").unwrap();
        let desired = Desired {
            scope: Scope::Users(users(&["alice", "bob"])),
            entries: BTreeMap::from([(arn, Mapping::new("Alice", ["developers"]))]),
        };
        assert_eq!(
            still_granted(&desired, &users(&["alice", "bob"])),
            ["alice"]
        );
        assert!(still_granted(&desired, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_filter_keeps_its_clusters_their_failures_and_discovery_failures_of_its_regions() {
        let filter = ClusterFilter([id("b", "eu-west-1")].into());
        let fleet = Fleet {
            clusters: vec![
                ClusterRef::new("a", "eu-west-1"),
                ClusterRef::new("b", "eu-west-1"),
                ClusterRef::new("b", "us-east-1"),
            ],
            failures: vec![
                ClusterReport::new("discovery[0]", "eu-west-1", Outcome::Failed),
                ClusterReport::new("discovery[1]", "us-west-2", Outcome::Failed),
                ClusterReport::new("c", "eu-west-1", Outcome::Failed),
            ],
        };
        let kept = filter.apply(fleet);
        assert_eq!(kept.clusters, vec![ClusterRef::new("b", "eu-west-1")]);
        let failures: Vec<&str> = kept.failures.iter().map(|f| f.cluster.as_str()).collect();
        assert_eq!(failures, ["discovery[0]"]);
    }

    proptest! {
        #[test]
        fn a_follow_up_reads_back_as_sent(
            attempt in 0u32..100,
            names in prop::option::of(prop::collection::btree_set("[a-z]{1,8}", 1..5)),
            clusters in prop::option::of(prop::collection::btree_set(("[a-z]{1,8}", "[a-z0-9-]{1,12}"), 0..4)),
            recheck in any::<bool>(),
        ) {
            let message = FollowUp {
                action: FollowUpAction::FollowUp,
                reason: if recheck { Reason::Recheck } else { Reason::ClustersFailed },
                attempt,
                users: names,
                clusters: clusters.map(|set| ClusterFilter(
                    set.into_iter().map(|(name, region)| ClusterId { name, region }).collect(),
                )),
                cause: Some("e1,e2".into()),
            };
            let back: FollowUp = serde_json::from_str(&message.body()).unwrap();
            prop_assert_eq!(back, message);
        }

        #[test]
        fn delays_never_exceed_the_sqs_limit(attempt in any::<u32>(), base in any::<u32>()) {
            let policy = RetryPolicy { base_delay_seconds: base, ..RetryPolicy::default() };
            prop_assert!(policy.delay_seconds(attempt) <= MAX_DELAY_SECONDS);
        }
    }
}
