//! Where each cluster is and how to reach it, through the EKS control-plane API.
//!
//! DescribeCluster gives the endpoint, the CA, the authentication mode and the tags; ListClusters
//! the names discovery looks at. The answers are cached for warm invocations (endpoints, CAs and
//! tags change rarely; the TTL bounds how stale they get, and every full reconcile starts
//! afresh), so a warm Lambda handling a user event makes no DescribeCluster or ListClusters
//! call for clusters it has seen, only the access-entry calls of that backend. Each cluster is
//! reached as the identity its config asks for ([`CredentialsFor`]): one EKS client per region
//! and identity.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::future::BoxFuture;

use crate::config::ClusterRef;
use crate::credentials::CredentialsFor;
use crate::sync::{AccessEntryStore, EksAccessEntries};

/// How long a DescribeCluster or ListClusters answer is reused. Default 15 minutes.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(15 * 60);

/// A cluster's authentication mode (`accessConfig.authenticationMode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticationMode {
    ConfigMap,
    ApiAndConfigMap,
    Api,
    /// A mode this version does not know; such a cluster is skipped, not guessed at.
    Other(String),
}

impl AuthenticationMode {
    /// EKS omits accessConfig on clusters created before access entries: those are CONFIG_MAP.
    pub fn from_eks(mode: Option<&str>) -> Self {
        match mode {
            None | Some("CONFIG_MAP") => Self::ConfigMap,
            Some("API_AND_CONFIG_MAP") => Self::ApiAndConfigMap,
            Some("API") => Self::Api,
            Some(other) => Self::Other(other.to_string()),
        }
    }

    /// Whether the cluster reads aws-auth at all.
    pub fn reads_aws_auth(&self) -> bool {
        matches!(self, Self::ConfigMap | Self::ApiAndConfigMap)
    }
}

/// Everything needed to talk to one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    pub name: String,
    pub region: String,
    pub endpoint: String,
    /// The cluster CA in PEM, decoded from DescribeCluster's base64.
    pub ca_pem: String,
    pub mode: AuthenticationMode,
    /// The role the cluster is reached as (EKS calls and the token); `None`: the function's own
    /// identity. Resolved to credentials through [`CredentialsFor`] where they are used.
    pub role_arn: Option<String>,
    /// The cluster's tags, which discovery matches.
    pub tags: BTreeMap<String, String>,
}

/// A cluster could not be described or reached.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster {cluster} ({region}): DescribeCluster failed{}: {detail}", as_role(.role_arn))]
    Describe {
        cluster: String,
        region: String,
        role_arn: Option<String>,
        detail: String,
    },
    #[error("cluster {cluster} ({region}) does not exist{}", as_role(.role_arn))]
    NotFound {
        cluster: String,
        region: String,
        role_arn: Option<String>,
    },
    #[error("cluster {cluster}: DescribeCluster returned {what}")]
    Incomplete { cluster: String, what: String },
    #[error("cluster {cluster}: cannot build a Kubernetes client: {detail}")]
    Client { cluster: String, detail: String },
    #[error("ListClusters in {region} failed{}: {detail}", as_role(.role_arn))]
    List {
        region: String,
        role_arn: Option<String>,
        detail: String,
    },
    #[error("region {region}: {source}")]
    Identity {
        region: String,
        #[source]
        source: crate::credentials::IdentityError,
    },
}

fn as_role(role_arn: &Option<String>) -> String {
    role_arn
        .as_deref()
        .map(|role| format!(" as {role}"))
        .unwrap_or_default()
}

