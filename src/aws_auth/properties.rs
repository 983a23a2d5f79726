//! Property tests of [`merge`](super::merge) over generated aws-auth documents, written as text
//! the way people write them: YAML 1.1 edge values plain and quoted, comments, flow and block
//! style, indented lists, duplicate ARNs in mixed case, repeated and merge keys, unknown keys,
//! anchors across items, owned entries as written or reformatted.
//!
//! One test checks every invariant on each document, so the case count is the number of
//! documents: after every write the entries this tool does not own keep their text and read back
//! identically, the other keys are untouched, this tool's entries read back as planned, no owned
//! entry is left next to a foreign one for a user in scope, and merging the result again is a
//! no-op.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::document::{self, Layout};
use super::entry::{fields, Entry};
use super::node::Node;
use super::plan::owned_entry;
use super::yaml;
use super::*;
use crate::desired::{Mapping, Scope};

const ACCOUNT: &str = "123456789012";
const NAMES: [&str; 4] = ["alice", "bob", "carol", "Dave"];
const PATHS: [&str; 2] = ["", "ops/"];
/// Values YAML 1.1 and 1.2 read differently, or that read as something other than a string.
const EDGE: [&str; 24] = [
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "Y",
    "N",
    "~",
    "null",
    "0777",
    "1:20",
    "1_000",
    ".inf",
    "-.inf",
    ".nan",
    "0x1F",
    "1e3",
    "true",
    "False",
    "2001-12-14",
    "+1",
    "0o17",
    "012",
];

fn arn_text(name: usize, path: usize) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{}{}", PATHS[path], NAMES[name])
}

fn pool_arn() -> impl Strategy<Value = UserArn> {
    (0..NAMES.len(), 0..PATHS.len()).prop_map(|(n, p)| UserArn::parse(&arn_text(n, p)).unwrap())
}

/// A scalar as text: an edge value plain, single- or double-quoted, or an ordinary word.
fn scalar() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        prop::sample::select(EDGE.to_vec()).prop_map(str::to_string),
        "[a-z][a-z0-9:.-]{0,8}",
        Just("system:masters".to_string()),
    ];
    (word, 0..3).prop_map(|(word, style)| match style {
        0 => word,
        1 => format!("'{word}'"),
        _ => format!("\"{word}\""),
    })
}

/// A userarn value: a pool ARN in any case, a role ARN, or an edge value.
fn userarn() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0..NAMES.len(), 0..PATHS.len(), any::<bool>(), any::<bool>()).prop_map(
            |(n, p, upper, quoted)| {
                let arn = arn_text(n, p);
                let arn = if upper { arn.to_uppercase() } else { arn };
                if quoted { format!("'{arn}'") } else { arn }
            }
        ),
        1 => Just(format!("arn:aws:iam::{ACCOUNT}:role/node")),
        1 => scalar(),
    ]
}

#[derive(Debug, Clone)]
enum Value {
    Scalar(String),
    List(Vec<String>),
    Map(Vec<(String, String)>),
}

/// The fields of a hand-made entry: sometimes a repeated key, a merge key, the key in another
/// case, a foreign marker, unknown keys with edge values.
fn hand_fields() -> impl Strategy<Value = Vec<(String, Value)>> {
    let userarn_key = prop_oneof![
        8 => Just("userarn".to_string()),
        1 => Just("userArn".to_string()),
        1 => Just("USERARN".to_string()),
    ];
    let extra = prop_oneof![
        ("x-[a-z]{1,4}", scalar()).prop_map(|(k, v)| vec![(k, Value::Scalar(v))]),
        Just(vec![(
            "managedBy".to_string(),
            Value::Scalar("terraform".into())
        )]),
        scalar().prop_map(|v| vec![("username".to_string(), Value::Scalar(v))]),
        userarn().prop_map(|v| vec![("userarn".to_string(), Value::Scalar(v))]),
        userarn().prop_map(|v| vec![(
            "<<".to_string(),
            Value::Map(vec![("userarn".to_string(), v)])
        )]),
        "AIDA[A-Z0-9]{6}".prop_map(|v| vec![("userid".to_string(), Value::Scalar(v))]),
    ];
    (
        userarn_key,
        userarn(),
        scalar(),
        proptest::option::of(prop::collection::vec(scalar(), 0..4)),
        prop::collection::vec(extra, 0..3),
    )
        .prop_flat_map(|(key, arn, username, groups, extras)| {
            let mut fields = vec![
                (key, Value::Scalar(arn)),
                ("username".to_string(), Value::Scalar(username)),
            ];
            if let Some(groups) = groups {
                fields.push(("groups".to_string(), Value::List(groups)));
            }
            fields.extend(extras.into_iter().flatten());
            Just(fields).prop_shuffle()
        })
}

