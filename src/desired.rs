//! The domain types every part of the product passes around: which IAM users should reach a
//! cluster, as whom, and which part of the cluster's state one run is allowed to decide about.
//!
//! IAM is the truth and the event is only a hint, so a run computes a [`Desired`] (from IAM) and
//! a [`Scope`] (from the event). The scope is what makes a single-user event safe: it reconciles
//! that user's entries and leaves every other entry this tool owns exactly as it is, so a partial
//! view of IAM can never remove someone else's access.
//!
//! ```
//! use std::collections::{BTreeMap, BTreeSet};
//! use eks_iam_sync::desired::{Desired, Mapping, Scope, UserArn};
//!
//! let alice = UserArn::parse("arn:aws:iam::123456789012:user/dev/alice").unwrap();
//! assert_eq!(alice.user_name(), "alice");
//!
//! let desired = Desired {
//!     scope: Scope::Users(BTreeSet::from(["alice".to_string()])),
//!     entries: BTreeMap::from([(alice.clone(), Mapping::new("alice", ["devs", "admins", "devs"]))]),
//! };
//! assert!(desired.in_scope(&alice));
//! assert_eq!(desired.entries[&alice].groups, ["admins", "devs"]);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest IAM user name IAM accepts.
const MAX_USER_NAME_LEN: usize = 64;

/// Why a string is not an IAM user ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("`{arn}` is not a valid IAM principal ARN (expected arn:<partition>:iam::<12-digit account>:user/[path/]name or :role/[path/]name): {reason}")]
    Invalid { arn: String, reason: &'static str },
}

/// An IAM user ARN, e.g. `arn:aws:iam::123456789012:user/path/alice`.
///
/// Validated on construction because it is written into the cluster's `aws-auth` ConfigMap, where
/// a wrong value would silently grant nothing (or, worse, shadow a hand-made entry). The original
/// spelling is kept; the authenticator compares ARNs case-insensitively, so callers matching
/// against cluster state should use [`UserArn::matches`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserArn(String);

