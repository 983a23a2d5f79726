//! Role mappings: the config's `roles`, the rules their user names follow, and the pure part of
//! resolving them into a [`Desired`] of roles for one cluster.
//!
//! A shared role mapped to a fixed user name makes every person who assumes it the same user in
//! the audit log. A role mapping therefore must carry the session name, which for an IAM Identity
//! Center (SSO) role or a role assumed with `--role-session-name` is the person. The rules follow
//! what renders the name at login, so that what the config accepts is what both stores accept
//! and render the same way:
//! - aws-iam-authenticator `pkg/server/server.go` `renderTemplate`: `{{AccountID}}`,
//!   `{{SessionName}}` (the session name with `@` replaced by `-`), `{{SessionNameRaw}}` (as it
//!   is), `{{AccessKeyID}}`, and `{{EC2PrivateDNSName}}` (nodes only, refused here);
//! - EKS user guide, "Set a custom username for EKS access entries": a custom user name can't
//!   start with `system:`, `eks:`, `aws:`, `amazon:` or `iam:`, and with `{{SessionName}}` (or
//!   `{{SessionNameRaw}}`) it must have a colon before it; EKS's own default for a role is
//!   `arn:aws:sts::<account>:assumed-role/<role name>/{{SessionName}}`, the path removed.
//!
//! Templates are written to the stores as they are: the authenticator and EKS render them at
//! each login, per session.
//!
//! ```
//! use eks_iam_sync::roles::template_problems;
//! assert!(template_problems("admin:{{SessionName}}").is_empty());
//! assert!(!template_problems("eks-cluster-admin").is_empty()); // names nobody
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::access_entries::RESERVED_PREFIXES;
use crate::desired::{Desired, Mapping, RoleArn, Scope};

/// The path IAM Identity Center creates its roles under, in every account it provisions (IAM
/// Identity Center user guide, "Referencing permission sets in resource policies, Amazon EKS,
/// and AWS KMS": `role/aws-reserved/sso.amazonaws.com/<region>/AWSReservedSSO_<set>_<suffix>`,
/// the region segment absent for older instances; "Using service-linked roles": its role may
/// CreateRole and DeleteRole only on this path with the name prefix `AWSReservedSSO_`).
pub const SSO_ROLE_PATH_PREFIX: &str = "/aws-reserved/sso.amazonaws.com/";
/// Identity Center role names: `AWSReservedSSO_<permission set name>_<suffix>`.
pub const SSO_ROLE_NAME_PREFIX: &str = "AWSReservedSSO_";

const SESSION_NAME: &str = "SessionName";
const SESSION_NAME_RAW: &str = "SessionNameRaw";
const ACCOUNT_ID: &str = "AccountID";
const ACCESS_KEY_ID: &str = "AccessKeyID";
/// Permission set names: 1-32 of `[\w+=,.@-]` (IAM Identity Center API, `PermissionSet.Name`).
const MAX_PERMISSION_SET_NAME: usize = 32;

/// One `roles` entry: an IAM role, named by ARN or by Identity Center permission set, mapped to
/// Kubernetes groups under a user name that carries the session name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleMapping {
    /// The role, with or without a path. Exactly one of `roleArn` and `permissionSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// An IAM Identity Center permission set, by name: resolved in each cluster's account to the
    /// role Identity Center made for it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_set: Option<String>,
    pub kubernetes_groups: Vec<String>,
    /// Default: EKS's own default for a role access entry,
    /// `arn:<partition>:sts::<account>:assumed-role/<role name>/{{SessionName}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_template: Option<String>,
}

impl RoleMapping {
    /// The user name written for `role`: the template as configured, or EKS's default.
    pub fn username_for(&self, role: &RoleArn) -> String {
        self.username_template
            .clone()
            .unwrap_or_else(|| role.default_username())
    }

