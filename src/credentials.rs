//! Which AWS identity acts on a cluster: the function's own, or a role it assumes.
//!
//! A cluster (or a discovery block) with `roleArn` is reached as that role: EKS in its account is
//! called with the role's credentials, and its Kubernetes token is signed with them, so the
//! cluster sees the role. [`CredentialsFor`] is the one place that answers "which credentials for
//! this role"; the cluster directory and the connector both ask it, and nothing is global.
//!
//! [`AssumeRoles`] assumes each role with STS AssumeRole once, and reuses the temporary
//! credentials until [`REFRESH_BEFORE_EXPIRY`] before they expire, so a warm Lambda makes one
//! STS call per role and hour, not one per cluster and run.
//!
//! ```
//! use aws_credential_types::provider::SharedCredentialsProvider;
//! use aws_credential_types::Credentials;
//! use eks_iam_sync::credentials::CredentialsFor;
//!
//! // The function's own identity alone serves clusters without roleArn, and refuses roles.
//! let own = SharedCredentialsProvider::new(Credentials::new("AKID", "secret", None, None, "example"));
//! assert!(own.credentials_for(None).is_ok());
//! assert!(own.credentials_for(Some("arn:aws:iam::210987654321:role/sync")).is_err());
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{self, future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

/// Assumed-role credentials are renewed when they have less than this left: a token signed with
/// them must stay verifiable for the few seconds the run takes. Default 5 minutes.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// The role session name; clusters log the assumed role as `.../<role>/eks-iam-sync`.
pub const SESSION_NAME: &str = "eks-iam-sync";

/// No credentials can be had for the identity a cluster asks for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("no AWS credentials provider is configured")]
    NoCredentials,
    #[error(
        "role {role_arn} cannot be assumed: this client was built without STS role assumption"
    )]
    NoRoleAssumption { role_arn: String },
}

/// The credentials to act with on clusters reached through `role_arn` (`None`: the function's
/// own identity). The answer is a provider, not credentials, so expiry is handled where they
/// are used.
pub trait CredentialsFor: Send + Sync {
    fn credentials_for(
        &self,
        role_arn: Option<&str>,
    ) -> Result<SharedCredentialsProvider, IdentityError>;
}

/// The function's own identity, and no roles.
impl CredentialsFor for SharedCredentialsProvider {
    fn credentials_for(
        &self,
        role_arn: Option<&str>,
    ) -> Result<SharedCredentialsProvider, IdentityError> {
        match role_arn {
            None => Ok(self.clone()),
            Some(role_arn) => Err(IdentityError::NoRoleAssumption {
                role_arn: role_arn.to_owned(),
            }),
        }
    }
}

/// Like the provider itself; `None` when the SDK config has no credentials at all.
impl CredentialsFor for Option<SharedCredentialsProvider> {
    fn credentials_for(
        &self,
        role_arn: Option<&str>,
    ) -> Result<SharedCredentialsProvider, IdentityError> {
        self.as_ref()
            .ok_or(IdentityError::NoCredentials)?
            .credentials_for(role_arn)
    }
}

impl<T: CredentialsFor + ?Sized> CredentialsFor for Arc<T> {
    fn credentials_for(
        &self,
        role_arn: Option<&str>,
    ) -> Result<SharedCredentialsProvider, IdentityError> {
        (**self).credentials_for(role_arn)
    }
}

/// The function's own identity plus any role it may assume, through STS AssumeRole as the own
/// identity. One provider per role, kept for the life of the process.
pub struct AssumeRoles {
    own: SharedCredentialsProvider,
    sts: aws_sdk_sts::Client,
    roles: Mutex<HashMap<String, SharedCredentialsProvider>>,
}

impl AssumeRoles {
    /// `sts` must act as `own` (build it from the same SDK config).
    pub fn new(own: SharedCredentialsProvider, sts: aws_sdk_sts::Client) -> Self {
        Self {
            own,
            sts,
            roles: Mutex::default(),
        }
    }
}

