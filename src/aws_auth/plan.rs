//! The decisions of one merge: which items stay as written, which of this tool's own go, and
//! which are rendered anew; then the new text, checked by reading it back.
//!
//! Two ways to apply them, chosen by how well the text could be read:
//! - every item located: the canonical layout. Foreign items keep their text and their order;
//!   this tool's entries follow, sorted by ARN.
//! - some item not located (flow style, aliases across items, stray lines): only revocations,
//!   in place. This tool's own located items are cut out, or narrowed to the groups both they and
//!   IAM grant; nothing moves, nothing is added, and what was held back is reported. Cutting out
//!   our own text can only take access away, so a document that cannot be extended safely still
//!   never blocks a revocation.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::desired::{Desired, Mapping};
use crate::installation::Installation;

use super::AwsAuthPrincipal;

use super::document::{Document, Layout};
use super::entry::{fields, Entry, Meaning};
use super::node::Node;
use super::yaml;

/// One item of the new list.
#[derive(Debug, Clone)]
enum Piece<'a, P> {
    /// An existing item, kept byte for byte; `node` is what it reads as.
    Text { text: &'a str, node: &'a Node },
    /// An entry of this tool, rendered.
    Render { arn: P, mapping: Mapping },
}

/// What the merge decided, before the caller turns it into a [`super::Merge`].
#[derive(Debug)]
pub(crate) struct Decision<P> {
    /// The new text; `None` when nothing has to be written.
    pub text: Option<String>,
    pub owned_before: Vec<(P, Meaning)>,
    pub owned_after: Vec<(P, Meaning)>,
    pub conflicts: Vec<P>,
    /// What could not be done, and why.
    pub reasons: Vec<String>,
    /// Desired grants that were not written because the text could not be extended safely.
    pub held_back: Vec<P>,
}

impl<P> Default for Decision<P> {
    fn default() -> Self {
        Decision {
            text: None,
            owned_before: Vec::new(),
            owned_after: Vec::new(),
            conflicts: Vec::new(),
            reasons: Vec::new(),
            held_back: Vec::new(),
        }
    }
}

struct Item<'a, P> {
    entry: Entry<P>,
    node: &'a Node,
    /// The item's text when it is located: only then may it be cut out or moved.
    text: Option<&'a str>,
    /// The item's share of the text in a block list, located or not: kept where it is, it keeps
    /// the document's bytes whether or not the split around it was right.
    slice: Option<&'a str>,
    /// 1-based position and line, for messages.
    number: usize,
    line: Option<usize>,
}

impl<P> Item<'_, P> {
    fn place(&self) -> String {
        match self.line {
            Some(line) => format!("item {} (line {line})", self.number),
            None => format!("item {}", self.number),
        }
    }
}

pub(crate) fn decide<P: AwsAuthPrincipal>(
    document: &Document,
    map_users_exists: bool,
    desired: &Desired<P>,
    installation: &Installation,
) -> Decision<P> {
    let items = items(document, installation);
    let (wanted, conflicts) = wanted_in_scope(desired, &items);
    let mut decision = Decision {
        owned_before: sorted_by_arn(
            items
                .iter()
                .filter_map(|item| match &item.entry {
                    Entry::Owned { arn, node } => Some((arn.clone(), Meaning::of_node(arn, node))),
                    Entry::Foreign { .. } => None,
                })
                .collect(),
        ),
        conflicts,
        reasons: doubts_in_scope(&items, desired, installation),
        ..Decision::default()
    };
    let pieces = match document.layout.unlocated() {
        None => canonical(&items, desired, wanted, &mut decision, map_users_exists),
        Some(why) => in_place(&items, desired, wanted, &why, &mut decision),
    };
    if let Some(pieces) = pieces {
        match assemble(&document.layout, &pieces, &installation.aws_auth_marker()) {
            Ok(text) => decision.text = Some(text),
            Err(why) => {
                decision.reasons.push(why);
                decision.owned_after = decision.owned_before.clone();
            }
        }
    } else {
        decision.owned_after = decision.owned_before.clone();
    }
    decision
}

