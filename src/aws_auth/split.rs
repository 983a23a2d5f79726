//! Splits a block-style YAML list into the text of each item, so that entries this tool does not
//! own can be kept exactly as written (their bytes, their comments) while its own are rendered.
//!
//! The split is by lines and knows nothing of YAML beyond indentation: an item starts at a line
//! holding `-` at the list's indentation and runs until the next such line. It can be fooled (a
//! multi-line quoted scalar, a block scalar whose lines look like items), which is why the caller
//! never trusts it alone: every item is parsed on its own and compared with the parse of the whole
//! document, and every written document is parsed again and compared with what was planned.
//!
//! Comments are attributed by position: a comment line at or left of the list's indentation
//! belongs to the item below it (it reads as that entry's heading); blank lines and indented
//! comments belong to the item above. What precedes the first item is the header, comments after
//! the last item at the list's indentation are the trailer; both are always kept.

/// A block list cut into pieces whose concatenation is the original text, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split<'a> {
    pub header: &'a str,
    pub items: Vec<ItemText<'a>>,
    pub trailer: &'a str,
    /// The column of the items' `-`.
    pub indent: usize,
}

/// One item's text, with the comments attributed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemText<'a> {
    pub text: &'a str,
    /// The 1-based line of the item's `-`, for error messages.
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Blank, or a comment at this column.
    Blank,
    Comment(usize),
    /// Content starting at this column; `item` when it is `-` followed by a space or line end.
    Content {
        indent: usize,
        item: bool,
    },
}

fn kind(line: &str) -> Kind {
    let body = line.trim_end_matches(['\n', '\r']);
    let indent = body.len() - body.trim_start_matches(' ').len();
    let rest = &body[indent..];
    if rest.trim().is_empty() {
        Kind::Blank
    } else if rest.starts_with('#') {
        Kind::Comment(indent)
    } else {
        let item = rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t");
        Kind::Content { indent, item }
    }
}

/// Why a text is not a block list that can be split by lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotBlock {
    /// The first content line does not start a block list item (flow style `[...]`, a mapping,
    /// a scalar, or nothing at all).
    NotBlockStyle,
    /// A line outside the list's items, e.g. less indented than the items or a document marker.
    StrayLine { line: usize },
}

/// Splits `text`, a block list whose items start at one column, into its items.
pub(crate) fn split(text: &str) -> Result<Split<'_>, NotBlock> {
    let lines: Vec<(usize, &str)> = {
        let mut offset = 0;
        text.split_inclusive('\n')
            .map(|line| {
                let start = offset;
                offset += line.len();
                (start, line)
            })
            .collect()
    };
    let kinds: Vec<Kind> = lines.iter().map(|(_, line)| kind(line)).collect();
    let first = kinds
        .iter()
        .position(|k| matches!(k, Kind::Content { .. }))
        .ok_or(NotBlock::NotBlockStyle)?;
    let Kind::Content { indent, item: true } = kinds[first] else {
        return Err(NotBlock::NotBlockStyle);
    };
    // Line indices at which each item starts, and where the trailer starts.
    let mut starts = Vec::new();
    let mut pending_heading: Option<usize> = None;
    for (index, kind) in kinds.iter().enumerate().skip(first) {
        match *kind {
            Kind::Blank => {}
            Kind::Comment(column) => {
                if column <= indent && pending_heading.is_none() {
                    pending_heading = Some(index);
                }
            }
            Kind::Content { indent: column, .. } if column > indent => pending_heading = None,
            Kind::Content {
                indent: column,
                item: true,
            } if column == indent => {
                starts.push(pending_heading.take().unwrap_or(index));
            }
            Kind::Content { .. } => return Err(NotBlock::StrayLine { line: index + 1 }),
        }
    }
    let offset_of = |line: usize| lines.get(line).map_or(text.len(), |(start, _)| *start);
    let trailer_start = offset_of(pending_heading.unwrap_or(lines.len()));
    let header = &text[..offset_of(starts[0])];
    let mut items = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        let end = starts
            .get(n + 1)
            .map_or(trailer_start, |&next| offset_of(next));
        let dash = (start..lines.len())
            .find(|&i| matches!(kinds[i], Kind::Content { .. }))
            .unwrap_or(start);
        items.push(ItemText {
            text: &text[offset_of(start)..end],
            line: dash + 1,
        });
    }
    Ok(Split {
        header,
        items,
        trailer: &text[trailer_start..],
        indent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(split: &Split<'a>) -> Vec<&'a str> {
        split.items.iter().map(|i| i.text).collect()
    }

    fn rejoined(split: &Split) -> String {
        format!("{}{}{}", split.header, texts(split).concat(), split.trailer)
    }

    #[test]
    fn items_carry_their_heading_comments_and_indented_tails() {
        let text =
            "# header\n\n- a: 1\n  # about a\n\n# about b\n- b: 2 # inline\n  c: 3\n# the end\n";
        let split = split(text).unwrap();
        assert_eq!(split.header, "# header\n\n");
        assert_eq!(
            texts(&split),
            [
                "- a: 1\n  # about a\n\n",
                "# about b\n- b: 2 # inline\n  c: 3\n"
            ]
        );
        assert_eq!(split.trailer, "# the end\n");
        assert_eq!(split.items[1].line, 7);
        assert_eq!(rejoined(&split), text);
    }

    #[test]
    fn indented_lists_and_missing_final_newline() {
        let text = "  - a\n  -\n    b: 1";
        let split = split(text).unwrap();
        assert_eq!(split.indent, 2);
        assert_eq!(texts(&split), ["  - a\n", "  -\n    b: 1"]);
        assert_eq!(rejoined(&split), text);
    }

    #[test]
    fn a_comment_inside_an_item_stays_with_it() {
        let text = "- a: 1\n# odd place\n  b: 2\n- c: 3\n";
        assert_eq!(
            texts(&split(text).unwrap()),
            ["- a: 1\n# odd place\n  b: 2\n", "- c: 3\n"]
        );
    }

    #[test]
    fn flow_style_and_non_lists_are_not_block_lists() {
        for text in ["[a, b]\n", "a: 1\n", "", "# only\n", "-x\n"] {
            assert_eq!(split(text), Err(NotBlock::NotBlockStyle), "{text:?}");
        }
    }

    #[test]
    fn lines_outside_the_items_are_refused() {
        assert_eq!(split("  - a\n- b\n"), Err(NotBlock::StrayLine { line: 2 }));
        assert_eq!(
            split("- a\n---\n- b\n"),
            Err(NotBlock::StrayLine { line: 2 })
        );
        assert_eq!(
            split("- a: \"x\ny\"\n"),
            Err(NotBlock::StrayLine { line: 2 })
        );
    }
}
