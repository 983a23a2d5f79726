//! End to end: IAM users deleted and recreated under the same name, renamed, or moved to
//! another path keep exactly one working entry, in aws-auth and in access entries.
//!
//! EKS binds an access entry to the principal's unique id (IAM's `UserId`), not its ARN, and
//! the test bed's EKS emulator and webhook do the same: an entry made for a user since deleted
//! refuses her namesake's token, and an entry under a user's old ARN refuses her after a rename
//! or a move. aws-auth is matched by ARN alone, so a recreated user's entry there keeps
//! working, and a renamed user's old entry matches nobody.
//!
//! One bed, one `CONFIG_MAP` and one `API` cluster; each test has users of its own and the
//! tests take turns (a run's report would otherwise count another test's changes).

mod common;

use common::{app, entry, event, list_pods, map_users, reported};
use eks_iam_sync::access_entries::{MANAGED_TAG_KEY, PRINCIPAL_ID_TAG_KEY};
use eks_iam_sync::handler::handle;
use eks_iam_sync::report::Outcome;
use eks_testbed::awscli::get_token;
use eks_testbed::eks::{AccessEntry, AuthenticationMode};
use eks_testbed::moto::IssuedKeys;
use eks_testbed::{ClusterOptions, FleetOptions, TestBed};

const GROUP: &str = "eks-developers";
const CM: &str = "cm";
const API: &str = "api";

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn bed() -> &'static TestBed {
    TestBed::shared(
        FleetOptions::new()
            .cluster(ClusterOptions::new(CM))
            .cluster(ClusterOptions::new(API).mode(AuthenticationMode::Api)),
    )
}

fn account(bed: &TestBed) -> String {
    bed.description().account_id.clone()
}

/// Every access entry of the API cluster whose principal is the IAM user `name`, whatever
/// its path.
fn entries_named(bed: &TestBed, name: &str) -> Vec<AccessEntry> {
    bed.eks()
        .access_entries(&account(bed), common::REGION, API)
        .into_iter()
        .filter(|e| {
            e.principal_arn.ends_with(&format!("/{name}")) && e.principal_arn.contains(":user/")
        })
        .collect()
}

/// The IAM user id moto reports for `name` now.
async fn user_id(bed: &TestBed, name: &str) -> String {
    let out = bed
        .seeder()
        .iam
        .get_user()
        .user_name(name)
        .send()
        .await
        .unwrap();
    out.user().unwrap().user_id().to_owned()
}

async fn can_list_pods(bed: &TestBed, cluster: &str, keys: &IssuedKeys) -> Result<(), u16> {
    let token = get_token(keys, cluster, common::REGION, None).unwrap();
    list_pods(bed, cluster, &token).await
}

/// The same with a token signed two minutes ago, for checks that expect a refusal: the API
/// server caches a successful authentication of one token for 10 s, and a token the AWS CLI
/// signs within the same second as one used before is that same token.
async fn refused_now(bed: &TestBed, cluster: &str, keys: &IssuedKeys) -> Result<(), u16> {
    let token = get_token(keys, cluster, common::REGION, Some("-2m")).unwrap();
    list_pods(bed, cluster, &token).await
}

/// Creates `name` in the mapped group and syncs her with her AddUserToGroup event.
async fn synced_user(bed: &TestBed, name: &str) -> IssuedKeys {
    let keys = bed.seeder().create_user(name).await.unwrap();
    synced(bed, name, keys).await
}

/// Adds the existing user `name` to the mapped group and syncs her.
async fn synced(bed: &TestBed, name: &str, keys: IssuedKeys) -> IssuedKeys {
    bed.seeder().add_user_to_group(name, GROUP).await.unwrap();
    handle(&app(bed), &event("add-user-to-group.json", name))
        .await
        .unwrap();
    for cluster in [CM, API] {
        assert_eq!(
            can_list_pods(bed, cluster, &keys).await,
            Ok(()),
            "{cluster}"
        );
    }
    keys
}

