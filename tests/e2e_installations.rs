//! End to end: two installations share one cluster of each store, and a cluster leaves one
//! installation's fleet and is released.
//!
//! Installation A is an existing stack being upgraded: its entries were written by a version
//! without installations (the legacy marker), and after the upgrade it runs as the default
//! installation (`EKS_IAM_SYNC_INSTALLATION` set, as the template sets it; no `installation` in
//! its config). Installation B is a second stack with `installation: staging` in its config.
//! They map different IAM groups; dan is in both. Through repeated alternating reconciles
//! neither writes anything after they have settled (the aws-auth resourceVersion and the access
//! entries do not move), everyone keeps working access, and dan stays with the installation
//! that mapped him first until it no longer wants him. Then B's config drops the aws-auth
//! cluster and `release` removes B's entries from it, only B's, after a diff and a question.

mod common;

use common::{
    cli_on_terminal_with, cli_with, list_pods, map_users, resource_version, start_cm_and_api,
    REGION,
};
use eks_testbed::awscli::get_token;
use eks_testbed::moto::{IssuedKeys, ACCOUNT_ID};
use eks_testbed::TestBed;

const CM: &str = "inst-cm";
const API: &str = "inst-api";
const STACK_A: &str = "123456789012/eks-iam-sync";
const A_ENV: &[(&str, &str)] = &[("EKS_IAM_SYNC_INSTALLATION", STACK_A)];

fn config(group: &str, installation: Option<&str>, clusters: &[&str]) -> serde_json::Value {
    let mut config = serde_json::json!({
        "groups": [{"iamGroup": group, "kubernetesGroups": ["developers"]}],
        "clusters": clusters.iter().map(|c| serde_json::json!({"name": c, "region": REGION})).collect::<Vec<_>>(),
    });
    if let Some(id) = installation {
        config["installation"] = id.into();
    }
    config
}

fn user_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:user/{name}")
}

/// `reconcile --output json` as the installation `env` and `config` make it; every cluster's
/// (added, changed, removed, conflicts).
fn reconcile(
    bed: &TestBed,
    config: &serde_json::Value,
    env: &[(&str, &str)],
) -> Vec<(String, u64, u64, u64, Vec<String>)> {
    let (code, out, err) = cli_with(bed, config, env, &["reconcile", "--output", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut clusters: Vec<_> = report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cluster"].as_str().unwrap().to_owned(),
                c["added"].as_u64().unwrap(),
                c["changed"].as_u64().unwrap(),
                c["removed"].as_u64().unwrap(),
                c["conflicts"]
                    .as_array()
                    .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default(),
            )
        })
        .collect();
    clusters.sort();
    clusters
}

