//! Token verification: aws-iam-authenticator's checks, with STS's signature check done locally.
//!
//! The checks run in the authenticator's order so a malformed token is refused for the same
//! reason EKS would give; the final STS round trip is replaced by a SigV4 check against the
//! secrets the test bed handed out, which needs no network and still ties a token to the
//! cluster name it was signed for.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use time::macros::format_description;
use time::PrimitiveDateTime;
use url::Url;

use super::sigv4::{self, Presigned, ALGORITHM, CLUSTER_HEADER, SIGNED_HEADERS};
use super::Rejection;

const TOKEN_PREFIX: &str = "k8s-aws-v1.";
const MAX_TOKEN_LEN: usize = 4096;
const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
const MAX_EXPIRES: i64 = 900;
const GLOBAL_STS_HOST: &str = "sts.amazonaws.com";
const GLOBAL_STS_REGION: &str = "us-east-1";
const STS_SERVICE: &str = "sts";
const ALLOWED_PARAMS: [&str; 9] = [
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
];

/// A secret the test bed issued, with the identity STS would report for it.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCredential {
    pub secret_access_key: String,
    /// `arn:aws:iam::ACCT:user/path/name` or `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// STS's `UserId`: `AIDA...` for a user, `AROA...:SESSION` for a role session.
    pub user_id: String,
}

impl fmt::Debug for IssuedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredential")
            .field("secret_access_key", &"<redacted>")
            .field("arn", &self.arn)
            .field("user_id", &self.user_id)
            .finish()
    }
}

/// The secrets STS would know, shared between whoever issues keys and the webhook.
/// Cloning shares the same store.
#[derive(Clone, Default)]
pub struct CredentialStore {
    inner: Arc<RwLock<HashMap<String, IssuedCredential>>>,
}

impl CredentialStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, access_key_id: impl Into<String>, credential: IssuedCredential) {
        self.write().insert(access_key_id.into(), credential);
    }

    pub fn remove(&self, access_key_id: &str) -> Option<IssuedCredential> {
        self.write().remove(access_key_id)
    }

    /// Makes every key of the principal with unique id `user_id` report `arn` from now on, as
    /// STS does once IAM renames or moves the user (its keys and id stay).
    pub fn set_arn_of(&self, user_id: &str, arn: &str) {
        for credential in self.write().values_mut() {
            if credential.user_id == user_id {
                credential.arn = arn.to_owned();
            }
        }
    }

    pub fn get(&self, access_key_id: &str) -> Option<IssuedCredential> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(access_key_id)
            .cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, IssuedCredential>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_map().entries(map.iter()).finish()
    }
}

/// Who signed a token, as the authenticator derives it from STS's GetCallerIdentity answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub arn: String,
    pub account: String,
    /// The principal id without the session part (`AIDA...` or `AROA...`), as the
    /// authenticator splits STS's `UserId`.
    pub user_id: String,
    pub access_key_id: String,
    /// The part of STS's `UserId` after `:`, for role sessions.
    pub session_name: Option<String>,
}

/// Checks an EKS bearer token for `cluster` at time `now`, in aws-iam-authenticator's order,
/// and returns the identity that signed it.
pub fn verify_token(
    token: &str,
    cluster: &str,
    now: SystemTime,
    creds: &CredentialStore,
) -> Result<CallerIdentity, Rejection> {
    let url = decode_token(token)?;
    let host = check_url(&url)?;
    let params = Params::parse(url.query().unwrap_or(""))?;
    params.check_shape()?;
    let amz_date = params.check_freshness(now)?;
    let (access_key_id, credential) = check_signature(&params, &host, cluster, amz_date, creds)?;
    caller_identity(access_key_id, credential)
}

/// Steps 1-3: length, prefix, unpadded base64url, URL.
fn decode_token(token: &str) -> Result<Url, Rejection> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejection::TooLong {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    let payload = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(Rejection::MissingPrefix)?;
    if payload.contains('=') {
        return Err(Rejection::Padded);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Rejection::NotBase64)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Rejection::InvalidUrl("payload is not UTF-8".into()))?;
    Url::parse(&text).map_err(|e| Rejection::InvalidUrl(e.to_string()))
}

