//! aws-auth parse, merge and render: `aws_auth::merge` on any ConfigMap data and desired set.
//!
//! The input is a small text format, so seeds are readable aws-auth documents and a crash
//! reproducer says what it is:
//!
//! ```text
//! scope: alice bob                     # or `scope: all` (the default)
//! want: alice alice devs,admins        # ARN (or a user name under account 123456789012),
//! want: arn:aws:iam::123456789012:user/ops/Bob bob   # Kubernetes user name, groups
//! == mapUsers                          # then data keys, each to the next `== ` line;
//! - userarn: ...                       # no `== ` line at all: the ConfigMap is absent
//! == mapRoles
//! ...
//! ```
//!
//! Invariants, written against the public API only, so they hold however the module keeps
//! unowned entries (re-rendered or as their original text):
//! - no panic, and an error renders;
//! - the written `mapUsers` reads back (serde_yaml_ng) as a list whose owned entries in scope are
//!   exactly the desired ones (one each, with the ownership marker), minus the conflicts the
//!   merge reports;
//! - the unowned entries read back identically and in their order; owned entries out of scope
//!   stay as they were (the last one per ARN, unless a later hand-made entry shadows it);
//! - every other data key is unchanged byte for byte;
//! - merging the result again writes nothing.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use eks_iam_sync::aws_auth::{merge, Merge, MANAGED_BY_KEY, MANAGED_BY_VALUE, MAP_USERS};
use eks_iam_sync::desired::{Desired, Mapping, Scope, UserArn};
use libfuzzer_sys::fuzz_target;
use serde_yaml_ng::Value;

const ACCOUNT: &str = "123456789012";

struct Case {
    data: Option<BTreeMap<String, String>>,
    desired: Desired,
}

fn case(text: &str) -> Case {
    let start = match text.starts_with("== ") {
        true => Some(0),
        false => text.find("\n== ").map(|at| at + 1),
    };
    let (header, body) = text.split_at(start.unwrap_or(text.len()));
    let mut scope = Scope::All;
    let mut entries = BTreeMap::new();
    for line in header.lines() {
        if let Some(names) = line.strip_prefix("scope:") {
            let names: BTreeSet<String> = names.split_whitespace().map(str::to_owned).collect();
            if names.iter().all(|name| name != "all") {
                scope = Scope::Users(names);
            }
        } else if let Some(want) = line.strip_prefix("want:") {
            let mut fields = want.split_whitespace();
            let Some(who) = fields.next() else { continue };
            let arn = match who.starts_with("arn:") {
                true => who.to_owned(),
                false => format!("arn:aws:iam::{ACCOUNT}:user/{who}"),
            };
            let Ok(arn) = UserArn::parse(&arn) else {
                continue;
            };
            let username = fields.next().unwrap_or("").to_owned();
            let groups = fields
                .next()
                .unwrap_or("")
                .split(',')
                .filter(|g| !g.is_empty());
            entries.insert(arn, Mapping::new(username, groups));
        }
    }
    // Each section runs to the next line starting with `== `, its own last newline included.
    let data = body.strip_prefix("== ").map(|body| {
        let sections: Vec<&str> = body.split("\n== ").collect();
        let last = sections.len() - 1;
        sections
            .iter()
            .enumerate()
            .map(|(index, section)| {
                let (key, value) = section.split_once('\n').unwrap_or((section, ""));
                let newline = if index < last { "\n" } else { "" };
                (key.trim_end().to_owned(), format!("{value}{newline}"))
            })
            .collect()
    });
    Case {
        data,
        desired: Desired { scope, entries },
    }
}

/// A `mapUsers` value as a list, the way the authenticator reads it (null is empty).
fn items(text: Option<&str>) -> Option<Vec<Value>> {
    match serde_yaml_ng::from_str(text?) {
        Ok(Value::Sequence(items)) => Some(items),
        Ok(Value::Null) => Some(Vec::new()),
        _ => None,
    }
}

/// The user ARN of an entry carrying this tool's marker, i.e. one the tool owns.
fn owner(entry: &Value) -> Option<UserArn> {
    let map = entry.as_mapping()?;
    // The marker as this tool writes it: a plain string. `Value::as_str` would look through a
    // tag, but a tagged marker (`!tag eks-iam-sync`) was written by someone else, and the merge
    // leaves such an entry alone as not its own.
    let marked = matches!(map.get(MANAGED_BY_KEY), Some(Value::String(marker)) if marker == MANAGED_BY_VALUE);
    let mut arns = map.iter().filter(|(key, _)| {
        key.as_str()
            .is_some_and(|k| k.eq_ignore_ascii_case("userarn"))
    });
    match (marked, arns.next(), arns.next()) {
        (true, Some((_, arn)), None) => UserArn::parse(arn.as_str()?).ok(),
        _ => None,
    }
}