/// An item as this tool wrote it, or reformatted by hand (keys reordered, flow style, groups
/// unsorted), or made doubtful by a repeated key.
fn owned_fields() -> impl Strategy<Value = Vec<(String, Value)>> {
    (
        pool_arn(),
        prop::collection::vec("[a-c]", 0..3),
        prop::bool::weighted(0.15),
        // Another installation's marker now and then: to the legacy installation, its entries
        // are someone else's.
        prop_oneof![7 => Just("eks-iam-sync"), 3 => Just("eks-iam-sync/b")],
    )
        .prop_flat_map(|(arn, groups, doubtful, marker)| {
            let mut fields = vec![
                ("userarn".to_string(), Value::Scalar(arn.to_string())),
                (
                    "username".to_string(),
                    Value::Scalar(arn.user_name().into()),
                ),
                ("groups".to_string(), Value::List(groups)),
                ("managedBy".to_string(), Value::Scalar(marker.into())),
            ];
            if doubtful {
                fields.push(("username".to_string(), Value::Scalar("root".into())));
            }
            Just(fields).prop_shuffle()
        })
}

#[derive(Debug, Clone)]
struct Item {
    heading: Option<String>,
    fields: Vec<(String, Value)>,
    flow: bool,
    inline_comment: bool,
    blank_after: bool,
}

fn item() -> impl Strategy<Value = Item> {
    let fields = prop_oneof![
        5 => hand_fields(),
        4 => owned_fields(),
        1 => Just(Vec::new()),
    ];
    (
        proptest::option::of("[a-z ]{0,10}"),
        fields,
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(heading, fields, flow, inline_comment, blank_after)| Item {
                heading,
                fields,
                flow,
                inline_comment,
                blank_after,
            },
        )
}

fn flow_value(value: &Value) -> String {
    match value {
        Value::Scalar(s) => s.clone(),
        Value::List(items) => format!("[{}]", items.join(", ")),
        Value::Map(pairs) => {
            let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("{{{}}}", pairs.join(", "))
        }
    }
}

fn flow_item(item: &Item) -> String {
    if item.fields.is_empty() {
        return "0777".into();
    }
    let pairs: Vec<String> = item
        .fields
        .iter()
        .map(|(k, v)| format!("{k}: {}", flow_value(v)))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn block_item(item: &Item, pad: &str, out: &mut String) {
    if let Some(heading) = &item.heading {
        out.push_str(&format!("{pad}# {heading}\n"));
    }
    let comment = if item.inline_comment { "  # note" } else { "" };
    if item.flow || item.fields.is_empty() {
        out.push_str(&format!("{pad}- {}{comment}\n", flow_item(item)));
    } else {
        for (n, (key, value)) in item.fields.iter().enumerate() {
            let lead = if n == 0 { "- " } else { "  " };
            match value {
                Value::List(items) if !items.is_empty() && n % 2 == 1 => {
                    out.push_str(&format!("{pad}{lead}{key}:\n"));
                    for group in items {
                        out.push_str(&format!("{pad}    - {group}\n"));
                    }
                }
                value => out.push_str(&format!("{pad}{lead}{key}: {}\n", flow_value(value))),
            }
            if n == 0 {
                out.pop();
                out.push_str(comment);
                out.push('\n');
            }
        }
    }
    if item.blank_after {
        out.push('\n');
    }
}

#[derive(Debug, Clone)]
struct Doc {
    items: Vec<Item>,
    indent: bool,
    header: bool,
    trailer: bool,
    final_newline: bool,
    /// 0: block list; 1: flow list; 2: block list with an alias to the first item.
    form: u8,
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        prop::collection::vec(item(), 0..6),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.9),
        prop_oneof![16 => Just(0u8), 2 => Just(1u8), 2 => Just(2u8)],
    )
        .prop_map(
            |(items, indent, header, trailer, final_newline, form)| Doc {
                items,
                indent,
                header,
                trailer,
                final_newline,
                form,
            },
        )
}

