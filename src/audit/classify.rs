//! Which kind of identity each path into a cluster is: the audit's one decision, pure.
//!
//! A path is traceable when the Kubernetes username it yields names a person. That is so for
//! an IAM user (one user, one person), and for a role only when the username carries
//! something of the session: `{{SessionName}}`, `{{SessionNameRaw}}` (the session name, which
//! Identity Center and most federations set to the person's name) or `{{AccessKeyID}}` (the
//! session's key, which CloudTrail ties to the AssumeRole call and so to the person). EKS's
//! default username for a role access entry is the session's STS ARN,
//! `arn:aws:sts::ACCOUNT:assumed-role/ROLE/{{SessionName}}`, and so carries it too (EKS user
//! guide, "Creating access entries": the default username). A role mapped to a fixed username
//! is shared: everyone who can assume it appears as the same user.

use serde::Serialize;

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
    /// The username names one person.
    PerPerson,
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
    pub const ALL: [Class; 5] = [
        Class::PerPerson,
        Class::Node,
        Class::AccountWide,
        Class::Shared,
        Class::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerPerson => "per-person",
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
    ["{{SessionName}}", "{{SessionNameRaw}}", "{{AccessKeyID}}"];
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
    pub why: &'static str,
}

/// The class of one path. The first rule that applies wins: account-wide, service, node,
/// IAM user, session in the username, else shared.
pub fn classify(path: &PathInput, services: &Services) -> Classified {
    let is = |class, why| Classified { class, why };
    if path.source == Source::MapAccounts {
        return is(
            Class::AccountWide,
            "mapAccounts lets in every principal of the account",
        );
    }
    if services.contains(&path.principal) {
        return is(
            Class::Service,
            "a machine identity (the tool's own or listed in serviceIdentities)",
        );
    }
    if let Some(entry_type) = &path.entry_type {
        if NODE_ENTRY_TYPES.contains(&entry_type.as_str()) {
            return is(Class::Node, "a node access entry type");
        }
    }
    if path.username.contains(EC2_PRIVATE_DNS_NAME)
        || (path.username.starts_with("system:node:") && path.username.contains("{{"))
    {
        return is(Class::Node, "a node username template");
    }
    if is_user(&path.principal) {
        return is(Class::PerPerson, "an IAM user");
    }
    if SESSION_PLACEHOLDERS
        .iter()
        .any(|p| path.username.contains(p))
    {
        return is(Class::PerPerson, "the username carries the session");
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
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", _, "iam", _, _, resource] if resource.starts_with("user/"))
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

    #[test]
    fn each_rule_gives_its_class() {
        let none = Services::default();
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
                Class::PerPerson,
            ),
            (
                path(Source::MapRoles, ROLE, "x-{{SessionNameRaw}}"),
                Class::PerPerson,
            ),
            (
                path(Source::MapRoles, ROLE, "k:{{AccessKeyID}}"),
                Class::PerPerson,
            ),
            (
                path(
                    Source::AccessEntry,
                    ROLE,
                    "arn:aws:sts::123456789012:assumed-role/eks-cluster-admin/{{SessionName}}",
                ),
                Class::PerPerson,
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
        for (input, class) in cases {
            assert_eq!(classify(&input, &none).class, class, "{input:?}");
        }
        let mut node_entry = path(Source::AccessEntry, ROLE, "anything");
        node_entry.entry_type = Some("FARGATE_LINUX".into());
        assert_eq!(classify(&node_entry, &none).class, Class::Node);
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
            assert_eq!(
                classify(&path(Source::MapRoles, arn, "fixed"), &services).class,
                Class::Service
            );
        }
        assert!(!services.contains("arn:aws:iam::210987654321:role/eks-iam-sync"));
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
            "[A-Za-z0-9+=,.@_-]{1,12}",
        )
            .prop_map(|(kind, name)| format!("arn:aws:iam::123456789012:{kind}{name}"))
    }

    fn any_username() -> impl Strategy<Value = String> {
        (
            "[a-z:-]{0,8}",
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

    fn any_path() -> impl Strategy<Value = PathInput> {
        (
            any_source(),
            any_principal(),
            any_username(),
            proptest::collection::vec(
                prop_oneof![
                    Just("system:nodes".to_string()),
                    Just("system:bootstrappers".to_string()),
                    "[a-z]{1,6}"
                ],
                0..4,
            ),
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

        /// A path classed as shared really is a role (or other non-user) with a username that
        /// carries nothing of the session, is not a node and not a known machine; a per-person
        /// path is an IAM user or carries the session. So a shared mapping can never hide as
        /// per-person, nor a per-person one be blamed as shared.
        #[test]
        fn shared_and_per_person_follow_their_definitions(path in any_path()) {
            let got = classify(&path, &Services::default()).class;
            let carries_session = SESSION_PLACEHOLDERS.iter().any(|p| path.username.contains(p));
            let user = path.principal.contains(":user/");
            let node = path.username.contains(EC2_PRIVATE_DNS_NAME)
                || path.entry_type.as_deref().is_some_and(|t| t != "STANDARD")
                || (path.username.starts_with("system:node:") && path.username.contains("{{"));
            match got {
                Class::Shared => prop_assert!(!user && !carries_session && !node
                    && path.source != Source::MapAccounts),
                Class::PerPerson => prop_assert!((user || carries_session) && !node),
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
            let got = classify(&path, &services).class;
            if path.source == Source::MapAccounts {
                prop_assert_eq!(got, Class::AccountWide);
            } else {
                prop_assert_eq!(got, Class::Service);
            }
            if identity_key(&other.principal) != identity_key(&path.principal) {
                prop_assert_eq!(
                    classify(&other, &services),
                    classify(&other, &Services::default())
                );
            }
        }

        /// The class does not depend on the groups or policies a path grants.
        #[test]
        fn grants_do_not_change_the_class(path in any_path(), groups in proptest::collection::vec("[a-z:]{1,8}", 0..3)) {
            let mut wider = path.clone();
            wider.groups = groups;
            wider.policies.push(AccessPolicy {
                policy_arn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy".into(),
                scope: "cluster".into(),
                namespaces: Vec::new(),
            });
            prop_assert_eq!(
                classify(&path, &Services::default()),
                classify(&wider, &Services::default())
            );
            prop_assert!(beyond_node_groups(&wider));
        }
    }
}
