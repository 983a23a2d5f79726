//! Mapping a verified caller to a Kubernetes user through `aws-auth`, with the authenticator's
//! quirks kept on purpose, or through an access entry.
//!
//! The product's job is to write aws-auth so that EKS grants what it should; a test bed that
//! parsed the ConfigMap more strictly or more kindly than aws-iam-authenticator would pass
//! ConfigMaps that lock people out on EKS (or fail ones that work). So: YAML values read
//! leniently (unknown keys ignored, field names matched case-insensitively like Go's JSON
//! decoder), a syntax error drops that whole key, the last duplicate ARN wins, roles are looked
//! up before users, and `mapAccounts` maps a whole account to the caller's canonical ARN.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_yaml_ng::{Mapping, Value};

use super::{AccessEntryGrant, CallerIdentity, Rejection};

const KNOWN_PARTITIONS: [&str; 5] = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"];
const UID_PREFIX: &str = "aws-iam-authenticator";
const EC2_PRIVATE_DNS_NAME: &str = "{{EC2PrivateDNSName}}";

/// The Kubernetes user a caller is authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedUser {
    pub username: String,
    pub groups: Vec<String>,
    /// `aws-iam-authenticator:<account>:<principal id>`, as the authenticator sets it.
    pub uid: String,
    /// The authenticator's extra keys: `arn`, `canonicalArn`, `sessionName`, `accessKeyId`,
    /// `principalId`.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Maps `id` through the `data` of an aws-auth ConfigMap, as aws-iam-authenticator's
/// ConfigMap mapper does.
pub fn map_identity(
    id: &CallerIdentity,
    aws_auth: &BTreeMap<String, String>,
) -> Result<MappedUser, Rejection> {
    let canonical = canonicalize_arn(&id.arn)?;
    let mapping = Mappings::parse(aws_auth)
        .lookup(&canonical, &id.account)
        .ok_or_else(|| Rejection::ArnNotMapped(canonical.clone()))?;
    let render = |template: &str| render_template(template, id, &canonical);
    Ok(MappedUser {
        username: render(&mapping.username)?,
        groups: mapping
            .groups
            .iter()
            .map(|g| render(g))
            .collect::<Result<_, _>>()?,
        uid: format!("{UID_PREFIX}:{}:{}", id.account, id.user_id),
        extra: extra(id, &canonical),
    })
}

/// The Kubernetes user an access entry makes of `id`: the entry's username with the same
/// templates aws-auth allows, its groups as they are (EKS takes group names literally).
pub fn map_access_entry(
    id: &CallerIdentity,
    entry: &AccessEntryGrant,
) -> Result<MappedUser, Rejection> {
    let canonical = canonicalize_arn(&id.arn)?;
    Ok(MappedUser {
        username: render_template(&entry.username, id, &canonical)?,
        groups: entry.groups.clone(),
        uid: format!("{UID_PREFIX}:{}:{}", id.account, id.user_id),
        extra: extra(id, &canonical),
    })
}

/// Whether `entry`, found for the caller's canonical ARN `canonical`, authenticates `id`.
///
/// EKS stores the principal's unique id with each access entry (EKS API Reference,
/// `AccessEntry.principalArn`: "If you don't delete the access entry and ever recreate the IAM
/// principal, even if it has the same ARN, the access entry won't work ... Amazon EKS stores
/// [the roleID or userID] with the access entry"), so an entry made for a principal since
/// deleted does not work for a new one of the same name. aws-iam-authenticator's
/// user-id-strict mapper (pkg/mapper/dynamicfile/mapper.go, `Map` and `match`) looks entries
/// up by the caller's id and then requires the entry's ARN, a role's path stripped
/// (`arn.StripPath`), to equal the caller's canonical ARN, case-insensitively: a renamed or
/// moved user keeps the id but no longer matches the entry made under the old ARN.
pub fn entry_binds(
    id: &CallerIdentity,
    canonical: &str,
    entry: &AccessEntryGrant,
) -> Result<(), Rejection> {
    if let Some(entry_id) = &entry.principal_id {
        if *entry_id != id.user_id {
            return Err(Rejection::EntryForAnotherPrincipal {
                arn: canonical.to_owned(),
                entry_id: entry_id.clone(),
                caller_id: id.user_id.clone(),
            });
        }
    }
    if !strip_role_path(&entry.principal_arn).eq_ignore_ascii_case(canonical) {
        return Err(Rejection::EntryArnChanged {
            arn: canonical.to_owned(),
            entry_arn: entry.principal_arn.clone(),
            caller_id: id.user_id.clone(),
        });
    }
    Ok(())
}

