//! What a test bed is made of.
//!
//! A platform team's fleet mixes regions, accounts and authentication modes, and the product
//! finds part of it by tags, so a bed is described cluster by cluster ([`FleetOptions`] of
//! [`ClusterOptions`]). [`TestBedOptions`], N alike clusters, stays as the short form every
//! existing test uses; it converts into a fleet.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use crate::eks::AuthenticationMode;
use crate::moto::{ACCOUNT_ID, REGION};

/// N clusters named `<prefix>-1`, `<prefix>-2`, ..., all in `CONFIG_MAP` mode in the default
/// account and region, tagged [`DEFAULT_TAG`].
#[derive(Clone, Debug)]
pub struct TestBedOptions {
    /// Number of simulated EKS clusters (default 2).
    pub clusters: usize,
    /// Cluster names are `<prefix>-1`, `<prefix>-2`, ... (default `dev`).
    pub name_prefix: String,
}

impl Default for TestBedOptions {
    fn default() -> Self {
        Self {
            clusters: 2,
            name_prefix: "dev".into(),
        }
    }
}

/// The tag every cluster of [`TestBedOptions`] carries.
pub const DEFAULT_TAG: (&str, &str) = ("environment", "test-bed");

/// One cluster of a test bed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterOptions {
    /// The EKS cluster name; unique within the bed (the webhook tells clusters apart by it).
    pub name: String,
    pub region: String,
    /// The AWS account the cluster lives in. Any account but the default one gets a role the
    /// sync function can assume (see the README of the test bed).
    pub account: String,
    pub authentication_mode: AuthenticationMode,
    pub tags: BTreeMap<String, String>,
    /// Whether the description's `syncConfig` names the cluster; false leaves it to be found
    /// by discovery.
    pub listed: bool,
}

impl ClusterOptions {
    /// A listed, untagged `CONFIG_MAP` cluster in the default account and region.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            region: REGION.to_owned(),
            account: ACCOUNT_ID.to_owned(),
            authentication_mode: AuthenticationMode::ConfigMap,
            tags: BTreeMap::new(),
            listed: true,
        }
    }

    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = account.into();
        self
    }

    pub fn mode(mut self, mode: AuthenticationMode) -> Self {
        self.authentication_mode = mode;
        self
    }

    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Leaves the cluster out of `syncConfig`.
    pub fn unlisted(mut self) -> Self {
        self.listed = false;
        self
    }

    fn validate(&self) -> Result<(), OptionsError> {
        let name_ok = (1..=100).contains(&self.name.len())
            && self.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(OptionsError::Name(self.name.clone()));
        }
        if self.account.len() != 12 || !self.account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(OptionsError::Account(self.account.clone()));
        }
        if !is_region(&self.region) {
            return Err(OptionsError::Region(self.region.clone()));
        }
        Ok(())
    }
}

/// `us-east-1`, `eu-west-1`, `ap-southeast-2`: lowercase words, then a number.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// `NAME[,region=REGION][,account=ACCOUNT][,mode=MODE][,tag=KEY=VALUE]...[,unlisted]`, the
/// form `eks-testbed up --cluster` takes.
impl FromStr for ClusterOptions {
    type Err = OptionsError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.split(',');
        let mut cluster = Self::new(parts.next().unwrap_or_default());
        for part in parts {
            let bad = || OptionsError::Spec(part.to_owned());
            match part.split_once('=') {
                Some(("region", region)) => cluster.region = region.to_owned(),
                Some(("account", account)) => cluster.account = account.to_owned(),
                Some(("mode", mode)) => {
                    cluster.authentication_mode =
                        AuthenticationMode::parse(mode).ok_or_else(bad)?;
                }
                Some(("tag", tag)) => {
                    let (key, value) = tag.split_once('=').ok_or_else(bad)?;
                    cluster.tags.insert(key.to_owned(), value.to_owned());
                }
                None if part == "unlisted" => cluster.listed = false,
                _ => return Err(bad()),
            }
        }
        cluster.validate()?;
        Ok(cluster)
    }
}

