//! An SQS batch read as one run: the union of what its messages ask for.
//!
//! EventBridge delivers IAM events to a FIFO queue, and Lambda hands the function up to ten
//! messages at a time (`{"Records": [{"messageId", "body", "eventSource": "aws:sqs", ...}]}`,
//! each body one EventBridge event or follow-up). A burst of 200 `AddUserToGroup` events during
//! onboarding must not mean 200 fan-outs, so a batch becomes one run over the union of its
//! users, and any full reconcile in it makes the run a full reconcile. This is sound because an
//! event is only a hint about whom to recompute: recomputing a superset from IAM gives each of
//! them the same result.
//!
//! A message that can never succeed (not JSON, not an input the function knows, a name IAM
//! could not hold, a dry run, which only a direct invoke may ask for) is dropped here, with its
//! error for the log: retrying it would only stall the FIFO queue behind it.
//!
//! ```
//! use eks_iam_sync::batch::read;
//! use eks_iam_sync::event::Trigger;
//!
//! let batch = read(&serde_json::json!({"Records": [
//!     {"messageId": "m1", "eventSource": "aws:sqs", "body": r#"{"action":"reconcile"}"#},
//!     {"messageId": "m2", "eventSource": "aws:sqs", "body": "not json"},
//! ]}));
//! assert_eq!(batch.members, ["m1"]);
//! assert_eq!(batch.dropped[0].message_id, "m2");
//! assert_eq!(batch.invocation.unwrap().trigger, Trigger::All);
//! ```

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::event::{self, Invocation, Parsed, Trigger};

/// Lambda's `eventSource` of an SQS record.
const SQS_EVENT_SOURCE: &str = "aws:sqs";

/// Whether `input` is an SQS batch from an event source mapping.
pub fn is_sqs_batch(input: &Value) -> bool {
    input
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .and_then(|record| record.get("eventSource"))
        .and_then(Value::as_str)
        == Some(SQS_EVENT_SOURCE)
}

/// A message dropped for good, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub message_id: String,
    pub error: String,
}

/// A well-formed message that asks for no run (a failed IAM call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub message_id: String,
    pub event_id: Option<String>,
    pub event_name: Option<String>,
    pub reason: String,
}

/// What a batch asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    /// The message ids the run serves: these fail, or not, together.
    pub members: Vec<String>,
    /// The union of the members' runs; `None` when no message asks for one.
    pub invocation: Option<Invocation>,
    pub dropped: Vec<Dropped>,
    pub ignored: Vec<Ignored>,
}

/// Reads every record of an SQS batch; never fails, since a bad record is only dropped.
pub fn read(input: &Value) -> Batch {
    let records = input
        .get("Records")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut batch = Batch::default();
    let mut runs = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let Some(message_id) = record.get("messageId").and_then(Value::as_str) else {
            // Lambda always sends one; without it the record cannot even be reported.
            batch.dropped.push(Dropped {
                message_id: format!("Records[{i}]"),
                error: "the record has no messageId".to_owned(),
            });
            continue;
        };
        let message_id = message_id.to_owned();
        match message(record) {
            Ok(Parsed::Run(invocation)) => {
                batch.members.push(message_id);
                runs.push(invocation);
            }
            Ok(Parsed::Ignored {
                event_id,
                event_name,
                reason,
            }) => batch.ignored.push(Ignored {
                message_id,
                event_id,
                event_name,
                reason,
            }),
            Err(error) => batch.dropped.push(Dropped { message_id, error }),
        }
    }
    batch.invocation = union(runs);
    batch
}

/// One record's body, parsed like a direct input.
fn message(record: &Value) -> Result<Parsed, String> {
    let body = record
        .get("body")
        .and_then(Value::as_str)
        .ok_or("the record has no string body")?;
    let input: Value =
        serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    match event::parse(&input).map_err(|e| e.to_string())? {
        Parsed::Run(invocation) if invocation.dry_run => {
            Err("dryRun is for direct invokes only; a queued message always writes".to_owned())
        }
        parsed => Ok(parsed),
    }
}

