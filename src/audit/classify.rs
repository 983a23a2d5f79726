//! Which kind of identity each path into a cluster is: the audit's one decision, pure.
//!
//! A path is traceable when the Kubernetes username it yields names a person. That is so for
//! an IAM user (one user, one person), and for a role only when the username carries
//! something of the session that the person cannot choose: `{{AccessKeyID}}` (the session's
//! key, which STS issues and CloudTrail ties to the AssumeRole call and so to the caller), or
//! `{{SessionName}}`/`{{SessionNameRaw}}` when the role's trust policy pins the session name or
//! Identity Center sets it ([`super::trust`]). A session name anyone who may assume the role
//! can choose is *self-declared*: it names whoever the caller claims to be. EKS's default
//! username for a role access entry is the session's STS ARN,
//! `arn:aws:sts::ACCOUNT:assumed-role/ROLE/{{SessionName}}`, and so carries the session name too
//! (EKS user guide, "Creating access entries": the default username). A role mapped to a fixed
//! username is shared: everyone who can assume it appears as the same user.
//!
//! Machine identities are the function's own role, the configured `roleArn`s and
//! `serviceIdentities`, never whoever runs the audit: an operator typically runs it as a session
//! of the very shared admin role it must flag. A node's username template or access entry type
//! makes a node path only while the path grants no more than a node's groups.

use serde::Serialize;

use super::trust::SessionNaming;

/// Where a path is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Source {
    #[serde(rename = "mapUsers")]
    MapUsers,
    #[serde(rename = "mapRoles")]
    MapRoles,
    #[serde(rename = "mapAccounts")]
    MapAccounts,
    #[serde(rename = "accessEntry")]
    AccessEntry,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MapUsers => "mapUsers",
            Self::MapRoles => "mapRoles",
            Self::MapAccounts => "mapAccounts",
            Self::AccessEntry => "accessEntry",
        }
    }

    pub fn is_aws_auth(self) -> bool {
        self != Self::AccessEntry
    }
}

/// What kind of identity a path lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// The username names one person: an IAM user, or a role session whose name or key the
    /// person cannot choose.
    PerPerson,
    /// The username carries a session name that whoever assumes the role chooses freely: it
    /// names whoever the caller claims to be.
    SelfDeclared,
    /// Nodes and Fargate pods: EKS's own machinery.
    Node,
    /// `mapAccounts`: every principal of an account, each named by its canonical ARN (a role
    /// session therefore by its role, not by the person).
    AccountWide,
    /// A role mapped to a fixed username: everyone who can assume it looks the same.
    Shared,
    /// A machine identity: the tool itself or one the config lists.
    Service,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::PerPerson,
        Class::SelfDeclared,
        Class::Node,
        Class::AccountWide,
        Class::Shared,
        Class::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerPerson => "per-person",
            Self::SelfDeclared => "self-declared",
            Self::Node => "node",
            Self::AccountWide => "account-wide",
            Self::Shared => "shared",
            Self::Service => "service",
        }
    }
}

/// An access policy associated with an access entry, and its scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicy {
    pub policy_arn: String,
    /// `cluster` or `namespace`.
    pub scope: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// One path as read from the cluster, before it is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInput {
    pub source: Source,
    /// The IAM ARN the path names (an account id for `mapAccounts`).
    pub principal: String,
    /// The username as stored (templates not rendered); empty for `mapAccounts`.
    pub username: String,
    pub groups: Vec<String>,
    /// The access entry's `type` (`STANDARD`, `EC2_LINUX`, ...).
    pub entry_type: Option<String>,
    pub policies: Vec<AccessPolicy>,
}

