//! The desired state, read from IAM and never from the event.
//!
//! An event only says whom to look at; what access they get comes from IAM's current group
//! membership. That makes duplicate, late and reordered events converge, and a forged event
//! cannot grant anything. [`IamDirectory`] is the small read-only view this needs; the real
//! implementation ([`SdkIam`]) reads every page of every listing.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};

use crate::config::Config;
use crate::credentials::CredentialsFor;
use crate::desired::{Desired, Mapping, Scope, UserArn};
use crate::event::Trigger;
use crate::roles::IamRole;

/// An IAM user as the listings return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamUser {
    pub name: String,
    pub arn: String,
    /// IAM's `UserId` (`AIDA...`): unique to this user, and new when a user of the same name is
    /// created again. GetUser and GetGroup both return it, so knowing it costs no call.
    pub id: String,
}

/// A failed IAM read; the run stops before touching any cluster.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error("IAM {operation} for {principal} failed: {detail}")]
    Call {
        operation: &'static str,
        principal: String,
        detail: String,
    },
    #[error("IAM returned an ARN that is not an IAM user ARN for {principal}: {arn}")]
    BadArn { principal: String, arn: String },
}

/// What the sync reads from IAM. `None` means IAM said NoSuchEntity: a deleted user or group is
/// a normal state (its access must go), not an error.
pub trait IamDirectory: Send + Sync {
    /// GetUser.
    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<IamUser>, IamError>>;
    /// ListGroupsForUser, all pages: group names.
    fn groups_for_user<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, IamError>>;
    /// GetGroup, all pages: the members.
    fn group_members<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IamUser>>, IamError>>;
    /// ListGroups, all pages: every group name, as IAM spells it. Only read when GetGroup did
    /// not find a configured spelling ([`members_ignoring_case`]); a directory that cannot list
    /// keeps the default, which finds nothing more.
    fn group_names(&self) -> BoxFuture<'_, Result<Vec<String>, IamError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// ListRoles with `path_prefix`, all pages, in the account of `identity` (a role the
    /// function assumes for a cluster; `None`: its own). A directory without roles finds none.
    fn roles_under<'a>(
        &'a self,
        _identity: Option<&'a str>,
        _path_prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IamRole>, IamError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// GetRole in the account of `identity`; `None`: NoSuchEntity.
    fn role<'a>(
        &'a self,
        _identity: Option<&'a str>,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<Option<IamRole>, IamError>> {
        Box::pin(async { Ok(None) })
    }
    /// GetRole in the account of `identity`, for the audit: the role's path and trust policy;
    /// `None`: NoSuchEntity. A directory that cannot read trust policies says so, and the
    /// audit classes the role's session names as self-declared.
    fn role_trust<'a>(
        &'a self,
        _identity: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<RoleTrust>, IamError>> {
        Box::pin(async move {
            Err(IamError::Call {
                operation: "GetRole",
                principal: name.to_owned(),
                detail: "this IAM directory does not read trust policies".into(),
            })
        })
    }
}

/// A role's trust, as the audit reads it to tell whether its session names are chosen freely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleTrust {
    pub name: String,
    /// The IAM path (`/aws-reserved/sso.amazonaws.com/` for Identity Center's roles).
    pub path: String,
    /// The trust policy, JSON. GetRole returns it URL-encoded (RFC 3986); this is decoded.
    pub document: String,
}

/// IAM group names ignore case: IAM cannot hold both `EKS-Developers` and `eks-developers`, and
/// the configured spelling may differ from IAM's. A user event matches ListGroupsForUser's names
/// case-insensitively, so the full reconcile must find the same group for the same spelling, or
/// the two paths would disagree about who has access. AWS resolves GetGroup for any case of the
/// name, but that is not documented, and moto does not; so when GetGroup says NoSuchEntity, the
/// spelling is looked up in ListGroups (all pages) and GetGroup asked again with IAM's own. That
/// costs a listing only for a configured group IAM did not find under its spelling.
pub async fn members_ignoring_case(
    iam: &dyn IamDirectory,
    group: &str,
) -> Result<Option<Vec<IamUser>>, IamError> {
    if let Some(members) = iam.group_members(group).await? {
        return Ok(Some(members));
    }
    let names = iam.group_names().await?;
    match names
        .iter()
        .find(|name| name.eq_ignore_ascii_case(group) && name.as_str() != group)
    {
        Some(spelling) => {
            tracing::info!(iam_group = %group, spelling = %spelling, "configured IAM group found under another case");
            iam.group_members(spelling).await
        }
        None => Ok(None),
    }
}

