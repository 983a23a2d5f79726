//! The pure merge of a [`Desired`] set into the `mapUsers` of a cluster's `kube-system/aws-auth`
//! ConfigMap, and a readable diff of the result. No I/O: the caller GETs the ConfigMap, calls
//! [`merge`], and when [`Merge::map_users`] is `Some` rewrites only the `mapUsers` data key with
//! the resourceVersion precondition, so every other key (mapRoles, mapAccounts, anything else)
//! stays byte-identical.
//!
//! The rules exist because aws-auth is shared, hand-edited and unforgiving:
//! - Ownership is recorded in the cluster itself, by the marker [`MANAGED_BY_KEY`]`:`
//!   [`MANAGED_BY_VALUE`] inside each entry this tool writes, so it survives restarts and needs
//!   no side store. Entries without the marker are never changed, moved relative to each other,
//!   or duplicated; a desired user who already has such an entry is reported as a conflict.
//! - Nothing is written on top of a broken state: if any key the authenticator parses is not a
//!   YAML list, [`merge`] fails with [`AwsAuthError::Malformed`].
//! - Output is deterministic (unowned entries first, in their order, then owned entries sorted by
//!   ARN) and a write is proposed only when the parsed entries actually change, so re-running,
//!   or meeting hand-formatted YAML, does not churn the ConfigMap.
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
//! let data = BTreeMap::from([("mapRoles".to_string(), "[]".to_string())]);
//! let merged = merge(Some(&data), &desired).unwrap();
//! assert_eq!(merged.added, [alice]);
//! assert_eq!(
//!     merged.map_users.as_deref(),
//!     Some(
//!         "- userarn: arn:aws:iam::123456789012:user/alice\n  username: alice\n  groups:\n    - devs\n  managedBy: eks-iam-sync\n"
//!     )
//! );
//! // Merging the result again changes nothing.
//! let data = BTreeMap::from([("mapUsers".to_string(), merged.map_users.unwrap())]);
//! assert_eq!(merge(Some(&data), &desired).unwrap().map_users, None);
//! ```

mod yaml;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_yaml_ng::Value;

use crate::desired::{Desired, Mapping, UserArn};

/// The key of the ownership marker inside a `mapUsers` entry. aws-iam-authenticator unmarshals
/// entries non-strictly and ignores unknown keys, so the marker is invisible to authentication;
/// it is the only durable record of which entries this tool may change or remove.
pub const MANAGED_BY_KEY: &str = "managedBy";
/// The value of the ownership marker. Entries with any other value belong to someone else.
pub const MANAGED_BY_VALUE: &str = "eks-iam-sync";

/// The data key this module computes.
pub const MAP_USERS: &str = "mapUsers";
/// Every data key aws-iam-authenticator parses; a broken one makes it drop that whole section.
const AUTHENTICATOR_KEYS: [&str; 3] = ["mapRoles", MAP_USERS, "mapAccounts"];

const USERARN_KEY: &str = "userarn";

/// Why the ConfigMap cannot be merged into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsAuthError {
    /// A key the authenticator parses is broken; writing anything on top would build on a state
    /// the authenticator already (partly) ignores, so a human has to fix it first.
    #[error("aws-auth data key `{key}` is malformed, refusing to write: {detail}")]
    Malformed { key: String, detail: String },
}

/// The result of merging a [`Desired`] set into one cluster's aws-auth.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Merge {
    /// The new `mapUsers` value; `None` when the entries would not change, meaning: do not write.
    pub map_users: Option<String>,
    /// The current `mapUsers` value, for diffs; `None` when the key (or the ConfigMap) is absent.
    pub previous: Option<String>,
    /// Owned entries that appear.
    pub added: Vec<UserArn>,
    /// Owned entries that disappear.
    pub removed: Vec<UserArn>,
    /// Owned entries whose content changes (username, groups, or a hand edit being undone).
    pub changed: Vec<UserArn>,
    /// Desired users that already have an entry this tool does not own; left as they are.
    pub conflicts: Vec<UserArn>,
    /// The number of `mapUsers` entries after the merge, owned or not (for size errors).
    pub entries: usize,
}

impl Merge {
    /// Whether the caller has to write `mapUsers`.
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
    let previous = current.and_then(|data| data.get(MAP_USERS)).cloned();
    let entries = match current {
        Some(data) => parse_data(data)?,
        None => Vec::new(),
    };
    let plan = Plan::new(entries, desired);
    let map_users = plan
        .needs_write(previous.is_some())
        .then(|| yaml::render_list(&plan.proposed()));
    let (added, removed, changed) = changes(&plan.owned_before, &plan.owned_after);
    Ok(Merge {
        map_users,
        previous,
        added,
        removed,
        changed,
        entries: plan.unowned.len() + plan.owned_after.len(),
        conflicts: plan.conflicts,
    })
}

/// A unified diff of `mapUsers` for a dry run or a log line; `before` is `None` when absent.
pub fn unified_diff(cluster: &str, before: Option<&str>, after: &str) -> String {
    let before_header = match before {
        Some(_) => format!("{cluster}: kube-system/aws-auth {MAP_USERS} (current)"),
        None => format!("{cluster}: kube-system/aws-auth {MAP_USERS} (absent)"),
    };
    let after_header = format!("{cluster}: kube-system/aws-auth {MAP_USERS} (proposed)");
    similar::TextDiff::from_lines(before.unwrap_or(""), after)
        .unified_diff()
        .context_radius(3)
        .header(&before_header, &after_header)
        .to_string()
}