fn items<'a, P: AwsAuthPrincipal>(
    document: &'a Document,
    installation: &Installation,
) -> Vec<Item<'a, P>> {
    document
        .entries
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let (text, slice, line) = match &document.layout {
                Layout::Block { split, located } => (
                    located[index].is_ok().then_some(split.items[index].text),
                    Some(split.items[index].text),
                    Some(split.items[index].line),
                ),
                _ => (None, None, None),
            };
            Item {
                entry: Entry::classify(node, installation),
                node,
                text,
                slice,
                number: index + 1,
                line,
            }
        })
        .collect()
}

/// The desired entries in scope that may be written, and the users whose ARN a foreign entry
/// already claims (conflicts: writing ours next to it would leave the authenticator to pick one
/// of the two). ARNs differing only in case are one principal to the authenticator, so only the
/// first of them is written.
fn wanted_in_scope<P: AwsAuthPrincipal>(
    desired: &Desired<P>,
    items: &[Item<P>],
) -> (Vec<(P, Mapping)>, Vec<P>) {
    let claimed: HashSet<String> = items
        .iter()
        .flat_map(|item| match &item.entry {
            Entry::Foreign { arns, .. } => arns.iter().map(|a| a.to_ascii_lowercase()).collect(),
            Entry::Owned { .. } => Vec::new(),
        })
        .collect();
    let mut wanted = Vec::new();
    let mut conflicts = Vec::new();
    let mut seen = HashSet::new();
    for (arn, mapping) in &desired.entries {
        if !desired.in_scope(arn) {
            tracing::warn!(userarn = %arn, "ignoring desired entry outside the scope of this run");
        } else if claimed.contains(&arn.as_str().to_ascii_lowercase()) {
            conflicts.push(arn.clone());
        } else if !seen.insert(arn.as_str().to_ascii_lowercase()) {
            tracing::warn!(userarn = %arn, "ignoring desired entry that differs from another only in case");
        } else {
            wanted.push((arn.clone(), mapping.clone()));
        }
    }
    (wanted, conflicts)
}

/// Items that carry the marker but cannot be read as this tool's, for a user in scope: they may
/// grant what IAM does not, and only a human can fix them.
fn doubts_in_scope<P: AwsAuthPrincipal>(
    items: &[Item<P>],
    desired: &Desired<P>,
    installation: &Installation,
) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| {
            let Entry::Foreign {
                arns,
                doubt: Some(doubt),
            } = &item.entry
            else {
                return None;
            };
            let in_scope = arns
                .iter()
                .filter_map(|arn| P::parse_principal(arn))
                .find(|arn| desired.in_scope(arn))?;
            Some(format!(
                "{} carries `{}: {}` for {in_scope} but cannot be read as this tool's entry \
                 ({doubt}), so it is left as it is and may grant what IAM does not; fix or \
                 remove it by hand",
                item.place(),
                super::MANAGED_BY_KEY,
                installation.aws_auth_marker()
            ))
        })
        .collect()
}

/// Every item located: foreign items in their order, then this tool's entries sorted by ARN.
fn canonical<'a, P: AwsAuthPrincipal>(
    items: &[Item<'a, P>],
    desired: &Desired<P>,
    wanted: Vec<(P, Mapping)>,
    decision: &mut Decision<P>,
    map_users_exists: bool,
) -> Option<Vec<Piece<'a, P>>> {
    let kept = kept_out_of_scope(items, desired);
    let mut owned: Vec<(P, Meaning, Piece<P>)> = kept
        .into_iter()
        .map(|item| {
            let Entry::Owned { arn, node } = &item.entry else {
                unreachable!("only owned items are kept out of scope")
            };
            let piece = Piece::Text {
                text: item.text.expect("every item is located"),
                node: item.node,
            };
            (arn.clone(), Meaning::of_node(arn, node), piece)
        })
        .chain(wanted.into_iter().map(|(arn, mapping)| {
            let meaning = Meaning::of_mapping(&arn, &mapping);
            (arn.clone(), meaning, Piece::Render { arn, mapping })
        }))
        .collect();
    owned.sort_by(|a, b| a.0.cmp(&b.0));
    decision.owned_after = owned
        .iter()
        .map(|(arn, meaning, _)| (arn.clone(), meaning.clone()))
        .collect();
    let needs_write = if map_users_exists {
        decision.owned_before != decision.owned_after
    } else {
        !decision.owned_after.is_empty()
    };
    if !needs_write {
        return None;
    }
    let foreign = items
        .iter()
        .filter(|item| matches!(item.entry, Entry::Foreign { .. }))
        .map(|item| Piece::Text {
            text: item.text.expect("every item is located"),
            node: item.node,
        });
    Some(
        foreign
            .chain(owned.into_iter().map(|(_, _, p)| p))
            .collect(),
    )
}

