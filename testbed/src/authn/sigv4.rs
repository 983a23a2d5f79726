//! The SigV4 query-string ("presigned URL") check that STS performs for EKS tokens.
//!
//! Written from the SigV4 description rather than borrowed from an AWS SDK on purpose: the
//! product signs with one, and an independent verifier is what catches a signing mistake.

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub(super) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub(super) const CLUSTER_HEADER: &str = "x-k8s-aws-id";
pub(super) const SIGNED_HEADERS: &str = "host;x-k8s-aws-id";
pub(super) const SIGNATURE_PARAM: &str = "X-Amz-Signature";

/// SHA-256 of the empty payload of a GET.
const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// SigV4 keeps only the RFC 3986 unreserved characters.
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The parts of a presigned GET that the signature covers.
pub(super) struct Presigned<'a> {
    pub host: &'a str,
    /// The cluster name the verifier serves, sent as the signed `x-k8s-aws-id` header.
    pub cluster: &'a str,
    /// Decoded query parameters in URL order, including the signature itself.
    pub params: &'a [(String, String)],
    pub amz_date: &'a str,
    /// `yyyymmdd/region/service/aws4_request`
    pub scope: &'a str,
}

/// Whether `signature` is the signature of `request` under `secret` for the scope's
/// date, region and service. The comparison is constant-time.
pub(super) fn signature_matches(
    request: &Presigned<'_>,
    secret: &str,
    scope_parts: (&str, &str, &str),
    signature: &[u8],
) -> bool {
    let (date, region, service) = scope_parts;
    let key = signing_key(secret, date, region, service);
    let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC accepts any key length");
    mac.update(string_to_sign(request).as_bytes());
    mac.verify_slice(signature).is_ok()
}

fn string_to_sign(request: &Presigned<'_>) -> String {
    let hashed = hex::encode(Sha256::digest(canonical_request(request).as_bytes()));
    format!(
        "{ALGORITHM}\n{}\n{}\n{hashed}",
        request.amz_date, request.scope
    )
}

fn canonical_request(request: &Presigned<'_>) -> String {
    format!(
        "GET\n/\n{}\nhost:{}\n{CLUSTER_HEADER}:{}\n\n{SIGNED_HEADERS}\n{EMPTY_PAYLOAD_SHA256}",
        canonical_query(request.params),
        request.host,
        request.cluster.trim(),
    )
}

/// Every parameter but the signature, encoded, sorted by key (then value).
fn canonical_query(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(SIGNATURE_PARAM))
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, SIGV4_ENCODE).to_string()
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, service);
    hmac(&k_service, "aws4_request")
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn canonical_query_sorts_encodes_and_drops_the_signature() {
        let params = [
            pair("X-Amz-Signature", "abc"),
            pair(
                "X-Amz-Credential",
                "AKID/20230428/us-west-2/sts/aws4_request",
            ),
            pair("Action", "GetCallerIdentity"),
            pair("X-Amz-SignedHeaders", "host;x-k8s-aws-id"),
            pair("X-Amz-Security-Token", "a+b=c d~"),
        ];
        assert_eq!(
            canonical_query(&params),
            "Action=GetCallerIdentity\
             &X-Amz-Credential=AKID%2F20230428%2Fus-west-2%2Fsts%2Faws4_request\
             &X-Amz-Security-Token=a%2Bb%3Dc%20d~\
             &X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"
        );
    }

    /// The example signing key from the SigV4 documentation.
    #[test]
    fn signing_key_matches_the_documented_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }
}
