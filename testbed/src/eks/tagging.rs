//! Tags on EKS resources: TagResource, UntagResource and ListTagsForResource on cluster and
//! access-entry ARNs.
//!
//! Discovery finds clusters by their tags and the product marks the access entries it owns
//! with a tag, so both kinds of resource must be taggable with EKS's limits, and a resource
//! is only found through the regional endpoint of its own account and region.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::ops::parse_body;
use super::{EmulatorState, Scope};

const MAX_TAGS: usize = 50;
const MAX_KEY_LEN: usize = 128;
const MAX_VALUE_LEN: usize = 256;
const RESERVED_KEY_PREFIX: &str = "aws:";

/// EKS's tag rules: at most 50 tags, keys of 1 to 128 characters not starting with `aws:`,
/// values of at most 256 characters. The error is the message; callers pick the exception.
pub(super) fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "A resource can have at most {MAX_TAGS} tags; {} were given.",
            tags.len()
        ));
    }
    for (key, value) in tags {
        let key_len = key.chars().count();
        if key_len == 0 || key_len > MAX_KEY_LEN {
            return Err(format!(
                "Tag key {key:?} must be 1 to {MAX_KEY_LEN} characters long."
            ));
        }
        if key.to_ascii_lowercase().starts_with(RESERVED_KEY_PREFIX) {
            return Err(format!(
                "Tag key {key:?} is invalid: the aws: prefix is reserved for AWS use."
            ));
        }
        if value.chars().count() > MAX_VALUE_LEN {
            return Err(format!(
                "The value of tag {key:?} is longer than {MAX_VALUE_LEN} characters."
            ));
        }
    }
    Ok(())
}

/// A taggable resource named by an ARN.
#[derive(Debug, PartialEq, Eq)]
enum Resource<'a> {
    Cluster(&'a str),
    AccessEntry { cluster: &'a str },
}

impl<'a> Resource<'a> {
    fn cluster(&self) -> &'a str {
        match self {
            Self::Cluster(cluster) | Self::AccessEntry { cluster } => cluster,
        }
    }
}

/// Splits `arn:PARTITION:eks:REGION:ACCOUNT:cluster/NAME` or
/// `...:access-entry/CLUSTER/...`; any other EKS resource is one the emulator does not have,
/// anything else is a bad request.
fn parse_arn(arn: &str) -> Result<(Scope, Resource<'_>), ApiError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", _partition, "eks", region, account, resource] = parts.as_slice() else {
        return Err(ApiError::BadRequest(format!(
            "{arn} is not a valid EKS ARN."
        )));
    };
    let not_found = || ApiError::ResourceNotFound(arn.to_owned());
    let resource = if let Some(name) = resource.strip_prefix("cluster/") {
        (!name.is_empty() && !name.contains('/'))
            .then_some(Resource::Cluster(name))
            .ok_or_else(not_found)?
    } else if let Some(rest) = resource.strip_prefix("access-entry/") {
        let cluster = rest.split('/').next().filter(|c| !c.is_empty());
        Resource::AccessEntry {
            cluster: cluster.ok_or_else(not_found)?,
        }
    } else {
        return Err(not_found());
    };
    let scope = Scope {
        account: (*account).to_owned(),
        region: (*region).to_owned(),
    };
    Ok((scope, resource))
}

/// The cluster a resource ARN belongs to, for per-cluster failure injection and counting.
pub(super) fn cluster_of_arn(arn: &str) -> Option<&str> {
    parse_arn(arn).ok().map(|(_, resource)| resource.cluster())
}

/// The resource `arn` names, if it is in the caller's account and region: a regional endpoint
/// only knows its own resources.
fn locate<'a>(caller: &Scope, arn: &'a str) -> Result<Resource<'a>, ApiError> {
    let (scope, resource) = parse_arn(arn)?;
    if scope != *caller {
        return Err(ApiError::ResourceNotFound(arn.to_owned()));
    }
    Ok(resource)
}

fn tags_of<'s>(
    state: &'s EmulatorState,
    caller: &Scope,
    arn: &str,
) -> Result<&'s BTreeMap<String, String>, ApiError> {
    let not_found = || ApiError::ResourceNotFound(arn.to_owned());
    let resource = locate(caller, arn)?;
    let record = state
        .cluster(caller, resource.cluster())
        .map_err(|_| not_found())?;
    match resource {
        Resource::Cluster(_) => Ok(&record.spec.tags),
        Resource::AccessEntry { .. } => record
            .access_entries
            .values()
            .find(|entry| entry.access_entry_arn == arn)
            .map(|entry| &entry.tags)
            .ok_or_else(not_found),
    }
}

