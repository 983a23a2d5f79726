//! One function per EKS operation: request parameters in, response body or wire error out,
//! over the locked emulator state and the resolved caller.

use std::ops::Bound;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::caller::Caller;
use super::error::ApiError;
use super::{ClusterRecord, EmulatorState, Scope};

/// The ListClusters page size limit and default.
const MAX_RESULTS: usize = 100;
/// Marks a nextToken as ours, so that arbitrary strings are rejected like EKS does.
const TOKEN_PREFIX: &str = "eks-emulator/v1/";
const KUBERNETES_VERSION: &str = "1.20";
const PLATFORM_VERSION: &str = "eks.1";

/// `GET /clusters?maxResults=&nextToken=&include=`: the caller's cluster names in name
/// order. `include` selects connected clusters, which the emulator has none of.
pub(super) fn list_clusters(
    state: &EmulatorState,
    caller: &Caller,
    query: &str,
) -> Result<Value, ApiError> {
    let page = PageRequest::parse(query)?;
    let Some(clusters) = state.clusters_in(&caller.scope()) else {
        return Ok(json!({ "clusters": [] }));
    };
    let lower = page
        .after
        .as_deref()
        .map_or(Bound::Unbounded, Bound::Excluded);
    let mut names: Vec<&String> = clusters
        .range::<str, _>((lower, Bound::Unbounded))
        .map(|(name, _)| name)
        .take(page.max_results + 1)
        .collect();
    let mut body = json!({});
    if names.len() > page.max_results {
        names.truncate(page.max_results);
        body["nextToken"] = json!(encode_token(names[page.max_results - 1]));
    }
    body["clusters"] = json!(names);
    Ok(body)
}

/// `GET /clusters/{name}`.
pub(super) fn describe_cluster(
    state: &EmulatorState,
    caller: &Caller,
    name: &str,
) -> Result<Value, ApiError> {
    let record = state
        .clusters_in(&caller.scope())
        .and_then(|clusters| clusters.get(name))
        .ok_or_else(|| ApiError::ClusterNotFound(name.to_owned()))?;
    Ok(json!({ "cluster": cluster_json(record) }))
}

/// `GET /tags/{resourceArn}`. Only cluster ARNs of the caller's account and region resolve,
/// as the real regional endpoint only knows its own resources.
pub(super) fn list_tags_for_resource(
    state: &EmulatorState,
    caller: &Caller,
    arn: &str,
) -> Result<Value, ApiError> {
    let (scope, name) = parse_cluster_arn(arn)?;
    let record = (scope == caller.scope())
        .then(|| state.clusters_in(&scope)?.get(name))
        .flatten()
        .ok_or_else(|| ApiError::ResourceNotFound(arn.to_owned()))?;
    Ok(json!({ "tags": record.spec.tags }))
}

/// The paging parameters of ListClusters.
#[derive(Debug, PartialEq, Eq)]
struct PageRequest {
    max_results: usize,
    /// The last name of the previous page.
    after: Option<String>,
}

impl PageRequest {
    fn parse(query: &str) -> Result<Self, ApiError> {
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

/// Splits `arn:PARTITION:eks:REGION:ACCOUNT:cluster/NAME`; any other EKS ARN shape names a
/// resource the emulator does not have, anything else is a bad request.
fn parse_cluster_arn(arn: &str) -> Result<(Scope, &str), ApiError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", _partition, "eks", region, account, resource] = parts.as_slice() else {
        return Err(ApiError::BadRequest(format!(
            "{arn} is not a valid EKS ARN."
        )));
    };
    let name = resource
        .strip_prefix("cluster/")
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| ApiError::ResourceNotFound(arn.to_owned()))?;
    let scope = Scope {
        account: (*account).to_owned(),
        region: (*region).to_owned(),
    };
    Ok((scope, name))
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

    #[test]
    fn cluster_arn_parses_into_scope_and_name() {
        let (scope, name) =
            parse_cluster_arn("arn:aws:eks:us-east-1:123456789012:cluster/a").unwrap();
        assert_eq!(
            (scope.account.as_str(), scope.region.as_str(), name),
            ("123456789012", "us-east-1", "a")
        );
        assert!(matches!(
            parse_cluster_arn("arn:aws:eks:us-east-1:123456789012:nodegroup/a/b/c"),
            Err(ApiError::ResourceNotFound(_))
        ));
        assert!(matches!(
            parse_cluster_arn("not-an-arn"),
            Err(ApiError::BadRequest(_))
        ));
    }
}