impl CredentialsFor for AssumeRoles {
    fn credentials_for(
        &self,
        role_arn: Option<&str>,
    ) -> Result<SharedCredentialsProvider, IdentityError> {
        let Some(role_arn) = role_arn else {
            return Ok(self.own.clone());
        };
        let mut roles = self.roles.lock().expect("assumed roles lock");
        let provider = roles.entry(role_arn.to_owned()).or_insert_with(|| {
            SharedCredentialsProvider::new(AssumedRole {
                sts: self.sts.clone(),
                role_arn: role_arn.to_owned(),
                cached: tokio::sync::Mutex::default(),
            })
        });
        Ok(provider.clone())
    }
}

/// One role's temporary credentials. The async lock makes concurrent clusters of the same role
/// wait for one AssumeRole call instead of each making their own.
#[derive(Debug)]
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

/// AssumeRole failed or answered without credentials.
#[derive(Debug, thiserror::Error)]
#[error("STS AssumeRole of {role_arn} failed: {detail}")]
struct AssumeRoleError {
    role_arn: String,
    detail: String,
}

impl AssumedRole {
    async fn credentials(&self) -> provider::Result {
        let mut cached = self.cached.lock().await;
        if let Some(credentials) = cached
            .as_ref()
            .filter(|c| still_fresh(c, SystemTime::now()))
        {
            return Ok(credentials.clone());
        }
        let error = |detail: String| {
            provider::error::CredentialsError::provider_error(AssumeRoleError {
                role_arn: self.role_arn.clone(),
                detail,
            })
        };
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(SESSION_NAME)
            .send()
            .await
            .map_err(|e| error(aws_sdk_sts::error::DisplayErrorContext(e).to_string()))?;
        let issued = out
            .credentials()
            .ok_or_else(|| error("the answer holds no credentials".into()))?;
        let expiry = SystemTime::try_from(*issued.expiration())
            .map_err(|e| error(format!("unusable expiration: {e}")))?;
        let credentials = Credentials::new(
            issued.access_key_id(),
            issued.secret_access_key(),
            Some(issued.session_token().to_owned()),
            Some(expiry),
            "eks-iam-sync AssumeRole",
        );
        tracing::debug!(role_arn = %self.role_arn, "assumed role");
        *cached = Some(credentials.clone());
        Ok(credentials)
    }
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}

/// Whether `credentials` can still be used at `now`: no expiry, or more than
/// [`REFRESH_BEFORE_EXPIRY`] left.
fn still_fresh(credentials: &Credentials, now: SystemTime) -> bool {
    credentials
        .expiry()
        .is_none_or(|expiry| expiry > now + REFRESH_BEFORE_EXPIRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiring_in(now: SystemTime, left: Duration) -> Credentials {
        Credentials::new(
            "AKID",
            "secret",
            Some("token".into()),
            Some(now + left),
            "test",
        )
    }

    #[test]
    fn credentials_are_reused_until_shortly_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(still_fresh(
            &expiring_in(now, Duration::from_secs(3600)),
            now
        ));
        assert!(still_fresh(
            &expiring_in(now, REFRESH_BEFORE_EXPIRY + Duration::from_secs(1)),
            now
        ));
        assert!(!still_fresh(&expiring_in(now, REFRESH_BEFORE_EXPIRY), now));
        assert!(!still_fresh(&expiring_in(now, Duration::ZERO), now));
        let forever = Credentials::new("AKID", "secret", None, None, "test");
        assert!(still_fresh(&forever, now));
    }

    #[test]
    fn own_identity_refuses_roles_naming_them() {
        let own = SharedCredentialsProvider::new(Credentials::new(
            "AKID", "secret", None, None, "example",
        ));
        let role = "arn:aws:iam::210987654321:role/sync";
        let error = own.credentials_for(Some(role)).unwrap_err();
        assert!(error.to_string().contains(role), "{error}");
        let none: Option<SharedCredentialsProvider> = None;
        assert_eq!(
            none.credentials_for(None).unwrap_err(),
            IdentityError::NoCredentials
        );
    }

    #[test]
    fn one_provider_per_role_is_kept() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let own = SharedCredentialsProvider::new(Credentials::new(
            "AKID", "secret", None, None, "example",
        ));
        let roles = AssumeRoles::new(own, aws_sdk_sts::Client::new(&sdk));
        let role = Some("arn:aws:iam::210987654321:role/sync");
        roles.credentials_for(role).unwrap();
        roles.credentials_for(role).unwrap();
        roles.credentials_for(None).unwrap();
        assert_eq!(roles.roles.lock().unwrap().len(), 1);
    }
}
