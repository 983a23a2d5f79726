//! The one config document: which IAM groups map to which Kubernetes groups, on which clusters.
//!
//! It is read once at start, from `EKS_IAM_SYNC_CONFIG` (the document inline) or
//! `EKS_IAM_SYNC_CONFIG_FILE` (a path), as YAML or JSON (JSON is YAML). Everything is checked
//! before any cluster is touched: the config decides who gets into clusters, so a typo must stop
//! the function with an error naming the field (`groups[1].kubernetesGroups[0]: ...`) rather than
//! quietly grant or drop access.
//!
//! ```
//! use eks_iam_sync::config::Config;
//!
//! let config = Config::parse(
//!     r#"
//! groups:
//!   - iamGroup: eks-developers
//!     kubernetesGroups: [developers]
//! clusters:
//!   - {name: dev-a, region: us-east-1}
//! "#,
//! )
//! .unwrap();
//! assert_eq!(config.max_concurrency, 16);
//! assert_eq!(config.render_username("alice", "123456789012"), "alice");
//! ```
//!
//! Which backend writes a cluster's access (`backend`), clusters found by tags (`discovery`) and
//! clusters in other accounts (`roleArn`) are described on [`ClusterRef`] and [`Discovery`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::access_entries::RESERVED_PREFIXES;

/// Environment variable holding the config document itself.
pub const ENV_INLINE: &str = "EKS_IAM_SYNC_CONFIG";
/// Environment variable holding the path of the config document.
pub const ENV_FILE: &str = "EKS_IAM_SYNC_CONFIG_FILE";

/// Placeholder for the IAM user name in [`Config::username_template`].
const USER_NAME: &str = "UserName";
/// Placeholder for the AWS account id in [`Config::username_template`].
const ACCOUNT_ID: &str = "AccountID";

/// The prefix Kubernetes reserves for identities it assigns itself (nodes, service accounts,
/// `system:masters`, ...).
const RESERVED_PREFIX: &str = "system:";
/// The one reserved group an operator may grant, and only by setting `allowSystemMasters`: it
/// bypasses RBAC entirely.
const SYSTEM_MASTERS: &str = "system:masters";

const MAX_IAM_GROUP_NAME: usize = 128;
const MAX_IAM_USER_NAME: usize = 64;
const ACCOUNT_ID_DIGITS: usize = 12;
const MAX_CLUSTER_NAME: usize = 100;
const MAX_KUBERNETES_GROUP: usize = 256;
const MAX_CONCURRENCY: usize = 256;
const MAX_ROLE_NAME: usize = 64;
/// EKS tag limits.
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// IAM groups whose members get access, and the Kubernetes groups they get. Required and
    /// non-empty: a config granting nothing is a mistake, not a way to revoke (revoking is
    /// removing the mapping while others remain).
    pub groups: Vec<GroupMapping>,
    /// The clusters to keep in step, by name. At least one cluster or one discovery block is
    /// required, since a run with no cluster would succeed while doing nothing.
    #[serde(default)]
    pub clusters: Vec<ClusterRef>,
    /// Clusters found by region and tags at run time, synced in addition to `clusters`. One block
    /// or a list of them (one per account, say). A cluster both listed and discovered is synced
    /// once, with the settings of its `clusters` entry.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub discovery: Vec<Discovery>,
    /// The Kubernetes user name for an IAM user. Default `{{UserName}}`. Placeholders:
    /// `{{UserName}}` (required, so every IAM user keeps a distinct identity in audit logs) and
    /// `{{AccountID}}`.
    #[serde(default = "default_username_template")]
    pub username_template: String,
    /// How many clusters are updated at once. Default 16, allowed 1..=256: bounded so a large
    /// fleet neither exhausts the Lambda's connections nor trips API throttling.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Create the `aws-auth` ConfigMap in a cluster that lacks it. Default true.
    #[serde(default = "default_create_missing_aws_auth")]
    pub create_missing_aws_auth: bool,
    /// Permit mapping to `system:masters` (cluster-admin that bypasses RBAC). Default false, so
    /// granting it takes a second, deliberate line.
    #[serde(default)]
    pub allow_system_masters: bool,
    /// Machine identities (CI roles, controllers) that `audit` classifies as `service`, not as
    /// shared or per-person paths: IAM role or user ARNs. The function's own role
    /// ([`Config::function_role`]) and the configured `roleArn`s are machine identities without
    /// being listed. Matched as the authenticator matches ARNs: case-insensitively, a role's
    /// path ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_identities: Vec<String>,
    /// IAM roles (by ARN, or by IAM Identity Center permission set) mapped to Kubernetes groups
    /// under a user name that names the session; see [`crate::roles`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<crate::roles::RoleMapping>,
    /// This installation's id, recorded in every entry it writes so that several installations
    /// can share a cluster, each changing only its own entries ([`crate::installation`]).
    /// Naming it here makes this a second installation: it never touches entries written
    /// before installations existed. Absent: the id the function is given
    /// (`EKS_IAM_SYNC_INSTALLATION`, which the template sets to `<account id>/<stack name>`),
    /// as the default installation, which owns those legacy entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
    /// The installation the environment names (validated when it was read), used when
    /// `installation` is absent.
    #[serde(skip)]
    pub default_installation: Option<crate::installation::Installation>,
    /// The function's own IAM role, from [`ENV_FUNCTION_ROLE`] (the template sets it on the
    /// function; an operator sets it to the stack's `FunctionRoleArn` output to run the CLI for
    /// that stack). The audit classes it as a machine identity. Not the caller's identity: the
    /// CLI runs as an operator, often a session of the very role the audit must flag.
    #[serde(skip)]
    pub function_role: Option<String>,
    /// Set when [`ENV_ALLOW_FIX_LOGGING`] is `false`, as the template sets it on the function
    /// unless its `AllowFixLogging` parameter is `true`: the function's role may not call
    /// UpdateClusterConfig, so the direct invoke's `fixLogging` is refused up front.
    #[serde(skip)]
    pub fix_logging_refused: bool,
}

/// Environment variable saying whether the function may enable control-plane logging
/// ([`Config::fix_logging_refused`]): `true` or `false`.
pub const ENV_ALLOW_FIX_LOGGING: &str = "EKS_IAM_SYNC_ALLOW_FIX_LOGGING";

/// Environment variable naming the function's own role ARN ([`Config::function_role`]).
pub const ENV_FUNCTION_ROLE: &str = "EKS_IAM_SYNC_FUNCTION_ROLE";

/// Members of one IAM group get these Kubernetes groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupMapping {
    pub iam_group: String,
    /// May be empty: the user is still mapped and can be bound by user name in RBAC.
    pub kubernetes_groups: Vec<String>,
}

/// One EKS cluster, by name and region, and how to reach and write it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterRef {
    pub name: String,
    pub region: String,
    /// Where the mappings go. Default `auto`.
    #[serde(default, skip_serializing_if = "Backend::is_auto")]
    pub backend: Backend,
    /// A role to assume (STS AssumeRole) for this cluster: EKS is called, and the cluster token
    /// signed, as that role, so it can be in another account. Absent: the function's own role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