    /// Whether this entry can be about an IAM role named `name` (case-insensitively, as IAM
    /// role names are unique): what lets a role event skip entries it cannot concern.
    pub fn may_name(&self, name: &str) -> bool {
        match (&self.role_arn, &self.permission_set) {
            (Some(arn), _) => RoleArn::parse(arn)
                .map(|arn| arn.role_name().eq_ignore_ascii_case(name))
                .unwrap_or(false),
            (None, Some(set)) => is_sso_role_of(set, name),
            (None, None) => false,
        }
    }
}

/// Whether `role_name` is the role Identity Center makes for permission set `set`:
/// `AWSReservedSSO_<set>_<suffix>`, the suffix being what follows the last `_` (a permission set
/// name may itself contain `_`).
pub fn is_sso_role_of(set: &str, role_name: &str) -> bool {
    let Some(rest) = role_name.strip_prefix(SSO_ROLE_NAME_PREFIX) else {
        return false;
    };
    match rest.rsplit_once('_') {
        Some((name, suffix)) => name == set && !suffix.is_empty(),
        None => false,
    }
}

/// Whether `path` is an Identity Center role path (`/aws-reserved/sso.amazonaws.com/`, with or
/// without a region segment after it).
pub fn is_sso_role_path(path: &str) -> bool {
    path.starts_with(SSO_ROLE_PATH_PREFIX)
}

/// A piece of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Literal(&'a str),
    Placeholder(&'a str),
    Unclosed(&'a str),
}

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

/// Everything wrong with a role's `usernameTemplate`, as messages (empty: accepted).
///
/// - Only the placeholders aws-iam-authenticator's `renderTemplate` renders for a role session:
///   `{{AccountID}}`, `{{SessionName}}`, `{{SessionNameRaw}}`, `{{AccessKeyID}}`.
/// - `{{SessionName}}` or `{{SessionNameRaw}}` is required: without it every person who assumes
///   the role is the same user, which is what this tool exists to end.
/// - A colon before the first session placeholder (EKS refuses a custom user name with
///   `{{SessionName}}` without one, so a session name cannot pose as another user).
/// - No reserved prefix (`system:`, `eks:`, `aws:`, `amazon:`, `iam:`). The text before the
///   first placeholder decides: given the colon rule, what comes after a placeholder cannot form
///   a prefix, and `{{AccountID}}` (digits) and `{{AccessKeyID}}` (upper case and digits) can
///   never render one.
pub fn template_problems(template: &str) -> Vec<String> {
    let pieces = pieces(template);
    let mut problems = Vec::new();
    let mut seen_colon = false;
    let mut session = false;
    let mut colon_before_session = true;
    for piece in &pieces {
        match piece {
            Piece::Literal(text) if text.contains("}}") => {
                problems.push(format!("{text:?} has }}}} without an opening {{{{"));
                seen_colon |= text.contains(':');
            }
            Piece::Literal(text) => seen_colon |= text.contains(':'),
            Piece::Unclosed(text) => {
                problems.push(format!("{text:?} opens {{{{ without closing it"))
            }
            Piece::Placeholder(SESSION_NAME | SESSION_NAME_RAW) => {
                if !session && !seen_colon {
                    colon_before_session = false;
                }
                session = true;
            }
            Piece::Placeholder(ACCOUNT_ID | ACCESS_KEY_ID) => {}
            Piece::Placeholder(other) => problems.push(format!(
                "unknown placeholder {{{{{other}}}}}; allowed for a role are {{{{{ACCOUNT_ID}}}}}, {{{{{SESSION_NAME}}}}}, {{{{{SESSION_NAME_RAW}}}}} and {{{{{ACCESS_KEY_ID}}}}}"
            )),
        }
    }
    if !session {
        problems.push(format!(
            "{template:?} names no session: it must contain {{{{{SESSION_NAME}}}}} or {{{{{SESSION_NAME_RAW}}}}}, or every person using the role is the same user (untraceable)"
        ));
    } else if !colon_before_session {
        problems.push(format!(
            "{template:?} must have a colon before {{{{{SESSION_NAME}}}}} (EKS refuses a custom user name with the session placeholder and no colon before it), e.g. \"admin:{{{{{SESSION_NAME}}}}}\""
        ));
    }
    if let Some(Piece::Literal(first)) = pieces.first() {
        if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| first.starts_with(*p)) {
            problems.push(format!(
                "{template:?} starts with {prefix}, which EKS and Kubernetes reserve"
            ));
        }
    }
    problems
}

