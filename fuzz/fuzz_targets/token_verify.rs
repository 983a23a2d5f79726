//! The test bed webhook's token verifier: `eks_testbed::authn::verify_token`.
//!
//! Random bytes almost never carry a valid SigV4 signature, so most inputs describe a token
//! minted by the product's signer (`eks_iam_sync::token::token`, the same bytes as
//! `aws eks get-token`) with fuzzed credentials, region, cluster and clock, then edited (query
//! parameters swapped, re-encoded, duplicated, recased, replaced; bytes spliced into the URL or
//! the token) and verified for a fuzzed cluster at a fuzzed time. An input that starts with
//! `k8s-aws-v1` is a token as it is, checked against the reference vectors' keys.
//!
//! Invariants: no panic; every rejection renders; a token that verifies is a well-formed EKS
//! token (prefix, unpadded base64url, an https STS URL with path `/`, exactly the allowed query
//! parameters, `GetCallerIdentity`, the signed headers, a credential scope naming the returned
//! access key, the endpoint's region and the signing day, and a date within 15 minutes of the
//! clock); an edited token verifies only if it still says what was signed (same parameters once
//! decoded, same host, the cluster it was signed for, the key that signed it); and an unedited
//! token from the product's signer verifies for its cluster within its 15 minutes.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use aws_credential_types::Credentials;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use eks_testbed::authn::{verify_token, CallerIdentity, CredentialStore, IssuedCredential};
use libfuzzer_sys::fuzz_target;

const PREFIX: &str = "k8s-aws-v1.";
const LIFETIME_SECS: i64 = 15 * 60;

/// Access keys and secrets: the two reference vectors' and the SigV4 documentation's.
const KEYS: [(&str, &str); 3] = [
    (
        "ASIAR2TG44V6AS3ZZE7C",
        "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q",
    ),
    ("ABCDEFGHIJKLMNOPQRST", "TSRQPONMLKJUHGFEDCBA"),
    ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
];
/// What STS reports for a key: a user, a role session, a user with a path, and a malformed one.
const IDENTITIES: [(&str, &str); 4] = [
    ("arn:aws:iam::123456789012:user/alice", "AIDAEXAMPLEALICE"),
    (
        "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com",
        "AROAEXAMPLE:alice@example.com",
    ),
    ("arn:aws:iam::123456789012:user/dev/bob", "AIDAEXAMPLEBOB"),
    ("arn:aws:iam:::user/nobody", "AIDA:a:b"),
];
const REGIONS: [&str; 6] = [
    "us-east-1",
    "us-west-2",
    "eu-central-1",
    "ap-southeast-1",
    "us-gov-west-1",
    "cn-north-1",
];
const CLUSTERS: [&str; 4] = ["test-cluster", "MyCluster", "dev-a", "a"];
/// The reference vectors: cluster and signing time (tests/data/eks-token-vectors.json).
const VECTORS: [(&str, u64); 2] = [
    ("test-cluster", 1_682_640_000),
    ("MyCluster", 1_571_871_600),
];

#[derive(Arbitrary, Debug)]
enum Choice {
    Known(u8),
    Other(String),
}

