//! Access entries: the EKS API's replacement for aws-auth, with the rules EKS enforces.
//!
//! The product writes access entries instead of aws-auth on clusters in `API` and
//! `API_AND_CONFIG_MAP` mode. Whatever EKS refuses must be refused here too (reserved name
//! prefixes, a second entry for the same principal, the per-cluster limit, a cluster still in
//! `CONFIG_MAP` mode, session principals), or the product would pass its tests and fail on EKS.
//!
//! Principals are matched the way EKS matches them, by identity rather than by ARN text: EKS
//! resolves an entry's ARN to the principal's unique id, so an entry for `role/dev/my-role`
//! matches sessions of `my-role` (whose STS ARN has no path), and IAM names compare
//! case-insensitively. The API operations compare (account, user-or-role, name).
//!
//! The id itself is recorded too: when an entry is created over the API the emulator asks IAM
//! (the [`PrincipalDirectory`](super::PrincipalDirectory); moto in the test bed) for the
//! principal's `UserId`/`RoleId` and keeps it with the entry, unseen on the wire as on EKS.
//! The webhook then refuses a caller whose id is another: "If you don't delete the access
//! entry and ever recreate the IAM principal, even if it has the same ARN, the access entry
//! won't work ... Amazon EKS stores [the roleID or userID] with the access entry" (EKS API
//! Reference, `AccessEntry`, `principalArn`). EKS refuses principals IAM does not have; the
//! emulator accepts them, without an id, so tests can make entries for made-up principals.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::ops::{paginate, parse_body, PageRequest};
use super::tagging::validate_tags;
use super::{epoch_seconds_now, AuthenticationMode, ClusterRecord, EmulatorState, Scope};

/// Prefixes EKS reserves for itself in access-entry usernames and Kubernetes group names.
pub const RESERVED_PREFIXES: [&str; 5] = ["system:", "eks:", "aws:", "amazon:", "iam:"];
/// Access entries per cluster until [`EksEmulator::set_access_entries_limit`] says otherwise.
///
/// [`EksEmulator::set_access_entries_limit`]: super::EksEmulator::set_access_entries_limit
pub const DEFAULT_ACCESS_ENTRIES_LIMIT: usize = 3_000;

const SESSION_NAME: &str = "{{SessionName}}";
const STANDARD_ONLY: &str =
    "This operation can only be performed on Access Entries with a type of \"STANDARD\".";

/// The `type` of an access entry. `STANDARD` entries carry a username and Kubernetes groups;
/// the node types get theirs from EKS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AccessEntryType {
    #[default]
    Standard,
    Ec2Linux,
    Ec2Windows,
    FargateLinux,
    Ec2,
    HybridLinux,
    HyperpodLinux,
}

impl AccessEntryType {
    const ALL: [Self; 7] = [
        Self::Standard,
        Self::Ec2Linux,
        Self::Ec2Windows,
        Self::FargateLinux,
        Self::Ec2,
        Self::HybridLinux,
        Self::HyperpodLinux,
    ];

    /// The value EKS puts on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "STANDARD",
            Self::Ec2Linux => "EC2_LINUX",
            Self::Ec2Windows => "EC2_WINDOWS",
            Self::FargateLinux => "FARGATE_LINUX",
            Self::Ec2 => "EC2",
            Self::HybridLinux => "HYBRID_LINUX",
            Self::HyperpodLinux => "HYPERPOD_LINUX",
        }
    }

    /// The type named by a wire value, if EKS knows it.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }

    fn is_node(self) -> bool {
        self != Self::Standard
    }

    /// The username EKS gives node entries (they cannot choose one).
    fn node_username(self) -> &'static str {
        match self {
            Self::FargateLinux => "system:node:{{SessionName}}",
            _ => "system:node:{{EC2PrivateDNSName}}",
        }
    }
}

