//! End to end on a mixed fleet, the one a platform team has: in another account, reached
//! through `roleArn`, a `CONFIG_MAP` cluster and an `API_AND_CONFIG_MAP` cluster in another
//! region; in the function's own account, an `API` cluster in another region, a `CONFIG_MAP`
//! cluster that later moves to access entries, and two unlisted clusters for discovery (one
//! tagged, one not). The other account's clusters see the assumed role: its token writes
//! aws-auth in `cm`, and its EKS calls write the access entries of `both`.
//!
//! The function is wired as `main` wires it (its own role, STS AssumeRole for the other
//! account, one EKS client per region and identity); users prove access with their real
//! AWS CLI tokens and the audit logs name them. The tests share one bed and run one at a time
//! (full reconciles and mode changes would otherwise race the other tests' assertions).

mod common;

use std::sync::Arc;

use aws_credential_types::provider::SharedCredentialsProvider;
use common::{audited, entry, event, list_pods, reported};
use eks_iam_sync::cluster::{EksDirectory, DEFAULT_CACHE_TTL};
use eks_iam_sync::config::Config;
use eks_iam_sync::credentials::AssumeRoles;
use eks_iam_sync::handler::{handle, HandleError};
use eks_iam_sync::iam::SdkIam;
use eks_iam_sync::report::{Outcome, Report};
use eks_iam_sync::sync::{App, TokenConnector};
use eks_testbed::awscli::get_token;
use eks_testbed::bed::ClusterInfo;
use eks_testbed::eks::{AccessEntry, AuthenticationMode, CreateAccessEntryRequest, InjectedError};
use eks_testbed::moto::IssuedKeys;
use eks_testbed::{ClusterOptions, FleetOptions, TestBed};

const GROUP: &str = "eks-developers";
const OTHER_ACCOUNT: &str = "210987654321";
const DISCOVERY_TAG: (&str, &str) = ("eks-iam-sync", "enabled");
/// The clusters a run syncs: the four listed ones and the tagged one discovery finds.
const SYNCED: [&str; 5] = ["cm", "both", "api", "moving", "found"];

/// Tests take turns on the shared bed.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn bed() -> &'static TestBed {
    use AuthenticationMode::{Api, ApiAndConfigMap};
    let (key, value) = DISCOVERY_TAG;
    TestBed::shared(
        FleetOptions::new()
            .cluster(ClusterOptions::new("cm").account(OTHER_ACCOUNT))
            .cluster(
                ClusterOptions::new("both")
                    .account(OTHER_ACCOUNT)
                    .region("eu-west-1")
                    .mode(ApiAndConfigMap),
            )
            .cluster(ClusterOptions::new("api").region("us-west-2").mode(Api))
            .cluster(ClusterOptions::new("moving"))
            .cluster(
                ClusterOptions::new("found")
                    .region("us-west-2")
                    .mode(Api)
                    .tag(key, value)
                    .unlisted(),
            )
            .cluster(
                ClusterOptions::new("ignored")
                    .region("us-west-2")
                    .mode(Api)
                    .unlisted(),
            ),
    )
}

/// The product's config for the bed: every listed cluster (with its `roleArn` when it lives in
/// another account) and discovery of the tagged clusters in us-west-2.
fn config(bed: &TestBed) -> Config {
    let (key, value) = DISCOVERY_TAG;
    let clusters: Vec<serde_json::Value> = bed
        .description()
        .clusters
        .iter()
        .filter(|c| c.listed)
        .map(|c| {
            let mut cluster = serde_json::json!({"name": c.name, "region": c.region});
            if let Some(role) = &c.role_arn {
                cluster["roleArn"] = role.as_str().into();
            }
            cluster
        })
        .collect();
    let document = serde_json::json!({
        "groups": [{"iamGroup": GROUP, "kubernetesGroups": ["developers"]}],
        "clusters": clusters,
        "discovery": {"regions": ["us-west-2"], "tags": {key: value}},
    });
    Config::parse(&document.to_string()).expect("fleet config is valid")
}