fn tags_of_mut<'s>(
    state: &'s mut EmulatorState,
    caller: &Scope,
    arn: &str,
) -> Result<&'s mut BTreeMap<String, String>, ApiError> {
    let not_found = || ApiError::ResourceNotFound(arn.to_owned());
    let resource = locate(caller, arn)?;
    let record = state
        .cluster_mut(caller, resource.cluster())
        .map_err(|_| not_found())?;
    match resource {
        Resource::Cluster(_) => Ok(&mut record.spec.tags),
        Resource::AccessEntry { .. } => record
            .access_entries
            .values_mut()
            .find(|entry| entry.access_entry_arn == arn)
            .map(|entry| &mut entry.tags)
            .ok_or_else(not_found),
    }
}

/// `GET /tags/{resourceArn}`.
pub(super) fn list_tags_for_resource(
    state: &EmulatorState,
    caller: &Scope,
    arn: &str,
) -> Result<Value, ApiError> {
    Ok(json!({ "tags": tags_of(state, caller, arn)? }))
}

#[derive(Deserialize)]
struct TagBody {
    tags: Option<BTreeMap<String, String>>,
}

/// `POST /tags/{resourceArn}` with `{"tags": {...}}`: adds or overwrites those tags.
pub(super) fn tag_resource(
    state: &mut EmulatorState,
    caller: &Scope,
    arn: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let new_tags = parse_body::<TagBody>(body)?
        .tags
        .filter(|tags| !tags.is_empty())
        .ok_or_else(|| ApiError::BadRequest("At least one tag is required.".into()))?;
    let tags = tags_of_mut(state, caller, arn)?;
    let mut merged = tags.clone();
    merged.extend(new_tags);
    validate_tags(&merged).map_err(ApiError::BadRequest)?;
    *tags = merged;
    Ok(json!({}))
}

/// `DELETE /tags/{resourceArn}?tagKeys=a&tagKeys=b`: removes those keys; absent keys are
/// ignored.
pub(super) fn untag_resource(
    state: &mut EmulatorState,
    caller: &Scope,
    arn: &str,
    query: &str,
) -> Result<Value, ApiError> {
    let keys: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "tagKeys")
        .map(|(_, value)| value.into_owned())
        .collect();
    if keys.is_empty() {
        return Err(ApiError::BadRequest(
            "At least one tag key is required.".into(),
        ));
    }
    let tags = tags_of_mut(state, caller, arn)?;
    for key in keys {
        tags.remove(&key);
    }
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_arn_parses_into_scope_and_name() {
        let (scope, resource) = parse_arn("arn:aws:eks:us-east-1:123456789012:cluster/a").unwrap();
        assert_eq!(
            (scope.account.as_str(), scope.region.as_str(), resource),
            ("123456789012", "us-east-1", Resource::Cluster("a"))
        );
        assert!(matches!(
            parse_arn("arn:aws:eks:us-east-1:123456789012:nodegroup/a/b/c"),
            Err(ApiError::ResourceNotFound(_))
        ));
        assert!(matches!(
            parse_arn("not-an-arn"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn access_entry_arn_names_its_cluster() {
        let arn =
            "arn:aws:eks:eu-west-1:123456789012:access-entry/prod/user/123456789012/alice/0f0e";
        assert_eq!(cluster_of_arn(arn), Some("prod"));
        let (scope, resource) = parse_arn(arn).unwrap();
        assert_eq!(scope.region, "eu-west-1");
        assert_eq!(resource, Resource::AccessEntry { cluster: "prod" });
    }

    #[test]
    fn tag_rules_follow_eks() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(validate_tags(&tags(&[("eks-iam-sync/managed", "true")])).is_ok());
        assert!(validate_tags(&tags(&[("aws:cloudformation:stack", "x")])).is_err());
        assert!(validate_tags(&tags(&[("", "x")])).is_err());
        assert!(validate_tags(&tags(&[(&"k".repeat(129), "x")])).is_err());
        assert!(validate_tags(&tags(&[("k", &"v".repeat(257))])).is_err());
        let many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate_tags(&many).is_err());
    }
}