/// One access entry, as DescribeAccessEntry reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessEntry {
    pub cluster_name: String,
    pub principal_arn: String,
    pub kubernetes_groups: Vec<String>,
    pub username: String,
    pub entry_type: AccessEntryType,
    pub tags: BTreeMap<String, String>,
    /// The unique id IAM reported for the principal when the entry was created; never on the
    /// wire. `None` if unknown (no directory, or IAM did not know the principal).
    pub principal_id: Option<String>,
    pub access_entry_arn: String,
    /// Seconds since the Unix epoch.
    pub created_at: f64,
    pub modified_at: f64,
}

impl AccessEntry {
    /// The `AccessEntry` structure of the wire.
    fn to_json(&self) -> Value {
        json!({
            "clusterName": self.cluster_name,
            "principalArn": self.principal_arn,
            "kubernetesGroups": self.kubernetes_groups,
            "accessEntryArn": self.access_entry_arn,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "tags": self.tags,
            "username": self.username,
            "type": self.entry_type.as_str(),
        })
    }
}

/// What CreateAccessEntry takes besides the cluster name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateAccessEntryRequest {
    pub principal_arn: String,
    pub kubernetes_groups: Vec<String>,
    /// `None` lets EKS choose: the user's ARN, or the role's STS ARN with `{{SessionName}}`.
    pub username: Option<String>,
    pub entry_type: AccessEntryType,
    pub tags: BTreeMap<String, String>,
}

impl CreateAccessEntryRequest {
    /// A `STANDARD` entry for `principal_arn` without groups, username or tags.
    pub fn new(principal_arn: impl Into<String>) -> Self {
        Self {
            principal_arn: principal_arn.into(),
            ..Self::default()
        }
    }
}

/// What UpdateAccessEntry takes: each field given replaces the entry's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAccessEntryRequest {
    pub kubernetes_groups: Option<Vec<String>>,
    pub username: Option<String>,
}

/// The CreateAccessEntry body as the SDK serialises it (`clientRequestToken` is ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    principal_arn: Option<String>,
    #[serde(default)]
    kubernetes_groups: Vec<String>,
    username: Option<String>,
    #[serde(rename = "type")]
    entry_type: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl CreateBody {
    fn into_request(self) -> Result<CreateAccessEntryRequest, ApiError> {
        let principal_arn = self
            .principal_arn
            .ok_or_else(|| ApiError::InvalidParameter("principalArn is required.".into()))?;
        let entry_type = match self.entry_type.as_deref() {
            None => AccessEntryType::Standard,
            Some(value) => AccessEntryType::parse(value).ok_or_else(|| {
                ApiError::InvalidParameter(format!(
                    "The access entry type {value} is not valid; valid types are STANDARD, \
                     EC2_LINUX, EC2_WINDOWS, FARGATE_LINUX, EC2, HYBRID_LINUX and HYPERPOD_LINUX."
                ))
            })?,
        };
        Ok(CreateAccessEntryRequest {
            principal_arn,
            kubernetes_groups: self.kubernetes_groups,
            username: self.username,
            entry_type,
            tags: self.tags,
        })
    }
}

/// An IAM principal an access entry can name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Principal {
    partition: String,
    account: String,
    kind: PrincipalKind,
    /// The path without the name, e.g. `dev/apps/` (empty without a path).
    path: String,
    name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrincipalKind {
    User,
    Role,
}

impl PrincipalKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Role => "role",
        }
    }
}

