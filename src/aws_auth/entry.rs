//! What one `mapUsers` item is to this tool: its own entry, or someone else's with the ARNs the
//! authenticator may read from it.
//!
//! The authenticator's reading (pkg/mapper/configmap/configmap.go `ParseMap` in
//! kubernetes-sigs/aws-iam-authenticator): `utilyaml.ToJSON` (sigs.k8s.io/yaml `YAMLToJSON`,
//! gopkg.in/yaml.v2 non-strict: a repeated key keeps the later value, `<<` merges mappings in),
//! then `json.Unmarshal` into `[]config.UserMapping`, whose `userarn` field Go matches
//! case-insensitively (`userArn`, `USERARN` count). An entry whose fields have the wrong type is
//! skipped, the others still load; `UserMapping.Validate` drops entries without a userarn.
//!
//! Ownership must never be guessed. An item is this tool's only when it reads one way under every
//! one of those rules: a mapping with no repeated key and no merge key, one userarn (a valid user
//! ARN), one marker. An item that carries the marker but fails that is *doubtful*: it is kept as
//! written, blocks writing an entry for its ARNs, and is reported, since it may grant access
//! that IAM no longer does and only a human can say what it means.

use crate::desired::Mapping;
#[cfg(test)]
use crate::desired::UserArn;

use super::node::Node;
use super::{AwsAuthPrincipal, MANAGED_BY_KEY};
use crate::installation::Installation;

/// One item of `mapUsers`, as this tool reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry<P> {
    /// An entry this tool wrote (it carries the marker and reads unambiguously).
    Owned { arn: P, node: Node },
    /// Someone else's entry. `arns`: every userarn the authenticator could read from it (under
    /// any of the rules above), as written; empty when it maps nobody.
    Foreign {
        arns: Vec<String>,
        /// Why an item that carries the marker is still not treated as this tool's.
        doubt: Option<String>,
    },
}

impl<P: AwsAuthPrincipal> Entry<P> {
    /// What `node` is to `installation`: another installation's entry is someone else's.
    pub(crate) fn classify(node: &Node, installation: &Installation) -> Entry<P> {
        let mut arns = Vec::new();
        collect_arns(node, &mut arns, 0, P::ARN_FIELD);
        if !carries_marker(node, installation, 0) {
            return Entry::Foreign { arns, doubt: None };
        }
        match owned_arn::<P>(node, installation) {
            Ok(Some(arn)) => Entry::Owned {
                arn,
                node: node.clone(),
            },
            // A marker next to a role ARN (or anything else) was not written by this tool;
            // treating it as someone else's is the choice that can never remove access.
            Ok(None) => Entry::Foreign { arns, doubt: None },
            Err(doubt) => Entry::Foreign {
                arns,
                doubt: Some(doubt),
            },
        }
    }

    /// Whether the authenticator may read `arn` from this foreign entry.
    #[cfg(test)]
    pub(crate) fn claims(&self, arn: &str) -> bool {
        match self {
            Entry::Foreign { arns, .. } => arns.iter().any(|a| a.eq_ignore_ascii_case(arn)),
            Entry::Owned { .. } => false,
        }
    }
}