fn text_of(doc: &Doc) -> String {
    let pad = if doc.indent { "  " } else { "" };
    let mut out = String::new();
    if doc.header {
        out.push_str("# managed partly by hand\n\n");
    }
    match doc.form {
        1 => {
            let items: Vec<String> = doc.items.iter().map(flow_item).collect();
            out.push_str(&format!("{pad}[{}]\n", items.join(",\n  ")));
        }
        form => {
            for (n, item) in doc.items.iter().enumerate() {
                if form == 2 && n == 0 {
                    out.push_str(&format!("{pad}- &first {}\n", flow_item(item)));
                } else {
                    block_item(item, pad, &mut out);
                }
            }
            if form == 2 && !doc.items.is_empty() {
                out.push_str(&format!("{pad}- *first\n"));
            }
        }
    }
    if doc.trailer {
        out.push_str("# end of list\n");
    }
    if !doc.final_newline && out.ends_with('\n') {
        out.pop();
    }
    out
}

/// mapRoles and mapAccounts as the old, stricter parser refused them: a repeated key, a merge
/// key, an alias, and text that does not parse at all.
fn other_keys() -> impl Strategy<Value = BTreeMap<String, String>> {
    let roles = prop_oneof![
        Just("- rolearn: arn:aws:iam::123456789012:role/node\n  username: a\n  username: b\n".to_string()),
        Just("- &r {rolearn: arn:aws:iam::123456789012:role/a, username: x}\n- <<: *r\n  groups: [on, 0777]\n".to_string()),
        Just("- rolearn: [unclosed\n".to_string()),
        Just(String::new()),
    ];
    let accounts = prop_oneof![
        Just("- 0777\n- '123456789012'\n".to_string()),
        Just("{".to_string()),
    ];
    (
        proptest::option::of(roles),
        proptest::option::of(accounts),
        proptest::option::of("[ -~]{0,12}"),
    )
        .prop_map(|(roles, accounts, other)| {
            let mut data = BTreeMap::new();
            for (key, value) in [
                ("mapRoles", roles),
                ("mapAccounts", accounts),
                ("other", other),
            ] {
                if let Some(value) = value {
                    data.insert(key.to_string(), value);
                }
            }
            data
        })
}

fn desired() -> impl Strategy<Value = Desired> {
    let scope = prop_oneof![
        Just(Scope::All),
        prop::sample::subsequence(NAMES.to_vec(), 0..=NAMES.len())
            .prop_map(|names| Scope::Users(names.into_iter().map(String::from).collect())),
    ];
    let entries =
        prop::collection::btree_map(pool_arn(), prop::collection::vec("[a-c]", 0..3), 0..5)
            .prop_map(|entries| {
                entries
                    .into_iter()
                    .map(|(arn, groups)| {
                        let mapping = Mapping::new(arn.user_name(), groups);
                        (arn, mapping)
                    })
                    .collect()
            });
    (scope, entries).prop_map(|(scope, entries)| Desired { scope, entries })
}