/// The Kubernetes groups every node is in; a path granting only these grants a node's rights.
pub const NODE_GROUPS: [&str; 2] = ["system:bootstrappers", "system:nodes"];
/// Access entry types EKS gives node rights (EKS API Reference, `CreateAccessEntry`, `type`).
pub const NODE_ENTRY_TYPES: [&str; 6] = [
    "EC2_LINUX",
    "EC2_WINDOWS",
    "FARGATE_LINUX",
    "HYBRID_LINUX",
    "EC2",
    "HYPERPOD_LINUX",
];
/// The placeholders that put something of the session into a username (aws-iam-authenticator
/// `renderTemplate`; EKS access entries accept the same).
pub const SESSION_PLACEHOLDERS: [&str; 3] =
    ["{{SessionName}}", "{{SessionNameRaw}}", ACCESS_KEY_ID];
/// The session's access key: issued by STS, never chosen by the caller.
const ACCESS_KEY_ID: &str = "{{AccessKeyID}}";
const EC2_PRIVATE_DNS_NAME: &str = "{{EC2PrivateDNSName}}";

/// The machine identities of a run, compared as the authenticator compares ARNs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Services(std::collections::BTreeSet<String>);

impl Services {
    pub fn new<'a>(arns: impl IntoIterator<Item = &'a str>) -> Self {
        Self(arns.into_iter().map(identity_key).collect())
    }

    pub fn insert(&mut self, arn: &str) {
        self.0.insert(identity_key(arn));
    }

    pub fn contains(&self, arn: &str) -> bool {
        self.0.contains(&identity_key(arn))
    }
}

/// An ARN as the authenticator matches it: a session's ARN as its role's
/// (`arn:P:sts::A:assumed-role/R/S` -> `arn:P:iam::A:role/R`), a role's path dropped
/// (`arn.StripPath`), lower-cased (mappings are keyed by the lower-cased ARN).
pub fn identity_key(arn: &str) -> String {
    let lower = arn.to_ascii_lowercase();
    let parts: Vec<&str> = lower.splitn(6, ':').collect();
    if let ["arn", partition, "sts", _, account, resource] = parts.as_slice() {
        if let Some(rest) = resource.strip_prefix("assumed-role/") {
            if let Some((role, _session)) = rest.rsplit_once('/') {
                let name = role.rsplit('/').next().unwrap_or(role);
                return format!("arn:{partition}:iam::{account}:role/{name}");
            }
        }
    }
    match lower.split_once(":role/") {
        Some((head, path_and_name)) => {
            let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
            format!("{head}:role/{name}")
        }
        None => lower,
    }
}

/// A path's class and the rule that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub class: Class,
    pub why: String,
}

/// What the trust policies of the session-named roles say, keyed as the authenticator matches
/// ARNs ([`identity_key`]). A role missing here is read conservatively: self-declared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusts(std::collections::BTreeMap<String, SessionNaming>);

impl Trusts {
    pub fn insert(&mut self, role_arn: &str, naming: SessionNaming) {
        self.0.insert(identity_key(role_arn), naming);
    }

    pub fn get(&self, role_arn: &str) -> Option<&SessionNaming> {
        self.0.get(&identity_key(role_arn))
    }
}

/// Whether the class of `path` depends on its role's trust policy: a role, not a machine,
/// whose username carries the session name (and not the access key, which settles it).
pub fn needs_trust(path: &PathInput, services: &Services) -> bool {
    path.source != Source::MapAccounts
        && !services.contains(&path.principal)
        && is_role(&path.principal)
        && !path.username.contains(ACCESS_KEY_ID)
        && SESSION_PLACEHOLDERS
            .iter()
            .any(|p| path.username.contains(p))
}