/// Go's `encoding/json` matches field names with a simple case fold, in which `ſ` (U+017F)
/// folds to `s` and the Kelvin sign to `k` (encoding/json fold.go).
fn is_arn_key(key: &str, field: &str) -> bool {
    let folded: String = key
        .chars()
        .map(|c| match c {
            '\u{17F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    folded == field
}

/// Merge sources can nest; yaml.v2 follows them all. Deep nesting is not something a human
/// writes, and ten levels bound the work on a hostile document.
const MAX_MERGE_DEPTH: usize = 10;

fn merge_sources(node: &Node) -> impl Iterator<Item = &Node> {
    node.values_of(|k| k == "<<").flat_map(|value| match value {
        Node::Seq(items) => items.iter().collect::<Vec<_>>(),
        other => vec![other],
    })
}

fn collect_arns(node: &Node, arns: &mut Vec<String>, depth: usize, field: &str) {
    if depth > MAX_MERGE_DEPTH {
        return;
    }
    for value in node.values_of(|k| is_arn_key(k, field)) {
        if let Some(arn) = value.as_str() {
            arns.push(arn.to_string());
        }
    }
    for source in merge_sources(node) {
        collect_arns(source, arns, depth + 1, field);
    }
}

fn carries_marker(node: &Node, installation: &Installation, depth: usize) -> bool {
    depth <= MAX_MERGE_DEPTH
        && (node.values_of(|k| k == MANAGED_BY_KEY).any(|v| {
            v.as_str()
                .is_some_and(|v| installation.owns_aws_auth_marker(v))
        }) || merge_sources(node).any(|source| carries_marker(source, installation, depth + 1)))
}

/// The ARN of an item carrying the marker: `Some` when it is this tool's, `None` when its one
/// userarn is not a user ARN, `Err` when it can be read more than one way.
fn owned_arn<P: AwsAuthPrincipal>(
    node: &Node,
    installation: &Installation,
) -> Result<Option<P>, String> {
    let field = P::ARN_FIELD;
    let Node::Map(pairs) = node else {
        return Err("it is not a mapping".into());
    };
    if pairs.iter().any(|(k, _)| k.as_str() == Some("<<")) {
        return Err("it uses a merge key (`<<`)".into());
    }
    for (n, (key, _)) in pairs.iter().enumerate() {
        if pairs[..n].iter().any(|(earlier, _)| earlier == key) {
            return Err(format!("the key {} is repeated", describe_key(key)));
        }
    }
    let userarns: Vec<&Node> = node.values_of(|k| is_arn_key(k, field)).collect();
    let [userarn] = userarns.as_slice() else {
        return Err(format!(
            "it has {} `{field}` keys (Go matches the name in any case)",
            userarns.len()
        ));
    };
    let Some(userarn) = userarn.as_str() else {
        return Err(format!("its `{field}` is not a string"));
    };
    let marker = node.values_of(|k| k == MANAGED_BY_KEY).next();
    if !marker
        .and_then(Node::as_str)
        .is_some_and(|v| installation.owns_aws_auth_marker(v))
    {
        return Err(format!("its `{MANAGED_BY_KEY}` is not a plain string"));
    }
    Ok(P::parse_principal(userarn))
}

fn describe_key(key: &Node) -> String {
    match key.as_str() {
        Some(key) => format!("`{key}`"),
        None => format!("{key:?}"),
    }
}

/// What an owned entry means to the authenticator: the fields this tool writes, when those are
/// all it has, so that a hand-reformatted entry (keys or groups reordered, `groups` omitted) is
/// not rewritten; anything else is compared as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Meaning {
    Plain { arn: String, mapping: Mapping },
    Raw(Node),
}

impl Meaning {
    /// What an entry rendered from `mapping` means. aws-auth records no principal id (the
    /// authenticator matches `mapUsers` by ARN only), so the id takes no part.
    pub(crate) fn of_mapping<P: AwsAuthPrincipal>(arn: &P, mapping: &Mapping) -> Meaning {
        Meaning::Plain {
            arn: arn.to_string(),
            mapping: Mapping::new(mapping.username.clone(), mapping.groups.iter().cloned()),
        }
    }

    pub(crate) fn of_node<P: AwsAuthPrincipal>(arn: &P, node: &Node) -> Meaning {
        let known = [P::ARN_FIELD, "username", "groups", MANAGED_BY_KEY];
        let only_known = match node {
            Node::Map(pairs) => pairs
                .iter()
                .all(|(k, _)| k.as_str().is_some_and(|k| known.contains(&k))),
            _ => false,
        };
        match (only_known, fields(node)) {
            (true, Some(mapping)) => Meaning::of_mapping(arn, &mapping),
            _ => Meaning::Raw(node.clone()),
        }
    }
}

/// The username and groups of an owned entry, when both are plain strings (groups may be
/// absent).
pub(crate) fn fields(node: &Node) -> Option<Mapping> {
    let username = node.values_of(|k| k == "username").next()?.as_str()?;
    let groups: Vec<&str> = match node.values_of(|k| k == "groups").next() {
        None => Vec::new(),
        Some(Node::Seq(items)) => items.iter().map(Node::as_str).collect::<Option<_>>()?,
        Some(_) => return None,
    };
    Some(Mapping::new(username, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(text: &str) -> Entry<UserArn> {
        Entry::classify(&Node::parse(text).unwrap(), &Installation::legacy())
    }

    #[test]
    fn another_installations_entry_is_someone_elses() {
        let text = format!("{{userarn: '{ALICE}', username: alice, managedBy: eks-iam-sync/b}}");
        let node = Node::parse(&text).unwrap();
        let a = Installation::new("a", true).unwrap();
        let b = Installation::new("b", false).unwrap();
        assert!(matches!(
            Entry::<UserArn>::classify(&node, &a),
            Entry::Foreign { doubt: None, .. }
        ));
        assert!(matches!(
            Entry::<UserArn>::classify(&node, &b),
            Entry::Owned { .. }
        ));
        let legacy =
            Node::parse(&format!("{{userarn: '{ALICE}', managedBy: eks-iam-sync}}")).unwrap();
        assert!(matches!(
            Entry::<UserArn>::classify(&legacy, &a),
            Entry::Owned { .. }
        ));
        assert!(matches!(
            Entry::<UserArn>::classify(&legacy, &b),
            Entry::Foreign { doubt: None, .. }
        ));
    }

    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

    #[test]
    fn an_entry_with_the_marker_and_one_user_arn_is_owned() {
        let entry = classify(&format!(
            "{{userarn: '{ALICE}', username: alice, managedBy: eks-iam-sync}}"
        ));
        assert!(matches!(entry, Entry::Owned { arn, .. } if arn.as_str() == ALICE));
    }

    #[test]
    fn repeated_or_merged_keys_make_a_marked_entry_doubtful() {
        for text in [
            format!("{{userarn: '{ALICE}', userArn: x, managedBy: eks-iam-sync}}"),
            format!("{{userarn: '{ALICE}', managedBy: eks-iam-sync, managedBy: eks-iam-sync}}"),
            format!("{{<<: {{userarn: '{ALICE}'}}, managedBy: eks-iam-sync}}"),
        ] {
            let Entry::Foreign { arns, doubt } = classify(&text) else {
                panic!("{text}")
            };
            assert!(doubt.is_some(), "{text}");
            assert!(arns.iter().any(|a| a == ALICE), "{text}");
        }
    }

    #[test]
    fn foreign_entries_claim_every_arn_the_authenticator_could_read() {
        let entry = classify(&format!(
            "{{USERARN: a, <<: [{{userarn: '{ALICE}'}}], uſerarn: b}}"
        ));
        for arn in ["a", "b", &ALICE.to_uppercase()] {
            assert!(entry.claims(arn), "{arn}");
        }
    }

    #[test]
    fn a_marker_on_a_role_arn_is_someone_elses() {
        let entry =
            classify("{userarn: 'arn:aws:iam::123456789012:role/x', managedBy: eks-iam-sync}");
        assert!(matches!(entry, Entry::Foreign { doubt: None, .. }));
    }

    #[test]
    fn meaning_ignores_layout_but_not_extra_fields() {
        let arn = UserArn::parse(ALICE).unwrap();
        let plain = Node::parse(&format!(
            "{{groups: [b, a], managedBy: eks-iam-sync, username: alice, userarn: '{ALICE}'}}"
        ))
        .unwrap();
        assert_eq!(
            Meaning::of_node(&arn, &plain),
            Meaning::of_mapping(&arn, &Mapping::new("alice", ["a", "b"]))
        );
        let extra = Node::parse(&format!(
            "{{username: alice, userarn: '{ALICE}', managedBy: eks-iam-sync, x: 1}}"
        ))
        .unwrap();
        assert!(matches!(Meaning::of_node(&arn, &extra), Meaning::Raw(_)));
    }
}