/// The EKS control plane as the sync needs it; the real one is [`EksDirectory`].
pub trait ClusterDirectory: Send + Sync {
    /// DescribeCluster, as the identity `cluster.role_arn` names.
    fn describe<'a>(
        &'a self,
        cluster: &'a ClusterRef,
    ) -> BoxFuture<'a, Result<ClusterTarget, ClusterError>>;

    /// ListClusters in `region`, all pages: the names, as the identity `role_arn` names.
    fn list<'a>(
        &'a self,
        region: &'a str,
        role_arn: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, ClusterError>>;

    /// The access entries of a described cluster, through the EKS API as the target's identity.
    fn access_entries(
        &self,
        target: &ClusterTarget,
    ) -> Result<Box<dyn AccessEntryStore>, ClusterError>;

    /// What `audit` reads of the cluster through the EKS API (and the one write
    /// `--fix-logging` makes), as the identity `cluster.role_arn` names, never cached.
    /// Directories that cannot audit (test fakes) say so.
    fn auditor(
        &self,
        cluster: &ClusterRef,
    ) -> Result<Box<dyn crate::audit::ClusterSource>, ClusterError> {
        Err(ClusterError::Client {
            cluster: cluster.name.clone(),
            detail: "this cluster directory cannot audit".into(),
        })
    }

    /// Drops cached answers, so the next calls read EKS afresh. A full reconcile does this: a
    /// new authentication mode, endpoint, tag or cluster then counts from the next scheduled
    /// run, not only after the cache TTL.
    fn forget_cached(&self) {}
}

/// (role, region, name): what a DescribeCluster answer depends on.
type DescribeKey = (Option<String>, String, String);
/// (role, region): one EKS client, one ListClusters answer.
type RegionKey = (Option<String>, String);

/// [`ClusterDirectory`] over aws-sdk-eks, one client per region and identity, answers cached
/// for a TTL.
pub struct EksDirectory {
    sdk: aws_config::SdkConfig,
    identities: Arc<dyn CredentialsFor>,
    ttl: Duration,
    clients: Mutex<HashMap<RegionKey, aws_sdk_eks::Client>>,
    cache: Mutex<HashMap<DescribeKey, (Instant, ClusterTarget)>>,
    listings: Mutex<HashMap<RegionKey, (Instant, Vec<String>)>>,
    /// Where the audit asks STS who it is; the SDK config's own endpoints unless set.
    sts: Option<aws_config::SdkConfig>,
}

impl EksDirectory {
    /// Reaches every cluster as the SDK config's own identity; a cluster with `roleArn` fails.
    pub fn new(sdk: aws_config::SdkConfig, ttl: Duration) -> Self {
        let own = sdk.credentials_provider();
        Self::with_identities(sdk, ttl, Arc::new(own))
    }

    /// Reaches each cluster as the identity `identities` gives for its `roleArn`.
    pub fn with_identities(
        sdk: aws_config::SdkConfig,
        ttl: Duration,
        identities: Arc<dyn CredentialsFor>,
    ) -> Self {
        Self {
            sdk,
            identities,
            ttl,
            clients: Mutex::default(),
            cache: Mutex::default(),
            listings: Mutex::default(),
            sts: None,
        }
    }

    /// Asks STS (GetCallerIdentity, for the audit) through `sdk`'s endpoint instead of the
    /// directory's own: for wiring where one SDK config points at EKS alone (the tests).
    pub fn with_sts(mut self, sdk: aws_config::SdkConfig) -> Self {
        self.sts = Some(sdk);
        self
    }

    fn client(
        &self,
        region: &str,
        role_arn: Option<&str>,
    ) -> Result<aws_sdk_eks::Client, ClusterError> {
        let key = (role_arn.map(str::to_owned), region.to_owned());
        let mut clients = self.clients.lock().expect("eks clients lock");
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let credentials = self
            .identities
            .credentials_for(role_arn)
            .map_err(|source| ClusterError::Identity {
                region: region.to_owned(),
                source,
            })?;
        let config = aws_sdk_eks::config::Builder::from(&self.sdk)
            .region(aws_sdk_eks::config::Region::new(region.to_owned()))
            .credentials_provider(credentials)
            .build();
        let client = aws_sdk_eks::Client::from_conf(config);
        clients.insert(key, client.clone());
        Ok(client)
    }

    fn describe_key(cluster: &ClusterRef) -> DescribeKey {
        (
            cluster.role_arn.clone(),
            cluster.region.clone(),
            cluster.name.clone(),
        )
    }