/// One run that covers every one of `runs`: the union of their users (all, if any asks for
/// all), of their clusters (all, if any asks for all), the revoked users of each, and the
/// highest attempt. The ids and names are joined for the logs.
pub fn union(runs: Vec<Invocation>) -> Option<Invocation> {
    let mut runs = runs.into_iter();
    let first = runs.next()?;
    let mut ids: Vec<String> = first.event_id.iter().cloned().collect();
    let mut names: BTreeSet<String> = first.event_name.iter().cloned().collect();
    let mut principals: BTreeSet<String> = first.principal.iter().cloned().collect();
    let mut merged = first;
    for run in runs {
        merged.trigger = match (merged.trigger, run.trigger) {
            (Trigger::Users(mut a), Trigger::Users(b)) => {
                a.extend(b);
                Trigger::Users(a)
            }
            (Trigger::Roles(mut a), Trigger::Roles(b)) => {
                a.extend(b);
                Trigger::Roles(a)
            }
            // Users and roles in one batch: a full reconcile covers both.
            _ => Trigger::All,
        };
        merged.clusters = match (merged.clusters, run.clusters) {
            (Some(mut a), Some(b)) => {
                a.union(&b);
                Some(a)
            }
            _ => None,
        };
        merged.revoked.extend(run.revoked);
        merged.attempt = merged.attempt.max(run.attempt);
        merged.dry_run &= run.dry_run;
        ids.extend(run.event_id);
        names.extend(run.event_name);
        principals.extend(run.principal);
    }
    let joined = |parts: Vec<String>| (!parts.is_empty()).then(|| parts.join(","));
    merged.event_id = joined(ids);
    merged.event_name = joined(names.into_iter().collect());
    merged.principal = joined(principals.into_iter().collect());
    Some(merged)
}

/// Lambda's partial batch response: the messages to deliver again. Every other message of the
/// batch is deleted from the queue.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    pub item_identifier: String,
}

