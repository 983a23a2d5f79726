//! End to end on the test bed: aws-auth is read as the authenticator reads it, entries the tool
//! does not own keep their bytes, IAM group names ignore case, and nothing but an unreadable
//! `mapUsers` blocks a write (and even that never blocks a revocation of the tool's own entries).
//!
//! One test bed of four clusters for the file; each case writes its own cluster only (its app's
//! config lists just that one) and uses its own IAM users, so the cases can run at once.

mod common;

use common::*;
use eks_iam_sync::config::GroupMapping;
use eks_iam_sync::handler::{handle, HandleError};
use eks_iam_sync::report::{Outcome, Report};
use eks_iam_sync::sync::App;
use eks_testbed::bootstrap::{initial_map_roles, sync_role_arn};
use eks_testbed::{TestBed, TestBedOptions};

const ACCOUNT: &str = "123456789012";
const GROUP: &str = "eks-developers";

fn bed() -> &'static TestBed {
    TestBed::shared(TestBedOptions {
        clusters: 4,
        name_prefix: "awsauth".into(),
    })
}

/// The product, syncing only the `index`-th cluster of the bed.
fn app_for(bed: &TestBed, index: usize) -> (App, String) {
    let cluster = bed.cluster_names()[index].clone();
    let mut app = app(bed);
    app.config.clusters.retain(|c| c.name == cluster);
    assert_eq!(app.config.clusters.len(), 1);
    (app, cluster)
}

fn user_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{name}")
}

async fn new_member(bed: &TestBed, user: &str, group: &str) {
    bed.seeder().create_user(user).await.unwrap();
    bed.seeder().add_user_to_group(user, group).await.unwrap();
}

async fn run(app: &App, file: &str, user: &str) -> Report {
    handle(app, &event(file, user)).await.unwrap()
}