/// The items of a text as (entry, node, text when located).
fn read_items(text: &str) -> Vec<(Entry<UserArn>, Node, Option<String>)> {
    let doc = document::read(text, "mapUsers").expect("readable");
    doc.entries
        .iter()
        .enumerate()
        .map(|(n, node)| {
            let text = match &doc.layout {
                Layout::Block { split, located } if located[n].is_ok() => {
                    Some(split.items[n].text.trim_end_matches('\n').to_string())
                }
                _ => None,
            };
            (
                Entry::classify(node, &Installation::legacy()),
                node.clone(),
                text,
            )
        })
        .collect()
}

fn foreign(items: &[(Entry<UserArn>, Node, Option<String>)]) -> Vec<(Node, Option<String>)> {
    items
        .iter()
        .filter(|(entry, ..)| matches!(entry, Entry::Foreign { .. }))
        .map(|(_, node, text)| (node.clone(), text.clone()))
        .collect()
}

fn owned(items: &[(Entry<UserArn>, Node, Option<String>)]) -> Vec<(UserArn, Node)> {
    items
        .iter()
        .filter_map(|(entry, ..)| match entry {
            Entry::Owned { arn, node } => Some((arn.clone(), node.clone())),
            Entry::Foreign { .. } => None,
        })
        .collect()
}

fn rendered_node(arn: &UserArn, mapping: &Mapping) -> Node {
    match Node::parse(&yaml::render_list(&[owned_entry(
        arn,
        mapping,
        MANAGED_BY_VALUE,
    )]))
    .unwrap()
    {
        Node::Seq(mut items) => items.remove(0),
        other => panic!("{other:?}"),
    }
}

fn apply(data: &BTreeMap<String, String>, result: &Merge) -> BTreeMap<String, String> {
    let mut data = data.clone();
    if let Some(map_users) = &result.map_users {
        data.insert(MAP_USERS.to_string(), map_users.clone());
    }
    data
}

