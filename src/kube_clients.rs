//! One Kubernetes client per cluster, kept across warm invocations.
//!
//! A warm Lambda handles event after event against the same clusters. Building a client per
//! event costs a token signature, a TCP connection and a TLS handshake per cluster, which on the
//! warm path is most of the time spent outside the API server itself. So the client (its
//! connection pool and TLS session) is kept, keyed by everything that decides where and as whom
//! it connects, and only rebuilt when its token is about to expire.
//!
//! The token's life: aws-iam-authenticator accepts a token for 15 minutes from its
//! `X-Amz-Date` (pkg/token/token.go, `presignedURLExpiration = 15 * time.Minute`; the AWS CLI
//! reports 14), and never after the credentials that signed it expire. A kept client is renewed
//! [`RENEW_MARGIN`] before the earlier of the two, so a run that takes it just before renewal
//! still has that long (more than the function's timeout). A cluster that refuses a kept token
//! anyway (401: a clock that jumped, credentials revoked early) gets one more try with a fresh
//! client, and the refused one is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::cluster::{self, ClusterTarget};
use crate::credentials::CredentialsFor;
use crate::sync::{AwsAuthStore, KubeAwsAuth, StoreError};
use crate::token;

/// How long before its token (or its credentials) expires a kept client is renewed.
pub const RENEW_MARGIN: Duration = Duration::from_secs(4 * 60);

/// How long a client whose token was signed at `now` may be handed out: until
/// [`RENEW_MARGIN`] before the token or its credentials expire, whichever is first; zero (never
/// kept) when that is already past.
pub fn keep_for(
    now: SystemTime,
    token_expires: SystemTime,
    credentials_expire: Option<SystemTime>,
) -> Duration {
    let valid_until = credentials_expire.map_or(token_expires, |c| c.min(token_expires));
    valid_until
        .duration_since(now)
        .unwrap_or_default()
        .saturating_sub(RENEW_MARGIN)
}

struct Kept {
    client: kube::Client,
    renew_at: Instant,
}

/// The clients, shared by every run of the process.
pub struct KubeClients {
    credentials: Arc<dyn CredentialsFor>,
    kept: Mutex<HashMap<String, Kept>>,
}

impl KubeClients {
    pub fn new(credentials: Arc<dyn CredentialsFor>) -> Self {
        Self {
            credentials,
            kept: Mutex::new(HashMap::new()),
        }
    }

    /// Where and as whom a client connects; a cluster recreated with another endpoint or CA,
    /// or reached as another role, gets another client.
    fn key(target: &ClusterTarget) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}",
            target.name,
            target.region,
            target.endpoint,
            target.role_arn.as_deref().unwrap_or(""),
            target.ca_pem
        )
    }

    /// The kept client of `target` while its token has time left, else a new one (kept);
    /// `fresh` forces a new one. Also says whether the client was a kept one.
    pub async fn client(
        &self,
        target: &ClusterTarget,
        fresh: bool,
    ) -> Result<(kube::Client, bool), String> {
        let key = Self::key(target);
        if !fresh {
            let kept = self.kept.lock().expect("client cache lock");
            if let Some(kept) = kept.get(&key).filter(|k| Instant::now() < k.renew_at) {
                return Ok((kept.client.clone(), true));
            }
        }
        let credentials = self
            .credentials
            .credentials_for(target.role_arn.as_deref())
            .map_err(|e| e.to_string())?
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials to sign the cluster token: {e}"))?;
        let now = SystemTime::now();
        let token = token::token(&credentials, &target.region, &target.name, now)
            .map_err(|e| e.to_string())?;
        let client = cluster::kube_client(target, token.expose()).map_err(|e| e.to_string())?;
        let left = keep_for(now, token.expiration, credentials.expiry());
        self.kept.lock().expect("client cache lock").insert(
            key,
            Kept {
                client: client.clone(),
                renew_at: Instant::now() + left,
            },
        );
        Ok((client, false))
    }

    /// Drops `target`'s kept client (its token was refused).
    fn forget(&self, target: &ClusterTarget) {
        self.kept
            .lock()
            .expect("client cache lock")
            .remove(&Self::key(target));
    }

    /// The aws-auth of `target` through its kept client.
    pub fn aws_auth(self: &Arc<Self>, target: &ClusterTarget) -> KeptAwsAuth {
        KeptAwsAuth {
            clients: Arc::clone(self),
            target: target.clone(),
        }
    }
}

/// [`AwsAuthStore`] over a kept client: a 401 from a kept client is tried once more with a
/// fresh one.
pub struct KeptAwsAuth {
    clients: Arc<KubeClients>,
    target: ClusterTarget,
}

impl KeptAwsAuth {
    async fn with_store<'a, T, F>(&'a self, call: F) -> Result<T, StoreError>
    where
        F: Fn(KubeAwsAuth) -> BoxFuture<'a, Result<T, StoreError>>,
    {
        let (client, kept) = self
            .clients
            .client(&self.target, false)
            .await
            .map_err(StoreError::Api)?;
        match call(KubeAwsAuth::new(client)).await {
            Err(StoreError::Unauthorized(detail)) if kept => {
                tracing::info!(cluster = %self.target.name, %detail, "the kept client's token was refused; signing a new one");
                self.clients.forget(&self.target);
                let (client, _) = self
                    .clients
                    .client(&self.target, true)
                    .await
                    .map_err(StoreError::Api)?;
                call(KubeAwsAuth::new(client)).await
            }
            other => other,
        }
    }
}

impl AwsAuthStore for KeptAwsAuth {
    fn get(&self) -> BoxFuture<'_, Result<Option<ConfigMap>, StoreError>> {
        Box::pin(self.with_store(|store| Box::pin(async move { store.get().await })))
    }

    fn replace<'a>(&'a self, config_map: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(
            self.with_store(move |store| Box::pin(async move { store.replace(config_map).await })),
        )
    }

    fn create<'a>(&'a self, config_map: &'a ConfigMap) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(
            self.with_store(move |store| Box::pin(async move { store.create(config_map).await })),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_renewed_before_its_token_or_credentials_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let token = now + Duration::from_secs(14 * 60);
        assert_eq!(keep_for(now, token, None), Duration::from_secs(10 * 60));
        let soon = now + Duration::from_secs(6 * 60);
        assert_eq!(
            keep_for(now, token, Some(soon)),
            Duration::from_secs(2 * 60)
        );
        let expiring = now + Duration::from_secs(60);
        assert_eq!(keep_for(now, token, Some(expiring)), Duration::ZERO);
        assert_eq!(
            keep_for(now, now - Duration::from_secs(1), None),
            Duration::ZERO
        );
    }
}
