//! Access policies associated with access entries: AssociateAccessPolicy and
//! ListAssociatedAccessPolicies, so tests seed policies through the real API and the audit
//! reads them as it would on EKS.
//!
//! Shapes follow the EKS API Reference:
//! - `AssociateAccessPolicy`: `POST /clusters/{name}/access-entries/{principalArn}/access-policies`
//!   with `{"policyArn", "accessScope": {"type": "cluster"|"namespace", "namespaces": [...]}}`,
//!   answering `{"clusterName", "principalArn", "associatedAccessPolicy": AssociatedAccessPolicy}`.
//!   Associating a policy that is already associated replaces its scope (`modifiedAt` moves,
//!   `associatedAt` stays).
//! - `ListAssociatedAccessPolicies`: `GET` on the same path, `maxResults` (1..100) and
//!   `nextToken`, answering `{"clusterName", "principalArn", "associatedAccessPolicies": [...],
//!   "nextToken"}`.
//! - `AssociatedAccessPolicy`: `policyArn`, `accessScope`, `associatedAt`, `modifiedAt`.
//!
//! Rules kept: policies can be associated with `STANDARD` entries only (EKS user guide,
//! "Associate access policies with access entries": "You can assign one or more access policies
//! to access entries of type STANDARD"), a policy ARN has the form
//! `arn:aws:eks::aws:cluster-access-policy/NAME`, a `namespace` scope needs namespaces and a
//! `cluster` scope takes none. Deleting an entry deletes its associations.

use serde::Deserialize;
use serde_json::{json, Value};

use super::access_entries::{api_cluster, api_cluster_mut, entry_key, not_found, AccessEntryType};
use super::error::ApiError;
use super::ops::{paginate, parse_body, PageRequest};
use super::{epoch_seconds_now, EmulatorState, Scope};

const POLICY_ARN_PREFIX: &str = "arn:aws:eks::aws:cluster-access-policy/";

/// One policy associated with an access entry.
#[derive(Clone, Debug, PartialEq)]
pub struct AssociatedPolicy {
    pub policy_arn: String,
    /// `cluster` or `namespace`.
    pub scope_type: String,
    pub namespaces: Vec<String>,
    pub associated_at: f64,
    pub modified_at: f64,
}

impl AssociatedPolicy {
    fn to_json(&self) -> Value {
        json!({
            "policyArn": self.policy_arn,
            "accessScope": {"type": self.scope_type, "namespaces": self.namespaces},
            "associatedAt": self.associated_at,
            "modifiedAt": self.modified_at,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociateBody {
    policy_arn: Option<String>,
    access_scope: Option<ScopeBody>,
}

#[derive(Deserialize)]
struct ScopeBody {
    #[serde(rename = "type")]
    scope_type: Option<String>,
    #[serde(default)]
    namespaces: Vec<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter(message.into())
}

/// AssociateAccessPolicy on the state.
pub(super) fn associate(
    state: &mut EmulatorState,
    scope: &Scope,
    cluster: &str,
    principal_arn: &str,
    policy_arn: &str,
    scope_type: &str,
    namespaces: Vec<String>,
) -> Result<AssociatedPolicy, ApiError> {
    let record = api_cluster_mut(state, scope, cluster)?;
    let key = entry_key(&record.access_entries, principal_arn).ok_or_else(|| not_found(cluster))?;
    let entry = &record.access_entries[&key];
    if !matches!(
        entry.entry_type,
        AccessEntryType::Standard | AccessEntryType::Ec2
    ) {
        return Err(invalid(format!(
            "Access policies can't be associated with access entries of type {}.",
            entry.entry_type.as_str()
        )));
    }
    let name = policy_arn
        .strip_prefix(POLICY_ARN_PREFIX)
        .unwrap_or_default();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(format!(
            "The specified policyArn {policy_arn} is invalid."
        )));
    }
    match (scope_type, namespaces.is_empty()) {
        ("cluster", true) | ("namespace", false) => {}
        ("cluster", false) => {
            return Err(invalid(
                "Namespaces can't be specified for an access scope of type cluster.",
            ))
        }
        ("namespace", true) => {
            return Err(invalid(
                "At least one namespace is required for an access scope of type namespace.",
            ))
        }
        (other, _) => {
            return Err(invalid(format!(
                "The access scope type {other} is not valid; valid types are cluster and namespace."
            )))
        }
    }
    let now = epoch_seconds_now();
    let policies = record.policies.entry(key).or_default();
    let associated_at = policies
        .get(policy_arn)
        .map_or(now, |existing| existing.associated_at);
    let policy = AssociatedPolicy {
        policy_arn: policy_arn.to_owned(),
        scope_type: scope_type.to_owned(),
        namespaces,
        associated_at,
        modified_at: now,
    };
    policies.insert(policy_arn.to_owned(), policy.clone());
    Ok(policy)
}

/// `POST /clusters/{name}/access-entries/{principalArn}/access-policies`.
pub(super) fn associate_op(
    state: &mut EmulatorState,
    scope: &Scope,
    cluster: &str,
    principal_arn: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let body = parse_body::<AssociateBody>(body)?;
    let policy_arn = body
        .policy_arn
        .ok_or_else(|| invalid("policyArn is required."))?;
    let access_scope = body
        .access_scope
        .ok_or_else(|| invalid("accessScope is required."))?;
    let scope_type = access_scope
        .scope_type
        .ok_or_else(|| invalid("accessScope.type is required."))?;
    let policy = associate(
        state,
        scope,
        cluster,
        principal_arn,
        &policy_arn,
        &scope_type,
        access_scope.namespaces,
    )?;
    Ok(json!({
        "clusterName": cluster,
        "principalArn": principal_arn,
        "associatedAccessPolicy": policy.to_json(),
    }))
}

/// `GET /clusters/{name}/access-entries/{principalArn}/access-policies`: in policy ARN order.
pub(super) fn list_op(
    state: &EmulatorState,
    scope: &Scope,
    cluster: &str,
    principal_arn: &str,
    query: &str,
) -> Result<Value, ApiError> {
    let page = PageRequest::parse(query)?;
    let record = api_cluster(state, scope, cluster)?;
    let key = entry_key(&record.access_entries, principal_arn).ok_or_else(|| not_found(cluster))?;
    let empty = Default::default();
    let policies = record.policies.get(&key).unwrap_or(&empty);
    let (arns, next_token) = paginate(policies, &page);
    let listed: Vec<Value> = arns.iter().map(|arn| policies[*arn].to_json()).collect();
    let mut body = json!({
        "clusterName": cluster,
        "principalArn": principal_arn,
        "associatedAccessPolicies": listed,
    });
    if let Some(token) = next_token {
        body["nextToken"] = json!(token);
    }
    Ok(body)
}