impl Principal {
    /// `arn:PARTITION:iam::ACCOUNT:user/PATH/NAME` or `...:role/PATH/NAME`; STS session ARNs
    /// and anything else are not principals an entry can name.
    pub(super) fn parse(arn: &str) -> Option<Self> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ["arn", partition, "iam", "", account, resource] = parts.as_slice() else {
            return None;
        };
        let (kind, path_and_name) = resource.split_once('/')?;
        let kind = match kind {
            "user" => PrincipalKind::User,
            "role" => PrincipalKind::Role,
            _ => return None,
        };
        let (path, name) = path_and_name
            .rsplit_once('/')
            .map_or(("", path_and_name), |(path, name)| (path, name));
        let well_formed = !partition.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && !name.is_empty();
        well_formed.then(|| Self {
            partition: (*partition).to_owned(),
            account: (*account).to_owned(),
            kind,
            path: if path.is_empty() {
                String::new()
            } else {
                format!("{path}/")
            },
            name: name.to_owned(),
        })
    }

    /// The same IAM principal: account, kind and case-insensitive name (IAM names are unique
    /// per account regardless of path and case).
    fn same_identity(&self, other: &Self) -> bool {
        self.account == other.account
            && self.kind == other.kind
            && self.name.eq_ignore_ascii_case(&other.name)
    }

    fn is_service_linked_role(&self) -> bool {
        self.kind == PrincipalKind::Role && self.path.starts_with("aws-service-role/")
    }

    /// The username EKS chooses for a `STANDARD` entry: a user's ARN as given, or the STS ARN
    /// of the role's sessions, path removed, with `{{SessionName}}`.
    fn default_username(&self, arn: &str) -> String {
        match self.kind {
            PrincipalKind::User => arn.to_owned(),
            PrincipalKind::Role => format!(
                "arn:{}:sts::{}:assumed-role/{}/{SESSION_NAME}",
                self.partition, self.account, self.name
            ),
        }
    }
}

fn invalid_principal() -> ApiError {
    ApiError::InvalidParameter("The specified principalArn is invalid: invalid principal.".into())
}

/// The first reserved prefix `name` starts with.
fn reserved_prefix(name: &str) -> Option<&'static str> {
    RESERVED_PREFIXES
        .into_iter()
        .find(|prefix| name.starts_with(prefix))
}

fn check_username(username: &str) -> Result<(), ApiError> {
    if username.is_empty() {
        return Err(ApiError::InvalidParameter(
            "The username must not be empty.".into(),
        ));
    }
    if let Some(prefix) = reserved_prefix(username) {
        return Err(ApiError::InvalidParameter(format!(
            "The username must not begin with {prefix}"
        )));
    }
    // EKS wants a colon before {{SessionName}} so a session name cannot forge another user.
    if let Some(at) = username.find(SESSION_NAME) {
        if !username[..at].contains(':') {
            return Err(ApiError::InvalidParameter(format!(
                "The username {username} is invalid: a colon must come before {SESSION_NAME}."
            )));
        }
    }
    Ok(())
}

fn check_groups(groups: &[String]) -> Result<(), ApiError> {
    for group in groups {
        if group.is_empty() {
            return Err(ApiError::InvalidParameter(
                "Kubernetes group names must not be empty.".into(),
            ));
        }
        if let Some(prefix) = reserved_prefix(group) {
            return Err(ApiError::InvalidParameter(format!(
                "The kubernetes group name {group} is invalid, it cannot start with {prefix}"
            )));
        }
    }
    Ok(())
}

/// The username and groups a new entry gets, after EKS's checks for its type.
fn identity_for(
    request: &CreateAccessEntryRequest,
    principal: &Principal,
    cluster_account: &str,
) -> Result<(String, Vec<String>), ApiError> {
    let entry_type = request.entry_type;
    if !entry_type.is_node() {
        let username = match &request.username {
            Some(username) => username.clone(),
            None => principal.default_username(&request.principal_arn),
        };
        if request.username.is_some() {
            check_username(&username)?;
        }
        check_groups(&request.kubernetes_groups)?;
        return Ok((username, request.kubernetes_groups.clone()));
    }
    if principal.kind != PrincipalKind::Role || principal.account != cluster_account {
        return Err(ApiError::InvalidParameter(format!(
            "Access entries of type {} must name an IAM role of the cluster's account.",
            entry_type.as_str()
        )));
    }
    if request.username.is_some() || !request.kubernetes_groups.is_empty() {
        return Err(ApiError::InvalidParameter(format!(
            "kubernetesGroups and username can't be set on access entries of type {}.",
            entry_type.as_str()
        )));
    }
    Ok((
        entry_type.node_username().to_owned(),
        vec!["system:nodes".to_owned()],
    ))
}