async fn map_users_text(bed: &TestBed, cluster: &str) -> String {
    aws_auth_data(bed, cluster)
        .await
        .get("mapUsers")
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_roles_the_old_parser_refused_blocks_neither_an_add_nor_a_remove() {
    let bed = bed();
    let (app, cluster) = app_for(bed, 0);
    // A key repeated inside one entry: the authenticator (yaml.v2, non-strict) takes the later
    // value; the old parser here refused the whole ConfigMap. The test bed's webhook parses
    // mapRoles strictly, so it would drop every role mapping, the function's own among them;
    // the authenticator also looks a role ARN up in mapUsers (mapper.go `Map`), so the
    // function's role is mapped there too, as a hand-made entry, for the webhook's sake.
    let map_roles = format!(
        "{}- rolearn: arn:aws:iam::{ACCOUNT}:role/legacy\n  username: legacy\n  username: legacy-2\n  groups: [on, 0777]\n",
        initial_map_roles()
    );
    set_data_key(bed, &cluster, "mapRoles", &map_roles).await;
    add_hand_entry(
        bed,
        &cluster,
        &format!(
            "- userarn: {}\n  username: eks-iam-sync\n  groups:\n    - eks-iam-sync\n",
            sync_role_arn(ACCOUNT)
        ),
    )
    .await;

    new_member(bed, "roles-user", GROUP).await;
    let report = run(&app, "add-user-to-group.json", "roles-user").await;
    assert_eq!(report.clusters[0].outcome, Outcome::Updated, "{report:?}");
    assert!(entry(bed, &cluster, &user_arn("roles-user"))
        .await
        .is_some());
    assert_eq!(aws_auth_data(bed, &cluster).await["mapRoles"], map_roles);

    bed.seeder()
        .remove_user_from_group("roles-user", GROUP)
        .await
        .unwrap();
    let report = run(&app, "remove-user-from-group.json", "roles-user").await;
    assert_eq!(report.clusters[0].outcome, Outcome::Updated, "{report:?}");
    assert_eq!(report.clusters[0].removed, 1);
    assert!(entry(bed, &cluster, &user_arn("roles-user"))
        .await
        .is_none());
    assert_eq!(aws_auth_data(bed, &cluster).await["mapRoles"], map_roles);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_entries_with_yaml_1_1_values_keep_their_bytes_across_writes() {
    let bed = bed();
    let (app, cluster) = app_for(bed, 1);
    let hand = format!(
        "# break-glass admins: keep as written\n- userarn: arn:aws:iam::{ACCOUNT}:user/edge-admin\n  username: \"on\"   # quoted on purpose: plain on is a boolean in YAML 1.1\n  groups: [0777, 1:20, yes, ~]\n- {{userarn: 'arn:aws:iam::{ACCOUNT}:user/edge-ops', username: 'n', groups: [1_000, .inf]}}\n"
    );
    set_data_key(bed, &cluster, "mapUsers", &hand).await;

    new_member(bed, "edge-user", GROUP).await;
    let report = run(&app, "add-user-to-group.json", "edge-user").await;
    assert_eq!(report.clusters[0].outcome, Outcome::Updated, "{report:?}");
    let written = map_users_text(bed, &cluster).await;
    assert!(
        written.starts_with(&hand),
        "hand entries byte-identical:\n{written}"
    );
    assert!(entry(bed, &cluster, &user_arn("edge-user")).await.is_some());

    bed.seeder()
        .remove_user_from_group("edge-user", GROUP)
        .await
        .unwrap();
    run(&app, "remove-user-from-group.json", "edge-user").await;
    assert_eq!(map_users_text(bed, &cluster).await, hand);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_in_another_case_give_the_same_access_on_both_paths() {
    let bed = bed();
    let (mut app, cluster) = app_for(bed, 3);
    // IAM spells one group in lower case and the config in upper case, the other the reverse.
    bed.seeder().create_group("EKS-Case-Viewers").await.unwrap();
    app.config.groups = vec![
        GroupMapping {
            iam_group: "EKS-Developers".into(),
            kubernetes_groups: vec!["developers".into()],
        },
        GroupMapping {
            iam_group: "eks-case-viewers".into(),
            kubernetes_groups: vec!["viewers".into()],
        },
    ];
    new_member(bed, "case-user", GROUP).await;
    bed.seeder()
        .add_user_to_group("case-user", "EKS-Case-Viewers")
        .await
        .unwrap();

    let event_report = run(&app, "add-user-to-group.json", "case-user").await;
    assert_eq!(event_report.clusters[0].outcome, Outcome::Updated);
    let from_event = entry(bed, &cluster, &user_arn("case-user")).await.unwrap();
    assert_eq!(
        from_event["groups"],
        serde_json::json!(["developers", "viewers"])
    );

    let reconcile: serde_json::Value = serde_json::json!({"action": "reconcile"});
    let report = handle(&app, &reconcile).await.unwrap();
    let from_reconcile = entry(bed, &cluster, &user_arn("case-user")).await.unwrap();
    // The entry itself is the check: the other tests of this file change the shared IAM group
    // meanwhile, so the full reconcile may add (and, after its re-read, remove again) their users
    // on this cluster; its counts are not this user's alone.
    assert_eq!(from_reconcile, from_event, "{report:?}");
    assert!(
        matches!(
            report.clusters[0].outcome,
            Outcome::Updated | Outcome::Unchanged
        ),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_map_users_blocks_an_add_with_its_reason_but_not_a_revocation() {
    let bed = bed();
    let (app, cluster) = app_for(bed, 2);
    new_member(bed, "unsafe-user", GROUP).await;
    run(&app, "add-user-to-group.json", "unsafe-user").await;
    assert!(entry(bed, &cluster, &user_arn("unsafe-user"))
        .await
        .is_some());
    // An alias across items: each item no longer reads on its own, so the text cannot be cut
    // into entries with certainty.
    let hand = format!(
        "- &admin\n  userarn: arn:aws:iam::{ACCOUNT}:user/unsafe-admin\n  username: admin\n- <<: *admin\n  userarn: arn:aws:iam::{ACCOUNT}:user/unsafe-admin2\n"
    );
    let unsafe_text = format!("{hand}{}", map_users_text(bed, &cluster).await);
    set_data_key(bed, &cluster, "mapUsers", &unsafe_text).await;

    new_member(bed, "unsafe-new", GROUP).await;
    let err = handle(&app, &event("add-user-to-group.json", "unsafe-new"))
        .await
        .unwrap_err();
    let HandleError::ClustersFailed(report) = err else {
        panic!("expected ClustersFailed, got {err}");
    };
    assert_eq!(report.clusters[0].outcome, Outcome::Failed);
    let reason = report.clusters[0].reason.as_deref().unwrap();
    for part in [
        "mapUsers",
        "not granted to",
        "user/unsafe-new",
        "item 2 (line 4)",
        "alias",
    ] {
        assert!(reason.contains(part), "{part:?} missing from: {reason}");
    }
    assert_eq!(
        map_users_text(bed, &cluster).await,
        unsafe_text,
        "nothing written"
    );

    bed.seeder()
        .remove_user_from_group("unsafe-user", GROUP)
        .await
        .unwrap();
    let report = run(&app, "remove-user-from-group.json", "unsafe-user").await;
    assert_eq!(report.clusters[0].outcome, Outcome::Updated, "{report:?}");
    assert_eq!(report.clusters[0].removed, 1);
    assert!(entry(bed, &cluster, &user_arn("unsafe-user"))
        .await
        .is_none());
    let left = map_users_text(bed, &cluster).await;
    assert!(left.starts_with(&hand), "hand items kept:\n{left}");
    assert!(
        !left.contains("unsafe-user"),
        "only our own text was cut:\n{left}"
    );
}