/// The `managedBy` of each mapUsers entry on CM, by user ARN.
async fn aws_auth_owners(bed: &TestBed) -> Vec<(String, String)> {
    let mut owners: Vec<(String, String)> = map_users(bed, CM)
        .await
        .iter()
        .map(|e| {
            (
                e["userarn"].as_str().unwrap().to_owned(),
                e["managedBy"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    owners.sort();
    owners
}

/// The ownership tag of each access entry of a user on API, by principal ARN.
fn entry_owners(bed: &TestBed) -> Vec<(String, String)> {
    let mut owners: Vec<(String, String)> = bed
        .eks()
        .access_entries(ACCOUNT_ID, REGION, API)
        .into_iter()
        .filter(|e| e.principal_arn.contains(":user/"))
        .map(|e| {
            let tag = e
                .tags
                .get("eks-iam-sync/managed")
                .cloned()
                .unwrap_or_default();
            (e.principal_arn, tag)
        })
        .collect();
    owners.sort();
    owners
}

async fn can_list_pods(bed: &TestBed, cluster: &str, keys: &IssuedKeys) -> bool {
    let token = get_token(keys, cluster, REGION, None).unwrap();
    list_pods(bed, cluster, &token).await.is_ok()
}

fn pairs(entries: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = entries
        .iter()
        .map(|(user, owner)| (user_arn(user), owner.to_string()))
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_installations_share_clusters_without_a_flap_and_release_takes_only_its_own() {
    let bed = start_cm_and_api(CM, API).await;
    let seeder = bed.seeder();
    let mut keys = std::collections::BTreeMap::new();
    for group in ["team-a", "team-b"] {
        seeder.create_group(group).await.unwrap();
    }
    for (user, groups) in [
        ("ann", &["team-a"][..]),
        ("ben", &["team-b"][..]),
        ("dan", &["team-a", "team-b"][..]),
    ] {
        keys.insert(user, seeder.create_user(user).await.unwrap());
        for group in groups {
            seeder.add_user_to_group(user, group).await.unwrap();
        }
    }
    let config_a = config("team-a", None, &[CM, API]);
    let config_b = config("team-b", Some("staging"), &[CM, API]);

    // Before the upgrade: a version without installations wrote A's entries.
    assert_eq!(reconcile(&bed, &config_a, &[])[0].1, 2);
    let legacy = pairs(&[("ann", "eks-iam-sync"), ("dan", "eks-iam-sync")]);
    assert_eq!(aws_auth_owners(&bed).await, legacy);
    assert_eq!(
        entry_owners(&bed),
        pairs(&[("ann", "true"), ("dan", "true")])
    );

    // The upgraded A is the default installation: the legacy entries are its own, unchanged.
    let version = resource_version(&bed, CM).await;
    for (cluster, added, changed, removed, conflicts) in reconcile(&bed, &config_a, A_ENV) {
        assert_eq!((added, changed, removed), (0, 0, 0), "{cluster}");
        assert!(conflicts.is_empty(), "{cluster}: {conflicts:?}");
    }
    assert_eq!(
        resource_version(&bed, CM).await,
        version,
        "the upgrade rewrote aws-auth"
    );

    // B arrives: it adds ben with its own marker; dan is A's, so B reports a conflict.
    for (cluster, added, _, removed, conflicts) in reconcile(&bed, &config_b, &[]) {
        assert_eq!((added, removed), (1, 0), "{cluster}");
        assert_eq!(conflicts, [user_arn("dan")], "{cluster}");
    }
    let settled_cm = pairs(&[
        ("ann", "eks-iam-sync"),
        ("ben", "eks-iam-sync/staging"),
        ("dan", "eks-iam-sync"),
    ]);
    let settled_api = pairs(&[("ann", "true"), ("ben", "staging"), ("dan", "true")]);
    assert_eq!(aws_auth_owners(&bed).await, settled_cm);
    assert_eq!(entry_owners(&bed), settled_api);

    // Repeated full reconciles in turn, as two hourly schedules would run: not one write.
    let version = resource_version(&bed, CM).await;
    for round in 0..3 {
        for (env, config) in [(A_ENV, &config_a), (&[][..], &config_b)] {
            for (cluster, added, changed, removed, _) in reconcile(&bed, config, env) {
                assert_eq!(
                    (added, changed, removed),
                    (0, 0, 0),
                    "round {round}, {cluster}, {config}"
                );
            }
            assert_eq!(resource_version(&bed, CM).await, version, "round {round}");
            assert_eq!(aws_auth_owners(&bed).await, settled_cm, "round {round}");
            assert_eq!(entry_owners(&bed), settled_api, "round {round}");
        }
    }
    for cluster in [CM, API] {
        for user in ["ann", "ben", "dan"] {
            assert!(
                can_list_pods(&bed, cluster, &keys[user]).await,
                "{user} on {cluster}"
            );
        }
    }

    // dan leaves team-a: A removes its entry, and B, which wants him, takes him over.
    seeder
        .remove_user_from_group("dan", "team-a")
        .await
        .unwrap();
    for (cluster, _, _, removed, _) in reconcile(&bed, &config_a, A_ENV) {
        assert_eq!(removed, 1, "{cluster}");
    }
    for (cluster, added, _, _, conflicts) in reconcile(&bed, &config_b, &[]) {
        assert_eq!((added, conflicts.len()), (1, 0), "{cluster}");
    }
    for (env, config) in [(A_ENV, &config_a), (&[][..], &config_b)] {
        for (cluster, added, changed, removed, _) in reconcile(&bed, config, env) {
            assert_eq!((added, changed, removed), (0, 0, 0), "{cluster}");
        }
    }
    // A's write re-marked its own legacy entry as it rendered it again; nothing else changed.
    let a_marker = format!("eks-iam-sync/{STACK_A}");
    let handed_over = pairs(&[
        ("ann", a_marker.as_str()),
        ("ben", "eks-iam-sync/staging"),
        ("dan", "eks-iam-sync/staging"),
    ]);
    assert_eq!(aws_auth_owners(&bed).await, handed_over);
    assert!(can_list_pods(&bed, CM, &keys["dan"]).await);

    // B's fleet drops CM. A cluster still in the fleet is refused; CM is released only after
    // the question, and only B's entries go.
    let config_b = config("team-b", Some("staging"), &[API]);
    let (code, out, err) = cli_with(&bed, &config_b, &[], &["release", "--cluster", API]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("still in the fleet"), "{err}");
    let before = common::aws_auth_data(&bed, CM).await;
    let (code, out, err) = cli_with(&bed, &config_b, &[], &["release", "--cluster", CM]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("pass --yes"), "{err}");
    assert!(
        out.contains(&format!("-  userarn: {}", user_arn("ben")))
            || out.contains(&format!("-- userarn: {}", user_arn("ben"))),
        "the diff shows ben going:\n{out}"
    );
    let (code, out, _) = cli_on_terminal_with(&bed, &config_b, &[], &["release", "--cluster", CM]);
    assert_eq!(code, 3, "no answer is no:\n{out}");
    assert!(out.contains("Remove these 2 entries of staging"), "{out}");
    assert_eq!(common::aws_auth_data(&bed, CM).await, before);
    let (code, out, err) = cli_with(&bed, &config_b, &[], &["release", "--cluster", CM, "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    println!("release:\n{out}");
    assert_eq!(
        aws_auth_owners(&bed).await,
        pairs(&[("ann", a_marker.as_str())])
    );
    let after = common::aws_auth_data(&bed, CM).await;
    for (key, value) in &before {
        if key != "mapUsers" {
            assert_eq!(after.get(key), Some(value), "{key} is kept byte for byte");
        }
    }
    assert!(can_list_pods(&bed, CM, &keys["ann"]).await);
    assert!(!can_list_pods(&bed, CM, &keys["ben"]).await);
    assert_eq!(
        entry_owners(&bed),
        pairs(&[("ann", "true"), ("ben", "staging"), ("dan", "staging")]),
        "the API cluster, still B's, is untouched"
    );
    // Releasing again finds nothing; A's next reconcile finds its own entry as it was.
    let (code, out, err) = cli_with(&bed, &config_b, &[], &["release", "--cluster", CM, "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing to release"), "{out}");
    for (cluster, added, changed, removed, _) in reconcile(&bed, &config_a, A_ENV) {
        assert_eq!((added, changed, removed), (0, 0, 0), "{cluster}");
    }
}