/// `arn:P:iam::ACCT:role/<path...>/ROLE` without its path, as the authenticator's
/// `arn.StripPath` does; every other ARN as it is.
fn strip_role_path(arn: &str) -> String {
    match arn.split_once(":role/") {
        Some((head, path_and_name)) => {
            let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
            format!("{head}:role/{name}")
        }
        None => arn.to_owned(),
    }
}

/// `arn:P:sts::ACCT:assumed-role/<path...>/ROLE/SESSION` becomes `arn:P:iam::ACCT:role/<path...>/ROLE`;
/// other identity ARNs (IAM users, roles, the root, federated users) stay as they are.
pub fn canonicalize_arn(arn: &str) -> Result<String, Rejection> {
    let unsupported = |why| Rejection::UnsupportedArn {
        arn: arn.to_string(),
        why,
    };
    let [_, partition, service, _region, account, resource] =
        arn.splitn(6, ':').collect::<Vec<_>>()[..]
    else {
        return Err(unsupported("not an ARN"));
    };
    if !arn.starts_with("arn:") {
        return Err(unsupported("not an ARN"));
    }
    if !KNOWN_PARTITIONS.contains(&partition) {
        return Err(unsupported("unknown partition"));
    }
    let parts: Vec<&str> = resource.split('/').collect();
    match (service, parts[0]) {
        ("sts", "federated-user") | ("iam", "role" | "user" | "root") => Ok(arn.to_string()),
        ("sts", "assumed-role") if parts.len() >= 3 => {
            let role = parts[1..parts.len() - 1].join("/");
            Ok(format!("arn:{partition}:iam::{account}:role/{role}"))
        }
        ("sts", "assumed-role") => Err(unsupported("assumed-role ARN without a role")),
        _ => Err(unsupported("not a user, role or session")),
    }
}

fn render_template(
    template: &str,
    id: &CallerIdentity,
    canonical: &str,
) -> Result<String, Rejection> {
    if template.contains(EC2_PRIVATE_DNS_NAME) {
        return Err(Rejection::Ec2PrivateDnsName(canonical.to_string()));
    }
    let raw_session = id.session_name.as_deref().unwrap_or_default();
    // The authenticator swaps `@` so e-mail style session names make valid user names.
    let session = raw_session.replace('@', "-");
    Ok(template
        .replace("{{AccountID}}", &id.account)
        .replace("{{SessionName}}", &session)
        .replace("{{SessionNameRaw}}", raw_session)
        .replace("{{AccessKeyID}}", &id.access_key_id))
}

fn extra(id: &CallerIdentity, canonical: &str) -> BTreeMap<String, Vec<String>> {
    [
        ("arn", id.arn.as_str()),
        ("canonicalArn", canonical),
        (
            "sessionName",
            id.session_name.as_deref().unwrap_or_default(),
        ),
        ("accessKeyId", &id.access_key_id),
        ("principalId", &id.user_id),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
    .collect()
}

/// One mapping entry, templates not yet rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    username: String,
    groups: Vec<String>,
}

/// The parsed aws-auth data, keyed by lower-cased ARN.
struct Mappings {
    roles: HashMap<String, Entry>,
    users: HashMap<String, Entry>,
    accounts: HashSet<String>,
}

impl Mappings {
    fn parse(data: &BTreeMap<String, String>) -> Self {
        Self {
            roles: parse_section(data, "mapRoles", "rolearn"),
            users: parse_section(data, "mapUsers", "userarn"),
            accounts: parse_accounts(data),
        }
    }

    fn lookup(&self, canonical_arn: &str, account: &str) -> Option<Entry> {
        let key = canonical_arn.to_lowercase();
        let mapped = self
            .roles
            .get(&key)
            .or_else(|| self.users.get(&key))
            .cloned();
        mapped.or_else(|| {
            self.accounts.contains(account).then(|| Entry {
                username: canonical_arn.to_string(),
                groups: Vec::new(),
            })
        })
    }
}