/// `arn:P:eks:REGION:ACCOUNT:access-entry/CLUSTER/KIND/PRINCIPAL_ACCOUNT/NAME/UUID`, the
/// UUID new for every entry, so a recreated entry has a new ARN as on EKS.
fn access_entry_arn(record: &ClusterRecord, principal: &Principal, seq: u64) -> String {
    let spec = &record.spec;
    let digest = Sha256::digest(format!("{}/{seq}", spec.arn()).as_bytes());
    let hex = hex::encode(&digest[..16]);
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    format!(
        "arn:{}:eks:{}:{}:access-entry/{}/{}/{}/{}/{uuid}",
        principal.partition,
        spec.region,
        spec.account,
        spec.name,
        principal.kind.as_str(),
        principal.account,
        principal.name
    )
}

/// The key under which `entries` holds the entry for the principal of `principal_arn`.
pub(super) fn entry_key(
    entries: &BTreeMap<String, AccessEntry>,
    principal_arn: &str,
) -> Option<String> {
    if entries.contains_key(principal_arn) {
        return Some(principal_arn.to_owned());
    }
    let wanted = Principal::parse(principal_arn)?;
    entries
        .keys()
        .find(|arn| Principal::parse(arn).is_some_and(|p| p.same_identity(&wanted)))
        .cloned()
}

/// The entry of `cluster` for the principal of `principal_arn`, whatever the cluster's mode.
pub(super) fn find<'s>(
    state: &'s EmulatorState,
    scope: &Scope,
    cluster: &str,
    principal_arn: &str,
) -> Option<&'s AccessEntry> {
    let record = state.cluster(scope, cluster).ok()?;
    let key = entry_key(&record.access_entries, principal_arn)?;
    record.access_entries.get(&key)
}

/// Access entries only exist on clusters whose mode includes the EKS API.
fn require_api_mode(record: &ClusterRecord) -> Result<(), ApiError> {
    if record.spec.authentication_mode == AuthenticationMode::ConfigMap {
        return Err(ApiError::AccessEntriesDisabled {
            cluster: record.spec.name.clone(),
        });
    }
    Ok(())
}

pub(super) fn api_cluster<'s>(
    state: &'s EmulatorState,
    scope: &Scope,
    cluster: &str,
) -> Result<&'s ClusterRecord, ApiError> {
    let record = state.cluster(scope, cluster)?;
    require_api_mode(record)?;
    Ok(record)
}

pub(super) fn api_cluster_mut<'s>(
    state: &'s mut EmulatorState,
    scope: &Scope,
    cluster: &str,
) -> Result<&'s mut ClusterRecord, ApiError> {
    let record = state.cluster_mut(scope, cluster)?;
    require_api_mode(record)?;
    Ok(record)
}

pub(super) fn not_found(cluster: &str) -> ApiError {
    ApiError::AccessEntryNotFound {
        cluster: cluster.to_owned(),
    }
}

/// The `principalArn` of a CreateAccessEntry body, if it has one.
pub(super) fn principal_arn_of(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    body.get("principalArn")?.as_str().map(str::to_owned)
}

/// CreateAccessEntry on the state, for the principal IAM knows as `principal_id`.
pub(super) fn create(
    state: &mut EmulatorState,
    scope: &Scope,
    cluster: &str,
    request: CreateAccessEntryRequest,
    principal_id: Option<String>,
) -> Result<AccessEntry, ApiError> {
    let limit = state.access_entries_limit;
    let seq = state.next_entry_seq();
    let record = api_cluster_mut(state, scope, cluster)?;
    let principal = Principal::parse(&request.principal_arn).ok_or_else(invalid_principal)?;
    if principal.is_service_linked_role() {
        return Err(ApiError::InvalidParameter(
            "The caller is not allowed to modify access entries with a principalArn value of a \
             Service Linked Role"
                .into(),
        ));
    }
    let (username, kubernetes_groups) = identity_for(&request, &principal, &record.spec.account)?;
    validate_tags(&request.tags).map_err(ApiError::InvalidParameter)?;
    if entry_key(&record.access_entries, &request.principal_arn).is_some() {
        return Err(ApiError::AccessEntryInUse {
            cluster: cluster.to_owned(),
        });
    }
    if record.access_entries.len() >= limit {
        return Err(ApiError::AccessEntryLimitExceeded {
            cluster: cluster.to_owned(),
            limit,
        });
    }
    let now = epoch_seconds_now();
    let entry = AccessEntry {
        cluster_name: cluster.to_owned(),
        access_entry_arn: access_entry_arn(record, &principal, seq),
        principal_arn: request.principal_arn,
        kubernetes_groups,
        username,
        entry_type: request.entry_type,
        tags: request.tags,
        principal_id,
        created_at: now,
        modified_at: now,
    };
    record
        .access_entries
        .insert(entry.principal_arn.clone(), entry.clone());
    Ok(entry)
}

