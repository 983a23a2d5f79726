//! End to end: a run whose first IAM read goes stale before it writes undoes its own write
//! after re-reading IAM; a write that was skipped never retires the other store.
//!
//! The staleness is forced, not hoped for: the IAM directory the run uses is moto's, wrapped so
//! that right after the run's first ListGroupsForUser answer arrives (and before the run writes)
//! the user is removed from the group in moto. Every later read sees the removal, exactly as a
//! run that read IAM just before a RemoveUserFromGroup would.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use eks_iam_sync::cluster::{
    ClusterDirectory, ClusterError, ClusterTarget, EksDirectory, DEFAULT_CACHE_TTL,
};
use eks_iam_sync::config::Backend;
use eks_iam_sync::config::ClusterRef;
use eks_iam_sync::handler::{handle, HandleError};
use eks_iam_sync::iam::{IamDirectory, IamError, IamUser, SdkIam};
use eks_iam_sync::report::Outcome;
use eks_testbed::awscli::get_token;
use eks_testbed::bootstrap::{sync_role_arn, SYNC_ROLE};
use eks_testbed::eks::{AuthenticationMode, CreateAccessEntryRequest};
use eks_testbed::{ClusterOptions, FleetOptions, TestBed, TestBedOptions};
use futures::future::BoxFuture;

const GROUP: &str = "eks-developers";

/// moto's IAM, which removes `user` from [`GROUP`] (in moto) right after the first
/// ListGroupsForUser for them has been answered, and returns that now stale answer.
struct RemovedAfterFirstRead {
    inner: Box<dyn IamDirectory>,
    iam: aws_sdk_iam::Client,
    user: String,
    done: AtomicBool,
}

impl IamDirectory for RemovedAfterFirstRead {
    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<IamUser>, IamError>> {
        self.inner.user(name)
    }

    fn groups_for_user<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, IamError>> {
        Box::pin(async move {
            let answer = self.inner.groups_for_user(name).await;
            if name == self.user && !self.done.swap(true, Ordering::SeqCst) {
                self.iam
                    .remove_user_from_group()
                    .user_name(name)
                    .group_name(GROUP)
                    .send()
                    .await
                    .expect("moto removes the user");
            }
            answer
        })
    }