/// The one owned entry of `arn` in the API cluster is made for `id`, and the only one of the
/// user.
fn only_entry_is(bed: &TestBed, name: &str, arn: &str, id: &str) {
    let entries = entries_named(bed, name);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry.principal_arn, arn);
    assert_eq!(
        entry.tags.get(MANAGED_TAG_KEY).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        entry.tags.get(PRINCIPAL_ID_TAG_KEY).map(String::as_str),
        Some(id)
    );
    assert_eq!(
        entry.principal_id.as_deref(),
        Some(id),
        "EKS bound it to this id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_user_gets_working_access_from_her_next_event() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    let seeded = bed.description().credentials.users["alice"].clone();
    let old = synced(bed, "alice", seeded).await;
    let arn = old.arn.clone();
    let old_id = user_id(bed, "alice").await;
    only_entry_is(bed, "alice", &arn, &old_id);

    // alice leaves and comes back under the same name: same ARN, new id, new keys. Her
    // DeleteUser event is lost, so her access entry stays, bound to the old id.
    bed.seeder().delete_user("alice").await.unwrap();
    let new = bed.seeder().create_user("alice").await.unwrap();
    assert_eq!(new.arn, arn);
    let new_id = user_id(bed, "alice").await;
    assert_ne!(new_id, old_id);
    assert_eq!(
        can_list_pods(bed, API, &new).await,
        Err(401),
        "the old entry is not hers"
    );
    // aws-auth matches by ARN alone: the entry there already lets the new alice in.
    assert_eq!(can_list_pods(bed, CM, &new).await, Ok(()));

    bed.seeder()
        .add_user_to_group("alice", GROUP)
        .await
        .unwrap();
    let report = handle(&app(bed), &event("add-user-to-group.json", "alice"))
        .await
        .unwrap();

    let api = reported(&report, API);
    assert_eq!(api.outcome, Outcome::Updated, "{api:?}");
    assert_eq!(
        (api.added, api.changed, api.removed),
        (0, 1, 0),
        "a replacement is a change"
    );
    only_entry_is(bed, "alice", &arn, &new_id);
    assert_eq!(can_list_pods(bed, API, &new).await, Ok(()));
    assert_eq!(reported(&report, CM).outcome, Outcome::Unchanged);
    assert_eq!(can_list_pods(bed, CM, &new).await, Ok(()));
    // The deleted keys are dead everywhere.
    for cluster in [CM, API] {
        assert_eq!(refused_now(bed, cluster, &old).await, Err(401), "{cluster}");
    }

    // Converged: the next run changes nothing.
    let again = handle(&app(bed), &event("add-user-to-group.json", "alice"))
        .await
        .unwrap();
    for cluster in [CM, API] {
        assert_eq!(
            reported(&again, cluster).outcome,
            Outcome::Unchanged,
            "{cluster}"
        );
    }
}

/// After UpdateUser (rename or move) and its event: in each store exactly one entry, under the
/// new ARN, which the user's (unchanged) keys use; nothing is left under the old ARN.
async fn check_one_working_entry(
    bed: &TestBed,
    keys: &IssuedKeys,
    (old_name, old_arn): (&str, &str),
    (new_name, new_arn): (&str, &str),
    update: serde_json::Value,
) {
    let id = user_id(bed, new_name).await;
    // Until the sync, neither store lets the user in under the new ARN.
    assert_eq!(refused_now(bed, CM, keys).await, Err(401));
    assert_eq!(refused_now(bed, API, keys).await, Err(401));

    let report = handle(&app(bed), &update).await.unwrap();
    for cluster in [CM, API] {
        assert_eq!(
            reported(&report, cluster).outcome,
            Outcome::Updated,
            "{cluster}: {report:?}"
        );
        assert_eq!(can_list_pods(bed, cluster, keys).await, Ok(()), "{cluster}");
    }

    assert!(
        entry(bed, CM, old_arn).await.is_none(),
        "old aws-auth entry gone"
    );
    let owned: Vec<_> = map_users(bed, CM)
        .await
        .into_iter()
        .filter(|e| {
            let arn = e["userarn"].as_str().unwrap_or_default();
            arn.ends_with(&format!("/{old_name}")) || arn.ends_with(&format!("/{new_name}"))
        })
        .collect();
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert_eq!(owned[0]["userarn"], new_arn);
    assert_eq!(owned[0]["username"], new_name);

    if old_name != new_name {
        assert!(
            entries_named(bed, old_name).is_empty(),
            "old access entry gone"
        );
    }
    only_entry_is(bed, new_name, new_arn, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_user_ends_with_one_working_entry_in_both_stores() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    let keys = synced_user(bed, "ren").await;
    let new_arn = bed
        .seeder()
        .update_user("ren", Some("ren.smith"), None)
        .await
        .unwrap();
    assert_eq!(
        new_arn,
        format!("arn:aws:iam::{}:user/ren.smith", account(bed))
    );
    let mut update = event("update-user-rename.json", "ren");
    update["detail"]["requestParameters"]["newUserName"] = "ren.smith".into();
    check_one_working_entry(
        bed,
        &keys,
        ("ren", &keys.arn),
        ("ren.smith", &new_arn),
        update,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_moved_to_another_path_ends_with_one_working_entry_in_both_stores() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    let keys = synced_user(bed, "pat").await;
    let new_arn = bed
        .seeder()
        .update_user("pat", None, Some("/engineering/"))
        .await
        .unwrap();
    assert_eq!(
        new_arn,
        format!("arn:aws:iam::{}:user/engineering/pat", account(bed))
    );
    let update = event("update-user-path.json", "pat");
    check_one_working_entry(bed, &keys, ("pat", &keys.arn), ("pat", &new_arn), update).await;
}
