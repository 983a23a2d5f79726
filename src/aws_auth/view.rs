//! A read-only view of every identity path aws-auth grants: `mapUsers`, `mapRoles` and
//! `mapAccounts`, read as leniently as aws-iam-authenticator reads them, for the audit.
//!
//! The writer ([`super::merge`]) reads only `mapUsers`, and only to keep its text; this view
//! never writes and reads every key, so nothing here can block a sync. The rules follow
//! aws-iam-authenticator's ConfigMap mapper (pkg/mapper/configmap/configmap.go `ParseMap`, and
//! the test bed's model of it in testbed/src/authn/mapping.rs):
//! - each key is read on its own; a blank value is skipped, one that is not YAML or not a list
//!   grants nothing at all (the key is reported as unreadable, not as an error of the cluster);
//! - field names match case-insensitively, as Go's JSON decoder does after YAML-to-JSON, the
//!   last of repeated keys winning, and `<<` merge keys fill fields the entry does not set;
//! - a field of the wrong type reads as empty; an entry without its ARN maps nobody;
//! - a later entry for the same ARN (case-insensitively) replaces an earlier one, so the earlier
//!   one is reported as shadowed;
//! - a `mapRoles` ARN with a path never matches: the authenticator compares the caller's
//!   canonical ARN, which has no path;
//! - a `mapRoles` entry with `sso: {permissionSetName, accountID}` instead of a `rolearn` (the
//!   authenticator's alpha SSO role matcher) is reported under the name of the roles it
//!   matches, `arn:aws:iam::ACCOUNT:role/AWSReservedSSO_SET_*`, so the audit never hides it.

use std::collections::{BTreeMap, BTreeSet};

use super::node::Node;

/// One `mapUsers` or `mapRoles` entry, as the authenticator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedArn {
    pub arn: String,
    /// The username template as written (`{{SessionName}}` and friends not rendered).
    pub username: String,
    pub groups: Vec<String>,
    /// Why the authenticator never uses this entry, if it does not.
    pub never_matches: Option<String>,
}

/// Every path aws-auth grants, in document order per key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsAuthPaths {
    pub users: Vec<MappedArn>,
    pub roles: Vec<MappedArn>,
    /// Account ids of `mapAccounts`.
    pub accounts: Vec<String>,
    /// Keys that grant nothing because they cannot be read, with the reason.
    pub unreadable: BTreeMap<String, String>,
}

/// Reads the identity keys of aws-auth's `data`.
pub fn read_paths(data: &BTreeMap<String, String>) -> AwsAuthPaths {
    let mut paths = AwsAuthPaths::default();
    for (key, arn_field, out) in [
        (super::MAP_USERS, "userarn", &mut paths.users),
        ("mapRoles", "rolearn", &mut paths.roles),
    ] {
        match entries(data, key) {
            Ok(items) => *out = mappings(&items, arn_field, key == "mapRoles"),
            Err(why) => {
                paths.unreadable.insert(key.to_owned(), why);
            }
        }
    }
    match entries(data, "mapAccounts") {
        Ok(items) => match items.iter().map(Node::as_str).collect::<Option<Vec<_>>>() {
            Some(accounts) => paths.accounts = accounts.into_iter().map(str::to_owned).collect(),
            None => {
                paths.unreadable.insert(
                    "mapAccounts".into(),
                    "not a list of strings (quote account ids)".into(),
                );
            }
        },
        Err(why) => {
            paths.unreadable.insert("mapAccounts".into(), why);
        }
    }
    paths
}

/// The items of a list-valued key; an absent or blank key has none.
fn entries(data: &BTreeMap<String, String>, key: &str) -> Result<Vec<Node>, String> {
    let Some(text) = data.get(key) else {
        return Ok(Vec::new());
    };
    if matches!(text.trim(), "" | "``" | "\"\"" | "''") {
        return Ok(Vec::new());
    }
    match Node::parse(text) {
        Ok(Node::Seq(items)) => Ok(items),
        Ok(Node::Null) => Ok(Vec::new()),
        Ok(_) => Err("not a list".into()),
        Err(e) => Err(format!("not valid YAML: {e}")),
    }
}

fn mappings(items: &[Node], arn_field: &str, roles: bool) -> Vec<MappedArn> {
    let mut out: Vec<MappedArn> = items
        .iter()
        .filter_map(|item| {
            let fields = flatten(item)?;
            let mut arn = string(&fields, arn_field);
            if arn.is_empty() && roles {
                arn = sso_role(&fields).unwrap_or_default();
            }
            if arn.is_empty() {
                return None;
            }
            let groups = match field(&fields, "groups") {
                Some(Node::Seq(groups)) => groups
                    .iter()
                    .map(|g| g.as_str().unwrap_or_default().to_owned())
                    .collect(),
                _ => Vec::new(),
            };
            let never_matches = (roles && role_has_path(&arn)).then(|| {
                "the rolearn has a path; the authenticator matches only the ARN without it"
                    .to_owned()
            });
            Some(MappedArn {
                username: string(&fields, "username"),
                arn,
                groups,
                never_matches,
            })
        })
        .collect();
    // A later entry for the same ARN replaces an earlier one.
    let mut seen = BTreeSet::new();
    for entry in out.iter_mut().rev() {
        if !seen.insert(entry.arn.to_lowercase()) && entry.never_matches.is_none() {
            entry.never_matches = Some("a later entry for the same ARN replaces it".into());
        }
    }
    out
}