impl ClusterRef {
    /// A cluster reached as the function itself, backend `auto`.
    pub fn new(name: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            region: region.into(),
            backend: Backend::Auto,
            role_arn: None,
        }
    }

    /// What makes two references the same cluster: name, region and account. The account is
    /// the `roleArn`'s, or `None` for the function's own account (which config does not know),
    /// so a `roleArn` in the function's own account counts as another account here.
    pub fn key(&self) -> ClusterKey {
        ClusterKey {
            account: self
                .role_arn
                .as_deref()
                .and_then(role_account)
                .map(str::to_owned),
            region: self.region.clone(),
            name: self.name.clone(),
        }
    }
}

/// The identity of a cluster across `clusters` and `discovery`; see [`ClusterRef::key`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterKey {
    pub account: Option<String>,
    pub region: String,
    pub name: String,
}

/// Which store holds a cluster's mappings.
///
/// `auto` follows the cluster's authentication mode, read at run time: access entries in `API`
/// and `API_AND_CONFIG_MAP`, aws-auth in `CONFIG_MAP`. An explicit backend the mode cannot serve
/// (`accessEntries` on a `CONFIG_MAP` cluster, `configMap` on an `API` cluster) fails that
/// cluster with an error naming it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Backend {
    #[default]
    Auto,
    /// The `kube-system/aws-auth` ConfigMap (`mapUsers`).
    ConfigMap,
    /// EKS access entries.
    AccessEntries,
}

impl Backend {
    pub fn is_auto(&self) -> bool {
        *self == Backend::Auto
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::ConfigMap => "configMap",
            Backend::AccessEntries => "accessEntries",
        }
    }
}

/// Clusters found at run time: every cluster in `regions` whose tags include all of `tags`
/// (ListClusters, all pages, then DescribeCluster for the tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Discovery {
    /// Required, non-empty.
    pub regions: Vec<String>,
    /// Required; a cluster matches when it carries every key with exactly this value. `{}`
    /// matches every cluster in the regions, so it has to be written out.
    pub tags: BTreeMap<String, String>,
    /// The backend of every cluster this block finds. Default `auto`.
    #[serde(default, skip_serializing_if = "Backend::is_auto")]
    pub backend: Backend,
    /// A role to assume for listing, describing and writing the clusters this block finds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

impl Discovery {
    /// Whether a cluster with `tags` is one this block selects.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
    }

    /// The reference under which a cluster this block found is synced.
    pub fn cluster(&self, name: &str, region: &str) -> ClusterRef {
        ClusterRef {
            name: name.to_owned(),
            region: region.to_owned(),
            backend: self.backend,
            role_arn: self.role_arn.clone(),
        }
    }
}

/// `discovery` is one block or a list of blocks.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Discovery>, D::Error> {
    struct OneOrMany;
    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<Discovery>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a discovery block or a list of discovery blocks")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Discovery::deserialize(MapAccessDeserializer::new(map)).map(|block| vec![block])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(SeqAccessDeserializer::new(seq))
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
    }
    deserializer.deserialize_any(OneOrMany)
}

