//! The access-entries writer: lists a cluster's access entries (every page), describes only the
//! IAM-user entries this run decides about, lets the pure [`access_entries::plan`] decide, and
//! makes exactly the calls the plan holds, none when it is empty.
//!
//! Creating an entry someone else just created (ResourceInUse), or updating or deleting one
//! someone just deleted (ResourceNotFound), is a race like aws-auth's 409: the writer re-lists
//! and plans again instead of failing or overwriting.
//!
//! Deletes go first, then replacements (each a delete, then a create of the same principal),
//! then creates and updates: a revocation is never held up by a create that fails (the entry
//! quota, a name EKS refuses), the quota has room before anything is added, and an entry under
//! a user's old IAM path is gone before the one under the new path is created, whether EKS
//! counts both as one principal or not.

use futures::future::BoxFuture;
use futures::StreamExt;

use super::retry::{until_settled, Attempt};
use super::ApplyOptions;
use crate::access_entries::{
    self, needs_describe, ExistingEntry, MANAGED_TAG_KEY, PRINCIPAL_ID_TAG_KEY, STANDARD,
};
use crate::desired::{Desired, Mapping, Principal, RoleArn};
use crate::installation::Installation;
use crate::report::{ClusterReport, Outcome};

/// DescribeAccessEntry calls in flight per cluster: a full reconcile describes every IAM-user
/// entry, and EKS throttles bursts. Default 4.
pub const DESCRIBE_CONCURRENCY: usize = 4;

/// An EKS access-entry call failed.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The entry changed since it was listed (created, or deleted, by someone else).
    #[error("cluster {cluster}: {operation} of {principal}: the entry changed since it was read: {detail}")]
    Changed {
        operation: &'static str,
        cluster: String,
        principal: String,
        detail: String,
    },
    #[error("cluster {cluster}: EKS {operation} failed for {principal}: {detail}")]
    Api {
        operation: &'static str,
        cluster: String,
        /// The entry's principal ARN, or `-` for ListAccessEntries.
        principal: String,
        detail: String,
    },
}

impl EntryError {
    /// A failed call: `Changed` when it lost a race with another writer (re-list and re-plan),
    /// `Api` otherwise.
    fn new(
        raced: bool,
        operation: &'static str,
        cluster: String,
        principal: String,
        detail: String,
    ) -> Self {
        if raced {
            EntryError::Changed {
                operation,
                cluster,
                principal,
                detail,
            }
        } else {
            EntryError::Api {
                operation,
                cluster,
                principal,
                detail,
            }
        }
    }
}

/// The access entries of one cluster. The real one is [`EksAccessEntries`]; tests fake it.
pub trait AccessEntryStore: Send + Sync {
    /// ListAccessEntries, all pages: the principal ARNs.
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, EntryError>>;
    /// DescribeAccessEntry, with the entry's tags; `None` if it is gone.
    fn describe<'a>(
        &'a self,
        principal: &'a str,
    ) -> BoxFuture<'a, Result<Option<ExistingEntry>, EntryError>>;
    /// CreateAccessEntry, type STANDARD, tagged as `owner`'s in the same call, and with the
    /// principal id (`mapping.principal_id`) it is made for, when known.
    fn create<'a>(
        &'a self,
        principal: &'a str,
        mapping: &'a Mapping,
        owner: &'a Installation,
    ) -> BoxFuture<'a, Result<(), EntryError>>;
    /// UpdateAccessEntry: user name and groups.
    fn update<'a>(
        &'a self,
        principal: &'a str,
        mapping: &'a Mapping,
    ) -> BoxFuture<'a, Result<(), EntryError>>;
    fn delete<'a>(&'a self, principal: &'a str) -> BoxFuture<'a, Result<(), EntryError>>;
}

/// [`AccessEntryStore`] over aws-sdk-eks, with the client of the cluster's region and identity.
pub struct EksAccessEntries {
    client: aws_sdk_eks::Client,
    cluster: String,
}

impl EksAccessEntries {
    pub fn new(client: aws_sdk_eks::Client, cluster: &str) -> Self {
        Self {
            client,
            cluster: cluster.to_owned(),
        }
    }

