//! Issue 8, part 5: one slow, hung or failing cluster stays one cluster's problem.
//!
//! Every fault is injected by the test bed's proxy, in front of one cluster's API server, of
//! moto (IAM) or of the EKS emulator: black holes, 500s, 429s with Retry-After, 503s and TCP
//! resets, each with the body the real service sends. Races (a 409 storm, a ConfigMap deleted
//! between read and write) are forced by holding one answer until the others are done. Each
//! case ends with the healthy clusters synced and the faulty one either synced after retries or
//! reported with its reason, and the run inside the deadline it was given.
//!
//! The retry cases share one bed of three `CONFIG_MAP` clusters and take turns (a proxy moves a
//! cluster's endpoint for everyone); the two that damage aws-auth on purpose start their own.

mod common;

use std::time::{Duration, Instant};

use common::access::*;
use common::within::handle_within;
use common::*;
use eks_iam_sync::config::Config;
use eks_iam_sync::handler::HandleError;
use eks_iam_sync::report::{ClusterReport, Outcome, Report};
use eks_iam_sync::sync::App;
use eks_testbed::bootstrap::{apply_manifests, PRODUCT_RBAC_CREATE_AWS_AUTH};
use eks_testbed::moto::IssuedKeys;
use eks_testbed::{Fault, Matcher, TestBed, TestBedOptions, Times};

const GROUP: &str = "eks-developers";
/// Requests for kube-system/aws-auth, reads and writes.
const AWS_AUTH: &str = "/api/v1/namespaces/kube-system/configmaps/aws-auth";

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn shared_bed() -> &'static TestBed {
    TestBed::shared(TestBedOptions {
        clusters: 3,
        name_prefix: "flt".into(),
    })
}

async fn own_bed(prefix: &str) -> TestBed {
    TestBed::start(TestBedOptions {
        clusters: 2,
        name_prefix: prefix.into(),
    })
    .await
    .expect("test bed starts")
}

/// The faults a service sends when it is overloaded or failing, as the proxy injects them.
fn transient_faults() -> [Fault; 4] {
    [
        Fault::ServerError,
        Fault::Throttle {
            retry_after_secs: 1,
        },
        Fault::Unavailable,
        Fault::Reset,
    ]
}

/// A new IAM user in the mapped group.
async fn member(bed: &TestBed, name: &str) -> IssuedKeys {
    let keys = bed.seeder().create_user(name).await.unwrap();
    bed.seeder().add_user_to_group(name, GROUP).await.unwrap();
    keys
}

/// The report, whether the invocation succeeded or failed because of some cluster.
fn report_of(result: Result<Report, HandleError>) -> (Report, bool) {
    match result {
        Ok(report) => (report, true),
        Err(HandleError::ClustersFailed(report)) => (*report, false),
        Err(other) => panic!("the run failed as a whole: {other}"),
    }
}

fn cluster<'a>(report: &'a Report, name: &str) -> &'a ClusterReport {
    report
        .clusters
        .iter()
        .find(|c| c.cluster == name)
        .unwrap_or_else(|| panic!("no report for {name}: {report:?}"))
}

/// Every cluster but `except` reports the user written and holds the entry.
async fn assert_synced_except(bed: &TestBed, report: &Report, user: &IssuedKeys, except: &str) {
    for name in bed.cluster_names().iter().filter(|n| *n != except) {
        let c = cluster(report, name);
        assert_eq!(c.outcome, Outcome::Updated, "healthy {name}: {c:?}");
        assert!(
            entry(bed, name, &user.arn).await.is_some(),
            "healthy {name} holds {}",
            user.arn
        );
    }
}

/// Runs `handle_within` with `deadline` and checks that it returned before it. A run that
/// does not return at all (no deadline in the product) fails the test a while after the
/// deadline instead of hanging it.
async fn run_within(
    app: &App,
    input: &serde_json::Value,
    deadline: Instant,
) -> Result<Report, HandleError> {
    let give_up = deadline + Duration::from_secs(30);
    let result = tokio::time::timeout_at(give_up.into(), handle_within(app, input, deadline))
        .await
        .unwrap_or_else(|_| panic!("the run had not returned 30 s after its deadline"));
    let returned = Instant::now();
    assert!(
        returned < deadline,
        "the run returned {:?} after its deadline",
        returned - deadline
    );
    result
}