/// The class of one path. The first rule that applies wins: account-wide, service, node (only
/// within node groups), IAM user, the session's access key in the username, the session name in
/// the username (per-person when the trust policy pins it, else self-declared), else shared.
pub fn classify(path: &PathInput, services: &Services, trusts: &Trusts) -> Classified {
    let is = |class, why: &str| Classified {
        class,
        why: why.to_owned(),
    };
    if path.source == Source::MapAccounts {
        return is(
            Class::AccountWide,
            "mapAccounts lets in every principal of the account",
        );
    }
    if services.contains(&path.principal) {
        return is(
            Class::Service,
            "a machine identity (the function's own role, a configured roleArn or one listed in serviceIdentities)",
        );
    }
    let node_type = path
        .entry_type
        .as_deref()
        .is_some_and(|t| NODE_ENTRY_TYPES.contains(&t));
    let node_username = path.username.contains(EC2_PRIVATE_DNS_NAME)
        || (path.username.starts_with("system:node:") && path.username.contains("{{"));
    let beyond = beyond_node_groups(path);
    if node_type && !beyond {
        return is(Class::Node, "a node access entry type");
    }
    if node_username && !beyond {
        return is(Class::Node, "a node username template");
    }
    if is_user(&path.principal) {
        return is(Class::PerPerson, "an IAM user");
    }
    if path.username.contains(ACCESS_KEY_ID) {
        return is(
            Class::PerPerson,
            "the username carries the session's access key id, which STS issues and CloudTrail ties to whoever assumed the role",
        );
    }
    if SESSION_PLACEHOLDERS
        .iter()
        .any(|p| path.username.contains(p))
    {
        return match trusts.get(&path.principal) {
            Some(SessionNaming::Pinned(why)) => Classified {
                class: Class::PerPerson,
                why: format!("the username carries the session name, and {why}"),
            },
            Some(SessionNaming::Free(why)) => Classified {
                class: Class::SelfDeclared,
                why: format!("the username carries the session name, but {why}"),
            },
            None => Classified {
                class: Class::SelfDeclared,
                why: format!(
                    "the username carries the session name, but the role's trust policy was not read, so whoever assumes it may have chosen the name; {}",
                    super::trust::FIX
                ),
            },
        };
    }
    if node_type || node_username {
        return is(
            Class::Shared,
            "looks like a node (its username template or entry type) but grants more than node groups, so it is not a node path: everyone who can assume the role gets those grants under a name that is no person's",
        );
    }
    is(Class::Shared, "a role mapped to a fixed username")
}

/// Whether a path grants more than a node gets: any group beyond [`NODE_GROUPS`], or any
/// access policy.
pub fn beyond_node_groups(path: &PathInput) -> bool {
    !path.policies.is_empty()
        || path
            .groups
            .iter()
            .any(|g| !NODE_GROUPS.contains(&g.as_str()))
}

fn is_user(arn: &str) -> bool {
    iam_resource(arn).is_some_and(|r| r.starts_with("user/"))
}

fn is_role(arn: &str) -> bool {
    iam_resource(arn).is_some_and(|r| r.starts_with("role/"))
}