/// What to start, cluster by cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetOptions {
    pub clusters: Vec<ClusterOptions>,
}

impl FleetOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cluster(mut self, cluster: ClusterOptions) -> Self {
        self.clusters.push(cluster);
        self
    }

    /// The accounts other than the default one that clusters live in, in order.
    pub fn other_accounts(&self) -> BTreeSet<String> {
        self.clusters
            .iter()
            .map(|c| c.account.clone())
            .filter(|account| account != ACCOUNT_ID)
            .collect()
    }

    /// At least one cluster, each well-formed, names unique across regions and accounts.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.clusters.is_empty() {
            return Err(OptionsError::NoClusters);
        }
        let mut names = BTreeSet::new();
        for cluster in &self.clusters {
            cluster.validate()?;
            if !names.insert(cluster.name.as_str()) {
                return Err(OptionsError::DuplicateName(cluster.name.clone()));
            }
        }
        Ok(())
    }
}

impl From<TestBedOptions> for FleetOptions {
    fn from(options: TestBedOptions) -> Self {
        let (key, value) = DEFAULT_TAG;
        Self {
            clusters: (1..=options.clusters)
                .map(|i| {
                    ClusterOptions::new(format!("{}-{i}", options.name_prefix)).tag(key, value)
                })
                .collect(),
        }
    }
}

/// Why a fleet cannot be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("at least one cluster is needed")]
    NoClusters,
    #[error("two clusters are named {0:?}; names must be unique in a test bed")]
    DuplicateName(String),
    #[error("{0:?} is not an EKS cluster name (1-100 letters, digits, '-' or '_', starting with a letter or digit)")]
    Name(String),
    #[error("{0:?} is not an AWS account id (12 digits)")]
    Account(String),
    #[error("{0:?} is not a region name like us-east-1")]
    Region(String),
    #[error("{0:?} is not region=, account=, mode=CONFIG_MAP|API_AND_CONFIG_MAP|API, tag=KEY=VALUE or unlisted")]
    Spec(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_bed_options_become_alike_clusters() {
        let fleet = FleetOptions::from(TestBedOptions::default());
        let names: Vec<&str> = fleet.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["dev-1", "dev-2"]);
        let first = &fleet.clusters[0];
        assert_eq!(
            (first.region.as_str(), first.account.as_str()),
            (REGION, ACCOUNT_ID)
        );
        assert_eq!(first.authentication_mode, AuthenticationMode::ConfigMap);
        assert_eq!(first.tags["environment"], "test-bed");
        assert!(first.listed);
        assert!(fleet.other_accounts().is_empty());
    }

    #[test]
    fn cluster_specs_parse() {
        let cluster: ClusterOptions =
            "api,region=eu-west-1,account=210987654321,mode=API,tag=team=platform,unlisted"
                .parse()
                .unwrap();
        assert_eq!(
            cluster,
            ClusterOptions::new("api")
                .region("eu-west-1")
                .account("210987654321")
                .mode(AuthenticationMode::Api)
                .tag("team", "platform")
                .unlisted()
        );
        for bad in [
            "",
            "a,mode=api",
            "a,region=Mars",
            "a,account=12",
            "a,tag=x",
            "a,x",
        ] {
            assert!(bad.parse::<ClusterOptions>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fleets_need_unique_names() {
        assert_eq!(
            FleetOptions::new().validate(),
            Err(OptionsError::NoClusters)
        );
        let twice = FleetOptions::new()
            .cluster(ClusterOptions::new("a"))
            .cluster(ClusterOptions::new("a").region("eu-west-1"));
        assert_eq!(
            twice.validate(),
            Err(OptionsError::DuplicateName("a".into()))
        );
        let mixed = FleetOptions::new()
            .cluster(ClusterOptions::new("a"))
            .cluster(ClusterOptions::new("b").account("210987654321"));
        assert!(mixed.validate().is_ok());
        assert_eq!(
            mixed.other_accounts().into_iter().collect::<Vec<_>>(),
            ["210987654321"]
        );
    }
}