/// The entries of `mapRoles` or `mapUsers`. A value that is not YAML, or not a list, yields
/// nothing at all; an entry without its ARN is skipped alone.
fn parse_section(
    data: &BTreeMap<String, String>,
    key: &str,
    arn_field: &str,
) -> HashMap<String, Entry> {
    let Some(text) = data.get(key) else {
        return HashMap::new();
    };
    let entries = match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Sequence(entries)) => entries,
        Ok(Value::Null) => Vec::new(),
        Ok(_) => {
            tracing::warn!(
                key,
                "aws-auth key is not a list; ignoring all of its mappings"
            );
            Vec::new()
        }
        Err(error) => {
            tracing::warn!(key, %error, "aws-auth key is not valid YAML; ignoring all of its mappings");
            Vec::new()
        }
    };
    let mut mappings = HashMap::new();
    for entry in entries {
        let Value::Mapping(entry) = entry else {
            tracing::warn!(key, "aws-auth entry is not a mapping; skipped");
            continue;
        };
        let arn = string_field(&entry, arn_field);
        if arn.is_empty() {
            tracing::warn!(key, "aws-auth entry has no {arn_field}; skipped");
            continue;
        }
        let mapping = Entry {
            username: string_field(&entry, "username"),
            groups: groups_field(&entry),
        };
        // Later duplicates replace earlier ones, as in the authenticator.
        mappings.insert(arn.to_lowercase(), mapping);
    }
    mappings
}

/// The last value whose key matches `name` case-insensitively: Go's JSON decoder, which the
/// authenticator uses after converting YAML to JSON, fills a field that way.
fn field<'a>(entry: &'a Mapping, name: &str) -> Option<&'a Value> {
    entry
        .iter()
        .filter(|(k, _)| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v)
        .last()
}

