//! `eks-iam-sync token --role-arn R`: the credentials to sign the token with are R's, assumed
//! under the caller's own name ([`crate::session_name`]), so a `{{SessionName}}` username in
//! the cluster's mapping names the person, not the tool.
//!
//! Two STS calls with the caller's own credentials: GetCallerIdentity (who is asking), then
//! AssumeRole of R with that session name. The token itself is then made exactly as without a
//! role ([`crate::token::token`]), with the assumed credentials.

use aws_credential_types::Credentials;

use crate::session_name::{self, SessionNameError};

/// Why the role's credentials could not be had. STS's messages carry no secrets; the
/// credentials themselves never enter an error.
#[derive(Debug, thiserror::Error)]
pub enum TokenRoleError {
    #[error("cannot tell who is asking for a token for {role_arn}: STS GetCallerIdentity failed: {detail}")]
    CallerIdentity { role_arn: String, detail: String },
    #[error("cannot assume {role_arn}: {source}")]
    SessionName {
        role_arn: String,
        #[source]
        source: SessionNameError,
    },
    #[error("STS AssumeRole of {role_arn} as session {session_name:?} failed: {detail}")]
    AssumeRole {
        role_arn: String,
        session_name: String,
        detail: String,
    },
}

/// The two STS calls, as the caller. Implemented by the SDK client; tests substitute their own.
pub trait CallerSts {
    /// The caller's ARN (GetCallerIdentity).
    fn caller_arn(&self) -> impl std::future::Future<Output = Result<String, String>> + Send;
    /// Temporary credentials of `role_arn` for session `session_name` (AssumeRole).
    fn assume_role(
        &self,
        role_arn: &str,
        session_name: &str,
    ) -> impl std::future::Future<Output = Result<Credentials, String>> + Send;
}

impl CallerSts for aws_sdk_sts::Client {
    async fn caller_arn(&self) -> Result<String, String> {
        let out = self
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_sdk_sts::error::DisplayErrorContext(e).to_string())?;
        out.arn()
            .map(str::to_owned)
            .ok_or_else(|| "the answer names no ARN".to_owned())
    }

    async fn assume_role(&self, role_arn: &str, session_name: &str) -> Result<Credentials, String> {
        let out = self
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .send()
            .await
            .map_err(|e| aws_sdk_sts::error::DisplayErrorContext(e).to_string())?;
        let issued = out
            .credentials()
            .ok_or_else(|| "the answer holds no credentials".to_owned())?;
        let expiry = std::time::SystemTime::try_from(*issued.expiration())
            .map_err(|e| format!("unusable expiration: {e}"))?;
        Ok(Credentials::new(
            issued.access_key_id(),
            issued.secret_access_key(),
            Some(issued.session_token().to_owned()),
            Some(expiry),
            "eks-iam-sync token --role-arn",
        ))
    }
}

/// `role_arn`'s credentials for a session named after the caller, or `requested` (the
/// `--session-name` override, validated before any call). Returns the session name used.
pub async fn assume_as_caller(
    sts: &impl CallerSts,
    role_arn: &str,
    requested: Option<&str>,
) -> Result<(Credentials, String), TokenRoleError> {
    let naming = |source| TokenRoleError::SessionName {
        role_arn: role_arn.to_owned(),
        source,
    };
    let session = match requested {
        // An invalid override fails before STS is asked anything.
        Some(name) => session_name::requested_name(name).map_err(naming)?,
        None => {
            let caller =
                sts.caller_arn()
                    .await
                    .map_err(|detail| TokenRoleError::CallerIdentity {
                        role_arn: role_arn.to_owned(),
                        detail,
                    })?;
            session_name::from_caller(&caller).map_err(naming)?
        }
    };
    let credentials = sts
        .assume_role(role_arn, &session)
        .await
        .map_err(|detail| TokenRoleError::AssumeRole {
            role_arn: role_arn.to_owned(),
            session_name: session.clone(),
            detail,
        })?;
    Ok((credentials, session))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const ROLE: &str = "arn:aws:iam::111122223333:role/eks-cluster-admin";

    /// STS answering as `caller`, recording the sessions asked for.
    struct FakeSts {
        caller: Result<String, String>,
        sessions: Mutex<Vec<String>>,
        identity_calls: Mutex<usize>,
    }

    fn as_caller(caller: &str) -> FakeSts {
        FakeSts {
            caller: Ok(caller.to_owned()),
            sessions: Mutex::default(),
            identity_calls: Mutex::default(),
        }
    }

    impl CallerSts for FakeSts {
        async fn caller_arn(&self) -> Result<String, String> {
            *self.identity_calls.lock().unwrap() += 1;
            self.caller.clone()
        }

        async fn assume_role(&self, _role: &str, session: &str) -> Result<Credentials, String> {
            self.sessions.lock().unwrap().push(session.to_owned());
            Ok(Credentials::new(
                "ASIAASSUMED",
                "assumed-secret",
                Some("assumed-token".into()),
                None,
                "fake",
            ))
        }
    }

    #[tokio::test]
    async fn the_session_is_named_after_the_caller() {
        for (caller, want) in [
            ("arn:aws:iam::111122223333:user/dev/alice", "alice"),
            (
                "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_1a2b/bob@example.com",
                "bob@example.com",
            ),
        ] {
            let sts = as_caller(caller);
            let (credentials, session) = assume_as_caller(&sts, ROLE, None).await.unwrap();
            assert_eq!(session, want);
            assert_eq!(*sts.sessions.lock().unwrap(), vec![want.to_owned()]);
            assert_eq!(credentials.access_key_id(), "ASIAASSUMED");
        }
    }

    #[tokio::test]
    async fn an_override_needs_no_caller_identity_and_is_validated_first() {
        let sts = as_caller("arn:aws:iam::111122223333:root");
        let (_, session) = assume_as_caller(&sts, ROLE, Some("alice-oncall"))
            .await
            .unwrap();
        assert_eq!(session, "alice-oncall");
        assert_eq!(*sts.identity_calls.lock().unwrap(), 0);

        let error = assume_as_caller(&sts, ROLE, Some("alice oncall"))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("--session-name"), "{error}");
        assert_eq!(
            sts.sessions.lock().unwrap().len(),
            1,
            "no second AssumeRole"
        );
    }

    #[tokio::test]
    async fn root_and_federated_callers_are_refused_before_assume_role() {
        for caller in [
            "arn:aws:iam::111122223333:root",
            "arn:aws:sts::111122223333:federated-user/carol",
        ] {
            let sts = as_caller(caller);
            let error = assume_as_caller(&sts, ROLE, None).await.unwrap_err();
            assert!(error.to_string().contains(ROLE), "{error}");
            assert!(error.to_string().contains(caller), "{error}");
            assert!(sts.sessions.lock().unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn a_failed_caller_identity_names_the_role() {
        let sts = FakeSts {
            caller: Err("ExpiredToken".into()),
            ..as_caller("")
        };
        let error = assume_as_caller(&sts, ROLE, None).await.unwrap_err();
        assert!(matches!(error, TokenRoleError::CallerIdentity { .. }));
        assert!(error.to_string().contains(ROLE) && error.to_string().contains("ExpiredToken"));
    }
}
