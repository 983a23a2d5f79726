//! The clusters one run brings in step: those the config lists, plus those discovery finds.
//!
//! Discovery lists every region of every block (ListClusters, all pages), describes each
//! cluster found (DescribeCluster, which carries the tags) and keeps those whose tags match.
//! Both answers go through the [`ClusterDirectory`] cache, so the describe the sync makes next is
//! free, and a warm Lambda makes no discovery call within the TTL. A cluster the config lists
//! is not described for discovery: it is synced anyway, with its own settings.
//!
//! A region that cannot be listed, or a found cluster that cannot be described, is reported as
//! a failed entry (the invocation fails, Lambda retries), and never blocks the other clusters.

use std::collections::BTreeSet;

use futures::StreamExt;

use crate::cluster::ClusterDirectory;
use crate::config::{ClusterKey, ClusterRef, Config, Discovery};
use crate::report::{ClusterReport, Outcome};

/// The clusters of one run, and what discovery could not find out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fleet {
    /// The configured clusters in config order, then the discovered ones.
    pub clusters: Vec<ClusterRef>,
    /// A `failed` report per region that could not be listed (cluster `discovery[i]`) and per
    /// found cluster that could not be described.
    pub failures: Vec<ClusterReport>,
}

/// The configured clusters plus the discovered ones, duplicates merged.
pub async fn resolve(config: &Config, directory: &dyn ClusterDirectory) -> Fleet {
    let concurrency = config.max_concurrency.max(1);
    let explicit: BTreeSet<ClusterKey> = config.clusters.iter().map(ClusterRef::key).collect();
    let mut failures = Vec::new();

    let regions = config.discovery.iter().enumerate().flat_map(|(i, block)| {
        block
            .regions
            .iter()
            .map(move |region| (i, block, region.as_str()))
    });
    let listings: Vec<_> = futures::stream::iter(regions)
        .map(|(i, block, region)| async move {
            let names = directory.list(region, block.role_arn.as_deref()).await;
            (i, block, region, names)
        })
        .buffered(concurrency)
        .collect()
        .await;
    let mut candidates: Vec<(usize, &Discovery, ClusterRef)> = Vec::new();
    for (i, block, region, names) in listings {
        match names {
            Ok(names) => candidates.extend(
                names
                    .iter()
                    .map(|name| (i, block, block.cluster(name, region)))
                    .filter(|(_, _, cluster)| !explicit.contains(&cluster.key())),
            ),
            Err(e) => failures.push(
                ClusterReport::new(&format!("discovery[{i}]"), region, Outcome::Failed)
                    .with_reason(format!("discovery[{i}]: {e}")),
            ),
        }
    }

    let described: Vec<_> = futures::stream::iter(candidates)
        .map(|(i, block, cluster)| async move {
            let target = directory.describe(&cluster).await;
            (i, block, cluster, target)
        })
        .buffered(concurrency)
        .collect()
        .await;
    let mut discovered = Vec::new();
    for (i, block, cluster, target) in described {
        match target {
            Ok(target) if block.matches(&target.tags) => discovered.push(cluster),
            Ok(_) => {
                tracing::debug!(cluster = %cluster.name, region = %cluster.region, discovery = i, "tags do not match; not synced");
            }
            Err(e) => failures.push(
                ClusterReport::new(&cluster.name, &cluster.region, Outcome::Failed)
                    .with_reason(format!("discovery[{i}]: {e}")),
            ),
        }
    }
    Fleet {
        clusters: merge(&config.clusters, discovered),
        failures,
    }
}