/// Owned items out of scope, one per ARN (the last, which is the one the authenticator keeps
/// under its key), without those shadowed by a later foreign entry for the same ARN: moved behind
/// it they would start to win.
fn kept_out_of_scope<'i, 'a, P: AwsAuthPrincipal>(
    items: &'i [Item<'a, P>],
    desired: &Desired<P>,
) -> Vec<&'i Item<'a, P>> {
    let mut last_claim: HashMap<String, usize> = HashMap::new();
    for (position, item) in items.iter().enumerate() {
        if let Entry::Foreign { arns, .. } = &item.entry {
            for arn in arns {
                last_claim.insert(arn.to_ascii_lowercase(), position);
            }
        }
    }
    let mut kept: BTreeMap<String, &Item<P>> = BTreeMap::new();
    for (position, item) in items.iter().enumerate() {
        let Entry::Owned { arn, .. } = &item.entry else {
            continue;
        };
        if desired.in_scope(arn) {
            continue;
        }
        let key = arn.as_str().to_ascii_lowercase();
        if last_claim.get(&key).is_some_and(|&later| later > position) {
            tracing::warn!(userarn = %arn, "dropping owned aws-auth entry shadowed by a later hand-made entry");
            continue;
        }
        kept.insert(key, item);
    }
    kept.into_values().collect()
}

/// Some item not located: revocations only, in place.
fn in_place<'a, P: AwsAuthPrincipal>(
    items: &[Item<'a, P>],
    desired: &Desired<P>,
    wanted: Vec<(P, Mapping)>,
    why: &str,
    decision: &mut Decision<P>,
) -> Option<Vec<Piece<'a, P>>> {
    let wanted: HashMap<String, (P, Mapping)> = wanted
        .into_iter()
        .map(|(arn, mapping)| (arn.as_str().to_ascii_lowercase(), (arn, mapping)))
        .collect();
    let mut present = HashSet::new();
    let mut pieces = Vec::new();
    let mut owned_after = Vec::new();
    let mut edited = false;
    let mut held_back = Vec::new();
    for item in items {
        let keep = Piece::Text {
            text: item.slice.unwrap_or_default(),
            node: item.node,
        };
        let Entry::Owned { arn, node } = &item.entry else {
            pieces.push(keep);
            continue;
        };
        if !desired.in_scope(arn) {
            owned_after.push((arn.clone(), Meaning::of_node(arn, node)));
            pieces.push(keep);
            continue;
        }
        let key = arn.as_str().to_ascii_lowercase();
        present.insert(key.clone());
        let current = fields(node);
        // What both the entry and IAM grant: the entry's own username and the groups in both.
        let target = wanted.get(&key).and_then(|(wanted_arn, mapping)| {
            let narrowed = current.as_ref().map(|current| {
                Mapping::new(
                    current.username.clone(),
                    current.groups.iter().filter(|g| mapping.groups.contains(g)),
                )
            });
            let grants_all = narrowed.as_ref().is_some_and(|n| n.grants_same(mapping));
            if !grants_all || wanted_arn != arn {
                held_back.push(wanted_arn.clone());
            }
            narrowed
        });
        if target.is_some() && target == current {
            owned_after.push((arn.clone(), Meaning::of_node(arn, node)));
            pieces.push(keep);
            continue;
        }
        if item.text.is_none() {
            decision.reasons.push(format!(
                "{} is this tool's entry for {arn} and must change, but its text cannot be \
                 told apart: {why}",
                item.place()
            ));
            owned_after.push((arn.clone(), Meaning::of_node(arn, node)));
            pieces.push(keep);
            continue;
        }
        edited = true;
        if let Some(target) = target {
            owned_after.push((arn.clone(), Meaning::of_mapping(arn, &target)));
            pieces.push(Piece::Render {
                arn: arn.clone(),
                mapping: target,
            });
        }
    }
    for (key, (arn, _)) in &wanted {
        if !present.contains(key) {
            held_back.push(arn.clone());
        }
    }
    held_back.sort();
    held_back.dedup();
    if !held_back.is_empty() {
        let arns: Vec<String> = held_back.iter().map(ToString::to_string).collect();
        decision.reasons.push(format!(
            "not granted to {}: {} cannot be extended safely, because {why}",
            arns.join(", "),
            P::KEY
        ));
    }
    decision.held_back = held_back;
    decision.owned_after = sorted_by_arn(owned_after);
    edited.then_some(pieces)
}