impl Choice {
    fn pick<'a>(&'a self, pool: &[&'a str]) -> &'a str {
        match self {
            Choice::Known(index) => pool[usize::from(*index) % pool.len()],
            Choice::Other(text) => text,
        }
    }

    fn known(&self) -> bool {
        matches!(self, Choice::Known(_))
    }
}

#[derive(Arbitrary, Debug)]
enum Edit {
    /// Replaces `len` bytes at `at` of the URL.
    SpliceUrl {
        at: u16,
        len: u8,
        with: String,
    },
    /// Replaces `len` bytes at `at` of the finished token.
    SpliceToken {
        at: u16,
        len: u8,
        with: String,
    },
    /// Replaces the host (and whatever else stands between `https://` and the path).
    Authority(String),
    Path(String),
    Scheme(String),
    SetKey {
        param: u8,
        key: String,
    },
    SetValue {
        param: u8,
        value: String,
    },
    Swap {
        a: u8,
        b: u8,
    },
    Duplicate {
        param: u8,
    },
    Remove {
        param: u8,
    },
    Add {
        key: String,
        value: String,
    },
    UpperKey {
        param: u8,
    },
    LowerKey {
        param: u8,
    },
    UpperValue {
        param: u8,
    },
    /// Percent-encodes every byte of a value, which decodes to the same value.
    EncodeValue {
        param: u8,
    },
    /// Writes a value's spaces as `+`, which Go's query parser reads as spaces.
    PlusForSpace {
        param: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Minted {
    key: u8,
    identity: u8,
    session_token: Option<String>,
    region: Choice,
    cluster: Choice,
    signed_at: u32,
    /// The verifier's clock, in seconds after `signed_at`.
    clock: i16,
    /// The cluster the webhook serves; `None` is the one the token was signed for.
    verify_for: Option<Choice>,
    edits: Vec<Edit>,
}

/// A presigned URL taken apart so edits can work on its query parameters.
struct Url {
    scheme: String,
    authority: String,
    path: String,
    params: Vec<(String, String)>,
}

impl Url {
    fn parse(text: &str) -> Url {
        let (scheme, rest) = text.split_once("://").expect("a minted URL has a scheme");
        let (authority, rest) = rest.split_once('/').expect("a minted URL has a path");
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        Url {
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            path: format!("/{path}"),
            params: query
                .split('&')
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (key.to_owned(), value.to_owned())
                })
                .collect(),
        }
    }

    fn render(&self) -> String {
        let query: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{}://{}{}?{}",
            self.scheme,
            self.authority,
            self.path,
            query.join("&")
        )
    }

    fn param(&mut self, index: u8) -> Option<&mut (String, String)> {
        let count = self.params.len();
        (count > 0).then(|| &mut self.params[usize::from(index) % count])
    }
}

fn splice(text: &mut String, at: u16, len: u8, with: &str) {
    let mut start = usize::from(at) % (text.len() + 1);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + usize::from(len)).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    text.replace_range(start..end, with);
}

fn edit_url(url: &mut Url, edit: &Edit) {
    match edit {
        Edit::Authority(authority) => url.authority.clone_from(authority),
        Edit::Path(path) => url.path.clone_from(path),
        Edit::Scheme(scheme) => url.scheme.clone_from(scheme),
        Edit::SetKey { param, key } => {
            if let Some(p) = url.param(*param) {
                p.0.clone_from(key);
            }
        }
        Edit::SetValue { param, value } => {
            if let Some(p) = url.param(*param) {
                p.1.clone_from(value);
            }
        }
        Edit::Swap { a, b } if !url.params.is_empty() => {
            let count = url.params.len();
            url.params
                .swap(usize::from(*a) % count, usize::from(*b) % count);
        }
        Edit::Duplicate { param } => {
            if let Some(p) = url.param(*param).cloned() {
                url.params.push(p);
            }
        }
        Edit::Remove { param } if !url.params.is_empty() => {
            let count = url.params.len();
            url.params.remove(usize::from(*param) % count);
        }
        Edit::Add { key, value } => url.params.push((key.clone(), value.clone())),
        Edit::UpperKey { param } => {
            if let Some(p) = url.param(*param) {
                p.0.make_ascii_uppercase();
            }
        }
        Edit::LowerKey { param } => {
            if let Some(p) = url.param(*param) {
                p.0.make_ascii_lowercase();
            }
        }
        Edit::UpperValue { param } => {
            if let Some(p) = url.param(*param) {
                p.1.make_ascii_uppercase();
            }
        }
        Edit::EncodeValue { param } => {
            if let Some(p) = url.param(*param) {
                let decoded: Vec<u8> = url::form_urlencoded::parse(format!("v={}", p.1).as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned().into_bytes())
                    .unwrap_or_default();
                p.1 = decoded.iter().map(|b| format!("%{b:02X}")).collect();
            }
        }
        Edit::PlusForSpace { param } => {
            if let Some(p) = url.param(*param) {
                p.1 = p.1.replace("%20", "+");
            }
        }
        _ => {}
    }
}

