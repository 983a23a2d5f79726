//! The pure merge of a [`Desired`] set into the `mapUsers` of a cluster's `kube-system/aws-auth`
//! ConfigMap, and a readable diff of the result. No I/O: the caller GETs the ConfigMap, calls
//! [`merge`], and when [`Merge::map_users`] is `Some` rewrites only the `mapUsers` data key with
//! the resourceVersion precondition, so every other key (mapRoles, mapAccounts, anything else)
//! stays byte-identical. Those keys are not even parsed: they are never rewritten, so nothing in
//! them can block a write, least of all a revocation.
//!
//! The rules exist because aws-auth is shared, hand-edited and read by a parser with its own
//! rules (aws-iam-authenticator, pkg/mapper/configmap/configmap.go `ParseMap`: each key on its
//! own, YAML 1.1 through sigs.k8s.io/yaml over gopkg.in/yaml.v2, non-strict):
//! - Ownership is recorded in the cluster itself, by the marker [`MANAGED_BY_KEY`]`:`
//!   [`MANAGED_BY_VALUE`] inside each entry this tool writes, so it survives restarts and needs
//!   no side store. Entries without the marker are never changed, moved relative to each other,
//!   or duplicated; a desired user who already has such an entry is reported as a conflict.
//! - Entries this tool does not own are kept as their original text, comments included, never
//!   re-serialised: a YAML 1.2 writer would change what `yes`, `on`, `0777` or `1:20` mean to
//!   the authenticator's YAML 1.1 reader. Only this tool's own entries are rendered
//!   ([`yaml`], which quotes whatever YAML 1.1 could misread).
//! - Every new text is read back before it is proposed: it must read as exactly the kept
//!   entries plus the rendered ones, or nothing is written.
//! - Only a `mapUsers` that cannot be read safely blocks, and then only what it must: one that
//!   does not parse, or is not a list, fails with [`AwsAuthError`] and nothing is written (the
//!   authenticator ignores such a key entirely, so it grants nothing). One whose entries read
//!   well but whose text cannot be cut into entries (flow style, anchors across items) still lets
//!   this tool remove or narrow its own entries in place; grants are held back and reported in
//!   [`Merge::blocked`].
//! - Output is deterministic (unowned entries first, in their order, then owned entries sorted by
//!   ARN) and a write is proposed only when the owned entries actually change in meaning, so
//!   re-running, or meeting hand-formatted YAML, does not churn the ConfigMap.
//!
//! ```
//! use std::collections::{BTreeMap, BTreeSet};
//! use eks_iam_sync::aws_auth::merge;
//! use eks_iam_sync::desired::{Desired, Mapping, Scope, UserArn};
//!
//! let alice = UserArn::parse("arn:aws:iam::123456789012:user/alice").unwrap();
//! let desired = Desired {
//!     scope: Scope::Users(BTreeSet::from(["alice".to_string()])),
//!     entries: BTreeMap::from([(alice.clone(), Mapping::new("alice", ["devs"]))]),
//! };
//! let hand = "# break-glass\n- userarn: arn:aws:iam::123456789012:user/admin\n  username: 'on'\n  groups: [0777, 1:20]\n";
//! let data = BTreeMap::from([
//!     ("mapRoles".to_string(), "- {rolearn: x, rolearn: y, <<: {a: b}}".to_string()),
//!     ("mapUsers".to_string(), hand.to_string()),
//! ]);
//! let merged = merge(Some(&data), &desired).unwrap();
//! assert_eq!(merged.added, [alice]);
//! assert_eq!(
//!     merged.map_users.as_deref(),
//!     Some(format!(
//!         "{hand}- userarn: arn:aws:iam::123456789012:user/alice\n  username: alice\n  groups:\n    - devs\n  managedBy: eks-iam-sync\n"
//!     ).as_str())
//! );
//! // Merging the result again changes nothing.
//! let data = BTreeMap::from([("mapUsers".to_string(), merged.map_users.unwrap())]);
//! assert_eq!(merge(Some(&data), &desired).unwrap().map_users, None);
//! ```

mod document;
mod entry;
mod node;
mod plan;
mod split;
mod view;
mod yaml;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::desired::{Desired, Principal, RoleArn, UserArn};
use crate::installation::Installation;

use entry::Meaning;
pub use view::{read_paths, AwsAuthPaths, MappedArn};

/// A kind of principal aws-auth maps, and where: IAM users in `mapUsers` under `userarn`, IAM
/// roles in `mapRoles` under `rolearn` (aws-iam-authenticator `pkg/config` `UserMapping`,
/// `RoleMapping`). Both keys are read, planned and written by the same code.
pub trait AwsAuthPrincipal: Principal {
    /// The data key of the ConfigMap.
    const KEY: &'static str;
    /// The entry field holding the ARN.
    const ARN_FIELD: &'static str;
}