/// The product wired as `main` wires it, as its own role, against the bed's endpoints.
fn app(bed: &TestBed) -> App {
    let description = bed.description();
    let own = SharedCredentialsProvider::new(description.credentials.sync_role.sdk_credentials());
    let sdk = |endpoint: &str| eks_iam_sync::aws::config_for(common::REGION, endpoint, own.clone());
    let identities = Arc::new(AssumeRoles::new(
        own.clone(),
        aws_sdk_sts::Client::new(&sdk(&description.endpoints.sts)),
    ));
    App {
        config: config(bed),
        iam: Box::new(SdkIam::new(aws_sdk_iam::Client::new(&sdk(&description
            .endpoints
            .iam)))),
        clusters: Box::new(EksDirectory::with_identities(
            sdk(&description.endpoints.eks),
            DEFAULT_CACHE_TTL,
            identities.clone(),
        )),
        connector: Box::new(TokenConnector::new(identities)),
    }
}

fn info<'a>(bed: &'a TestBed, cluster: &str) -> &'a ClusterInfo {
    bed.cluster(cluster).expect("cluster of the fleet")
}

fn access_entry(bed: &TestBed, cluster: &str, principal: &str) -> Option<AccessEntry> {
    let c = info(bed, cluster);
    bed.eks()
        .access_entry_for(&c.account_id, &c.region, cluster, principal)
}

fn clusters_of(report: &Report) -> Vec<&str> {
    let mut names: Vec<&str> = report.clusters.iter().map(|c| c.cluster.as_str()).collect();
    names.sort();
    names
}

async fn new_user(bed: &TestBed, name: &str) -> IssuedKeys {
    bed.seeder().create_user(name).await.unwrap()
}

