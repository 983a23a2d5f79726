//! What the webhook needs to know about access entries, and nothing more.
//!
//! On EKS the authenticator consults the cluster's access entries before (mode
//! `API_AND_CONFIG_MAP`) or instead of (mode `API`) aws-auth. The entries live in the EKS API,
//! which the test bed emulates elsewhere; the webhook reaches them only through this small
//! trait so that it does not grow into the emulator, and so unit tests can serve entries from
//! memory.

use futures::future::BoxFuture;

pub use crate::eks::AuthenticationMode;

use super::IssuedCredential;

/// The part of an access entry that decides whom it authenticates and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntryGrant {
    /// The IAM principal ARN the entry was created with.
    pub principal_arn: String,
    /// The unique id (`AIDA...`, `AROA...`) IAM gave that principal when the entry was created,
    /// which EKS stores with the entry and never shows; `None` when it is not known (an entry
    /// seeded without asking IAM), and then only the ARN decides.
    pub principal_id: Option<String>,
    /// May hold `{{SessionName}}`, `{{SessionNameRaw}}`, `{{AccountID}}`, `{{AccessKeyID}}`.
    pub username: String,
    pub groups: Vec<String>,
}

/// A cluster's authentication mode and access entries, as EKS holds them.
pub trait AccessEntrySource: Send + Sync + 'static {
    /// The mode of `cluster`; `CONFIG_MAP` for a cluster the source does not know.
    fn authentication_mode(&self, cluster: &str) -> AuthenticationMode;

    /// The entry of `cluster` for the IAM principal `principal_arn` (a user ARN, or the role
    /// ARN a session was canonicalised to), matched as EKS matches principals.
    fn access_entry(&self, cluster: &str, principal_arn: &str) -> Option<AccessEntryGrant>;
}

/// Every cluster in `CONFIG_MAP` mode: the webhook before access entries existed.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConfigMapOnly;

impl AccessEntrySource for ConfigMapOnly {
    fn authentication_mode(&self, _cluster: &str) -> AuthenticationMode {
        AuthenticationMode::ConfigMap
    }

    fn access_entry(&self, _cluster: &str, _principal_arn: &str) -> Option<AccessEntryGrant> {
        None
    }
}

/// Where the webhook learns a secret nobody registered in its
/// [`CredentialStore`](super::CredentialStore): STS issued it on its own, e.g. to a role
/// session the product assumed while running. STS knows every secret it issues, so asking it
/// is what the real authenticator's STS round trip amounts to.
pub trait CredentialIssuer: Send + Sync + 'static {
    fn issued<'a>(
        &'a self,
        access_key_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<IssuedCredential>>>;
}