impl AwsAuthPrincipal for UserArn {
    const KEY: &'static str = MAP_USERS;
    const ARN_FIELD: &'static str = USERARN_KEY;
}

impl AwsAuthPrincipal for RoleArn {
    const KEY: &'static str = MAP_ROLES;
    const ARN_FIELD: &'static str = "rolearn";
}

/// The key of the ownership marker inside a `mapUsers` entry. aws-iam-authenticator unmarshals
/// entries non-strictly and ignores unknown keys, so the marker is invisible to authentication;
/// it is the only durable record of which entries this tool may change or remove.
pub const MANAGED_BY_KEY: &str = "managedBy";
/// The value of the ownership marker of the installation without an id, and of entries written
/// before installations existed; an installation with an id writes `eks-iam-sync/<id>`
/// ([`Installation::aws_auth_marker`]). Entries with any value not this installation's belong
/// to someone else.
pub const MANAGED_BY_VALUE: &str = crate::installation::LEGACY_MARKER;

/// The data key of the users this module computes.
pub const MAP_USERS: &str = "mapUsers";
/// The data key of the roles this module computes.
pub const MAP_ROLES: &str = "mapRoles";

const USERARN_KEY: &str = "userarn";

/// Why `mapUsers` cannot be (fully) brought in step. The message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsAuthError {
    /// The value does not parse. The authenticator then ignores the whole key (it grants
    /// nothing), and any write would have to rewrite text that cannot be read.
    #[error(
        "aws-auth {key} does not parse, so nothing was written (the authenticator ignores \
         the whole key while it is broken; fix the YAML): {detail}"
    )]
    Unreadable { key: &'static str, detail: String },
    /// The value parses but is not a list of entries.
    #[error(
        "aws-auth {key} is {found}, not a list, so nothing was written; make it a YAML list \
         of entries"
    )]
    NotAList {
        key: &'static str,
        found: &'static str,
    },
    /// Part of the merge was held back; everything else (every revocation it could locate) was
    /// applied.
    #[error("aws-auth {key}: {}", reasons.join("; "))]
    Blocked {
        key: &'static str,
        reasons: Vec<String>,
        /// Desired principals (ARNs) whose entry was not written or widened.
        held_back: Vec<String>,
    },
}

/// The result of merging a [`Desired`] set into one cluster's aws-auth (`mapUsers` for users,
/// `mapRoles` for roles: [`AwsAuthPrincipal::KEY`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge<P = UserArn> {
    /// The new value of the key (`mapUsers`, or `mapRoles` for roles); `None` when the entries
    /// would not change, meaning: do not write.
    pub map_users: Option<String>,
    /// The current `mapUsers` value, for diffs; `None` when the key (or the ConfigMap) is absent.
    pub previous: Option<String>,
    /// Owned entries that appear.
    pub added: Vec<P>,
    /// Owned entries that disappear.
    pub removed: Vec<P>,
    /// Owned entries whose content changes (username, groups, or a hand edit being undone).
    pub changed: Vec<P>,
    /// Desired principals that already have an entry this tool does not own; left as they are.
    pub conflicts: Vec<P>,
    /// What could not be done, and why ([`AwsAuthError::Blocked`]); `map_users` still holds
    /// whatever could be done safely, which the caller writes before it reports the cluster as
    /// failed with this reason.
    pub blocked: Option<AwsAuthError>,
}

impl<P> Default for Merge<P> {
    fn default() -> Self {
        Merge {
            map_users: None,
            previous: None,
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
            conflicts: Vec::new(),
            blocked: None,
        }
    }
}

impl<P> Merge<P> {
    /// Whether the caller has to write the key.
    pub fn writes(&self) -> bool {
        self.map_users.is_some()
    }
}

/// Merges `desired` into the ConfigMap `data` (`None` when the ConfigMap does not exist).
///
/// Owned entries in scope are replaced by the desired ones; owned entries out of scope and all
/// unowned entries are kept as they are. The one exception: an owned entry out of scope that
/// comes before an unowned entry for the same ARN is shadowed (the authenticator takes the last
/// one), and is dropped rather than moved behind it, where it would start to win.
///
/// When there is nothing to write no value is created: an absent ConfigMap or `mapUsers` key
/// stays absent while no user is desired, and an existing `mapUsers` that becomes empty is kept
/// as `[]`.
pub fn merge(
    current: Option<&BTreeMap<String, String>>,
    desired: &Desired,
) -> Result<Merge, AwsAuthError> {
    merge_key(current, desired)
}