impl UserArn {
    /// Validates `arn` as an IAM user ARN in any partition.
    pub fn parse(arn: &str) -> Result<Self, ArnError> {
        let invalid = |reason| ArnError::Invalid {
            arn: arn.to_string(),
            reason,
        };
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid(
                "not of the form arn:<partition>:iam::<account>:<resource>",
            ));
        };
        if partition.is_empty()
            || !partition
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-')
        {
            return Err(invalid("the partition is not a lowercase name like `aws`"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the account is not 12 digits"));
        }
        let Some(path_and_name) = resource.strip_prefix("user/") else {
            return Err(invalid("the resource is not `user/...`"));
        };
        let mut segments: Vec<&str> = path_and_name.split('/').collect();
        let name = segments.pop().unwrap_or_default();
        if !is_valid_user_name(name) {
            return Err(invalid(
                "the user name is not 1-64 of the characters A-Z a-z 0-9 + = , . @ _ -",
            ));
        }
        if !segments
            .iter()
            .all(|segment| is_valid_path_segment(segment))
        {
            return Err(invalid("the path has an empty or non-printable segment"));
        }
        Ok(Self(arn.to_string()))
    }

    /// The IAM user name, i.e. the last path segment. This is what a [`Scope`] names, because
    /// an IAM event identifies a user by name, not by ARN (the path may have just changed).
    pub fn user_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` names the same principal, compared case-insensitively as
    /// aws-iam-authenticator does when it looks up a mapping.
    pub fn matches(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

fn is_valid_user_name(name: &str) -> bool {
    (1..=MAX_USER_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn is_valid_path_segment(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_graphic())
}

impl fmt::Display for UserArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for UserArn {
    type Error = ArnError;

    fn try_from(arn: String) -> Result<Self, Self::Error> {
        Self::parse(&arn)
    }
}

impl From<UserArn> for String {
    fn from(arn: UserArn) -> Self {
        arn.0
    }
}

impl std::str::FromStr for UserArn {
    type Err = ArnError;

    fn from_str(arn: &str) -> Result<Self, Self::Err> {
        Self::parse(arn)
    }
}

/// An IAM role ARN, e.g. `arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123abcd`.
///
/// Kept as written, path included: an access entry takes the ARN with its path (EKS user guide,
/// "Create access entries": "If the ARN is for an IAM role, it can include a path. ARNs in
/// aws-auth ConfigMap entries, can't include a path"), while aws-auth needs
/// [`RoleArn::without_path`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleArn(String);

/// Longest IAM role name IAM accepts.
const MAX_ROLE_NAME_LEN: usize = 64;

impl RoleArn {
    /// Validates `arn` as an IAM role ARN in any partition.
    pub fn parse(arn: &str) -> Result<Self, ArnError> {
        let invalid = |reason| ArnError::Invalid {
            arn: arn.to_string(),
            reason,
        };
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ["arn", partition, "iam", "", account, resource] = parts.as_slice() else {
            return Err(invalid(
                "not of the form arn:<partition>:iam::<account>:<resource>",
            ));
        };
        if partition.is_empty()
            || !partition
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-')
        {
            return Err(invalid("the partition is not a lowercase name like `aws`"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the account is not 12 digits"));
        }
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(invalid("the resource is not `role/...`"));
        };
        let mut segments: Vec<&str> = path_and_name.split('/').collect();
        let name = segments.pop().unwrap_or_default();
        if !(1..=MAX_ROLE_NAME_LEN).contains(&name.len())
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
        {
            return Err(invalid(
                "the role name is not 1-64 of the characters A-Z a-z 0-9 + = , . @ _ -",
            ));
        }
        if !segments.iter().all(|s| is_valid_path_segment(s)) {
            return Err(invalid("the path has an empty or non-printable segment"));
        }
        Ok(Self(arn.to_string()))
    }

    /// The role name, the last path segment: what a role event names.
    pub fn role_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }

    /// The 12-digit account.
    pub fn account(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `arn:P:iam::ACCOUNT:role/NAME`: the ARN without its path, as aws-iam-authenticator
    /// canonicalises a role session's ARN (pkg/arn `Canonicalize`, `StripPath`).
    pub fn without_path(&self) -> RoleArn {
        let head = self.0.split(":role/").next().unwrap_or_default();
        RoleArn(format!("{head}:role/{}", self.role_name()))
    }

    /// EKS's own user name for a role access entry given none: the STS ARN of the role's
    /// sessions, path removed, with `{{SessionName}}` (EKS user guide, "Set a custom username
    /// for EKS access entries", Default username generation). It names the session, so it is
    /// the default of `roles[].usernameTemplate` in both stores.
    pub fn default_username(&self) -> String {
        let partition = self.0.split(':').nth(1).unwrap_or("aws");
        format!(
            "arn:{partition}:sts::{}:assumed-role/{}/{{{{SessionName}}}}",
            self.account(),
            self.role_name()
        )
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RoleArn {
    type Error = ArnError;

    fn try_from(arn: String) -> Result<Self, Self::Error> {
        Self::parse(&arn)
    }
}

impl From<RoleArn> for String {
    fn from(arn: RoleArn) -> Self {
        arn.0
    }
}

/// The Kubernetes identity one IAM user should get in a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mapping {
    pub username: String,
    /// Sorted and deduplicated, so equal access always compares (and renders) equal.
    pub groups: Vec<String>,
    /// The IAM user's unique id (`AIDA...`, IAM's `UserId`) the mapping is for, when known.
    ///
    /// EKS binds an access entry to this id, not to the ARN: an entry made for a user who was
    /// then deleted and recreated under the same name no longer works. The access-entry planner
    /// compares it with the id recorded on the entry to tell a live entry from a dead one.
    /// aws-auth matches by ARN only, so its merge ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
}

impl Mapping {
    /// Builds a mapping with its groups sorted and deduplicated.
    pub fn new<G: Into<String>>(
        username: impl Into<String>,
        groups: impl IntoIterator<Item = G>,
    ) -> Self {
        let groups: BTreeSet<String> = groups.into_iter().map(Into::into).collect();
        Self {
            username: username.into(),
            groups: groups.into_iter().collect(),
            principal_id: None,
        }
    }

    /// The same mapping, for the IAM principal with unique id `id`.
    pub fn for_principal(self, id: impl Into<String>) -> Self {
        Self {
            principal_id: Some(id.into()),
            ..self
        }
    }

    /// The same mapping with the group invariant restored, for values built field by field.
    pub fn normalized(&self) -> Self {
        Self {
            principal_id: self.principal_id.clone(),
            ..Self::new(self.username.clone(), self.groups.iter().cloned())
        }
    }

    /// Whether both grant the same Kubernetes identity (user name and groups), whoever they
    /// are for.
    pub fn grants_same(&self, other: &Mapping) -> bool {
        self.username == other.username && self.groups == other.groups
    }
}

/// Which owned entries a run may decide about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// A full reconcile: every owned entry is in scope, so owned entries of users that are no
    /// longer desired are removed.
    All,
    /// A user event: only entries of these IAM user names are in scope. Matching by name rather
    /// than ARN is deliberate: when a user's path changes, the entry under the old-path ARN is in
    /// scope too and gets replaced instead of lingering.
    Users(BTreeSet<String>),
    /// A role event (an IAM role created or deleted): only role entries of these IAM role names
    /// are in scope, and no user entry at all, so a role event never touches a user's access.
    Roles(BTreeSet<String>),
}

impl Scope {
    /// Whether entries of IAM user `name` are in scope. IAM user names are unique
    /// case-insensitively, so the comparison ignores case: a rename that only changes case still
    /// replaces the old entry.
    pub fn covers(&self, name: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Users(names) => names.iter().any(|n| n.eq_ignore_ascii_case(name)),
            Scope::Roles(_) => false,
        }
    }

    /// Whether role entries of IAM role `name` are in scope. Role names are unique
    /// case-insensitively too. A user event covers no role.
    pub fn covers_role(&self, name: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Users(_) => false,
            Scope::Roles(names) => names.iter().any(|n| n.eq_ignore_ascii_case(name)),
        }
    }

    /// Whether any role entry can be in scope: a full reconcile or a role event.
    pub fn covers_roles(&self) -> bool {
        !matches!(self, Scope::Users(_))
    }
}

/// What IAM says the clusters should contain, and how much of the clusters' state that claim
/// covers. `P` is the kind of principal: IAM users (the default) or IAM roles ([`RoleArn`]);
/// one planner per store serves both, and the one [`Scope`] of a run says which of each kind
/// it decides about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "P: Serialize", deserialize = "P: Deserialize<'de> + Ord"))]
pub struct Desired<P = UserArn> {
    pub scope: Scope,
    pub entries: BTreeMap<P, Mapping>,
}

/// What the planners need of a principal ARN: its text, how the stores compare it, and whether
/// a scope covers it.
pub trait Principal: Clone + Ord + fmt::Debug + fmt::Display + Send + Sync + 'static {
    /// Parses an ARN read from a store; `None` when it is not this kind of principal.
    fn parse_principal(arn: &str) -> Option<Self>;
    fn as_str(&self) -> &str;
    /// Whether `scope` lets a run decide about this principal's entries.
    fn covered_by(&self, scope: &Scope) -> bool;
    /// Whether `other` (as a store holds it) names the same principal, compared
    /// case-insensitively as aws-iam-authenticator and EKS do.
    fn matches(&self, other: &str) -> bool {
        self.as_str().eq_ignore_ascii_case(other)
    }
}

impl Principal for UserArn {
    fn parse_principal(arn: &str) -> Option<Self> {
        UserArn::parse(arn).ok()
    }
    fn as_str(&self) -> &str {
        &self.0
    }
    fn covered_by(&self, scope: &Scope) -> bool {
        scope.covers(self.user_name())
    }
}

impl Principal for RoleArn {
    fn parse_principal(arn: &str) -> Option<Self> {
        RoleArn::parse(arn).ok()
    }
    fn as_str(&self) -> &str {
        &self.0
    }
    fn covered_by(&self, scope: &Scope) -> bool {
        scope.covers_role(self.role_name())
    }
}

impl<P: Principal> Desired<P> {
    /// Whether the owned entry for `arn` is this run's to decide about.
    pub fn in_scope(&self, arn: &P) -> bool {
        arn.covered_by(&self.scope)
    }

    /// The same scope with nobody desired: what a store the cluster no longer uses for these
    /// principals should hold of ours. Applying it removes the owned entries in scope, nothing
    /// else.
    pub fn emptied(&self) -> Desired<P> {
        Desired {
            scope: self.scope.clone(),
            entries: BTreeMap::new(),
        }
    }
}

impl Desired<RoleArn> {
    /// The same entries keyed by the path-less role ARN, as aws-auth must hold them:
    /// aws-iam-authenticator matches `mapRoles` against the caller's canonical ARN, which has no
    /// path (pkg/arn `Canonicalize`; `RoleMapping.Matches` compares with `strings.EqualFold`),
    /// so an entry with a path never matches.
    pub fn without_paths(&self) -> Desired<RoleArn> {
        Desired {
            scope: self.scope.clone(),
            entries: self
                .entries
                .iter()
                .map(|(arn, m)| (arn.without_path(), m.clone()))
                .collect(),
        }
    }
}

impl Desired {
    /// The IAM user names whose desired entries differ between `self` (what a run wrote) and
    /// `fresh` (IAM read again afterwards), within `self`'s scope: exactly the users a stale
    /// write may have got wrong. Compared by name, so a changed path or id counts too.
    pub fn changed_users(&self, fresh: &Desired) -> BTreeSet<String> {
        let by_name = |d: &Desired| -> BTreeMap<String, (UserArn, Mapping)> {
            d.entries
                .iter()
                .filter(|(arn, _)| self.in_scope(arn))
                .map(|(arn, m)| {
                    (
                        arn.user_name().to_ascii_lowercase(),
                        (arn.clone(), m.clone()),
                    )
                })
                .collect()
        };
        let (before, after) = (by_name(self), by_name(fresh));
        let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        names
            .into_iter()
            .filter(|name| before.get(*name) != after.get(*name))
            .map(|name| {
                before
                    .get(name)
                    .or_else(|| after.get(name))
                    .map(|(arn, _)| arn.user_name().to_string())
                    .unwrap_or_else(|| name.clone())
            })
            .collect()
    }

    /// `self` narrowed to the IAM users `names`: their entries only, and a scope that covers
    /// only them, so applying it cannot touch anyone else.
    pub fn restricted_to(&self, names: &BTreeSet<String>) -> Desired {
        let scope = Scope::Users(names.clone());
        Desired {
            entries: self
                .entries
                .iter()
                .filter(|(arn, _)| scope.covers(arn.user_name()))
                .map(|(arn, m)| (arn.clone(), m.clone()))
                .collect(),
            scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Scope {
        Scope::Users(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn parses_user_arn_with_path_in_any_partition() {
        let arn =
            UserArn::parse("arn:aws-us-gov:iam::123456789012:user/a/b/alice.smith@x").unwrap();
        assert_eq!(arn.user_name(), "alice.smith@x");
        assert_eq!(
            arn.to_string(),
            "arn:aws-us-gov:iam::123456789012:user/a/b/alice.smith@x"
        );
    }

    #[test]
    fn rejects_non_user_arns() {
        for bad in [
            "",
            "alice",
            "arn:aws:iam::123456789012:role/admin",
            "arn:aws:iam::12345678901:user/alice",
            "arn:aws:iam:us-east-1:123456789012:user/alice",
            "arn:aws:sts::123456789012:user/alice",
            "arn:AWS:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:user/",
            "arn:aws:iam::123456789012:user/a//alice",
            "arn:aws:iam::123456789012:user/al ice",
            "arn:aws:iam::123456789012:user/al:ice",
        ] {
            assert!(UserArn::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn arn_error_names_the_input() {
        let err = UserArn::parse("arn:aws:iam::1:user/alice").unwrap_err();
        assert!(
            err.to_string().contains("arn:aws:iam::1:user/alice"),
            "{err}"
        );
    }

    #[test]
    fn user_name_length_is_limited() {
        let long = format!("arn:aws:iam::123456789012:user/{}", "a".repeat(65));
        assert!(UserArn::parse(&long).is_err());
        assert!(UserArn::parse(&long[..long.len() - 1]).is_ok());
    }

    #[test]
    fn arn_matches_case_insensitively() {
        let arn = UserArn::parse("arn:aws:iam::123456789012:user/Alice").unwrap();
        assert!(arn.matches("ARN:AWS:IAM::123456789012:USER/alice"));
        assert!(!arn.matches("arn:aws:iam::123456789012:user/bob"));
    }

    #[test]
    fn arn_serializes_as_string_and_validates_on_deserialize() {
        let arn = UserArn::parse("arn:aws:iam::123456789012:user/alice").unwrap();
        let json = serde_json::to_string(&arn).unwrap();
        assert_eq!(json, "\"arn:aws:iam::123456789012:user/alice\"");
        assert_eq!(serde_json::from_str::<UserArn>(&json).unwrap(), arn);
        assert!(serde_json::from_str::<UserArn>("\"arn:aws:iam::1:role/x\"").is_err());
    }

    #[test]
    fn mapping_groups_are_sorted_and_deduped() {
        let mapping = Mapping::new("alice", ["b", "a", "b"]);
        assert_eq!(mapping.groups, ["a", "b"]);
        let raw = Mapping {
            username: "alice".into(),
            groups: vec!["z".into(), "a".into(), "z".into()],
            principal_id: Some("AIDAALICE".into()),
        };
        assert_eq!(raw.normalized().groups, ["a", "z"]);
        assert_eq!(raw.normalized().principal_id.as_deref(), Some("AIDAALICE"));
    }

    #[test]
    fn the_principal_id_does_not_change_the_grant() {
        let plain = Mapping::new("alice", ["devs"]);
        let for_alice = plain.clone().for_principal("AIDAALICE");
        assert_ne!(plain, for_alice);
        assert!(plain.grants_same(&for_alice));
        assert!(!plain.grants_same(&Mapping::new("alice", ["ops"])));
    }

    #[test]
    fn a_mapping_without_id_serializes_as_before() {
        let json = serde_json::to_value(Mapping::new("alice", ["devs"])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"username": "alice", "groups": ["devs"]})
        );
        let back: Mapping = serde_json::from_value(json).unwrap();
        assert_eq!(back.principal_id, None);
    }

    #[test]
    fn scope_all_covers_everyone() {
        let desired = Desired {
            scope: Scope::All,
            entries: BTreeMap::new(),
        };
        assert!(desired.in_scope(&UserArn::parse("arn:aws:iam::123456789012:user/x").unwrap()));
    }

    #[test]
    fn scope_users_covers_any_path_of_the_named_users_only() {
        let desired = Desired {
            scope: names(&["alice"]),
            entries: BTreeMap::new(),
        };
        let old_path = UserArn::parse("arn:aws:iam::123456789012:user/old/alice").unwrap();
        let other = UserArn::parse("arn:aws:iam::123456789012:user/bob").unwrap();
        assert!(desired.in_scope(&old_path));
        assert!(!desired.in_scope(&other));
    }

    fn user(name: &str) -> UserArn {
        UserArn::parse(&format!("arn:aws:iam::123456789012:user/{name}")).unwrap()
    }

    fn desired(scope: Scope, entries: &[(&str, &[&str])]) -> Desired {
        Desired {
            scope,
            entries: entries
                .iter()
                .map(|(name, groups)| (user(name), Mapping::new(*name, groups.iter().copied())))
                .collect(),
        }
    }

    #[test]
    fn changed_users_are_those_whose_entry_differs_in_scope() {
        let written = desired(
            Scope::All,
            &[
                ("alice", &["devs"]),
                ("bob", &["devs"]),
                ("carol", &["devs"]),
            ],
        );
        let fresh = desired(
            Scope::All,
            &[
                ("bob", &["devs", "ops"]),
                ("carol", &["devs"]),
                ("dave", &["devs"]),
            ],
        );
        let changed: Vec<String> = written.changed_users(&fresh).into_iter().collect();
        assert_eq!(changed, ["alice", "bob", "dave"]);
        assert!(written.changed_users(&written.clone()).is_empty());
    }

    #[test]
    fn changed_users_stay_within_the_runs_scope() {
        let written = desired(names(&["alice"]), &[("alice", &["devs"])]);
        let fresh = desired(names(&["alice"]), &[("bob", &["devs"])]);
        let changed: Vec<String> = written.changed_users(&fresh).into_iter().collect();
        assert_eq!(changed, ["alice"]);
    }

    #[test]
    fn restricted_to_keeps_only_the_named_users_and_scopes_to_them() {
        let fresh = desired(Scope::All, &[("alice", &["devs"]), ("bob", &["devs"])]);
        let narrowed = fresh.restricted_to(&["bob".to_string()].into());
        assert_eq!(narrowed.scope, names(&["bob"]));
        assert_eq!(narrowed.entries.len(), 1);
        assert!(narrowed.in_scope(&user("bob")));
        assert!(!narrowed.in_scope(&user("alice")));
    }

    #[test]
    fn scope_users_ignores_case_like_iam() {
        assert!(names(&["Alice"]).covers("alice"));
    }
}
