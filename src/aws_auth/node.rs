//! A lenient YAML tree, read the way aws-iam-authenticator's YAML layer reads it: duplicate
//! mapping keys are kept (not refused), the merge key `<<` is kept as written, tags are kept.
//!
//! Why not [`serde_yaml_ng::Value`]: it refuses a mapping with a repeated key, which
//! gopkg.in/yaml.v2 accepts in non-strict mode (sigs.k8s.io/yaml `YAMLToJSON` calls its plain
//! `Unmarshal`; the later key wins). A parser stricter than the authenticator would call a
//! document broken that the authenticator honours, and so block writes (revocations among them)
//! for no reason. Both parsers are ports of libyaml, so they agree on syntax; they differ in
//! how a plain scalar is resolved (YAML 1.1 vs 1.2), which this tree never needs to settle:
//! unowned entries are kept as their text, and the only values read from them (`userarn`,
//! the ownership marker) are ARNs and words that both schemas read as the same string.

use std::fmt;

use serde::de::{Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess};

/// One YAML node. Mappings keep every pair in document order, duplicates included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    /// A number as the parser resolved it, kept as its decimal rendering so that `Eq` holds.
    Number(String),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Tagged(String, Box<Node>),
}

impl Node {
    /// Parses one YAML document. An empty or comment-only text is [`Node::Null`].
    pub(crate) fn parse(text: &str) -> Result<Node, String> {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The values of every top-level key equal to `key` (by `same_key`), in order.
    pub(crate) fn values_of<'a>(
        &'a self,
        same_key: impl Fn(&str) -> bool + 'a,
    ) -> impl Iterator<Item = &'a Node> + 'a {
        let pairs = match self {
            Node::Map(pairs) => pairs.as_slice(),
            _ => &[],
        };
        pairs
            .iter()
            .filter(move |(k, _)| k.as_str().is_some_and(&same_key))
            .map(|(_, v)| v)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> serde::de::Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Node, E> {
        Ok(Node::Number(n.to_string()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Node, E> {
        Ok(Node::Number(n.to_string()))
    }
    fn visit_i128<E>(self, n: i128) -> Result<Node, E> {
        Ok(Node::Number(n.to_string()))
    }
    fn visit_u128<E>(self, n: u128) -> Result<Node, E> {
        Ok(Node::Number(n.to_string()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Node, E> {
        // NaN != NaN would make two reads of one document differ; compare renderings instead.
        Ok(Node::Number(format!("{n:?}")))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node, E> {
        Ok(Node::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Node, E> {
        Ok(Node::Str(s))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(Node::Map(pairs))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        let (tag, contents): (String, _) = data.variant()?;
        Ok(Node::Tagged(tag, Box::new(contents.newtype_variant()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_kept_in_order() {
        let node = Node::parse("a: 1\nb: x\na: 2\n").unwrap();
        let a: Vec<&Node> = node.values_of(|k| k == "a").collect();
        assert_eq!(a, [&Node::Number("1".into()), &Node::Number("2".into())]);
    }

    #[test]
    fn merge_keys_and_tags_are_kept_as_written() {
        let node = Node::parse("<<: {x: 1}\ny: !t z\n").unwrap();
        let Node::Map(pairs) = node else { panic!() };
        assert_eq!(pairs[0].0, Node::Str("<<".into()));
        assert_eq!(
            pairs[1].1,
            Node::Tagged("t".into(), Box::new(Node::Str("z".into())))
        );
    }

    #[test]
    fn empty_and_comment_only_documents_are_null() {
        assert_eq!(Node::parse("").unwrap(), Node::Null);
        assert_eq!(Node::parse("# c\n").unwrap(), Node::Null);
    }

    #[test]
    fn aliases_are_expanded_and_unknown_ones_fail() {
        let node = Node::parse("- &a {x: 1}\n- *a\n").unwrap();
        let Node::Seq(items) = node else { panic!() };
        assert_eq!(items[0], items[1]);
        assert!(Node::parse("- *nowhere\n").is_err());
    }
}
