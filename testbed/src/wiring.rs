//! How the test bed's stand-ins learn from each other what the AWS services behind them share.
//!
//! - On EKS the authenticator reads the cluster's mode and access entries from EKS itself; here
//!   the webhook reads them from the EKS emulator ([`EmulatorAccessEntries`]).
//! - STS knows every key it issued and which account it belongs to. The product assumes roles
//!   while it runs (into another account, say), so neither the webhook (to check a token's
//!   signature) nor the EKS emulator (to place a caller in its account) can be told those keys
//!   in advance; both ask [`KeyDirectory`], which knows the keys the test bed issued and reads
//!   the others back from moto.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::authn::{
    AccessEntryGrant, AccessEntrySource, AuthenticationMode, CredentialIssuer, CredentialStore,
    IssuedCredential,
};
use crate::eks::{AccountResolver, EksEmulator, PrincipalDirectory};
use crate::moto::MotoSessions;
use crate::options::FleetOptions;

/// The webhook's view of the emulator: cluster names (unique in a bed) resolved to the
/// account and region the emulator keys them by.
pub struct EmulatorAccessEntries {
    eks: EksEmulator,
    /// Cluster name -> (account, region).
    clusters: HashMap<String, (String, String)>,
}

impl EmulatorAccessEntries {
    pub fn new(eks: EksEmulator, fleet: &FleetOptions) -> Self {
        let clusters = fleet
            .clusters
            .iter()
            .map(|c| (c.name.clone(), (c.account.clone(), c.region.clone())))
            .collect();
        Self { eks, clusters }
    }
}

impl AccessEntrySource for EmulatorAccessEntries {
    fn authentication_mode(&self, cluster: &str) -> AuthenticationMode {
        self.clusters
            .get(cluster)
            .and_then(|(account, region)| self.eks.cluster(account, region, cluster))
            .map_or(AuthenticationMode::ConfigMap, |spec| {
                spec.authentication_mode
            })
    }

    fn access_entry(&self, cluster: &str, principal_arn: &str) -> Option<AccessEntryGrant> {
        let (account, region) = self.clusters.get(cluster)?;
        let entry = self
            .eks
            .access_entry_for(account, region, cluster, principal_arn)?;
        Some(AccessEntryGrant {
            principal_arn: entry.principal_arn,
            principal_id: entry.principal_id,
            username: entry.username,
            groups: entry.kubernetes_groups,
        })
    }
}

/// IAM's unique id of the principal an access entry names, read from moto in the principal's
/// own account (GetUser or GetRole), as EKS resolves it when the entry is created.
pub struct MotoPrincipals {
    /// An IAM client acting in each account of the bed.
    iam: HashMap<String, aws_sdk_iam::Client>,
}

impl MotoPrincipals {
    pub fn new(iam: HashMap<String, aws_sdk_iam::Client>) -> Self {
        Self { iam }
    }

    async fn lookup(&self, principal_arn: &str) -> anyhow::Result<Option<String>> {
        let Some(account) = account_of_arn(principal_arn) else {
            return Ok(None);
        };
        let Some(iam) = self.iam.get(&account) else {
            return Ok(None);
        };
        let Some((kind, path_and_name)) = principal_arn
            .split_once(":user/")
            .map(|(_, rest)| ("user", rest))
            .or_else(|| {
                principal_arn
                    .split_once(":role/")
                    .map(|(_, rest)| ("role", rest))
            })
        else {
            return Ok(None);
        };
        let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
        let found = if kind == "user" {
            match iam.get_user().user_name(name).send().await {
                Ok(out) => out
                    .user()
                    .map(|u| (u.arn().to_owned(), u.user_id().to_owned())),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_no_such_entity_exception()) =>
                {
                    None
                }
                Err(e) => anyhow::bail!("{}", aws_sdk_iam::error::DisplayErrorContext(e)),
            }
        } else {
            match iam.get_role().role_name(name).send().await {
                Ok(out) => out
                    .role()
                    .map(|r| (r.arn().to_owned(), r.role_id().to_owned())),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_no_such_entity_exception()) =>
                {
                    None
                }
                Err(e) => anyhow::bail!("{}", aws_sdk_iam::error::DisplayErrorContext(e)),
            }
        };
        // Another path is another ARN: not the principal the entry names.
        Ok(found
            .filter(|(arn, _)| arn.eq_ignore_ascii_case(principal_arn))
            .map(|(_, id)| id))
    }
}

impl PrincipalDirectory for MotoPrincipals {
    fn principal_id<'a>(&'a self, principal_arn: &'a str) -> BoxFuture<'a, Option<String>> {
        async move {
            match self.lookup(principal_arn).await {
                Ok(id) => id,
                Err(error) => {
                    tracing::warn!(principal_arn, error = %format!("{error:#}"), "could not ask IAM for a principal id");
                    None
                }
            }
        }
        .boxed()
    }
}

/// Every access key STS issued: the ones the test bed registered in its
/// [`CredentialStore`], then role sessions moto issued to others (learned once, then kept in
/// the store).
pub struct KeyDirectory {
    creds: CredentialStore,
    sessions: MotoSessions,
    /// Keys moto did not know when asked; it never will, as new keys are random.
    unknown: Mutex<HashSet<String>>,
}

impl KeyDirectory {
    pub fn new(creds: CredentialStore, sessions: MotoSessions) -> Self {
        Self {
            creds,
            sessions,
            unknown: Mutex::default(),
        }
    }

    /// The credential issued with `access_key_id`, asking moto at most once per unknown key.
    async fn lookup(&self, access_key_id: &str) -> anyhow::Result<Option<IssuedCredential>> {
        if let Some(known) = self.creds.get(access_key_id) {
            return Ok(Some(known));
        }
        if self.unknown_keys().contains(access_key_id) {
            return Ok(None);
        }
        let issued = self.sessions.issued(access_key_id).await?;
        match &issued {
            Some(credential) => self.creds.insert(access_key_id, credential.clone()),
            None => {
                self.unknown_keys().insert(access_key_id.to_owned());
            }
        }
        Ok(issued)
    }

    fn unknown_keys(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.unknown.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The account of an identity ARN (`arn:aws:iam::ACCOUNT:...`, `arn:aws:sts::ACCOUNT:...`).
fn account_of_arn(arn: &str) -> Option<String> {
    arn.split(':')
        .nth(4)
        .filter(|account| !account.is_empty())
        .map(str::to_owned)
}

impl CredentialIssuer for KeyDirectory {
    fn issued<'a>(
        &'a self,
        access_key_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<IssuedCredential>>> {
        self.lookup(access_key_id).boxed()
    }
}

impl AccountResolver for KeyDirectory {
    fn account_of<'a>(&'a self, access_key_id: &'a str) -> BoxFuture<'a, Option<String>> {
        async move {
            match self.lookup(access_key_id).await {
                Ok(issued) => issued.and_then(|credential| account_of_arn(&credential.arn)),
                Err(error) => {
                    tracing::warn!(access_key_id, error = %format!("{error:#}"), "could not ask STS about an access key");
                    None
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_come_from_identity_arns() {
        assert_eq!(
            account_of_arn("arn:aws:sts::210987654321:assumed-role/r/s").as_deref(),
            Some("210987654321")
        );
        assert_eq!(
            account_of_arn("arn:aws:iam::123456789012:user/alice").as_deref(),
            Some("123456789012")
        );
        assert_eq!(account_of_arn("garbage"), None);
    }
}
