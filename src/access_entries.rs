//! The pure plan of one cluster's EKS access entries: which to create, update and delete so the
//! cluster holds what IAM says, touching only entries this tool owns. No I/O: the writer
//! (`sync::access_entries`) lists the entries, describes those [`needs_describe`] selects, calls
//! [`plan`], and makes exactly the calls the plan holds (none when it is empty).
//!
//! The rules mirror the aws-auth merge ([`crate::aws_auth`]):
//! - Ownership is recorded on the entry itself, by the tag [`MANAGED_TAG_KEY`]`=`
//!   [`MANAGED_TAG_VALUE`] that the tool sets when it creates the entry. Entries without it are
//!   never updated or deleted; a desired user who already has one is a conflict, left alone.
//! - Only IAM user principals are considered: role entries (nodes, the function itself, admins)
//!   are never read beyond ListAccessEntries, let alone changed.
//! - Only entries in the run's [`Scope`](crate::desired::Scope) are decided about, so a user event
//!   cannot remove anyone else's entry.
//! - An entry works only for the principal it was made for: EKS stores the IAM user's unique
//!   id with the entry, and a user deleted and recreated under the same name (same ARN) has a
//!   new one, so the old entry silently stops working for them. The tool records the id it
//!   created each entry for in the tag [`PRINCIPAL_ID_TAG_KEY`] and *replaces* (deletes, then
//!   creates) an owned entry whose recorded id is not the one IAM reports now, or which
//!   records none (made by a version before the tag), since only a new entry is sure to be
//!   bound to the current principal.
//! - Deterministic and idempotent: the plan of a cluster the plan was applied to is empty.
//!
//! ```
//! use std::collections::BTreeMap;
//! use eks_iam_sync::access_entries::{plan, ExistingEntry};
//! use eks_iam_sync::desired::{Desired, Mapping, Scope, UserArn};
//!
//! let alice = UserArn::parse("arn:aws:iam::123456789012:user/alice").unwrap();
//! let desired = Desired {
//!     scope: Scope::All,
//!     entries: BTreeMap::from([(alice.clone(), Mapping::new("alice", ["developers"]))]),
//! };
//! let hand_made = ExistingEntry::unowned("arn:aws:iam::123456789012:user/bob", "bob", ["ops"]);
//! let first = plan(&[hand_made.clone()], &desired).unwrap();
//! assert_eq!(first.create, [(alice.clone(), desired.entries[&alice].clone())]);
//! assert!(first.delete.is_empty(), "bob's hand-made entry is not ours");
//!
//! let created = ExistingEntry::owned(alice.as_str(), "alice", ["developers"]);
//! assert!(plan(&[hand_made, created], &desired).unwrap().is_empty());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::desired::{Desired, Mapping, Principal, UserArn};
use crate::installation::Installation;

/// The tag key that marks an access entry as this tool's. Set at creation (CreateAccessEntry
/// carries tags), so an entry is never ours without it.
pub const MANAGED_TAG_KEY: &str = "eks-iam-sync/managed";
/// The tag value of the installation without an id, and of entries created before
/// installations existed; an installation with an id tags with the id
/// ([`Installation::tag_value`]). Any value not this installation's means someone else's entry.
pub const MANAGED_TAG_VALUE: &str = crate::installation::LEGACY_TAG_VALUE;
/// The tag key holding the IAM user id (`AIDA...`) an owned entry was created for, set in the
/// same CreateAccessEntry call as [`MANAGED_TAG_KEY`]. EKS binds the entry to that id and never
/// shows it, so this tag is the only way to tell later whether the entry still works.
pub const PRINCIPAL_ID_TAG_KEY: &str = "eks-iam-sync/principal-id";
/// The entry type of a user mapped to Kubernetes groups.
pub const STANDARD: &str = "STANDARD";
/// Prefixes EKS refuses in an access entry's user name and Kubernetes groups.
pub const RESERVED_PREFIXES: [&str; 5] = ["system:", "eks:", "aws:", "amazon:", "iam:"];

/// An access entry as DescribeAccessEntry returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingEntry {
    pub principal_arn: String,
    /// EKS fills in a generated user name when none was given; `None` only if it omits it.
    pub username: Option<String>,
    pub kubernetes_groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

impl ExistingEntry {
    /// An entry carrying the ownership tag of the installation without an id, as this tool
    /// created it before installations existed.
    pub fn owned<G: Into<String>>(
        principal: &str,
        username: &str,
        groups: impl IntoIterator<Item = G>,
    ) -> Self {
        Self::owned_by(principal, username, groups, &Installation::legacy())
    }

    /// An entry carrying `owner`'s ownership tag, as that installation creates it.
    pub fn owned_by<G: Into<String>>(
        principal: &str,
        username: &str,
        groups: impl IntoIterator<Item = G>,
        owner: &Installation,
    ) -> Self {
        let mut entry = Self::unowned(principal, username, groups);
        entry
            .tags
            .insert(MANAGED_TAG_KEY.to_owned(), owner.tag_value());
        entry
    }

    /// An entry without the ownership tag, as a person or another tool creates it.
    pub fn unowned<G: Into<String>>(
        principal: &str,
        username: &str,
        groups: impl IntoIterator<Item = G>,
    ) -> Self {
        Self {
            principal_arn: principal.to_owned(),
            username: Some(username.to_owned()),
            kubernetes_groups: groups.into_iter().map(Into::into).collect(),
            tags: BTreeMap::new(),
        }
    }