fn add_event(user: &str) -> serde_json::Value {
    event("add-user-to-group.json", user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part5_a_black_holed_api_server_fails_its_cluster_alone_before_the_deadline() {
    let _turn = SERIAL.lock().await;
    let bed = shared_bed();
    let hung = bed.cluster_names()[1].clone();
    let user = member(bed, "flt-hole").await;
    let proxy = bed.proxy_api_server(&hung).await.unwrap();
    proxy.inject(Matcher::any(), Fault::BlackHole, Times::Always);

    let deadline = Instant::now() + Duration::from_secs(10);
    let result = run_within(&app(bed), &add_event("flt-hole"), deadline).await;
    let (report, ok) = report_of(result);
    assert!(!ok, "a failed cluster fails the invocation");
    let failed = cluster(&report, &hung);
    assert_eq!(failed.outcome, Outcome::Failed, "{failed:?}");
    let reason = failed.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("deadline"),
        "the reason says the cluster did not answer in time: {reason}"
    );
    assert!(
        proxy.faulted(&Matcher::any()) >= 1,
        "the product reached the proxy"
    );
    assert_synced_except(bed, &report, &user, &hung).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part5_api_server_errors_and_resets_are_retried_until_the_cluster_is_synced() {
    let _turn = SERIAL.lock().await;
    let bed = shared_bed();
    let flaky = bed.cluster_names()[1].clone();
    let proxy = bed.proxy_api_server(&flaky).await.unwrap();
    let aws_auth = Matcher::path(AWS_AUTH);
    let mut failures = Vec::new();
    for (i, fault) in transient_faults().into_iter().enumerate() {
        let name = format!("flt-api-{}", fault.name());
        let user = member(bed, &name).await;
        proxy.clear();
        proxy.inject(aws_auth.clone(), fault, 2);
        let (report, ok) = report_of(handle_within(&app(bed), &add_event(&name), deadline()).await);
        let c = cluster(&report, &flaky);
        println!(
            "{fault:?} (case {i}): {}",
            serde_json::to_string(c).unwrap()
        );
        if !ok || c.outcome != Outcome::Updated {
            failures.push(format!(
                "{fault:?}: {flaky} {:?}: {:?}",
                c.outcome, c.reason
            ));
        } else if c.retries < 1 {
            failures.push(format!(
                "{fault:?}: synced, but the report counts no retry ({} faults served)",
                proxy.faulted(&aws_auth)
            ));
        }
        if entry(bed, &flaky, &user.arn).await.is_none() {
            failures.push(format!("{fault:?}: {flaky} lacks {}", user.arn));
        }
        let served = proxy.faulted(&aws_auth);
        if served != 2 {
            failures.push(format!(
                "{fault:?}: {served} of 2 injected faults reached (the product stopped retrying)"
            ));
        }
        assert_synced_except(bed, &report, &user, &flaky).await;
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part5_iam_errors_and_resets_are_retried_and_every_cluster_is_synced() {
    let _turn = SERIAL.lock().await;
    let bed = shared_bed();
    let proxy = bed.proxy_iam().await.unwrap();
    let mut failures = Vec::new();
    for fault in transient_faults() {
        let name = format!("flt-iam-{}", fault.name());
        let user = member(bed, &name).await;
        proxy.clear();
        // The first IAM requests of the run, whatever they are.
        proxy.inject(Matcher::any(), fault, 2);
        let app = app_with(bed, proxy.endpoint(), &bed.description().endpoints.eks);
        match handle_within(&app, &add_event(&name), deadline()).await {
            Ok(report) => assert_synced_except(bed, &report, &user, "").await,
            Err(e) => failures.push(format!("{fault:?}: {e}")),
        }
        let served = proxy.faulted(&Matcher::any());
        if served != 2 {
            failures.push(format!(
                "{fault:?}: {served} of 2 injected faults reached (the product stopped retrying)"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part5_eks_errors_and_resets_on_one_clusters_describe_are_retried() {
    let _turn = SERIAL.lock().await;
    let bed = shared_bed();
    let flaky = bed.cluster_names()[2].clone();
    let proxy = bed.proxy_eks().await.unwrap();
    let describe = Matcher::request("GET", &format!("/clusters/{flaky}"));
    let mut failures = Vec::new();
    for fault in transient_faults() {
        let name = format!("flt-eks-{}", fault.name());
        let user = member(bed, &name).await;
        proxy.clear();
        proxy.inject(describe.clone(), fault, 2);
        // A new app each time: no DescribeCluster answer cached from the case before.
        let app = app_with(bed, &bed.description().endpoints.iam, proxy.endpoint());
        let (report, ok) = report_of(handle_within(&app, &add_event(&name), deadline()).await);
        let c = cluster(&report, &flaky);
        if !ok || c.outcome != Outcome::Updated {
            failures.push(format!(
                "{fault:?}: {flaky} {:?}: {:?}",
                c.outcome, c.reason
            ));
        }
        let served = proxy.faulted(&describe);
        if served != 2 {
            failures.push(format!(
                "{fault:?}: {served} of 2 injected faults reached (the product stopped retrying)"
            ));
        }
        assert_synced_except(bed, &report, &user, &flaky).await;
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Eight runs for eight users write one aws-auth at once. One of them is made to lose for
/// certain: its read of aws-auth is held until the other seven have finished, so its write
/// carries a resourceVersion seven writes old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part5_a_storm_of_409s_from_concurrent_writers_settles_with_every_user_present() {
    let _turn = SERIAL.lock().await;
    let bed = shared_bed();
    let contended = bed.cluster_names()[0].clone();
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(member(bed, &format!("flt-storm-{i}")).await);
    }
    let proxy = bed.proxy_api_server(&contended).await.unwrap();
    let hold = proxy.hold(Matcher::request("GET", AWS_AUTH));
    let app = app(bed);

    let first = add_event("flt-storm-0");
    let late = handle_within(&app, &first, deadline());
    let others = async {
        guarded("the late writer's held read", hold.reached()).await;
        let runs =
            (1..8).map(|i| {
                let app = &app;
                async move {
                    handle_within(app, &add_event(&format!("flt-storm-{i}")), deadline()).await
                }
            });
        let results = futures::future::join_all(runs).await;
        hold.release();
        results
    };
    let (late, others) = tokio::join!(late, others);
    let mut failures = Vec::new();
    for (i, result) in std::iter::once(late).chain(others).enumerate() {
        match result {
            Ok(report) => {
                if i == 0 && cluster(&report, &contended).retries < 1 {
                    failures.push(format!("the late writer reports no retry: {report:?}"));
                }
            }
            Err(e) => failures.push(format!("flt-storm-{i}: {e}")),
        }
    }
    for name in bed.cluster_names() {
        for user in &users {
            if entry(bed, &name, &user.arn).await.is_none() {
                failures.push(format!("{name} lacks {}", user.arn));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The product with `createMissingAwsAuth: true`.
fn app_creating_aws_auth(bed: &TestBed) -> App {
    let mut document = bed.description().sync_config.clone();
    document["createMissingAwsAuth"] = true.into();
    let mut app = app(bed);
    app.config = Config::parse(&document.to_string()).expect("config is valid");
    app
}

/// aws-auth is read, then deleted by an admin, then written: the write finds it gone. That is a
/// race like a 409: read again, and create it (allowed here) with the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part5_a_config_map_deleted_between_read_and_write_is_recreated_with_the_user() {
    let bed = own_bed("gone").await;
    let names = bed.cluster_names();
    let racy = names[0].clone();
    let user = member(&bed, "gone-user").await;
    let proxy = bed.proxy_api_server(&racy).await.unwrap();
    let hold = proxy.hold(Matcher::request("GET", AWS_AUTH));
    let app = app_creating_aws_auth(&bed);
    // The operator opted in to creating aws-auth (deploy/rbac-create-aws-auth.yaml).
    apply_manifests(
        &bed.admin_client(&racy).unwrap(),
        PRODUCT_RBAC_CREATE_AWS_AUTH,
    )
    .await
    .unwrap();

    let add = add_event("gone-user");
    let run = handle_within(&app, &add, deadline());
    let delete = async {
        guarded("the held read of aws-auth", hold.reached()).await;
        aws_auth_api(&bed, &racy)
            .delete("aws-auth", &Default::default())
            .await
            .unwrap();
        hold.release();
    };
    let (result, ()) = tokio::join!(run, delete);
    let (report, ok) = report_of(result);
    let c = cluster(&report, &racy);
    println!("{}", serde_json::to_string(c).unwrap());
    assert!(ok && c.outcome == Outcome::Updated, "{racy}: {c:?}");
    assert!(
        aws_auth_api(&bed, &racy)
            .get_opt("aws-auth")
            .await
            .unwrap()
            .is_some(),
        "aws-auth was recreated"
    );
    assert!(
        entry(&bed, &racy, &user.arn).await.is_some(),
        "it holds the user"
    );
    assert_synced_except(&bed, &report, &user, &racy).await;
}

/// A mapRoles that leaves less room than one more mapUsers entry under Kubernetes' 1 MiB
/// limit for a ConfigMap's data (the sum of its values).
fn huge_map_roles(current: &str, room: usize) -> String {
    const LIMIT: usize = 1024 * 1024;
    let mut text = current.to_owned();
    let mut i = 0;
    loop {
        let role = format!(
            "- rolearn: arn:aws:iam::123456789012:role/padding-{i:06}\n  username: padding-{i:06}\n  groups:\n    - padding\n"
        );
        if text.len() + role.len() > LIMIT - room {
            break;
        }
        text.push_str(&role);
        i += 1;
    }
    // A comment fills the rest exactly.
    let rest = LIMIT - room - text.len();
    if rest >= 2 {
        text.push('#');
        text.push_str(&"x".repeat(rest - 2));
        text.push('\n');
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part5_an_aws_auth_near_1_mib_fails_the_add_with_a_specific_error_and_writes_nothing() {
    let bed = own_bed("huge").await;
    let names = bed.cluster_names();
    let full = names[0].clone();
    let user = member(&bed, "huge-user").await;
    let current = aws_auth_data(&bed, &full).await["mapRoles"].clone();
    set_data_key(&bed, &full, "mapRoles", &huge_map_roles(&current, 40)).await;
    let before = aws_auth_api(&bed, &full).get("aws-auth").await.unwrap();

    let (report, ok) =
        report_of(handle_within(&app(&bed), &add_event("huge-user"), deadline()).await);
    let after = aws_auth_api(&bed, &full).get("aws-auth").await.unwrap();
    assert!(!ok, "a failed cluster fails the invocation");
    let c = cluster(&report, &full);
    assert_eq!(c.outcome, Outcome::Failed, "{c:?}");
    let reason = c.reason.as_deref().unwrap_or_default();
    for part in ["1048576", "bytes", "entries"] {
        assert!(
            reason.contains(part),
            "the reason names entries, bytes and the limit ({part}): {reason}"
        );
    }
    assert_eq!(
        before.metadata.resource_version, after.metadata.resource_version,
        "nothing was written"
    );
    assert_eq!(before.data, after.data);
    assert_synced_except(&bed, &report, &user, &full).await;
}

/// One cluster's DescribeCluster never answers: that cluster fails with its reason, the others
/// are synced, and the run returns before its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part5_a_black_holed_describe_cluster_fails_that_cluster_alone_before_the_deadline() {
    let _turn = SERIAL.lock().await;
    let bed = shared_bed();
    let hung = bed.cluster_names()[0].clone();
    let user = member(bed, "flt-eks-hole").await;
    let proxy = bed.proxy_eks().await.unwrap();
    let describe = Matcher::request("GET", &format!("/clusters/{hung}"));
    proxy.inject(describe.clone(), Fault::BlackHole, Times::Always);
    let app = app_with(bed, &bed.description().endpoints.iam, proxy.endpoint());

    let deadline = Instant::now() + Duration::from_secs(10);
    let result = run_within(&app, &add_event("flt-eks-hole"), deadline).await;
    let (report, ok) = report_of(result);
    assert!(!ok, "a failed cluster fails the invocation");
    let failed = cluster(&report, &hung);
    assert_eq!(failed.outcome, Outcome::Failed, "{failed:?}");
    assert!(
        failed.reason.as_deref().is_some_and(|r| !r.is_empty()),
        "{failed:?}"
    );
    assert!(proxy.faulted(&describe) >= 1, "the product asked EKS");
    assert_synced_except(bed, &report, &user, &hung).await;
}

/// IAM never answers: the run cannot know what to write, writes nothing, and says so before
/// its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part5_a_black_holed_iam_fails_the_run_before_its_deadline_writing_nothing() {
    let _turn = SERIAL.lock().await;
    let bed = shared_bed();
    let user = member(bed, "flt-iam-hole").await;
    let proxy = bed.proxy_iam().await.unwrap();
    proxy.inject(Matcher::any(), Fault::BlackHole, Times::Always);
    let app = app_with(bed, proxy.endpoint(), &bed.description().endpoints.eks);

    let deadline = Instant::now() + Duration::from_secs(10);
    let result = run_within(&app, &add_event("flt-iam-hole"), deadline).await;
    match result {
        Err(HandleError::Run(e)) => println!("the run failed as it should: {e}"),
        other => panic!("expected the run to fail on IAM, got {other:?}"),
    }
    for name in bed.cluster_names() {
        assert!(
            entry(bed, &name, &user.arn).await.is_none(),
            "{name}: nothing was written"
        );
    }
}
