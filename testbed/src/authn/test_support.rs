//! Shared test fixtures: vector 1 of the EKS token vectors, produced by the AWS CLI's own code,
//! with a role-session identity attached to its access key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use super::{CredentialStore, IssuedCredential};

const VECTORS: &str = include_str!("../../../tests/data/eks-token-vectors.json");

/// The identity the tests pretend STS reports for the vector's (session) key.
pub const ROLE_SESSION_ARN: &str = "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com";
const ROLE_SESSION_USER_ID: &str = "AROAEXAMPLE:alice@example.com";

#[derive(Deserialize)]
pub struct Vector {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub cluster: String,
    pub unix_time: u64,
    pub token: String,
    pub signature: String,
    #[serde(skip, default = "role_session_arn")]
    pub arn: String,
}

fn role_session_arn() -> String {
    ROLE_SESSION_ARN.to_string()
}

/// Vector 1: the only one with a full token.
pub fn vector() -> Vector {
    let mut vectors: Vec<serde_json::Value> = serde_json::from_str(VECTORS).unwrap();
    serde_json::from_value(vectors.swap_remove(0)).unwrap()
}

/// The vector's signing time; a plain `fn` so it can serve as a webhook clock.
pub fn vector_time() -> SystemTime {
    vector().time()
}

impl Vector {
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.unix_time)
    }

    /// A store that knows the vector's key and secret.
    pub fn store(&self) -> CredentialStore {
        let store = CredentialStore::new();
        store.insert(
            &self.access_key_id,
            IssuedCredential {
                secret_access_key: self.secret_access_key.clone(),
                arn: self.arn.clone(),
                user_id: ROLE_SESSION_USER_ID.to_string(),
            },
        );
        store
    }
}

/// The presigned URL inside a token.
pub fn token_url(token: &str) -> String {
    let payload = token.strip_prefix("k8s-aws-v1.").unwrap();
    String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A token carrying `url`.
pub fn encode_token(url: &str) -> String {
    format!("k8s-aws-v1.{}", URL_SAFE_NO_PAD.encode(url))
}
