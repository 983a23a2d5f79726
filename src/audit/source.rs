//! What the audit reads of one cluster through the EKS API, and the one write `--fix-logging`
//! makes. Nothing is cached: an audit must see the logging and the entries as they are now,
//! not as a warm Lambda last described them.

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use futures::StreamExt;

use super::classify::AccessPolicy;
use crate::cluster::{self, ClusterError, ClusterTarget};
use crate::config::ClusterRef;

/// The log types the audit needs: `audit` records what each username did, `authenticator`
/// which IAM principal and session each username was (EKS user guide, "Control plane logs").
pub const REQUIRED_LOG_TYPES: [&str; 2] = ["audit", "authenticator"];

/// DescribeCluster, fresh: how to reach the cluster and which control-plane log types it
/// exports.
#[derive(Debug, Clone)]
pub struct Described {
    pub target: ClusterTarget,
    /// The log types of `logging.clusterLogging` entries with `enabled: true`.
    pub enabled_log_types: BTreeSet<String>,
}

/// One access entry with what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRead {
    pub principal_arn: String,
    pub username: String,
    pub groups: Vec<String>,
    pub entry_type: String,
    pub policies: Vec<AccessPolicy>,
}

/// The EKS side of one cluster, as the audit reads it; the real one is [`EksSource`].
pub trait ClusterSource: Send + Sync {
    /// DescribeCluster.
    fn describe(&self) -> BoxFuture<'_, Result<Described, ClusterError>>;
    /// ListAccessEntries (all pages), then DescribeAccessEntry and ListAssociatedAccessPolicies
    /// (all pages) for each, in principal order.
    fn access_entries(&self) -> BoxFuture<'_, Result<Vec<EntryRead>, String>>;
    /// STS GetCallerIdentity as the identity the cluster is reached as: reported, and telling
    /// which account the audit's own credentials are in (for reading trust policies). Never a
    /// machine identity by itself: the CLI runs as an operator.
    fn caller_arn(&self) -> BoxFuture<'_, Result<String, String>>;
    /// UpdateClusterConfig enabling `types` (and only them: EKS leaves types not named as they
    /// are); the update's id.
    fn enable_logging<'a>(&'a self, types: &'a [String]) -> BoxFuture<'a, Result<String, String>>;
}

/// Calls in flight per cluster while describing its access entries (EKS throttles bursts).
const ENTRY_CONCURRENCY: usize = crate::sync::DESCRIBE_CONCURRENCY;

/// [`ClusterSource`] over aws-sdk-eks and aws-sdk-sts, as the cluster's identity.
pub struct EksSource {
    eks: aws_sdk_eks::Client,
    sts: aws_sdk_sts::Client,
    cluster: ClusterRef,
}

impl EksSource {
    pub fn new(eks: aws_sdk_eks::Client, sts: aws_sdk_sts::Client, cluster: ClusterRef) -> Self {
        Self { eks, sts, cluster }
    }

    fn failed<E, R>(
        &self,
        call: &str,
        principal: &str,
        e: aws_sdk_eks::error::SdkError<E, R>,
    ) -> String
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        format!(
            "cluster {}: EKS {call} failed for {principal}: {}",
            self.cluster.name,
            aws_sdk_eks::error::DisplayErrorContext(e)
        )
    }

    async fn entry(&self, principal: String) -> Result<Option<EntryRead>, String> {
        let described = self
            .eks
            .describe_access_entry()
            .cluster_name(&self.cluster.name)
            .principal_arn(&principal)
            .send()
            .await;
        let described = match described {
            Ok(out) => out,
            // Deleted since it was listed: no longer a path.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(self.failed("DescribeAccessEntry", &principal, e)),
        };
        let Some(entry) = described.access_entry() else {
            return Ok(None);
        };
        let policies = self
            .eks
            .list_associated_access_policies()
            .cluster_name(&self.cluster.name)
            .principal_arn(&principal)
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.failed("ListAssociatedAccessPolicies", &principal, e))?;
        let mut policies: Vec<AccessPolicy> = policies
            .iter()
            .map(|p| AccessPolicy {
                policy_arn: p.policy_arn().unwrap_or_default().to_owned(),
                scope: p
                    .access_scope()
                    .and_then(|s| s.r#type())
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or_default(),
                namespaces: p
                    .access_scope()
                    .map(|s| s.namespaces().to_vec())
                    .unwrap_or_default(),
            })
            .collect();
        policies.sort();
        Ok(Some(EntryRead {
            principal_arn: entry.principal_arn().unwrap_or(&principal).to_owned(),
            username: entry.username().unwrap_or_default().to_owned(),
            groups: entry.kubernetes_groups().to_vec(),
            entry_type: entry.r#type().unwrap_or("STANDARD").to_owned(),
            policies,
        }))
    }
}

impl ClusterSource for EksSource {
    fn describe(&self) -> BoxFuture<'_, Result<Described, ClusterError>> {
        Box::pin(async move {
            let described = cluster::describe_cluster(&self.eks, &self.cluster).await?;
            let enabled_log_types = described
                .logging()
                .map(|l| l.cluster_logging())
                .unwrap_or_default()
                .iter()
                .filter(|setup| setup.enabled() == Some(true))
                .flat_map(|setup| setup.types().iter().map(|t| t.as_str().to_owned()))
                .collect();
            Ok(Described {
                target: cluster::target_from(&self.cluster, &described)?,
                enabled_log_types,
            })
        })
    }

    fn access_entries(&self) -> BoxFuture<'_, Result<Vec<EntryRead>, String>> {
        Box::pin(async move {
            let principals = self
                .eks
                .list_access_entries()
                .cluster_name(&self.cluster.name)
                .into_paginator()
                .items()
                .send()
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<String>, _>>()
                .map_err(|e| self.failed("ListAccessEntries", "-", e))?;
            let read: Vec<Result<Option<EntryRead>, String>> = futures::stream::iter(principals)
                .map(|principal| self.entry(principal))
                .buffered(ENTRY_CONCURRENCY)
                .collect()
                .await;
            let mut entries: Vec<EntryRead> = read
                .into_iter()
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()?;
            entries.sort_by(|a, b| a.principal_arn.cmp(&b.principal_arn));
            Ok(entries)
        })
    }

    fn caller_arn(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let out = self.sts.get_caller_identity().send().await.map_err(|e| {
                format!(
                    "cluster {}: STS GetCallerIdentity failed: {}",
                    self.cluster.name,
                    aws_sdk_sts::error::DisplayErrorContext(e)
                )
            })?;
            out.arn()
                .map(str::to_owned)
                .ok_or_else(|| "STS GetCallerIdentity returned no ARN".to_owned())
        })
    }

    fn enable_logging<'a>(&'a self, types: &'a [String]) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let setup = aws_sdk_eks::types::LogSetup::builder()
                .set_types(Some(
                    types
                        .iter()
                        .map(|t| aws_sdk_eks::types::LogType::from(t.as_str()))
                        .collect(),
                ))
                .enabled(true)
                .build();
            let out = self
                .eks
                .update_cluster_config()
                .name(&self.cluster.name)
                .logging(
                    aws_sdk_eks::types::Logging::builder()
                        .cluster_logging(setup)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.failed("UpdateClusterConfig", "-", e))?;
            Ok(out
                .update()
                .and_then(|u| u.id())
                .unwrap_or_default()
                .to_owned())
        })
    }
}