fn sorted_by_arn<P: Ord>(mut entries: Vec<(P, Meaning)>) -> Vec<(P, Meaning)> {
    entries.sort_by(|(a, _), (b, _)| a.cmp(b));
    entries
}

/// The new text: the kept header, the pieces at the list's column, the kept trailer. Read back
/// before it is returned: it must read as exactly the planned entries, or nothing is written.
fn assemble<P: AwsAuthPrincipal>(
    layout: &Layout,
    pieces: &[Piece<P>],
    marker: &str,
) -> Result<String, String> {
    let (header, trailer, indent) = match layout {
        Layout::Empty { keep } => (*keep, "", 0),
        Layout::Block { split, .. } => (split.header, split.trailer, split.indent),
        Layout::Opaque { .. } => unreachable!("opaque items are never edited"),
    };
    let mut out = String::from(header);
    let mut expected = Vec::with_capacity(pieces.len());
    let push = |out: &mut String, text: &str| {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(text);
    };
    for piece in pieces {
        match piece {
            Piece::Text { text, node } => {
                push(&mut out, text);
                expected.push((*node).clone());
            }
            Piece::Render { arn, mapping } => {
                let text = indented(
                    &yaml::render_list(&[owned_entry(arn, mapping, marker)]),
                    indent,
                );
                match Node::parse(&text) {
                    Ok(Node::Seq(mut alone)) if alone.len() == 1 => expected.push(alone.remove(0)),
                    other => return Err(format!("rendering {arn} failed: {other:?}")),
                }
                push(&mut out, &text);
            }
        }
    }
    if pieces.is_empty() {
        push(&mut out, &indented("[]\n", indent));
    }
    push(&mut out, trailer);
    match Node::parse(&out) {
        Ok(Node::Seq(read_back)) if read_back == expected => Ok(out),
        Ok(_) | Err(_) => Err(format!(
            "the rewritten {} would not read back as planned, so nothing was written; \
             write each entry as one `- ` item at one column, without anchors or aliases",
            P::KEY
        )),
    }
}

fn indented(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.split_inclusive('\n')
        .map(|line| format!("{pad}{line}"))
        .collect()
}

/// The entry this tool writes, keys in a fixed order so the bytes are stable; `marker` is the
/// installation's `managedBy` value.
pub(crate) fn owned_entry<P: AwsAuthPrincipal>(
    arn: &P,
    mapping: &Mapping,
    marker: &str,
) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value;
    let mapping = mapping.normalized();
    let groups = mapping.groups.into_iter().map(Value::String).collect();
    let fields = [
        (P::ARN_FIELD, Value::String(arn.to_string())),
        ("username", Value::String(mapping.username)),
        ("groups", Value::Sequence(groups)),
        (super::MANAGED_BY_KEY, Value::String(marker.to_string())),
    ];
    Value::Mapping(
        fields
            .into_iter()
            .map(|(key, value)| (Value::String(key.to_string()), value))
            .collect(),
    )
}