/// Query parameters decoded as Go's `url.ParseQuery` (which the authenticator uses) reads them.
fn decoded_params(url: &url::Url) -> Vec<(String, String)> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// The region an STS host signs for, if it is one.
fn sts_region(host: &str) -> Option<&str> {
    if host == "sts.amazonaws.com" {
        return Some("us-east-1");
    }
    let rest = host.strip_prefix("sts.")?;
    rest.strip_suffix(".amazonaws.com.cn")
        .filter(|region| region.starts_with("cn-"))
        .or_else(|| {
            rest.strip_suffix(".amazonaws.com")
                .filter(|r| !r.starts_with("cn-"))
        })
}

/// The presigned URL of a token that verified, after checking that it is a well-formed EKS
/// token for `id` at `now`.
fn well_formed(token: &str, now: SystemTime, id: &CallerIdentity) -> url::Url {
    let payload = token.strip_prefix(PREFIX).expect("prefix");
    assert!(!payload.contains('='), "padded");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    let url = url::Url::parse(std::str::from_utf8(&bytes).expect("UTF-8")).expect("a URL");
    assert_eq!(url.scheme(), "https");
    assert!(url.username().is_empty() && url.password().is_none() && url.port().is_none());
    let host = url.host_str().expect("a host");
    let region = sts_region(host).unwrap_or_else(|| panic!("{host} is not an STS host"));
    assert_eq!(url.path(), "/");
    let params = decoded_params(&url);
    let allowed = [
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
    let mut keys: Vec<String> = params.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    assert!(
        keys.iter().all(|k| allowed.contains(&k.as_str())),
        "{keys:?}"
    );
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), params.len(), "a parameter appears twice");
    assert_eq!(get(&params, "Action"), Some("GetCallerIdentity"));
    assert_eq!(get(&params, "X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
    assert_eq!(
        get(&params, "X-Amz-SignedHeaders"),
        Some("host;x-k8s-aws-id")
    );
    let expires: i64 = get(&params, "X-Amz-Expires")
        .expect("expires")
        .parse()
        .expect("int");
    assert!((0..=900).contains(&expires));
    let date = get(&params, "X-Amz-Date").expect("X-Amz-Date");
    assert_eq!(
        get(&params, "X-Amz-Credential"),
        Some(&*format!(
            "{}/{}/{region}/sts/aws4_request",
            id.access_key_id,
            &date[..8]
        ))
    );
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let signed = time::PrimitiveDateTime::parse(date, format).expect("X-Amz-Date");
    let signed = signed.assume_utc().unix_timestamp();
    let now = time::OffsetDateTime::from(now).unix_timestamp();
    assert!(
        (now - signed).abs() <= LIFETIME_SECS,
        "signed {signed}, now {now}"
    );
    let signature = get(&params, "X-Amz-Signature").expect("signature");
    assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()));
    url
}

fn store(identity: (&str, &str)) -> CredentialStore {
    let store = CredentialStore::new();
    for (key, secret) in KEYS {
        store.insert(
            key,
            IssuedCredential {
                secret_access_key: secret.to_owned(),
                arn: identity.0.to_owned(),
                user_id: identity.1.to_owned(),
            },
        );
    }
    store
}

fn raw(token: &str) {
    let store = store(IDENTITIES[1]);
    for (cluster, unix) in VECTORS {
        let now = UNIX_EPOCH + Duration::from_secs(unix);
        match verify_token(token, cluster, now, &store) {
            Ok(id) => {
                well_formed(token, now, &id);
            }
            Err(rejection) => assert!(!rejection.to_string().is_empty()),
        }
    }
}