/// IAM reads in flight at once within a run: IAM throttles bursts per account, and a batch of
/// 200 onboarding events or a config of many groups must not become 200 calls at once.
pub const IAM_CONCURRENCY: usize = 8;

/// Computes what the clusters should hold for `trigger`, from IAM's current state.
pub async fn desired(
    iam: &dyn IamDirectory,
    config: &Config,
    trigger: &Trigger,
) -> Result<Desired, IamError> {
    // Keyed by the lowercased name: IAM group names ignore case (see `members_ignoring_case`).
    let mapped: BTreeMap<String, (&str, &[String])> = config
        .groups
        .iter()
        .map(|g| {
            let key = g.iam_group.to_ascii_lowercase();
            (key, (g.iam_group.as_str(), g.kubernetes_groups.as_slice()))
        })
        .collect();
    let mut members: BTreeMap<String, (IamUser, BTreeSet<String>)> = BTreeMap::new();
    let scope = match trigger {
        Trigger::Users(names) => {
            // Both reads of a user at once, and the users of a batch IAM_CONCURRENCY at a time:
            // on the warm path these reads are most of an event's latency. A user deleted
            // meanwhile makes ListGroupsForUser say NoSuchEntity too, which reads as no groups.
            let reads: Vec<_> = futures::stream::iter(names)
                .map(|name| async move {
                    let (user, groups) =
                        futures::try_join!(iam.user(name), iam.groups_for_user(name))?;
                    Ok::<_, IamError>((name, user, groups))
                })
                .buffered(IAM_CONCURRENCY)
                .try_collect()
                .await?;
            for (name, user, groups) in reads {
                let Some(user) = user else {
                    tracing::info!(principal = %name, "IAM user no longer exists; its entry goes");
                    continue;
                };
                let groups = groups.unwrap_or_default();
                for group in &groups {
                    if let Some((_, kubernetes_groups)) = mapped.get(&group.to_ascii_lowercase()) {
                        grant(&mut members, &user, kubernetes_groups);
                    }
                }
            }
            Scope::Users(names.clone())
        }
        // A role event: no user is in scope, so no user is read or touched.
        Trigger::Roles(names) => Scope::Roles(names.clone()),
        Trigger::All => {
            // The mapped groups IAM_CONCURRENCY at a time, merged in the config's order.
            let reads: Vec<_> = futures::stream::iter(mapped.values())
                .map(|(group, kubernetes_groups)| async move {
                    let found = members_ignoring_case(iam, group).await?;
                    Ok::<_, IamError>((group, kubernetes_groups, found))
                })
                .buffered(IAM_CONCURRENCY)
                .try_collect()
                .await?;
            for (group, kubernetes_groups, found) in reads {
                match found {
                    Some(users) => {
                        for user in &users {
                            grant(&mut members, user, kubernetes_groups);
                        }
                    }
                    None => tracing::warn!(iam_group = %group, "mapped IAM group does not exist"),
                }
            }
            Scope::All
        }
    };
    let mut entries = BTreeMap::new();
    for (name, (user, groups)) in members {
        let arn = UserArn::parse(&user.arn).map_err(|_| IamError::BadArn {
            principal: name.clone(),
            arn: user.arn.clone(),
        })?;
        let account = arn
            .as_str()
            .split(':')
            .nth(4)
            .unwrap_or_default()
            .to_string();
        let username = config.render_username(&name, &account);
        entries.insert(arn, Mapping::new(username, groups).for_principal(user.id));
    }
    Ok(Desired { scope, entries })
}

fn grant(
    members: &mut BTreeMap<String, (IamUser, BTreeSet<String>)>,
    user: &IamUser,
    kubernetes_groups: &[String],
) {
    members
        .entry(user.name.clone())
        .or_insert_with(|| (user.clone(), BTreeSet::new()))
        .1
        .extend(kubernetes_groups.iter().cloned());
}

/// [`IamDirectory`] over aws-sdk-iam.
pub struct SdkIam {
    client: aws_sdk_iam::Client,
    /// For role lookups in the accounts of clusters reached through a role.
    identities: Option<std::sync::Arc<dyn CredentialsFor>>,
    clients: std::sync::Mutex<std::collections::HashMap<String, aws_sdk_iam::Client>>,
}

impl SdkIam {
    pub fn new(client: aws_sdk_iam::Client) -> Self {
        Self {
            client,
            identities: None,
            clients: Default::default(),
        }
    }