/// The resource part of an IAM ARN (`user/...`, `role/...`).
fn iam_resource(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", _, _, resource] => Some(resource),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn path(source: Source, principal: &str, username: &str) -> PathInput {
        PathInput {
            source,
            principal: principal.into(),
            username: username.into(),
            groups: Vec::new(),
            entry_type: (source == Source::AccessEntry).then(|| "STANDARD".into()),
            policies: Vec::new(),
        }
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/eks-cluster-admin";
    const PINNED: &str = "arn:aws:iam::123456789012:role/team/eks-pinned";

    /// ROLE's session name is free, PINNED's pinned (keyed without its path, as IAM's
    /// principal is in aws-auth).
    fn trusts() -> Trusts {
        let mut trusts = Trusts::default();
        trusts.insert(ROLE, SessionNaming::Free("anyone chooses it; fix".into()));
        trusts.insert(
            "arn:aws:iam::123456789012:role/EKS-PINNED",
            SessionNaming::Pinned("it is pinned".into()),
        );
        trusts
    }

    fn class(p: &PathInput) -> Class {
        classify(p, &Services::default(), &trusts()).class
    }

    #[test]
    fn each_rule_gives_its_class() {
        let cases = [
            (
                path(
                    Source::MapUsers,
                    "arn:aws:iam::123456789012:user/alice",
                    "alice",
                ),
                Class::PerPerson,
            ),
            (
                path(
                    Source::AccessEntry,
                    "arn:aws:iam::123456789012:user/alice",
                    "arn:aws:iam::123456789012:user/alice",
                ),
                Class::PerPerson,
            ),
            (
                path(Source::MapRoles, ROLE, "admin:{{SessionName}}"),
                Class::SelfDeclared,
            ),
            (
                path(Source::MapRoles, ROLE, "x-{{SessionNameRaw}}"),
                Class::SelfDeclared,
            ),
            (
                path(Source::MapRoles, PINNED, "admin:{{SessionName}}"),
                Class::PerPerson,
            ),
            (
                path(Source::MapRoles, ROLE, "k:{{AccessKeyID}}"),
                Class::PerPerson,
            ),
            (
                path(Source::MapRoles, ROLE, "{{SessionName}}:{{AccessKeyID}}"),
                Class::PerPerson,
            ),
            (
                path(
                    Source::AccessEntry,
                    ROLE,
                    "arn:aws:sts::123456789012:assumed-role/eks-cluster-admin/{{SessionName}}",
                ),
                Class::SelfDeclared,
            ),
            (
                path(
                    Source::AccessEntry,
                    PINNED,
                    "arn:aws:sts::123456789012:assumed-role/eks-pinned/{{SessionName}}",
                ),
                Class::PerPerson,
            ),
            // A role whose trust policy was not read is self-declared.
            (
                path(
                    Source::MapRoles,
                    "arn:aws:iam::123456789012:role/unread",
                    "u:{{SessionName}}",
                ),
                Class::SelfDeclared,
            ),
            (
                path(Source::MapRoles, ROLE, "system:node:{{EC2PrivateDNSName}}"),
                Class::Node,
            ),
            (
                path(Source::MapRoles, ROLE, "system:node:{{SessionName}}"),
                Class::Node,
            ),
            (
                path(Source::MapAccounts, "123456789012", ""),
                Class::AccountWide,
            ),
            (
                path(Source::MapRoles, ROLE, "eks-cluster-admin"),
                Class::Shared,
            ),
            (
                path(Source::AccessEntry, ROLE, "eks-cluster-admin"),
                Class::Shared,
            ),
            (path(Source::MapRoles, ROLE, ""), Class::Shared),
        ];
        for (input, expected) in cases {
            assert_eq!(class(&input), expected, "{input:?}");
        }
        let mut node_entry = path(Source::AccessEntry, ROLE, "anything");
        node_entry.entry_type = Some("FARGATE_LINUX".into());
        assert_eq!(class(&node_entry), Class::Node);
    }

    #[test]
    fn the_reason_of_a_session_name_path_says_why_and_how_to_fix_it() {
        let free = classify(
            &path(Source::MapRoles, ROLE, "admin:{{SessionName}}"),
            &Services::default(),
            &trusts(),
        );
        assert!(free.why.contains("anyone chooses it; fix"), "{}", free.why);
        let unread = classify(
            &path(
                Source::MapRoles,
                "arn:aws:iam::123456789012:role/x",
                "{{SessionName}}",
            ),
            &Services::default(),
            &trusts(),
        );
        assert!(
            unread.why.contains("was not read") && unread.why.ends_with(super::super::trust::FIX),
            "{}",
            unread.why
        );
        let pinned = classify(
            &path(Source::MapRoles, PINNED, "{{SessionName}}"),
            &Services::default(),
            &trusts(),
        );
        assert!(pinned.why.ends_with("it is pinned"), "{}", pinned.why);
    }

    /// A node's username or entry type with more than a node's groups is a way in for whoever
    /// can assume the role: shared, not node.
    #[test]
    fn a_node_template_granting_more_than_node_groups_is_not_a_node() {
        let mut fake = path(Source::MapRoles, ROLE, "system:node:{{EC2PrivateDNSName}}");
        fake.groups = vec![
            "system:bootstrappers".into(),
            "system:nodes".into(),
            "system:masters".into(),
        ];
        let got = classify(&fake, &Services::default(), &trusts());
        assert_eq!(got.class, Class::Shared);
        assert!(got.why.contains("not a node path"), "{}", got.why);
        let mut entry = path(Source::AccessEntry, ROLE, "x");
        entry.entry_type = Some("EC2_LINUX".into());
        entry.policies.push(AccessPolicy {
            policy_arn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy".into(),
            scope: "cluster".into(),
            namespaces: Vec::new(),
        });
        assert_eq!(class(&entry), Class::Shared);
        fake.groups.truncate(2);
        assert_eq!(class(&fake), Class::Node);
    }

    #[test]
    fn services_match_sessions_paths_and_case() {
        let services = Services::new([
            "arn:aws:sts::123456789012:assumed-role/eks-iam-sync/run-1",
            "arn:aws:iam::123456789012:role/ci/Deployer",
        ]);
        for arn in [
            "arn:aws:iam::123456789012:role/eks-iam-sync",
            "arn:aws:iam::123456789012:role/team/EKS-IAM-SYNC",
            "arn:aws:iam::123456789012:role/deployer",
        ] {
            assert!(services.contains(arn), "{arn}");
            let p = path(Source::MapRoles, arn, "fixed {{SessionName}}");
            assert_eq!(
                classify(&p, &services, &Trusts::default()).class,
                Class::Service
            );
            assert!(!needs_trust(&p, &services));
        }
        assert!(!services.contains("arn:aws:iam::210987654321:role/eks-iam-sync"));
    }

    #[test]
    fn only_session_named_roles_need_their_trust_policy() {
        let none = Services::default();
        assert!(needs_trust(
            &path(Source::MapRoles, ROLE, "a:{{SessionName}}"),
            &none
        ));
        assert!(needs_trust(
            &path(Source::AccessEntry, ROLE, "{{SessionNameRaw}}"),
            &none
        ));
        assert!(!needs_trust(
            &path(Source::MapRoles, ROLE, "{{AccessKeyID}}-{{SessionName}}"),
            &none
        ));
        assert!(!needs_trust(&path(Source::MapRoles, ROLE, "fixed"), &none));
        assert!(!needs_trust(
            &path(
                Source::MapUsers,
                "arn:aws:iam::123456789012:user/a",
                "{{SessionName}}"
            ),
            &none
        ));
    }

    #[test]
    fn node_groups_alone_are_not_beyond_a_node() {
        let mut p = path(Source::MapRoles, ROLE, "eks-cluster-admin");
        p.groups = vec!["system:nodes".into(), "system:bootstrappers".into()];
        assert!(!beyond_node_groups(&p));
        p.groups.push("system:masters".into());
        assert!(beyond_node_groups(&p));
        p.groups.clear();
        p.policies.push(AccessPolicy {
            policy_arn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy".into(),
            scope: "cluster".into(),
            namespaces: Vec::new(),
        });
        assert!(beyond_node_groups(&p));
    }

    fn any_source() -> impl Strategy<Value = Source> {
        prop_oneof![
            Just(Source::MapUsers),
            Just(Source::MapRoles),
            Just(Source::MapAccounts),
            Just(Source::AccessEntry)
        ]
    }

    fn any_principal() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("user/"), Just("role/"), Just("role/some/path/")],
            prop_oneof![
                Just("eks-cluster-admin".to_string()),
                Just("eks-pinned".to_string()),
                "[A-Za-z0-9+=,.@_-]{1,12}"
            ],
        )
            .prop_map(|(kind, name)| format!("arn:aws:iam::123456789012:{kind}{name}"))
    }

    fn any_username() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just(String::new()),
                Just("system:node:".to_string()),
                "[a-z:-]{0,8}"
            ],
            prop_oneof![
                Just(""),
                Just("{{SessionName}}"),
                Just("{{SessionNameRaw}}"),
                Just("{{AccessKeyID}}"),
                Just("{{AccountID}}"),
                Just("{{EC2PrivateDNSName}}")
            ],
            "[a-z]{0,4}",
        )
            .prop_map(|(a, p, b)| format!("{a}{p}{b}"))
    }

    fn any_groups() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(
            prop_oneof![
                Just("system:nodes".to_string()),
                Just("system:bootstrappers".to_string()),
                Just("system:masters".to_string()),
                "[a-z]{1,6}"
            ],
            0..4,
        )
    }

    fn any_path() -> impl Strategy<Value = PathInput> {
        (
            any_source(),
            any_principal(),
            any_username(),
            any_groups(),
            proptest::option::of(prop_oneof![
                Just("STANDARD".to_string()),
                Just("EC2_LINUX".to_string()),
                Just("FARGATE_LINUX".to_string())
            ]),
        )
            .prop_map(
                |(source, principal, username, groups, entry_type)| PathInput {
                    source,
                    principal,
                    username,
                    groups,
                    entry_type,
                    policies: Vec::new(),
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Each class follows its definition: shared is a non-user with nothing of the session
        /// in its username; per-person is an IAM user, the session's key, or a session name
        /// whose role's trust pins it; self-declared is a session name not known to be pinned;
        /// node is a node template or type granting no more than node groups. So a shared or
        /// self-declared mapping can never hide as per-person or node.
        #[test]
        fn every_class_follows_its_definition(path in any_path()) {
            let got = classify(&path, &Services::default(), &trusts()).class;
            let has = |p: &str| path.username.contains(p);
            let session_name = has("{{SessionName}}") || has("{{SessionNameRaw}}");
            let key = has("{{AccessKeyID}}");
            let user = path.principal.contains(":user/");
            let pinned = matches!(trusts().get(&path.principal), Some(SessionNaming::Pinned(_)));
            let node_like = has("{{EC2PrivateDNSName}}")
                || path.entry_type.as_deref().is_some_and(|t| t != "STANDARD")
                || (path.username.starts_with("system:node:") && path.username.contains("{{"));
            let node = node_like && !beyond_node_groups(&path);
            match got {
                Class::Shared => prop_assert!(!user && !key && !session_name && !node
                    && path.source != Source::MapAccounts),
                Class::PerPerson => prop_assert!(!node && (user || key || (session_name && pinned))),
                Class::SelfDeclared => prop_assert!(!node && !user && !key && session_name && !pinned),
                Class::Node => prop_assert!(node),
                Class::AccountWide => prop_assert_eq!(path.source, Source::MapAccounts),
                Class::Service => prop_assert!(false, "no services were given"),
            }
        }

        /// Listing a path's principal as a machine identity makes it `service`, whatever its
        /// ARN's case or role path; mapAccounts stays account-wide. Nothing else changes class.
        #[test]
        fn a_listed_principal_is_a_service(path in any_path(), other in any_path()) {
            let services = Services::new([path.principal.to_uppercase().as_str()]);
            let got = classify(&path, &services, &trusts()).class;
            if path.source == Source::MapAccounts {
                prop_assert_eq!(got, Class::AccountWide);
            } else {
                prop_assert_eq!(got, Class::Service);
            }
            if identity_key(&other.principal) != identity_key(&path.principal) {
                prop_assert_eq!(
                    classify(&other, &services, &trusts()),
                    classify(&other, &Services::default(), &trusts())
                );
            }
        }

        /// Wider grants never make a path look more traceable: the class changes only from
        /// node to something else, and only when the grants go beyond node groups.
        #[test]
        fn grants_change_the_class_only_by_ending_a_node(path in any_path(), groups in any_groups()) {
            let mut wider = path.clone();
            wider.groups = groups;
            wider.policies.push(AccessPolicy {
                policy_arn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy".into(),
                scope: "cluster".into(),
                namespaces: Vec::new(),
            });
            let before = classify(&path, &Services::default(), &trusts()).class;
            let after = classify(&wider, &Services::default(), &trusts()).class;
            prop_assert!(beyond_node_groups(&wider));
            prop_assert_ne!(after, Class::Node);
            if before != Class::Node {
                prop_assert_eq!(before, after);
            }
        }
    }
}
