//! EKS bearer tokens, byte-identical to `aws eks get-token`.
//!
//! EKS authenticates a caller by replaying a presigned STS `GetCallerIdentity` URL: the token is
//! that URL, base64url-encoded behind the `k8s-aws-v1.` prefix. Generating it here, rather than
//! shelling out to the AWS CLI, keeps the Lambda a single binary; matching the CLI byte for byte
//! means every behaviour of the verifier (aws-iam-authenticator) that the CLI's tokens are known to
//! pass, ours pass too, and tests can pin the exact output against vectors from the CLI itself.
//!
//! [`token`] is a pure function of its inputs: the clock is passed in, so the same credentials,
//! region, cluster and second always give the same token.
//!
//! ```
//! use aws_credential_types::Credentials;
//! use std::time::{Duration, SystemTime};
//!
//! let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "example");
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let token = eks_iam_sync::token::token(&creds, "us-east-1", "dev-a", now).unwrap();
//! assert!(token.expose().starts_with("k8s-aws-v1."));
//! assert!(!format!("{token:?}").contains("k8s-aws-v1."));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningError, SigningSettings,
};
use aws_sigv4::sign::v4;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// Prefix the verifier requires before the base64url-encoded URL.
const TOKEN_PREFIX: &str = "k8s-aws-v1.";

/// Header the verifier sends to STS with the cluster name; signing it binds the token to one
/// cluster, because STS rejects the signature when the header differs.
const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";

/// Presigned URL lifetime, as the CLI sets it. The verifier ignores it in favour of its own
/// 15-minute window from `X-Amz-Date`, but it is part of the signed query.
const URL_EXPIRES: Duration = Duration::from_secs(60);

/// What the CLI reports as the expiry: one minute short of the verifier's 15-minute window, so a
/// client refreshes before the cluster starts refusing the token.
const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);

/// `sha256("")`: a GET carries no payload.
const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The query the CLI builds before presigning; `Action` and `Version` lead the final URL.
const BASE_QUERY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// The presign parameters in the order the AWS CLI writes them. aws-sigv4 appends the session
/// token after the signature; the signature is the same either way, but byte-identity with the
/// CLI needs this order.
const PRESIGN_PARAM_ORDER: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
];

/// Characters botocore leaves unescaped in query values (RFC 3986 unreserved); everything else
/// becomes `%XX` with upper-case hex, e.g. `/` in the credential scope and `+/=` in session tokens.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `expirationTimestamp` as the CLI formats it (`%Y-%m-%dT%H:%M:%SZ`, whole seconds, UTC).
const EXPIRATION_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// The last instant `time` can format as a four-digit year; clocks whose token would expire
/// later are refused rather than allowed to panic inside date formatting.
const LATEST_SUPPORTED_UNIX_SECS: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// Why no token could be made. None of these carry the credentials.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The region ends up in a host name, so it must be a plain DNS label sequence.
    #[error("cannot make an EKS token for region {region:?}: expected lower-case letters, digits and '-', like us-east-1")]
    InvalidRegion { region: String },
    /// The cluster name is sent as a header value; an empty one can never match a cluster.
    #[error("cannot make an EKS token for cluster {cluster:?}: the cluster name must be non-empty and free of control characters")]
    InvalidCluster { cluster: String },
    /// The clock must lie between 1970 and 9999 to be written as an `X-Amz-Date`.
    #[error("cannot make an EKS token at {now:?}: the clock is outside the years 1970..=9999")]
    InvalidTime { now: SystemTime },
    /// aws-sigv4 refused to build its parameters.
    #[error("cannot make an EKS token for cluster {cluster:?} in {region}: {source}")]
    SigningParams {
        region: String,
        cluster: String,
        #[source]
        source: v4::signing_params::BuildError,
    },
    /// aws-sigv4 refused to sign the request.
    #[error("cannot sign the EKS token request for cluster {cluster:?} in {region}: {source}")]
    Signing {
        region: String,
        cluster: String,
        #[source]
        source: SigningError,
    },
    /// The presign output lacked a parameter the URL needs; a change in aws-sigv4 would show here
    /// instead of as a token the cluster rejects.
    #[error("aws-sigv4 did not return the presign parameter {name}")]
    MissingPresignParam { name: &'static str },
}

