//! Issue 8, part 1: overlapping runs never undo a later IAM change.
//!
//! Each interleaving is forced with the test bed's fault proxy in front of moto: the stale run
//! reads IAM through the proxy, which holds that one answer (IAM has really answered: the user
//! is still a member) until the test releases it. Meanwhile the user is removed in moto
//! directly and the remove event's own run finishes. Only then does the stale run get its
//! answer and go on to write. Once every run has finished, the user must be revoked on every
//! cluster: no entry in the store the cluster's mode reads, and a fresh AWS CLI token refused.
//!
//! The fleet mixes `CONFIG_MAP` clusters (aws-auth, whose writes carry a resourceVersion) and an
//! `API` cluster (access entries, which have no write precondition at all), so every case also
//! covers part 1 (c). The tests share one bed and take turns: a full reconcile touches every
//! user.

mod common;

use common::access::*;
use common::within::handle_within;
use common::*;
use eks_testbed::eks::AuthenticationMode;
use eks_testbed::moto::IssuedKeys;
use eks_testbed::{ClusterOptions, FleetOptions, Hold, Matcher, TestBed};

const GROUP: &str = "eks-developers";

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn bed() -> &'static TestBed {
    TestBed::shared(
        FleetOptions::new()
            .cluster(ClusterOptions::new("ovl-cm0"))
            .cluster(ClusterOptions::new("ovl-cm1"))
            .cluster(ClusterOptions::new("ovl-api").mode(AuthenticationMode::Api)),
    )
}

/// A new IAM user in the mapped group; with `synced`, already brought onto every cluster.
async fn member(bed: &TestBed, name: &str, synced: bool) -> IssuedKeys {
    let keys = bed.seeder().create_user(name).await.unwrap();
    bed.seeder().add_user_to_group(name, GROUP).await.unwrap();
    if synced {
        handle_within(
            &app(bed),
            &event("add-user-to-group.json", name),
            deadline(),
        )
        .await
        .expect("the first sync succeeds");
        assert_granted_everywhere(bed, &keys).await;
    }
    keys
}

/// While `hold` keeps the stale run's IAM answer back: `user` leaves the group (in moto,
/// not through the proxy) and the RemoveUserFromGroup event is handled to completion; then
/// the answer is released.
async fn remove_while_held(bed: &TestBed, hold: &Hold, user: &str) {
    guarded("the stale run's held IAM answer", hold.reached()).await;
    bed.seeder()
        .remove_user_from_group(user, GROUP)
        .await
        .unwrap();
    let removal = handle_within(
        &app(bed),
        &event("remove-user-from-group.json", user),
        deadline(),
    )
    .await;
    hold.release();
    let report = removal.expect("the remove event's run succeeds");
    assert!(
        report
            .clusters
            .iter()
            .all(|c| c.outcome != eks_iam_sync::report::Outcome::Failed),
        "{report:?}"
    );
}

/// Run A (AddUserToGroup) reads ListGroupsForUser through the proxy; its answer is held while
/// the user is removed and run B (RemoveUserFromGroup) finishes; then A goes on.
async fn stale_add_overlapping_a_remove(user: &str, synced_before: bool) {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    let keys = member(bed, user, synced_before).await;
    let proxy = bed.proxy_iam().await.unwrap();
    let stale = app_with(bed, proxy.endpoint(), &bed.description().endpoints.eks);
    let hold = proxy.hold(Matcher::iam("ListGroupsForUser").param("UserName", user));

    let add = event("add-user-to-group.json", user);
    let run_a = handle_within(&stale, &add, deadline());
    let (a, ()) = tokio::join!(run_a, remove_while_held(bed, &hold, user));
    let a = a.expect("run A finishes without failing");
    assert!(
        proxy.count(&Matcher::iam("ListGroupsForUser")) >= 1,
        "run A read IAM through the proxy"
    );
    println!("run A: {}", serde_json::to_string(&a).unwrap());
    assert_revoked_everywhere(bed, &keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part1_a_a_stale_add_after_a_remove_ends_revoked_on_config_map_and_api_clusters() {
    stale_add_overlapping_a_remove("ovl-alice", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part1_b_a_stale_add_for_a_never_synced_user_ends_revoked_on_config_map_and_api_clusters() {
    stale_add_overlapping_a_remove("ovl-never", false).await;
}

/// A full reconcile whose GetGroup answer (the user still a member) is held while the user is
/// removed and the remove event is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part1_d_a_full_reconcile_that_read_the_group_before_a_removal_ends_revoked() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    let user = "ovl-recon";
    let keys = member(bed, user, true).await;
    let proxy = bed.proxy_iam().await.unwrap();
    let stale = app_with(bed, proxy.endpoint(), &bed.description().endpoints.eks);
    let hold = proxy.hold(Matcher::iam("GetGroup").param("GroupName", GROUP));

    let reconcile = serde_json::json!({"action": "reconcile"});
    let run_a = handle_within(&stale, &reconcile, deadline());
    let (a, ()) = tokio::join!(run_a, remove_while_held(bed, &hold, user));
    let a = a.expect("the reconcile finishes without failing");
    println!("reconcile: {}", serde_json::to_string(&a).unwrap());
    assert_revoked_everywhere(bed, &keys).await;
}

/// An operator's `eks-iam-sync reconcile` (the built binary, as its own process, configured from
/// the bed's environment with IAM behind the proxy) overlapping a remove event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part1_an_operators_reconcile_overlapping_a_remove_event_ends_revoked() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    let user = "ovl-operator";
    let keys = member(bed, user, true).await;
    let proxy = bed.proxy_iam().await.unwrap();
    let hold = proxy.hold(Matcher::iam("GetGroup").param("GroupName", GROUP));

    let description = bed.description();
    let home = tempfile_dir();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_eks-iam-sync"))
        .arg("reconcile")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .envs(&description.env)
        .env("AWS_ENDPOINT_URL_IAM", proxy.endpoint())
        .env("EKS_IAM_SYNC_CONFIG", description.sync_config.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let (output, ()) = tokio::join!(
        child.wait_with_output(),
        remove_while_held(bed, &hold, user)
    );
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "eks-iam-sync reconcile failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        hold.is_reached(),
        "the operator's reconcile read IAM through the proxy"
    );
    assert_revoked_everywhere(bed, &keys).await;
}

/// A private HOME for the child process (the SDK looks for profiles there).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("e2e-overlap-home-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
