//! The `mapUsers` text read two ways at once: as the authenticator's list of entries (the parse
//! of the whole document), and as pieces of text, one per entry, that can be kept or cut out.
//!
//! An item's text is *located* only when it parses on its own to exactly the entry the whole
//! document holds at that position. Only located text is ever cut out or kept in a new order;
//! anything else (flow style, anchors used across items, lines outside the items) leaves the
//! entries readable but their text untouchable.

use super::node::Node;
use super::split::{split, NotBlock, Split};
use super::AwsAuthError;

/// The `mapUsers` value, read.
#[derive(Debug)]
pub(crate) struct Document<'a> {
    /// The entries as the whole document reads.
    pub entries: Vec<Node>,
    pub layout: Layout<'a>,
}

#[derive(Debug)]
pub(crate) enum Layout<'a> {
    /// No entries. `keep` is the text worth keeping when entries are added (its comments).
    Empty { keep: &'a str },
    /// A block list split into items; `located[i]` says whether item `i`'s text is its entry,
    /// and if not, why.
    Block {
        split: Split<'a>,
        located: Vec<Result<(), String>>,
    },
    /// Entries whose text cannot be told apart; the reason says what to change.
    Opaque { reason: String },
}

impl Layout<'_> {
    /// Why some entry's text is not located, if any is not.
    pub(crate) fn unlocated(&self) -> Option<String> {
        match self {
            Layout::Empty { .. } => None,
            Layout::Opaque { reason } => Some(reason.clone()),
            Layout::Block { located, .. } => located.iter().find_map(|l| l.clone().err()),
        }
    }
}

/// The authenticator skips a value that is blank or an empty quoted string
/// (configmap.go `isSkippable`), before parsing it.
fn is_skippable(text: &str) -> bool {
    matches!(text.trim(), "" | "``" | "\"\"" | "''")
}

/// Reads `text`. Fails only when no entry can be read at all: the text does not parse (the
/// authenticator then ignores the whole key, so it grants nothing), or it is not a list.
pub(crate) fn read<'a>(text: &'a str, key: &'static str) -> Result<Document<'a>, AwsAuthError> {
    let empty = |keep| Document {
        entries: Vec::new(),
        layout: Layout::Empty { keep },
    };
    if is_skippable(text) {
        return Ok(empty(""));
    }
    let entries = match Node::parse(text) {
        Ok(Node::Null) => return Ok(empty(leading_comments(text))),
        Ok(Node::Seq(entries)) if entries.is_empty() => return Ok(empty(leading_comments(text))),
        Ok(Node::Seq(entries)) => entries,
        Ok(other) => {
            return Err(AwsAuthError::NotAList {
                key,
                found: kind(&other),
            })
        }
        Err(detail) => return Err(AwsAuthError::Unreadable { key, detail }),
    };
    let layout = match split(text) {
        Ok(split) if split.items.len() == entries.len() => {
            let located = split
                .items
                .iter()
                .zip(&entries)
                .enumerate()
                .map(|(n, (item, entry))| match Node::parse(item.text) {
                    Ok(Node::Seq(alone)) if alone.as_slice() == std::slice::from_ref(entry) => {
                        Ok(())
                    }
                    Ok(_) => Err(format!(
                        "item {} (line {}) reads differently on its own than in the list; \
                         write each entry as one `- ` item without anchors or aliases",
                        n + 1,
                        item.line
                    )),
                    Err(e) => Err(format!(
                        "item {} (line {}) does not read on its own ({e}); an alias refers to \
                         another item or a value spans items: write each entry on its own, \
                         without anchors or aliases",
                        n + 1,
                        item.line
                    )),
                })
                .collect();
            Layout::Block { split, located }
        }
        Ok(split) => Layout::Opaque {
            reason: format!(
                "its {} `- ` items at column {} do not match its {} entries; write one \
                 `- ` item per entry",
                split.items.len(),
                split.indent + 1,
                entries.len()
            ),
        },
        Err(NotBlock::NotBlockStyle) => Layout::Opaque {
            reason: "it is not a block list from its first line (it is in flow style `[...]`, \
                     or starts with a `---` marker or a tag), so its hand-made entries cannot be \
                     kept as written while others change; write it as a block list, one `- ` \
                     item per entry"
                .into(),
        },
        Err(NotBlock::StrayLine { line }) => Layout::Opaque {
            reason: format!(
                "line {line} is not inside a `- ` item at the list's column; indent it under \
                 its item or remove it"
            ),
        },
    };
    Ok(Document { entries, layout })
}

/// The comment and blank lines before the first content line.
fn leading_comments(text: &str) -> &str {
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim();
        if !body.is_empty() && !body.starts_with('#') {
            break;
        }
        end += line.len();
    }
    &text[..end]
}

pub(crate) fn kind(node: &Node) -> &'static str {
    match node {
        Node::Null => "null",
        Node::Bool(_) => "a boolean",
        Node::Number(_) => "a number",
        Node::Str(_) => "a string",
        Node::Seq(_) => "a list",
        Node::Map(_) => "a mapping",
        Node::Tagged(..) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_items_are_located() {
        let doc = read("- {userarn: a}\n# b\n- userarn: b\n", "mapUsers").unwrap();
        assert_eq!(doc.entries.len(), 2);
        assert_eq!(doc.layout.unlocated(), None);
    }

    #[test]
    fn aliases_across_items_are_not_located() {
        let doc = read("- &x {userarn: a}\n- *x\n", "mapUsers").unwrap();
        let reason = doc.layout.unlocated().unwrap();
        assert!(reason.contains("item 2 (line 2)"), "{reason}");
    }

    #[test]
    fn flow_style_is_opaque_but_readable() {
        let doc = read("[{userarn: a}, {userarn: b}]\n", "mapUsers").unwrap();
        assert_eq!(doc.entries.len(), 2);
        assert!(doc.layout.unlocated().unwrap().contains("flow style"));
    }

    #[test]
    fn empty_forms_keep_only_their_comments() {
        for (text, keep) in [
            ("", ""),
            ("''", ""),
            ("# none yet\n", "# none yet\n"),
            ("# none\n[]\n", "# none\n"),
            ("# none\n~\n", "# none\n"),
        ] {
            let doc = read(text, "mapUsers").unwrap();
            assert!(
                matches!(doc.layout, Layout::Empty { keep: k } if k == keep),
                "{text:?}"
            );
        }
    }

    #[test]
    fn unparsable_and_non_list_values_are_errors() {
        assert!(matches!(
            read("- a: [b\n", "mapUsers"),
            Err(AwsAuthError::Unreadable { .. })
        ));
        assert!(matches!(
            read("a: 1\n", "mapUsers"),
            Err(AwsAuthError::NotAList {
                key: "mapUsers",
                found: "a mapping"
            })
        ));
    }
}