/// [`merge`] for roles, into `mapRoles`: one entry per role, under its ARN without the path
/// ([`Desired::without_paths`]), since the authenticator matches only that. Everything else in
/// `mapRoles` (node roles, the tool's own role, hand entries) keeps its bytes; a hand entry for
/// the same role is a conflict.
pub fn merge_roles(
    current: Option<&BTreeMap<String, String>>,
    desired: &Desired<RoleArn>,
) -> Result<Merge<RoleArn>, AwsAuthError> {
    merge_roles_as(&Installation::legacy(), current, desired)
}

/// [`merge_roles`] as `installation` ([`merge_as`]).
pub fn merge_roles_as(
    installation: &Installation,
    current: Option<&BTreeMap<String, String>>,
    desired: &Desired<RoleArn>,
) -> Result<Merge<RoleArn>, AwsAuthError> {
    merge_as(installation, current, &desired.without_paths())
}

/// The one merge behind [`merge`] and [`merge_roles`], for the key of `P`, as the installation
/// without an id.
pub fn merge_key<P: AwsAuthPrincipal>(
    current: Option<&BTreeMap<String, String>>,
    desired: &Desired<P>,
) -> Result<Merge<P>, AwsAuthError> {
    merge_as(&Installation::legacy(), current, desired)
}

/// [`merge_key`] as `installation`: only entries with its marker are its own, and the entries it
/// writes carry that marker.
pub fn merge_as<P: AwsAuthPrincipal>(
    installation: &Installation,
    current: Option<&BTreeMap<String, String>>,
    desired: &Desired<P>,
) -> Result<Merge<P>, AwsAuthError> {
    let previous = current.and_then(|data| data.get(P::KEY)).cloned();
    let document = document::read(previous.as_deref().unwrap_or_default(), P::KEY)?;
    let decision = plan::decide(&document, previous.is_some(), desired, installation);
    let (added, removed, changed) = changes(&decision.owned_before, &decision.owned_after);
    let blocked = (!decision.reasons.is_empty()).then_some(AwsAuthError::Blocked {
        key: P::KEY,
        reasons: decision.reasons,
        held_back: decision.held_back.iter().map(ToString::to_string).collect(),
    });
    Ok(Merge {
        map_users: decision.text,
        previous,
        added,
        removed,
        changed,
        conflicts: decision.conflicts,
        blocked,
    })
}

/// A unified diff of `mapUsers` for a dry run or a log line; `before` is `None` when absent.
pub fn unified_diff(cluster: &str, before: Option<&str>, after: &str) -> String {
    unified_diff_of(cluster, MAP_USERS, before, after)
}

/// [`unified_diff`] of any data key (`mapRoles`).
pub fn unified_diff_of(cluster: &str, key: &str, before: Option<&str>, after: &str) -> String {
    let before_header = match before {
        Some(_) => format!("{cluster}: kube-system/aws-auth {key} (current)"),
        None => format!("{cluster}: kube-system/aws-auth {key} (absent)"),
    };
    let after_header = format!("{cluster}: kube-system/aws-auth {key} (proposed)");
    similar::TextDiff::from_lines(before.unwrap_or(""), after)
        .unified_diff()
        .context_radius(3)
        .header(&before_header, &after_header)
        .to_string()
}

/// Added, removed and changed owned ARNs, each sorted. ARNs are grouped case-insensitively;
/// a change in meaning, or duplicates collapsing into one entry, count as a change.
fn changes<P: Principal>(
    before: &[(P, Meaning)],
    after: &[(P, Meaning)],
) -> (Vec<P>, Vec<P>, Vec<P>) {
    let group = |entries: &[(P, Meaning)]| {
        let mut grouped: BTreeMap<String, (P, Vec<Meaning>)> = BTreeMap::new();
        for (arn, meaning) in entries {
            let slot = grouped
                .entry(arn.as_str().to_ascii_lowercase())
                .or_insert_with(|| (arn.clone(), Vec::new()));
            slot.0 = arn.clone();
            slot.1.push(meaning.clone());
        }
        grouped
    };
    let (before, after) = (group(before), group(after));
    let mut added: Vec<P> = after
        .iter()
        .filter(|(key, _)| !before.contains_key(*key))
        .map(|(_, (arn, _))| arn.clone())
        .collect();
    let mut removed: Vec<P> = before
        .iter()
        .filter(|(key, _)| !after.contains_key(*key))
        .map(|(_, (arn, _))| arn.clone())
        .collect();
    let mut changed: Vec<P> = after
        .iter()
        .filter(|(key, (_, values))| before.get(*key).is_some_and(|(_, old)| old != values))
        .map(|(_, (arn, _))| arn.clone())
        .collect();
    added.sort();
    removed.sort();
    changed.sort();
    (added, removed, changed)
}