    /// Whether the entry carries the ownership tag of the installation without an id.
    pub fn is_owned(&self) -> bool {
        self.is_owned_by(&Installation::legacy())
    }

    /// Whether the entry carries `installation`'s ownership tag.
    pub fn is_owned_by(&self, installation: &Installation) -> bool {
        self.tags
            .get(MANAGED_TAG_KEY)
            .is_some_and(|value| installation.owns_tag_value(value))
    }

    /// The same entry, recording that it was made for the IAM principal with unique id `id`.
    pub fn for_principal(mut self, id: &str) -> Self {
        self.tags
            .insert(PRINCIPAL_ID_TAG_KEY.to_owned(), id.to_owned());
        self
    }

    /// The IAM user id the entry records it was made for ([`PRINCIPAL_ID_TAG_KEY`]).
    pub fn principal_id(&self) -> Option<&str> {
        self.tags.get(PRINCIPAL_ID_TAG_KEY).map(String::as_str)
    }

    /// What the entry grants, normalised so it compares equal to an equal [`Mapping`], with
    /// the principal id it records.
    pub fn mapping(&self) -> Mapping {
        Mapping {
            principal_id: self.principal_id().map(str::to_owned),
            ..Mapping::new(
                self.username.clone().unwrap_or_default(),
                self.kubernetes_groups.iter().cloned(),
            )
        }
    }
}

/// An owned entry whose user name or groups change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The principal ARN as EKS holds it (the key for UpdateAccessEntry).
    pub principal: String,
    pub before: Mapping,
    pub after: Mapping,
}

/// Why an owned entry of a desired user is deleted and created again rather than updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceReason {
    /// The entry records another IAM user id: the user was deleted and recreated with the same
    /// name, and EKS no longer lets the entry authenticate them.
    Recreated { before: String, after: String },
    /// The entry records no id (made before the tool recorded it), so nothing says it is bound
    /// to the current principal; a new entry is.
    Unrecorded { after: String },
}

impl fmt::Display for ReplaceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Recreated { before, after } => {
                write!(f, "recreated IAM user: principal id {before} -> {after}")
            }
            Self::Unrecorded { after } => {
                write!(f, "no principal id recorded: made again for {after}")
            }
        }
    }
}

/// An owned entry deleted and created again for the same ARN, so that EKS binds it to the
/// principal IAM reports now. The delete comes first: EKS holds one entry per principal ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement<P = UserArn> {
    /// The principal ARN as EKS holds it (the key for DeleteAccessEntry).
    pub principal: String,
    pub before: Mapping,
    /// The ARN the new entry is created with, and its mapping (with the new principal id).
    pub arn: P,
    pub after: Mapping,
    pub reason: ReplaceReason,
}

/// An owned entry that goes: its user left every mapped group, was deleted, or moved to another
/// IAM path (the entry under the new ARN is created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub principal: String,
    pub before: Mapping,
}

/// What to do to one cluster. Conflicts need no call; they are reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<P = UserArn> {
    /// New entries, sorted by ARN, each created with the ownership tag.
    pub create: Vec<(P, Mapping)>,
    /// Sorted by desired ARN.
    pub update: Vec<Update>,
    /// Sorted by principal.
    pub delete: Vec<Removal>,
    /// Sorted by desired ARN: entries bound to a principal IAM no longer has under that ARN.
    pub replace: Vec<Replacement<P>>,
    /// Desired principals who already have an entry without the ownership tag; left as they are.
    pub conflicts: Vec<P>,
}

impl<P> Default for Plan<P> {
    fn default() -> Self {
        Plan {
            create: Vec::new(),
            update: Vec::new(),
            delete: Vec::new(),
            replace: Vec::new(),
            conflicts: Vec::new(),
        }
    }
}

/// The first line of a cluster's access-entry diff.
pub fn diff_header(cluster: &str) -> String {
    format!("{cluster}: access entries\n")
}

impl<P: Principal> Plan<P> {
    /// Whether the plan makes no call: nothing to create, update or delete.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && self.update.is_empty()
            && self.delete.is_empty()
            && self.replace.is_empty()
    }

    /// The plan as a readable diff, for a dry run.
    pub fn render(&self, cluster: &str) -> String {
        diff_header(cluster) + &self.render_changes()
    }

    /// The plan's lines of the diff, without the cluster's header: one cluster's user and role
    /// plans share one header.
    pub fn render_changes(&self) -> String {
        let mut text = String::new();
        for (arn, mapping) in &self.create {
            text.push_str(&format!("+ {arn} {}\n", show(mapping)));
        }
        for update in &self.update {
            text.push_str(&format!(
                "~ {} {} -> {}\n",
                update.principal,
                show(&update.before),
                show(&update.after)
            ));
        }
        for removal in &self.delete {
            text.push_str(&format!(
                "- {} {}\n",
                removal.principal,
                show(&removal.before)
            ));
        }
        for replacement in &self.replace {
            text.push_str(&format!(
                "! {} {} -> {} ({})\n",
                replacement.principal,
                show(&replacement.before),
                show(&replacement.after),
                replacement.reason
            ));
        }
        text
    }
}

fn show(mapping: &Mapping) -> String {
    format!(
        "username={} groups=[{}]",
        mapping.username,
        mapping.groups.join(",")
    )
}