/// One `mapUsers` entry as found in the cluster.
#[derive(Debug, Clone)]
enum Entry {
    /// Somebody else's entry, kept verbatim. `arn` is its userarn, lowercased for matching.
    Unowned { arn: String, value: Value },
    /// An entry carrying this tool's marker and a valid user ARN.
    Owned { arn: UserArn, value: Value },
}

/// Validates every key the authenticator parses and returns the `mapUsers` entries.
fn parse_data(data: &BTreeMap<String, String>) -> Result<Vec<Entry>, AwsAuthError> {
    let mut map_users = Vec::new();
    for key in AUTHENTICATOR_KEYS {
        let Some(text) = data.get(key) else { continue };
        let items = parse_list(key, text)?;
        if key == MAP_USERS {
            map_users = items;
        }
    }
    map_users
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            parse_entry(item)
                .map_err(|detail| malformed(MAP_USERS, format!("item {}: {detail}", index + 1)))
        })
        .collect()
}

/// Parses a data value that must be a YAML list. An empty or comment-only value reads as null,
/// which the authenticator treats as an empty list, and so does this.
fn parse_list(key: &str, text: &str) -> Result<Vec<Value>, AwsAuthError> {
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Sequence(items)) => Ok(items),
        Ok(Value::Null) => Ok(Vec::new()),
        Ok(other) => Err(malformed(
            key,
            format!("expected a YAML list, found {}", kind(&other)),
        )),
        Err(err) => Err(malformed(key, format!("invalid YAML: {err}"))),
    }
}

fn parse_entry(value: Value) -> Result<Entry, String> {
    let Value::Mapping(map) = &value else {
        return Err(format!("expected a mapping, found {}", kind(&value)));
    };
    let arn = userarn(map)?.to_string();
    yaml::check_representable(&value)?;
    let marked = map.get(MANAGED_BY_KEY).and_then(Value::as_str) == Some(MANAGED_BY_VALUE);
    // A marker on something that is not a user ARN was not written by this tool; treating the
    // entry as someone else's is the choice that can never remove access.
    Ok(match UserArn::parse(&arn) {
        Ok(arn) if marked => Entry::Owned { arn, value },
        _ => Entry::Unowned {
            arn: arn.to_ascii_lowercase(),
            value,
        },
    })
}

/// The entry's userarn. The authenticator decodes entries with Go's JSON rules, which match
/// field names case-insensitively, so `userArn` counts too; two such keys are ambiguous.
fn userarn(map: &serde_yaml_ng::Mapping) -> Result<&str, String> {
    let mut found = map.iter().filter(|(key, _)| {
        key.as_str()
            .is_some_and(|k| k.eq_ignore_ascii_case(USERARN_KEY))
    });
    let (Some((_, value)), None) = (found.next(), found.next()) else {
        return Err(format!("expected exactly one `{USERARN_KEY}` key"));
    };
    value
        .as_str()
        .ok_or_else(|| format!("`{USERARN_KEY}` is {}, not a string", kind(value)))
}

fn malformed(key: &str, detail: String) -> AwsAuthError {
    AwsAuthError::Malformed {
        key: key.to_string(),
        detail,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The decisions of one merge, before rendering.
struct Plan {
    /// Entries this tool does not own, verbatim and in their order.
    unowned: Vec<Value>,
    /// The owned entries found, sorted by ARN: the baseline that tells a real change from a
    /// different layout.
    owned_before: Vec<(UserArn, Value)>,
    /// The owned entries to write, sorted by ARN.
    owned_after: Vec<(UserArn, Value)>,
    conflicts: Vec<UserArn>,
}

impl Plan {
    fn new(entries: Vec<Entry>, desired: &Desired) -> Self {
        let mut unowned = Vec::new();
        let mut unowned_arns = HashSet::new();
        for entry in &entries {
            if let Entry::Unowned { arn, value } = entry {
                unowned.push(value.clone());
                unowned_arns.insert(arn.as_str());
            }
        }
        let kept = kept_out_of_scope(&entries, desired);
        let (wanted, conflicts) = wanted_in_scope(desired, &unowned_arns);
        Self {
            owned_before: sorted_by_arn(owned_entries(&entries)),
            owned_after: sorted_by_arn(kept.into_iter().chain(wanted).collect()),
            unowned,
            conflicts,
        }
    }

    /// A write is needed when the owned entries change in meaning, never for formatting or
    /// layout alone (the unowned entries are the same on both sides by construction), and never
    /// just to create an empty list.
    fn needs_write(&self, map_users_exists: bool) -> bool {
        if !map_users_exists {
            return !self.owned_after.is_empty();
        }
        let meanings =
            |entries: &[(UserArn, Value)]| entries.iter().map(meaning).collect::<Vec<_>>();
        meanings(&self.owned_before) != meanings(&self.owned_after)
    }

    /// The new `mapUsers` entries in output layout.
    fn proposed(&self) -> Vec<Value> {
        let owned = self.owned_after.iter().map(|(_, value)| value.clone());
        self.unowned.iter().cloned().chain(owned).collect()
    }
}

/// What an owned entry means to the authenticator, so that a hand-reformatted entry (keys or
/// groups reordered, `groups` omitted when empty) is not rewritten. Entries with anything beyond
/// the fields this tool writes are compared as they are.
fn meaning((arn, value): &(UserArn, Value)) -> Value {
    let Some(map) = value.as_mapping() else {
        return value.clone();
    };
    let known = [USERARN_KEY, "username", "groups", MANAGED_BY_KEY];
    let only_known = map
        .keys()
        .all(|key| key.as_str().is_some_and(|key| known.contains(&key)));
    let username = map.get("username").and_then(Value::as_str);
    let groups: Option<Vec<&str>> = match map.get("groups") {
        None => Some(Vec::new()),
        Some(Value::Sequence(items)) => items.iter().map(Value::as_str).collect(),
        Some(_) => None,
    };
    match (only_known, username, groups) {
        (true, Some(username), Some(groups)) => owned_entry(arn, &Mapping::new(username, groups)),
        _ => value.clone(),
    }
}

fn owned_entries(entries: &[Entry]) -> Vec<(UserArn, Value)> {
    entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Owned { arn, value } => Some((arn.clone(), value.clone())),
            Entry::Unowned { .. } => None,
        })
        .collect()
}