fn check(
    doc: &Doc,
    others: BTreeMap<String, String>,
    desired: &Desired,
) -> Result<(), TestCaseError> {
    let text = text_of(doc);
    let mut data = others.clone();
    data.insert(MAP_USERS.to_string(), text.clone());
    let result = match merge(Some(&data), desired) {
        Ok(result) => result,
        Err(e) => {
            // Only a mapUsers that cannot be read as a list at all may fail the merge.
            prop_assert!(
                !matches!(Node::parse(&text), Ok(Node::Seq(_))),
                "{e}\n{text}"
            );
            return Ok(());
        }
    };
    let after = apply(&data, &result);
    // The other keys are untouched.
    for (key, value) in &others {
        prop_assert_eq!(after.get(key), Some(value));
    }
    let blocked = result.blocked.is_some();
    let before_items = read_items(&text);
    let after_text = &after[MAP_USERS];
    let after_items = read_items(after_text);
    // Foreign entries read back identically, in order.
    let nodes = |items: &[(Node, Option<String>)]| -> Vec<Node> {
        items.iter().map(|(node, _)| node.clone()).collect()
    };
    prop_assert_eq!(
        nodes(&foreign(&after_items)),
        nodes(&foreign(&before_items)),
        "{}\n---\n{}",
        text,
        after_text
    );
    // ... with their text byte for byte, in order (a heading comment may become the header
    // when the item above it goes).
    let mut cursor = 0;
    for (_, item_text) in foreign(&before_items) {
        let Some(item_text) = item_text else { continue };
        match after_text[cursor..].find(&item_text) {
            Some(at) => cursor += at + item_text.len(),
            None => prop_assert!(false, "{:?} lost\n{}\n---\n{}", item_text, text, after_text),
        }
    }
    if result.map_users.is_some() {
        let located = document::read(&text, "mapUsers").unwrap().layout;
        if let Layout::Block { split, .. } = located {
            prop_assert!(after_text.starts_with(split.header));
            prop_assert!(after_text.ends_with(split.trailer));
        }
    }
    let unlocated = document::read(&text, "mapUsers")
        .unwrap()
        .layout
        .unlocated()
        .is_some();
    let claimed = |arn: &UserArn| {
        before_items
            .iter()
            .any(|(entry, ..)| entry.claims(arn.as_str()))
    };
    let owned_after = owned(&after_items);
    // No owned entry is left next to a foreign one for a user in scope, unless the merge says
    // why it could not remove it (its text cannot be told apart, e.g. in flow style).
    for (arn, _) in &owned_after {
        if desired.in_scope(arn) {
            prop_assert!(
                !claimed(arn) || blocked,
                "{} next to a foreign entry\n{}",
                arn,
                after_text
            );
        }
    }
    if !unlocated {
        // This tool's entries in scope read back as exactly the planned ones.
        let mut planned = BTreeMap::new();
        for (arn, mapping) in desired
            .entries
            .iter()
            .filter(|(arn, _)| desired.in_scope(arn))
        {
            if !claimed(arn) {
                planned
                    .entry(arn.as_str().to_ascii_lowercase())
                    .or_insert_with(|| rendered_node(arn, mapping));
            }
        }
        let in_scope: BTreeMap<String, Node> = owned_after
            .iter()
            .filter(|(arn, _)| desired.in_scope(arn))
            .map(|(arn, node)| (arn.as_str().to_ascii_lowercase(), node.clone()))
            .collect();
        let meaning = |nodes: &BTreeMap<String, Node>| -> BTreeMap<String, Option<Mapping>> {
            nodes.iter().map(|(k, n)| (k.clone(), fields(n))).collect()
        };
        prop_assert_eq!(
            meaning(&in_scope),
            meaning(&planned),
            "{}\n---\n{}",
            text,
            after_text
        );
        if result.map_users.is_some() {
            let rendered: BTreeSet<String> = in_scope.keys().cloned().collect();
            prop_assert_eq!(rendered, planned.keys().cloned().collect::<BTreeSet<_>>());
        }
    } else if result.map_users.is_some() || result.blocked.is_none() {
        // Revocations only: nothing in scope grants more than IAM does (unless nothing at all
        // could be written, which the merge then says: e.g. an anchor of an entry to revoke is
        // used by another item).
        for (arn, node) in owned_after.iter().filter(|(arn, _)| desired.in_scope(arn)) {
            let granted = fields(node).map(|m| m.groups).unwrap_or_default();
            let allowed = desired
                .entries
                .iter()
                .find(|(a, _)| a.matches(arn.as_str()))
                .map(|(_, m)| m.groups.clone());
            let located = after_items.iter().any(|(e, _, t)| {
                t.is_some() && matches!(e, Entry::Owned { arn: a, .. } if a == arn)
            });
            if located {
                let allowed = allowed.unwrap_or_default();
                prop_assert!(
                    granted.iter().all(|g| allowed.contains(g)),
                    "{} keeps {:?} beyond {:?}\n{}",
                    arn,
                    granted,
                    allowed,
                    after_text
                );
            }
        }
        prop_assert!(result.added.is_empty());
    }
    // A second merge of the result is a no-op.
    let again = merge(Some(&after), desired).unwrap();
    prop_assert_eq!(&again.map_users, &None, "{}\n---\n{}", text, after_text);
    prop_assert!(again.added.is_empty() && again.removed.is_empty() && again.changed.is_empty());
    prop_assert_eq!(&again.conflicts, &result.conflicts);
    prop_assert_eq!(again.blocked.is_some(), blocked);
    Ok(())
}