    fn cached(&self, cluster: &ClusterRef) -> Option<ClusterTarget> {
        let cache = self.cache.lock().expect("cluster cache lock");
        cache
            .get(&Self::describe_key(cluster))
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, target)| target.clone())
    }

    async fn fetch(&self, cluster: &ClusterRef) -> Result<ClusterTarget, ClusterError> {
        let client = self.client(&cluster.region, cluster.role_arn.as_deref())?;
        let described = describe_cluster(&client, cluster).await?;
        target_from(cluster, &described)
    }

    async fn fetch_list(
        &self,
        region: &str,
        role_arn: Option<&str>,
    ) -> Result<Vec<String>, ClusterError> {
        let mut names: Vec<String> = self
            .client(region, role_arn)?
            .list_clusters()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<String>, _>>()
            .await
            .map_err(|e| ClusterError::List {
                region: region.to_owned(),
                role_arn: role_arn.map(str::to_owned),
                detail: aws_sdk_eks::error::DisplayErrorContext(e).to_string(),
            })?;
        names.sort();
        names.dedup();
        Ok(names)
    }
}

impl ClusterDirectory for EksDirectory {
    fn describe<'a>(
        &'a self,
        cluster: &'a ClusterRef,
    ) -> BoxFuture<'a, Result<ClusterTarget, ClusterError>> {
        Box::pin(async move {
            if let Some(target) = self.cached(cluster) {
                return Ok(target);
            }
            let target = self.fetch(cluster).await?;
            self.cache.lock().expect("cluster cache lock").insert(
                Self::describe_key(cluster),
                (Instant::now(), target.clone()),
            );
            Ok(target)
        })
    }

    fn list<'a>(
        &'a self,
        region: &'a str,
        role_arn: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, ClusterError>> {
        Box::pin(async move {
            let key = (role_arn.map(str::to_owned), region.to_owned());
            let cached = self
                .listings
                .lock()
                .expect("cluster listing lock")
                .get(&key)
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, names)| names.clone());
            if let Some(names) = cached {
                return Ok(names);
            }
            let names = self.fetch_list(region, role_arn).await?;
            self.listings
                .lock()
                .expect("cluster listing lock")
                .insert(key, (Instant::now(), names.clone()));
            Ok(names)
        })
    }

    fn access_entries(
        &self,
        target: &ClusterTarget,
    ) -> Result<Box<dyn AccessEntryStore>, ClusterError> {
        let client = self.client(&target.region, target.role_arn.as_deref())?;
        Ok(Box::new(EksAccessEntries::new(client, &target.name)))
    }

    fn auditor(
        &self,
        cluster: &ClusterRef,
    ) -> Result<Box<dyn crate::audit::ClusterSource>, ClusterError> {
        let eks = self.client(&cluster.region, cluster.role_arn.as_deref())?;
        let credentials = self
            .identities
            .credentials_for(cluster.role_arn.as_deref())
            .map_err(|source| ClusterError::Identity {
                region: cluster.region.clone(),
                source,
            })?;
        let sts = aws_sdk_sts::config::Builder::from(self.sts.as_ref().unwrap_or(&self.sdk))
            .region(aws_sdk_sts::config::Region::new(cluster.region.clone()))
            .credentials_provider(credentials)
            .build();
        Ok(Box::new(crate::audit::EksSource::new(
            eks,
            aws_sdk_sts::Client::from_conf(sts),
            cluster.clone(),
        )))
    }

    fn forget_cached(&self) {
        self.cache.lock().expect("cluster cache lock").clear();
        self.listings.lock().expect("cluster listing lock").clear();
    }
}

