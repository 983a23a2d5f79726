//! The SQS path end to end: events go through a real FIFO queue and follow-ups through a real
//! standard queue (moto's SQS, created through the SQS API here as the template creates them),
//! and each batch received from a queue is handed to the handler as Lambda's event source
//! mapping would hand it, then deleted unless the handler reported it as failed.
//!
//! Each test starts its own 3-cluster test bed: they stop clusters and count calls.

mod common;

use common::access::deadline;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use eks_iam_sync::follow_up::{FollowUp, Reason, RetryPolicy};
use eks_iam_sync::handler::{self, handle, handle_batch, HandleError};
use eks_iam_sync::iam::{IamDirectory, IamError, IamUser};
use eks_iam_sync::queue::{FollowUps, SqsFollowUps};
use eks_iam_sync::report::Outcome;
use eks_testbed::TestBed;
use futures::future::BoxFuture;
use serde_json::{json, Value};

const GROUP: &str = "eks-developers";
const MESSAGE_GROUP: &str = "eks-iam-sync";

/// The three queues of the template, in moto.
struct Queues {
    sqs: aws_sdk_sqs::Client,
    events: String,
    retry: String,
    dead_letter: String,
}

impl Queues {
    async fn create(bed: &TestBed) -> Self {
        let keys = bed.description().credentials.sync_role.clone();
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new(REGION))
            .endpoint_url(bed.moto_endpoint())
            .credentials_provider(keys.sdk_credentials())
            .build();
        let sqs = aws_sdk_sqs::Client::from_conf(config);
        let create = |name: &'static str, fifo: bool| {
            let sqs = sqs.clone();
            async move {
                let mut request = sqs.create_queue().queue_name(name);
                if fifo {
                    request = request
                        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
                        .attributes(
                            aws_sdk_sqs::types::QueueAttributeName::ContentBasedDeduplication,
                            "true",
                        );
                }
                request.send().await.unwrap().queue_url.unwrap()
            }
        };
        Self {
            events: create("eks-iam-sync-events.fifo", true).await,
            retry: create("eks-iam-sync-retry", false).await,
            dead_letter: create("eks-iam-sync-retry-dlq", false).await,
            sqs,
        }
    }

    /// The follow-ups the function sends, with no delay (timing is never waited for here;
    /// the backoff schedule has its own unit tests).
    fn follow_ups(&self, max_attempts: u32) -> FollowUps {
        FollowUps {
            queue: Box::new(SqsFollowUps::new(
                self.sqs.clone(),
                &self.retry,
                &self.dead_letter,
            )),
            policy: RetryPolicy {
                max_attempts,
                base_delay_seconds: 0,
                recheck_delay_seconds: 0,
                ..RetryPolicy::default()
            },
        }
    }

    /// What EventBridge does: one message per event, one message group, content-based
    /// deduplication.
    async fn deliver(&self, events: &[Value]) {
        for event in events {
            self.sqs
                .send_message()
                .queue_url(&self.events)
                .message_group_id(MESSAGE_GROUP)
                .message_body(event.to_string())
                .send()
                .await
                .unwrap();
        }
    }

    /// What an event source mapping does: receive up to 10 messages as one Lambda SQS event.
    async fn receive(&self, queue: &str) -> (Value, Vec<(String, String)>) {
        let received = self
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        let mut handles = Vec::new();
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let id = m.message_id.clone().unwrap();
                handles.push((id.clone(), m.receipt_handle.clone().unwrap()));
                json!({
                    "messageId": id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": format!("arn:aws:sqs:{REGION}:123456789012:queue"),
                    "awsRegion": REGION,
                })
            })
            .collect();
        (json!({ "Records": records }), handles)
    }

    /// Deletes what the function did not report as failed, as the event source mapping does.
    async fn settle(&self, queue: &str, handles: &[(String, String)], response: &Value) {
        let failed: BTreeSet<&str> = response["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap())
            .collect();
        for (id, handle) in handles {
            if !failed.contains(id.as_str()) {
                self.sqs
                    .delete_message()
                    .queue_url(queue)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Every follow-up waiting in `queue` (received and deleted).
    async fn drain(&self, queue: &str) -> Vec<FollowUp> {
        let (event, handles) = self.receive(queue).await;
        self.settle(queue, &handles, &json!({"batchItemFailures": []}))
            .await;
        event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
            .collect()
    }
}

fn add_event(user: &str, n: usize) -> Value {
    let mut event = event("add-user-to-group.json", user);
    event["id"] = json!(format!("eb-{user}-{n}"));
    event["detail"]["eventID"] = json!(format!("ct-{user}-{n}"));
    event
}

fn response(outcome: &handler::BatchOutcome) -> Value {
    serde_json::to_value(&outcome.response).unwrap()
}

/// The product's GETs of aws-auth on `cluster` so far, from its audit log.
fn aws_auth_gets(bed: &TestBed, cluster: &str) -> usize {
    bed.audit_events(cluster)
        .unwrap()
        .iter()
        .filter(|e| {
            e["user"]["username"] == "eks-iam-sync"
                && e["stage"] == "ResponseComplete"
                && e["verb"] == "get"
                && e["objectRef"]["name"] == "aws-auth"
        })
        .count()
}

fn product_requests(bed: &TestBed, cluster: &str) -> usize {
    bed.audit_events(cluster)
        .unwrap()
        .iter()
        .filter(|e| e["user"]["username"] == "eks-iam-sync")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_events_is_one_run_and_a_stopped_cluster_becomes_a_follow_up() {
    let bed = start("queue").await;
    let app = app(&bed);
    let queues = Queues::create(&bed).await;
    let follow_ups = queues.follow_ups(8);
    let names = bed.cluster_names();
    let seeder = bed.seeder();

    // Ten users join the group: ten events, one batch, one run, one GET of aws-auth per cluster.
    let mut users = Vec::new();
    for i in 0..10 {
        let name = format!("onboard{i}");
        users.push(seeder.create_user(&name).await.unwrap());
        seeder.add_user_to_group(&name, GROUP).await.unwrap();
    }
    let events: Vec<Value> = (0..10)
        .map(|i| add_event(&format!("onboard{i}"), i))
        .collect();
    queues.deliver(&events).await;
    let gets_before: Vec<usize> = names.iter().map(|c| aws_auth_gets(&bed, c)).collect();
    let (batch, handles) = queues.receive(&queues.events).await;
    assert_eq!(handles.len(), 10, "one batch of ten messages");
    let outcome = handle_batch(&app, Some(&follow_ups), &batch, deadline()).await;
    assert_eq!(response(&outcome), json!({"batchItemFailures": []}));
    queues
        .settle(&queues.events, &handles, &response(&outcome))
        .await;
    let report = outcome.report.unwrap();
    assert_eq!(report.clusters.len(), 3);
    for (i, c) in names.iter().enumerate() {
        assert_eq!(
            aws_auth_gets(&bed, c) - gets_before[i],
            1,
            "{c}: one GET for the whole batch"
        );
        for user in &users {
            assert!(
                entry(&bed, c, &user.arn).await.is_some(),
                "{c}: {}",
                user.arn
            );
        }
    }
    assert!(outcome.follow_ups.is_empty());

    // The second cluster goes down: alice's event succeeds everywhere else, and the batch does
    // not fail; a follow-up for just that cluster waits on the retry queue.
    let alice = bed.description().credentials.users["alice"].clone();
    let bob = bed.description().credentials.users["bob"].clone();
    seeder.add_user_to_group("alice", GROUP).await.unwrap();
    bed.stop_cluster(&names[1]).unwrap();
    queues.deliver(&[add_event("alice", 1)]).await;
    let (batch, handles) = queues.receive(&queues.events).await;
    let outcome = handle_batch(&app, Some(&follow_ups), &batch, deadline()).await;
    assert_eq!(response(&outcome), json!({"batchItemFailures": []}));
    queues
        .settle(&queues.events, &handles, &response(&outcome))
        .await;
    let outcomes: Vec<Outcome> = outcome
        .report
        .unwrap()
        .clusters
        .iter()
        .map(|c| c.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [Outcome::Updated, Outcome::Failed, Outcome::Updated]
    );
    let waiting = queues.drain(&queues.retry).await;
    assert_eq!(waiting.len(), 1);
    let follow_up = &waiting[0];
    assert_eq!(follow_up.reason, Reason::ClustersFailed);
    assert_eq!(follow_up.attempt, 1);
    assert_eq!(follow_up.users, Some(BTreeSet::from(["alice".to_owned()])));
    let clusters = follow_up.clusters.as_ref().unwrap();
    assert_eq!(clusters.0.len(), 1);
    assert!(clusters.covers(&names[1], REGION));
    // Put it back for later, as the function had sent it.
    queues
        .sqs
        .send_message()
        .queue_url(&queues.retry)
        .message_body(follow_up.body())
        .send()
        .await
        .unwrap();

    // The event queue keeps flowing: bob's event reaches the healthy clusters meanwhile.
    seeder.add_user_to_group("bob", GROUP).await.unwrap();
    queues.deliver(&[add_event("bob", 1)]).await;
    let (batch, handles) = queues.receive(&queues.events).await;
    assert_eq!(handles.len(), 1, "the event queue is not stalled");
    let outcome = handle_batch(&app, Some(&follow_ups), &batch, deadline()).await;
    assert_eq!(response(&outcome), json!({"batchItemFailures": []}));
    queues
        .settle(&queues.events, &handles, &response(&outcome))
        .await;
    for c in [&names[0], &names[2]] {
        assert!(entry(&bed, c, &bob.arn).await.is_some(), "{c}: bob synced");
    }

    // Back up: the follow-ups (alice's and bob's), received from the retry queue as one batch,
    // touch only that cluster and bring it in step.
    bed.start_cluster(&names[1]).await.unwrap();
    let requests_elsewhere: Vec<usize> = [&names[0], &names[2]]
        .iter()
        .map(|c| product_requests(&bed, c))
        .collect();
    let (batch, handles) = queues.receive(&queues.retry).await;
    assert_eq!(handles.len(), 2);
    let outcome = handle_batch(&app, Some(&follow_ups), &batch, deadline()).await;
    assert_eq!(response(&outcome), json!({"batchItemFailures": []}));
    queues
        .settle(&queues.retry, &handles, &response(&outcome))
        .await;
    let report = outcome.report.unwrap();
    assert_eq!(report.clusters.len(), 1, "{report:?}");
    assert_eq!(report.clusters[0].cluster, names[1]);
    assert_eq!(report.clusters[0].outcome, Outcome::Updated);
    assert_eq!(report.clusters[0].added, 2);
    assert!(outcome.follow_ups.is_empty());
    for who in [&alice, &bob] {
        assert!(entry(&bed, &names[1], &who.arn).await.is_some());
    }
    let after: Vec<usize> = [&names[0], &names[2]]
        .iter()
        .map(|c| product_requests(&bed, c))
        .collect();
    assert_eq!(
        after, requests_elsewhere,
        "the follow-up touched no other cluster"
    );
    assert!(queues.drain(&queues.retry).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_past_the_maximum_go_to_the_dead_letter_queue() {
    let bed = start("dlq").await;
    let app = app(&bed);
    let queues = Queues::create(&bed).await;
    let follow_ups = queues.follow_ups(1);
    let names = bed.cluster_names();
    bed.seeder()
        .add_user_to_group("alice", GROUP)
        .await
        .unwrap();
    bed.stop_cluster(&names[2]).unwrap();

    queues.deliver(&[add_event("alice", 1)]).await;
    let (batch, handles) = queues.receive(&queues.events).await;
    let outcome = handle_batch(&app, Some(&follow_ups), &batch, deadline()).await;
    queues
        .settle(&queues.events, &handles, &response(&outcome))
        .await;
    assert!(!outcome.follow_ups[0].dead_letter);

    // Attempt 1 fails again: attempt 2 is past the maximum of 1.
    let (batch, handles) = queues.receive(&queues.retry).await;
    let outcome = handle_batch(&app, Some(&follow_ups), &batch, deadline()).await;
    assert_eq!(response(&outcome), json!({"batchItemFailures": []}));
    queues
        .settle(&queues.retry, &handles, &response(&outcome))
        .await;
    assert_eq!(outcome.report.unwrap().clusters.len(), 1);
    assert!(queues.drain(&queues.retry).await.is_empty());
    let given_up = queues.drain(&queues.dead_letter).await;
    assert_eq!(given_up.len(), 1);
    assert_eq!(given_up[0].attempt, 2);
    assert!(given_up[0]
        .clusters
        .as_ref()
        .unwrap()
        .covers(&names[2], REGION));

    // A follow-up that cannot be sent fails the whole batch instead: nothing is lost.
    let broken = FollowUps {
        queue: Box::new(SqsFollowUps::new(
            queues.sqs.clone(),
            format!("{}/123456789012/no-such-queue", bed.moto_endpoint()),
            format!("{}/123456789012/no-such-queue", bed.moto_endpoint()),
        )),
        policy: RetryPolicy::default(),
    };
    queues.deliver(&[add_event("alice", 2)]).await;
    let (batch, handles) = queues.receive(&queues.events).await;
    let outcome = handle_batch(&app, Some(&broken), &batch, deadline()).await;
    let failed: Vec<&str> = outcome
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, [handles[0].0.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_event_that_still_reads_a_grant_schedules_a_recheck() {
    let bed = start("recheck").await;
    let app = app(&bed);
    let queues = Queues::create(&bed).await;
    let follow_ups = queues.follow_ups(8);
    let names = bed.cluster_names();
    let alice = bed.description().credentials.users["alice"].clone();
    let seeder = bed.seeder();
    seeder.add_user_to_group("alice", GROUP).await.unwrap();
    queues.deliver(&[add_event("alice", 1)]).await;
    let (batch, handles) = queues.receive(&queues.events).await;
    let outcome = handle_batch(&app, Some(&follow_ups), &batch, deadline()).await;
    queues
        .settle(&queues.events, &handles, &response(&outcome))
        .await;

    // The remove event arrives before IAM shows the removal (eventual consistency): the run
    // reads alice still in the group, keeps her, and says so.
    let mut remove = event("remove-user-from-group.json", "alice");
    remove["id"] = json!("eb-remove-1");
    queues.deliver(&[remove]).await;
    let (batch, handles) = queues.receive(&queues.events).await;
    let outcome = handle_batch(&app, Some(&follow_ups), &batch, deadline()).await;
    assert_eq!(response(&outcome), json!({"batchItemFailures": []}));
    queues
        .settle(&queues.events, &handles, &response(&outcome))
        .await;
    let report = outcome.report.unwrap();
    assert_eq!(report.recheck, ["alice"]);
    assert_eq!(
        serde_json::to_value(&report).unwrap()["recheck"],
        json!(["alice"])
    );
    assert_eq!(outcome.follow_ups.len(), 1);
    assert_eq!(outcome.follow_ups[0].message.reason, Reason::Recheck);

    // IAM catches up; the re-check, received from the retry queue, revokes her everywhere and
    // schedules nothing more.
    seeder.remove_user_from_group("alice", GROUP).await.unwrap();
    let (batch, handles) = queues.receive(&queues.retry).await;
    assert_eq!(handles.len(), 1);
    let outcome = handle_batch(&app, Some(&follow_ups), &batch, deadline()).await;
    assert_eq!(response(&outcome), json!({"batchItemFailures": []}));
    queues
        .settle(&queues.retry, &handles, &response(&outcome))
        .await;
    let report = outcome.report.unwrap();
    assert!(report.recheck.is_empty());
    assert!(outcome.follow_ups.is_empty());
    for c in &names {
        assert!(entry(&bed, c, &alice.arn).await.is_none(), "{c}: revoked");
    }
}

/// Counts every IAM read the product makes, and fails them all when asked.
struct CountingIam {
    inner: Box<dyn IamDirectory>,
    calls: Arc<AtomicUsize>,
    unreadable: bool,
}

impl CountingIam {
    fn check(&self, principal: &str) -> Result<(), IamError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.unreadable {
            return Err(IamError::Call {
                operation: "GetUser",
                principal: principal.to_owned(),
                detail: "injected: IAM unreadable".to_owned(),
            });
        }
        Ok(())
    }
}

impl IamDirectory for CountingIam {
    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<IamUser>, IamError>> {
        Box::pin(async move {
            self.check(name)?;
            self.inner.user(name).await
        })
    }
    fn groups_for_user<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, IamError>> {
        Box::pin(async move {
            self.check(name)?;
            self.inner.groups_for_user(name).await
        })
    }
    fn group_members<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IamUser>>, IamError>> {
        Box::pin(async move {
            self.check(group)?;
            self.inner.group_members(group).await
        })
    }
}

fn counting_app(bed: &TestBed, unreadable: bool) -> (eks_iam_sync::sync::App, Arc<AtomicUsize>) {
    let mut app = app(bed);
    let calls = Arc::new(AtomicUsize::new(0));
    app.iam = Box::new(CountingIam {
        inner: app.iam,
        calls: calls.clone(),
        unreadable,
    });
    (app, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_are_rejected_before_any_call_and_iam_failures_retry_the_batch() {
    let bed = start("names").await;
    let queues = Queues::create(&bed).await;
    let follow_ups = queues.follow_ups(8);
    let names = bed.cluster_names();
    let (app, iam_calls) = counting_app(&bed, false);
    bed.eks().reset_calls();
    let requests_before: Vec<usize> = names.iter().map(|c| product_requests(&bed, c)).collect();

    let long = add_event(&"a".repeat(10_000), 1);
    let newlines = add_event("alice\nbob\r\n", 2);
    let mut bad_group = event("remove-user-from-group.json", "alice");
    bad_group["detail"]["requestParameters"]["groupName"] = json!("eks\ndevelopers");
    queues
        .deliver(&[long.clone(), newlines.clone(), bad_group])
        .await;
    let (batch, handles) = queues.receive(&queues.events).await;
    assert_eq!(handles.len(), 3);
    let outcome = handle_batch(&app, Some(&follow_ups), &batch, deadline()).await;
    assert_eq!(
        response(&outcome),
        json!({"batchItemFailures": []}),
        "dropped, not retried"
    );
    assert!(outcome.report.is_none());
    let errors: Vec<&str> = outcome.dropped.iter().map(|d| d.error.as_str()).collect();
    assert!(
        errors[0].contains("detail.requestParameters.userName")
            && errors[0].contains("10000 characters"),
        "{}",
        errors[0]
    );
    assert!(errors[1].contains("alice\\nbob\\r\\n"), "{}", errors[1]);
    assert!(errors[2].contains("detail.requestParameters.groupName"));

    // A direct invoke: success with the rejection (so an async invoke is not retried); the
    // CLI's `handle` path gets the error.
    let direct = handler::lambda(&app, Some(&follow_ups), &newlines, deadline())
        .await
        .unwrap();
    assert!(direct["rejected"]
        .as_str()
        .unwrap()
        .contains("detail.requestParameters.userName"));
    let err = handle(&app, &long).await.unwrap_err();
    assert!(matches!(err, HandleError::Event(_)), "{err}");

    assert_eq!(iam_calls.load(Ordering::SeqCst), 0, "no IAM call");
    assert_eq!(bed.eks().calls("DescribeCluster"), 0, "no EKS call");
    for (i, c) in names.iter().enumerate() {
        assert_eq!(
            product_requests(&bed, c),
            requests_before[i],
            "{c}: untouched"
        );
    }
    assert!(queues.drain(&queues.retry).await.is_empty());

    // IAM unreadable: nothing was done, so every message of the batch is delivered again.
    let (app, _) = counting_app(&bed, true);
    queues
        .deliver(&[add_event("alice", 3), add_event("bob", 3)])
        .await;
    let (batch, handles) = queues.receive(&queues.events).await;
    let outcome = handle_batch(&app, Some(&follow_ups), &batch, deadline()).await;
    let failed: BTreeSet<&str> = outcome
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let ids: BTreeSet<&str> = handles.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(failed, ids);
}

/// `eks-iam-sync handle` on an invalid event exits non-zero and makes no call at all: its IAM
/// and EKS endpoints are listeners that count connections.
#[test]
fn the_cli_refuses_an_invalid_event_without_any_call() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile_dir();
    let file = dir.join("invalid.json");
    std::fs::write(&file, add_event("alice\nadmin", 1).to_string()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_eks-iam-sync"))
        .arg("handle")
        .arg(&file)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "EKS_IAM_SYNC_CONFIG",
            r#"{"groups":[{"iamGroup":"eks-developers","kubernetesGroups":["developers"]}],"clusters":[{"name":"c","region":"us-east-1"}]}"#,
        )
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("detail.requestParameters.userName"),
        "{stderr}"
    );
    assert!(stderr.contains("alice\\nadmin"), "{stderr}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no connection was made"
    );
    std::fs::remove_dir_all(dir).ok();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("eks-iam-sync-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