fn lower_userarn(entry: &Value) -> Option<String> {
    let map = entry.as_mapping()?;
    map.iter()
        .find(|(key, _)| {
            key.as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case("userarn"))
        })
        .and_then(|(_, arn)| arn.as_str())
        .map(str::to_ascii_lowercase)
}

/// Equality that counts a NaN equal to itself and keeps mapping order: what reads back the
/// same.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || x.as_f64().is_some_and(f64::is_nan) && y.as_f64().is_some_and(f64::is_nan)
        }
        (Value::Sequence(x), Value::Sequence(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Mapping(x), Value::Mapping(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| same(ka, kb) && same(va, vb))
        }
        (Value::Tagged(x), Value::Tagged(y)) => x.tag == y.tag && same(&x.value, &y.value),
        _ => a == b,
    }
}

fn same_list(a: &[&Value], b: &[&Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
}

/// The ConfigMap data after the caller applied `merged`: only `mapUsers` is ever written.
fn applied(
    data: Option<&BTreeMap<String, String>>,
    merged: &Merge,
) -> Option<BTreeMap<String, String>> {
    let Some(map_users) = &merged.map_users else {
        return data.cloned();
    };
    let mut after = data.cloned().unwrap_or_default();
    after.insert(MAP_USERS.to_owned(), map_users.clone());
    Some(after)
}

/// The desired entries the merge must write: in scope, not claimed by an unowned entry, and
/// the first of ARNs equal but for case.
fn expected_owned(desired: &Desired, unowned: &BTreeSet<String>) -> BTreeMap<UserArn, Mapping> {
    let mut seen = BTreeSet::new();
    desired
        .entries
        .iter()
        .filter(|(arn, _)| desired.in_scope(arn))
        .filter(|(arn, _)| !unowned.contains(&arn.as_str().to_ascii_lowercase()))
        .filter(|(arn, _)| seen.insert(arn.as_str().to_ascii_lowercase()))
        .map(|(arn, mapping)| (arn.clone(), mapping.normalized()))
        .collect()
}

/// Owned entries out of scope that must survive: per ARN the last, unless an unowned entry
/// for the same ARN comes after it (then it was shadowed and is dropped).
fn expected_kept(before: &[Value], desired: &Desired) -> BTreeMap<String, Value> {
    let mut last_unowned = HashMap::new();
    let mut last_owned = BTreeMap::new();
    for (position, entry) in before.iter().enumerate() {
        match owner(entry) {
            Some(arn) if !desired.in_scope(&arn) => {
                last_owned.insert(arn.as_str().to_ascii_lowercase(), (position, entry));
            }
            Some(_) => {}
            None => {
                if let Some(arn) = lower_userarn(entry) {
                    last_unowned.insert(arn, position);
                }
            }
        }
    }
    last_owned
        .into_iter()
        .filter(|(arn, (position, _))| last_unowned.get(arn).is_none_or(|later| later < position))
        .map(|(arn, (_, entry))| (arn, entry.clone()))
        .collect()
}

/// The owned entries of `list` outside the run's scope, per lower-cased ARN, in order.
fn owned_out_of_scope<'a>(
    list: &'a [Value],
    desired: &Desired,
) -> BTreeMap<String, Vec<&'a Value>> {
    let mut owned: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for entry in list {
        if let Some(arn) = owner(entry).filter(|arn| !desired.in_scope(arn)) {
            owned
                .entry(arn.as_str().to_ascii_lowercase())
                .or_default()
                .push(entry);
        }
    }
    owned
}

fn groups_of(entry: &Value) -> Option<Vec<String>> {
    match entry.get("groups") {
        None => Some(Vec::new()),
        Some(Value::Sequence(groups)) => {
            let groups: Option<BTreeSet<String>> = groups
                .iter()
                .map(|g| g.as_str().map(str::to_owned))
                .collect();
            groups.map(|g| g.into_iter().collect())
        }
        Some(_) => None,
    }
}