/// Steps 4-6: scheme, host and path. Returns the host.
fn check_url(url: &Url) -> Result<String, Rejection> {
    if url.scheme() != "https" {
        return Err(Rejection::Scheme(url.scheme().to_string()));
    }
    let host = url.host_str().unwrap_or_default();
    let extra_authority =
        url.port().is_some() || !url.username().is_empty() || url.password().is_some();
    if extra_authority || sts_region(host).is_none() {
        return Err(Rejection::Host(
            url[url::Position::BeforeUsername..url::Position::AfterPort].to_string(),
        ));
    }
    if url.path() != "/" {
        return Err(Rejection::Path(url.path().to_string()));
    }
    Ok(host.to_string())
}

/// The SigV4 region an STS endpoint signs for, if `host` is one: the global endpoint
/// (us-east-1), a regional one, or a regional one of the China partition.
fn sts_region(host: &str) -> Option<&str> {
    if host == GLOBAL_STS_HOST {
        return Some(GLOBAL_STS_REGION);
    }
    let rest = host.strip_prefix("sts.")?;
    let (region, china) = match rest.strip_suffix(".amazonaws.com.cn") {
        Some(region) => (region, true),
        None => (rest.strip_suffix(".amazonaws.com")?, false),
    };
    (is_region_name(region) && region.starts_with("cn-") == china).then_some(region)
}

/// `us-west-2`, `ap-southeast-1`, `us-gov-west-1`: lowercase words, then a number.
fn is_region_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The presigned URL's query: decoded pairs in URL order.
struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Step 7, parsed the way Go's `url.ParseQuery` does (strict escapes, `+` is a space,
    /// `;` refused), since that is what the authenticator uses.
    fn parse(query: &str) -> Result<Self, Rejection> {
        let pairs = query
            .split('&')
            .filter(|segment| !segment.is_empty())
            .map(|segment| {
                if segment.contains(';') {
                    return Err(Rejection::MalformedQuery("semicolon in query"));
                }
                let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
                Ok((query_unescape(key)?, query_unescape(value)?))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { pairs })
    }

    /// The value of `key`, compared case-insensitively like the authenticator does.
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, key: &'static str) -> Result<&str, Rejection> {
        self.get(key).ok_or(Rejection::MissingParam(key))
    }

    /// Steps 8-12: unique, whitelisted keys; the action; the signed headers; X-Amz-Expires.
    fn check_shape(&self) -> Result<(), Rejection> {
        let mut seen = std::collections::HashSet::new();
        for (key, _) in &self.pairs {
            if !seen.insert(key.to_ascii_lowercase()) {
                return Err(Rejection::DuplicateParam(key.clone()));
            }
        }
        if let Some((key, _)) = self
            .pairs
            .iter()
            .find(|(k, _)| !ALLOWED_PARAMS.contains(&k.to_ascii_lowercase().as_str()))
        {
            return Err(Rejection::UnexpectedParam(key.clone()));
        }
        let action = self.get("Action").unwrap_or_default();
        if action != "GetCallerIdentity" {
            return Err(Rejection::Action(action.to_string()));
        }
        let signed_headers = self.get("X-Amz-SignedHeaders").unwrap_or_default();
        if !signed_headers
            .split(';')
            .any(|h| h.eq_ignore_ascii_case(CLUSTER_HEADER))
        {
            return Err(Rejection::ClusterHeaderNotSigned);
        }
        let expires = self.get("X-Amz-Expires").unwrap_or_default();
        match expires.parse::<i64>() {
            Ok(seconds) if (0..=MAX_EXPIRES).contains(&seconds) => Ok(()),
            _ => Err(Rejection::Expires(expires.to_string())),
        }
    }

    /// Steps 13-14. Returns X-Amz-Date.
    fn check_freshness(&self, now: SystemTime) -> Result<&str, Rejection> {
        let amz_date = self.get("X-Amz-Date").unwrap_or_default();
        let signed_at = parse_amz_date(amz_date)?;
        if now > signed_at + TOKEN_LIFETIME {
            return Err(Rejection::Expired(amz_date.to_string()));
        }
        // The authenticator has no such check because STS makes it: SigV4 refuses a request
        // dated more than 15 minutes ahead of its clock. Without it a token minted with a
        // future date would outlive the 15 minutes a token is meant to last.
        if signed_at > now + TOKEN_LIFETIME {
            return Err(Rejection::NotYetValid(amz_date.to_string()));
        }
        Ok(amz_date)
    }
}

