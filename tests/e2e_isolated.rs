//! End-to-end cases that disturb a whole test bed (a stopped API server, a broken aws-auth, a
//! full reconcile), so each starts a test bed of its own.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use eks_iam_sync::cluster::ClusterTarget;
use eks_iam_sync::handler::{handle, HandleError};
use eks_iam_sync::report::Outcome;
use eks_iam_sync::sync::{AwsAuthStore, Connector, StoreError, TokenConnector};
use eks_testbed::{TestBed, TestBedOptions};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;

const GROUP: &str = "eks-developers";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_cluster_fails_alone_and_the_invocation_errors() {
    let bed = start("stop").await;
    let app = app(&bed);
    let alice = bed.description().credentials.users["alice"].clone();
    bed.seeder()
        .add_user_to_group("alice", GROUP)
        .await
        .unwrap();
    // The second cluster's API server goes down; EKS still describes it.
    let names = bed.cluster_names();
    bed.stop_cluster(&names[1]).unwrap();

    let err = handle(&app, &event("add-user-to-group.json", "alice"))
        .await
        .unwrap_err();
    let HandleError::ClustersFailed(report) = err else {
        panic!("expected ClustersFailed, got {err}");
    };
    let outcomes: Vec<Outcome> = report.clusters.iter().map(|c| c.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Updated, Outcome::Failed, Outcome::Updated]
    );
    let reason = report.clusters[1].reason.as_deref().unwrap();
    assert!(reason.contains("aws-auth"), "{reason}");
    for c in [&names[0], &names[2]] {
        assert!(entry(&bed, c, &alice.arn).await.is_some());
    }

    // Back up, the next run brings it in step.
    bed.start_cluster(&names[1]).await.unwrap();
    let report = handle(&app, &event("add-user-to-group.json", "alice"))
        .await
        .unwrap();
    let outcomes: Vec<Outcome> = report.clusters.iter().map(|c| c.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Unchanged, Outcome::Updated, Outcome::Unchanged]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_aws_auth_is_left_untouched_and_reported() {
    let bed = start("broken").await;
    let app = app(&bed);
    let names = bed.cluster_names();
    // A broken mapUsers (a broken mapRoles would also lock the function itself out: the
    // authenticator drops the whole section, including the function's own role mapping).
    let broken = "- userarn: arn:aws:iam::123456789012:user/x\n  groups: [unclosed\n";
    set_data_key(&bed, &names[0], "mapUsers", broken).await;
    let before = aws_auth_api(&bed, &names[0]).get("aws-auth").await.unwrap();
    bed.seeder().add_user_to_group("bob", GROUP).await.unwrap();

    let err = handle(&app, &event("add-user-to-group.json", "bob"))
        .await
        .unwrap_err();
    let HandleError::ClustersFailed(report) = err else {
        panic!("expected ClustersFailed, got {err}");
    };
    assert_eq!(report.clusters[0].outcome, Outcome::Failed);
    let reason = report.clusters[0].reason.as_deref().unwrap();
    assert!(
        reason.contains("mapUsers"),
        "the reason names the key: {reason}"
    );
    assert!(report.clusters[1..]
        .iter()
        .all(|c| c.outcome == Outcome::Updated));
    let after = aws_auth_api(&bed, &names[0]).get("aws-auth").await.unwrap();
    assert_eq!(before, after, "nothing was written to the broken cluster");
}

/// Wraps the real store; before the first PUT another writer changes aws-auth, so the PUT
/// carries a stale resourceVersion and the real API server answers 409.
struct RacingConnector {
    inner: TokenConnector,
    admin: kube::Api<ConfigMap>,
    raced: Arc<AtomicBool>,
}

struct RacingStore {
    inner: Box<dyn AwsAuthStore>,
    admin: kube::Api<ConfigMap>,
    raced: Arc<AtomicBool>,
}

impl Connector for RacingConnector {
    fn aws_auth<'a>(
        &'a self,
        target: &'a ClusterTarget,
    ) -> BoxFuture<'a, Result<Box<dyn AwsAuthStore>, String>> {
        Box::pin(async move {
            let inner = self.inner.aws_auth(target).await?;
            Ok(Box::new(RacingStore {
                inner,
                admin: self.admin.clone(),
                raced: self.raced.clone(),
            }) as Box<dyn AwsAuthStore>)
        })
    }
}

