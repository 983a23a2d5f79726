//! The audit's run over fakes: a hung cluster is cut off at the deadline and reported alone,
//! and the audit makes no IAM call and no write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::*;
use crate::cluster::{AuthenticationMode, ClusterDirectory, ClusterError, ClusterTarget};
use crate::config::{ClusterRef, Config};
use crate::iam::{IamDirectory, IamError, IamUser};
use crate::sync::{AccessEntryStore, AwsAuthStore, Connector};

/// IAM is never read by the audit.
struct NoIam;

impl IamDirectory for NoIam {
    fn user<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<IamUser>, IamError>> {
        unreachable!("the audit reads no IAM")
    }
    fn groups_for_user<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, IamError>> {
        unreachable!("the audit reads no IAM")
    }
    fn group_members<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IamUser>>, IamError>> {
        unreachable!("the audit reads no IAM")
    }
}

/// Clusters named `hung*` never answer DescribeCluster; the others are API clusters with one
/// shared entry and audit logging on.
#[derive(Default)]
struct FakeEks {
    fixes: Arc<AtomicUsize>,
}

struct FakeSource {
    name: String,
    fixes: Arc<AtomicUsize>,
}

impl ClusterDirectory for FakeEks {
    fn describe<'a>(
        &'a self,
        _: &'a ClusterRef,
    ) -> BoxFuture<'a, Result<ClusterTarget, ClusterError>> {
        unreachable!("listed clusters are not described for discovery")
    }
    fn list<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, ClusterError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn access_entries(&self, _: &ClusterTarget) -> Result<Box<dyn AccessEntryStore>, ClusterError> {
        unreachable!("the audit writes no access entry")
    }
    fn auditor(&self, cluster: &ClusterRef) -> Result<Box<dyn ClusterSource>, ClusterError> {
        Ok(Box::new(FakeSource {
            name: cluster.name.clone(),
            fixes: self.fixes.clone(),
        }))
    }
}

impl ClusterSource for FakeSource {
    fn describe(&self) -> BoxFuture<'_, Result<Described, ClusterError>> {
        Box::pin(async move {
            if self.name.starts_with("hung") {
                futures::future::pending::<()>().await;
            }
            Ok(Described {
                target: ClusterTarget {
                    name: self.name.clone(),
                    region: "us-east-1".into(),
                    endpoint: "https://example".into(),
                    ca_pem: String::new(),
                    mode: AuthenticationMode::Api,
                    role_arn: None,
                    tags: BTreeMap::new(),
                },
                enabled_log_types: ["audit".to_string()].into(),
            })
        })
    }
    fn access_entries(&self) -> BoxFuture<'_, Result<Vec<EntryRead>, String>> {
        Box::pin(async {
            Ok(vec![EntryRead {
                principal_arn: "arn:aws:iam::123456789012:role/eks-cluster-admin".into(),
                username: "eks-cluster-admin".into(),
                groups: vec!["admins".into()],
                entry_type: "STANDARD".into(),
                policies: Vec::new(),
            }])
        })
    }
    fn caller_arn(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async { Ok("arn:aws:sts::123456789012:assumed-role/eks-iam-sync/run".into()) })
    }
    fn enable_logging<'a>(&'a self, types: &'a [String]) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            assert_eq!(types, ["authenticator"]);
            self.fixes.fetch_add(1, Ordering::SeqCst);
            Ok("update-1".into())
        })
    }
}

/// aws-auth is out of reach, as on most API clusters.
struct NoKubernetes;

impl Connector for NoKubernetes {
    fn aws_auth<'a>(
        &'a self,
        _: &'a ClusterTarget,
    ) -> BoxFuture<'a, Result<Box<dyn AwsAuthStore>, String>> {
        Box::pin(async { Err("401 Unauthorized".to_string()) })
    }
}

fn app(fixes: Arc<AtomicUsize>) -> App {
    let config = Config::parse(
        "
groups: [{iamGroup: g, kubernetesGroups: [developers]}]
clusters:
  - {name: hung, region: us-east-1}
  - {name: ok, region: us-east-1}
",
    )
    .unwrap();
    App {
        config,
        iam: Box::new(NoIam),
        clusters: Box::new(FakeEks { fixes }),
        connector: Box::new(NoKubernetes),
    }
}

#[tokio::test]
async fn a_hung_cluster_is_reported_unreadable_alone_at_the_deadline() {
    let fixes = Arc::new(AtomicUsize::new(0));
    let app = app(fixes.clone());
    let deadline = Instant::now() + Duration::from_millis(500);
    let report = run(&app, AuditOptions { fix_logging: true }, deadline).await;
    let hung = &report.clusters[0];
    assert_eq!(hung.cluster, "hung");
    assert!(
        hung.error
            .as_deref()
            .unwrap()
            .contains("no answer before the run's deadline"),
        "{hung:?}"
    );
    let ok = &report.clusters[1];
    assert!(ok.error.is_none());
    assert_eq!(ok.paths.len(), 1);
    assert!(ok.paths[0].is_finding());
    assert_eq!(ok.logging.as_ref().unwrap().fixed, ["authenticator"]);
    assert!(ok.notes[0].contains("401"), "{:?}", ok.notes);
    assert_eq!(report.summary.unreadable, 1);
    assert_eq!(report.exit_code, EXIT_UNREADABLE);
    assert_eq!(
        fixes.load(Ordering::SeqCst),
        1,
        "only the reachable cluster was fixed"
    );
}
