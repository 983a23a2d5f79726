//! End to end on the test bed with three clusters: IAM membership events become per-user
//! aws-auth entries, real AWS CLI tokens of those users work (or stop working), the audit logs
//! name the person, and nothing the tool does not own changes. The function authenticates as
//! its own IAM role with only the RBAC in deploy/rbac.yaml.

mod common;

use common::*;
use eks_iam_sync::handler::handle;
use eks_iam_sync::report::Outcome;
use eks_testbed::awscli::get_token;
use eks_testbed::bootstrap::initial_map_roles;
use eks_testbed::{TestBed, TestBedOptions};

const GROUP: &str = "eks-developers";

fn bed() -> &'static TestBed {
    TestBed::shared(TestBedOptions {
        clusters: 3,
        name_prefix: "dev".into(),
    })
}

fn hand_entry(name: &str) -> String {
    format!(
        "- userarn: arn:aws:iam::123456789012:user/{name}\n  username: {name}\n  groups:\n    - ops\n  comment: added by hand\n"
    )
}

#[tokio::test]
async fn alice_gets_access_in_every_cluster_then_loses_it() {
    let bed = bed();
    let app = app(bed);
    let clusters = bed.cluster_names();
    for c in &clusters {
        add_hand_entry(bed, c, &hand_entry("hand-alice")).await;
    }
    let hand_before: Vec<_> = {
        let mut v = Vec::new();
        for c in &clusters {
            v.push(entry(bed, c, "arn:aws:iam::123456789012:user/hand-alice").await);
        }
        v
    };
    let alice = bed.description().credentials.users["alice"].clone();
    bed.seeder()
        .add_user_to_group("alice", GROUP)
        .await
        .unwrap();

    let report = handle(&app, &event("add-user-to-group.json", "alice"))
        .await
        .unwrap();
    assert_eq!(report.clusters.len(), 3);
    for c in &report.clusters {
        assert_eq!(c.outcome, Outcome::Updated, "{c:?}");
        assert_eq!(c.added, 1);
    }
    for c in &clusters {
        let e = entry(bed, c, &alice.arn).await.expect("alice is mapped");
        assert_eq!(e["username"], "alice");
        assert_eq!(e["groups"], serde_json::json!(["developers"]));
        assert_eq!(e["managedBy"], "eks-iam-sync");
        assert_eq!(
            aws_auth_data(bed, c).await["mapRoles"],
            initial_map_roles(),
            "mapRoles is byte-identical"
        );
        let token = get_token(&alice, c, REGION, None).unwrap();
        list_pods(bed, c, &token)
            .await
            .expect("alice can list pods");
        assert!(audited(bed, c, "alice").await, "{c}: audit log names alice");
    }

    // The same event again changes nothing: the event is a hint, IAM is the truth.
    let again = handle(&app, &event("add-user-to-group.json", "alice"))
        .await
        .unwrap();
    assert!(again
        .clusters
        .iter()
        .all(|c| c.outcome == Outcome::Unchanged));

    bed.seeder()
        .remove_user_from_group("alice", GROUP)
        .await
        .unwrap();
    let report = handle(&app, &event("remove-user-from-group.json", "alice"))
        .await
        .unwrap();
    for c in &report.clusters {
        assert_eq!(c.outcome, Outcome::Updated, "{c:?}");
        assert_eq!(c.removed, 1);
    }
    for (i, c) in clusters.iter().enumerate() {
        assert!(entry(bed, c, &alice.arn).await.is_none());
        // A token signed at another second than the one that got in: kube-apiserver caches a
        // successful authentication of the same token for 10 s (EKS too).
        let token = get_token(&alice, c, REGION, Some("-2m")).unwrap();
        assert_eq!(
            list_pods(bed, c, &token).await,
            Err(401),
            "{c}: alice is denied"
        );
        assert_eq!(
            entry(bed, c, "arn:aws:iam::123456789012:user/hand-alice").await,
            hand_before[i],
            "the hand entry survives"
        );
        assert_eq!(aws_auth_data(bed, c).await["mapRoles"], initial_map_roles());
    }
}

#[tokio::test]
async fn delete_user_removes_the_entry() {
    let bed = bed();
    let app = app(bed);
    let seeder = bed.seeder();
    let dave = seeder.create_user("dave").await.unwrap();
    seeder.add_user_to_group("dave", GROUP).await.unwrap();
    handle(&app, &event("add-user-to-group.json", "dave"))
        .await
        .unwrap();
    for c in bed.cluster_names() {
        assert!(entry(bed, &c, &dave.arn).await.is_some());
    }
    // IAM refuses to delete a user with group memberships or access keys.
    seeder.remove_user_from_group("dave", GROUP).await.unwrap();
    seeder
        .iam
        .delete_access_key()
        .user_name("dave")
        .access_key_id(&dave.access_key_id)
        .send()
        .await
        .unwrap();
    seeder
        .iam
        .delete_user()
        .user_name("dave")
        .send()
        .await
        .unwrap();

    let report = handle(&app, &event("delete-user.json", "dave"))
        .await
        .unwrap();
    for c in &report.clusters {
        assert_eq!(c.outcome, Outcome::Updated, "{c:?}");
        assert_eq!(c.removed, 1);
    }
    for c in bed.cluster_names() {
        assert!(entry(bed, &c, &dave.arn).await.is_none());
    }
}

#[tokio::test]
async fn a_forged_event_grants_nothing() {
    let bed = bed();
    let app = app(bed);
    // bob exists but is in no mapped group: an AddUserToGroup event naming him is only a hint.
    let bob = bed.description().credentials.users["bob"].clone();
    let report = handle(&app, &event("add-user-to-group.json", "bob"))
        .await
        .unwrap();
    assert!(report
        .clusters
        .iter()
        .all(|c| c.outcome == Outcome::Unchanged));
    for c in bed.cluster_names() {
        assert!(entry(bed, &c, &bob.arn).await.is_none());
    }
}

#[tokio::test]
async fn a_desired_user_with_a_hand_entry_is_a_conflict_and_left_alone() {
    let bed = bed();
    let app = app(bed);
    let seeder = bed.seeder();
    let erin = seeder.create_user("erin").await.unwrap();
    let hand = format!(
        "- userarn: {}\n  username: erin-by-hand\n  groups:\n    - ops\n",
        erin.arn
    );
    let cluster = &bed.cluster_names()[0];
    add_hand_entry(bed, cluster, &hand).await;
    seeder.add_user_to_group("erin", GROUP).await.unwrap();

    let report = handle(&app, &event("add-user-to-group.json", "erin"))
        .await
        .unwrap();
    let first = &report.clusters[0];
    assert_eq!(first.outcome, Outcome::Conflict, "{first:?}");
    assert_eq!(first.conflicts, vec![erin.arn.clone()]);
    assert!(report.clusters[1..]
        .iter()
        .all(|c| c.outcome == Outcome::Updated));
    let entries: Vec<_> = map_users(bed, cluster)
        .await
        .into_iter()
        .filter(|e| e["userarn"] == erin.arn.as_str())
        .collect();
    assert_eq!(entries.len(), 1, "neither duplicated nor overwritten");
    assert_eq!(entries[0]["username"], "erin-by-hand");
}