/// A bearer token for one cluster. The token string is a credential for as long as it is valid,
/// so it sits behind [`Token::expose`] and `Debug` prints it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// When clients should stop using the token: `now + 14 min`, as the AWS CLI reports it.
    pub expiration: SystemTime,
    value: String,
}

impl Token {
    /// The `k8s-aws-v1.…` string for an `Authorization: Bearer` header. Named so every use is
    /// visible in review: it must never be logged.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// [`Token::expiration`] in the CLI's `YYYY-MM-DDTHH:MM:SSZ` form (seconds truncated).
    pub fn expiration_timestamp(&self) -> String {
        OffsetDateTime::from(self.expiration)
            .format(EXPIRATION_FORMAT)
            .expect("a validated clock formats with a four-digit year")
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("expiration", &self.expiration_timestamp())
            .field("value", &"** redacted **")
            .finish()
    }
}

/// The STS endpoint the AWS CLI presigns against (regional endpoints; China lives under
/// `amazonaws.com.cn`). The verifier only accepts STS hosts of its own partition.
pub fn sts_host(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("sts.{region}.{suffix}")
}

/// Makes the token `aws eks get-token --cluster-name <cluster> --region <region>` would print
/// for these credentials at `now`.
pub fn token(
    creds: &Credentials,
    region: &str,
    cluster: &str,
    now: SystemTime,
) -> Result<Token, TokenError> {
    check_inputs(region, cluster, now)?;
    let host = sts_host(region);
    let params = presign_params(creds, &host, region, cluster, now)?;
    let url = format!("https://{host}/?{BASE_QUERY}&{}", ordered_query(&params)?);
    Ok(Token {
        expiration: now + TOKEN_LIFETIME,
        value: format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(url)),
    })
}

/// The ExecCredential document `aws eks get-token` prints (AWS CLI 1.45 with its default JSON
/// output: Python `json.dump` with `indent=4`, the CLI's key order), without the newlines the CLI
/// prints after it. Older CLIs printed the same keys on one line; kubectl parses either.
pub fn exec_credential(token: &Token) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ExecCredential<'a> {
        kind: &'static str,
        api_version: &'static str,
        spec: Spec,
        status: Status<'a>,
    }
    #[derive(serde::Serialize)]
    struct Spec {}
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Status<'a> {
        expiration_timestamp: String,
        token: &'a str,
    }
    let document = ExecCredential {
        kind: "ExecCredential",
        api_version: "client.authentication.k8s.io/v1beta1",
        spec: Spec {},
        status: Status {
            expiration_timestamp: token.expiration_timestamp(),
            token: token.expose(),
        },
    };
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    serde::Serialize::serialize(
        &document,
        &mut serde_json::Serializer::with_formatter(&mut out, formatter),
    )
    .expect("plain strings serialize");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Refuses inputs that would otherwise fail late (as a malformed URI) or panic in a dependency.
fn check_inputs(region: &str, cluster: &str, now: SystemTime) -> Result<(), TokenError> {
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(TokenError::InvalidRegion {
            region: region.to_owned(),
        });
    }
    if cluster.is_empty() || cluster.chars().any(char::is_control) {
        return Err(TokenError::InvalidCluster {
            cluster: cluster.to_owned(),
        });
    }
    let in_range = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .is_ok_and(|d| d.as_secs() + TOKEN_LIFETIME.as_secs() <= LATEST_SUPPORTED_UNIX_SECS);
    if !in_range {
        return Err(TokenError::InvalidTime { now });
    }
    Ok(())
}

/// Presigns the GET with aws-sigv4 and returns its query parameters (unencoded values).
fn presign_params(
    creds: &Credentials,
    host: &str,
    region: &str,
    cluster: &str,
    now: SystemTime,
) -> Result<Vec<(&'static str, Cow<'static, str>)>, TokenError> {
    let signing_error = |source| TokenError::Signing {
        region: region.to_owned(),
        cluster: cluster.to_owned(),
        source,
    };
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(URL_EXPIRES);
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|source| TokenError::SigningParams {
            region: region.to_owned(),
            cluster: cluster.to_owned(),
            source,
        })?
        .into();
    let request = SignableRequest::new(
        "GET",
        format!("https://{host}/?{BASE_QUERY}"),
        std::iter::once((CLUSTER_ID_HEADER, cluster)),
        SignableBody::Precomputed(EMPTY_PAYLOAD_SHA256.to_owned()),
    )
    .map_err(signing_error)?;
    let (instructions, _signature) = sign(request, &params).map_err(signing_error)?.into_parts();
    let (_headers, query) = instructions.into_parts();
    Ok(query)
}

