//! A small block-style YAML writer for the `mapUsers` list, safe for the YAML 1.1 reader inside
//! aws-iam-authenticator.
//!
//! Why not `serde_yaml_ng::to_string`: it quotes strings by YAML 1.2 rules, so a string such as
//! `on`, `yes` or `n` that was quoted in a hand-written entry would come back plain, and the
//! authenticator's YAML 1.1 parser would read it as a boolean. The JSON unmarshal that follows
//! then fails and the authenticator drops the whole `mapUsers` section. This writer emits a
//! string plain only when it is unambiguous under both YAML versions and double-quotes
//! everything else, which also makes the output independent of serializer version changes.
//!
//! The output is deterministic: the same [`Value`] always yields the same bytes.

use serde_yaml_ng::Value;

/// Words that some YAML version reads as null or boolean when unquoted, lowercased.
const SPECIAL_WORDS: [&str; 9] = ["null", "true", "false", "yes", "no", "on", "off", "y", "n"];

/// Characters allowed in a plain (unquoted) string besides ASCII letters and digits. Chosen so
/// that ARNs, Kubernetes user and group names and authenticator templates such as
/// `system:node:{{EC2PrivateDNSName}}` stay readable; anything else is quoted.
const PLAIN_PUNCTUATION: &str = "_-./:@{}=+,";

/// Renders a list as a block sequence; an empty list renders as `[]\n`.
pub(super) fn render_list(items: &[Value]) -> String {
    let mut out = String::new();
    if items.is_empty() {
        out.push_str("[]\n");
    } else {
        write_sequence(&mut out, items, 0, false);
    }
    out
}

/// Writes `items` one per line at `indent`; with `first_inline` the first item continues the
/// current line (after a `- ` of an enclosing sequence).
fn write_sequence(out: &mut String, items: &[Value], indent: usize, first_inline: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        out.push('-');
        write_after_dash(out, item, indent + 2);
    }
}

fn write_mapping(
    out: &mut String,
    map: &serde_yaml_ng::Mapping,
    indent: usize,
    first_inline: bool,
) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        write_key(out, key);
        out.push(':');
        write_after_indicator(out, value, indent + 2);
    }
}

/// After `-`, a non-empty collection starts on the same line (compact form).
fn write_after_dash(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Sequence(items) if !items.is_empty() => {
            out.push(' ');
            write_sequence(out, items, indent, true);
        }
        Value::Mapping(map) if !map.is_empty() => {
            out.push(' ');
            write_mapping(out, map, indent, true);
        }
        _ => write_after_indicator(out, value, indent),
    }
}

/// After `key:` or a tag, a non-empty collection starts on the next line, indented.
fn write_after_indicator(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Sequence(items) if !items.is_empty() => {
            out.push('\n');
            write_sequence(out, items, indent, false);
        }
        Value::Mapping(map) if !map.is_empty() => {
            out.push('\n');
            write_mapping(out, map, indent, false);
        }
        Value::Tagged(tagged) => {
            out.push(' ');
            out.push_str(&tagged.tag.to_string());
            write_after_indicator(out, &tagged.value, indent);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar);
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn write_key(out: &mut String, key: &Value) {
    // A plain `<<` is the merge key of YAML 1.1; the parsed value keeps it as a literal key, so
    // writing it plain again preserves what the authenticator saw.
    match key {
        Value::String(s) if s == "<<" => out.push_str(s),
        _ => write_scalar(out, key),
    }
}

fn write_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) if is_plain_safe(s) => out.push_str(s),
        Value::String(s) => write_double_quoted(out, s),
        Value::Sequence(_) => out.push_str("[]"),
        Value::Mapping(_) => out.push_str("{}"),
        // Keys are checked to be untagged scalars and values route tags elsewhere; keep the
        // inner value rather than panic should that ever change.
        Value::Tagged(tagged) => write_scalar(out, &tagged.value),
    }
}

/// Whether `s` reads back as the same string, unquoted, under YAML 1.1 and 1.2 alike.
fn is_plain_safe(s: &str) -> bool {
    let starts_with_letter = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/');
    starts_with_letter
        && !s.ends_with(':')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || PLAIN_PUNCTUATION.contains(c))
        && !SPECIAL_WORDS.contains(&s.to_ascii_lowercase().as_str())
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Characters YAML does not allow raw, plus the ones YAML 1.1 treats as line breaks (they would
/// be folded inside quotes) and the byte-order mark.
fn needs_escape(c: char) -> bool {
    let printable = matches!(c, ' '..='~' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}';
    !printable || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn empty_list_renders_as_flow_brackets() {
        assert_eq!(render_list(&[]), "[]\n");
    }

    #[test]
    fn entries_render_in_block_style_with_indented_lists() {
        let entry = parse(
            "{userarn: 'arn:aws:iam::123456789012:user/alice', username: alice, groups: [a, b], sso: {x: 1}}",
        );
        assert_eq!(
            render_list(&[entry]),
            "- userarn: arn:aws:iam::123456789012:user/alice\n  username: alice\n  groups:\n    - a\n    - b\n  sso:\n    x: 1\n"
        );
    }

    #[test]
    fn yaml_1_1_booleans_and_numbers_stay_quoted() {
        for word in [
            "on", "Off", "yes", "N", "y", "null", "~", "", "0777", "1_000", "1e3", ".inf", "-1",
            "12:30", "<<", "a: b", "#x", "- x", "x:",
        ] {
            let rendered = render_list(&[Value::String(word.into())]);
            assert!(
                rendered.starts_with("- \""),
                "{word:?} rendered plain: {rendered}"
            );
            assert_eq!(
                parse(&rendered),
                Value::Sequence(vec![Value::String(word.into())])
            );
        }
    }

    #[test]
    fn templates_and_arns_stay_readable() {
        let rendered = render_list(&[
            Value::String("system:node:{{EC2PrivateDNSName}}".into()),
            Value::String("{{SessionName}}".into()),
        ]);
        assert_eq!(
            rendered,
            "- system:node:{{EC2PrivateDNSName}}\n- \"{{SessionName}}\"\n"
        );
    }

    #[test]
    fn line_breaks_and_control_characters_are_escaped() {
        let s = "a\nb\u{85}c\u{2028}d\u{1}e\"f\\";
        let rendered = render_list(&[Value::String(s.into())]);
        assert_eq!(rendered.lines().count(), 1, "{rendered}");
        assert_eq!(
            parse(&rendered),
            Value::Sequence(vec![Value::String(s.into())])
        );
    }

    #[test]
    fn merge_key_stays_plain() {
        let entry = parse("{'<<': {a: 1}, b: 2}");
        assert_eq!(render_list(&[entry]), "- <<:\n    a: 1\n  b: 2\n");
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[a-zA-Z0-9 :{}~#'\"!&*|>%@`,._/=+-]{0,12}".prop_map(Value::String),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
                prop::collection::vec((scalar(), inner), 0..4)
                    .prop_map(|pairs| Value::Mapping(pairs.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn rendered_lists_parse_back_to_the_same_value(items in prop::collection::vec(tree(), 0..4)) {
            let rendered = render_list(&items);
            let reparsed: Value = serde_yaml_ng::from_str(&rendered)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{rendered}")))?;
            prop_assert_eq!(reparsed, Value::Sequence(items), "{}", rendered);
        }
    }
}