/// Owned entries out of scope, one per ARN (the last, which is the one the authenticator uses),
/// without those shadowed by a later unowned entry.
fn kept_out_of_scope(entries: &[Entry], desired: &Desired) -> Vec<(UserArn, Value)> {
    let mut last_unowned: HashMap<&str, usize> = HashMap::new();
    for (position, entry) in entries.iter().enumerate() {
        if let Entry::Unowned { arn, .. } = entry {
            last_unowned.insert(arn.as_str(), position);
        }
    }
    let mut kept: BTreeMap<String, (UserArn, Value)> = BTreeMap::new();
    for (position, entry) in entries.iter().enumerate() {
        let Entry::Owned { arn, value } = entry else {
            continue;
        };
        if desired.in_scope(arn) {
            continue;
        }
        let key = arn.as_str().to_ascii_lowercase();
        if last_unowned
            .get(key.as_str())
            .is_some_and(|&later| later > position)
        {
            tracing::warn!(userarn = %arn, "dropping owned aws-auth entry shadowed by a later hand-made entry");
            continue;
        }
        kept.insert(key, (arn.clone(), value.clone()));
    }
    kept.into_values().collect()
}

/// The desired entries in scope that can be written, and the users whose ARN already has an
/// unowned entry (conflicts). ARNs differing only in case are one principal to the
/// authenticator, so only the first of them is written.
fn wanted_in_scope(
    desired: &Desired,
    unowned_arns: &HashSet<&str>,
) -> (Vec<(UserArn, Value)>, Vec<UserArn>) {
    let mut wanted = Vec::new();
    let mut conflicts = Vec::new();
    let mut seen = HashSet::new();
    for (arn, mapping) in &desired.entries {
        let key = arn.as_str().to_ascii_lowercase();
        if !desired.in_scope(arn) {
            tracing::warn!(userarn = %arn, "ignoring desired entry outside the scope of this run");
        } else if unowned_arns.contains(key.as_str()) {
            conflicts.push(arn.clone());
        } else if !seen.insert(key) {
            tracing::warn!(userarn = %arn, "ignoring desired entry that differs from another only in case");
        } else {
            wanted.push((arn.clone(), owned_entry(arn, mapping)));
        }
    }
    (wanted, conflicts)
}

/// The entry this tool writes, keys in a fixed order so the bytes are stable.
fn owned_entry(arn: &UserArn, mapping: &Mapping) -> Value {
    let mapping = mapping.normalized();
    let groups = mapping.groups.into_iter().map(Value::String).collect();
    let fields = [
        (USERARN_KEY, Value::String(arn.to_string())),
        ("username", Value::String(mapping.username)),
        ("groups", Value::Sequence(groups)),
        (MANAGED_BY_KEY, Value::String(MANAGED_BY_VALUE.to_string())),
    ];
    Value::Mapping(
        fields
            .into_iter()
            .map(|(key, value)| (Value::String(key.to_string()), value))
            .collect(),
    )
}

/// Stable sort by exact ARN, so output order never depends on input order.
fn sorted_by_arn(mut entries: Vec<(UserArn, Value)>) -> Vec<(UserArn, Value)> {
    entries.sort_by(|(a, _), (b, _)| a.cmp(b));
    entries
}