/// A string field; like Go's decoder, a value of another type leaves it empty.
fn string_field(entry: &Mapping, name: &str) -> String {
    field(entry, name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn groups_field(entry: &Mapping) -> Vec<String> {
    match field(entry, "groups") {
        Some(Value::Sequence(groups)) => groups
            .iter()
            .map(|g| g.as_str().unwrap_or_default().to_string())
            .collect(),
        _ => Vec::new(),
    }
}

fn parse_accounts(data: &BTreeMap<String, String>) -> HashSet<String> {
    let Some(text) = data.get("mapAccounts") else {
        return HashSet::new();
    };
    match serde_yaml_ng::from_str::<Option<Vec<String>>>(text) {
        Ok(accounts) => accounts.unwrap_or_default().into_iter().collect(),
        Err(error) => {
            tracing::warn!(%error, "aws-auth mapAccounts is not a list of account ids; ignored");
            HashSet::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> CallerIdentity {
        CallerIdentity {
            arn: "arn:aws:iam::111122223333:user/ops/Bob".into(),
            account: "111122223333".into(),
            user_id: "AIDAEXAMPLE".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            session_name: None,
        }
    }

    fn role_session() -> CallerIdentity {
        CallerIdentity {
            arn: "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com".into(),
            account: "111122223333".into(),
            user_id: "AROAEXAMPLE".into(),
            access_key_id: "ASIAEXAMPLE".into(),
            session_name: Some("alice@example.com".into()),
        }
    }

    fn aws_auth(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BOB: &str = "\
- userarn: arn:aws:iam::111122223333:user/ops/Bob
  username: bob
  groups: [devs]
";

    const ADMIN_ROLE: &str = "\
- rolearn: arn:aws:iam::111122223333:role/Admin
  username: 'admin:{{SessionName}}'
  groups: ['system:masters', 'raw:{{SessionNameRaw}}', 'acct:{{AccountID}}', 'key:{{AccessKeyID}}']
";

    #[test]
    fn user_is_mapped_through_map_users() {
        let user = map_identity(&user(), &aws_auth(&[("mapUsers", BOB)])).unwrap();
        assert_eq!(user.username, "bob");
        assert_eq!(user.groups, ["devs"]);
        assert_eq!(user.uid, "aws-iam-authenticator:111122223333:AIDAEXAMPLE");
        assert_eq!(
            user.extra["canonicalArn"],
            ["arn:aws:iam::111122223333:user/ops/Bob"]
        );
        assert_eq!(user.extra["sessionName"], [""]);
    }

    #[test]
    fn assumed_role_is_mapped_through_map_roles_with_templates() {
        let user = map_identity(&role_session(), &aws_auth(&[("mapRoles", ADMIN_ROLE)])).unwrap();
        assert_eq!(user.username, "admin:alice-example.com");
        assert_eq!(
            user.groups,
            [
                "system:masters",
                "raw:alice@example.com",
                "acct:111122223333",
                "key:ASIAEXAMPLE"
            ]
        );
        assert_eq!(user.uid, "aws-iam-authenticator:111122223333:AROAEXAMPLE");
        assert_eq!(
            user.extra["arn"],
            ["arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com"]
        );
        assert_eq!(
            user.extra["canonicalArn"],
            ["arn:aws:iam::111122223333:role/Admin"]
        );
        assert_eq!(user.extra["sessionName"], ["alice@example.com"]);
        assert_eq!(user.extra["accessKeyId"], ["ASIAEXAMPLE"]);
    }

    #[test]
    fn arns_compare_case_insensitively() {
        let yaml = BOB.replace("user/ops/Bob", "USER/OPS/BOB");
        let user = map_identity(&user(), &aws_auth(&[("mapUsers", &yaml)])).unwrap();
        assert_eq!(user.username, "bob");
    }

    #[test]
    fn unknown_keys_inside_entries_are_ignored() {
        let yaml = format!("{BOB}  managedBy: eks-iam-sync\n  userid: AIDAEXAMPLE\n");
        let user = map_identity(&user(), &aws_auth(&[("mapUsers", &yaml)])).unwrap();
        assert_eq!(user.username, "bob");
    }

    #[test]
    fn field_names_match_case_insensitively() {
        let yaml = "- UserARN: arn:aws:iam::111122223333:user/ops/Bob\n  UserName: bob\n";
        let user = map_identity(&user(), &aws_auth(&[("mapUsers", yaml)])).unwrap();
        assert_eq!(user.username, "bob");
    }

    #[test]
    fn broken_map_roles_still_lets_map_users_work() {
        let data = aws_auth(&[("mapRoles", "- rolearn: [unclosed\n"), ("mapUsers", BOB)]);
        assert_eq!(map_identity(&user(), &data).unwrap().username, "bob");
        assert_eq!(
            map_identity(&role_session(), &data).unwrap_err(),
            Rejection::ArnNotMapped("arn:aws:iam::111122223333:role/Admin".into())
        );
    }

    #[test]
    fn unmapped_arn_is_rejected() {
        let err = map_identity(&role_session(), &aws_auth(&[("mapUsers", BOB)])).unwrap_err();
        assert_eq!(
            err,
            Rejection::ArnNotMapped("arn:aws:iam::111122223333:role/Admin".into())
        );
        assert!(err.to_string().contains("ARN not mapped"));
    }

    #[test]
    fn last_duplicate_arn_wins() {
        let yaml = format!("{BOB}{}", BOB.replace("username: bob", "username: robert"));
        let user = map_identity(&user(), &aws_auth(&[("mapUsers", &yaml)])).unwrap();
        assert_eq!(user.username, "robert");
    }

    #[test]
    fn entry_without_arn_is_skipped_alone() {
        let yaml = format!("- username: nobody\n{BOB}");
        let user = map_identity(&user(), &aws_auth(&[("mapUsers", &yaml)])).unwrap();
        assert_eq!(user.username, "bob");
    }

    #[test]
    fn role_arn_with_a_path_does_not_match_the_session() {
        let session = CallerIdentity {
            arn: "arn:aws:sts::111122223333:assumed-role/Admin/alice".into(),
            ..role_session()
        };
        let yaml = ADMIN_ROLE.replace("role/Admin", "role/team/Admin");
        let err = map_identity(&session, &aws_auth(&[("mapRoles", &yaml)])).unwrap_err();
        assert!(matches!(err, Rejection::ArnNotMapped(_)), "{err}");
    }

    #[test]
    fn ec2_private_dns_name_template_is_rejected() {
        let yaml = "\
- rolearn: arn:aws:iam::111122223333:role/Admin
  username: 'system:node:{{EC2PrivateDNSName}}'
  groups: ['system:nodes']
";
        let err = map_identity(&role_session(), &aws_auth(&[("mapRoles", yaml)])).unwrap_err();
        assert_eq!(
            err,
            Rejection::Ec2PrivateDnsName("arn:aws:iam::111122223333:role/Admin".into())
        );
    }

    #[test]
    fn access_entry_renders_the_username_and_keeps_groups_literal() {
        let entry = AccessEntryGrant {
            principal_arn: "arn:aws:iam::111122223333:role/Admin".into(),
            principal_id: None,
            username: "arn:aws:sts::{{AccountID}}:assumed-role/Admin/{{SessionName}}".into(),
            groups: vec!["developers".into(), "raw:{{SessionName}}".into()],
        };
        let user = map_access_entry(&role_session(), &entry).unwrap();
        assert_eq!(
            user.username,
            "arn:aws:sts::111122223333:assumed-role/Admin/alice-example.com"
        );
        assert_eq!(user.groups, ["developers", "raw:{{SessionName}}"]);
        assert_eq!(user.uid, "aws-iam-authenticator:111122223333:AROAEXAMPLE");
        assert_eq!(
            user.extra["canonicalArn"],
            ["arn:aws:iam::111122223333:role/Admin"]
        );
    }

    fn iam_user(arn: &str, user_id: &str) -> CallerIdentity {
        CallerIdentity {
            arn: arn.into(),
            user_id: user_id.into(),
            session_name: None,
            ..role_session()
        }
    }

    fn entry(principal_arn: &str, principal_id: Option<&str>) -> AccessEntryGrant {
        AccessEntryGrant {
            principal_arn: principal_arn.into(),
            principal_id: principal_id.map(str::to_owned),
            username: "alice".into(),
            groups: vec!["developers".into()],
        }
    }

    const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

    #[test]
    fn an_entry_binds_the_principal_it_was_made_for() {
        let alice = iam_user(ALICE, "AIDAALICE");
        assert_eq!(
            entry_binds(&alice, ALICE, &entry(ALICE, Some("AIDAALICE"))),
            Ok(())
        );
        assert_eq!(entry_binds(&alice, ALICE, &entry(ALICE, None)), Ok(()));
    }

    #[test]
    fn an_entry_made_for_a_deleted_principal_does_not_bind_its_namesake() {
        let new_alice = iam_user(ALICE, "AIDANEWALICE");
        let err = entry_binds(&new_alice, ALICE, &entry(ALICE, Some("AIDAOLDALICE"))).unwrap_err();
        assert!(
            matches!(err, Rejection::EntryForAnotherPrincipal { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("AIDAOLDALICE") && text.contains("AIDANEWALICE"),
            "{text}"
        );
    }

    #[test]
    fn an_entry_under_a_user_s_old_arn_does_not_bind_after_a_rename_or_move() {
        for now in [
            "arn:aws:iam::111122223333:user/alice.smith",
            "arn:aws:iam::111122223333:user/engineering/alice",
        ] {
            let moved = iam_user(now, "AIDAALICE");
            let err = entry_binds(&moved, now, &entry(ALICE, Some("AIDAALICE"))).unwrap_err();
            assert!(matches!(err, Rejection::EntryArnChanged { .. }), "{err}");
        }
    }

    #[test]
    fn a_role_entry_binds_sessions_whatever_its_path_and_case() {
        let session = role_session();
        let canonical = canonicalize_arn(&session.arn).unwrap();
        let with_path = entry(
            "arn:aws:iam::111122223333:role/team/ADMIN",
            Some("AROAEXAMPLE"),
        );
        assert_eq!(entry_binds(&session, &canonical, &with_path), Ok(()));
    }

    #[test]
    fn mapped_account_maps_to_the_canonical_arn() {
        let data = aws_auth(&[("mapAccounts", "- \"999999999999\"\n- 111122223333\n")]);
        let user = map_identity(&role_session(), &data).unwrap();
        assert_eq!(user.username, "arn:aws:iam::111122223333:role/Admin");
        assert!(user.groups.is_empty());
    }

    #[test]
    fn assumed_role_arns_canonicalise_to_their_role() {
        assert_eq!(
            canonicalize_arn("arn:aws-cn:sts::111122223333:assumed-role/a/b/Role/sess").unwrap(),
            "arn:aws-cn:iam::111122223333:role/a/b/Role"
        );
        assert_eq!(
            canonicalize_arn("arn:aws:iam::111122223333:user/x/Bob").unwrap(),
            "arn:aws:iam::111122223333:user/x/Bob"
        );
        assert!(canonicalize_arn("arn:aws:sts::111122223333:assumed-role/Role").is_err());
        assert!(canonicalize_arn("arn:aws:s3:::bucket").is_err());
        assert!(canonicalize_arn("arn:foo:iam::111122223333:user/Bob").is_err());
    }
}
