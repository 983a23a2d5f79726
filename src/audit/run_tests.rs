//! The audit's run over fakes: a hung cluster is cut off at the deadline and reported alone,
//! the identity the audit runs as is no machine, each session-named role's trust policy is read
//! once however many clusters map it, and the audit reads no other IAM and writes nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::*;
use crate::cluster::{AuthenticationMode, ClusterDirectory, ClusterError, ClusterTarget};
use crate::config::{ClusterRef, Config};
use crate::iam::{IamDirectory, IamError, IamUser, RoleTrust};
use crate::sync::{AccessEntryStore, AwsAuthStore, Connector};

/// IAM as the audit reads it: only trust policies. `eks-pinned` pins the session name; every
/// other role lets anyone choose it. Counts the reads.
#[derive(Default)]
struct TrustIam {
    reads: Arc<AtomicUsize>,
}

impl IamDirectory for TrustIam {
    fn role_trust<'a>(
        &'a self,
        identity: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<RoleTrust>, IamError>> {
        assert_eq!(
            identity, None,
            "roles of the audit's own account, as itself"
        );
        self.reads.fetch_add(1, Ordering::SeqCst);
        let condition = if name == "eks-pinned" {
            r#","Condition":{"StringEquals":{"sts:RoleSessionName":"${aws:username}"}}"#
        } else {
            ""
        };
        let document = format!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::123456789012:root"}},"Action":"sts:AssumeRole"{condition}}}]}}"#
        );
        Box::pin(async move {
            Ok(Some(RoleTrust {
                name: name.to_owned(),
                path: "/".into(),
                document,
            }))
        })
    }
    fn user<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<IamUser>, IamError>> {
        unreachable!("the audit reads no IAM users or groups")
    }
    fn groups_for_user<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, IamError>> {
        unreachable!("the audit reads no IAM users or groups")
    }
    fn group_members<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IamUser>>, IamError>> {
        unreachable!("the audit reads no IAM users or groups")
    }
}

/// Clusters named `hung*` never answer DescribeCluster; the others are API clusters with one
/// shared entry, a session-named entry of a pinned role and one of a free role, and audit
/// logging on; the audit reads them as a session of the shared role.
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
        let entry = |role: &str, username: &str| EntryRead {
            principal_arn: format!("arn:aws:iam::123456789012:role/{role}"),
            username: username.into(),
            groups: vec!["admins".into()],
            entry_type: "STANDARD".into(),
            policies: Vec::new(),
        };
        Box::pin(async move {
            Ok(vec![
                entry("eks-cluster-admin", "eks-cluster-admin"),
                entry("eks-pinned", "admin:{{SessionName}}"),
                entry(
                    "eks-free",
                    "arn:aws:sts::123456789012:assumed-role/eks-free/{{SessionName}}",
                ),
            ])
        })
    }
    fn caller_arn(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async {
            Ok("arn:aws:sts::123456789012:assumed-role/eks-cluster-admin/operator".into())
        })
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

fn app(fixes: Arc<AtomicUsize>, trust_reads: Arc<AtomicUsize>) -> App {
    let config = Config::parse(
        "
groups: [{iamGroup: g, kubernetesGroups: [developers]}]
clusters:
  - {name: hung, region: us-east-1}
  - {name: ok, region: us-east-1}
  - {name: ok-too, region: us-east-1}
",
    )
    .unwrap();
    App {
        config,
        iam: Box::new(TrustIam { reads: trust_reads }),
        clusters: Box::new(FakeEks { fixes }),
        connector: Box::new(NoKubernetes),
    }
}

#[tokio::test]
async fn a_hung_cluster_is_reported_unreadable_alone_at_the_deadline() {
    let fixes = Arc::new(AtomicUsize::new(0));
    let trust_reads = Arc::new(AtomicUsize::new(0));
    let app = app(fixes.clone(), trust_reads.clone());
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
    for ok in &report.clusters[1..] {
        assert!(ok.error.is_none());
        let classes: Vec<(Class, bool)> =
            ok.paths.iter().map(|p| (p.class, p.is_finding())).collect();
        // The shared role stays shared though the audit runs as one of its sessions; the
        // pinned role's session name names the person, the free one's is self-declared.
        assert_eq!(
            classes,
            [
                (Class::Shared, true),
                (Class::PerPerson, false),
                (Class::SelfDeclared, true)
            ],
            "{ok:?}"
        );
        assert!(
            ok.paths[2].why.contains("sts:RoleSessionName"),
            "{}",
            ok.paths[2].why
        );
        assert_eq!(ok.logging.as_ref().unwrap().fixed, ["authenticator"]);
        assert!(ok.notes[0].contains("401"), "{:?}", ok.notes);
    }
    assert_eq!(
        trust_reads.load(Ordering::SeqCst),
        2,
        "one GetRole per session-named role, however many clusters map it"
    );
    assert_eq!(report.summary.unreadable, 1);
    assert_eq!(report.exit_code, EXIT_UNREADABLE);
    assert!(
        report.notes[0].contains(crate::config::ENV_FUNCTION_ROLE),
        "{:?}",
        report.notes
    );
    assert_eq!(
        fixes.load(Ordering::SeqCst),
        2,
        "only the reachable clusters were fixed"
    );
}