impl AwsAuthStore for RacingStore {
    fn get(&self) -> BoxFuture<'_, Result<Option<ConfigMap>, StoreError>> {
        self.inner.get()
    }
    fn replace<'a>(&'a self, cm: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if !self.raced.swap(true, Ordering::SeqCst) {
                let mut theirs = self.admin.get("aws-auth").await.unwrap();
                let data = theirs.data.get_or_insert_with(Default::default);
                data.entry("mapUsers".into()).or_default().push_str(
                    "- userarn: arn:aws:iam::123456789012:user/racer\n  username: racer\n",
                );
                data.insert("mapAccounts".into(), "- \"210987654321\"\n".into());
                self.admin
                    .replace("aws-auth", &Default::default(), &theirs)
                    .await
                    .unwrap();
            }
            self.inner.replace(cm).await
        })
    }
    fn create<'a>(&'a self, cm: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.create(cm)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_between_our_get_and_put_loses_nothing() {
    let bed = TestBed::start(TestBedOptions {
        clusters: 1,
        name_prefix: "race".into(),
    })
    .await
    .unwrap();
    let cluster = bed.cluster_names()[0].clone();
    let mut app = app(&bed);
    let credentials = aws_credential_types::provider::SharedCredentialsProvider::new(
        bed.description().credentials.sync_role.sdk_credentials(),
    );
    app.connector = Box::new(RacingConnector {
        inner: TokenConnector::new(credentials),
        admin: aws_auth_api(&bed, &cluster),
        raced: Arc::new(AtomicBool::new(false)),
    });
    let alice = bed.description().credentials.users["alice"].clone();
    bed.seeder()
        .add_user_to_group("alice", GROUP)
        .await
        .unwrap();

    let report = handle(&app, &event("add-user-to-group.json", "alice"))
        .await
        .unwrap();
    let only = &report.clusters[0];
    assert_eq!(only.outcome, Outcome::Updated, "{only:?}");
    assert_eq!(only.retries, 1, "one conflict, one re-read");
    assert!(entry(&bed, &cluster, &alice.arn).await.is_some());
    assert!(
        entry(&bed, &cluster, "arn:aws:iam::123456789012:user/racer")
            .await
            .is_some(),
        "the other writer's entry survives"
    );
    assert_eq!(
        aws_auth_data(&bed, &cluster).await["mapAccounts"],
        "- \"210987654321\"\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_reconcile_dry_run_shows_a_diff_then_the_real_run_converges() {
    let bed = TestBed::start(TestBedOptions {
        clusters: 2,
        name_prefix: "full".into(),
    })
    .await
    .unwrap();
    let app = app(&bed);
    let seeder = bed.seeder();
    let alice = bed.description().credentials.users["alice"].clone();
    seeder.add_user_to_group("alice", GROUP).await.unwrap();
    let cluster = bed.cluster_names()[1].clone();
    let before = aws_auth_api(&bed, &cluster).get("aws-auth").await.unwrap();

    let dry = serde_json::json!({"action": "reconcile", "dryRun": true});
    let report = handle(&app, &dry).await.unwrap();
    assert!(report.dry_run);
    let diff = report.clusters[1]
        .diff
        .as_deref()
        .expect("a dry run shows its diff");
    assert!(
        diff.contains(&format!("+- userarn: {}", alice.arn)),
        "{diff}"
    );
    let after = aws_auth_api(&bed, &cluster).get("aws-auth").await.unwrap();
    assert_eq!(before, after, "a dry run writes nothing");

    let real = serde_json::json!({"action": "reconcile", "dryRun": false});
    handle(&app, &real).await.unwrap();
    assert!(entry(&bed, &cluster, &alice.arn).await.is_some());
    // A second full run finds nothing to do; leaving the group and reconciling removes her.
    let report = handle(&app, &real).await.unwrap();
    assert!(report
        .clusters
        .iter()
        .all(|c| c.outcome == Outcome::Unchanged));
    seeder.remove_user_from_group("alice", GROUP).await.unwrap();
    let report = handle(&app, &real).await.unwrap();
    assert!(report.clusters.iter().all(|c| c.removed == 1), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_aws_auth_is_created_with_only_map_users_when_allowed() {
    use eks_iam_sync::desired::{Desired, Mapping, Scope, UserArn};
    use eks_iam_sync::sync::{apply_aws_auth, ApplyOptions, KubeAwsAuth};

    let bed = TestBed::start(TestBedOptions {
        clusters: 1,
        name_prefix: "create".into(),
    })
    .await
    .unwrap();
    let cluster = bed.cluster_names()[0].clone();
    let api = aws_auth_api(&bed, &cluster);
    api.delete("aws-auth", &Default::default()).await.unwrap();
    // Without aws-auth the function's own role is unmapped in a CONFIG_MAP cluster, so the
    // writer runs as the cluster admin here (on EKS: an access entry or the creator's rights).
    let store = KubeAwsAuth::new(bed.admin_client(&cluster).unwrap());
    let alice = &bed.description().credentials.users["alice"];
    let desired = Desired {
        scope: Scope::Users(["alice".to_string()].into()),
        entries: [(
            UserArn::parse(&alice.arn).unwrap(),
            Mapping::new("alice", ["developers"]),
        )]
        .into(),
    };
    let mut options = ApplyOptions {
        cluster: cluster.clone(),
        create_missing: false,
        dry_run: false,
        limits: eks_iam_sync::sync::Limits::until(
            std::time::Instant::now() + std::time::Duration::from_secs(60),
        ),
        installation: Default::default(),
    };
    let report = apply_aws_auth(&store, &desired, &options).await;
    assert_eq!(report.outcome, Outcome::Skipped, "{report:?}");
    assert!(api.get_opt("aws-auth").await.unwrap().is_none());

    options.create_missing = true;
    let report = apply_aws_auth(&store, &desired, &options).await;
    assert_eq!(report.outcome, Outcome::Updated, "{report:?}");
    let data = aws_auth_data(&bed, &cluster).await;
    assert_eq!(data.keys().collect::<Vec<_>>(), ["mapUsers"]);
    assert!(entry(&bed, &cluster, &alice.arn).await.is_some());
}