    /// Maps an SDK error: the "race" kind of `operation` becomes [`EntryError::Changed`].
    fn error<E, R>(
        &self,
        operation: &'static str,
        principal: &str,
        error: aws_sdk_eks::error::SdkError<E, R>,
        raced: impl Fn(&E) -> bool,
    ) -> EntryError
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let is_race = error.as_service_error().is_some_and(&raced);
        let detail = aws_sdk_eks::error::DisplayErrorContext(error).to_string();
        EntryError::new(
            is_race,
            operation,
            self.cluster.clone(),
            principal.to_owned(),
            detail,
        )
    }
}

impl AccessEntryStore for EksAccessEntries {
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, EntryError>> {
        Box::pin(async move {
            self.client
                .list_access_entries()
                .cluster_name(&self.cluster)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<String>, _>>()
                .await
                .map_err(|e| self.error("ListAccessEntries", "-", e, |_| false))
        })
    }

    fn describe<'a>(
        &'a self,
        principal: &'a str,
    ) -> BoxFuture<'a, Result<Option<ExistingEntry>, EntryError>> {
        Box::pin(async move {
            let out = self
                .client
                .describe_access_entry()
                .cluster_name(&self.cluster)
                .principal_arn(principal)
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(self.error("DescribeAccessEntry", principal, e, |_| false)),
            };
            Ok(out.access_entry().map(|entry| ExistingEntry {
                principal_arn: entry.principal_arn().unwrap_or(principal).to_owned(),
                username: entry.username().map(str::to_owned),
                kubernetes_groups: entry.kubernetes_groups().to_vec(),
                tags: entry
                    .tags()
                    .map(|tags| tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            }))
        })
    }

    fn create<'a>(
        &'a self,
        principal: &'a str,
        mapping: &'a Mapping,
        owner: &'a Installation,
    ) -> BoxFuture<'a, Result<(), EntryError>> {
        Box::pin(async move {
            let mut request = self
                .client
                .create_access_entry()
                .cluster_name(&self.cluster)
                .principal_arn(principal)
                .username(&mapping.username)
                .set_kubernetes_groups(Some(mapping.groups.clone()))
                .r#type(STANDARD)
                .tags(MANAGED_TAG_KEY, owner.tag_value());
            if let Some(id) = &mapping.principal_id {
                request = request.tags(PRINCIPAL_ID_TAG_KEY, id);
            }
            request.send().await.map(drop).map_err(|e| {
                self.error("CreateAccessEntry", principal, e, |s| {
                    s.is_resource_in_use_exception()
                })
            })
        })
    }

    fn update<'a>(
        &'a self,
        principal: &'a str,
        mapping: &'a Mapping,
    ) -> BoxFuture<'a, Result<(), EntryError>> {
        Box::pin(async move {
            self.client
                .update_access_entry()
                .cluster_name(&self.cluster)
                .principal_arn(principal)
                .username(&mapping.username)
                .set_kubernetes_groups(Some(mapping.groups.clone()))
                .send()
                .await
                .map(drop)
                .map_err(|e| {
                    self.error("UpdateAccessEntry", principal, e, |s| {
                        s.is_resource_not_found_exception()
                    })
                })
        })
    }

    fn delete<'a>(&'a self, principal: &'a str) -> BoxFuture<'a, Result<(), EntryError>> {
        Box::pin(async move {
            self.client
                .delete_access_entry()
                .cluster_name(&self.cluster)
                .principal_arn(principal)
                .send()
                .await
                .map(drop)
                .map_err(|e| {
                    self.error("DeleteAccessEntry", principal, e, |s| {
                        s.is_resource_not_found_exception()
                    })
                })
        })
    }
}

/// Brings one cluster's access entries in step with `desired`, touching only owned entries.
pub async fn apply_access_entries(
    store: &dyn AccessEntryStore,
    desired: &Desired,
    options: &ApplyOptions,
) -> ClusterReport {
    apply_access_entries_with_roles(store, desired, &no_roles(), options).await
}

/// A role part that decides about no role (a user scope covers none), for callers that map
/// users only.
pub fn no_roles() -> Desired<RoleArn> {
    Desired {
        scope: crate::desired::Scope::Users(Default::default()),
        entries: Default::default(),
    }
}

/// [`apply_access_entries`] for users and roles at once: one listing, one planner per kind
/// ([`access_entries::plan`] serves both), the calls of both.
pub async fn apply_access_entries_with_roles(
    store: &dyn AccessEntryStore,
    desired: &Desired,
    roles: &Desired<RoleArn>,
    options: &ApplyOptions,
) -> ClusterReport {
    until_settled("access entries", &options.cluster, options.limits, || {
        attempt(store, desired, roles, options)
    })
    .await
}