/// The account of a role ARN (`arn:aws:iam::123456789012:role/name` -> `123456789012`).
pub fn role_account(role_arn: &str) -> Option<&str> {
    role_arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// The defaults of every optional field, with no groups and no clusters: a base for building a
/// config in code, not itself valid.
impl Default for Config {
    fn default() -> Self {
        Config {
            groups: Vec::new(),
            clusters: Vec::new(),
            discovery: Vec::new(),
            username_template: default_username_template(),
            max_concurrency: default_max_concurrency(),
            create_missing_aws_auth: default_create_missing_aws_auth(),
            allow_system_masters: false,
            service_identities: Vec::new(),
            roles: Vec::new(),
            installation: None,
            default_installation: None,
            function_role: None,
            fix_logging_refused: false,
        }
    }
}

fn default_username_template() -> String {
    format!("{{{{{USER_NAME}}}}}")
}

fn default_max_concurrency() -> usize {
    16
}

fn default_create_missing_aws_auth() -> bool {
    true
}

/// Why the config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML/JSON, a wrong type, a missing required field or an unknown one; the message
    /// starts with the field's path.
    #[error("config does not parse: {0}")]
    Syntax(#[from] serde_yaml_ng::Error),
    /// Parsed, but some values are wrong; all of them are listed at once.
    #[error("config is invalid: {}", join(problems))]
    Invalid { problems: Vec<Problem> },
    #[error("both {} and {} are set; set only one", ENV_INLINE, ENV_FILE)]
    BothSources,
    #[error(
        "no config: set {} to the config document or {} to its path",
        ENV_INLINE,
        ENV_FILE
    )]
    NoSource,
    #[error("cannot read the config file {path} named by {}: {source}", ENV_FILE)]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One wrong value: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Like `groups[1].kubernetesGroups[0]`, in the document's own (camelCase) names.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Config {
    /// Parses a YAML or JSON document and validates it.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_yaml_ng::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads the config named by the process environment; see [`Config::from_lookup`].
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the config from `EKS_IAM_SYNC_CONFIG` or the file named by
    /// `EKS_IAM_SYNC_CONFIG_FILE`, looking variables up with `lookup`. Exactly one must be set;
    /// an empty or blank value counts as unset, since templates often render unused variables
    /// that way.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let set = |name| lookup(name).filter(|value: &String| !value.trim().is_empty());
        let mut config = match (set(ENV_INLINE), set(ENV_FILE)) {
            (Some(_), Some(_)) => Err(ConfigError::BothSources),
            (None, None) => Err(ConfigError::NoSource),
            (Some(text), None) => Config::parse(&text),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| ConfigError::ReadFile { path, source })?;
                Config::parse(&text)
            }
        }?;
        if let Some(id) = set(crate::installation::ENV_INSTALLATION) {
            let installation = crate::installation::Installation::new(&id, true).map_err(|e| {
                ConfigError::Invalid {
                    problems: vec![Problem {
                        path: crate::installation::ENV_INSTALLATION.to_owned(),
                        message: e.to_string(),
                    }],
                }
            })?;
            config.default_installation = Some(installation);
        }
        if let Some(arn) = set(ENV_FUNCTION_ROLE) {
            let mut problems = Problems::default();
            validate_role_arn(Some(&arn), ENV_FUNCTION_ROLE, &mut problems);
            problems.into_result()?;
            config.function_role = Some(arn);
        }
        match set(ENV_ALLOW_FIX_LOGGING).as_deref() {
            None | Some("true") => {}
            Some("false") => config.fix_logging_refused = true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    problems: vec![Problem {
                        path: ENV_ALLOW_FIX_LOGGING.to_owned(),
                        message: format!("{other:?} is neither true nor false"),
                    }],
                })
            }
        }
        Ok(config)
    }

    /// The identities the audit classes as machines (`service`): the function's own role, every
    /// configured `roleArn` (the roles the function assumes to reach other accounts' clusters)
    /// and `serviceIdentities`.
    pub fn machine_identities(&self) -> impl Iterator<Item = &str> {
        self.function_role
            .iter()
            .map(String::as_str)
            .chain(self.role_arns())
            .chain(self.service_identities.iter().map(String::as_str))
    }

    /// Every configured `roleArn`, of clusters and discovery blocks, in config order.
    pub fn role_arns(&self) -> impl Iterator<Item = &str> {
        self.clusters
            .iter()
            .filter_map(|c| c.role_arn.as_deref())
            .chain(self.discovery.iter().filter_map(|d| d.role_arn.as_deref()))
    }

    /// This installation: the config's `installation`, else the environment's as the default
    /// installation, else the installation without an id. The config's id is validated with
    /// the rest of the config.
    pub fn installation(&self) -> crate::installation::Installation {
        use crate::installation::Installation;
        match (&self.installation, &self.default_installation) {
            (Some(id), _) => Installation::new(id, false).unwrap_or_default(),
            (None, Some(installation)) => installation.clone(),
            (None, None) => Installation::legacy(),
        }
    }

    /// The Kubernetes user name for an IAM user. Total, so it can be called anywhere; only on a
    /// validated config is the result guaranteed free of the reserved `system:` prefix.
    pub fn render_username(&self, user_name: &str, account_id: &str) -> String {
        let mut rendered = String::with_capacity(self.username_template.len() + user_name.len());
        for piece in pieces(&self.username_template) {
            match piece {
                Piece::Placeholder(USER_NAME) => rendered.push_str(user_name),
                Piece::Placeholder(ACCOUNT_ID) => rendered.push_str(account_id),
                Piece::Placeholder(other) => {
                    rendered.push_str("{{");
                    rendered.push_str(other);
                    rendered.push_str("}}");
                }
                Piece::Literal(text) | Piece::Unclosed(text) => rendered.push_str(text),
            }
        }
        rendered
    }

    /// Checks every value against the rules of the system that will consume it (IAM, EKS,
    /// Kubernetes, aws-auth) and returns all problems found.
    ///
    /// Kubernetes groups: non-empty, at most 256 characters, no whitespace or control characters
    /// (aws-auth is YAML inside a ConfigMap and such names are invisible in `kubectl` output),
    /// no `{{`/`}}` (aws-iam-authenticator would expand them as templates), and nothing under the
    /// `system:` prefix Kubernetes reserves for identities it assigns itself (`system:nodes`
    /// would make a user a node), except `system:masters` when `allowSystemMasters` is set.
    ///
    /// Access entries: EKS refuses Kubernetes groups and user names starting with `system:`,
    /// `eks:`, `aws:`, `amazon:` or `iam:`. When a cluster or discovery block asks for
    /// `backend: accessEntries`, groups and the username template that could produce such a
    /// name are refused here. A cluster on `auto` learns its mode only at run time, so the same
    /// rule is applied then, to that cluster, if it resolves to access entries: it fails with
    /// the principal and the name, and nothing is written to it. Validating `auto` here would
    /// refuse configs that are fine on an all-`CONFIG_MAP` fleet.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        self.validate_groups(&mut problems);
        self.validate_clusters(&mut problems);
        self.validate_discovery(&mut problems);
        self.validate_username_template(&mut problems);
        self.validate_service_identities(&mut problems);
        self.validate_roles(&mut problems);
        if let Some(id) = &self.installation {
            if let Err(e) = crate::installation::Installation::new(id, false) {
                problems.add("installation", e.to_string());
            }
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.max_concurrency) {
            problems.add(
                "maxConcurrency",
                format!(
                    "{} is out of range, expected 1..={MAX_CONCURRENCY}",
                    self.max_concurrency
                ),
            );
        }
        problems.into_result()
    }

    fn validate_groups(&self, problems: &mut Problems) {
        if self.groups.is_empty() {
            problems.add("groups", "must map at least one IAM group");
        }
        // IAM group names are unique regardless of case.
        let mut seen = HashMap::new();
        for (i, mapping) in self.groups.iter().enumerate() {
            let path = format!("groups[{i}].iamGroup");
            if !is_iam_group_name(&mapping.iam_group) {
                problems.add(
                    &path,
                    format!("{:?} is not an IAM group name: expected 1-{MAX_IAM_GROUP_NAME} letters, digits or +=,.@_-", mapping.iam_group),
                );
            } else if let Some(first) = seen.insert(mapping.iam_group.to_lowercase(), i) {
                problems.add(
                    &path,
                    format!(
                        "{:?} duplicates groups[{first}].iamGroup (IAM group names ignore case)",
                        mapping.iam_group
                    ),
                );
            }
            for (k, group) in mapping.kubernetes_groups.iter().enumerate() {
                let path = format!("groups[{i}].kubernetesGroups[{k}]");
                if let Some(message) = self.kubernetes_group_problem(group) {
                    problems.add(&path, message);
                } else if let Some(first) = mapping.kubernetes_groups[..k]
                    .iter()
                    .position(|earlier| earlier == group)
                {
                    problems.add(
                        &path,
                        format!("{group:?} duplicates groups[{i}].kubernetesGroups[{first}]"),
                    );
                }
            }
        }
    }

    /// `roles`: the entry's own rules ([`crate::roles::entry_problems`]), and its Kubernetes
    /// groups as `groups[].kubernetesGroups`.
    fn validate_roles(&self, problems: &mut Problems) {
        for (i, role) in self.roles.iter().enumerate() {
            for (path, message) in crate::roles::entry_problems(i, role) {
                problems.add(path, message);
            }
            for (k, group) in role.kubernetes_groups.iter().enumerate() {
                if let Some(message) = self.kubernetes_group_problem(group) {
                    problems.add(format!("roles[{i}].kubernetesGroups[{k}]"), message);
                }
            }
        }
    }

    /// The rule is documented on [`Config::validate`].
    fn kubernetes_group_problem(&self, group: &str) -> Option<String> {
        if group.is_empty() {
            Some("a Kubernetes group name must not be empty".to_owned())
        } else if group.chars().count() > MAX_KUBERNETES_GROUP {
            Some(format!(
                "a Kubernetes group name must be at most {MAX_KUBERNETES_GROUP} characters"
            ))
        } else if group.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some(format!(
                "{group:?} contains whitespace or control characters"
            ))
        } else if group.contains("{{") || group.contains("}}") {
            Some(format!(
                "{group:?} contains {{{{ or }}}}, which aws-iam-authenticator expands as a template"
            ))
        } else if group == SYSTEM_MASTERS && !self.allow_system_masters {
            Some(format!(
                "{SYSTEM_MASTERS} bypasses RBAC; set allowSystemMasters: true to grant it"
            ))
        } else if group.starts_with(RESERVED_PREFIX) && group != SYSTEM_MASTERS {
            Some(format!(
                "{group:?} is under the {RESERVED_PREFIX} prefix Kubernetes reserves for identities it assigns"
            ))
        } else if let Some(prefix) = reserved_for_access_entries(group) {
            let users = self.access_entries_users();
            (!users.is_empty()).then(|| {
                let hint = if group == SYSTEM_MASTERS {
                    "; grant cluster admin with an access policy (AmazonEKSClusterAdminPolicy) instead"
                } else {
                    ""
                };
                format!(
                    "{group:?} starts with {prefix}, which EKS refuses in access entries (backend accessEntries in {}){hint}",
                    users.join(", ")
                )
            })
        } else {
            None
        }
    }

    /// Paths of the clusters and discovery blocks that ask for `backend: accessEntries`.
    fn access_entries_users(&self) -> Vec<String> {
        let clusters = self
            .clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.backend == Backend::AccessEntries)
            .map(|(i, _)| format!("clusters[{i}]"));
        let discovery = self
            .discovery
            .iter()
            .enumerate()
            .filter(|(_, d)| d.backend == Backend::AccessEntries)
            .map(|(i, _)| format!("discovery[{i}]"));
        clusters.chain(discovery).collect()
    }

    fn validate_clusters(&self, problems: &mut Problems) {
        if self.clusters.is_empty() && self.discovery.is_empty() {
            problems.add(
                "clusters",
                "must list at least one cluster, or set discovery",
            );
        }
        let mut seen = HashMap::new();
        for (i, cluster) in self.clusters.iter().enumerate() {
            let mut valid = validate_role_arn(
                cluster.role_arn.as_deref(),
                &format!("clusters[{i}].roleArn"),
                problems,
            );
            if !is_cluster_name(&cluster.name) {
                valid = false;
                problems.add(
                    format!("clusters[{i}].name"),
                    format!("{:?} is not an EKS cluster name: expected 1-{MAX_CLUSTER_NAME} letters, digits, - or _, starting with a letter or digit", cluster.name),
                );
            }
            if !is_region(&cluster.region) {
                valid = false;
                problems.add(
                    format!("clusters[{i}].region"),
                    format!(
                        "{:?} is not an AWS region: expected a name like us-east-1, us-gov-west-1 or cn-north-1",
                        cluster.region
                    ),
                );
            }
            if valid {
                if let Some(first) = seen.insert(cluster.key(), i) {
                    problems.add(
                        format!("clusters[{i}]"),
                        format!(
                            "{} in {} duplicates clusters[{first}] (same name, region and account)",
                            cluster.name, cluster.region
                        ),
                    );
                }
            }
        }
    }

    fn validate_discovery(&self, problems: &mut Problems) {
        for (i, block) in self.discovery.iter().enumerate() {
            let path = format!("discovery[{i}]");
            if block.regions.is_empty() {
                problems.add(format!("{path}.regions"), "must list at least one region");
            }
            for (j, region) in block.regions.iter().enumerate() {
                let path = format!("{path}.regions[{j}]");
                if !is_region(region) {
                    problems.add(
                        &path,
                        format!("{region:?} is not an AWS region: expected a name like us-east-1"),
                    );
                } else if let Some(first) = block.regions[..j].iter().position(|r| r == region) {
                    problems.add(
                        &path,
                        format!("{region:?} duplicates discovery[{i}].regions[{first}]"),
                    );
                }
            }
            for (key, value) in &block.tags {
                if !(1..=MAX_TAG_KEY).contains(&key.chars().count()) {
                    problems.add(
                        format!("{path}.tags"),
                        format!("tag key {key:?} must be 1-{MAX_TAG_KEY} characters"),
                    );
                }
                if value.chars().count() > MAX_TAG_VALUE {
                    problems.add(
                        format!("{path}.tags.{key}"),
                        format!("a tag value must be at most {MAX_TAG_VALUE} characters"),
                    );
                }
            }
            validate_role_arn(
                block.role_arn.as_deref(),
                &format!("{path}.roleArn"),
                problems,
            );
        }
    }

    fn validate_username_template(&self, problems: &mut Problems) {
        let template = &self.username_template;
        let pieces = pieces(template);
        let mut has_user_name = false;
        let mut well_formed = true;
        for piece in &pieces {
            let message = match piece {
                Piece::Placeholder(USER_NAME) => {
                    has_user_name = true;
                    continue;
                }
                Piece::Placeholder(ACCOUNT_ID) => continue,
                Piece::Placeholder(other) => format!(
                    "unknown placeholder {{{{{other}}}}}; allowed are {{{{{USER_NAME}}}}} and {{{{{ACCOUNT_ID}}}}}"
                ),
                Piece::Unclosed(text) => format!("{text:?} opens {{{{ without closing it"),
                Piece::Literal(text) if text.contains("}}") => {
                    format!("{text:?} has }}}} without an opening {{{{")
                }
                Piece::Literal(_) => continue,
            };
            well_formed = false;
            problems.add("usernameTemplate", message);
        }
        if !has_user_name {
            problems.add(
                "usernameTemplate",
                format!("{template:?} must contain {{{{{USER_NAME}}}}} so each IAM user keeps a distinct Kubernetes identity"),
            );
        } else if well_formed && can_begin_with(&pieces, RESERVED_PREFIX) {
            problems.add(
                "usernameTemplate",
                format!("{template:?} can render a user name starting with {RESERVED_PREFIX}, which Kubernetes reserves"),
            );
        } else if well_formed {
            let users = self.access_entries_users();
            let refused = RESERVED_PREFIXES
                .iter()
                .find(|prefix| can_begin_with(&pieces, prefix));
            if let (Some(prefix), false) = (refused, users.is_empty()) {
                problems.add(
                    "usernameTemplate",
                    format!(
                        "{template:?} can render a user name starting with {prefix}, which EKS refuses in access entries (backend accessEntries in {})",
                        users.join(", ")
                    ),
                );
            }
        }
    }
}