/// A desired mapping EKS would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The principal's ARN.
    pub principal: String,
    /// `user name` or `Kubernetes group`.
    pub what: &'static str,
    pub value: String,
    pub prefix: &'static str,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {:?} starts with {}",
            self.principal, self.what, self.value, self.prefix
        )
    }
}

/// Why no plan was made; nothing is written to the cluster then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Some desired user name or group has a prefix EKS refuses in access entries. The config
    /// check catches this for clusters configured `accessEntries`; an `auto` cluster learns at
    /// run time that it uses access entries, and fails here rather than half-applying.
    #[error("EKS refuses these in access entries (reserved prefixes {}): {}", RESERVED_PREFIXES.join(" "), join(refusals))]
    Reserved { refusals: Vec<Refusal> },
}

fn join(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether the entry of `principal` (from ListAccessEntries) must be described for this run:
/// only IAM users this run decides about. Every other entry is irrelevant to [`plan`], so
/// leaving it undescribed saves a call per entry without changing the plan.
pub fn needs_describe<P: Principal>(principal: &str, desired: &Desired<P>) -> bool {
    match P::parse_principal(principal) {
        Some(arn) => desired.in_scope(&arn) || desired.entries.keys().any(|d| d.matches(principal)),
        None => false,
    }
}

/// Plans the calls that bring `current` (the described entries; others may be left out, see
/// [`needs_describe`]) in step with `desired`.
///
/// One planner for both kinds of principal: IAM users (`Desired`) and IAM roles
/// (`Desired<RoleArn>`); entries of the other kind are not looked at.
pub fn plan<P: Principal>(
    current: &[ExistingEntry],
    desired: &Desired<P>,
) -> Result<Plan<P>, PlanError> {
    plan_as(&Installation::legacy(), current, desired)
}

/// [`plan`] as `installation`: only entries with its tag value are its own; another
/// installation's entry is someone else's.
pub fn plan_as<P: Principal>(
    installation: &Installation,
    current: &[ExistingEntry],
    desired: &Desired<P>,
) -> Result<Plan<P>, PlanError> {
    let refusals = refusals(desired);
    if !refusals.is_empty() {
        return Err(PlanError::Reserved { refusals });
    }
    // Only principals of this kind are ours to decide about here.
    let users: Vec<(P, &ExistingEntry)> = current
        .iter()
        .filter_map(|entry| P::parse_principal(&entry.principal_arn).map(|arn| (arn, entry)))
        .collect();
    let mut plan = Plan::default();
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    for (arn, mapping) in &desired.entries {
        let matching: Vec<&ExistingEntry> = users
            .iter()
            .filter(|(_, entry)| arn.matches(&entry.principal_arn))
            .map(|(_, entry)| *entry)
            .collect();
        if matching
            .iter()
            .any(|entry| !entry.is_owned_by(installation))
        {
            plan.conflicts.push(arn.clone());
            continue;
        }
        match matching.first() {
            // Further owned entries for the same principal (EKS keeps one; a case variant at
            // most) are not kept, so they go below.
            Some(entry) => {
                kept.insert(&entry.principal_arn);
                let before = entry.mapping();
                let after = mapping.normalized();
                if let Some(reason) = replace_reason(entry, mapping) {
                    plan.replace.push(Replacement {
                        principal: entry.principal_arn.clone(),
                        before,
                        arn: arn.clone(),
                        after,
                        reason,
                    });
                } else if !before.grants_same(&after) {
                    plan.update.push(Update {
                        principal: entry.principal_arn.clone(),
                        before,
                        after,
                    });
                }
            }
            None => plan.create.push((arn.clone(), mapping.normalized())),
        }
    }
    for (arn, entry) in &users {
        // A user in conflict is left alone entirely, owned case variants included.
        let conflicting = plan
            .conflicts
            .iter()
            .any(|c| c.matches(&entry.principal_arn));
        if entry.is_owned_by(installation)
            && desired.in_scope(arn)
            && !kept.contains(entry.principal_arn.as_str())
            && !conflicting
        {
            plan.delete.push(Removal {
                principal: entry.principal_arn.clone(),
                before: entry.mapping(),
            });
        }
    }
    plan.delete.sort_by(|a, b| a.principal.cmp(&b.principal));
    plan.delete.dedup_by(|a, b| a.principal == b.principal);
    Ok(plan)
}

/// Why the owned `entry` cannot serve `wanted` as it is, if it cannot. Without a desired id
/// (a caller that does not know it) nothing is decided by id.
fn replace_reason(entry: &ExistingEntry, wanted: &Mapping) -> Option<ReplaceReason> {
    let after = wanted.principal_id.as_deref()?;
    match entry.principal_id() {
        Some(before) if before == after => None,
        Some(before) => Some(ReplaceReason::Recreated {
            before: before.to_owned(),
            after: after.to_owned(),
        }),
        None => Some(ReplaceReason::Unrecorded {
            after: after.to_owned(),
        }),
    }
}

/// Every desired user name and group EKS would refuse.
fn refusals<P: Principal>(desired: &Desired<P>) -> Vec<Refusal> {
    let reserved = |value: &str| {
        RESERVED_PREFIXES
            .iter()
            .copied()
            .find(|prefix| value.starts_with(prefix))
    };
    let mut refusals = Vec::new();
    for (arn, mapping) in &desired.entries {
        let names = std::iter::once(("user name", &mapping.username))
            .chain(mapping.groups.iter().map(|g| ("Kubernetes group", g)));
        for (what, value) in names {
            if let Some(prefix) = reserved(value) {
                refusals.push(Refusal {
                    principal: arn.to_string(),
                    what,
                    value: value.clone(),
                    prefix,
                });
            }
        }
    }
    refusals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::Scope;

    const ACCOUNT: &str = "123456789012";

    fn arn(name: &str) -> UserArn {
        UserArn::parse(&format!("arn:aws:iam::{ACCOUNT}:user/{name}")).unwrap()
    }

    fn desired(scope: Scope, users: &[(&str, &[&str])]) -> Desired {
        Desired {
            scope,
            entries: users
                .iter()
                .map(|(name, groups)| (arn(name), Mapping::new(*name, groups.iter().copied())))
                .collect(),
        }
    }

    fn users(names: &[&str]) -> Scope {
        Scope::Users(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn a_new_user_is_created_with_their_mapping() {
        let plan = plan(&[], &desired(Scope::All, &[("alice", &["devs", "a"])])).unwrap();
        assert_eq!(
            plan.create,
            [(arn("alice"), Mapping::new("alice", ["a", "devs"]))]
        );
        assert!(plan.update.is_empty() && plan.delete.is_empty() && plan.conflicts.is_empty());
    }

    #[test]
    fn an_owned_entry_that_matches_makes_no_call() {
        let current = [ExistingEntry::owned(
            arn("alice").as_str(),
            "alice",
            ["devs"],
        )];
        let plan = plan(&current, &desired(Scope::All, &[("alice", &["devs"])])).unwrap();
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn group_order_and_duplicates_from_eks_do_not_count_as_a_change() {
        let current = [ExistingEntry::owned(
            arn("alice").as_str(),
            "alice",
            ["b", "a", "b"],
        )];
        let plan = plan(&current, &desired(Scope::All, &[("alice", &["a", "b"])])).unwrap();
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn an_owned_entry_with_other_groups_or_name_is_updated() {
        let current = [ExistingEntry::owned(arn("alice").as_str(), "old", ["ops"])];
        let plan = plan(&current, &desired(Scope::All, &[("alice", &["devs"])])).unwrap();
        assert_eq!(
            plan.update,
            [Update {
                principal: arn("alice").to_string(),
                before: Mapping::new("old", ["ops"]),
                after: Mapping::new("alice", ["devs"]),
            }]
        );
    }

    #[test]
    fn an_untagged_entry_of_a_desired_user_is_a_conflict_and_untouched() {
        let current = [ExistingEntry::unowned(
            arn("alice").as_str(),
            "hand",
            ["ops"],
        )];
        let plan = plan(&current, &desired(Scope::All, &[("alice", &["devs"])])).unwrap();
        assert_eq!(plan.conflicts, [arn("alice")]);
        assert!(plan.is_empty());
    }

    #[test]
    fn another_installations_entry_is_a_conflict_and_never_deleted() {
        let mine = Installation::new("prod", false).unwrap();
        let staging = Installation::new("staging", false).unwrap();
        let theirs = ExistingEntry::owned_by(arn("alice").as_str(), "alice", ["devs"], &staging);
        let legacy = ExistingEntry::owned(arn("bob").as_str(), "bob", ["devs"]);
        let current = [theirs, legacy];
        let wants_alice = desired(Scope::All, &[("alice", &["devs"])]);
        let plan = plan_as(&mine, &current, &wants_alice).unwrap();
        assert_eq!(plan.conflicts, [arn("alice")]);
        assert!(
            plan.is_empty(),
            "bob's legacy entry is not a named installation's: {plan:?}"
        );
        let default = Installation::new("prod", true).unwrap();
        let plan = plan_as(&default, &current, &wants_alice).unwrap();
        assert_eq!(
            plan.delete.len(),
            1,
            "the default installation owns bob's legacy entry"
        );
        assert_eq!(plan.delete[0].principal, arn("bob").as_str());
    }

    #[test]
    fn a_tag_with_another_value_is_not_ownership() {
        let mut entry = ExistingEntry::unowned(arn("alice").as_str(), "alice", ["devs"]);
        entry
            .tags
            .insert(MANAGED_TAG_KEY.to_owned(), "false".to_owned());
        let plan = plan(&[entry], &desired(Scope::All, &[])).unwrap();
        assert!(plan.is_empty());
    }

    #[test]
    fn a_full_reconcile_deletes_owned_entries_of_users_who_left() {
        let current = [
            ExistingEntry::owned(arn("bob").as_str(), "bob", ["devs"]),
            ExistingEntry::unowned(arn("carol").as_str(), "carol", ["devs"]),
        ];
        let plan = plan(&current, &desired(Scope::All, &[])).unwrap();
        assert_eq!(
            plan.delete,
            [Removal {
                principal: arn("bob").to_string(),
                before: Mapping::new("bob", ["devs"]),
            }]
        );
    }

    #[test]
    fn a_user_event_leaves_other_owned_entries_alone() {
        let current = [
            ExistingEntry::owned(arn("alice").as_str(), "alice", ["devs"]),
            ExistingEntry::owned(arn("bob").as_str(), "bob", ["devs"]),
        ];
        let plan = plan(&current, &desired(users(&["alice"]), &[])).unwrap();
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(plan.delete[0].principal, arn("alice").as_str());
    }

    #[test]
    fn a_new_iam_path_replaces_the_entry_under_the_old_one() {
        let old = "arn:aws:iam::123456789012:user/old/alice";
        let new = UserArn::parse("arn:aws:iam::123456789012:user/new/alice").unwrap();
        let current = [ExistingEntry::owned(old, "alice", ["devs"])];
        let want = Desired {
            scope: users(&["alice"]),
            entries: BTreeMap::from([(new.clone(), Mapping::new("alice", ["devs"]))]),
        };
        let plan = plan(&current, &want).unwrap();
        assert_eq!(plan.create, [(new, Mapping::new("alice", ["devs"]))]);
        assert_eq!(plan.delete[0].principal, old);
    }

    fn for_alice(id: &str) -> Desired {
        Desired {
            scope: users(&["alice"]),
            entries: BTreeMap::from([(
                arn("alice"),
                Mapping::new("alice", ["devs"]).for_principal(id),
            )]),
        }
    }

    #[test]
    fn an_entry_made_for_a_recreated_user_is_replaced() {
        let old =
            ExistingEntry::owned(arn("alice").as_str(), "alice", ["devs"]).for_principal("AIDAOLD");
        let plan = plan(&[old], &for_alice("AIDANEW")).unwrap();
        assert_eq!(
            plan.replace,
            [Replacement {
                principal: arn("alice").to_string(),
                before: Mapping::new("alice", ["devs"]).for_principal("AIDAOLD"),
                arn: arn("alice"),
                after: Mapping::new("alice", ["devs"]).for_principal("AIDANEW"),
                reason: ReplaceReason::Recreated {
                    before: "AIDAOLD".into(),
                    after: "AIDANEW".into()
                },
            }]
        );
        assert!(plan.create.is_empty() && plan.update.is_empty() && plan.delete.is_empty());
    }

    #[test]
    fn an_entry_made_for_the_current_principal_is_kept_or_updated_in_place() {
        let same =
            ExistingEntry::owned(arn("alice").as_str(), "alice", ["devs"]).for_principal("AIDA1");
        assert!(plan(&[same], &for_alice("AIDA1")).unwrap().is_empty());
        let narrower =
            ExistingEntry::owned(arn("alice").as_str(), "alice", ["ops"]).for_principal("AIDA1");
        let plan = plan(&[narrower], &for_alice("AIDA1")).unwrap();
        assert_eq!(plan.update.len(), 1);
        assert!(plan.replace.is_empty());
    }

    #[test]
    fn an_owned_entry_recording_no_id_is_replaced_once() {
        let legacy = ExistingEntry::owned(arn("alice").as_str(), "alice", ["devs"]);
        let first = plan(&[legacy], &for_alice("AIDA1")).unwrap();
        assert_eq!(
            first.replace[0].reason,
            ReplaceReason::Unrecorded {
                after: "AIDA1".into()
            }
        );
        let recreated =
            ExistingEntry::owned(arn("alice").as_str(), "alice", ["devs"]).for_principal("AIDA1");
        assert!(plan(&[recreated], &for_alice("AIDA1")).unwrap().is_empty());
    }

    #[test]
    fn without_a_desired_id_nothing_is_decided_by_id() {
        let tagged =
            ExistingEntry::owned(arn("alice").as_str(), "alice", ["devs"]).for_principal("AIDAOLD");
        let plan = plan(
            &[tagged],
            &desired(users(&["alice"]), &[("alice", &["devs"])]),
        )
        .unwrap();
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn a_hand_made_entry_of_a_recreated_user_stays_a_conflict() {
        let hand = ExistingEntry::unowned(arn("alice").as_str(), "alice", ["devs"])
            .for_principal("AIDAOLD");
        let plan = plan(&[hand], &for_alice("AIDANEW")).unwrap();
        assert!(plan.is_empty());
        assert_eq!(plan.conflicts, [arn("alice")]);
    }

    #[test]
    fn a_rename_deletes_the_old_name_and_creates_the_new_one() {
        let old =
            ExistingEntry::owned(arn("alice").as_str(), "alice", ["devs"]).for_principal("AIDA1");
        let want = Desired {
            scope: users(&["alice", "alice.smith"]),
            entries: BTreeMap::from([(
                arn("alice.smith"),
                Mapping::new("alice.smith", ["devs"]).for_principal("AIDA1"),
            )]),
        };
        let plan = plan(&[old], &want).unwrap();
        assert_eq!(plan.delete[0].principal, arn("alice").as_str());
        assert_eq!(plan.create[0].0, arn("alice.smith"));
        assert_eq!(plan.create[0].1.principal_id.as_deref(), Some("AIDA1"));
    }

    #[test]
    fn role_entries_are_never_touched_even_if_tagged() {
        let role = ExistingEntry::owned(
            "arn:aws:iam::123456789012:role/eks-iam-sync",
            "eks-iam-sync",
            ["x"],
        );
        let plan = plan(&[role], &desired(Scope::All, &[])).unwrap();
        assert!(plan.is_empty());
    }

    fn sso(suffix: &str) -> crate::desired::RoleArn {
        crate::desired::RoleArn::parse(&format!(
            "arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_{suffix}"
        ))
        .unwrap()
    }

    fn roles(scope: Scope, wanted: &[(&str, &str)]) -> Desired<crate::desired::RoleArn> {
        Desired {
            scope,
            entries: wanted
                .iter()
                .map(|(suffix, id)| {
                    (
                        sso(suffix),
                        Mapping::new("a:{{SessionName}}", ["devs"]).for_principal(*id),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn the_same_planner_maps_roles_with_their_path_and_leaves_users_alone() {
        let current = [
            ExistingEntry::owned(arn("alice").as_str(), "alice", ["devs"]),
            ExistingEntry::unowned(
                "arn:aws:iam::123456789012:role/node",
                "system:node:{{EC2PrivateDNSName}}",
                ["system:nodes"],
            ),
        ];
        let plan = plan(&current, &roles(Scope::All, &[("0a", "AROA1")])).unwrap();
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].0.as_str(), sso("0a").as_str());
        assert!(plan.delete.is_empty() && plan.update.is_empty(), "{plan:?}");
        // And the user planner leaves role entries alone.
        let owned_role = ExistingEntry::owned(sso("0a").as_str(), "a:{{SessionName}}", ["devs"])
            .for_principal("AROA1");
        let users = plan_users(std::slice::from_ref(&owned_role));
        assert!(users.is_empty());
    }

    fn plan_users(current: &[ExistingEntry]) -> Plan {
        plan(current, &desired(Scope::All, &[])).unwrap()
    }

    #[test]
    fn a_reassigned_permission_set_replaces_the_old_role_entry() {
        let old = ExistingEntry::owned(sso("0a").as_str(), "a:{{SessionName}}", ["devs"])
            .for_principal("AROA1");
        let hand = ExistingEntry::unowned(sso("hand").as_str(), "shared", ["devs"]);
        let want = roles(Scope::All, &[("1b", "AROA2"), ("hand", "AROA3")]);
        let plan = plan(&[old.clone(), hand], &want).unwrap();
        assert_eq!(plan.create[0].0, sso("1b"));
        assert_eq!(plan.delete[0].principal, old.principal_arn);
        assert_eq!(plan.conflicts, [sso("hand")]);
        // A role event for another role leaves it alone; one for the old role removes it.
        let other = roles(Scope::Roles(["x".to_string()].into()), &[]);
        assert!(super::plan(std::slice::from_ref(&old), &other)
            .unwrap()
            .is_empty());
        let this = roles(
            Scope::Roles(["awsreservedsso_admin_0a".to_string()].into()),
            &[],
        );
        assert_eq!(super::plan(&[old], &this).unwrap().delete.len(), 1);
    }

    #[test]
    fn a_recreated_role_is_replaced() {
        let old = ExistingEntry::owned(sso("0a").as_str(), "a:{{SessionName}}", ["devs"])
            .for_principal("AROA1");
        let plan = plan(&[old], &roles(Scope::All, &[("0a", "AROA9")])).unwrap();
        assert_eq!(plan.replace.len(), 1);
    }

    #[test]
    fn reserved_prefixes_are_refused_naming_principal_and_value() {
        for bad in ["system:masters", "eks:x", "aws:x", "amazon:x", "iam:x"] {
            let err = plan(&[], &desired(Scope::All, &[("alice", &["devs", bad])])).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(arn("alice").as_str()), "{text}");
            assert!(text.contains(bad), "{text}");
        }
        let want = Desired {
            scope: Scope::All,
            entries: BTreeMap::from([(arn("alice"), Mapping::new("iam:alice", ["devs"]))]),
        };
        let PlanError::Reserved { refusals } = plan(&[], &want).unwrap_err();
        assert_eq!(refusals[0].what, "user name");
    }

    #[test]
    fn only_in_scope_user_entries_need_describing() {
        let want = desired(users(&["alice"]), &[("alice", &["devs"])]);
        assert!(needs_describe(arn("alice").as_str(), &want));
        assert!(needs_describe(
            "arn:aws:iam::123456789012:user/old/alice",
            &want
        ));
        assert!(!needs_describe(arn("bob").as_str(), &want));
        assert!(!needs_describe(
            "arn:aws:iam::123456789012:role/node",
            &want
        ));
        assert!(needs_describe(
            arn("bob").as_str(),
            &desired(Scope::All, &[])
        ));
    }

    #[test]
    fn render_shows_each_change() {
        let current = [
            ExistingEntry::owned(arn("bob").as_str(), "bob", ["devs"]),
            ExistingEntry::owned(arn("carol").as_str(), "carol", ["ops"]),
        ];
        let want = desired(Scope::All, &[("alice", &["devs"]), ("carol", &["devs"])]);
        let text = plan(&current, &want).unwrap().render("c1");
        assert_eq!(
            text,
            "c1: access entries\n\
             + arn:aws:iam::123456789012:user/alice username=alice groups=[devs]\n\
             ~ arn:aws:iam::123456789012:user/carol username=carol groups=[ops] -> username=carol groups=[devs]\n\
             - arn:aws:iam::123456789012:user/bob username=bob groups=[devs]\n"
        );
        let old =
            ExistingEntry::owned(arn("alice").as_str(), "alice", ["devs"]).for_principal("AIDAOLD");
        let text = plan(&[old], &for_alice("AIDANEW")).unwrap().render("c1");
        assert_eq!(
            text,
            "c1: access entries\n\
             ! arn:aws:iam::123456789012:user/alice username=alice groups=[devs] -> username=alice groups=[devs] \
             (recreated IAM user: principal id AIDAOLD -> AIDANEW)\n"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
        const GROUPS: [&str; 3] = ["devs", "ops", "viewers"];
        /// Unique ids IAM may report: a user may have been recreated (another id) any time.
        const IDS: [&str; 2] = ["AIDA1", "AIDA2"];

        fn id() -> impl Strategy<Value = Option<&'static str>> {
            prop::option::of(prop::sample::select(&IDS[..]))
        }

        fn groups() -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec(prop::sample::select(&GROUPS[..]), 0..3)
                .prop_map(|g| g.into_iter().map(str::to_owned).collect())
        }

        fn principal() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => (prop::sample::select(&NAMES[..]), any::<bool>()).prop_map(|(n, path)| {
                    if path {
                        format!("arn:aws:iam::{ACCOUNT}:user/team/{n}")
                    } else {
                        format!("arn:aws:iam::{ACCOUNT}:user/{n}")
                    }
                }),
                1 => prop::sample::select(&NAMES[..])
                    .prop_map(|n| format!("arn:aws:iam::{ACCOUNT}:role/{n}")),
            ]
        }

        fn entry() -> impl Strategy<Value = ExistingEntry> {
            (
                principal(),
                prop::sample::select(&NAMES[..]),
                groups(),
                any::<bool>(),
                id(),
            )
                .prop_map(|(principal, username, groups, owned, id)| {
                    let entry = if owned {
                        ExistingEntry::owned(&principal, username, groups)
                    } else {
                        ExistingEntry::unowned(&principal, username, groups)
                    };
                    match id {
                        Some(id) => entry.for_principal(id),
                        None => entry,
                    }
                })
        }

        /// EKS holds one entry per principal.
        fn cluster() -> impl Strategy<Value = Vec<ExistingEntry>> {
            prop::collection::vec(entry(), 0..8).prop_map(|entries| {
                let mut seen = BTreeSet::new();
                entries
                    .into_iter()
                    .filter(|e| seen.insert(e.principal_arn.clone()))
                    .collect()
            })
        }

        fn wanted() -> impl Strategy<Value = Desired> {
            let scope = prop_oneof![
                Just(Scope::All),
                prop::collection::btree_set(prop::sample::select(&NAMES[..]), 1..3)
                    .prop_map(|n| Scope::Users(n.into_iter().map(str::to_owned).collect())),
            ];
            let entries = prop::collection::btree_map(
                (prop::sample::select(&NAMES[..]), any::<bool>()),
                (groups(), id()),
                0..4,
            );
            (scope, entries).prop_map(|(scope, entries)| {
                // A user has one ARN; in a user event only the named users are desired.
                let mut by_name = BTreeMap::new();
                for ((name, path), groups) in entries {
                    if scope.covers(name) {
                        by_name.insert(name, (path, groups));
                    }
                }
                let entries = by_name
                    .into_iter()
                    .map(|(name, (path, (groups, id)))| {
                        let arn = if path {
                            format!("arn:aws:iam::{ACCOUNT}:user/team/{name}")
                        } else {
                            format!("arn:aws:iam::{ACCOUNT}:user/{name}")
                        };
                        let mapping = Mapping::new(name, groups);
                        let mapping = match id {
                            Some(id) => mapping.for_principal(id),
                            None => mapping,
                        };
                        (UserArn::parse(&arn).unwrap(), mapping)
                    })
                    .collect();
                Desired { scope, entries }
            })
        }

        /// The entry the writer creates for `arn`: owned, and recording the principal id.
        fn created(arn: &UserArn, mapping: &Mapping, owner: &Installation) -> ExistingEntry {
            let entry = ExistingEntry::owned_by(
                arn.as_str(),
                &mapping.username,
                mapping.groups.iter().cloned(),
                owner,
            );
            match &mapping.principal_id {
                Some(id) => entry.for_principal(id),
                None => entry,
            }
        }

        /// What EKS holds after the plan's calls.
        fn apply(current: &[ExistingEntry], plan: &Plan) -> Vec<ExistingEntry> {
            apply_as(current, plan, &Installation::legacy())
        }

        /// [`apply`] of a plan of `owner`.
        fn apply_as(
            current: &[ExistingEntry],
            plan: &Plan,
            owner: &Installation,
        ) -> Vec<ExistingEntry> {
            let mut after: Vec<ExistingEntry> = current
                .iter()
                .filter(|e| !plan.delete.iter().any(|d| d.principal == e.principal_arn))
                .filter(|e| !plan.replace.iter().any(|r| r.principal == e.principal_arn))
                .cloned()
                .collect();
            for replacement in &plan.replace {
                after.push(created(&replacement.arn, &replacement.after, owner));
            }
            for update in &plan.update {
                let entry = after
                    .iter_mut()
                    .find(|e| e.principal_arn == update.principal)
                    .expect("updates an existing entry");
                entry.username = Some(update.after.username.clone());
                entry.kubernetes_groups = update.after.groups.clone();
            }
            for (arn, mapping) in &plan.create {
                after.push(created(arn, mapping, owner));
            }
            after
        }

        /// Some of the owned (legacy-tagged) entries given to installation `b`.
        fn shared_cluster() -> impl Strategy<Value = Vec<ExistingEntry>> {
            (cluster(), prop::collection::vec(any::<bool>(), 8)).prop_map(|(mut entries, to_b)| {
                for (entry, to_b) in entries.iter_mut().zip(to_b) {
                    if to_b && entry.is_owned() {
                        entry
                            .tags
                            .insert(MANAGED_TAG_KEY.to_owned(), "b".to_owned());
                    }
                }
                entries
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn applying_the_plan_converges(current in cluster(), want in wanted()) {
                let first = plan(&current, &want).unwrap();
                let after = apply(&current, &first);
                let second = plan(&after, &want).unwrap();
                prop_assert!(second.is_empty(), "{second:?}");
                prop_assert_eq!(second.conflicts, first.conflicts);
            }

            #[test]
            fn unowned_and_role_entries_are_never_touched(current in cluster(), want in wanted()) {
                let plan = plan(&current, &want).unwrap();
                for entry in current.iter().filter(|e| !e.is_owned() || UserArn::parse(&e.principal_arn).is_err()) {
                    let p = entry.principal_arn.as_str();
                    prop_assert!(!plan.update.iter().any(|u| u.principal == p));
                    prop_assert!(!plan.delete.iter().any(|d| d.principal == p));
                    prop_assert!(!plan.replace.iter().any(|r| r.principal == p));
                    prop_assert!(!plan.create.iter().any(|(a, _)| a.matches(p)));
                }
            }

            /// Two installations reconciling one cluster in turn: each touches only its own
            /// entries. The first round settles ownership (the default installation takes or
            /// drops the legacy entries, each drops what it no longer wants), the second hands
            /// a user the other one dropped to the one that wants it, and from then on neither
            /// plans anything: nothing flaps.
            #[test]
            fn two_installations_settle_and_never_touch_each_others_entries(
                current in shared_cluster(), want_a in wanted(), want_b in wanted(),
            ) {
                let a = Installation::new("a", true).unwrap();
                let b = Installation::new("b", false).unwrap();
                let mut held = current;
                for round in 0..4 {
                    for (me, want) in [(&a, &want_a), (&b, &want_b)] {
                        let plan = plan_as(me, &held, want).unwrap();
                        for entry in held.iter().filter(|e| !e.is_owned_by(me)) {
                            let p = entry.principal_arn.as_str();
                            prop_assert!(!plan.update.iter().any(|u| u.principal == p));
                            prop_assert!(!plan.delete.iter().any(|d| d.principal == p));
                            prop_assert!(!plan.replace.iter().any(|r| r.principal == p));
                        }
                        if round > 1 {
                            prop_assert!(plan.is_empty(), "round {round}, {me}: {plan:?}");
                        }
                        held = apply_as(&held, &plan, me);
                    }
                }
            }

            #[test]
            fn out_of_scope_entries_are_never_touched(current in cluster(), want in wanted()) {
                let plan = plan(&current, &want).unwrap();
                for entry in &current {
                    let Ok(arn) = UserArn::parse(&entry.principal_arn) else { continue };
                    if !want.in_scope(&arn) {
                        prop_assert!(!plan.update.iter().any(|u| u.principal == entry.principal_arn));
                        prop_assert!(!plan.delete.iter().any(|d| d.principal == entry.principal_arn));
                        prop_assert!(!plan.replace.iter().any(|r| r.principal == entry.principal_arn));
                    }
                }
            }

            #[test]
            fn desired_users_get_exactly_their_mapping_unless_in_conflict(current in cluster(), want in wanted()) {
                let plan = plan(&current, &want).unwrap();
                let after = apply(&current, &plan);
                for (arn, mapping) in &want.entries {
                    let held: Vec<&ExistingEntry> = after.iter().filter(|e| arn.matches(&e.principal_arn)).collect();
                    if plan.conflicts.contains(arn) {
                        prop_assert!(held.iter().any(|e| !e.is_owned()));
                    } else {
                        prop_assert_eq!(held.len(), 1);
                        prop_assert!(held[0].is_owned());
                        prop_assert!(held[0].mapping().grants_same(mapping));
                        // Bound to the principal IAM reports now, never to a former one.
                        if let Some(id) = &mapping.principal_id {
                            prop_assert_eq!(held[0].principal_id(), Some(id.as_str()));
                        }
                    }
                }
            }

            #[test]
            fn only_entries_of_desired_users_bound_elsewhere_are_replaced(current in cluster(), want in wanted()) {
                let plan = plan(&current, &want).unwrap();
                for replacement in &plan.replace {
                    let entry = current.iter().find(|e| e.principal_arn == replacement.principal).unwrap();
                    let wanted = &want.entries[&replacement.arn];
                    prop_assert!(entry.is_owned());
                    prop_assert!(replacement.arn.matches(&entry.principal_arn));
                    prop_assert!(wanted.principal_id.is_some());
                    prop_assert_ne!(entry.principal_id(), wanted.principal_id.as_deref());
                    prop_assert_eq!(&replacement.after, &wanted.normalized());
                }
            }

            #[test]
            fn the_plan_ignores_input_order(current in cluster(), want in wanted()) {
                let mut reversed = current.clone();
                reversed.reverse();
                prop_assert_eq!(plan(&current, &want).unwrap(), plan(&reversed, &want).unwrap());
            }

            #[test]
            fn describing_only_what_needs_it_changes_nothing(current in cluster(), want in wanted()) {
                let described: Vec<ExistingEntry> = current
                    .iter()
                    .filter(|e| needs_describe(&e.principal_arn, &want))
                    .cloned()
                    .collect();
                prop_assert_eq!(plan(&current, &want).unwrap(), plan(&described, &want).unwrap());
            }
        }
    }
}