/// Added, removed and changed owned ARNs, each sorted. ARNs are grouped case-insensitively;
/// a change in meaning, or duplicates collapsing into one entry, count as a change.
fn changes(
    before: &[(UserArn, Value)],
    after: &[(UserArn, Value)],
) -> (Vec<UserArn>, Vec<UserArn>, Vec<UserArn>) {
    let group = |entries: &[(UserArn, Value)]| {
        let mut grouped: BTreeMap<String, (UserArn, Vec<Value>)> = BTreeMap::new();
        for entry @ (arn, _) in entries {
            let slot = grouped
                .entry(arn.as_str().to_ascii_lowercase())
                .or_insert_with(|| (arn.clone(), Vec::new()));
            slot.0 = arn.clone();
            slot.1.push(meaning(entry));
        }
        grouped
    };
    let (before, after) = (group(before), group(after));
    let mut added: Vec<UserArn> = after
        .iter()
        .filter(|(key, _)| !before.contains_key(*key))
        .map(|(_, (arn, _))| arn.clone())
        .collect();
    let mut removed: Vec<UserArn> = before
        .iter()
        .filter(|(key, _)| !after.contains_key(*key))
        .map(|(_, (arn, _))| arn.clone())
        .collect();
    let mut changed: Vec<UserArn> = after
        .iter()
        .filter(|(key, (_, values))| before.get(*key).is_some_and(|(_, old)| old != values))
        .map(|(_, (arn, _))| arn.clone())
        .collect();
    added.sort();
    removed.sort();
    changed.sort();
    (added, removed, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::Scope;

    const ACCOUNT: &str = "123456789012";

    fn arn(path_and_name: &str) -> UserArn {
        UserArn::parse(&format!("arn:aws:iam::{ACCOUNT}:user/{path_and_name}")).unwrap()
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn entries(list: &[(&str, &[&str])]) -> BTreeMap<UserArn, Mapping> {
        list.iter()
            .map(|(path_and_name, groups)| {
                let arn = arn(path_and_name);
                let mapping = Mapping::new(arn.user_name(), groups.iter().copied());
                (arn, mapping)
            })
            .collect()
    }

    fn for_users(names: &[&str], list: &[(&str, &[&str])]) -> Desired {
        Desired {
            scope: Scope::Users(names.iter().map(|n| n.to_string()).collect()),
            entries: entries(list),
        }
    }

    fn for_all(list: &[(&str, &[&str])]) -> Desired {
        Desired {
            scope: Scope::All,
            entries: entries(list),
        }
    }

    /// An entry as this tool writes it, for building cluster state.
    fn owned(path_and_name: &str, groups: &[&str]) -> String {
        let arn = arn(path_and_name);
        yaml::render_list(&[owned_entry(
            &arn,
            &Mapping::new(arn.user_name(), groups.iter().copied()),
        )])
    }

    const HAND_ENTRY: &str = "- userarn: arn:aws:iam::123456789012:user/admin\n  username: admin\n  groups:\n    - system:masters\n";

    fn merged(map_users: &str, desired: &Desired) -> Merge {
        merge(Some(&data(&[(MAP_USERS, map_users)])), desired).unwrap()
    }

    fn parsed(text: &str) -> Vec<Value> {
        match serde_yaml_ng::from_str(text).unwrap() {
            Value::Sequence(items) => items,
            other => panic!("not a list: {other:?}"),
        }
    }

    fn malformed_key(result: Result<Merge, AwsAuthError>) -> (String, String) {
        match result {
            Err(AwsAuthError::Malformed { key, detail }) => (key, detail),
            Ok(merge) => panic!("expected an error, got {merge:?}"),
        }
    }

    #[test]
    fn adds_a_desired_user_after_unowned_entries() {
        let result = merged(HAND_ENTRY, &for_users(&["alice"], &[("alice", &["devs"])]));
        assert_eq!(result.added, [arn("alice")]);
        assert_eq!(
            result.map_users.unwrap(),
            format!("{HAND_ENTRY}{}", owned("alice", &["devs"]))
        );
    }

    #[test]
    fn removes_an_owned_user_no_longer_desired() {
        let current = format!("{HAND_ENTRY}{}", owned("alice", &["devs"]));
        let result = merged(&current, &for_users(&["alice"], &[]));
        assert_eq!(result.removed, [arn("alice")]);
        assert_eq!(result.map_users.unwrap(), HAND_ENTRY);
    }

    #[test]
    fn narrows_groups_of_an_owned_user() {
        let current = owned("alice", &["admins", "devs"]);
        let result = merged(&current, &for_users(&["alice"], &[("alice", &["devs"])]));
        assert_eq!(result.changed, [arn("alice")]);
        assert!(result.added.is_empty() && result.removed.is_empty());
        assert_eq!(result.map_users.unwrap(), owned("alice", &["devs"]));
    }

    #[test]
    fn conflict_with_hand_entry_is_reported_and_left_alone() {
        let hand = "- userarn: ARN:AWS:IAM::123456789012:USER/ALICE\n  username: hand-made\n";
        let current = format!("{hand}{}", owned("alice", &["devs"]));
        let result = merged(&current, &for_all(&[("alice", &["devs"])]));
        assert_eq!(result.conflicts, [arn("alice")]);
        assert_eq!(
            result.removed,
            [arn("alice")],
            "no duplicate next to the hand entry"
        );
        assert_eq!(result.map_users.unwrap(), hand);
    }

    #[test]
    fn out_of_scope_owned_entry_is_untouched_under_users_scope() {
        let bob = "- groups: [ops]\n  userarn: arn:aws:iam::123456789012:user/bob\n  note: kept\n  managedBy: eks-iam-sync\n  username: bob\n";
        let result = merged(bob, &for_users(&["alice"], &[("alice", &["devs"])]));
        assert_eq!(result.added, [arn("alice")]);
        let output = parsed(&result.map_users.unwrap());
        assert_eq!(output[1], parsed(bob)[0]);
        let keys: Vec<_> = output[1].as_mapping().unwrap().keys().cloned().collect();
        let original_keys: Vec<_> = parsed(bob)[0]
            .as_mapping()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, original_keys, "field order kept");
    }

    #[test]
    fn scope_all_removes_departed_users() {
        let current = format!("{}{}", owned("alice", &["devs"]), owned("bob", &["ops"]));
        let result = merged(&current, &for_all(&[("alice", &["devs"])]));
        assert_eq!(result.removed, [arn("bob")]);
        assert_eq!(result.map_users.unwrap(), owned("alice", &["devs"]));
    }

    #[test]
    fn path_change_replaces_old_entry_under_users_scope() {
        let current = format!(
            "{}{}",
            owned("old/alice", &["devs"]),
            owned("bob", &["ops"])
        );
        let result = merged(
            &current,
            &for_users(&["alice"], &[("new/alice", &["devs"])]),
        );
        assert_eq!(result.added, [arn("new/alice")]);
        assert_eq!(result.removed, [arn("old/alice")]);
        assert_eq!(
            result.map_users.unwrap(),
            format!(
                "{}{}",
                owned("bob", &["ops"]),
                owned("new/alice", &["devs"])
            )
        );
    }

    #[test]
    fn malformed_map_roles_is_an_error_naming_key_and_location() {
        let broken = data(&[
            ("mapRoles", "- rolearn: x\n  groups: [a\n"),
            (MAP_USERS, "[]"),
        ]);
        let (key, detail) = malformed_key(merge(Some(&broken), &for_all(&[("alice", &[])])));
        assert_eq!(key, "mapRoles");
        assert!(detail.contains("line "), "{detail}");
        let message = AwsAuthError::Malformed { key, detail }.to_string();
        assert!(
            message.contains("`mapRoles`") && message.contains("refusing"),
            "{message}"
        );
    }

    #[test]
    fn malformed_map_users_is_an_error() {
        let (key, detail) = malformed_key(merge(
            Some(&data(&[(MAP_USERS, "- userarn: a\n username: b\n")])),
            &for_all(&[]),
        ));
        assert_eq!(key, MAP_USERS);
        assert!(detail.contains("line 2"), "{detail}");
    }

    #[test]
    fn malformed_map_accounts_is_an_error() {
        let broken = data(&[("mapAccounts", "- '123456789012\n")]);
        let (key, _) = malformed_key(merge(Some(&broken), &for_all(&[("alice", &[])])));
        assert_eq!(key, "mapAccounts");
    }

    #[test]
    fn non_list_map_users_is_an_error() {
        let (key, detail) = malformed_key(merge(
            Some(&data(&[(
                MAP_USERS,
                "userarn: arn:aws:iam::123456789012:user/x\n",
            )])),
            &for_all(&[]),
        ));
        assert_eq!(key, MAP_USERS);
        assert!(detail.contains("found a mapping"), "{detail}");
    }

    #[test]
    fn non_list_map_roles_is_an_error() {
        let (key, _) = malformed_key(merge(
            Some(&data(&[("mapRoles", "just text")])),
            &for_all(&[]),
        ));
        assert_eq!(key, "mapRoles");
    }

    #[test]
    fn map_users_entry_that_is_not_a_mapping_is_an_error() {
        let (_, detail) = malformed_key(merge(
            Some(&data(&[(
                MAP_USERS,
                "- arn:aws:iam::123456789012:user/x\n",
            )])),
            &for_all(&[]),
        ));
        assert!(detail.starts_with("item 1:"), "{detail}");
    }

    #[test]
    fn map_users_entry_without_string_userarn_is_an_error() {
        for text in [
            "- username: x\n",
            "- userarn: [a]\n",
            "- userarn: a\n  userArn: b\n",
        ] {
            let (key, _) = malformed_key(merge(Some(&data(&[(MAP_USERS, text)])), &for_all(&[])));
            assert_eq!(key, MAP_USERS, "{text}");
        }
    }

    #[test]
    fn absent_config_map_creates_map_users() {
        let result = merge(None, &for_all(&[("alice", &["devs"])])).unwrap();
        assert_eq!(result.previous, None);
        assert_eq!(result.map_users.unwrap(), owned("alice", &["devs"]));
    }

    #[test]
    fn absent_config_map_with_nobody_desired_writes_nothing() {
        assert_eq!(merge(None, &for_all(&[])).unwrap().map_users, None);
        let roles_only = data(&[("mapRoles", "[]")]);
        assert_eq!(
            merge(Some(&roles_only), &for_all(&[])).unwrap().map_users,
            None
        );
    }

    #[test]
    fn empty_map_users_is_accepted_and_kept_as_empty_list() {
        for empty in ["", "[]", "# nothing yet\n"] {
            assert_eq!(merged(empty, &for_all(&[])).map_users, None, "{empty:?}");
            let added = merged(empty, &for_all(&[("alice", &[])]));
            assert_eq!(added.map_users.unwrap(), owned("alice", &[]));
        }
        let emptied = merged(&owned("alice", &[]), &for_all(&[]));
        assert_eq!(emptied.map_users.as_deref(), Some("[]\n"));
    }

    #[test]
    fn no_change_yields_none_even_for_hand_formatted_yaml() {
        let current = format!(
            "# edited by hand\n- {{managedBy: eks-iam-sync, groups: [devs, admins], username: alice, userarn: 'arn:aws:iam::{ACCOUNT}:user/alice'}}\n{HAND_ENTRY}"
        );
        let result = merged(&current, &for_all(&[("alice", &["admins", "devs"])]));
        assert_eq!(
            result,
            Merge {
                previous: Some(current),
                entries: 2,
                ..Merge::default()
            }
        );
    }

    #[test]
    fn merging_the_output_again_changes_nothing() {
        let desired = for_all(&[("alice", &["devs"]), ("bob", &[])]);
        let first = merged(HAND_ENTRY, &desired).map_users.unwrap();
        assert_eq!(merged(&first, &desired).map_users, None);
    }

    #[test]
    fn unknown_fields_in_unowned_entries_survive() {
        let hand = "- userid: AIDAEXAMPLE\n  username: '{{SessionName}}'\n  userarn: arn:aws:iam::123456789012:user/admin\n  sso:\n    permissionSetName: Admin\n    accountID: '123456789012'\n  flag: 'on'\n  managedBy: terraform\n";
        let result = merged(hand, &for_all(&[("alice", &[])]));
        let output = result.map_users.unwrap();
        assert_eq!(parsed(&output)[0], parsed(hand)[0]);
        assert!(
            output.contains("flag: \"on\""),
            "YAML 1.1 boolean word stays quoted:\n{output}"
        );
    }

    #[test]
    fn duplicate_owned_entries_collapse_to_one() {
        let current = format!("{}{}", owned("bob", &["a"]), owned("bob", &["b"]));
        let in_scope = merged(&current, &for_all(&[("bob", &["b"])]));
        assert_eq!(in_scope.changed, [arn("bob")]);
        assert_eq!(in_scope.map_users.unwrap(), owned("bob", &["b"]));
        let out_of_scope = merged(&current, &for_users(&["alice"], &[]));
        assert_eq!(
            out_of_scope.map_users.unwrap(),
            owned("bob", &["b"]),
            "last one wins"
        );
    }

    #[test]
    fn desired_arns_differing_only_in_case_become_one_entry() {
        let desired = for_all(&[("Alice", &["a"]), ("alice", &["b"])]);
        let result = merge(None, &desired).unwrap();
        assert_eq!(result.added, [arn("Alice")]);
        assert_eq!(result.map_users.unwrap(), owned("Alice", &["a"]));
    }

    #[test]
    fn desired_entries_outside_the_scope_are_ignored() {
        let result = merge(None, &for_users(&["alice"], &[("bob", &[])])).unwrap();
        assert_eq!(result, Merge::default());
    }

    #[test]
    fn marker_on_a_non_user_arn_is_treated_as_unowned() {
        let odd = "- userarn: arn:aws:iam::123456789012:role/x\n  managedBy: eks-iam-sync\n";
        let result = merged(odd, &for_all(&[]));
        assert_eq!(result.map_users, None);
        assert!(result.removed.is_empty());
    }

    #[test]
    fn shadowed_out_of_scope_owned_entry_is_dropped_not_moved_behind_the_hand_entry() {
        let hand = "- userarn: arn:aws:iam::123456789012:user/bob\n  username: hand-made\n";
        let current = format!("{}{hand}", owned("bob", &["ops"]));
        let result = merged(&current, &for_users(&["alice"], &[]));
        assert_eq!(result.removed, [arn("bob")]);
        assert_eq!(result.map_users.unwrap(), hand);
    }

    #[test]
    fn other_data_keys_only_need_to_parse() {
        let current = data(&[
            ("mapRoles", "- rolearn: arn:aws:iam::123456789012:role/node\n  username: system:node:{{EC2PrivateDNSName}}\n"),
            ("mapAccounts", "- '123456789012'\n"),
            ("custom", "this: is [not checked"),
        ]);
        let result = merge(Some(&current), &for_all(&[("alice", &[])])).unwrap();
        assert_eq!(result.map_users.unwrap(), owned("alice", &[]));
    }

    #[test]
    fn unified_diff_is_readable() {
        let before = owned("alice", &["admins", "devs"]);
        let after = owned("alice", &["devs"]);
        let diff = unified_diff("prod-eu", Some(&before), &after);
        assert!(diff.starts_with(
            "--- prod-eu: kube-system/aws-auth mapUsers (current)\n+++ prod-eu: kube-system/aws-auth mapUsers (proposed)\n@@ "
        ), "{diff}");
        assert!(diff.contains("\n-    - admins\n"), "{diff}");
        let created = unified_diff("dev", None, &after);
        assert!(
            created.contains("(absent)") && created.contains("+  managedBy: eks-iam-sync\n"),
            "{created}"
        );
        assert_eq!(diff, unified_diff("prod-eu", Some(&before), &after));
    }

    /// Random cluster states and desired sets; see the `properties` below for what must hold.
    mod properties {
        use proptest::prelude::*;

        use super::*;

        const NAMES: [&str; 4] = ["alice", "bob", "carol", "Dave"];
        const PATHS: [&str; 3] = ["", "dev/", "ops/"];

        fn pool_arn() -> impl Strategy<Value = UserArn> {
            (0..NAMES.len(), 0..PATHS.len())
                .prop_map(|(name, path)| arn(&format!("{}{}", PATHS[path], NAMES[name])))
        }

        fn key(name: &str) -> Value {
            Value::String(name.to_string())
        }

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z:{}.@-]{1,12}",
                Just("{{SessionName}}".to_string()),
                Just("on".to_string()),
                Just("0123".to_string()),
                any::<String>(),
            ]
        }

        fn unknown_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                text().prop_map(Value::String),
                any::<i64>().prop_map(Value::from),
                any::<bool>().prop_map(Value::Bool),
                Just(Value::Null),
            ];
            let sso = ("[A-Za-z]{1,10}", "[0-9]{12}").prop_map(|(set, account)| {
                Value::Mapping(
                    [
                        (key("permissionSetName"), Value::String(set)),
                        (key("accountID"), Value::String(account)),
                        (key("partition"), Value::String("aws".into())),
                    ]
                    .into_iter()
                    .collect(),
                )
            });
            prop_oneof![
                3 => leaf.clone(),
                1 => sso,
                1 => prop::collection::vec(leaf, 0..3).prop_map(Value::Sequence),
            ]
        }

        fn groups() -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec(
                prop_oneof![Just("system:masters".to_string()), "[a-z]{1,6}"],
                0..3,
            )
        }

        /// A hand-made entry: any userarn (sometimes a pool user, in any case, to make
        /// conflicts), optional userid, unknown fields, fields in any order.
        fn unowned_entry() -> impl Strategy<Value = Value> {
            let userarn = prop_oneof![
                (pool_arn(), any::<bool>()).prop_map(|(arn, upper)| if upper {
                    arn.as_str().to_uppercase()
                } else {
                    arn.to_string()
                }),
                "arn:aws:iam::[0-9]{12}:role/[a-z]{1,8}",
                text(),
            ];
            (
                userarn,
                text(),
                proptest::option::of(groups()),
                proptest::option::of("AIDA[A-Z0-9]{8}"),
                prop::collection::vec(("x-[a-z]{1,6}", unknown_value()), 0..3),
                any::<bool>(),
            )
                .prop_flat_map(
                    |(userarn, username, groups, userid, extras, foreign_marker)| {
                        let mut fields = vec![
                            (key(USERARN_KEY), Value::String(userarn)),
                            (key("username"), Value::String(username)),
                        ];
                        if let Some(groups) = groups {
                            let groups = groups.into_iter().map(Value::String).collect();
                            fields.push((key("groups"), Value::Sequence(groups)));
                        }
                        if let Some(userid) = userid {
                            fields.push((key("userid"), Value::String(userid)));
                        }
                        if foreign_marker {
                            fields.push((key(MANAGED_BY_KEY), key("terraform")));
                        }
                        fields.extend(extras.into_iter().map(|(k, v)| (Value::String(k), v)));
                        Just(fields).prop_shuffle()
                    },
                )
                .prop_map(|fields| Value::Mapping(fields.into_iter().collect()))
        }

        /// An entry this tool wrote earlier, possibly stale, possibly reformatted by hand.
        fn owned_entry_value() -> impl Strategy<Value = Value> {
            (pool_arn(), groups())
                .prop_flat_map(|(arn, groups)| {
                    let mapping = Mapping::new(arn.user_name(), groups);
                    let Value::Mapping(map) = owned_entry(&arn, &mapping) else {
                        unreachable!()
                    };
                    Just(map.into_iter().collect::<Vec<_>>()).prop_shuffle()
                })
                .prop_map(|fields| Value::Mapping(fields.into_iter().collect()))
        }

        fn role_entry() -> impl Strategy<Value = Value> {
            ("[a-z]{1,8}", unknown_value()).prop_map(|(role, extra)| {
                Value::Mapping(
                    [
                        (
                            key("rolearn"),
                            Value::String(format!("arn:aws:iam::{ACCOUNT}:role/{role}")),
                        ),
                        (key("username"), key("system:node:{{EC2PrivateDNSName}}")),
                        (key("sso"), extra),
                    ]
                    .into_iter()
                    .collect(),
                )
            })
        }

        fn yaml_text(items: Vec<Value>) -> String {
            serde_yaml_ng::to_string(&Value::Sequence(items)).unwrap()
        }

        /// A ConfigMap (or its absence) whose mapUsers mixes unowned and owned entries.
        fn cluster_data() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
            let map_users = (
                prop::collection::vec(unowned_entry(), 0..5),
                prop::collection::vec(owned_entry_value(), 0..5),
            )
                .prop_flat_map(|(unowned, owned)| {
                    Just(unowned.into_iter().chain(owned).collect::<Vec<_>>()).prop_shuffle()
                })
                .prop_map(yaml_text);
            let accounts = prop::collection::vec("[0-9]{12}".prop_map(Value::String), 0..3)
                .prop_map(yaml_text);
            let data = (
                proptest::option::of(map_users),
                proptest::option::of(prop::collection::vec(role_entry(), 0..3).prop_map(yaml_text)),
                proptest::option::of(accounts),
                prop::collection::btree_map("extra-[a-z]{1,5}", any::<String>(), 0..2),
            )
                .prop_map(|(users, roles, accounts, mut data)| {
                    let keys = [MAP_USERS, "mapRoles", "mapAccounts"];
                    for (key, value) in keys.into_iter().zip([users, roles, accounts]) {
                        if let Some(value) = value {
                            data.insert(key.to_string(), value);
                        }
                    }
                    data
                });
            proptest::option::weighted(0.9, data)
        }

        fn desired_list() -> impl Strategy<Value = (Scope, Vec<(UserArn, Mapping)>)> {
            let scope = prop_oneof![
                Just(Scope::All),
                prop::sample::subsequence(NAMES.to_vec(), 0..=NAMES.len())
                    .prop_map(|names| Scope::Users(names.into_iter().map(String::from).collect())),
            ];
            // Unique ARNs, in random insertion order.
            let entries =
                prop::collection::btree_map(pool_arn(), groups(), 0..6).prop_flat_map(|entries| {
                    let list: Vec<(UserArn, Mapping)> = entries
                        .into_iter()
                        .map(|(arn, groups)| {
                            let mapping = Mapping::new(arn.user_name(), groups);
                            (arn, mapping)
                        })
                        .collect();
                    Just(list).prop_shuffle()
                });
            (scope, entries)
        }

        fn is_owned(entry: &Value) -> bool {
            entry.get(MANAGED_BY_KEY).and_then(Value::as_str) == Some(MANAGED_BY_VALUE)
        }

        fn lower_userarn(entry: &Value) -> String {
            entry[USERARN_KEY].as_str().unwrap().to_ascii_lowercase()
        }

        /// The mapUsers entries after applying `result` to `current`.
        fn effective(result: &Merge) -> Vec<Value> {
            result
                .map_users
                .as_deref()
                .or(result.previous.as_deref())
                .map(|text| serde_yaml_ng::from_str::<Value>(text).unwrap())
                .and_then(|value| value.as_sequence().cloned())
                .unwrap_or_default()
        }

        fn current_entries(data: &Option<BTreeMap<String, String>>) -> Vec<Value> {
            data.as_ref()
                .and_then(|data| data.get(MAP_USERS))
                .map(|text| parsed(text))
                .unwrap_or_default()
        }

        fn apply(
            data: &Option<BTreeMap<String, String>>,
            result: &Merge,
        ) -> BTreeMap<String, String> {
            let mut data = data.clone().unwrap_or_default();
            if let Some(map_users) = &result.map_users {
                data.insert(MAP_USERS.to_string(), map_users.clone());
            }
            data
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(192))]

            #[test]
            fn unowned_entries_survive_unchanged_and_in_order(
                data in cluster_data(), (scope, list) in desired_list()
            ) {
                let desired = Desired { scope, entries: list.into_iter().collect() };
                let result = merge(data.as_ref(), &desired).unwrap();
                let unowned = |entries: Vec<Value>| -> Vec<Value> {
                    entries.into_iter().filter(|e| !is_owned(e)).collect()
                };
                prop_assert_eq!(unowned(effective(&result)), unowned(current_entries(&data)));
            }

            #[test]
            fn output_is_deterministic(
                data in cluster_data(), (scope, list) in desired_list()
            ) {
                let forward = Desired { scope: scope.clone(), entries: list.iter().cloned().collect() };
                let backward = Desired { scope, entries: list.into_iter().rev().collect() };
                let first = merge(data.as_ref(), &forward).unwrap();
                prop_assert_eq!(&first, &merge(data.as_ref(), &forward).unwrap());
                prop_assert_eq!(&first, &merge(data.as_ref(), &backward).unwrap());
                // A write lays entries out canonically; no write leaves the layout as found.
                let Some(written) = first.map_users.as_deref() else { return Ok(()) };
                let output = parsed(written);
                let owned_start = output.iter().position(is_owned).unwrap_or(output.len());
                prop_assert!(output[owned_start..].iter().all(is_owned), "owned entries come last");
                let arns: Vec<&str> = output[owned_start..]
                    .iter()
                    .map(|e| e[USERARN_KEY].as_str().unwrap())
                    .collect();
                prop_assert!(arns.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates: {:?}", arns);
            }

            #[test]
            fn applying_twice_equals_applying_once(
                data in cluster_data(), (scope, list) in desired_list()
            ) {
                let desired = Desired { scope, entries: list.into_iter().collect() };
                let once = merge(data.as_ref(), &desired).unwrap();
                let applied = apply(&data, &once);
                let twice = merge(Some(&applied), &desired).unwrap();
                prop_assert_eq!(twice.map_users, None);
                prop_assert!(twice.added.is_empty() && twice.removed.is_empty() && twice.changed.is_empty());
                prop_assert_eq!(twice.conflicts, once.conflicts);
            }

            #[test]
            fn output_holds_exactly_the_desired_in_scope_users_minus_conflicts(
                data in cluster_data(), (scope, list) in desired_list()
            ) {
                let desired = Desired { scope, entries: list.into_iter().collect() };
                let result = merge(data.as_ref(), &desired).unwrap();
                let current = current_entries(&data);
                let unowned_arns: HashSet<String> = current
                    .iter()
                    .filter(|e| !is_owned(e))
                    .map(lower_userarn)
                    .collect();
                let in_scope = |entry: &Value| {
                    desired.in_scope(&UserArn::parse(entry[USERARN_KEY].as_str().unwrap()).unwrap())
                };
                let owned_in_scope: BTreeMap<String, Value> = effective(&result)
                    .into_iter()
                    .filter(|e| is_owned(e) && in_scope(e))
                    .map(|e| (lower_userarn(&e), e))
                    .collect();
                let mut expected = BTreeMap::new();
                let mut conflicts = Vec::new();
                for (arn, mapping) in desired.entries.iter().filter(|(arn, _)| desired.in_scope(arn)) {
                    let lower = arn.as_str().to_ascii_lowercase();
                    if unowned_arns.contains(&lower) {
                        conflicts.push(arn.clone());
                    } else {
                        expected.insert(lower, owned_entry(arn, mapping));
                    }
                }
                prop_assert_eq!(owned_in_scope, expected);
                prop_assert_eq!(result.conflicts, conflicts);
            }

            #[test]
            fn out_of_scope_owned_entries_stay_unless_shadowed(
                data in cluster_data(), (scope, list) in desired_list()
            ) {
                let desired = Desired { scope, entries: list.into_iter().collect() };
                let result = merge(data.as_ref(), &desired).unwrap();
                let current = current_entries(&data);
                let mut expected = BTreeMap::new();
                for (position, entry) in current.iter().enumerate() {
                    let arn = UserArn::parse(entry[USERARN_KEY].as_str().unwrap_or_default());
                    let Ok(arn) = arn else { continue };
                    if !is_owned(entry) || desired.in_scope(&arn) {
                        continue;
                    }
                    let lower = lower_userarn(entry);
                    let shadowed = current[position + 1..]
                        .iter()
                        .any(|later| !is_owned(later) && lower_userarn(later) == lower);
                    if shadowed {
                        expected.remove(&lower);
                    } else {
                        expected.insert(lower, entry.clone());
                    }
                }
                let kept: BTreeMap<String, Value> = effective(&result)
                    .into_iter()
                    .filter(|e| is_owned(e) && !desired.in_scope(&UserArn::parse(e[USERARN_KEY].as_str().unwrap()).unwrap()))
                    .map(|e| (lower_userarn(&e), e))
                    .collect();
                prop_assert_eq!(kept, expected);
            }
        }
    }
}
