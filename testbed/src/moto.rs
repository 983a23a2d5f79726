//! moto in server mode stands in for IAM and STS, for the default account and for others.
//!
//! The test bed seeds it only through the AWS APIs (CreateUser, CreateAccessKey, AssumeRole,
//! ...), exactly as a user would seed a real account, and records every secret it is handed in
//! the authenticator's [`CredentialStore`]: the webhook needs them to check signatures, which is
//! what STS does for EKS.
//!
//! moto (5.x) keeps one IAM/STS state per account. A request acts in the account of its
//! access key: keys from AssumeRole of a role in another account belong to that account, so
//! their IAM calls and GetCallerIdentity happen there. Only the very first role of another
//! account has to be created with moto's `x-moto-account-id` header ([`Moto::iam_in`]). Secrets
//! STS issues to someone else (the product assuming a role while it runs) are read back from
//! moto's own inspection endpoint ([`MotoSessions`]), the way STS knows every key it issued.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_iam::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_iam::config::{ConfigBag, Intercept, RuntimeComponents};

use crate::authn::{CredentialStore, IssuedCredential};
use crate::paths;
use crate::process::{free_port, http_get, wait_for, Supervised};

/// The account moto uses unless told otherwise.
pub const ACCOUNT_ID: &str = "123456789012";
/// IAM's home region, and the region the sync function runs in.
pub const REGION: &str = "us-east-1";

/// A running moto server.
pub struct Moto {
    process: Supervised,
    endpoint: String,
}

/// Credentials the test bed issued, with the identity STS reports for them.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// The caller ARN: an IAM user ARN or an STS assumed-role ARN.
    pub arn: String,
}

impl std::fmt::Debug for IssuedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKeys")
            .field("access_key_id", &self.access_key_id)
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

impl IssuedKeys {
    pub fn sdk_credentials(&self) -> Credentials {
        Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "eks-testbed",
        )
    }

    /// The variables the AWS CLI and SDKs read.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                self.secret_access_key.clone(),
            ),
        ];
        if let Some(token) = &self.session_token {
            env.push(("AWS_SESSION_TOKEN".to_string(), token.clone()));
        }
        env
    }
}

impl Moto {
    /// Starts `moto_server` on a free loopback port and waits until it answers.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let program = paths::venv_bin("moto_server");
        paths::require(&program)?;
        let port = free_port()?;
        let mut command = Command::new(&program);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let process = Supervised::spawn("moto", command, &dir.join("moto.log"))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Self { process, endpoint };
        let iam = moto.iam();
        wait_for("moto to answer IAM", Duration::from_secs(60), || {
            let iam = iam.clone();
            async move { Ok(iam.list_users().send().await.is_ok()) }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", crate::process::tail(moto.process.log(), 20)))?;
        Ok(moto)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SDK config pointing IAM and STS at moto, with moto's "anything goes" seeding credentials.
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                    "testing",
                    "testing",
                    None,
                    None,
                    "moto-seed",
                )),
            )
            .build()
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk_config())
    }

    /// An IAM client whose every request acts in `account`, whatever its credentials.
    pub fn iam_in(&self, account: &str) -> aws_sdk_iam::Client {
        let config = aws_sdk_iam::config::Builder::from(&self.sdk_config())
            .interceptor(ActInAccount(account.to_owned()))
            .build();
        aws_sdk_iam::Client::from_conf(config)
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk_config())
    }

    /// The role sessions this moto has issued, readable from any runtime.
    pub fn sessions(&self) -> MotoSessions {
        MotoSessions {
            addr: self.endpoint.trim_start_matches("http://").to_owned(),
        }
    }
}

/// Sets moto's `x-moto-account-id` header, which makes a request act in that account.
#[derive(Debug)]
struct ActInAccount(String);

impl Intercept for ActInAccount {
    fn name(&self) -> &'static str {
        "ActInAccount"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        context
            .request_mut()
            .headers_mut()
            .insert(MOTO_ACCOUNT_HEADER, self.0.clone());
        Ok(())
    }
}