/// The access-entry prefix `name` starts with, if any.
fn reserved_for_access_entries(name: &str) -> Option<&'static str> {
    RESERVED_PREFIXES
        .iter()
        .copied()
        .find(|prefix| name.starts_with(prefix))
}

impl Config {
    /// `serviceIdentities`: each an IAM role ARN (path allowed) or an IAM user ARN.
    fn validate_service_identities(&self, problems: &mut Problems) {
        for (i, arn) in self.service_identities.iter().enumerate() {
            let user = crate::desired::UserArn::parse(arn).is_ok();
            if !user && !is_role_arn(arn) {
                problems.add(
                    format!("serviceIdentities[{i}]"),
                    format!("{arn:?} is not an IAM role or user ARN: expected arn:<partition>:iam::<12-digit account>:role/[path/]name or ...:user/[path/]name"),
                );
            }
        }
    }
}

/// Checks an optional role ARN; returns whether it is absent or valid.
fn validate_role_arn(role_arn: Option<&str>, path: &str, problems: &mut Problems) -> bool {
    match role_arn {
        Some(arn) if !is_role_arn(arn) => {
            problems.add(
                path,
                format!("{arn:?} is not an IAM role ARN: expected arn:<partition>:iam::<12-digit account>:role/[path/]name"),
            );
            false
        }
        _ => true,
    }
}

/// `arn:<partition>:iam::<12 digits>:role/[path/]name`, the name 1-64 of `[\w+=,.@-]`.
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_, partition, "iam", "", account, resource] = parts.as_slice() else {
        return false;
    };
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return false;
    };
    let (path, name) = path_and_name
        .rsplit_once('/')
        .unwrap_or(("", path_and_name));
    *arn_ == "arn"
        && !partition.is_empty()
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
        && account.len() == ACCOUNT_ID_DIGITS
        && account.bytes().all(|b| b.is_ascii_digit())
        && (1..=MAX_ROLE_NAME).contains(&name.len())
        && name.bytes().all(is_iam_name_byte)
        && (path.is_empty()
            || path
                .split('/')
                .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())))
}

/// Collects problems so validation reports all of them, not just the first.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn into_result(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems: self.0 })
        }
    }
}

/// IAM: 1-128 characters of `[\w+=,.@-]`.
fn is_iam_group_name(name: &str) -> bool {
    (1..=MAX_IAM_GROUP_NAME).contains(&name.len()) && name.bytes().all(is_iam_name_byte)
}

fn is_iam_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b)
}