/// The calls one plan makes, in the order the module doc gives: revocations first.
fn calls_of<'a, P: Principal>(
    store: &'a dyn AccessEntryStore,
    plan: &'a access_entries::Plan<P>,
    owner: &'a Installation,
) -> Vec<BoxFuture<'a, Result<(), EntryError>>> {
    let mut calls = Vec::new();
    for removal in &plan.delete {
        calls.push(store.delete(&removal.principal));
    }
    for replacement in &plan.replace {
        calls.push(store.delete(&replacement.principal));
        calls.push(store.create(replacement.arn.as_str(), &replacement.after, owner));
    }
    for (principal, mapping) in &plan.create {
        calls.push(store.create(principal.as_str(), mapping, owner));
    }
    for update in &plan.update {
        calls.push(store.update(&update.principal, &update.after));
    }
    calls
}

async fn attempt(
    store: &dyn AccessEntryStore,
    desired: &Desired,
    roles: &Desired<RoleArn>,
    options: &ApplyOptions,
) -> Attempt {
    let mut report = ClusterReport::new(&options.cluster, "", Outcome::Unchanged);
    let principals = match store.list().await {
        Ok(principals) => principals,
        Err(e) => return Attempt::Done(report.failed(e.to_string())),
    };
    let described: Vec<_> = futures::stream::iter(principals.iter().filter(|principal| {
        needs_describe(principal, desired) || needs_describe(principal, roles)
    }))
    .map(|principal| store.describe(principal))
    .buffered(DESCRIBE_CONCURRENCY)
    .collect()
    .await;
    let mut current = Vec::with_capacity(described.len());
    for entry in described {
        match entry {
            Ok(Some(entry)) => current.push(entry),
            // Deleted between the list and the describe: it is not there.
            Ok(None) => {}
            Err(e) => return Attempt::Done(report.failed(e.to_string())),
        }
    }
    let owner = &options.installation;
    let plans = access_entries::plan_as(owner, &current, desired)
        .and_then(|users| Ok((users, access_entries::plan_as(owner, &current, roles)?)));
    let (plan, role_plan) = match plans {
        Ok(plans) => plans,
        Err(e) => return Attempt::Done(report.failed(format!("cluster {}: {e}", options.cluster))),
    };
    report.added = plan.create.len() + role_plan.create.len();
    // A replaced entry is the same principal's access, made again: a change, not a removal.
    report.changed =
        plan.update.len() + plan.replace.len() + role_plan.update.len() + role_plan.replace.len();
    report.removed = plan.delete.len() + role_plan.delete.len();
    report.conflicts = plan
        .conflicts
        .iter()
        .map(ToString::to_string)
        .chain(role_plan.conflicts.iter().map(ToString::to_string))
        .collect();
    if plan.is_empty() && role_plan.is_empty() {
        report.settle(Outcome::Unchanged);
        return Attempt::Done(report);
    }
    if options.dry_run {
        // One header for the cluster; the role part's lines follow the users'.
        let diff = format!(
            "{}{}{}",
            access_entries::diff_header(&options.cluster),
            plan.render_changes(),
            role_plan.render_changes()
        );
        report.diff = Some(diff);
        report.settle(Outcome::Updated);
        return Attempt::Done(report);
    }
    // Sequential: a failure leaves a known prefix applied.
    let calls: Vec<_> = calls_of(store, &plan, owner)
        .into_iter()
        .chain(calls_of(store, &role_plan, owner))
        .collect();
    let total = calls.len();
    for (applied, call) in calls.into_iter().enumerate() {
        match call.await {
            Ok(()) => {}
            Err(EntryError::Changed { .. }) => return Attempt::Raced(report),
            Err(error) => {
                return Attempt::Done(
                    report.failed(format!("{error} (after {applied} of {total} changes)")),
                )
            }
        }
    }
    report.settle(Outcome::Updated);
    Attempt::Done(report)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::desired::{Scope, UserArn};
    use crate::sync::retry::Limits;

    /// An in-memory EKS: entries by principal, every call recorded, optional scripted failures.
    #[derive(Default)]
    struct FakeEntries {
        entries: Mutex<BTreeMap<String, ExistingEntry>>,
        calls: Mutex<Vec<String>>,
        /// `(operation, error)` returned once, by the next call of that operation.
        fail: Mutex<Vec<(&'static str, bool)>>,
        /// Before the first create, someone else creates this entry.
        sneak_in: Mutex<Option<ExistingEntry>>,
    }

    impl FakeEntries {
        fn with(entries: &[ExistingEntry]) -> Self {
            let fake = Self::default();
            for entry in entries {
                fake.entries
                    .lock()
                    .unwrap()
                    .insert(entry.principal_arn.clone(), entry.clone());
            }
            fake
        }

        fn calls(&self, operation: &str) -> usize {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.as_str() == operation)
                .count()
        }

        fn record(&self, operation: &'static str, principal: &str) -> Result<(), EntryError> {
            self.calls.lock().unwrap().push(operation.to_owned());
            let mut fail = self.fail.lock().unwrap();
            if let Some(i) = fail.iter().position(|(op, _)| *op == operation) {
                let (_, race) = fail.remove(i);
                return Err(EntryError::new(
                    race,
                    operation,
                    "c".into(),
                    principal.into(),
                    "boom".into(),
                ));
            }
            Ok(())
        }
    }

    impl AccessEntryStore for FakeEntries {
        fn list(&self) -> BoxFuture<'_, Result<Vec<String>, EntryError>> {
            Box::pin(async move {
                self.record("List", "-")?;
                Ok(self.entries.lock().unwrap().keys().cloned().collect())
            })
        }

        fn describe<'a>(
            &'a self,
            principal: &'a str,
        ) -> BoxFuture<'a, Result<Option<ExistingEntry>, EntryError>> {
            Box::pin(async move {
                self.record("Describe", principal)?;
                Ok(self.entries.lock().unwrap().get(principal).cloned())
            })
        }

        fn create<'a>(
            &'a self,
            principal: &'a str,
            mapping: &'a Mapping,
            owner: &'a Installation,
        ) -> BoxFuture<'a, Result<(), EntryError>> {
            Box::pin(async move {
                self.record("Create", principal)?;
                let mut entries = self.entries.lock().unwrap();
                if let Some(theirs) = self.sneak_in.lock().unwrap().take() {
                    entries.insert(theirs.principal_arn.clone(), theirs);
                }
                if entries.contains_key(principal) {
                    return Err(EntryError::Changed {
                        operation: "CreateAccessEntry",
                        cluster: "c".into(),
                        principal: principal.to_string(),
                        detail: "ResourceInUseException".into(),
                    });
                }
                let entry = ExistingEntry::owned_by(
                    principal,
                    &mapping.username,
                    mapping.groups.iter().cloned(),
                    owner,
                );
                let entry = match &mapping.principal_id {
                    Some(id) => entry.for_principal(id),
                    None => entry,
                };
                entries.insert(principal.to_string(), entry);
                Ok(())
            })
        }

        fn update<'a>(
            &'a self,
            principal: &'a str,
            mapping: &'a Mapping,
        ) -> BoxFuture<'a, Result<(), EntryError>> {
            Box::pin(async move {
                self.record("Update", principal)?;
                let mut entries = self.entries.lock().unwrap();
                let entry = entries.get_mut(principal).expect("exists");
                entry.username = Some(mapping.username.clone());
                entry.kubernetes_groups = mapping.groups.clone();
                Ok(())
            })
        }

        fn delete<'a>(&'a self, principal: &'a str) -> BoxFuture<'a, Result<(), EntryError>> {
            Box::pin(async move {
                self.record("Delete", principal)?;
                self.entries.lock().unwrap().remove(principal);
                Ok(())
            })
        }
    }

    fn arn(name: &str) -> UserArn {
        UserArn::parse(&format!("arn:aws:iam::123456789012:user/{name}")).unwrap()
    }

    const NODE_ROLE: &str = "arn:aws:iam::123456789012:role/node";

    fn options() -> ApplyOptions {
        ApplyOptions {
            cluster: "c".into(),
            create_missing: true,
            dry_run: false,
            limits: Limits {
                max_races: 3,
                ..Limits::until(std::time::Instant::now() + std::time::Duration::from_secs(60))
            },
            installation: Installation::legacy(),
        }
    }

    fn wanted(scope: Scope, names: &[&str]) -> Desired {
        Desired {
            scope,
            entries: names
                .iter()
                .map(|n| (arn(n), Mapping::new(*n, ["developers"])))
                .collect(),
        }
    }

    fn alice_only() -> Desired {
        wanted(Scope::Users(["alice".to_string()].into()), &["alice"])
    }

    #[tokio::test]
    async fn a_user_event_describes_only_that_user_and_creates_the_entry() {
        let store = FakeEntries::with(&[
            ExistingEntry::unowned(NODE_ROLE, "node", ["system:nodes"]),
            ExistingEntry::owned(arn("bob").as_str(), "bob", ["developers"]),
        ]);
        let report = apply_access_entries(&store, &alice_only(), &options()).await;
        assert_eq!(report.outcome, Outcome::Updated, "{report:?}");
        assert_eq!(report.added, 1);
        assert_eq!(
            store.calls("Describe"),
            0,
            "neither the role nor bob is read"
        );
        assert_eq!(store.calls("Create"), 1);
        assert!(store.entries.lock().unwrap()[arn("alice").as_str()].is_owned());
    }

    #[tokio::test]
    async fn nothing_to_change_makes_no_write_call() {
        let store = FakeEntries::with(&[ExistingEntry::owned(
            arn("alice").as_str(),
            "alice",
            ["developers"],
        )]);
        let report = apply_access_entries(&store, &alice_only(), &options()).await;
        assert_eq!(report.outcome, Outcome::Unchanged);
        assert_eq!(store.calls.lock().unwrap().as_slice(), ["List", "Describe"]);
    }

    #[tokio::test]
    async fn a_hand_made_entry_is_a_conflict_and_untouched() {
        let hand = ExistingEntry::unowned(arn("alice").as_str(), "hand", ["ops"]);
        let store = FakeEntries::with(std::slice::from_ref(&hand));
        let report = apply_access_entries(&store, &alice_only(), &options()).await;
        assert_eq!(report.outcome, Outcome::Conflict);
        assert_eq!(report.conflicts, [arn("alice").to_string()]);
        assert_eq!(
            store.entries.lock().unwrap()[hand.principal_arn.as_str()],
            hand
        );
    }

    #[tokio::test]
    async fn a_dry_run_reports_the_plan_and_writes_nothing() {
        let store = FakeEntries::with(&[]);
        let options = ApplyOptions {
            dry_run: true,
            ..options()
        };
        let report = apply_access_entries(&store, &alice_only(), &options).await;
        assert_eq!(report.outcome, Outcome::Updated);
        assert!(report
            .diff
            .unwrap()
            .contains("+ arn:aws:iam::123456789012:user/alice"));
        assert_eq!(store.calls("Create"), 0);
    }

    #[tokio::test]
    async fn an_entry_created_meanwhile_is_re_read_and_becomes_a_conflict() {
        let store = FakeEntries::with(&[]);
        *store.sneak_in.lock().unwrap() = Some(ExistingEntry::unowned(
            arn("alice").as_str(),
            "theirs",
            ["ops"],
        ));
        let report = apply_access_entries(&store, &alice_only(), &options()).await;
        assert_eq!(report.outcome, Outcome::Conflict, "{report:?}");
        assert_eq!(report.retries, 1);
        assert_eq!(store.calls("List"), 2);
        let entries = store.entries.lock().unwrap();
        assert_eq!(
            entries[arn("alice").as_str()].username.as_deref(),
            Some("theirs")
        );
    }

    #[tokio::test]
    async fn an_api_error_fails_the_cluster_naming_cluster_principal_and_progress() {
        let store = FakeEntries::with(&[ExistingEntry::owned(
            arn("bob").as_str(),
            "bob",
            ["developers"],
        )]);
        store.fail.lock().unwrap().push(("Create", false));
        let report =
            apply_access_entries(&store, &wanted(Scope::All, &["alice"]), &options()).await;
        assert_eq!(report.outcome, Outcome::Failed);
        let reason = report.reason.unwrap();
        assert!(reason.contains("cluster c"), "{reason}");
        assert!(reason.contains(arn("alice").as_str()), "{reason}");
        assert!(reason.contains("after 1 of 2 changes"), "{reason}");
        assert!(
            !store
                .entries
                .lock()
                .unwrap()
                .contains_key(arn("bob").as_str()),
            "the revocation went first and is not held up by the failed create"
        );
    }

    fn alice_as(id: &str) -> Desired {
        Desired {
            scope: Scope::Users(["alice".to_string()].into()),
            entries: BTreeMap::from([(
                arn("alice"),
                Mapping::new("alice", ["developers"]).for_principal(id),
            )]),
        }
    }

    fn write_calls(store: &FakeEntries) -> Vec<String> {
        let calls = store.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| !matches!(c.as_str(), "List" | "Describe"))
            .cloned()
            .collect()
    }

    #[tokio::test]
    async fn an_entry_of_a_recreated_user_is_deleted_then_created_for_the_new_id() {
        let old = ExistingEntry::owned(arn("alice").as_str(), "alice", ["developers"])
            .for_principal("AIDAOLD");
        let store = FakeEntries::with(&[old]);
        let report = apply_access_entries(&store, &alice_as("AIDANEW"), &options()).await;
        assert_eq!(report.outcome, Outcome::Updated, "{report:?}");
        assert_eq!((report.added, report.changed, report.removed), (0, 1, 0));
        assert_eq!(write_calls(&store), ["Delete", "Create"]);
        let entries = store.entries.lock().unwrap();
        let entry = &entries[arn("alice").as_str()];
        assert_eq!(entry.principal_id(), Some("AIDANEW"));
        assert!(entry.is_owned());
    }

    #[tokio::test]
    async fn an_entry_made_before_ids_were_recorded_is_replaced_once() {
        let legacy = ExistingEntry::owned(arn("alice").as_str(), "alice", ["developers"]);
        let store = FakeEntries::with(&[legacy]);
        let report = apply_access_entries(&store, &alice_as("AIDA1"), &options()).await;
        assert_eq!(report.changed, 1, "{report:?}");
        let again = apply_access_entries(&store, &alice_as("AIDA1"), &options()).await;
        assert_eq!(again.outcome, Outcome::Unchanged, "{again:?}");
        assert_eq!(write_calls(&store), ["Delete", "Create"]);
    }

    #[tokio::test]
    async fn a_hand_made_entry_slipping_into_a_replacement_is_re_read_as_a_conflict() {
        let old = ExistingEntry::owned(arn("alice").as_str(), "alice", ["developers"])
            .for_principal("AIDAOLD");
        let store = FakeEntries::with(&[old]);
        *store.sneak_in.lock().unwrap() = Some(ExistingEntry::unowned(
            arn("alice").as_str(),
            "theirs",
            ["ops"],
        ));
        let report = apply_access_entries(&store, &alice_as("AIDANEW"), &options()).await;
        assert_eq!(report.outcome, Outcome::Conflict, "{report:?}");
        assert_eq!(report.retries, 1);
        let entries = store.entries.lock().unwrap();
        assert_eq!(
            entries[arn("alice").as_str()].username.as_deref(),
            Some("theirs")
        );
    }

    #[tokio::test]
    async fn a_dry_run_shows_the_replacement_and_writes_nothing() {
        let old = ExistingEntry::owned(arn("alice").as_str(), "alice", ["developers"])
            .for_principal("AIDAOLD");
        let store = FakeEntries::with(&[old]);
        let options = ApplyOptions {
            dry_run: true,
            ..options()
        };
        let report = apply_access_entries(&store, &alice_as("AIDANEW"), &options).await;
        let diff = report.diff.unwrap();
        assert!(
            diff.contains("! arn:aws:iam::123456789012:user/alice"),
            "{diff}"
        );
        assert!(diff.contains("AIDAOLD -> AIDANEW"), "{diff}");
        assert!(write_calls(&store).is_empty());
    }

    #[tokio::test]
    async fn a_failed_list_writes_nothing() {
        let store = FakeEntries::with(&[]);
        store.fail.lock().unwrap().push(("List", false));
        let report = apply_access_entries(&store, &alice_only(), &options()).await;
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(store.calls("Create"), 0);
    }

    #[tokio::test]
    async fn reserved_names_fail_the_cluster_before_any_write() {
        let store = FakeEntries::with(&[]);
        let desired = Desired {
            scope: Scope::All,
            entries: BTreeMap::from([(arn("alice"), Mapping::new("alice", ["eks:admins"]))]),
        };
        let report = apply_access_entries(&store, &desired, &options()).await;
        assert_eq!(report.outcome, Outcome::Failed);
        assert!(report.reason.unwrap().contains("eks:admins"));
        assert_eq!(store.calls("Create"), 0);
    }
}