/// Go's `url.QueryUnescape`, refusing malformed escapes and non-UTF-8 results.
fn query_unescape(raw: &str) -> Result<String, Rejection> {
    let bytes = raw.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return Err(Rejection::MalformedQuery("invalid percent-escape"));
    }
    percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Rejection::MalformedQuery("escaped bytes are not UTF-8"))
}

/// `20060102T150405Z`, UTC.
fn parse_amz_date(value: &str) -> Result<SystemTime, Rejection> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    let well_formed = value.len() == 16
        && value.bytes().enumerate().all(|(i, b)| {
            matches!((i, b), (8, b'T') | (15, b'Z')) || b.is_ascii_digit() && i != 8 && i != 15
        });
    well_formed
        .then(|| PrimitiveDateTime::parse(value, format).ok())
        .flatten()
        .map(|date| SystemTime::from(date.assume_utc()))
        .ok_or_else(|| Rejection::DateFormat(value.to_string()))
}

/// The parsed `X-Amz-Credential`: `AKID/yyyymmdd/region/service/aws4_request`.
struct CredentialScope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    /// Everything after the access key id: what the string to sign names.
    scope: &'a str,
}

impl<'a> CredentialScope<'a> {
    fn parse(credential: &'a str) -> Result<Self, Rejection> {
        let (access_key_id, scope) = credential
            .split_once('/')
            .ok_or(Rejection::CredentialFormat)?;
        match scope.split('/').collect::<Vec<_>>()[..] {
            [date, region, service, "aws4_request"] if !access_key_id.is_empty() => Ok(Self {
                access_key_id,
                date,
                region,
                service,
                scope,
            }),
            _ => Err(Rejection::CredentialFormat),
        }
    }

    /// The scope must name the request's day, the endpoint's region and STS.
    fn check(&self, amz_date: &str, region: &str) -> Result<(), Rejection> {
        let day = &amz_date[..8];
        if self.date == day && self.region == region && self.service == STS_SERVICE {
            return Ok(());
        }
        Err(Rejection::Scope {
            scope: self.scope.to_string(),
            date: day.to_string(),
            region: region.to_string(),
        })
    }
}

/// Step 15, STS's part: the signature must be the one the access key's secret makes for this
/// URL sent with `x-k8s-aws-id: <cluster>`. Returns the access key id and what was issued
/// with it.
fn check_signature(
    params: &Params,
    host: &str,
    cluster: &str,
    amz_date: &str,
    creds: &CredentialStore,
) -> Result<(String, IssuedCredential), Rejection> {
    let algorithm = params.require("X-Amz-Algorithm")?;
    if algorithm != ALGORITHM {
        return Err(Rejection::Algorithm(algorithm.to_string()));
    }
    let credential = CredentialScope::parse(params.require("X-Amz-Credential")?)?;
    let region = sts_region(host).unwrap_or_default();
    credential.check(amz_date, region)?;
    let signed_headers = params.require("X-Amz-SignedHeaders")?;
    if signed_headers != SIGNED_HEADERS {
        return Err(Rejection::SignedHeaders(signed_headers.to_string()));
    }
    let signature = params.require(sigv4::SIGNATURE_PARAM)?;
    let issued = creds
        .get(credential.access_key_id)
        .ok_or_else(|| Rejection::UnknownAccessKey(credential.access_key_id.to_string()))?;
    let request = Presigned {
        host,
        cluster,
        params: &params.pairs,
        amz_date,
        scope: credential.scope,
    };
    let signature = hex::decode(signature).map_err(|_| Rejection::SignatureMismatch)?;
    let scope = (credential.date, credential.region, credential.service);
    if !sigv4::signature_matches(&request, &issued.secret_access_key, scope, &signature) {
        return Err(Rejection::SignatureMismatch);
    }
    Ok((credential.access_key_id.to_string(), issued))
}