    fn group_members<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IamUser>>, IamError>> {
        self.inner.group_members(group)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_from_a_stale_iam_read_is_undone_after_the_re_read() {
    let bed = TestBed::start(
        FleetOptions::new()
            .cluster(ClusterOptions::new("stale-cm"))
            .cluster(ClusterOptions::new("stale-api").mode(AuthenticationMode::Api)),
    )
    .await
    .expect("test bed starts");
    let alice = bed.description().credentials.users["alice"].clone();
    bed.seeder()
        .add_user_to_group("alice", GROUP)
        .await
        .unwrap();
    let mut app = app(&bed);
    app.iam = Box::new(RemovedAfterFirstRead {
        inner: Box::new(SdkIam::new(iam_client(&bed))),
        iam: iam_client(&bed),
        user: "alice".into(),
        done: AtomicBool::new(false),
    });

    let report = handle(&app, &event("add-user-to-group.json", "alice"))
        .await
        .unwrap();

    assert_eq!(report.iam_rereads, 2, "{report:#?}");
    for cluster in &report.clusters {
        assert_eq!(cluster.outcome, Outcome::Updated, "{cluster:?}");
        assert_eq!((cluster.added, cluster.removed), (1, 1), "{cluster:?}");
        assert_eq!(cluster.corrected, 1, "{cluster:?}");
    }
    assert!(entry(&bed, "stale-cm", &alice.arn).await.is_none());
    let api = bed.cluster("stale-api").unwrap();
    assert!(bed
        .eks()
        .access_entry_for(&api.account_id, &api.region, "stale-api", &alice.arn)
        .is_none());
    for cluster in ["stale-cm", "stale-api"] {
        let token = get_token(&alice, cluster, REGION, None).unwrap();
        assert_eq!(
            list_pods(&bed, cluster, &token).await,
            Err(401),
            "{cluster}: alice is refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_aws_auth_write_never_retires_the_access_entries() {
    let bed = TestBed::start(
        FleetOptions::new()
            .cluster(ClusterOptions::new("skip-both").mode(AuthenticationMode::ApiAndConfigMap)),
    )
    .await
    .expect("test bed starts");
    let alice = bed.description().credentials.users["alice"].clone();
    bed.seeder()
        .add_user_to_group("alice", GROUP)
        .await
        .unwrap();
    // alice's owned access entry, written by the tool on access entries.
    let mut app = app(&bed);
    app.config.clusters[0].backend = Backend::AccessEntries;
    let report = handle(&app, &serde_json::json!({"action": "reconcile"}))
        .await
        .unwrap();
    assert_eq!(report.clusters[0].added, 1, "{report:#?}");
    let info = bed.cluster("skip-both").unwrap();

    // The function keeps its own way in: an access entry for its role, as aws-auth maps it.
    // Without it, deleting aws-auth would lock the function out (401) and the run could only
    // pass through the API server's 10 s cache of an earlier token, which made this test flaky.
    bed.eks()
        .create_access_entry(
            &info.account_id,
            &info.region,
            "skip-both",
            CreateAccessEntryRequest {
                username: Some(SYNC_ROLE.into()),
                kubernetes_groups: vec![SYNC_ROLE.into()],
                ..CreateAccessEntryRequest::new(sync_role_arn(&info.account_id))
            },
        )
        .unwrap();
    // The cluster moves to configMap, but aws-auth is gone and may not be created.
    aws_auth_api(&bed, "skip-both")
        .delete("aws-auth", &Default::default())
        .await
        .unwrap();
    app.config.clusters[0].backend = Backend::ConfigMap;
    app.config.create_missing_aws_auth = false;
    let report = handle(&app, &serde_json::json!({"action": "reconcile"}))
        .await
        .unwrap();
    let cluster = &report.clusters[0];
    assert_eq!(cluster.outcome, Outcome::Skipped, "{cluster:?}");
    assert_eq!(cluster.retired, 0, "{cluster:?}");
    assert!(
        bed.eks()
            .access_entry_for(&info.account_id, &info.region, "skip-both", &alice.arn)
            .is_some(),
        "alice's access entry stays while aws-auth does not hold her"
    );
    let token = get_token(&alice, "skip-both", REGION, None).unwrap();
    assert_eq!(list_pods(&bed, "skip-both", &token).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_event_reads_iam_once() {
    let bed = TestBed::start(TestBedOptions {
        clusters: 1,
        name_prefix: "noop".into(),
    })
    .await
    .expect("test bed starts");
    let app = app(&bed);
    let report = handle(&app, &event("add-user-to-group.json", "bob"))
        .await
        .unwrap();
    assert_eq!(report.clusters[0].outcome, Outcome::Unchanged);
    assert_eq!(report.iam_rereads, 0, "nothing written, nothing to check");
}

fn iam_client(bed: &TestBed) -> aws_sdk_iam::Client {
    let description = bed.description();
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&description.endpoints.iam)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                description.credentials.sync_role.sdk_credentials(),
            ),
        )
        .build();
    aws_sdk_iam::Client::new(&config)
}

/// The real EKS directory, except that one cluster reports an authentication mode newer than
/// this version (EKS may add one; the emulator knows only today's three).
struct FutureMode {
    inner: Box<dyn ClusterDirectory>,
    cluster: String,
}

impl ClusterDirectory for FutureMode {
    fn describe<'a>(
        &'a self,
        cluster: &'a ClusterRef,
    ) -> BoxFuture<'a, Result<ClusterTarget, ClusterError>> {
        Box::pin(async move {
            let mut target = self.inner.describe(cluster).await?;
            if target.name == self.cluster {
                target.mode = eks_iam_sync::cluster::AuthenticationMode::Other("API_V2".into());
            }
            Ok(target)
        })
    }

    fn list<'a>(
        &'a self,
        region: &'a str,
        role_arn: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, ClusterError>> {
        self.inner.list(region, role_arn)
    }

    fn access_entries(
        &self,
        target: &ClusterTarget,
    ) -> Result<Box<dyn eks_iam_sync::sync::AccessEntryStore>, ClusterError> {
        self.inner.access_entries(target)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_authentication_mode_fails_its_cluster_and_the_invocation() {
    let bed = TestBed::start(TestBedOptions {
        clusters: 2,
        name_prefix: "mode".into(),
    })
    .await
    .expect("test bed starts");
    let names = bed.cluster_names();
    bed.seeder()
        .add_user_to_group("alice", GROUP)
        .await
        .unwrap();
    let mut app = app(&bed);
    let description = bed.description();
    let credentials = aws_credential_types::provider::SharedCredentialsProvider::new(
        description.credentials.sync_role.sdk_credentials(),
    );
    app.clusters = Box::new(FutureMode {
        inner: Box::new(EksDirectory::new(
            eks_iam_sync::aws::config_for(REGION, &description.endpoints.eks, credentials),
            DEFAULT_CACHE_TTL,
        )),
        cluster: names[1].clone(),
    });
    let before = aws_auth_data(&bed, &names[1]).await;

    let err = handle(&app, &event("add-user-to-group.json", "alice"))
        .await
        .unwrap_err();
    let HandleError::ClustersFailed(report) = err else {
        panic!("expected ClustersFailed, got {err}");
    };
    assert_eq!(report.clusters[0].outcome, Outcome::Updated);
    assert_eq!(report.clusters[1].outcome, Outcome::Failed);
    let reason = report.clusters[1].reason.as_deref().unwrap();
    assert!(
        reason.contains("API_V2") && reason.contains(&names[1]),
        "{reason}"
    );
    assert_eq!(
        aws_auth_data(&bed, &names[1]).await,
        before,
        "nothing written"
    );
}