/// Writes the presign parameters in the CLI's order, values percent-encoded as botocore does.
fn ordered_query(params: &[(&'static str, Cow<'static, str>)]) -> Result<String, TokenError> {
    let value_of = |name: &str| {
        params
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_ref())
    };
    let mut pairs = Vec::with_capacity(PRESIGN_PARAM_ORDER.len());
    for name in PRESIGN_PARAM_ORDER {
        match value_of(name) {
            Some(value) => pairs.push(format!(
                "{name}={}",
                utf8_percent_encode(value, QUERY_VALUE)
            )),
            // Present only with temporary credentials.
            None if name == "X-Amz-Security-Token" => {}
            None => return Err(TokenError::MissingPresignParam { name }),
        }
    }
    Ok(pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry of tests/data/eks-token-vectors.json, produced by the AWS CLI's own code.
    #[derive(serde::Deserialize)]
    struct Vector {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        region: String,
        sts_host: String,
        cluster: String,
        unix_time: u64,
        token: Option<String>,
        signature: String,
        expiration_timestamp: Option<String>,
    }

    fn vectors() -> Vec<Vector> {
        serde_json::from_str(include_str!("../tests/data/eks-token-vectors.json"))
            .expect("vectors parse")
    }

    fn at(unix_time: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_time)
    }

    fn token_for(v: &Vector) -> Token {
        let creds = Credentials::new(
            &v.access_key_id,
            &v.secret_access_key,
            v.session_token.clone(),
            None,
            "test",
        );
        token(&creds, &v.region, &v.cluster, at(v.unix_time)).expect("token")
    }

    /// The presigned URL inside a token.
    fn decoded_url(token: &Token) -> String {
        let encoded = token
            .expose()
            .strip_prefix(TOKEN_PREFIX)
            .expect("token prefix");
        String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).expect("base64url")).expect("utf-8")
    }

    fn query_keys(url: &str) -> Vec<String> {
        let (_, query) = url.split_once('?').expect("query");
        query
            .split('&')
            .map(|pair| pair.split_once('=').expect("key=value").0.to_owned())
            .collect()
    }

    fn session_creds() -> Credentials {
        Credentials::new(
            "ASIAEXAMPLEKEYID0000",
            "secret/with+specials=",
            Some("FwoGZXIvYXdzE+session/token==".to_owned()),
            None,
            "test",
        )
    }

    #[test]
    fn first_vector_token_is_byte_identical() {
        let v = &vectors()[0];
        assert_eq!(
            token_for(v).expose(),
            v.token.as_deref().expect("vector 1 has a token")
        );
    }

    #[test]
    fn second_vector_signature_and_expiration_match_the_cli() {
        let v = &vectors()[1];
        let token = token_for(v);
        let url = decoded_url(&token);
        assert!(
            url.starts_with(&format!("https://{}/?", v.sts_host)),
            "{url}"
        );
        assert!(
            url.ends_with(&format!("&X-Amz-Signature={}", v.signature)),
            "{url}"
        );
        assert_eq!(
            Some(token.expiration_timestamp()),
            v.expiration_timestamp.clone()
        );
    }

    #[test]
    fn every_vector_uses_its_sts_host() {
        for v in vectors() {
            assert_eq!(sts_host(&v.region), v.sts_host);
        }
    }

    #[test]
    fn url_parameters_follow_the_cli_order() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let url = decoded_url(&token(&creds, "eu-west-1", "c", at(1_700_000_000)).unwrap());
        assert_eq!(
            query_keys(&url),
            [
                "Action",
                "Version",
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-Expires",
                "X-Amz-SignedHeaders",
                "X-Amz-Signature"
            ]
        );
        assert!(url.contains("&X-Amz-Credential=AKIDEXAMPLE%2F20231114%2Feu-west-1%2Fsts%2Faws4_request&X-Amz-Date=20231114T221320Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&"), "{url}");
    }

    #[test]
    fn session_token_sits_before_the_signature_percent_encoded() {
        let url =
            decoded_url(&token(&session_creds(), "us-east-1", "c", at(1_700_000_000)).unwrap());
        let keys = query_keys(&url);
        assert_eq!(
            &keys[keys.len() - 2..],
            ["X-Amz-Security-Token", "X-Amz-Signature"]
        );
        assert!(
            url.contains("&X-Amz-Security-Token=FwoGZXIvYXdzE%2Bsession%2Ftoken%3D%3D&"),
            "{url}"
        );
    }

    #[test]
    fn session_token_is_part_of_the_signature() {
        let with = token(&session_creds(), "us-east-1", "c", at(1_700_000_000)).unwrap();
        let creds = session_creds();
        let without = Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            None,
            None,
            "test",
        );
        let without = token(&without, "us-east-1", "c", at(1_700_000_000)).unwrap();
        let signature = |t: &Token| decoded_url(t).rsplit_once('=').unwrap().1.to_owned();
        assert_ne!(signature(&with), signature(&without));
    }

    #[test]
    fn cluster_name_is_part_of_the_signature() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let a = token(&creds, "us-east-1", "dev-a", at(1_700_000_000)).unwrap();
        let b = token(&creds, "us-east-1", "dev-b", at(1_700_000_000)).unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn china_regions_use_the_cn_sts_host() {
        assert_eq!(sts_host("cn-north-1"), "sts.cn-north-1.amazonaws.com.cn");
        assert_eq!(sts_host("us-gov-west-1"), "sts.us-gov-west-1.amazonaws.com");
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let url = decoded_url(&token(&creds, "cn-northwest-1", "c", at(1_700_000_000)).unwrap());
        assert!(
            url.starts_with("https://sts.cn-northwest-1.amazonaws.com.cn/?Action="),
            "{url}"
        );
        assert!(
            url.contains("%2Fcn-northwest-1%2Fsts%2Faws4_request"),
            "{url}"
        );
    }

    #[test]
    fn expiration_is_fourteen_minutes_after_now() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let now = at(1_700_000_000) + Duration::from_millis(750);
        let token = token(&creds, "us-east-1", "c", now).unwrap();
        assert_eq!(token.expiration, now + Duration::from_secs(840));
        assert_eq!(token.expiration_timestamp(), "2023-11-14T22:27:20Z");
    }

    #[test]
    fn debug_redacts_the_token() {
        let token = token_for(&vectors()[0]);
        let debug = format!("{token:?} {token:#?}");
        assert!(!debug.contains(TOKEN_PREFIX), "{debug}");
        assert!(!debug.contains(&token.expose()[TOKEN_PREFIX.len()..][..16]));
        assert!(debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn exec_credential_matches_the_cli_output() {
        let v = &vectors()[0];
        let token = token_for(v);
        let expected = format!(
            r#"{{
    "kind": "ExecCredential",
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "spec": {{}},
    "status": {{
        "expirationTimestamp": "2023-04-28T00:14:00Z",
        "token": "{}"
    }}
}}"#,
            v.token.as_deref().unwrap()
        );
        assert_eq!(exec_credential(&token), expected);
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let now = at(1_700_000_000);
        for region in ["", "US-EAST-1", "us east 1", "evil.com/x", "us-east-1?"] {
            assert!(
                matches!(
                    token(&creds, region, "c", now),
                    Err(TokenError::InvalidRegion { .. })
                ),
                "{region:?}"
            );
        }
        for cluster in ["", "a\nb"] {
            assert!(matches!(
                token(&creds, "us-east-1", cluster, now),
                Err(TokenError::InvalidCluster { .. })
            ));
        }
        let far_future = at(LATEST_SUPPORTED_UNIX_SECS - 60);
        assert!(matches!(
            token(&creds, "us-east-1", "c", far_future),
            Err(TokenError::InvalidTime { .. })
        ));
    }

    #[test]
    fn same_inputs_give_the_same_token() {
        let v = &vectors()[1];
        assert_eq!(token_for(v), token_for(v));
    }
}