/// The configured clusters in order, then each discovered cluster not already present (by
/// [`ClusterRef::key`]: name, region and account), the first block to find it winning.
pub fn merge(explicit: &[ClusterRef], discovered: Vec<ClusterRef>) -> Vec<ClusterRef> {
    let mut seen: BTreeSet<ClusterKey> = BTreeSet::new();
    explicit
        .iter()
        .cloned()
        .chain(discovered)
        .filter(|cluster| seen.insert(cluster.key()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Mutex;

    use futures::future::BoxFuture;

    use super::*;
    use crate::cluster::{AuthenticationMode, ClusterError, ClusterTarget};
    use crate::config::Backend;
    use crate::sync::AccessEntryStore;

    const ROLE_B: &str = "arn:aws:iam::210987654321:role/sync";

    type Tags = BTreeMap<String, String>;

    /// Clusters by (role, region): name -> tags; regions listed in `broken` fail to list.
    #[derive(Default)]
    struct FakeEks {
        clusters: HashMap<(Option<String>, String), BTreeMap<String, Tags>>,
        broken: Vec<String>,
        described: Mutex<Vec<String>>,
    }

    impl FakeEks {
        fn add(&mut self, role: Option<&str>, region: &str, name: &str, tags: &[(&str, &str)]) {
            self.clusters
                .entry((role.map(str::to_owned), region.to_owned()))
                .or_default()
                .insert(
                    name.to_owned(),
                    tags.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                );
        }
    }

    impl ClusterDirectory for FakeEks {
        fn describe<'a>(
            &'a self,
            cluster: &'a ClusterRef,
        ) -> BoxFuture<'a, Result<ClusterTarget, ClusterError>> {
            Box::pin(async move {
                self.described.lock().unwrap().push(cluster.name.clone());
                let tags = self
                    .clusters
                    .get(&(cluster.role_arn.clone(), cluster.region.clone()))
                    .and_then(|c| c.get(&cluster.name))
                    .cloned()
                    .ok_or_else(|| ClusterError::NotFound {
                        cluster: cluster.name.clone(),
                        region: cluster.region.clone(),
                        role_arn: cluster.role_arn.clone(),
                    })?;
                Ok(ClusterTarget {
                    name: cluster.name.clone(),
                    region: cluster.region.clone(),
                    endpoint: "https://example".into(),
                    ca_pem: String::new(),
                    mode: AuthenticationMode::Api,
                    role_arn: cluster.role_arn.clone(),
                    tags,
                })
            })
        }

        fn list<'a>(
            &'a self,
            region: &'a str,
            role_arn: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Vec<String>, ClusterError>> {
            Box::pin(async move {
                if self.broken.iter().any(|r| r == region) {
                    return Err(ClusterError::List {
                        region: region.to_owned(),
                        role_arn: role_arn.map(str::to_owned),
                        detail: "AccessDeniedException".into(),
                    });
                }
                Ok(self
                    .clusters
                    .get(&(role_arn.map(str::to_owned), region.to_owned()))
                    .map(|c| c.keys().cloned().collect())
                    .unwrap_or_default())
            })
        }

        fn access_entries(
            &self,
            _: &ClusterTarget,
        ) -> Result<Box<dyn AccessEntryStore>, ClusterError> {
            unreachable!("discovery never writes")
        }
    }

    fn config(discovery: &str) -> Config {
        Config::parse(&format!(
            "
groups: [{{iamGroup: g, kubernetesGroups: [developers]}}]
clusters:
  - {{name: listed, region: us-east-1, backend: configMap}}
discovery: {discovery}
"
        ))
        .unwrap()
    }

    fn names(fleet: &Fleet) -> Vec<(&str, &str)> {
        fleet
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.region.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn tagged_clusters_are_added_after_the_listed_ones() {
        let mut eks = FakeEks::default();
        eks.add(None, "us-east-1", "listed", &[]);
        eks.add(
            None,
            "us-east-1",
            "tagged",
            &[("sync", "yes"), ("team", "a")],
        );
        eks.add(None, "us-east-1", "untagged", &[]);
        eks.add(None, "eu-west-1", "wrong-value", &[("sync", "no")]);
        eks.add(None, "eu-west-1", "also-tagged", &[("sync", "yes")]);
        let config = config(
            "{regions: [us-east-1, eu-west-1], tags: {sync: 'yes'}, backend: accessEntries}",
        );
        let fleet = resolve(&config, &eks).await;
        assert_eq!(
            names(&fleet),
            [
                ("listed", "us-east-1"),
                ("tagged", "us-east-1"),
                ("also-tagged", "eu-west-1")
            ]
        );
        assert_eq!(
            fleet.clusters[0].backend,
            Backend::ConfigMap,
            "the listed settings win"
        );
        assert_eq!(fleet.clusters[1].backend, Backend::AccessEntries);
        assert!(fleet.failures.is_empty());
        assert!(
            !eks.described
                .lock()
                .unwrap()
                .contains(&"listed".to_string()),
            "a listed cluster is not described for discovery"
        );
    }

    #[tokio::test]
    async fn a_block_with_a_role_finds_clusters_of_that_account() {
        let mut eks = FakeEks::default();
        eks.add(Some(ROLE_B), "us-east-1", "listed", &[("sync", "yes")]);
        let config = config(&format!(
            "[{{regions: [us-east-1], tags: {{sync: 'yes'}}, roleArn: '{ROLE_B}'}}]"
        ));
        let fleet = resolve(&config, &eks).await;
        assert_eq!(
            names(&fleet),
            [("listed", "us-east-1"), ("listed", "us-east-1")]
        );
        assert_eq!(fleet.clusters[1].role_arn.as_deref(), Some(ROLE_B));
    }

    #[tokio::test]
    async fn a_region_that_cannot_be_listed_is_reported_and_others_go_on() {
        let mut eks = FakeEks::default();
        eks.add(None, "us-east-1", "tagged", &[("sync", "yes")]);
        eks.broken.push("eu-west-1".into());
        let config = config("{regions: [eu-west-1, us-east-1], tags: {sync: 'yes'}}");
        let fleet = resolve(&config, &eks).await;
        assert_eq!(
            names(&fleet),
            [("listed", "us-east-1"), ("tagged", "us-east-1")]
        );
        assert_eq!(fleet.failures.len(), 1);
        let failure = &fleet.failures[0];
        assert_eq!(
            (failure.cluster.as_str(), failure.region.as_str()),
            ("discovery[0]", "eu-west-1")
        );
        assert!(failure.reason.as_deref().unwrap().contains("AccessDenied"));
    }

    #[test]
    fn merge_keeps_the_first_of_each_cluster_by_name_region_and_account() {
        let own = ClusterRef::new("a", "us-east-1");
        let other_account = ClusterRef {
            role_arn: Some(ROLE_B.into()),
            ..own.clone()
        };
        let same_account_other_role = ClusterRef {
            role_arn: Some("arn:aws:iam::210987654321:role/other".into()),
            backend: Backend::AccessEntries,
            ..own.clone()
        };
        let merged = merge(
            std::slice::from_ref(&own),
            vec![
                own.clone(),
                other_account.clone(),
                same_account_other_role,
                ClusterRef::new("a", "eu-west-1"),
            ],
        );
        assert_eq!(
            merged,
            [own, other_account, ClusterRef::new("a", "eu-west-1")]
        );
    }
}
