//! The test bed's stand-in for the EKS token authenticator (aws-iam-authenticator).
//!
//! On EKS, `aws eks get-token` bearer tokens are checked by aws-iam-authenticator, which asks STS
//! who signed the presigned `GetCallerIdentity` URL inside the token and then maps that caller
//! through the `kube-system/aws-auth` ConfigMap. The product under test writes that ConfigMap and
//! mints those tokens, so the test bed has to judge both the way EKS does, without AWS: it checks
//! the SigV4 signature itself against the secrets the test bed issued (which is also what binds a
//! token to one cluster's name), then applies the authenticator's mapping rules. Real
//! kube-apiservers reach it as their token authentication webhook.
//!
//! On clusters whose authentication mode includes the EKS API, the access entries are
//! consulted the way EKS does: before aws-auth (`API_AND_CONFIG_MAP`) or instead of it (`API`).
//!
//! The verifier deliberately shares no code with the product's signer, so a signing bug cannot
//! hide by being made twice.

mod access;
mod mapping;
mod server;
mod sigv4;
mod verify;

#[cfg(test)]
mod test_support;

pub use access::{
    AccessEntryGrant, AccessEntrySource, AuthenticationMode, ConfigMapOnly, CredentialIssuer,
};
pub use mapping::{canonicalize_arn, entry_binds, map_access_entry, map_identity, MappedUser};
pub use server::{router, webhook_kubeconfig, AuthnState, AwsAuthSource, KubeAwsAuthSource};
pub use verify::{verify_token, CallerIdentity, CredentialStore, IssuedCredential};

/// Why a token or its caller was refused. Messages name the failed check and may quote
/// parameters that are not secret (host, ARN, access key id), never the token, a signature or a
/// secret: they end up in logs and in the TokenReview status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("token is {len} bytes long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("token does not start with \"k8s-aws-v1.\"")]
    MissingPrefix,
    #[error("token payload is padded base64; EKS tokens are unpadded base64url")]
    Padded,
    #[error("token payload is not valid base64url")]
    NotBase64,
    #[error("token payload is not a URL: {0}")]
    InvalidUrl(String),
    #[error("presigned URL scheme is {0:?}, expected \"https\"")]
    Scheme(String),
    #[error("presigned URL host {0:?} is not an STS endpoint")]
    Host(String),
    #[error("presigned URL path is {0:?}, expected \"/\"")]
    Path(String),
    #[error("presigned URL query is malformed: {0}")]
    MalformedQuery(&'static str),
    #[error("query parameter {0:?} appears more than once")]
    DuplicateParam(String),
    #[error("query parameter {0:?} is not allowed")]
    UnexpectedParam(String),
    #[error("Action is {0:?}, expected \"GetCallerIdentity\"")]
    Action(String),
    #[error("X-Amz-SignedHeaders does not include x-k8s-aws-id")]
    ClusterHeaderNotSigned,
    #[error("X-Amz-Expires {0:?} is not an integer from 0 to 900")]
    Expires(String),
    #[error("X-Amz-Date {0:?} is not of the form YYYYMMDDTHHMMSSZ")]
    DateFormat(String),
    #[error("token expired: signed at {0}, valid for 15 minutes")]
    Expired(String),
    #[error("token is dated {0}, more than 15 minutes in the future")]
    NotYetValid(String),
    #[error("query parameter {0} is missing")]
    MissingParam(&'static str),
    #[error("X-Amz-Algorithm is {0:?}, expected \"AWS4-HMAC-SHA256\"")]
    Algorithm(String),
    #[error("X-Amz-Credential is not of the form AKID/YYYYMMDD/REGION/sts/aws4_request")]
    CredentialFormat,
    #[error("credential scope {scope:?} does not match the request (date {date}, region {region}, service sts)")]
    Scope {
        scope: String,
        date: String,
        region: String,
    },
    #[error("X-Amz-SignedHeaders is {0:?}, expected exactly \"host;x-k8s-aws-id\"")]
    SignedHeaders(String),
    #[error("access key {0} is unknown")]
    UnknownAccessKey(String),
    #[error(
        "signature does not match: the token was signed for another cluster or with another secret"
    )]
    SignatureMismatch,
    #[error("the identity recorded for access key {0} is malformed")]
    MalformedIdentity(String),
    #[error("ARN {arn} is not a supported identity: {why}")]
    UnsupportedArn { arn: String, why: &'static str },
    #[error("ARN not mapped: {0}")]
    ArnNotMapped(String),
    #[error(
        "the mapping for {0} uses {{{{EC2PrivateDNSName}}}}, which this webhook cannot resolve"
    )]
    Ec2PrivateDnsName(String),
    #[error("cluster {0} has no kube-system/aws-auth ConfigMap")]
    NoAwsAuth(String),
    #[error("no access entry for {arn} on cluster {cluster}, whose authentication mode API ignores aws-auth")]
    NoAccessEntry { arn: String, cluster: String },
    #[error("the access entry for {arn} was made for principal id {entry_id}, but that ARN is now principal {caller_id} (deleted and recreated?): EKS binds an entry to the principal it was created for")]
    EntryForAnotherPrincipal {
        arn: String,
        entry_id: String,
        caller_id: String,
    },
    #[error("the access entry of principal {caller_id} names {entry_arn}, but the caller is now {arn} (renamed or moved?): EKS checks the ARN as well as the id")]
    EntryArnChanged {
        arn: String,
        entry_arn: String,
        caller_id: String,
    },
}
