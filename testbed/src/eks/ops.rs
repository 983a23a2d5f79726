//! The cluster operations, one function each (request parameters in, response body or wire
//! error out, over the locked emulator state and the caller's account and region), plus the
//! paging and body parsing every operation shares.

use std::collections::BTreeMap;
use std::ops::Bound;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::{ClusterRecord, EmulatorState, Scope};

/// The page size limit and default of ListClusters and ListAccessEntries.
const MAX_RESULTS: usize = 100;
/// Marks a nextToken as ours, so that arbitrary strings are rejected like EKS does.
const TOKEN_PREFIX: &str = "eks-emulator/v1/";
const KUBERNETES_VERSION: &str = "1.20";
const PLATFORM_VERSION: &str = "eks.1";

/// `GET /clusters?maxResults=&nextToken=&include=`: the caller's cluster names in name
/// order. `include` selects connected clusters, which the emulator has none of.
pub(super) fn list_clusters(
    state: &EmulatorState,
    scope: &Scope,
    query: &str,
) -> Result<Value, ApiError> {
    let page = PageRequest::parse(query)?;
    let Some(clusters) = state.clusters_in(scope) else {
        return Ok(json!({ "clusters": [] }));
    };
    let (names, next_token) = paginate(clusters, &page);
    let mut body = json!({ "clusters": names });
    if let Some(token) = next_token {
        body["nextToken"] = json!(token);
    }
    Ok(body)
}

/// `GET /clusters/{name}`.
pub(super) fn describe_cluster(
    state: &EmulatorState,
    scope: &Scope,
    name: &str,
) -> Result<Value, ApiError> {
    let record = state.cluster(scope, name)?;
    Ok(json!({ "cluster": cluster_json(record) }))
}

/// One page of `map`'s keys after the page's token, and the token of the next page if there
/// is one.
pub(super) fn paginate<'m, V>(
    map: &'m BTreeMap<String, V>,
    page: &PageRequest,
) -> (Vec<&'m String>, Option<String>) {
    let lower = page
        .after
        .as_deref()
        .map_or(Bound::Unbounded, Bound::Excluded);
    let mut keys: Vec<&String> = map
        .range::<str, _>((lower, Bound::Unbounded))
        .map(|(key, _)| key)
        .take(page.max_results + 1)
        .collect();
    if keys.len() <= page.max_results {
        return (keys, None);
    }
    keys.truncate(page.max_results);
    let token = encode_token(keys[page.max_results - 1]);
    (keys, Some(token))
}

/// A JSON request body; an empty body is `{}`.
pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body)
        .map_err(|err| ApiError::BadRequest(format!("The request body is not valid: {err}")))
}

/// The paging parameters of the List operations.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PageRequest {
    max_results: usize,
    /// The last name of the previous page.
    after: Option<String>,
}

impl PageRequest {
    pub(super) fn parse(query: &str) -> Result<Self, ApiError> {
        let mut page = Self {
            max_results: MAX_RESULTS,
            after: None,
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "maxResults" => page.max_results = parse_max_results(&value)?,
                "nextToken" => page.after = Some(decode_token(&value)?),
                _ => {}
            }
        }
        Ok(page)
    }
}

fn parse_max_results(value: &str) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_RESULTS).contains(n))
        .ok_or_else(|| {
            ApiError::InvalidParameter(format!(
                "1 validation error detected: Value '{value}' at 'maxResults' failed to satisfy \
                 constraint: Member must have value between 1 and {MAX_RESULTS}"
            ))
        })
}

fn encode_token(last_name: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{last_name}"))
}

fn decode_token(token: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(TOKEN_PREFIX).map(str::to_owned))
        .ok_or_else(|| ApiError::InvalidParameter("The nextToken is not valid.".to_owned()))
}

/// The DescribeCluster `cluster` structure. Fields the emulator has no notion of (VPC,
/// security group, OIDC issuer) get stable values derived from the ARN.
fn cluster_json(record: &ClusterRecord) -> Value {
    let spec = &record.spec;
    let arn = spec.arn();
    let ids = hex::encode(Sha256::digest(arn.as_bytes()));
    json!({
        "name": spec.name,
        "arn": arn,
        "createdAt": record.created_at,
        "version": KUBERNETES_VERSION,
        "endpoint": spec.endpoint,
        "roleArn": format!("arn:aws:iam::{}:role/{}-cluster-role", spec.account, spec.name),
        "resourcesVpcConfig": {
            "subnetIds": [],
            "securityGroupIds": [],
            "clusterSecurityGroupId": format!("sg-{}", &ids[..17]),
            "vpcId": format!("vpc-{}", &ids[17..34]),
            "endpointPublicAccess": true,
            "endpointPrivateAccess": false,
            "publicAccessCidrs": ["0.0.0.0/0"],
        },
        "kubernetesNetworkConfig": {
            "serviceIpv4Cidr": "10.100.0.0/16",
            "ipFamily": "ipv4",
        },
        "identity": {
            "oidc": {
                "issuer": format!(
                    "https://oidc.eks.{}.amazonaws.com/id/{}",
                    spec.region,
                    ids[..32].to_uppercase()
                ),
            },
        },
        "status": "ACTIVE",
        "certificateAuthority": { "data": STANDARD.encode(&spec.ca_pem) },
        "platformVersion": PLATFORM_VERSION,
        "tags": spec.tags,
        "accessConfig": { "authenticationMode": spec.authentication_mode.as_str() },
        "logging": super::logging::logging_json(&record.logging),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_token_round_trips_and_rejects_foreign_tokens() {
        assert_eq!(decode_token(&encode_token("c-1")).unwrap(), "c-1");
        for token in ["", "garbage!", &URL_SAFE_NO_PAD.encode("other/c-1")] {
            assert!(matches!(
                decode_token(token),
                Err(ApiError::InvalidParameter(_))
            ));
        }
    }
}