impl BatchResponse {
    /// Every message in `ids` is delivered again.
    pub fn failing(ids: &[String]) -> Self {
        Self {
            batch_item_failures: ids
                .iter()
                .map(|id| ItemFailure {
                    item_identifier: id.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow_up::ClusterFilter;
    use proptest::prelude::*;
    use serde_json::json;

    fn record(id: &str, body: &Value) -> Value {
        json!({
            "messageId": id,
            "receiptHandle": "r",
            "body": body.to_string(),
            "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": "eks-iam-sync"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:eks-iam-sync-events.fifo",
            "awsRegion": "us-east-1",
        })
    }

    fn sample(file: &str) -> Value {
        let path = format!("{}/tests/data/events/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn iam_event(event_name: &str, user: &str, id: &str) -> Value {
        let mut event = sample("add-user-to-group.json");
        event["detail"]["eventName"] = json!(event_name);
        event["detail"]["requestParameters"]["userName"] = json!(user);
        event["detail"]["eventID"] = json!(id);
        event
    }

    fn batch(bodies: &[Value]) -> Value {
        let records: Vec<Value> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| record(&format!("m{i}"), body))
            .collect();
        json!({ "Records": records })
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_burst_of_events_is_one_run_over_their_users() {
        let bodies: Vec<Value> = (0..200)
            .map(|i| iam_event("AddUserToGroup", &format!("user{i}"), &format!("e{i}")))
            .collect();
        let read = read(&batch(&bodies));
        assert_eq!(read.members.len(), 200);
        let run = read.invocation.unwrap();
        let Trigger::Users(users) = &run.trigger else {
            panic!("expected users")
        };
        assert_eq!(users.len(), 200);
        assert_eq!(run.event_name.as_deref(), Some("AddUserToGroup"));
        assert!(run.event_id.unwrap().starts_with("e0,e1,"));
        assert!(run.revoked.is_empty());
    }

    #[test]
    fn a_scheduled_reconcile_in_the_batch_makes_it_a_full_reconcile() {
        let read = read(&batch(&[
            iam_event("RemoveUserFromGroup", "alice", "e1"),
            sample("scheduled-reconcile.json"),
        ]));
        let run = read.invocation.unwrap();
        assert_eq!(run.trigger, Trigger::All);
        assert_eq!(run.revoked, names(&["alice"]), "alice is still re-checked");
        assert_eq!(
            run.event_name.as_deref(),
            Some("RemoveUserFromGroup,Scheduled Event")
        );
    }

    #[test]
    fn invalid_and_ignored_messages_are_not_members() {
        let read = read(&batch(&[
            iam_event("AddUserToGroup", "alice", "e1"),
            iam_event("AddUserToGroup", &"x".repeat(10_000), "e2"),
            sample("add-user-to-group-failed.json"),
            json!({"action": "reconcile", "dryRun": true}),
            json!("just a string"),
        ]));
        assert_eq!(read.members, ["m0"]);
        assert_eq!(read.ignored.len(), 1);
        assert_eq!(read.ignored[0].message_id, "m2");
        let dropped: Vec<&str> = read.dropped.iter().map(|d| d.message_id.as_str()).collect();
        assert_eq!(dropped, ["m1", "m3", "m4"]);
        assert!(
            read.dropped[0].error.contains("userName"),
            "{:?}",
            read.dropped[0]
        );
        assert!(read.dropped[1].error.contains("dryRun"));
        assert_eq!(
            read.invocation.unwrap().trigger,
            Trigger::Users(names(&["alice"]))
        );
    }

    #[test]
    fn a_body_that_is_not_json_or_a_record_without_id_is_dropped() {
        let input = json!({"Records": [
            {"messageId": "m0", "eventSource": "aws:sqs", "body": "{"},
            {"eventSource": "aws:sqs", "body": "{}"},
            {"messageId": "m2", "eventSource": "aws:sqs"},
        ]});
        let read = read(&input);
        assert!(read.invocation.is_none());
        assert_eq!(read.dropped.len(), 3);
        assert_eq!(read.dropped[1].message_id, "Records[1]");
    }

    #[test]
    fn follow_ups_merge_their_clusters_unless_one_covers_all() {
        let follow_up = |cluster: Option<&str>, attempt: u32| {
            let mut body = json!({"action": "followUp", "reason": "clustersFailed", "attempt": attempt, "users": ["alice"]});
            if let Some(name) = cluster {
                body["clusters"] = json!([{"name": name, "region": "eu-west-1"}]);
            }
            body
        };
        let run = read(&batch(&[follow_up(Some("a"), 2), follow_up(Some("b"), 5)]))
            .invocation
            .unwrap();
        assert_eq!(run.attempt, 5);
        let clusters = run.clusters.unwrap();
        assert!(clusters.covers("a", "eu-west-1") && clusters.covers("b", "eu-west-1"));
        let run = read(&batch(&[follow_up(Some("a"), 1), follow_up(None, 1)]))
            .invocation
            .unwrap();
        assert_eq!(run.clusters, None);
    }

    #[test]
    fn sqs_batches_are_recognised_by_their_event_source() {
        assert!(is_sqs_batch(&batch(&[json!({})])));
        assert!(!is_sqs_batch(
            &json!({"Records": [{"eventSource": "aws:s3"}]})
        ));
        assert!(!is_sqs_batch(&json!({"Records": []})));
        assert!(!is_sqs_batch(&sample("scheduled-reconcile.json")));
    }

    #[test]
    fn the_response_lists_the_failed_messages() {
        let response = BatchResponse::failing(&["m1".into(), "m2".into()]);
        assert_eq!(
            serde_json::to_value(response).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]})
        );
        assert_eq!(
            serde_json::to_value(BatchResponse::default()).unwrap(),
            json!({"batchItemFailures": []})
        );
    }

    fn a_run() -> impl Strategy<Value = Invocation> {
        (
            prop::option::of(prop::collection::btree_set("[a-e]", 1..4)),
            prop::collection::btree_set("[a-e]", 0..3),
            prop::option::of(prop::collection::btree_set("[x-z]", 1..3)),
            0u32..10,
        )
            .prop_map(|(users, revoked, clusters, attempt)| Invocation {
                revoked,
                attempt,
                clusters: clusters.map(|set| {
                    ClusterFilter(
                        set.into_iter()
                            .map(|name| crate::follow_up::ClusterId {
                                name,
                                region: "r".into(),
                            })
                            .collect(),
                    )
                }),
                ..Invocation::new(users.map_or(Trigger::All, Trigger::Users))
            })
    }

    proptest! {
        /// The union covers every member: each member's users and clusters are in it, and it
        /// asks for nothing none of them asked for.
        #[test]
        fn the_union_covers_exactly_its_members(runs in prop::collection::vec(a_run(), 1..12)) {
            let merged = union(runs.clone()).unwrap();
            let any_all = runs.iter().any(|r| r.trigger == Trigger::All);
            match &merged.trigger {
                Trigger::All => prop_assert!(any_all),
                Trigger::Roles(_) => prop_assert!(false, "a_run makes no role runs"),
                Trigger::Users(users) => {
                    prop_assert!(!any_all);
                    let wanted: BTreeSet<String> = runs.iter().flat_map(|r| match &r.trigger {
                        Trigger::Users(u) => u.clone(),
                        Trigger::Roles(_) | Trigger::All => BTreeSet::new(),
                    }).collect();
                    prop_assert_eq!(users, &wanted);
                }
            }
            match &merged.clusters {
                None => prop_assert!(runs.iter().any(|r| r.clusters.is_none())),
                Some(filter) => for run in &runs {
                    let own = run.clusters.as_ref().unwrap();
                    prop_assert!(own.0.is_subset(&filter.0));
                },
            }
            let revoked: BTreeSet<String> = runs.iter().flat_map(|r| r.revoked.clone()).collect();
            prop_assert_eq!(&merged.revoked, &revoked);
            prop_assert_eq!(merged.attempt, runs.iter().map(|r| r.attempt).max().unwrap());
        }

        #[test]
        fn reading_arbitrary_records_never_panics(bodies in prop::collection::vec(".*", 0..6)) {
            let records: Vec<Value> = bodies.iter().enumerate().map(|(i, b)| json!({
                "messageId": format!("m{i}"), "eventSource": "aws:sqs", "body": b,
            })).collect();
            let read = read(&json!({"Records": records}));
            prop_assert_eq!(read.members.len() + read.dropped.len() + read.ignored.len(), bodies.len());
        }
    }
}