/// UpdateAccessEntry on the state.
pub(super) fn update(
    state: &mut EmulatorState,
    scope: &Scope,
    cluster: &str,
    principal_arn: &str,
    request: UpdateAccessEntryRequest,
) -> Result<AccessEntry, ApiError> {
    let record = api_cluster_mut(state, scope, cluster)?;
    let key = entry_key(&record.access_entries, principal_arn).ok_or_else(|| not_found(cluster))?;
    let entry = record
        .access_entries
        .get_mut(&key)
        .ok_or_else(|| not_found(cluster))?;
    if entry.entry_type.is_node() {
        return Err(ApiError::InvalidParameter(STANDARD_ONLY.into()));
    }
    if let Some(username) = &request.username {
        check_username(username)?;
    }
    if let Some(groups) = &request.kubernetes_groups {
        check_groups(groups)?;
    }
    if let Some(username) = request.username {
        entry.username = username;
    }
    if let Some(groups) = request.kubernetes_groups {
        entry.kubernetes_groups = groups;
    }
    entry.modified_at = epoch_seconds_now();
    Ok(entry.clone())
}

/// DeleteAccessEntry on the state.
pub(super) fn delete(
    state: &mut EmulatorState,
    scope: &Scope,
    cluster: &str,
    principal_arn: &str,
) -> Result<AccessEntry, ApiError> {
    let record = api_cluster_mut(state, scope, cluster)?;
    let key = entry_key(&record.access_entries, principal_arn).ok_or_else(|| not_found(cluster))?;
    // Its access policy associations go with it.
    record.policies.remove(&key);
    record
        .access_entries
        .remove(&key)
        .ok_or_else(|| not_found(cluster))
}

/// `POST /clusters/{name}/access-entries`.
pub(super) fn create_op(
    state: &mut EmulatorState,
    scope: &Scope,
    cluster: &str,
    body: &[u8],
    principal_id: Option<String>,
) -> Result<Value, ApiError> {
    let request = parse_body::<CreateBody>(body)?.into_request()?;
    let entry = create(state, scope, cluster, request, principal_id)?;
    Ok(json!({ "accessEntry": entry.to_json() }))
}

/// `GET /clusters/{name}/access-entries/{principalArn}`.
pub(super) fn describe_op(
    state: &EmulatorState,
    scope: &Scope,
    cluster: &str,
    principal_arn: &str,
) -> Result<Value, ApiError> {
    let record = api_cluster(state, scope, cluster)?;
    let key = entry_key(&record.access_entries, principal_arn).ok_or_else(|| not_found(cluster))?;
    let entry = record
        .access_entries
        .get(&key)
        .ok_or_else(|| not_found(cluster))?;
    Ok(json!({ "accessEntry": entry.to_json() }))
}

/// `POST /clusters/{name}/access-entries/{principalArn}`.
pub(super) fn update_op(
    state: &mut EmulatorState,
    scope: &Scope,
    cluster: &str,
    principal_arn: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let request = parse_body::<UpdateAccessEntryRequest>(body)?;
    let entry = update(state, scope, cluster, principal_arn, request)?;
    Ok(json!({ "accessEntry": entry.to_json() }))
}

/// `DELETE /clusters/{name}/access-entries/{principalArn}`.
pub(super) fn delete_op(
    state: &mut EmulatorState,
    scope: &Scope,
    cluster: &str,
    principal_arn: &str,
) -> Result<Value, ApiError> {
    delete(state, scope, cluster, principal_arn)?;
    Ok(json!({}))
}