/// What GetCallerIdentity would answer for the key, split like the authenticator splits it.
fn caller_identity(
    access_key_id: String,
    credential: IssuedCredential,
) -> Result<CallerIdentity, Rejection> {
    let malformed = || Rejection::MalformedIdentity(access_key_id.clone());
    let account = credential
        .arn
        .split(':')
        .nth(4)
        .filter(|a| !a.is_empty())
        .ok_or_else(malformed)?
        .to_string();
    let (user_id, session_name) = match credential.user_id.split(':').collect::<Vec<_>>()[..] {
        [id] => (id.to_string(), None),
        [id, session] => (id.to_string(), Some(session.to_string())),
        _ => return Err(malformed()),
    };
    Ok(CallerIdentity {
        arn: credential.arn,
        account,
        user_id,
        access_key_id,
        session_name,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{encode_token, token_url, vector, Vector};
    use super::*;

    fn verify(
        vector: &Vector,
        token: &str,
        cluster: &str,
        at: SystemTime,
    ) -> Result<CallerIdentity, Rejection> {
        verify_token(token, cluster, at, &vector.store())
    }

    /// Verifies vector 1's token after `edit` changed its presigned URL.
    fn verify_edited(edit: impl FnOnce(String) -> String) -> Result<CallerIdentity, Rejection> {
        let v = vector();
        let token = encode_token(&edit(token_url(&v.token)));
        verify(&v, &token, &v.cluster, v.time())
    }

    #[test]
    fn vector_token_verifies_for_its_cluster_at_its_time() {
        let v = vector();
        let id = verify(&v, &v.token, "test-cluster", v.time()).unwrap();
        assert_eq!(id.arn, v.arn);
        assert_eq!(id.account, "111122223333");
        assert_eq!(id.user_id, "AROAEXAMPLE");
        assert_eq!(id.session_name.as_deref(), Some("alice@example.com"));
        assert_eq!(id.access_key_id, v.access_key_id);
    }

    #[test]
    fn token_for_another_cluster_is_rejected() {
        let v = vector();
        let err = verify(&v, &v.token, "other-cluster", v.time()).unwrap_err();
        assert_eq!(err, Rejection::SignatureMismatch);
    }

    #[test]
    fn wrong_secret_is_rejected() {
        let v = vector();
        let store = v.store();
        let mut credential = store.get(&v.access_key_id).unwrap();
        credential.secret_access_key.push('x');
        store.insert(&v.access_key_id, credential);
        let err = verify_token(&v.token, &v.cluster, v.time(), &store).unwrap_err();
        assert_eq!(err, Rejection::SignatureMismatch);
    }

    #[test]
    fn token_is_valid_for_fifteen_minutes() {
        let v = vector();
        let at = v.time() + Duration::from_secs(15 * 60);
        assert!(verify(&v, &v.token, &v.cluster, at).is_ok());
    }

    #[test]
    fn token_sixteen_minutes_old_is_rejected() {
        let v = vector();
        let at = v.time() + Duration::from_secs(16 * 60);
        let err = verify(&v, &v.token, &v.cluster, at).unwrap_err();
        assert!(matches!(err, Rejection::Expired(_)), "{err}");
    }

    #[test]
    fn token_dated_far_in_the_future_is_rejected() {
        let v = vector();
        let at = v.time() - Duration::from_secs(16 * 60);
        let err = verify(&v, &v.token, &v.cluster, at).unwrap_err();
        assert!(matches!(err, Rejection::NotYetValid(_)), "{err}");
    }

    #[test]
    fn unknown_access_key_is_rejected() {
        let v = vector();
        let err =
            verify_token(&v.token, &v.cluster, v.time(), &CredentialStore::new()).unwrap_err();
        assert_eq!(err, Rejection::UnknownAccessKey(v.access_key_id.clone()));
    }

    #[test]
    fn removed_access_key_is_rejected() {
        let v = vector();
        let store = v.store();
        store.remove(&v.access_key_id);
        let err = verify_token(&v.token, &v.cluster, v.time(), &store).unwrap_err();
        assert!(matches!(err, Rejection::UnknownAccessKey(_)), "{err}");
    }

    #[test]
    fn padded_token_is_rejected() {
        let v = vector();
        let err = verify(&v, &format!("{}=", v.token), &v.cluster, v.time()).unwrap_err();
        assert_eq!(err, Rejection::Padded);
    }

    #[test]
    fn token_without_prefix_is_rejected() {
        let v = vector();
        let token = v.token.replace("k8s-aws-v1.", "k8s-aws-v2.");
        assert_eq!(
            verify(&v, &token, &v.cluster, v.time()).unwrap_err(),
            Rejection::MissingPrefix
        );
    }

    #[test]
    fn too_long_token_is_rejected() {
        let v = vector();
        let token = format!(
            "{}{}",
            v.token,
            "A".repeat(MAX_TOKEN_LEN + 1 - v.token.len())
        );
        let err = verify(&v, &token, &v.cluster, v.time()).unwrap_err();
        assert!(matches!(err, Rejection::TooLong { len: 4097, .. }), "{err}");
    }

    #[test]
    fn extra_query_parameter_is_rejected() {
        let err = verify_edited(|url| format!("{url}&Foo=bar")).unwrap_err();
        assert_eq!(err, Rejection::UnexpectedParam("Foo".into()));
    }

    #[test]
    fn duplicated_parameter_is_rejected() {
        let err = verify_edited(|url| format!("{url}&action=GetCallerIdentity")).unwrap_err();
        assert_eq!(err, Rejection::DuplicateParam("action".into()));
    }

    #[test]
    fn host_other_than_sts_is_rejected() {
        let err =
            verify_edited(|url| url.replace("sts.us-west-2.amazonaws.com", "sts.example.com"))
                .unwrap_err();
        assert_eq!(err, Rejection::Host("sts.example.com".into()));
    }

    #[test]
    fn host_with_a_port_is_rejected() {
        let err =
            verify_edited(|url| url.replace("amazonaws.com/", "amazonaws.com:8443/")).unwrap_err();
        assert!(matches!(err, Rejection::Host(_)), "{err}");
    }

    #[test]
    fn http_scheme_is_rejected() {
        let err = verify_edited(|url| url.replace("https://", "http://")).unwrap_err();
        assert_eq!(err, Rejection::Scheme("http".into()));
    }

    #[test]
    fn path_other_than_root_is_rejected() {
        let err = verify_edited(|url| url.replace(".com/?", ".com/x?")).unwrap_err();
        assert_eq!(err, Rejection::Path("/x".into()));
    }

    #[test]
    fn other_action_is_rejected() {
        let err = verify_edited(|url| url.replace("Action=GetCallerIdentity", "Action=AssumeRole"))
            .unwrap_err();
        assert_eq!(err, Rejection::Action("AssumeRole".into()));
    }

    #[test]
    fn expires_over_900_is_rejected() {
        let err =
            verify_edited(|url| url.replace("X-Amz-Expires=60", "X-Amz-Expires=901")).unwrap_err();
        assert_eq!(err, Rejection::Expires("901".into()));
    }

    #[test]
    fn malformed_date_is_rejected() {
        let err =
            verify_edited(|url| url.replace("20230428T000000Z", "2023-04-28T00:00Z")).unwrap_err();
        assert!(matches!(err, Rejection::DateFormat(_)), "{err}");
    }

    #[test]
    fn unsigned_cluster_header_is_rejected() {
        let err = verify_edited(|url| url.replace("host%3Bx-k8s-aws-id", "host")).unwrap_err();
        assert_eq!(err, Rejection::ClusterHeaderNotSigned);
    }

    #[test]
    fn invalid_percent_escape_is_rejected() {
        let err = verify_edited(|url| format!("{url}%zz")).unwrap_err();
        assert!(matches!(err, Rejection::MalformedQuery(_)), "{err}");
    }

    #[test]
    fn scope_for_another_region_is_rejected() {
        let err = verify_edited(|url| url.replace("sts.us-west-2.", "sts.us-east-2.")).unwrap_err();
        assert!(matches!(err, Rejection::Scope { .. }), "{err}");
    }

    #[test]
    fn sts_hosts_are_recognised_with_their_signing_region() {
        assert_eq!(sts_region("sts.amazonaws.com"), Some("us-east-1"));
        assert_eq!(
            sts_region("sts.eu-central-1.amazonaws.com"),
            Some("eu-central-1")
        );
        assert_eq!(
            sts_region("sts.us-gov-west-1.amazonaws.com"),
            Some("us-gov-west-1")
        );
        assert_eq!(
            sts_region("sts.cn-north-1.amazonaws.com.cn"),
            Some("cn-north-1")
        );
        assert_eq!(sts_region("sts.cn-north-1.amazonaws.com"), None);
        assert_eq!(sts_region("sts.us-west-2.amazonaws.com.cn"), None);
        assert_eq!(sts_region("sts.evil.amazonaws.com"), None);
        assert_eq!(sts_region("sts.us-west-2.amazonaws.com.evil.com"), None);
    }

    #[test]
    fn rejection_messages_do_not_leak_the_signature() {
        let v = vector();
        let err = verify(&v, &v.token, "other-cluster", v.time()).unwrap_err();
        assert!(!err.to_string().contains(&v.signature));
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let v = vector();
        let store = v.store();
        assert!(!format!("{store:?}").contains(&v.secret_access_key));
        assert!(format!("{store:?}").contains(&v.access_key_id));
    }
}