/// Waits for the audit log of `cluster` to show a request authenticated as the IAM role `role`.
async fn audited_as(bed: &TestBed, cluster: &str, role: &str) -> bool {
    for _ in 0..50 {
        let events = bed.audit_events(cluster).unwrap();
        if events
            .iter()
            .any(|e| e["user"]["extra"]["canonicalArn"][0] == role)
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// Lists pods on `cluster` with `user`'s AWS CLI token.
async fn can_list_pods(bed: &TestBed, cluster: &str, user: &IssuedKeys) -> Result<(), u16> {
    let token = get_token(user, cluster, &info(bed, cluster).region, None).unwrap();
    list_pods(bed, cluster, &token).await
}

/// The same with a token signed two minutes ago: the API server caches a successful
/// authentication of one token for 10 s, and a token signed within the same second as one used
/// before access was revoked is the same token. A revocation check must not meet that cache.
async fn can_list_pods_after_revocation(
    bed: &TestBed,
    cluster: &str,
    user: &IssuedKeys,
) -> Result<(), u16> {
    let token = get_token(user, cluster, &info(bed, cluster).region, Some("-2m")).unwrap();
    list_pods(bed, cluster, &token).await
}

/// CreateAccessEntry/UpdateAccessEntry/DeleteAccessEntry calls so far.
fn eks_writes(bed: &TestBed) -> u64 {
    [
        "CreateAccessEntry",
        "UpdateAccessEntry",
        "DeleteAccessEntry",
    ]
    .iter()
    .map(|op| bed.eks().calls(op))
    .sum()
}

/// An untagged entry, as an operator makes one with the AWS CLI.
fn hand_entry(bed: &TestBed, cluster: &str, principal: &str, username: &str) -> AccessEntry {
    let c = info(bed, cluster);
    bed.eks()
        .create_access_entry(
            &c.account_id,
            &c.region,
            cluster,
            CreateAccessEntryRequest {
                username: Some(username.into()),
                kubernetes_groups: vec!["ops".into()],
                ..CreateAccessEntryRequest::new(principal)
            },
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_change_reaches_every_mode_region_and_account() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    let app = app(bed);
    let alice = bed.description().credentials.users["alice"].clone();
    bed.seeder()
        .add_user_to_group("alice", GROUP)
        .await
        .unwrap();

    let report = handle(&app, &event("add-user-to-group.json", "alice"))
        .await
        .unwrap();
    assert_eq!(clusters_of(&report), {
        let mut s = SYNCED.to_vec();
        s.sort();
        s
    });
    for c in &report.clusters {
        assert_eq!((c.outcome, c.added), (Outcome::Updated, 1), "{c:?}");
    }
    for (cluster, backend) in [
        ("cm", "configMap"),
        ("both", "accessEntries"),
        ("api", "accessEntries"),
        ("moving", "configMap"),
        ("found", "accessEntries"),
    ] {
        assert_eq!(
            reported(&report, cluster).backend,
            Some(backend),
            "{cluster}"
        );
    }
    // aws-auth where the mode reads only aws-auth; a tagged access entry elsewhere.
    for cluster in ["cm", "moving"] {
        let mapped = entry(bed, cluster, &alice.arn)
            .await
            .expect("alice in aws-auth");
        assert_eq!(mapped["managedBy"], "eks-iam-sync", "{cluster}");
    }
    // The other account's clusters saw the role the function assumed there, not the function.
    for cluster in ["cm", "both"] {
        let role = info(bed, cluster).role_arn.clone().expect("other account");
        assert!(role.contains(OTHER_ACCOUNT), "{role}");
        assert!(
            audited_as(bed, cluster, &role).await,
            "{cluster}: the audit log shows {role}"
        );
    }
    for cluster in ["both", "api", "found"] {
        let e = access_entry(bed, cluster, &alice.arn).expect("alice's access entry");
        assert_eq!(e.username, "alice", "{cluster}");
        assert_eq!(e.kubernetes_groups, ["developers"], "{cluster}");
        assert_eq!(e.tags["eks-iam-sync/managed"], "true", "{cluster}");
        assert!(
            entry(bed, cluster, &alice.arn).await.is_none(),
            "{cluster}: no aws-auth entry"
        );
    }
    assert!(access_entry(bed, "ignored", &alice.arn).is_none());
    for cluster in SYNCED {
        can_list_pods(bed, cluster, &alice)
            .await
            .unwrap_or_else(|status| panic!("{cluster}: alice is refused with {status}"));
        assert!(
            audited(bed, cluster, "alice").await,
            "{cluster}: the audit log names alice"
        );
    }

    // The same event again: nothing to write, no EKS write call.
    let writes = eks_writes(bed);
    let again = handle(&app, &event("add-user-to-group.json", "alice"))
        .await
        .unwrap();
    assert!(
        again
            .clusters
            .iter()
            .all(|c| c.outcome == Outcome::Unchanged),
        "{again:?}"
    );
    assert_eq!(eks_writes(bed), writes);

    bed.seeder()
        .remove_user_from_group("alice", GROUP)
        .await
        .unwrap();
    let report = handle(&app, &event("remove-user-from-group.json", "alice"))
        .await
        .unwrap();
    for c in &report.clusters {
        assert_eq!((c.outcome, c.removed), (Outcome::Updated, 1), "{c:?}");
    }
    for cluster in SYNCED {
        assert_eq!(
            can_list_pods_after_revocation(bed, cluster, &alice).await,
            Err(401),
            "{cluster}: alice is denied"
        );
        assert!(
            access_entry(bed, cluster, &alice.arn).is_none(),
            "{cluster}"
        );
        assert!(entry(bed, cluster, &alice.arn).await.is_none(), "{cluster}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_access_entries_survive_a_full_reconcile() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    let app = app(bed);
    let seeder = bed.seeder();
    // carol has a hand-made entry and is in no mapped group; erin has one and joins the group.
    let carol = new_user(bed, "carol").await;
    let erin = new_user(bed, "erin").await;
    let mut before = Vec::new();
    for cluster in ["both", "api"] {
        before.push(hand_entry(bed, cluster, &carol.arn, "carol-by-hand"));
    }
    let erin_by_hand = hand_entry(bed, "api", &erin.arn, "erin-by-hand");
    let all_of_api = || {
        let c = info(bed, "api");
        bed.eks().access_entries(&c.account_id, &c.region, "api")
    };
    let seeded: Vec<AccessEntry> = all_of_api();
    seeder.add_user_to_group("erin", GROUP).await.unwrap();

    let full = serde_json::json!({"action": "reconcile", "dryRun": false});
    let report = handle(&app, &full).await.unwrap();
    let api = reported(&report, "api");
    assert_eq!(api.outcome, Outcome::Conflict, "{api:?}");
    assert_eq!(api.conflicts, std::slice::from_ref(&erin.arn));
    assert_eq!(reported(&report, "both").outcome, Outcome::Updated);
    assert_eq!(access_entry(bed, "api", &erin.arn), Some(erin_by_hand));
    assert_eq!(
        access_entry(bed, "both", &erin.arn).map(|e| e.username),
        Some("erin".into())
    );
    for (cluster, hand) in ["both", "api"].into_iter().zip(&before) {
        assert_eq!(
            access_entry(bed, cluster, &carol.arn).as_ref(),
            Some(hand),
            "{cluster}: the hand-made entry is untouched"
        );
    }
    // Everything else the cluster held (node and admin roles) is untouched too.
    assert_eq!(all_of_api(), seeded);

    // erin leaves the group: her owned entries go, the hand-made one stays.
    seeder.remove_user_from_group("erin", GROUP).await.unwrap();
    let report = handle(&app, &full).await.unwrap();
    assert!(report.clusters.iter().all(|c| c.outcome != Outcome::Failed));
    assert_eq!(
        access_entry(bed, "api", &erin.arn).map(|e| e.username),
        Some("erin-by-hand".into())
    );
    assert!(access_entry(bed, "both", &erin.arn).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_syncs_the_tagged_cluster_and_ignores_the_untagged_one() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    let app = app(bed);
    let dora = new_user(bed, "dora").await;
    bed.seeder().add_user_to_group("dora", GROUP).await.unwrap();
    let listed_before = bed.eks().calls_for("ListAccessEntries", "ignored");

    let report = handle(&app, &event("add-user-to-group.json", "dora"))
        .await
        .unwrap();
    assert_eq!(reported(&report, "found").outcome, Outcome::Updated);
    assert!(!clusters_of(&report).contains(&"ignored"), "{report:?}");
    assert!(access_entry(bed, "found", &dora.arn).is_some());
    assert!(access_entry(bed, "ignored", &dora.arn).is_none());
    assert_eq!(
        bed.eks().calls_for("ListAccessEntries", "ignored"),
        listed_before,
        "an unmatched cluster is only described, never written"
    );
    can_list_pods(bed, "found", &dora).await.unwrap();
    assert_eq!(can_list_pods(bed, "ignored", &dora).await, Err(401));

    bed.seeder()
        .remove_user_from_group("dora", GROUP)
        .await
        .unwrap();
    handle(&app, &event("remove-user-from-group.json", "dora"))
        .await
        .unwrap();
    assert!(access_entry(bed, "found", &dora.arn).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_eks_api_on_one_cluster_leaves_the_others_correct() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    let app = app(bed);
    let gus = new_user(bed, "gus").await;
    bed.seeder().add_user_to_group("gus", GROUP).await.unwrap();
    // More failures than the SDK's retries: api is throttled, both's DescribeCluster fails.
    let attempts = eks_iam_sync::aws::MAX_ATTEMPTS;
    bed.eks().fail_next_for(
        "ListAccessEntries",
        "api",
        attempts,
        InjectedError::Throttling,
    );
    bed.eks().fail_next_for(
        "DescribeCluster",
        "both",
        attempts,
        InjectedError::ServerException,
    );

    let err = handle(&app, &event("add-user-to-group.json", "gus"))
        .await
        .unwrap_err();
    let HandleError::ClustersFailed(report) = err else {
        panic!("expected ClustersFailed, got {err}");
    };
    let api = reported(&report, "api");
    assert_eq!(api.outcome, Outcome::Failed, "{api:?}");
    let reason = api.reason.as_deref().unwrap();
    assert!(
        reason.contains("cluster api") && reason.contains("ListAccessEntries"),
        "{reason}"
    );
    let both = reported(&report, "both");
    assert_eq!(both.outcome, Outcome::Failed, "{both:?}");
    assert!(both.reason.as_deref().unwrap().contains("DescribeCluster"));
    for cluster in ["cm", "moving", "found"] {
        assert_eq!(
            reported(&report, cluster).outcome,
            Outcome::Updated,
            "{cluster}"
        );
    }
    for cluster in ["cm", "moving", "found"] {
        can_list_pods(bed, cluster, &gus).await.unwrap();
    }
    assert!(access_entry(bed, "api", &gus.arn).is_none());

    // The next run (Lambda's retry, or the next event) brings the failed clusters in step.
    let report = handle(&app, &event("add-user-to-group.json", "gus"))
        .await
        .unwrap();
    assert_eq!(reported(&report, "api").outcome, Outcome::Updated);
    assert_eq!(reported(&report, "both").outcome, Outcome::Updated);
    for cluster in SYNCED {
        can_list_pods(bed, cluster, &gus).await.unwrap();
    }

    bed.seeder()
        .remove_user_from_group("gus", GROUP)
        .await
        .unwrap();
    handle(&app, &event("remove-user-from-group.json", "gus"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_moves_from_aws_auth_to_access_entries() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    // One warm function throughout: a full reconcile reads the new mode, cache or not.
    let app = app(bed);
    let hank = new_user(bed, "hank").await;
    let set_mode = |mode| {
        let c = info(bed, "moving");
        assert!(bed
            .eks()
            .set_authentication_mode(&c.account_id, &c.region, "moving", mode));
    };
    bed.seeder().add_user_to_group("hank", GROUP).await.unwrap();
    let report = handle(&app, &event("add-user-to-group.json", "hank"))
        .await
        .unwrap();
    assert_eq!(reported(&report, "moving").backend, Some("configMap"));
    assert!(entry(bed, "moving", &hank.arn).await.is_some());

    // 1. CONFIG_MAP -> API_AND_CONFIG_MAP, then a full reconcile: the access entries are made
    //    and the tool's own aws-auth entries retired, so revoking later has one place to go.
    set_mode(AuthenticationMode::ApiAndConfigMap);
    let full = serde_json::json!({"action": "reconcile", "dryRun": false});
    let report = handle(&app, &full).await.unwrap();
    let moving = reported(&report, "moving");
    assert_eq!(moving.backend, Some("accessEntries"), "{moving:?}");
    assert_eq!(
        (moving.outcome, moving.added, moving.retired),
        (Outcome::Updated, 1, 1)
    );
    assert!(
        entry(bed, "moving", &hank.arn).await.is_none(),
        "aws-auth entry retired"
    );
    let e = access_entry(bed, "moving", &hank.arn).expect("hank's access entry");
    assert_eq!(e.kubernetes_groups, ["developers"]);
    // 2. Check: hank still works, now through his access entry.
    can_list_pods(bed, "moving", &hank).await.unwrap();

    // 3. API_AND_CONFIG_MAP -> API: nothing left to do.
    set_mode(AuthenticationMode::Api);
    let report = handle(&app, &full).await.unwrap();
    assert_eq!(reported(&report, "moving").outcome, Outcome::Unchanged);
    can_list_pods(bed, "moving", &hank).await.unwrap();

    bed.seeder()
        .remove_user_from_group("hank", GROUP)
        .await
        .unwrap();
    let report = handle(&app, &event("remove-user-from-group.json", "hank"))
        .await
        .unwrap();
    assert_eq!(reported(&report, "moving").removed, 1);
    assert_eq!(
        can_list_pods_after_revocation(bed, "moving", &hank).await,
        Err(401)
    );
    // Back as the other tests expect it.
    set_mode(AuthenticationMode::ConfigMap);
}