/// EKS: 1-100 characters, `^[0-9A-Za-z][A-Za-z0-9\-_]*$`.
fn is_cluster_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=MAX_CLUSTER_NAME).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// `^[a-z]{2}(-gov)?-[a-z]+-\d+$`, which covers the China regions (`cn-north-1`) too.
fn is_region(region: &str) -> bool {
    let letters = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = region.split('-').collect();
    match parts.as_slice() {
        [area, name, number] => area.len() == 2 && letters(area) && letters(name) && digits(number),
        [area, "gov", name, number] => {
            area.len() == 2 && letters(area) && letters(name) && digits(number)
        }
        _ => false,
    }
}

/// A piece of the username template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Literal(&'a str),
    /// The name between `{{` and `}}`.
    Placeholder(&'a str),
    /// A `{{` with no `}}` after it, to the end of the template.
    Unclosed(&'a str),
}

/// Splits a template once, so validation and rendering agree on what a placeholder is.
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find("{{") {
            None => {
                pieces.push(Piece::Literal(rest));
                break;
            }
            Some(0) => match rest[2..].find("}}") {
                Some(end) => {
                    pieces.push(Piece::Placeholder(&rest[2..2 + end]));
                    rest = &rest[2 + end + 2..];
                }
                None => {
                    pieces.push(Piece::Unclosed(rest));
                    break;
                }
            },
            Some(start) => {
                pieces.push(Piece::Literal(&rest[..start]));
                rest = &rest[start..];
            }
        }
    }
    pieces
}