/// `GET /clusters/{name}/access-entries?maxResults=&nextToken=&associatedPolicyArn=`: principal
/// ARNs in ARN order. No access policies are ever associated here, so filtering by one yields
/// nothing.
pub(super) fn list_op(
    state: &EmulatorState,
    scope: &Scope,
    cluster: &str,
    query: &str,
) -> Result<Value, ApiError> {
    let page = PageRequest::parse(query)?;
    let record = api_cluster(state, scope, cluster)?;
    let by_policy =
        url::form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "associatedPolicyArn");
    if by_policy {
        return Ok(json!({ "accessEntries": [] }));
    }
    let (arns, next_token) = paginate(&record.access_entries, &page);
    let mut body = json!({ "accessEntries": arns });
    if let Some(token) = next_token {
        body["nextToken"] = json!(token);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_users_and_roles_with_paths() {
        let role = Principal::parse("arn:aws:iam::111122223333:role/dev/apps/Deploy").unwrap();
        assert_eq!(
            (role.kind, role.path.as_str(), role.name.as_str()),
            (PrincipalKind::Role, "dev/apps/", "Deploy")
        );
        let user = Principal::parse("arn:aws:iam::111122223333:user/alice").unwrap();
        assert_eq!((user.kind, user.path.as_str()), (PrincipalKind::User, ""));
        for arn in [
            "arn:aws:sts::111122223333:assumed-role/Deploy/s",
            "arn:aws:iam::111122223333:group/devs",
            "arn:aws:iam::1111:user/alice",
            "arn:aws:iam::111122223333:user/",
            "not-an-arn",
        ] {
            assert!(Principal::parse(arn).is_none(), "{arn}");
        }
    }

    #[test]
    fn principals_match_by_identity_not_by_path_or_case() {
        let with_path = Principal::parse("arn:aws:iam::111122223333:role/dev/Deploy").unwrap();
        let plain = Principal::parse("arn:aws:iam::111122223333:role/deploy").unwrap();
        let user = Principal::parse("arn:aws:iam::111122223333:user/Deploy").unwrap();
        let other = Principal::parse("arn:aws:iam::444455556666:role/Deploy").unwrap();
        assert!(with_path.same_identity(&plain));
        assert!(!with_path.same_identity(&user));
        assert!(!with_path.same_identity(&other));
    }

    #[test]
    fn default_usernames_follow_eks() {
        let user_arn = "arn:aws:iam::111122223333:user/ops/alice";
        let user = Principal::parse(user_arn).unwrap();
        assert_eq!(user.default_username(user_arn), user_arn);
        let role_arn = "arn:aws:iam::111122223333:role/dev/Deploy";
        let role = Principal::parse(role_arn).unwrap();
        assert_eq!(
            role.default_username(role_arn),
            "arn:aws:sts::111122223333:assumed-role/Deploy/{{SessionName}}"
        );
    }

    #[test]
    fn reserved_prefixes_are_refused_in_usernames_and_groups() {
        for prefix in RESERVED_PREFIXES {
            let name = format!("{prefix}x");
            assert!(check_username(&name).is_err(), "{name}");
            assert!(check_groups(std::slice::from_ref(&name)).is_err(), "{name}");
        }
        assert!(check_username("alice").is_ok());
        assert!(check_groups(&["developers".into(), "systems".into()]).is_ok());
    }

    #[test]
    fn session_name_needs_a_colon_before_it() {
        assert!(check_username("admin:{{SessionName}}").is_ok());
        assert!(check_username("jo:hn{{SessionName}}").is_ok());
        assert!(check_username("john{{SessionName}}").is_err());
    }

    #[test]
    fn entry_types_round_trip() {
        for entry_type in AccessEntryType::ALL {
            assert_eq!(
                AccessEntryType::parse(entry_type.as_str()),
                Some(entry_type)
            );
        }
        assert_eq!(AccessEntryType::parse("standard"), None);
    }
}