/// Everything wrong with `roles[index]` apart from its Kubernetes groups (which follow the
/// rules of `groups[].kubernetesGroups`), as `(field path, message)`.
pub fn entry_problems(index: usize, role: &RoleMapping) -> Vec<(String, String)> {
    let at = |field: &str| format!("roles[{index}].{field}");
    let mut problems = Vec::new();
    match (&role.role_arn, &role.permission_set) {
        (Some(_), Some(_)) => problems.push((
            format!("roles[{index}]"),
            "set exactly one of roleArn and permissionSet, not both".to_owned(),
        )),
        (None, None) => problems.push((
            format!("roles[{index}]"),
            "set exactly one of roleArn and permissionSet".to_owned(),
        )),
        (Some(arn), None) => {
            if let Err(e) = RoleArn::parse(arn) {
                problems.push((at("roleArn"), e.to_string()));
            }
        }
        (None, Some(set)) => {
            if !is_permission_set_name(set) {
                problems.push((
                    at("permissionSet"),
                    format!("{set:?} is not a permission set name: expected 1-{MAX_PERMISSION_SET_NAME} letters, digits or +=,.@_-"),
                ));
            }
        }
    }
    if let Some(template) = &role.username_template {
        for message in template_problems(template) {
            problems.push((at("usernameTemplate"), message));
        }
    }
    problems
}

fn is_permission_set_name(name: &str) -> bool {
    (1..=MAX_PERMISSION_SET_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// An IAM role as ListRoles or GetRole return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamRole {
    pub name: String,
    pub arn: String,
    pub path: String,
    /// IAM's `RoleId` (`AROA...`): new when a role of the same name is created again, and what
    /// EKS binds an access entry to.
    pub id: String,
}

/// What one cluster's account holds for the `roles` entries: the roles each entry names there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Per `roles` index: the roles found (empty: none in this account).
    pub found: BTreeMap<usize, Vec<IamRole>>,
}

/// Resolves the `roles` entries `scope` may concern in the account of `identity` (the role a
/// cluster is reached through; `None`: the function's own account).
///
/// - `permissionSet`: one ListRoles with the path prefix [`SSO_ROLE_PATH_PREFIX`] (all pages)
///   for every such entry, then the roles named `AWSReservedSSO_<set>_<suffix>`.
/// - `roleArn`: GetRole by name. IAM's ARN (with its path) and `RoleId` are used when the role
///   is in the configured account; a role of another account than the identity's cannot be
///   looked up there and is mapped as configured, without a principal id; a role IAM does not
///   have (NoSuchEntity in its own account) is mapped nowhere.
pub async fn resolve(
    iam: &dyn crate::iam::IamDirectory,
    identity: Option<&str>,
    roles: &[RoleMapping],
    scope: &Scope,
) -> Result<Resolved, crate::iam::IamError> {
    let concerns = |role: &RoleMapping| match scope {
        Scope::All => true,
        Scope::Users(_) => false,
        Scope::Roles(names) => names.iter().any(|n| role.may_name(n)),
    };
    let mut found = BTreeMap::new();
    let mut sso: Option<Vec<IamRole>> = None;
    let identity_account = identity.and_then(crate::config::role_account);
    for (index, role) in roles.iter().enumerate() {
        if !concerns(role) {
            continue;
        }
        match (&role.role_arn, &role.permission_set) {
            (_, Some(set)) => {
                if sso.is_none() {
                    sso = Some(iam.roles_under(identity, SSO_ROLE_PATH_PREFIX).await?);
                }
                let matching: Vec<IamRole> = sso
                    .iter()
                    .flatten()
                    .filter(|r| is_sso_role_path(&r.path) && is_sso_role_of(set, &r.name))
                    .cloned()
                    .collect();
                found.insert(index, matching);
            }
            (Some(arn), None) => {
                let Ok(configured) = RoleArn::parse(arn) else {
                    continue;
                };
                let as_configured = || IamRole {
                    name: configured.role_name().to_owned(),
                    arn: configured.to_string(),
                    path: String::new(),
                    id: String::new(),
                };
                let roles = match iam.role(identity, configured.role_name()).await? {
                    Some(role) => match RoleArn::parse(&role.arn) {
                        Ok(got) if got.account() == configured.account() => vec![role],
                        _ => vec![as_configured()],
                    },
                    None if identity_account.is_some_and(|a| a != configured.account()) => {
                        vec![as_configured()]
                    }
                    None => Vec::new(),
                };
                found.insert(index, roles);
            }
            (None, None) => {}
        }
    }
    Ok(Resolved { found })
}