/// DescribeCluster, its answer as EKS gave it; a cluster EKS does not know is
/// [`ClusterError::NotFound`].
pub(crate) async fn describe_cluster(
    client: &aws_sdk_eks::Client,
    cluster: &ClusterRef,
) -> Result<aws_sdk_eks::types::Cluster, ClusterError> {
    let out = client
        .describe_cluster()
        .name(&cluster.name)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception())
            {
                ClusterError::NotFound {
                    cluster: cluster.name.clone(),
                    region: cluster.region.clone(),
                    role_arn: cluster.role_arn.clone(),
                }
            } else {
                ClusterError::Describe {
                    cluster: cluster.name.clone(),
                    region: cluster.region.clone(),
                    role_arn: cluster.role_arn.clone(),
                    detail: aws_sdk_eks::error::DisplayErrorContext(e).to_string(),
                }
            }
        })?;
    out.cluster.ok_or_else(|| ClusterError::Incomplete {
        cluster: cluster.name.clone(),
        what: "no cluster".to_string(),
    })
}

/// What the sync needs of a DescribeCluster answer.
pub(crate) fn target_from(
    cluster: &ClusterRef,
    described: &aws_sdk_eks::types::Cluster,
) -> Result<ClusterTarget, ClusterError> {
    let incomplete = |what: &str| ClusterError::Incomplete {
        cluster: cluster.name.clone(),
        what: what.to_string(),
    };
    let endpoint = described
        .endpoint()
        .ok_or_else(|| incomplete("no endpoint"))?;
    let ca = described
        .certificate_authority()
        .and_then(|ca| ca.data())
        .ok_or_else(|| incomplete("no certificateAuthority.data"))?;
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| incomplete("certificateAuthority.data that is not base64 PEM"))?;
    let mode = described
        .access_config()
        .and_then(|a| a.authentication_mode())
        .map(|m| m.as_str().to_string());
    Ok(ClusterTarget {
        name: cluster.name.clone(),
        region: cluster.region.clone(),
        endpoint: endpoint.to_string(),
        ca_pem,
        mode: AuthenticationMode::from_eks(mode.as_deref()),
        role_arn: cluster.role_arn.clone(),
        tags: described
            .tags()
            .map(|tags| tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    })
}

/// A Kubernetes client that trusts only the cluster's own CA and sends `token`.
pub fn kube_client(target: &ClusterTarget, token: &str) -> Result<kube::Client, ClusterError> {
    let error = |detail: String| ClusterError::Client {
        cluster: target.name.clone(),
        detail,
    };
    let uri = target
        .endpoint
        .parse()
        .map_err(|e| error(format!("bad endpoint {}: {e}", target.endpoint)))?;
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(pem_certificates(&target.ca_pem).map_err(error)?);
    config.auth_info.token = Some(token.to_string().into());
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(20));
    config.write_timeout = Some(Duration::from_secs(20));
    // kube retries 429/503/504 by itself (up to 15 times, past any deadline and unseen in the
    // report); the writers' own loop (`sync::retry`) does it within the run's deadline instead.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| error(e.to_string()))
}

/// DER certificates from a PEM bundle.
fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        match (line, body.as_mut()) {
            ("-----BEGIN CERTIFICATE-----", _) => body = Some(String::new()),
            ("-----END CERTIFICATE-----", Some(b)) => {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .map_err(|e| format!("CA certificate is not valid base64: {e}"))?;
                certs.push(der);
                body = None;
            }
            (l, Some(b)) => b.push_str(l),
            _ => {}
        }
    }
    if certs.is_empty() {
        return Err("CA data holds no PEM certificate".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_access_config_means_config_map() {
        assert_eq!(
            AuthenticationMode::from_eks(None),
            AuthenticationMode::ConfigMap
        );
        assert!(AuthenticationMode::from_eks(Some("API_AND_CONFIG_MAP")).reads_aws_auth());
        assert!(!AuthenticationMode::from_eks(Some("API")).reads_aws_auth());
        assert!(!AuthenticationMode::from_eks(Some("NEW_MODE")).reads_aws_auth());
    }

    #[test]
    fn pem_without_certificate_is_refused() {
        assert!(pem_certificates("not a pem").is_err());
    }

    #[test]
    fn pem_bundle_yields_each_certificate() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAwQF\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_certificates(pem).unwrap(),
            vec![vec![0, 1, 2], vec![3, 4, 5]]
        );
    }
}