/// Whether some IAM user name and account id render the template to a string beginning with
/// `prefix` (ASCII). Exact rather than a rule of thumb: `{{UserName}}:dev` is refused because a
/// user named `system` would become `system:dev`, while `{{AccountID}}:{{UserName}}` is allowed.
fn can_begin_with(pieces: &[Piece<'_>], prefix: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    let Some((first, rest)) = pieces.split_first() else {
        return false;
    };
    let (lengths, allowed): (std::ops::RangeInclusive<usize>, fn(u8) -> bool) = match first {
        Piece::Literal(text) | Piece::Unclosed(text) => {
            return if text.len() >= prefix.len() {
                text.starts_with(prefix)
            } else {
                prefix.starts_with(text) && can_begin_with(rest, &prefix[text.len()..])
            };
        }
        Piece::Placeholder(ACCOUNT_ID) => (ACCOUNT_ID_DIGITS..=ACCOUNT_ID_DIGITS, |b| {
            b.is_ascii_digit()
        }),
        Piece::Placeholder(_) => (1..=MAX_IAM_USER_NAME, is_iam_name_byte),
    };
    let bytes = prefix.as_bytes();
    lengths.into_iter().any(|len| {
        let covered = len.min(bytes.len());
        bytes[..covered].iter().all(|b| allowed(*b))
            && (len >= bytes.len() || can_begin_with(rest, &prefix[len..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "
groups:
  - iamGroup: eks-developers
    kubernetesGroups: [developers]
clusters:
  - {name: dev-a, region: us-east-1}
";

    fn minimal() -> Config {
        Config::parse(MINIMAL).expect("minimal config is valid")
    }

    #[test]
    fn the_installation_comes_from_the_config_else_the_environment() {
        use crate::installation::{Installation, ENV_INSTALLATION};
        let env = |extra: &str| {
            let text = format!("{MINIMAL}{extra}");
            move |name: &str| match name {
                ENV_INLINE => Some(text.clone()),
                ENV_INSTALLATION => Some("123456789012/eks-iam-sync".to_owned()),
                _ => None,
            }
        };
        let defaulted = Config::from_lookup(env("")).unwrap().installation();
        assert_eq!(
            defaulted,
            Installation::new("123456789012/eks-iam-sync", true).unwrap()
        );
        let named = Config::from_lookup(env("installation: staging\n"))
            .unwrap()
            .installation();
        assert_eq!(named, Installation::new("staging", false).unwrap());
        assert_eq!(minimal().installation(), Installation::legacy());
        let error = Config::parse(&format!("{MINIMAL}installation: 'a b'\n"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("installation: installation \"a b\""),
            "{error}"
        );
        let bad_env = |name: &str| match name {
            ENV_INLINE => Some(MINIMAL.to_owned()),
            ENV_INSTALLATION => Some("true".to_owned()),
            _ => None,
        };
        let error = Config::from_lookup(bad_env).unwrap_err().to_string();
        assert!(error.contains(ENV_INSTALLATION), "{error}");
    }

    /// The audit's machines: the function's role (from the environment), every `roleArn` and
    /// `serviceIdentities`; never whoever runs the audit.
    #[test]
    fn machine_identities_are_the_function_role_the_role_arns_and_the_listed_ones() {
        let text = "
groups: [{iamGroup: g, kubernetesGroups: [developers]}]
clusters:
  - {name: a, region: us-east-1}
  - {name: b, region: eu-west-1, roleArn: 'arn:aws:iam::210987654321:role/eks-iam-sync-access'}
discovery:
  - {regions: [us-west-2], tags: {team: x}, roleArn: 'arn:aws:iam::333333333333:role/finder'}
serviceIdentities: ['arn:aws:iam::123456789012:role/ci/deployer']
";
        let env = |role: &'static str| {
            move |name: &str| match name {
                ENV_INLINE => Some(text.to_owned()),
                ENV_FUNCTION_ROLE => Some(role.to_owned()),
                _ => None,
            }
        };
        let config =
            Config::from_lookup(env("arn:aws:iam::123456789012:role/eks-iam-sync")).unwrap();
        assert_eq!(
            config.machine_identities().collect::<Vec<_>>(),
            [
                "arn:aws:iam::123456789012:role/eks-iam-sync",
                "arn:aws:iam::210987654321:role/eks-iam-sync-access",
                "arn:aws:iam::333333333333:role/finder",
                "arn:aws:iam::123456789012:role/ci/deployer",
            ]
        );
        assert_eq!(Config::parse(text).unwrap().function_role, None);
        let fix_logging = |value: &'static str| {
            Config::from_lookup(move |name: &str| match name {
                ENV_INLINE => Some(text.to_owned()),
                ENV_ALLOW_FIX_LOGGING => Some(value.to_owned()),
                _ => None,
            })
        };
        assert!(fix_logging("false").unwrap().fix_logging_refused);
        assert!(!fix_logging("true").unwrap().fix_logging_refused);
        assert!(!fix_logging("").unwrap().fix_logging_refused);
        let error = fix_logging("no").unwrap_err().to_string();
        assert!(error.contains(ENV_ALLOW_FIX_LOGGING), "{error}");
        let error = Config::from_lookup(env("eks-iam-sync"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(ENV_FUNCTION_ROLE) && error.contains("not an IAM role ARN"),
            "{error}"
        );
    }

    #[test]
    fn roles_parse_and_every_problem_names_its_field() {
        let ok = format!(
            "{MINIMAL}roles:\n  - {{roleArn: 'arn:aws:iam::111122223333:role/eks-cluster-admin', kubernetesGroups: [platform-admins], usernameTemplate: 'admin:{{{{SessionName}}}}'}}\n  - {{permissionSet: AdministratorAccess, kubernetesGroups: [developers]}}\n"
        );
        let config = Config::parse(&ok).unwrap();
        assert_eq!(config.roles.len(), 2);
        assert_eq!(
            config.roles[1].permission_set.as_deref(),
            Some("AdministratorAccess")
        );
        let bad = format!(
            "{MINIMAL}roles:\n  - {{permissionSet: A, kubernetesGroups: []}}\n  - {{permissionSet: B, kubernetesGroups: ['system:nodes'], usernameTemplate: eks-cluster-admin}}\n"
        );
        let found = problems(&serde_yaml_ng::from_str::<Config>(&bad).unwrap());
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("roles[1].usernameTemplate:") && p.contains("untraceable")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("roles[1].kubernetesGroups[0]:")),
            "{found:?}"
        );
        let unknown =
            format!("{MINIMAL}roles:\n  - {{permissionSet: A, kubernetesGroups: [], extra: 1}}\n");
        assert!(Config::parse(&unknown).is_err());
    }

    /// The problems `config` has, as `path: message` lines.
    fn problems(config: &Config) -> Vec<String> {
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid { problems }) => {
                problems.iter().map(Problem::to_string).collect()
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    /// Asserts that exactly one problem is reported, at `path`, and returns its message.
    fn single_problem(config: &Config, path: &str) -> String {
        let found = problems(config);
        assert_eq!(found.len(), 1, "{found:?}");
        let prefix = format!("{path}: ");
        assert!(found[0].starts_with(&prefix), "{found:?}");
        found[0][prefix.len()..].to_owned()
    }

    fn with_kubernetes_group(group: &str) -> Config {
        let mut config = minimal();
        config.groups[0].kubernetes_groups.push(group.to_owned());
        config
    }

    fn with_template(template: &str) -> Config {
        Config {
            username_template: template.to_owned(),
            ..minimal()
        }
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "eks-iam-sync-config-test-{}-{name}",
            std::process::id()
        ))
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = minimal();
        assert_eq!(
            config,
            Config {
                groups: vec![GroupMapping {
                    iam_group: "eks-developers".to_owned(),
                    kubernetes_groups: vec!["developers".to_owned()],
                }],
                clusters: vec![ClusterRef {
                    name: "dev-a".to_owned(),
                    region: "us-east-1".to_owned(),
                    backend: Backend::Auto,
                    role_arn: None,
                }],
                discovery: vec![],
                username_template: "{{UserName}}".to_owned(),
                max_concurrency: 16,
                create_missing_aws_auth: true,
                allow_system_masters: false,
                service_identities: vec![],
                roles: vec![],
                installation: None,
                default_installation: None,
                function_role: None,
                fix_logging_refused: false,
            }
        );
        assert_eq!(
            Config {
                groups: config.groups.clone(),
                clusters: config.clusters.clone(),
                ..Config::default()
            },
            config
        );
    }

    #[test]
    fn json_parses_like_yaml() {
        let json = r#"{
	"groups": [{"iamGroup": "eks-developers", "kubernetesGroups": ["developers"]}],
	"clusters": [{"name": "dev-a", "region": "us-east-1"}]
}"#;
        assert_eq!(Config::parse(json).unwrap(), minimal());
    }

    #[test]
    fn yaml_sets_every_field() {
        let config = Config::parse(
            "
groups:
  - iamGroup: eks-admins
    kubernetesGroups: [system:masters]
  - iamGroup: eks-viewers
    kubernetesGroups: []
clusters:
  - {name: prod, region: eu-west-1}
  - {name: prod, region: cn-north-1}
usernameTemplate: 'iam:{{AccountID}}:{{UserName}}'
maxConcurrency: 4
createMissingAwsAuth: false
allowSystemMasters: true
",
        )
        .unwrap();
        assert_eq!(config.groups.len(), 2);
        assert_eq!(config.clusters[1].region, "cn-north-1");
        assert_eq!(config.max_concurrency, 4);
        assert!(!config.create_missing_aws_auth);
        assert!(config.allow_system_masters);
        assert_eq!(
            config.render_username("alice", "123456789012"),
            "iam:123456789012:alice"
        );
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let error = Config::parse(&MINIMAL.replace("kubernetesGroups", "kubernetesGroup"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("groups[0]"), "{error}");
        assert!(error.contains("unknown field `kubernetesGroup`"), "{error}");
    }

    #[test]
    fn missing_required_field_is_named() {
        let error = Config::parse("clusters: []").unwrap_err().to_string();
        assert!(error.contains("missing field `groups`"), "{error}");
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let error = Config::parse(&format!("{MINIMAL}maxConcurrency: -1"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("maxConcurrency"), "{error}");
    }

    #[test]
    fn empty_groups_are_refused() {
        let config = Config {
            groups: vec![],
            ..minimal()
        };
        single_problem(&config, "groups");
    }

    #[test]
    fn invalid_iam_group_name_is_refused() {
        let mut config = minimal();
        config.groups[0].iam_group = "eks developers".to_owned();
        single_problem(&config, "groups[0].iamGroup");
        config.groups[0].iam_group = "g".repeat(129);
        single_problem(&config, "groups[0].iamGroup");
    }

    #[test]
    fn duplicate_iam_group_is_refused_ignoring_case() {
        let mut config = minimal();
        let mut twin = config.groups[0].clone();
        twin.iam_group = "EKS-Developers".to_owned();
        config.groups.push(twin);
        let message = single_problem(&config, "groups[1].iamGroup");
        assert!(message.contains("groups[0].iamGroup"), "{message}");
    }

    #[test]
    fn empty_kubernetes_group_is_refused() {
        single_problem(&with_kubernetes_group(""), "groups[0].kubernetesGroups[1]");
    }

    #[test]
    fn kubernetes_group_with_whitespace_or_control_is_refused() {
        for group in ["dev ops", " devs", "devs\n", "a\u{7}b"] {
            single_problem(
                &with_kubernetes_group(group),
                "groups[0].kubernetesGroups[1]",
            );
        }
    }

    #[test]
    fn overlong_kubernetes_group_is_refused() {
        let group = "g".repeat(257);
        single_problem(
            &with_kubernetes_group(&group),
            "groups[0].kubernetesGroups[1]",
        );
        assert!(problems(&with_kubernetes_group(&"g".repeat(256))).is_empty());
    }

    #[test]
    fn templated_kubernetes_group_is_refused() {
        for group in ["{{SessionName}}", "dev-}}"] {
            single_problem(
                &with_kubernetes_group(group),
                "groups[0].kubernetesGroups[1]",
            );
        }
    }

    #[test]
    fn duplicate_kubernetes_group_is_refused() {
        let message = single_problem(
            &with_kubernetes_group("developers"),
            "groups[0].kubernetesGroups[1]",
        );
        assert!(message.contains("kubernetesGroups[0]"), "{message}");
    }

    #[test]
    fn system_masters_is_refused_unless_allowed() {
        let config = with_kubernetes_group("system:masters");
        let message = single_problem(&config, "groups[0].kubernetesGroups[1]");
        assert!(message.contains("allowSystemMasters"), "{message}");
        let allowed = Config {
            allow_system_masters: true,
            ..config
        };
        assert!(problems(&allowed).is_empty());
    }

    #[test]
    fn other_reserved_system_groups_are_refused_even_when_masters_allowed() {
        let config = Config {
            allow_system_masters: true,
            ..with_kubernetes_group("system:nodes")
        };
        single_problem(&config, "groups[0].kubernetesGroups[1]");
    }

    #[test]
    fn empty_clusters_are_refused() {
        let config = Config {
            clusters: vec![],
            ..minimal()
        };
        single_problem(&config, "clusters");
    }

    #[test]
    fn invalid_cluster_name_is_refused() {
        for name in ["", "-dev", "dev.a", &"c".repeat(101)] {
            let mut config = minimal();
            config.clusters[0].name = name.to_owned();
            single_problem(&config, "clusters[0].name");
        }
    }

    #[test]
    fn invalid_region_is_refused() {
        for region in [
            "",
            "us-east",
            "US-EAST-1",
            "useast-1",
            "us-east-1a",
            "us--1",
        ] {
            let mut config = minimal();
            config.clusters[0].region = region.to_owned();
            single_problem(&config, "clusters[0].region");
        }
    }

    #[test]
    fn government_and_china_regions_are_accepted() {
        for region in [
            "us-gov-west-1",
            "cn-north-1",
            "cn-northwest-1",
            "ap-southeast-5",
        ] {
            let mut config = minimal();
            config.clusters[0].region = region.to_owned();
            assert!(problems(&config).is_empty(), "{region}");
        }
    }

    #[test]
    fn duplicate_cluster_is_refused() {
        let mut config = minimal();
        config.clusters.push(config.clusters[0].clone());
        let message = single_problem(&config, "clusters[1]");
        assert!(message.contains("clusters[0]"), "{message}");
        config.clusters[1].region = "us-west-2".to_owned();
        assert!(problems(&config).is_empty());
    }

    #[test]
    fn unknown_template_placeholder_is_refused() {
        let message = single_problem(
            &with_template("{{SessionName}}-{{UserName}}"),
            "usernameTemplate",
        );
        assert!(message.contains("{{SessionName}}"), "{message}");
    }

    #[test]
    fn unbalanced_template_braces_are_refused() {
        single_problem(
            &with_template("{{UserName}}-{{AccountID"),
            "usernameTemplate",
        );
        single_problem(&with_template("{{UserName}}}}"), "usernameTemplate");
    }

    #[test]
    fn template_without_user_name_is_refused() {
        for template in ["", "{{AccountID}}", "shared-user"] {
            single_problem(&with_template(template), "usernameTemplate");
        }
    }

    #[test]
    fn template_that_can_render_a_system_name_is_refused() {
        for template in [
            "system:{{UserName}}",
            "{{UserName}}:x",
            "sys{{UserName}}:x",
            "{{UserName}}tem:{{AccountID}}",
        ] {
            let message = single_problem(&with_template(template), "usernameTemplate");
            assert!(message.contains("system:"), "{template}: {message}");
        }
        for template in [
            "{{AccountID}}:{{UserName}}",
            "iam:{{UserName}}",
            "{{UserName}}",
            "{{UserName}}@{{AccountID}}",
            "sys{{UserName}}",
        ] {
            assert!(problems(&with_template(template)).is_empty(), "{template}");
        }
    }

    #[test]
    fn max_concurrency_out_of_range_is_refused() {
        for max_concurrency in [0, 257] {
            let config = Config {
                max_concurrency,
                ..minimal()
            };
            single_problem(&config, "maxConcurrency");
        }
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let mut config = with_kubernetes_group("");
        config.clusters[0].region = "nowhere".to_owned();
        config.max_concurrency = 0;
        assert_eq!(problems(&config).len(), 3, "{:?}", problems(&config));
    }

    #[test]
    fn render_username_substitutes_both_placeholders() {
        let config = with_template("{{AccountID}}/{{UserName}}");
        assert_eq!(
            config.render_username("alice", "123456789012"),
            "123456789012/alice"
        );
        assert_eq!(minimal().render_username("bob", "1"), "bob");
    }

    #[test]
    fn env_inline_config_is_read() {
        let config = Config::from_lookup(lookup(&[(ENV_INLINE, MINIMAL)])).unwrap();
        assert_eq!(config, minimal());
    }

    #[test]
    fn env_file_config_is_read() {
        let path = temp_path("file.yaml");
        std::fs::write(&path, MINIMAL).unwrap();
        let result = Config::from_lookup(lookup(&[(ENV_FILE, path.to_str().unwrap())]));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(result.unwrap(), minimal());
    }

    #[test]
    fn env_both_sources_is_an_error() {
        let result = Config::from_lookup(lookup(&[(ENV_INLINE, MINIMAL), (ENV_FILE, "x.yaml")]));
        assert!(
            matches!(result, Err(ConfigError::BothSources)),
            "{result:?}"
        );
    }

    #[test]
    fn env_neither_source_is_an_error() {
        let result = Config::from_lookup(lookup(&[]));
        assert!(matches!(result, Err(ConfigError::NoSource)), "{result:?}");
        let blank = Config::from_lookup(lookup(&[(ENV_INLINE, " "), (ENV_FILE, "")]));
        assert!(matches!(blank, Err(ConfigError::NoSource)), "{blank:?}");
    }

    #[test]
    fn env_missing_file_names_the_path() {
        let path = temp_path("missing.yaml");
        let path = path.to_str().unwrap();
        let error = Config::from_lookup(lookup(&[(ENV_FILE, path)])).unwrap_err();
        assert!(matches!(error, ConfigError::ReadFile { .. }), "{error:?}");
        assert!(error.to_string().contains(path), "{error}");
    }

    #[test]
    fn env_inline_config_is_validated() {
        let text = MINIMAL.replace("us-east-1", "moon-1");
        let error = Config::from_lookup(lookup(&[(ENV_INLINE, &text)])).unwrap_err();
        assert!(error.to_string().contains("clusters[0].region"), "{error}");
    }

    const ROLE: &str = "arn:aws:iam::210987654321:role/eks-iam-sync";

    fn with_cluster_yaml(cluster: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!(
            "
groups:
  - iamGroup: eks-developers
    kubernetesGroups: [developers]
clusters:
  - {cluster}
"
        ))
    }

    fn with_discovery(discovery: &str) -> Config {
        Config::parse(&format!(
            "
groups:
  - iamGroup: eks-developers
    kubernetesGroups: [developers]
discovery: {discovery}
"
        ))
        .unwrap_or_else(|e| panic!("{discovery}: {e}"))
    }

    #[test]
    fn backend_and_role_arn_parse_per_cluster() {
        let config = with_cluster_yaml(&format!(
            "{{name: prod, region: eu-west-1, backend: accessEntries, roleArn: '{ROLE}'}}"
        ))
        .unwrap();
        assert_eq!(config.clusters[0].backend, Backend::AccessEntries);
        assert_eq!(config.clusters[0].role_arn.as_deref(), Some(ROLE));
        for (text, backend) in [
            ("auto", Backend::Auto),
            ("configMap", Backend::ConfigMap),
            ("accessEntries", Backend::AccessEntries),
        ] {
            let config =
                with_cluster_yaml(&format!("{{name: c, region: us-east-1, backend: {text}}}"))
                    .unwrap();
            assert_eq!(config.clusters[0].backend, backend);
        }
    }

    #[test]
    fn an_unknown_backend_names_the_field_and_the_choices() {
        let error = with_cluster_yaml("{name: c, region: us-east-1, backend: aws-auth}")
            .unwrap_err()
            .to_string();
        assert!(error.contains("clusters[0].backend"), "{error}");
        assert!(error.contains("accessEntries"), "{error}");
    }

    #[test]
    fn an_invalid_role_arn_is_refused() {
        for arn in [
            "arn:aws:iam::210987654321:user/alice",
            "arn:aws:iam::21098765432:role/x",
            "arn:aws:sts::210987654321:assumed-role/x/y",
            "arn:aws:iam::210987654321:role/",
            "arn:aws:iam::210987654321:role/a//b",
            "role/x",
        ] {
            let mut config = minimal();
            config.clusters[0].role_arn = Some(arn.to_owned());
            single_problem(&config, "clusters[0].roleArn");
        }
        let mut config = minimal();
        config.clusters[0].role_arn = Some("arn:aws-cn:iam::210987654321:role/team/sync".into());
        assert!(problems(&config).is_empty());
    }

    #[test]
    fn the_same_cluster_in_another_account_is_not_a_duplicate() {
        let mut config = minimal();
        let mut other = config.clusters[0].clone();
        other.role_arn = Some(ROLE.to_owned());
        config.clusters.push(other.clone());
        assert!(problems(&config).is_empty());
        other.backend = Backend::ConfigMap;
        other.role_arn = Some("arn:aws:iam::210987654321:role/another-role".into());
        config.clusters.push(other);
        let message = single_problem(&config, "clusters[2]");
        assert!(message.contains("clusters[1]"), "{message}");
    }

    #[test]
    fn discovery_is_one_block_or_a_list() {
        let one = with_discovery("{regions: [us-east-1], tags: {team: platform}}");
        assert_eq!(one.discovery.len(), 1);
        assert_eq!(one.discovery[0].tags["team"], "platform");
        assert!(
            one.clusters.is_empty(),
            "clusters may be left out with discovery"
        );
        let many = with_discovery(&format!(
            "[{{regions: [us-east-1], tags: {{}}}}, {{regions: [eu-west-1], tags: {{a: b}}, roleArn: '{ROLE}', backend: accessEntries}}]"
        ));
        assert_eq!(many.discovery.len(), 2);
        assert_eq!(many.discovery[1].role_arn.as_deref(), Some(ROLE));
        assert_eq!(many.discovery[1].backend, Backend::AccessEntries);
    }

    #[test]
    fn discovery_errors_name_their_field() {
        let error = Config::parse(
            "
groups: [{iamGroup: g, kubernetesGroups: []}]
discovery: {regions: [us-east-1], tag: {a: b}}
",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("unknown field `tag`"), "{error}");
        let error = Config::parse(
            "
groups: [{iamGroup: g, kubernetesGroups: []}]
discovery: {regions: [us-east-1]}
",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("missing field `tags`"), "{error}");
    }

    #[test]
    fn discovery_values_are_validated() {
        let mut config = with_discovery("{regions: [us-east-1], tags: {a: b}}");
        config.discovery[0].regions = vec![];
        single_problem(&config, "discovery[0].regions");
        config.discovery[0].regions = vec!["us-east-1".into(), "moon".into(), "us-east-1".into()];
        let found = problems(&config);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("discovery[0].regions[1]: "),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("discovery[0].regions[2]: "),
            "{found:?}"
        );
        let mut config = with_discovery("{regions: [us-east-1], tags: {a: b}}");
        config.discovery[0].tags.insert("k".repeat(129), "v".into());
        single_problem(&config, "discovery[0].tags");
        let mut config = with_discovery("{regions: [us-east-1], tags: {a: b}}");
        config.discovery[0].role_arn = Some("nope".into());
        single_problem(&config, "discovery[0].roleArn");
    }

    #[test]
    fn no_cluster_and_no_discovery_is_refused() {
        let config = Config {
            clusters: vec![],
            ..minimal()
        };
        let message = single_problem(&config, "clusters");
        assert!(message.contains("discovery"), "{message}");
    }

    #[test]
    fn discovery_matches_clusters_carrying_every_tag() {
        let block = with_discovery("{regions: [us-east-1], tags: {team: a, env: prod}}")
            .discovery
            .remove(0);
        let tags = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(block.matches(&tags(&[("team", "a"), ("env", "prod"), ("x", "y")])));
        assert!(!block.matches(&tags(&[("team", "a")])));
        assert!(!block.matches(&tags(&[("team", "a"), ("env", "dev")])));
        let all = with_discovery("{regions: [us-east-1], tags: {}}")
            .discovery
            .remove(0);
        assert!(all.matches(&tags(&[])));
    }

    #[test]
    fn access_entry_prefixes_are_refused_only_where_access_entries_are_asked_for() {
        for group in ["eks:admins", "aws:x", "amazon:x", "iam:x"] {
            let config = with_kubernetes_group(group);
            assert!(
                problems(&config).is_empty(),
                "auto: {group} is checked at run time"
            );
            let mut config = config;
            config.clusters[0].backend = Backend::AccessEntries;
            let message = single_problem(&config, "groups[0].kubernetesGroups[1]");
            assert!(message.contains("access entries"), "{message}");
            assert!(message.contains("clusters[0]"), "{message}");
        }
        let mut config = with_discovery("{regions: [us-east-1], tags: {}, backend: accessEntries}");
        config.groups[0].kubernetes_groups.push("eks:x".into());
        let message = single_problem(&config, "groups[0].kubernetesGroups[1]");
        assert!(message.contains("discovery[0]"), "{message}");
    }

    #[test]
    fn system_masters_cannot_be_granted_with_access_entries() {
        let mut config = Config {
            allow_system_masters: true,
            ..with_kubernetes_group("system:masters")
        };
        assert!(problems(&config).is_empty());
        config.clusters[0].backend = Backend::AccessEntries;
        let message = single_problem(&config, "groups[0].kubernetesGroups[1]");
        assert!(message.contains("AmazonEKSClusterAdminPolicy"), "{message}");
    }

    #[test]
    fn a_template_that_can_render_a_refused_name_is_refused_for_access_entries() {
        let mut config = with_template("iam:{{AccountID}}:{{UserName}}");
        assert!(problems(&config).is_empty());
        config.clusters[0].backend = Backend::AccessEntries;
        let message = single_problem(&config, "usernameTemplate");
        assert!(message.contains("iam:"), "{message}");
        let mut fine = with_template("{{AccountID}}:{{UserName}}");
        fine.clusters[0].backend = Backend::AccessEntries;
        assert!(problems(&fine).is_empty());
    }

    #[test]
    fn a_config_serialises_back_to_an_equal_one() {
        let config = with_cluster_yaml(&format!(
            "{{name: prod, region: eu-west-1, backend: configMap, roleArn: '{ROLE}'}}"
        ))
        .unwrap();
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(Config::parse(&text).unwrap(), config);
        assert!(!text.contains("discovery"), "{text}");
    }

    #[test]
    fn service_identities_must_be_role_or_user_arns() {
        let mut config = minimal();
        config.service_identities = vec![
            "arn:aws:iam::123456789012:role/ci/deployer".into(),
            "arn:aws:iam::123456789012:user/robot".into(),
        ];
        assert!(problems(&config).is_empty());
        config
            .service_identities
            .push("arn:aws:sts::123456789012:assumed-role/x/y".into());
        let message = single_problem(&config, "serviceIdentities[2]");
        assert!(message.contains("not an IAM role or user ARN"), "{message}");
        let parsed = Config::parse(&format!(
            "{MINIMAL}serviceIdentities: [arn:aws:iam::123456789012:role/ci]\n"
        ))
        .unwrap();
        assert_eq!(parsed.service_identities.len(), 1);
    }
}
