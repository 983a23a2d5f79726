//! Where each cluster is and how to reach it.
//!
//! DescribeCluster gives the endpoint, the CA and the authentication mode. The answer is cached
//! for warm invocations (endpoints and CAs change rarely; the TTL bounds how stale they get), so
//! a warm Lambda makes no EKS call at all for a user event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::future::BoxFuture;

use crate::config::ClusterRef;

/// How long a DescribeCluster answer is reused. Default 15 minutes.
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
}

/// A cluster could not be described or reached.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster {cluster} ({region}): DescribeCluster failed: {detail}")]
    Describe {
        cluster: String,
        region: String,
        detail: String,
    },
    #[error("cluster {cluster} ({region}) does not exist")]
    NotFound { cluster: String, region: String },
    #[error("cluster {cluster}: DescribeCluster returned {what}")]
    Incomplete { cluster: String, what: String },
    #[error("cluster {cluster}: cannot build a Kubernetes client: {detail}")]
    Client { cluster: String, detail: String },
}

/// Looks clusters up; the real one is [`EksDirectory`].
pub trait ClusterDirectory: Send + Sync {
    fn describe<'a>(
        &'a self,
        cluster: &'a ClusterRef,
    ) -> BoxFuture<'a, Result<ClusterTarget, ClusterError>>;
}

/// [`ClusterDirectory`] over aws-sdk-eks, one client per region, answers cached for a TTL.
pub struct EksDirectory {
    sdk: aws_config::SdkConfig,
    ttl: Duration,
    clients: Mutex<HashMap<String, aws_sdk_eks::Client>>,
    cache: Mutex<HashMap<ClusterRef, (Instant, ClusterTarget)>>,
}

impl EksDirectory {
    pub fn new(sdk: aws_config::SdkConfig, ttl: Duration) -> Self {
        Self {
            sdk,
            ttl,
            clients: Mutex::default(),
            cache: Mutex::default(),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_eks::Client {
        let mut clients = self.clients.lock().expect("eks clients lock");
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let config = aws_sdk_eks::config::Builder::from(&self.sdk)
                    .region(aws_sdk_eks::config::Region::new(region.to_string()))
                    .build();
                aws_sdk_eks::Client::from_conf(config)
            })
            .clone()
    }

    fn cached(&self, cluster: &ClusterRef) -> Option<ClusterTarget> {
        let cache = self.cache.lock().expect("cluster cache lock");
        cache
            .get(cluster)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, target)| target.clone())
    }

    async fn fetch(&self, cluster: &ClusterRef) -> Result<ClusterTarget, ClusterError> {
        let out = self
            .client(&cluster.region)
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
                    }
                } else {
                    ClusterError::Describe {
                        cluster: cluster.name.clone(),
                        region: cluster.region.clone(),
                        detail: aws_sdk_eks::error::DisplayErrorContext(e).to_string(),
                    }
                }
            })?;
        let incomplete = |what: &str| ClusterError::Incomplete {
            cluster: cluster.name.clone(),
            what: what.to_string(),
        };
        let described = out.cluster().ok_or_else(|| incomplete("no cluster"))?;
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
        })
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
            self.cache
                .lock()
                .expect("cluster cache lock")
                .insert(cluster.clone(), (Instant::now(), target.clone()));
            Ok(target)
        })
    }
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