/// An entry's pairs with `<<` merges expanded: merged pairs first, so the entry's own win.
fn flatten(item: &Node) -> Option<Vec<(String, Node)>> {
    let Node::Map(pairs) = item else {
        return None;
    };
    let (mut merged, mut own) = (Vec::new(), Vec::new());
    for (key, value) in pairs {
        match (key.as_str(), value) {
            (Some("<<"), Node::Map(_)) => merged.extend(flatten(value).unwrap_or_default()),
            // Earlier maps of a merge sequence take precedence over later ones.
            (Some("<<"), Node::Seq(maps)) => {
                merged.extend(maps.iter().rev().filter_map(flatten).flatten())
            }
            (Some(key), value) => own.push((key.to_owned(), value.clone())),
            (None, _) => {}
        }
    }
    merged.extend(own);
    Some(merged)
}

/// The roles an `sso` mapping matches (aws-iam-authenticator's SSO role matcher, an alpha
/// feature: `sso: {permissionSetName, accountID}` instead of `rolearn`), named like the roles
/// Identity Center creates for the permission set, the random suffix as `*`.
fn sso_role(fields: &[(String, Node)]) -> Option<String> {
    let Some(Node::Map(pairs)) = field(fields, "sso") else {
        return None;
    };
    let sso: Vec<(String, Node)> = pairs
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
        .collect();
    let (set, account) = (string(&sso, "permissionSetName"), string(&sso, "accountID"));
    let partition = match string(&sso, "partition") {
        p if p.is_empty() => "aws".to_owned(),
        p => p,
    };
    (!set.is_empty() && !account.is_empty())
        .then(|| format!("arn:{partition}:iam::{account}:role/AWSReservedSSO_{set}_*"))
}

fn field<'a>(fields: &'a [(String, Node)], name: &str) -> Option<&'a Node> {
    fields
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn string(fields: &[(String, Node)], name: &str) -> String {
    field(fields, name)
        .and_then(Node::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn role_has_path(arn: &str) -> bool {
    arn.split_once(":role/")
        .is_some_and(|(_, path_and_name)| path_and_name.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_key_is_read_leniently() {
        let paths = read_paths(&data(&[
            (
                "mapRoles",
                "- rolearn: arn:aws:iam::1:role/node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:nodes]\n- {RoleArn: arn:aws:iam::1:role/a, username: x, username: y, groups: [g, 3]}\n- {rolearn: arn:aws:iam::1:role/team/p}\n- {username: nobody}\n",
            ),
            ("mapUsers", "- <<: {userarn: arn:aws:iam::1:user/bob, username: b}\n  username: bob\n"),
            ("mapAccounts", "- '111122223333'\n"),
        ]));
        assert_eq!(paths.roles.len(), 3);
        assert_eq!(paths.roles[1].username, "y");
        assert_eq!(paths.roles[1].groups, ["g", ""]);
        assert!(paths.roles[2].never_matches.is_some());
        assert_eq!(paths.users[0].arn, "arn:aws:iam::1:user/bob");
        assert_eq!(paths.users[0].username, "bob");
        assert_eq!(paths.accounts, ["111122223333"]);
        assert!(paths.unreadable.is_empty());
    }

    #[test]
    fn an_sso_mapping_is_reported_as_the_roles_it_matches() {
        let paths = read_paths(&data(&[(
            "mapRoles",
            "- sso: {permissionSetName: Admin, accountID: '111122223333'}\n  username: admin:{{SessionName}}\n",
        )]));
        assert_eq!(
            paths.roles[0].arn,
            "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_*"
        );
        assert_eq!(paths.roles[0].username, "admin:{{SessionName}}");
    }

    #[test]
    fn unreadable_keys_grant_nothing_and_later_duplicates_win() {
        let paths = read_paths(&data(&[
            ("mapRoles", "{not: a list}"),
            ("mapUsers", "- {userarn: arn:aws:iam::1:user/A, username: a1}\n- {userarn: arn:aws:iam::1:user/a, username: a2}\n"),
            ("mapAccounts", "- 111122223333\n"),
        ]));
        assert!(paths.roles.is_empty());
        assert_eq!(
            paths.unreadable.keys().collect::<Vec<_>>(),
            ["mapAccounts", "mapRoles"]
        );
        assert!(paths.users[0].never_matches.is_some());
        assert!(paths.users[1].never_matches.is_none());
    }
}