fn check(case: &Case) {
    let data = case.data.as_ref();
    let desired = &case.desired;
    let merged = match merge(data, desired) {
        Ok(merged) => merged,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    let previous = data.and_then(|d| d.get(MAP_USERS));
    assert_eq!(
        merged.previous.as_ref(),
        previous,
        "previous is the current mapUsers"
    );
    let after_data = applied(data, &merged);

    // Every other key stays byte for byte.
    fn others(d: Option<&BTreeMap<String, String>>) -> Option<Vec<(&String, &String)>> {
        d.map(|d| d.iter().filter(|(k, _)| *k != MAP_USERS).collect())
    }
    if data.is_some() {
        assert_eq!(
            others(data),
            others(after_data.as_ref()),
            "another key changed"
        );
    }

    // A mapUsers that serde_yaml_ng cannot read but the merge accepted (a YAML 1.1 reader may
    // allow what this one refuses) is only checked for the fixed point.
    let Some(before) = items(previous.map(String::as_str)).or(previous.is_none().then(Vec::new))
    else {
        fixed_point(after_data.as_ref(), desired);
        return;
    };
    let written = after_data.as_ref().and_then(|d| d.get(MAP_USERS));
    let after = match written {
        None => Vec::new(),
        Some(text) => items(Some(text))
            .unwrap_or_else(|| panic!("the written mapUsers is not a YAML list:\n{text}")),
    };

    // Unowned entries: identical and in order.
    let unowned = |list: &[Value]| -> Vec<Value> {
        list.iter()
            .filter(|e| owner(e).is_none())
            .cloned()
            .collect()
    };
    let (unowned_before, unowned_after) = (unowned(&before), unowned(&after));
    assert!(
        same_list(
            &unowned_before.iter().collect::<Vec<_>>(),
            &unowned_after.iter().collect::<Vec<_>>()
        ),
        "unowned entries changed:\nbefore {unowned_before:?}\nafter  {unowned_after:?}"
    );
    let unowned_arns: BTreeSet<String> = unowned_before.iter().filter_map(lower_userarn).collect();
    // A merge that held something back (a mapUsers whose text cannot be cut into entries with
    // certainty) only revokes or narrows in place and reports why; the owned entries then need
    // not be the desired ones, so only the checks above and the fixed point apply.
    if merged.blocked.is_some() {
        fixed_point(after_data.as_ref(), desired);
        return;
    }

    // Owned entries in scope: exactly the desired ones.
    let expected = expected_owned(desired, &unowned_arns);
    let mut in_scope: BTreeMap<UserArn, Vec<&Value>> = BTreeMap::new();
    for entry in &after {
        if let Some(arn) = owner(entry).filter(|arn| desired.in_scope(arn)) {
            in_scope.entry(arn).or_default().push(entry);
        }
    }
    let out_of_scope = owned_out_of_scope(&after, desired);
    assert_eq!(
        in_scope.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "owned entries in scope are not the desired ones"
    );
    for (arn, mapping) in &expected {
        let [entry] = in_scope[arn][..] else {
            panic!("{arn} has {} owned entries", in_scope[arn].len());
        };
        let known = ["userarn", "username", "groups", MANAGED_BY_KEY];
        let keys_known = entry.as_mapping().is_some_and(|m| {
            m.keys()
                .all(|k| k.as_str().is_some_and(|k| known.contains(&k)))
        });
        assert!(keys_known, "{arn}: unexpected keys in {entry:?}");
        assert_eq!(
            entry.get("username").and_then(Value::as_str),
            Some(&*mapping.username)
        );
        assert_eq!(
            groups_of(entry).as_ref(),
            Some(&mapping.groups),
            "{arn}: groups"
        );
    }
    let conflicts: BTreeSet<&UserArn> = merged.conflicts.iter().collect();
    let expected_conflicts: BTreeSet<&UserArn> = desired
        .entries
        .keys()
        .filter(|arn| desired.in_scope(arn))
        .filter(|arn| unowned_arns.contains(&arn.as_str().to_ascii_lowercase()))
        .collect();
    assert_eq!(conflicts, expected_conflicts, "conflicts");

    // Owned entries out of scope: kept as they were. A merge that writes nothing leaves every
    // one of them, duplicates included (a mapUsers that cannot be cut into entries, say, whose
    // in-scope part is already right); a rewrite keeps the last per ARN, the one the
    // authenticator reads.
    if merged.map_users.is_none() {
        let before_out = owned_out_of_scope(&before, desired);
        assert!(
            out_of_scope.len() == before_out.len()
                && out_of_scope
                    .iter()
                    .zip(&before_out)
                    .all(|((a, x), (b, y))| a == b && same_list(x, y)),
            "owned entries out of scope changed without a write"
        );
        fixed_point(after_data.as_ref(), desired);
        return;
    }
    let kept = expected_kept(&before, desired);
    assert_eq!(
        out_of_scope.keys().collect::<Vec<_>>(),
        kept.keys().collect::<Vec<_>>(),
        "owned entries out of scope changed"
    );
    for (arn, entry) in &kept {
        assert!(
            same_list(&out_of_scope[arn], &[entry]),
            "{arn} changed out of scope"
        );
    }

    fixed_point(after_data.as_ref(), desired);
}

/// Once written, the result is a fixed point: merging it again writes nothing.
fn fixed_point(data: Option<&BTreeMap<String, String>>, desired: &Desired) {
    let again = merge(data, desired)
        .unwrap_or_else(|error| panic!("the merged ConfigMap is refused: {error}"));
    assert!(
        !again.writes(),
        "merging the result again writes:\n{}",
        again.map_users.unwrap_or_default()
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(&case(text));
    }
});