const MOTO_ACCOUNT_HEADER: &str = "x-moto-account-id";
/// moto's inspection endpoint: every model instance of every service, as JSON.
const MOTO_DATA_PATH: &str = "/moto-api/data.json";

/// The role sessions moto's STS has issued, in any account.
#[derive(Clone, Debug)]
pub struct MotoSessions {
    addr: String,
}

/// The fields of one `sts.AssumedRole` in moto's data dump.
#[derive(serde::Deserialize)]
struct AssumedRole {
    access_key_id: String,
    secret_access_key: String,
    arn: String,
    user_id: String,
}

impl MotoSessions {
    /// The secret and identity STS issued with `access_key_id`; `None` if it issued no such
    /// session key (IAM users' keys are not looked up: the test bed registers those itself).
    pub async fn issued(&self, access_key_id: &str) -> anyhow::Result<Option<IssuedCredential>> {
        let (status, body) = http_get(&self.addr, MOTO_DATA_PATH).await?;
        anyhow::ensure!(status == 200, "{MOTO_DATA_PATH} answered {status}");
        let data: serde_json::Value = serde_json::from_str(&body)?;
        let sessions: Vec<AssumedRole> = match data.pointer("/sts/AssumedRole") {
            Some(sessions) => serde_json::from_value(sessions.clone())?,
            None => Vec::new(),
        };
        Ok(sessions
            .into_iter()
            .find(|session| session.access_key_id == access_key_id)
            .map(|session| IssuedCredential {
                secret_access_key: session.secret_access_key,
                arn: session.arn,
                user_id: session.user_id,
            }))
    }
}

/// Seeding operations over moto's AWS APIs. Each issued secret is registered in `creds`.
pub struct Seeder<'a> {
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    pub creds: &'a CredentialStore,
}