    /// Looks roles up as the role each cluster is reached through (the same identities the
    /// cluster's EKS calls use), so `permissionSet` resolves in that cluster's account.
    pub fn with_identities(mut self, identities: std::sync::Arc<dyn CredentialsFor>) -> Self {
        self.identities = Some(identities);
        self
    }

    /// GetRole in the account of `identity`; `None`: NoSuchEntity.
    async fn get_role(
        &self,
        identity: Option<&str>,
        name: &str,
    ) -> Result<Option<aws_sdk_iam::types::Role>, IamError> {
        let client = self.client_as(identity)?;
        match client.get_role().role_name(name).send().await {
            Ok(out) => Ok(out.role().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(call_error("GetRole", name, e)),
        }
    }

    fn client_as(&self, identity: Option<&str>) -> Result<aws_sdk_iam::Client, IamError> {
        let Some(role_arn) = identity else {
            return Ok(self.client.clone());
        };
        let mut clients = self.clients.lock().expect("iam clients lock");
        if let Some(client) = clients.get(role_arn) {
            return Ok(client.clone());
        }
        let no_identity = |detail: String| IamError::Call {
            operation: "AssumeRole",
            principal: role_arn.to_owned(),
            detail,
        };
        let identities = self.identities.as_ref().ok_or_else(|| {
            no_identity("this IAM client was built without role assumption".into())
        })?;
        let credentials = identities
            .credentials_for(Some(role_arn))
            .map_err(|e| no_identity(e.to_string()))?;
        let config = self
            .client
            .config()
            .to_builder()
            .credentials_provider(credentials)
            .build();
        let client = aws_sdk_iam::Client::from_conf(config);
        clients.insert(role_arn.to_owned(), client.clone());
        Ok(client)
    }
}

/// IAM returns policy documents URL-encoded (IAM API Reference, GetRole:
/// `AssumeRolePolicyDocument`, "URL-encoded compliant with RFC 3986"). A document that does not
/// decode to UTF-8 is kept as it came, and reads as a policy that cannot be parsed.
fn decode_policy(encoded: &str) -> String {
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map(|text| text.into_owned())
        .unwrap_or_else(|_| encoded.to_owned())
}

fn iam_role(role: &aws_sdk_iam::types::Role) -> IamRole {
    IamRole {
        name: role.role_name().to_string(),
        arn: role.arn().to_string(),
        path: role.path().to_string(),
        id: role.role_id().to_string(),
    }
}

/// Keeps the SDK's whole error chain (service code, message, request id) in one string.
fn call_error<E>(operation: &'static str, principal: &str, e: E) -> IamError
where
    E: std::error::Error + 'static,
{
    IamError::Call {
        operation,
        principal: principal.to_string(),
        detail: aws_sdk_iam::error::DisplayErrorContext(e).to_string(),
    }
}

fn iam_user(user: &aws_sdk_iam::types::User) -> IamUser {
    IamUser {
        name: user.user_name().to_string(),
        arn: user.arn().to_string(),
        id: user.user_id().to_string(),
    }
}

impl IamDirectory for SdkIam {
    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<IamUser>, IamError>> {
        Box::pin(async move {
            match self.client.get_user().user_name(name).send().await {
                Ok(out) => Ok(out.user().map(iam_user)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_no_such_entity_exception()) =>
                {
                    Ok(None)
                }
                Err(e) => Err(call_error("GetUser", name, e)),
            }
        })
    }

    fn groups_for_user<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, IamError>> {
        Box::pin(async move {
            let mut pages = self
                .client
                .list_groups_for_user()
                .user_name(name)
                .into_paginator()
                .send();
            let mut groups = Vec::new();
            while let Some(page) = pages.next().await {
                match page {
                    Ok(page) => {
                        groups.extend(page.groups().iter().map(|g| g.group_name().to_string()))
                    }
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_no_such_entity_exception()) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(call_error("ListGroupsForUser", name, e)),
                }
            }
            Ok(Some(groups))
        })
    }

    fn group_members<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IamUser>>, IamError>> {
        Box::pin(async move {
            let mut pages = self
                .client
                .get_group()
                .group_name(group)
                .into_paginator()
                .send();
            let mut users = Vec::new();
            while let Some(page) = pages.next().await {
                match page {
                    Ok(page) => users.extend(page.users().iter().map(iam_user)),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_no_such_entity_exception()) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(call_error("GetGroup", group, e)),
                }
            }
            Ok(Some(users))
        })
    }