proptest! {
    // 10,000 documents: about 30 s in a debug build on the shared 2-core machine under load
    // (measured when it was written). Of them about 6,000 lead to a write, some 2,000 of which remove an
    // owned entry, and 150 to 200 are revocations in place in a list that cannot be split.
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn every_write_keeps_foreign_entries_and_reads_back_as_planned(
        doc in doc(), others in other_keys(), desired in desired()
    ) {
        check(&doc, others, &desired)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Two installations merging into one `mapUsers` in turn (`a` the default one, which owns
    /// legacy entries, `b` a named one): each keeps every entry that is not its own exactly as
    /// it reads, and from the third round on neither writes: nothing flaps.
    #[test]
    fn two_installations_keep_each_others_entries_and_settle(
        doc in doc(), want_a in desired(), want_b in desired()
    ) {
        let a = Installation::new("a", true).unwrap();
        let b = Installation::new("b", false).unwrap();
        let mut data = BTreeMap::from([(MAP_USERS.to_string(), text_of(&doc))]);
        for round in 0..4 {
            for (me, want) in [(&a, &want_a), (&b, &want_b)] {
                let Ok(result) = merge_as(me, Some(&data), want) else {
                    return Ok(());
                };
                prop_assume!(result.blocked.is_none());
                let not_mine = |text: &str| {
                    let items = read_items(text);
                    let mine: Vec<bool> = items
                        .iter()
                        .map(|(_, node, _)| matches!(Entry::<UserArn>::classify(node, me), Entry::Owned { .. }))
                        .collect();
                    let mut nodes: Vec<String> = items
                        .iter()
                        .zip(mine)
                        .filter(|(_, mine)| !mine)
                        .map(|((_, node, _), _)| format!("{node:?}"))
                        .collect();
                    nodes.sort();
                    nodes
                };
                if let Some(text) = &result.map_users {
                    prop_assert_eq!(not_mine(&data[MAP_USERS]), not_mine(text), "round {}, {}", round, me);
                    prop_assert!(round < 2, "round {round}, {me} writes again:\n{}\n->\n{text}", data[MAP_USERS]);
                }
                data = apply(&data, &result);
            }
        }
    }
}

/// Role cases: the same merge over `mapRoles`.
mod roles {
    use super::*;

    const ROLES: [&str; 3] = ["AWSReservedSSO_Admin_0a", "AWSReservedSSO_Admin_1b", "Ops"];

    #[derive(Debug, Clone)]
    enum RoleItem {
        /// The node role, as EKS writes it.
        Node,
        /// A hand entry for pool role `n`, its ARN in either case.
        Hand(usize, bool),
        /// This tool's entry for pool role `n`, with these groups.
        Owned(usize, Vec<String>),
        Comment,
    }

    fn role_item() -> impl Strategy<Value = RoleItem> {
        prop_oneof![
            Just(RoleItem::Node),
            (0..ROLES.len(), any::<bool>()).prop_map(|(n, upper)| RoleItem::Hand(n, upper)),
            (0..ROLES.len(), prop::collection::vec("[a-c]", 0..3))
                .prop_map(|(n, g)| RoleItem::Owned(n, g)),
            Just(RoleItem::Comment),
        ]
    }

    fn path_less(n: usize) -> String {
        format!("arn:aws:iam::{ACCOUNT}:role/{}", ROLES[n])
    }

    fn text(item: &RoleItem) -> String {
        match item {
            RoleItem::Node => format!("- rolearn: arn:aws:iam::{ACCOUNT}:role/node\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n  groups: [system:bootstrappers, system:nodes]\n"),
            RoleItem::Hand(n, upper) => {
                let arn = if *upper { path_less(*n).to_uppercase() } else { path_less(*n) };
                format!("- rolearn: {arn}\n  username: 'on'\n  groups: [0777]\n")
            }
            RoleItem::Owned(n, groups) => {
                let arn = RoleArn::parse(&path_less(*n)).unwrap();
                indented_owned(&arn, &Mapping::new("a:{{SessionName}}", groups.iter()))
            }
            RoleItem::Comment => "# kept\n".to_string(),
        }
    }

    fn indented_owned(arn: &RoleArn, mapping: &Mapping) -> String {
        yaml::render_list(&[owned_entry(arn, mapping, MANAGED_BY_VALUE)])
    }

    fn role_desired() -> impl Strategy<Value = Desired<RoleArn>> {
        let scope = prop_oneof![
            Just(Scope::All),
            Just(Scope::Users(BTreeSet::from(["alice".to_string()]))),
            prop::sample::subsequence(ROLES.to_vec(), 0..=ROLES.len())
                .prop_map(|r| Scope::Roles(r.into_iter().map(str::to_lowercase).collect())),
        ];
        let entries = prop::collection::btree_map(
            (0..ROLES.len(), any::<bool>()).prop_map(|(n, with_path)| {
                let path = if with_path {
                    "aws-reserved/sso.amazonaws.com/"
                } else {
                    ""
                };
                RoleArn::parse(&format!("arn:aws:iam::{ACCOUNT}:role/{path}{}", ROLES[n])).unwrap()
            }),
            prop::collection::vec("[a-c]", 0..3).prop_map(|g| Mapping::new("a:{{SessionName}}", g)),
            0..3,
        );
        (scope, entries).prop_map(|(scope, entries)| Desired { scope, entries })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Foreign mapRoles items keep their bytes in order, mapUsers is untouched, owned role
        /// entries are path-less and in scope exactly what IAM wants (less conflicts), out of
        /// scope as they were, and a second merge is a no-op.
        #[test]
        fn map_roles_keeps_foreign_items_and_holds_path_less_planned_roles(
            items in prop::collection::vec(role_item(), 0..6),
            desired in role_desired(),
        ) {
            let before: String = items.iter().map(text).collect();
            let data = BTreeMap::from([
                (MAP_ROLES.to_string(), before.clone()),
                (MAP_USERS.to_string(), "- {userarn: x}\n".to_string()),
            ]);
            let result = merge_roles(Some(&data), &desired).unwrap();
            let after = result.map_users.clone().unwrap_or_else(|| before.clone());
            let mut cursor = 0;
            for item in &items {
                if matches!(item, RoleItem::Node | RoleItem::Hand(..)) {
                    let t = text(item);
                    match after[cursor..].find(&t) {
                        Some(at) => cursor += at + t.len(),
                        None => prop_assert!(false, "{:?} lost\n{}\n---\n{}", t, before, after),
                    }
                }
            }
            let doc = document::read(&after, MAP_ROLES).unwrap();
            let owned: Vec<(RoleArn, Node)> = doc.entries.iter().filter_map(|node| match Entry::<RoleArn>::classify(node, &Installation::legacy()) {
                Entry::Owned { arn, node } => Some((arn, node)),
                Entry::Foreign { .. } => None,
            }).collect();
            let hand = |arn: &RoleArn| items.iter().any(|i| matches!(i, RoleItem::Hand(n, _) if path_less(*n).eq_ignore_ascii_case(arn.as_str())));
            let paths = desired.without_paths();
            for (arn, node) in &owned {
                prop_assert!(!arn.as_str().contains("aws-reserved"), "{}", after);
                if desired.in_scope(arn) {
                    let wanted = paths.entries.get(arn);
                    prop_assert!(wanted.is_some() && !hand(arn), "{} should be gone\n{}", arn, after);
                    prop_assert_eq!(fields(node), wanted.cloned().map(|m| Mapping::new(m.username, m.groups)));
                }
            }
            for (arn, _) in paths.entries.iter().filter(|(a, _)| paths.in_scope(a)) {
                prop_assert!(hand(arn) || owned.iter().any(|(o, _)| o == arn), "{} missing\n{}", arn, after);
            }
            let again_data = BTreeMap::from([(MAP_ROLES.to_string(), after.clone())]);
            prop_assert_eq!(merge_roles(Some(&again_data), &desired).unwrap().map_users, None);
        }
    }
}