impl Seeder<'_> {
    pub async fn create_group(&self, name: &str) -> anyhow::Result<()> {
        self.iam.create_group().group_name(name).send().await?;
        Ok(())
    }

    /// Creates an IAM user with an access key.
    pub async fn create_user(&self, name: &str) -> anyhow::Result<IssuedKeys> {
        let user = self.iam.create_user().user_name(name).send().await?;
        let user = user
            .user()
            .ok_or_else(|| anyhow::anyhow!("CreateUser returned no user"))?;
        let key = self.iam.create_access_key().user_name(name).send().await?;
        let key = key
            .access_key()
            .ok_or_else(|| anyhow::anyhow!("CreateAccessKey returned no key"))?;
        let issued = IssuedKeys {
            access_key_id: key.access_key_id().to_string(),
            secret_access_key: key.secret_access_key().to_string(),
            session_token: None,
            arn: user.arn().to_string(),
        };
        self.register(&issued, user.user_id());
        Ok(issued)
    }

    /// Deletes an IAM user as IAM requires it: its access keys and group memberships first.
    /// Its keys are forgotten too, as STS stops accepting deleted keys.
    pub async fn delete_user(&self, name: &str) -> anyhow::Result<()> {
        let keys = self.iam.list_access_keys().user_name(name).send().await?;
        for key in keys.access_key_metadata() {
            let Some(key_id) = key.access_key_id() else {
                continue;
            };
            self.iam
                .delete_access_key()
                .user_name(name)
                .access_key_id(key_id)
                .send()
                .await?;
            self.creds.remove(key_id);
        }
        let groups = self
            .iam
            .list_groups_for_user()
            .user_name(name)
            .send()
            .await?;
        for group in groups.groups() {
            self.remove_user_from_group(name, group.group_name())
                .await?;
        }
        self.iam.delete_user().user_name(name).send().await?;
        Ok(())
    }

    /// UpdateUser: a new name and/or a new path (`/engineering/`). The user keeps its id, keys
    /// and groups; STS reports the new ARN for its keys from now on. Returns the new ARN.
    pub async fn update_user(
        &self,
        name: &str,
        new_name: Option<&str>,
        new_path: Option<&str>,
    ) -> anyhow::Result<String> {
        self.iam
            .update_user()
            .user_name(name)
            .set_new_user_name(new_name.map(str::to_owned))
            .set_new_path(new_path.map(str::to_owned))
            .send()
            .await?;
        let user = self
            .iam
            .get_user()
            .user_name(new_name.unwrap_or(name))
            .send()
            .await?;
        let user = user
            .user()
            .ok_or_else(|| anyhow::anyhow!("GetUser returned no user"))?;
        self.creds.set_arn_of(user.user_id(), user.arn());
        Ok(user.arn().to_owned())
    }

    pub async fn add_user_to_group(&self, user: &str, group: &str) -> anyhow::Result<()> {
        self.iam
            .add_user_to_group()
            .user_name(user)
            .group_name(group)
            .send()
            .await?;
        Ok(())
    }

    pub async fn remove_user_from_group(&self, user: &str, group: &str) -> anyhow::Result<()> {
        self.iam
            .remove_user_from_group()
            .user_name(user)
            .group_name(group)
            .send()
            .await?;
        Ok(())
    }

    /// Creates a role that principals of the default account may assume; returns its ARN.
    pub async fn create_role(&self, name: &str) -> anyhow::Result<String> {
        self.create_role_trusting(name, &format!("arn:aws:iam::{ACCOUNT_ID}:root"))
            .await
    }

    /// Creates a role whose trust policy lets `principal` (an account root or a role ARN)
    /// assume it; returns its ARN. moto records the policy but does not enforce it.
    pub async fn create_role_trusting(
        &self,
        name: &str,
        principal: &str,
    ) -> anyhow::Result<String> {
        let trust = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}]}}"#
        );
        let role = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust)
            .send()
            .await?;
        Ok(role
            .role()
            .ok_or_else(|| anyhow::anyhow!("CreateRole returned no role"))?
            .arn()
            .to_string())
    }

    /// Creates a role under IAM `path` (say `/aws-reserved/sso.amazonaws.com/`, where IAM
    /// Identity Center puts the roles of its permission sets) that principals of the default
    /// account may assume; returns its ARN (with the path) and its `RoleId`.
    pub async fn create_role_at(&self, name: &str, path: &str) -> anyhow::Result<(String, String)> {
        let trust = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT_ID}:root"}},"Action":"sts:AssumeRole"}}]}}"#
        );
        let out = self
            .iam
            .create_role()
            .role_name(name)
            .path(path)
            .assume_role_policy_document(trust)
            .send()
            .await?;
        let role = out
            .role()
            .ok_or_else(|| anyhow::anyhow!("CreateRole returned no role"))?;
        Ok((role.arn().to_string(), role.role_id().to_string()))
    }

    /// Deletes a role (one without policies), as Identity Center does when a permission set
    /// is unassigned from the account.
    pub async fn delete_role(&self, name: &str) -> anyhow::Result<()> {
        self.iam.delete_role().role_name(name).send().await?;
        Ok(())
    }

    /// Assumes a role through STS, as a Lambda function's execution role is assumed.
    pub async fn assume_role(&self, role_arn: &str, session: &str) -> anyhow::Result<IssuedKeys> {
        let out = self
            .sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session)
            .duration_seconds(43_200)
            .send()
            .await?;
        let c = out
            .credentials()
            .ok_or_else(|| anyhow::anyhow!("AssumeRole returned no credentials"))?;
        let user = out
            .assumed_role_user()
            .ok_or_else(|| anyhow::anyhow!("AssumeRole returned no assumed-role user"))?;
        let issued = IssuedKeys {
            access_key_id: c.access_key_id().to_string(),
            secret_access_key: c.secret_access_key().to_string(),
            session_token: Some(c.session_token().to_string()),
            arn: user.arn().to_string(),
        };
        self.register(&issued, user.assumed_role_id());
        Ok(issued)
    }

    fn register(&self, issued: &IssuedKeys, user_id: &str) {
        self.creds.insert(
            &issued.access_key_id,
            IssuedCredential {
                secret_access_key: issued.secret_access_key.clone(),
                arn: issued.arn.clone(),
                user_id: user_id.to_string(),
            },
        );
    }
}