/// Parameters minus the signature, sorted, and the signature's bytes: what a signature covers.
fn signed_content(params: &[(String, String)]) -> (Vec<(String, String)>, Option<Vec<u8>>) {
    let is_signature = |k: &str| k.eq_ignore_ascii_case("X-Amz-Signature");
    let mut rest: Vec<_> = params
        .iter()
        .filter(|(k, _)| !is_signature(k))
        .cloned()
        .collect();
    rest.sort();
    let signature = params
        .iter()
        .find(|(k, _)| is_signature(k))
        .and_then(|(_, v)| hex_bytes(v));
    (rest, signature)
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    (text.len() % 2 == 0)
        .then(|| {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten()
}

fn minted(input: &Minted) {
    let (key, secret) = KEYS[usize::from(input.key) % KEYS.len()];
    let identity = IDENTITIES[usize::from(input.identity) % IDENTITIES.len()];
    let creds = Credentials::new(key, secret, input.session_token.clone(), None, "fuzz");
    let region = input.region.pick(&REGIONS);
    let cluster = input.cluster.pick(&CLUSTERS);
    let signed_at = UNIX_EPOCH + Duration::from_secs(u64::from(input.signed_at));
    let Ok(token) = eks_iam_sync::token::token(&creds, region, cluster, signed_at) else {
        return;
    };
    let original = token.expose();
    let url_text = String::from_utf8(URL_SAFE_NO_PAD.decode(&original[PREFIX.len()..]).unwrap())
        .expect("the product mints UTF-8 URLs");
    let mut url = Url::parse(&url_text);
    for edit in &input.edits {
        edit_url(&mut url, edit);
    }
    let mut text = url.render();
    for edit in &input.edits {
        if let Edit::SpliceUrl { at, len, with } = edit {
            splice(&mut text, *at, *len, with);
        }
    }
    let mut token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&text));
    for edit in &input.edits {
        if let Edit::SpliceToken { at, len, with } = edit {
            splice(&mut token, *at, *len, with);
        }
    }
    let verify_for = input
        .verify_for
        .as_ref()
        .map_or(cluster, |c| c.pick(&CLUSTERS));
    let offset = Duration::from_secs(u64::from(input.clock.unsigned_abs()));
    let now = match input.clock < 0 {
        true => signed_at.checked_sub(offset).unwrap_or(UNIX_EPOCH),
        false => signed_at + offset,
    };
    let store = store(identity);
    match verify_token(&token, verify_for, now, &store) {
        Ok(id) => {
            let verified = well_formed(&token, now, &id);
            let signed = url::Url::parse(&url_text).unwrap();
            assert_eq!(id.access_key_id, key, "verified under another key");
            assert_eq!(id.arn, identity.0);
            assert_eq!(
                verify_for.trim(),
                cluster.trim(),
                "verified for another cluster"
            );
            assert_eq!(
                verified.host_str(),
                signed.host_str(),
                "verified for another host"
            );
            assert_eq!(
                signed_content(&decoded_params(&verified)),
                signed_content(&decoded_params(&signed)),
                "an edit that changed the signed content verified"
            );
        }
        Err(rejection) => {
            assert!(!rejection.to_string().is_empty());
            let unedited = input.edits.is_empty() && input.verify_for.is_none();
            let printable = input
                .session_token
                .as_ref()
                .is_none_or(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
            let in_time = i64::from(input.clock).abs() <= LIFETIME_SECS;
            let minted_known = input.region.known() && input.cluster.known();
            assert!(
                !(unedited
                    && printable
                    && in_time
                    && minted_known
                    && identity.0 != IDENTITIES[3].0),
                "the product's own token is refused: {rejection}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(token) if token.starts_with("k8s-aws-v1") => raw(token),
        _ => {
            if let Ok(input) = Minted::arbitrary_take_rest(Unstructured::new(data)) {
                minted(&input);
            }
        }
    }
});