/// What to report about a resolution that found nothing, or more than one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub entry: usize,
    pub message: String,
}

/// The roles desired in one cluster, within `scope`, from what its account holds.
///
/// A permission set that resolves to no role there grants nothing there (noted). One that
/// resolves to several (Identity Center briefly keeps the old role while it provisions the
/// new one after a reassignment) maps all of them: each is a role Identity Center made for the
/// set, and the old one goes with its role. Two entries for the same role merge their groups;
/// the first entry's user name wins (noted).
pub fn desired(
    roles: &[RoleMapping],
    scope: &Scope,
    resolved: &Resolved,
) -> (Desired<RoleArn>, Vec<Note>) {
    let mut entries: BTreeMap<RoleArn, (usize, Mapping)> = BTreeMap::new();
    let mut notes = Vec::new();
    for (index, role) in roles.iter().enumerate() {
        let found = resolved.found.get(&index).cloned().unwrap_or_default();
        if found.is_empty() {
            if scope.covers_roles() {
                notes.push(Note {
                    entry: index,
                    message: format!(
                        "roles[{index}]: no such role in this account; nothing granted for it here"
                    ),
                });
            }
            continue;
        }
        if found.len() > 1 {
            let names: Vec<&str> = found.iter().map(|r| r.name.as_str()).collect();
            notes.push(Note {
                entry: index,
                message: format!(
                    "roles[{index}]: {} roles match, all are mapped: {}",
                    found.len(),
                    names.join(", ")
                ),
            });
        }
        for iam_role in found {
            let Ok(arn) = RoleArn::parse(&iam_role.arn) else {
                continue;
            };
            if !scope.covers_role(arn.role_name()) {
                continue;
            }
            let mapping = Mapping::new(role.username_for(&arn), role.kubernetes_groups.iter());
            let mapping = match iam_role.id.as_str() {
                "" => mapping,
                id => mapping.for_principal(id),
            };
            match entries.get_mut(&arn) {
                Some((first, existing)) => {
                    if existing.username != mapping.username {
                        notes.push(Note {
                            entry: index,
                            message: format!(
                                "roles[{index}] and roles[{first}] both map {arn} with other user names; roles[{first}]'s is used"
                            ),
                        });
                    }
                    let groups: BTreeSet<String> = existing
                        .groups
                        .iter()
                        .chain(&mapping.groups)
                        .cloned()
                        .collect();
                    *existing =
                        Mapping::new(existing.username.clone(), groups).for_principal(iam_role.id);
                }
                None => {
                    entries.insert(arn, (index, mapping));
                }
            }
        }
    }
    let desired = Desired {
        scope: scope.clone(),
        entries: entries.into_iter().map(|(arn, (_, m))| (arn, m)).collect(),
    };
    (desired, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn session_templates_with_a_colon_are_accepted() {
        for ok in [
            "admin:{{SessionName}}",
            "admin:{{SessionNameRaw}}",
            "{{AccountID}}:{{SessionName}}",
            "a:{{AccessKeyID}}:{{SessionName}}",
            "arn:aws:sts::111122223333:assumed-role/Admin/{{SessionName}}",
        ] {
            assert!(
                template_problems(ok).is_empty(),
                "{ok}: {:?}",
                template_problems(ok)
            );
        }
    }

    #[test]
    fn a_template_without_the_session_is_untraceable() {
        let problems = template_problems("eks-cluster-admin");
        assert!(problems[0].contains("untraceable"), "{problems:?}");
        let problems = template_problems("admin:{{AccessKeyID}}");
        assert!(problems[0].contains("untraceable"), "{problems:?}");
    }

    #[test]
    fn the_session_needs_a_colon_before_it() {
        assert!(template_problems("{{SessionName}}")[0].contains("colon"));
        assert!(template_problems("admin-{{SessionNameRaw}}:x")[0].contains("colon"));
    }

    #[test]
    fn reserved_prefixes_and_unknown_placeholders_are_refused() {
        for prefix in RESERVED_PREFIXES {
            let template = format!("{prefix}{{{{SessionName}}}}");
            assert!(
                template_problems(&template)
                    .iter()
                    .any(|p| p.contains("reserve")),
                "{template}"
            );
        }
        assert!(template_problems("a:{{UserName}}:{{SessionName}}")[0].contains("unknown"));
        assert!(
            template_problems("a:{{EC2PrivateDNSName}}:{{SessionName}}")[0].contains("unknown")
        );
        assert!(template_problems("a:{{SessionName")[0].contains("without closing"));
    }

    #[test]
    fn entries_need_exactly_one_source_and_name_the_field() {
        let role = |arn: Option<&str>, set: Option<&str>, template: Option<&str>| RoleMapping {
            role_arn: arn.map(str::to_owned),
            permission_set: set.map(str::to_owned),
            kubernetes_groups: vec![],
            username_template: template.map(str::to_owned),
        };
        assert_eq!(entry_problems(0, &role(None, None, None))[0].0, "roles[0]");
        assert_eq!(
            entry_problems(
                2,
                &role(Some("arn:aws:iam::111122223333:role/a"), Some("b"), None)
            )[0]
            .0,
            "roles[2]"
        );
        assert_eq!(
            entry_problems(1, &role(None, Some("Admin"), Some("fixed")))[0].0,
            "roles[1].usernameTemplate"
        );
        assert_eq!(
            entry_problems(0, &role(Some("arn:aws:iam::1:role/a"), None, None))[0].0,
            "roles[0].roleArn"
        );
        assert!(entry_problems(0, &role(None, Some("Admin_Access"), None)).is_empty());
    }

    #[test]
    fn sso_role_names_split_at_the_last_underscore() {
        assert!(is_sso_role_of(
            "AdministratorAccess",
            "AWSReservedSSO_AdministratorAccess_0123abcd"
        ));
        assert!(is_sso_role_of(
            "Admin_Access",
            "AWSReservedSSO_Admin_Access_0123abcd"
        ));
        assert!(!is_sso_role_of(
            "Admin",
            "AWSReservedSSO_Admin_Access_0123abcd"
        ));
        assert!(!is_sso_role_of("Admin", "AWSReservedSSO_Admin_"));
        assert!(!is_sso_role_of("Admin", "Admin_0123"));
        assert!(is_sso_role_path("/aws-reserved/sso.amazonaws.com/"));
        assert!(is_sso_role_path(
            "/aws-reserved/sso.amazonaws.com/eu-west-1/"
        ));
        assert!(!is_sso_role_path("/aws-reserved/"));
    }

    fn sso(name: &str, id: &str) -> IamRole {
        IamRole {
            name: name.into(),
            arn: format!("arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/{name}"),
            path: SSO_ROLE_PATH_PREFIX.into(),
            id: id.into(),
        }
    }

    #[test]
    fn a_reassigned_set_maps_both_roles_and_none_maps_nothing() {
        let roles = [RoleMapping {
            role_arn: None,
            permission_set: Some("Admin".into()),
            kubernetes_groups: vec!["developers".into()],
            username_template: None,
        }];
        let resolved = Resolved {
            found: BTreeMap::from([(
                0,
                vec![
                    sso("AWSReservedSSO_Admin_a1", "AROA1"),
                    sso("AWSReservedSSO_Admin_b2", "AROA2"),
                ],
            )]),
        };
        let (desired, notes) = desired(&roles, &Scope::All, &resolved);
        assert_eq!(desired.entries.len(), 2);
        assert_eq!(notes.len(), 1);
        let first = desired.entries.values().next().unwrap();
        assert_eq!(
            first.username,
            "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_a1/{{SessionName}}"
        );
        assert_eq!(first.principal_id.as_deref(), Some("AROA1"));
        let nothing = Resolved {
            found: BTreeMap::from([(0, vec![])]),
        };
        let (none, notes) = super::desired(&roles, &Scope::All, &nothing);
        assert!(none.entries.is_empty());
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn a_role_scope_keeps_only_its_roles() {
        let roles = [RoleMapping {
            role_arn: None,
            permission_set: Some("Admin".into()),
            kubernetes_groups: vec![],
            username_template: Some("a:{{SessionName}}".into()),
        }];
        let resolved = Resolved {
            found: BTreeMap::from([(
                0,
                vec![
                    sso("AWSReservedSSO_Admin_a1", "AROA1"),
                    sso("AWSReservedSSO_Admin_b2", "AROA2"),
                ],
            )]),
        };
        let scope = Scope::Roles(BTreeSet::from(["awsreservedsso_admin_b2".to_string()]));
        let (desired, _) = desired(&roles, &scope, &resolved);
        let names: Vec<&str> = desired.entries.keys().map(|a| a.role_name()).collect();
        assert_eq!(names, ["AWSReservedSSO_Admin_b2"]);
    }

    fn template_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z:./-]{0,6}",
            Just("{{SessionName}}".to_string()),
            Just("{{SessionNameRaw}}".to_string()),
            Just("{{AccountID}}".to_string()),
            Just("{{AccessKeyID}}".to_string()),
            Just("{{UserName}}".to_string()),
            Just("system:".to_string()),
            Just("{{".to_string()),
        ]
    }

    /// What the authenticator does at login (`renderTemplate`), for a session name.
    fn render(template: &str, session: &str) -> String {
        template
            .replace("{{AccountID}}", "111122223333")
            .replace("{{SessionName}}", &session.replace('@', "-"))
            .replace("{{SessionNameRaw}}", session)
            .replace("{{AccessKeyID}}", "ASIAEXAMPLE")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every accepted template names the session (two people never render alike), keeps a
        /// colon before it, and never renders a reserved prefix, for any STS session name.
        #[test]
        fn accepted_templates_name_the_session_and_stay_clear_of_reserved_names(
            parts in proptest::collection::vec(template_piece(), 0..6),
            a in "[A-Za-z0-9+=,.@_-]{2,20}",
            b in "[A-Za-z0-9+=,.@_-]{2,20}",
        ) {
            let template: String = parts.concat();
            if template_problems(&template).is_empty() {
                let ra = render(&template, &a);
                if a.replace('@', "-") != b.replace('@', "-") && a != b {
                    prop_assert_ne!(render(&template, &a), render(&template, &b));
                }
                for prefix in RESERVED_PREFIXES {
                    prop_assert!(!ra.starts_with(prefix), "{} renders {}", template, ra);
                }
                let at = template.find("{{SessionName").unwrap();
                prop_assert!(template[..at].contains(':'));
            }
        }
    }
}