    fn roles_under<'a>(
        &'a self,
        identity: Option<&'a str>,
        path_prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IamRole>, IamError>> {
        Box::pin(async move {
            let client = self.client_as(identity)?;
            let mut pages = client
                .list_roles()
                .path_prefix(path_prefix)
                .into_paginator()
                .send();
            let mut roles = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| call_error("ListRoles", path_prefix, e))?;
                roles.extend(page.roles().iter().map(iam_role));
            }
            Ok(roles)
        })
    }

    fn role<'a>(
        &'a self,
        identity: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<IamRole>, IamError>> {
        Box::pin(async move { Ok(self.get_role(identity, name).await?.as_ref().map(iam_role)) })
    }

    fn role_trust<'a>(
        &'a self,
        identity: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<RoleTrust>, IamError>> {
        Box::pin(async move {
            Ok(self.get_role(identity, name).await?.map(|role| RoleTrust {
                name: role.role_name().to_owned(),
                path: role.path().to_owned(),
                document: role
                    .assume_role_policy_document()
                    .map(decode_policy)
                    .unwrap_or_default(),
            }))
        })
    }

    fn group_names(&self) -> BoxFuture<'_, Result<Vec<String>, IamError>> {
        Box::pin(async move {
            let mut pages = self.client.list_groups().into_paginator().send();
            let mut names = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| call_error("ListGroups", "(all groups)", e))?;
                names.extend(page.groups().iter().map(|g| g.group_name().to_string()));
            }
            Ok(names)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClusterRef, GroupMapping};
    use std::collections::HashMap;

    /// IAM state as plain maps; the end-to-end tests run the same code against moto.
    #[derive(Default)]
    struct Directory {
        users: HashMap<String, String>,
        groups: HashMap<String, Vec<String>>,
    }

    impl Directory {
        fn with(mut self, user: &str, groups: &[&str]) -> Self {
            self.users.insert(
                user.into(),
                format!("arn:aws:iam::123456789012:user/{user}"),
            );
            for g in groups {
                self.groups
                    .entry(g.to_string())
                    .or_default()
                    .push(user.into());
            }
            self
        }
    }

    /// A stable stand-in for IAM's `UserId`.
    fn id_of(name: &str) -> String {
        format!("AIDA{}", name.to_ascii_uppercase())
    }

    impl IamDirectory for Directory {
        fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<IamUser>, IamError>> {
            let user = self.users.get(name).map(|arn| IamUser {
                name: name.into(),
                arn: arn.clone(),
                id: id_of(name),
            });
            Box::pin(async move { Ok(user) })
        }
        fn groups_for_user<'a>(
            &'a self,
            name: &'a str,
        ) -> BoxFuture<'a, Result<Option<Vec<String>>, IamError>> {
            let groups = self.users.contains_key(name).then(|| {
                let mut g: Vec<String> = self
                    .groups
                    .iter()
                    .filter(|(_, members)| members.iter().any(|m| m == name))
                    .map(|(g, _)| g.clone())
                    .collect();
                g.sort();
                g
            });
            Box::pin(async move { Ok(groups) })
        }
        fn group_members<'a>(
            &'a self,
            group: &'a str,
        ) -> BoxFuture<'a, Result<Option<Vec<IamUser>>, IamError>> {
            let members = self.groups.get(group).map(|m| {
                m.iter()
                    .map(|name| IamUser {
                        name: name.clone(),
                        arn: self.users[name].clone(),
                        id: id_of(name),
                    })
                    .collect()
            });
            Box::pin(async move { Ok(members) })
        }
        fn group_names(&self) -> BoxFuture<'_, Result<Vec<String>, IamError>> {
            let names = self.groups.keys().cloned().collect();
            Box::pin(async move { Ok(names) })
        }
    }

    fn config() -> Config {
        Config {
            groups: vec![
                GroupMapping {
                    iam_group: "eks-developers".into(),
                    kubernetes_groups: vec!["developers".into()],
                },
                GroupMapping {
                    iam_group: "eks-viewers".into(),
                    kubernetes_groups: vec!["viewers".into(), "developers".into()],
                },
            ],
            clusters: vec![ClusterRef::new("dev-1", "us-east-1")],
            ..Config::default()
        }
    }

    fn users(names: &[&str]) -> Trigger {
        Trigger::Users(names.iter().map(|s| s.to_string()).collect())
    }

    #[tokio::test]
    async fn user_gets_union_of_mapped_groups_sorted() {
        let iam = Directory::default().with("alice", &["eks-developers", "eks-viewers", "other"]);
        let d = desired(&iam, &config(), &users(&["alice"])).await.unwrap();
        let mapping = d.entries.values().next().unwrap();
        assert_eq!(mapping.username, "alice");
        assert_eq!(mapping.groups, vec!["developers", "viewers"]);
        assert_eq!(d.scope, Scope::Users(["alice".to_string()].into()));
    }

    #[tokio::test]
    async fn user_in_no_mapped_group_is_not_desired_but_in_scope() {
        let iam = Directory::default().with("bob", &["other"]);
        let d = desired(&iam, &config(), &users(&["bob"])).await.unwrap();
        assert!(d.entries.is_empty());
        assert!(d.scope.covers("bob"));
    }

    #[tokio::test]
    async fn deleted_user_is_in_scope_with_no_entry() {
        let d = desired(&Directory::default(), &config(), &users(&["gone"]))
            .await
            .unwrap();
        assert!(d.entries.is_empty());
        assert!(d.scope.covers("gone"));
    }

    #[tokio::test]
    async fn full_reconcile_reads_every_mapped_group_and_tolerates_missing_ones() {
        let iam = Directory::default()
            .with("alice", &["eks-developers"])
            .with("carol", &["eks-viewers"]);
        let d = desired(&iam, &config(), &Trigger::All).await.unwrap();
        assert_eq!(d.scope, Scope::All);
        let names: Vec<&str> = d.entries.values().map(|m| m.username.as_str()).collect();
        assert_eq!(names, vec!["alice", "carol"]);
    }

    #[tokio::test]
    async fn every_desired_entry_carries_the_iam_user_id_on_both_paths() {
        let iam = Directory::default().with("alice", &["eks-developers"]);
        for trigger in [users(&["alice"]), Trigger::All] {
            let d = desired(&iam, &config(), &trigger).await.unwrap();
            let mapping = d.entries.values().next().unwrap();
            assert_eq!(
                mapping.principal_id.as_deref(),
                Some("AIDAALICE"),
                "{trigger:?}"
            );
        }
    }

    #[tokio::test]
    async fn username_template_uses_the_account_of_the_arn() {
        let iam = Directory::default().with("alice", &["eks-developers"]);
        let config = Config {
            username_template: "{{AccountID}}:{{UserName}}".into(),
            ..config()
        };
        let d = desired(&iam, &config, &users(&["alice"])).await.unwrap();
        assert_eq!(
            d.entries.values().next().unwrap().username,
            "123456789012:alice"
        );
    }

    /// Like moto: GetGroup finds a group only under IAM's own spelling.
    #[tokio::test]
    async fn group_names_match_ignoring_case_on_both_paths() {
        for (in_iam, configured) in [
            ("EKS-Developers", "eks-developers"),
            ("eks-viewers", "EKS-VIEWERS"),
        ] {
            let iam = Directory::default().with("alice", &[in_iam]);
            let mut config = config();
            config.groups[0].iam_group = configured.into();
            config.groups[1].iam_group = "unused".into();
            let event = desired(&iam, &config, &users(&["alice"])).await.unwrap();
            let reconcile = desired(&iam, &config, &Trigger::All).await.unwrap();
            assert_eq!(event.entries, reconcile.entries, "{in_iam} vs {configured}");
            let mapping = event.entries.values().next().expect("alice is granted");
            assert_eq!(mapping.groups, vec!["developers"]);
        }
    }

    #[tokio::test]
    async fn a_group_missing_under_every_spelling_grants_nothing() {
        let iam = Directory::default().with("alice", &["other"]);
        let d = desired(&iam, &config(), &Trigger::All).await.unwrap();
        assert!(d.entries.is_empty());
    }

    #[test]
    fn trust_policies_are_decoded_from_the_url_encoding_iam_returns() {
        let encoded = "%7B%22Statement%22%3A%5B%7B%22Condition%22%3A%7B%22StringEquals%22%3A%7B%22sts%3ARoleSessionName%22%3A%22%24%7Baws%3Ausername%7D%22%7D%7D%7D%5D%7D";
        assert_eq!(
            decode_policy(encoded),
            r#"{"Statement":[{"Condition":{"StringEquals":{"sts:RoleSessionName":"${aws:username}"}}}]}"#
        );
        // Already plain JSON (as some emulators return it), and `+`, which RFC 3986 keeps.
        assert_eq!(decode_policy(r#"{"a":"b+c"}"#), r#"{"a":"b+c"}"#);
        assert_eq!(decode_policy("%FF"), "%FF");
    }
}
