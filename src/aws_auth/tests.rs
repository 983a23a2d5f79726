//! One test per behaviour of [`merge`](super::merge).

use super::*;
use crate::desired::{Mapping, Scope};
use plan::owned_entry;
use serde_yaml_ng::Value;

const ACCOUNT: &str = "123456789012";

fn arn(path_and_name: &str) -> UserArn {
    UserArn::parse(&format!("arn:aws:iam::{ACCOUNT}:user/{path_and_name}")).unwrap()
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn entries(list: &[(&str, &[&str])]) -> BTreeMap<UserArn, Mapping> {
    list.iter()
        .map(|(path_and_name, groups)| {
            let arn = arn(path_and_name);
            let mapping = Mapping::new(arn.user_name(), groups.iter().copied());
            (arn, mapping)
        })
        .collect()
}

fn for_users(names: &[&str], list: &[(&str, &[&str])]) -> Desired {
    Desired {
        scope: Scope::Users(names.iter().map(|n| n.to_string()).collect()),
        entries: entries(list),
    }
}

fn for_all(list: &[(&str, &[&str])]) -> Desired {
    Desired {
        scope: Scope::All,
        entries: entries(list),
    }
}

/// An entry as this tool writes it, for building cluster state.
fn owned(path_and_name: &str, groups: &[&str]) -> String {
    let arn = arn(path_and_name);
    yaml::render_list(&[owned_entry(
        &arn,
        &Mapping::new(arn.user_name(), groups.iter().copied()),
        MANAGED_BY_VALUE,
    )])
}

const HAND_ENTRY: &str = "- userarn: arn:aws:iam::123456789012:user/admin\n  username: admin\n  groups:\n    - system:masters\n";

fn merged(map_users: &str, desired: &Desired) -> Merge {
    merge(Some(&data(&[(MAP_USERS, map_users)])), desired).unwrap()
}

fn parsed(text: &str) -> Vec<Value> {
    match serde_yaml_ng::from_str(text).unwrap() {
        Value::Sequence(items) => items,
        other => panic!("not a list: {other:?}"),
    }
}

#[test]
fn adds_a_desired_user_after_unowned_entries() {
    let result = merged(HAND_ENTRY, &for_users(&["alice"], &[("alice", &["devs"])]));
    assert_eq!(result.added, [arn("alice")]);
    assert_eq!(
        result.map_users.unwrap(),
        format!("{HAND_ENTRY}{}", owned("alice", &["devs"]))
    );
}

#[test]
fn removes_an_owned_user_no_longer_desired() {
    let current = format!("{HAND_ENTRY}{}", owned("alice", &["devs"]));
    let result = merged(&current, &for_users(&["alice"], &[]));
    assert_eq!(result.removed, [arn("alice")]);
    assert_eq!(result.map_users.unwrap(), HAND_ENTRY);
}

#[test]
fn narrows_groups_of_an_owned_user() {
    let current = owned("alice", &["admins", "devs"]);
    let result = merged(&current, &for_users(&["alice"], &[("alice", &["devs"])]));
    assert_eq!(result.changed, [arn("alice")]);
    assert!(result.added.is_empty() && result.removed.is_empty());
    assert_eq!(result.map_users.unwrap(), owned("alice", &["devs"]));
}

#[test]
fn conflict_with_hand_entry_is_reported_and_left_alone() {
    let hand = "- userarn: ARN:AWS:IAM::123456789012:USER/ALICE\n  username: hand-made\n";
    let current = format!("{hand}{}", owned("alice", &["devs"]));
    let result = merged(&current, &for_all(&[("alice", &["devs"])]));
    assert_eq!(result.conflicts, [arn("alice")]);
    assert_eq!(
        result.removed,
        [arn("alice")],
        "no duplicate next to the hand entry"
    );
    assert_eq!(result.map_users.unwrap(), hand);
}

#[test]
fn out_of_scope_owned_entry_is_untouched_under_users_scope() {
    let bob = "- groups: [ops]\n  userarn: arn:aws:iam::123456789012:user/bob\n  note: kept\n  managedBy: eks-iam-sync\n  username: bob\n";
    let result = merged(bob, &for_users(&["alice"], &[("alice", &["devs"])]));
    assert_eq!(result.added, [arn("alice")]);
    let output = parsed(&result.map_users.unwrap());
    assert_eq!(output[1], parsed(bob)[0]);
    let keys: Vec<_> = output[1].as_mapping().unwrap().keys().cloned().collect();
    let original_keys: Vec<_> = parsed(bob)[0]
        .as_mapping()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, original_keys, "field order kept");
}

#[test]
fn scope_all_removes_departed_users() {
    let current = format!("{}{}", owned("alice", &["devs"]), owned("bob", &["ops"]));
    let result = merged(&current, &for_all(&[("alice", &["devs"])]));
    assert_eq!(result.removed, [arn("bob")]);
    assert_eq!(result.map_users.unwrap(), owned("alice", &["devs"]));
}

#[test]
fn path_change_replaces_old_entry_under_users_scope() {
    let current = format!(
        "{}{}",
        owned("old/alice", &["devs"]),
        owned("bob", &["ops"])
    );
    let result = merged(
        &current,
        &for_users(&["alice"], &[("new/alice", &["devs"])]),
    );
    assert_eq!(result.added, [arn("new/alice")]);
    assert_eq!(result.removed, [arn("old/alice")]);
    assert_eq!(
        result.map_users.unwrap(),
        format!(
            "{}{}",
            owned("bob", &["ops"]),
            owned("new/alice", &["devs"])
        )
    );
}

#[test]
fn absent_config_map_creates_map_users() {
    let result = merge(None, &for_all(&[("alice", &["devs"])])).unwrap();
    assert_eq!(result.previous, None);
    assert_eq!(result.map_users.unwrap(), owned("alice", &["devs"]));
}

#[test]
fn absent_config_map_with_nobody_desired_writes_nothing() {
    assert_eq!(merge(None, &for_all(&[])).unwrap().map_users, None);
    let roles_only = data(&[("mapRoles", "[]")]);
    assert_eq!(
        merge(Some(&roles_only), &for_all(&[])).unwrap().map_users,
        None
    );
}

#[test]
fn no_change_yields_none_even_for_hand_formatted_yaml() {
    let current = format!(
        "# edited by hand\n- {{managedBy: eks-iam-sync, groups: [devs, admins], username: alice, userarn: 'arn:aws:iam::{ACCOUNT}:user/alice'}}\n{HAND_ENTRY}"
    );
    let result = merged(&current, &for_all(&[("alice", &["admins", "devs"])]));
    assert_eq!(
        result,
        Merge {
            previous: Some(current),
            ..Merge::default()
        }
    );
}

#[test]
fn a_principal_id_in_the_desired_mapping_changes_nothing_in_aws_auth() {
    // aws-auth records no id (the authenticator matches by ARN), so an entry written for a
    // user is unchanged when IAM reports the user's id, and a revocation-only merge still
    // sees it as fully granted.
    let mut desired = for_all(&[("alice", &["devs"])]);
    for mapping in desired.entries.values_mut() {
        *mapping = mapping.clone().for_principal("AIDAEXAMPLEALICE");
    }
    let first = merged(HAND_ENTRY, &desired).map_users.unwrap();
    let again = merged(&first, &desired);
    assert_eq!(again.map_users, None);
    assert!(
        again.changed.is_empty() && again.blocked.is_none(),
        "{again:?}"
    );
}

#[test]
fn merging_the_output_again_changes_nothing() {
    let desired = for_all(&[("alice", &["devs"]), ("bob", &[])]);
    let first = merged(HAND_ENTRY, &desired).map_users.unwrap();
    assert_eq!(merged(&first, &desired).map_users, None);
}

#[test]
fn duplicate_owned_entries_collapse_to_one() {
    let current = format!("{}{}", owned("bob", &["a"]), owned("bob", &["b"]));
    let in_scope = merged(&current, &for_all(&[("bob", &["b"])]));
    assert_eq!(in_scope.changed, [arn("bob")]);
    assert_eq!(in_scope.map_users.unwrap(), owned("bob", &["b"]));
    let out_of_scope = merged(&current, &for_users(&["alice"], &[]));
    assert_eq!(
        out_of_scope.map_users.unwrap(),
        owned("bob", &["b"]),
        "last one wins"
    );
}

#[test]
fn desired_arns_differing_only_in_case_become_one_entry() {
    let desired = for_all(&[("Alice", &["a"]), ("alice", &["b"])]);
    let result = merge(None, &desired).unwrap();
    assert_eq!(result.added, [arn("Alice")]);
    assert_eq!(result.map_users.unwrap(), owned("Alice", &["a"]));
}

#[test]
fn desired_entries_outside_the_scope_are_ignored() {
    let result = merge(None, &for_users(&["alice"], &[("bob", &[])])).unwrap();
    assert_eq!(result, Merge::default());
}

#[test]
fn marker_on_a_non_user_arn_is_treated_as_unowned() {
    let odd = "- userarn: arn:aws:iam::123456789012:role/x\n  managedBy: eks-iam-sync\n";
    let result = merged(odd, &for_all(&[]));
    assert_eq!(result.map_users, None);
    assert!(result.removed.is_empty());
}

#[test]
fn shadowed_out_of_scope_owned_entry_is_dropped_not_moved_behind_the_hand_entry() {
    let hand = "- userarn: arn:aws:iam::123456789012:user/bob\n  username: hand-made\n";
    let current = format!("{}{hand}", owned("bob", &["ops"]));
    let result = merged(&current, &for_users(&["alice"], &[]));
    assert_eq!(result.removed, [arn("bob")]);
    assert_eq!(result.map_users.unwrap(), hand);
}

#[test]
fn unified_diff_is_readable() {
    let before = owned("alice", &["admins", "devs"]);
    let after = owned("alice", &["devs"]);
    let diff = unified_diff("prod-eu", Some(&before), &after);
    assert!(diff.starts_with(
        "--- prod-eu: kube-system/aws-auth mapUsers (current)\n+++ prod-eu: kube-system/aws-auth mapUsers (proposed)\n@@ "
    ), "{diff}");
    assert!(diff.contains("\n-    - admins\n"), "{diff}");
    let created = unified_diff("dev", None, &after);
    assert!(
        created.contains("(absent)") && created.contains("+  managedBy: eks-iam-sync\n"),
        "{created}"
    );
    assert_eq!(diff, unified_diff("prod-eu", Some(&before), &after));
}

fn blocked_reasons(merge: &Merge) -> String {
    match &merge.blocked {
        Some(AwsAuthError::Blocked { reasons, .. }) => reasons.join("; "),
        other => panic!("expected a blocked merge, got {other:?}"),
    }
}

#[test]
fn map_roles_and_map_accounts_are_never_parsed_so_they_never_block() {
    // A key repeated inside one entry and a merge key (both read by the authenticator's
    // non-strict YAML 1.1 parser), and text that does not parse at all.
    for roles in [
        "- rolearn: arn:aws:iam::123456789012:role/node\n  username: a\n  username: b\n",
        "- &base {rolearn: arn:aws:iam::123456789012:role/a, username: a}\n- <<: *base\n  rolearn: arn:aws:iam::123456789012:role/b\n",
        "- rolearn: [unclosed\n",
    ] {
        let current = data(&[
            ("mapRoles", roles),
            ("mapAccounts", "- 0777\n- '12:30'\n- {"),
            (MAP_USERS, &owned("bob", &["ops"])),
        ]);
        let added = merge(Some(&current), &for_users(&["alice"], &[("alice", &["devs"])])).unwrap();
        assert_eq!(added.added, [arn("alice")], "{roles}");
        assert_eq!(added.blocked, None);
        let removed = merge(Some(&current), &for_users(&["bob"], &[])).unwrap();
        assert_eq!(removed.removed, [arn("bob")], "{roles}");
        assert_eq!(removed.map_users.as_deref(), Some("[]\n"));
    }
}

const EDGE_ENTRIES: &str = "# break-glass admins, do not touch\n- userarn: arn:aws:iam::123456789012:user/admin\n  username: \"on\"   # quoted on purpose\n  groups: [0777, 1:20, yes, ~, 1_000, .inf]\n\n# second\n- {userarn: 'arn:aws:iam::123456789012:user/ops', username: n, groups: [off, y]}\n";

#[test]
fn unowned_entries_are_kept_byte_for_byte_with_their_comments() {
    let current = format!("{}{EDGE_ENTRIES}", owned("bob", &["ops"]));
    let result = merged(&current, &for_all(&[("alice", &["devs"])]));
    assert_eq!(result.added, [arn("alice")]);
    assert_eq!(result.removed, [arn("bob")]);
    assert_eq!(
        result.map_users.unwrap(),
        format!("{EDGE_ENTRIES}{}", owned("alice", &["devs"]))
    );
}

#[test]
fn an_indented_list_gets_its_new_entries_at_its_column() {
    let hand = "  - userarn: arn:aws:iam::123456789012:user/admin\n    username: admin\n";
    let result = merged(hand, &for_all(&[("alice", &[])]));
    let text = result.map_users.unwrap();
    assert!(text.starts_with(hand), "{text}");
    assert!(
        text[hand.len()..].lines().all(|l| l.starts_with("  ")),
        "{text}"
    );
    assert_eq!(merged(&text, &for_all(&[("alice", &[])])).map_users, None);
}

#[test]
fn comments_of_an_empty_map_users_are_kept_and_an_emptied_one_becomes_an_empty_list() {
    for empty in ["", "[]", "''"] {
        assert_eq!(merged(empty, &for_all(&[])).map_users, None, "{empty:?}");
        let added = merged(empty, &for_all(&[("alice", &[])]));
        assert_eq!(added.map_users.unwrap(), owned("alice", &[]), "{empty:?}");
    }
    let added = merged("# nothing yet\n", &for_all(&[("alice", &[])]));
    assert_eq!(
        added.map_users.unwrap(),
        format!("# nothing yet\n{}", owned("alice", &[]))
    );
    let current = format!("# header\n{}# trailer\n", owned("alice", &[]));
    let emptied = merged(&current, &for_all(&[]));
    assert_eq!(
        emptied.map_users.as_deref(),
        Some("# header\n[]\n# trailer\n")
    );
}

#[test]
fn map_users_that_does_not_parse_is_an_error_naming_the_line() {
    for text in [
        "- userarn: a\n username: b\n",
        "- userarn: x\n  groups: [unclosed\n",
    ] {
        let err = merge(Some(&data(&[(MAP_USERS, text)])), &for_all(&[])).unwrap_err();
        let AwsAuthError::Unreadable { detail, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(detail.contains("line "), "{detail}");
        assert!(err.to_string().contains("mapUsers"), "{err}");
    }
}

#[test]
fn map_users_that_is_not_a_list_is_an_error() {
    let err = merge(
        Some(&data(&[(
            MAP_USERS,
            "userarn: arn:aws:iam::123456789012:user/x\n",
        )])),
        &for_all(&[]),
    )
    .unwrap_err();
    assert_eq!(
        err,
        AwsAuthError::NotAList {
            key: MAP_USERS,
            found: "a mapping"
        }
    );
}

#[test]
fn items_the_authenticator_skips_do_not_block() {
    // Not a mapping, no userarn, a userarn that is not a string: the authenticator's JSON
    // decoding skips each, the others still load.
    let odd = "- arn:aws:iam::123456789012:user/x\n- username: x\n- userarn: [a]\n";
    let result = merged(odd, &for_all(&[("alice", &[])]));
    assert_eq!(result.blocked, None);
    assert_eq!(
        result.map_users.unwrap(),
        format!("{odd}{}", owned("alice", &[]))
    );
}

#[test]
fn a_repeated_key_in_a_hand_entry_does_not_block_and_claims_both_arns() {
    let hand = "- userarn: arn:aws:iam::123456789012:user/alice\n  username: x\n  userarn: arn:aws:iam::123456789012:user/carol\n";
    let result = merged(
        hand,
        &for_all(&[("alice", &[]), ("bob", &[]), ("carol", &[])]),
    );
    assert_eq!(result.blocked, None);
    assert_eq!(result.conflicts, [arn("alice"), arn("carol")]);
    assert_eq!(
        result.map_users.unwrap(),
        format!("{hand}{}", owned("bob", &[]))
    );
}

#[test]
fn flow_style_with_hand_entries_blocks_with_a_reason_and_writes_nothing() {
    let flow = format!(
        "[{{userarn: 'arn:aws:iam::{ACCOUNT}:user/admin', username: admin}}, {{userarn: 'arn:aws:iam::{ACCOUNT}:user/bob', username: bob, managedBy: eks-iam-sync}}]\n"
    );
    let add = merged(&flow, &for_users(&["alice"], &[("alice", &[])]));
    assert_eq!(add.map_users, None);
    let reason = blocked_reasons(&add);
    assert!(
        reason.contains("flow style") && reason.contains("user/alice"),
        "{reason}"
    );
    // Nothing to do for a user without an entry is not an error.
    assert_eq!(merged(&flow, &for_users(&["carol"], &[])).blocked, None);
}

#[test]
fn aliases_across_items_block_grants_but_let_revocations_through() {
    let hand = format!(
        "- &admin\n  userarn: arn:aws:iam::{ACCOUNT}:user/admin\n  username: admin\n- <<: *admin\n  userarn: arn:aws:iam::{ACCOUNT}:user/admin2\n"
    );
    let current = format!(
        "{}{hand}{}",
        owned("alice", &["devs"]),
        owned("bob", &["admins", "devs"])
    );
    let desired = for_users(
        &["alice", "bob", "carol"],
        &[("bob", &["devs", "ops"]), ("carol", &["devs"])],
    );
    let result = merged(&current, &desired);
    assert_eq!(result.removed, [arn("alice")]);
    assert_eq!(result.changed, [arn("bob")]);
    assert!(result.added.is_empty());
    // In place: alice's text cut out, bob narrowed to what both grant, nothing moved.
    assert_eq!(
        result.map_users.as_deref().unwrap(),
        format!("{hand}{}", owned("bob", &["devs"]))
    );
    let reason = blocked_reasons(&result);
    assert!(
        reason.contains("user/bob")
            && reason.contains("user/carol")
            && reason.contains("item 3 (line 9)"),
        "{reason}"
    );
    let Some(AwsAuthError::Blocked { held_back, .. }) = result.blocked else {
        unreachable!()
    };
    assert_eq!(
        held_back,
        [arn("bob").to_string(), arn("carol").to_string()]
    );
}

#[test]
fn a_pure_revocation_in_an_unsplittable_list_is_not_an_error() {
    let current = format!(
        "- &a {{userarn: 'arn:aws:iam::{ACCOUNT}:user/admin'}}\n- *a\n{}",
        owned("alice", &[])
    );
    let result = merged(&current, &for_users(&["alice"], &[]));
    assert_eq!(result.removed, [arn("alice")]);
    assert_eq!(result.blocked, None);
    assert_eq!(
        result.map_users.unwrap(),
        format!("- &a {{userarn: 'arn:aws:iam::{ACCOUNT}:user/admin'}}\n- *a\n")
    );
}

#[test]
fn a_marked_entry_that_reads_two_ways_is_kept_and_reported() {
    let doubtful = format!(
        "- userarn: arn:aws:iam::{ACCOUNT}:user/alice\n  managedBy: eks-iam-sync\n  username: alice\n  username: root\n"
    );
    let result = merged(&doubtful, &for_all(&[("bob", &[])]));
    assert_eq!(
        result.map_users.clone().unwrap(),
        format!("{doubtful}{}", owned("bob", &[]))
    );
    let reason = blocked_reasons(&result);
    assert!(
        reason.contains("item 1 (line 1)") && reason.contains("`username` is repeated"),
        "{reason}"
    );
    let out_of_scope = merged(&doubtful, &for_users(&["bob"], &[]));
    assert_eq!(out_of_scope.blocked, None);
}

const NODE_AND_HAND_ROLES: &str = "# nodes\n- rolearn: arn:aws:iam::123456789012:role/node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes]\n- rolearn: arn:aws:iam::123456789012:role/Hand\n  username: 'on'\n  groups: [0777]\n";

fn sso_roles(names: &[&str], scope: Scope) -> Desired<RoleArn> {
    Desired {
        scope,
        entries: names
            .iter()
            .map(|name| {
                let arn = RoleArn::parse(&format!(
                    "arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/{name}"
                ))
                .unwrap();
                (arn, Mapping::new("admin:{{SessionName}}", ["developers"]))
            })
            .collect(),
    }
}

#[test]
fn a_role_goes_to_map_roles_without_its_path_and_foreign_roles_keep_their_bytes() {
    let current = data(&[("mapRoles", NODE_AND_HAND_ROLES), ("mapUsers", "- {x: 1}")]);
    let desired = sso_roles(&["AWSReservedSSO_Admin_0a"], Scope::All);
    let merged = merge_roles(Some(&current), &desired).unwrap();
    let text = merged.map_users.clone().unwrap();
    assert!(text.starts_with(NODE_AND_HAND_ROLES), "{text}");
    assert_eq!(
        &text[NODE_AND_HAND_ROLES.len()..],
        "- rolearn: arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0a\n  username: admin:{{SessionName}}\n  groups:\n    - developers\n  managedBy: eks-iam-sync\n"
    );
    assert_eq!(merged.added.len(), 1);
    // Again: nothing to write.
    let again = data(&[("mapRoles", &text)]);
    assert!(merge_roles(Some(&again), &desired)
        .unwrap()
        .map_users
        .is_none());
    // The set reassigned: the new role in, the old one out, the rest as it was.
    let reassigned = sso_roles(&["AWSReservedSSO_Admin_1b"], Scope::All);
    let after = merge_roles(Some(&again), &reassigned).unwrap();
    let after_text = after.map_users.unwrap();
    assert!(after_text.starts_with(NODE_AND_HAND_ROLES));
    assert!(after_text.contains("AWSReservedSSO_Admin_1b") && !after_text.contains("_0a"));
    assert_eq!(after.removed.len(), 1);
}

#[test]
fn a_hand_entry_for_the_same_role_is_a_conflict_and_a_user_scope_leaves_roles_alone() {
    let hand =
        "- rolearn: ARN:AWS:IAM::123456789012:ROLE/AWSRESERVEDSSO_ADMIN_0A\n  username: shared\n";
    let current = data(&[("mapRoles", hand)]);
    let merged = merge_roles(
        Some(&current),
        &sso_roles(&["AWSReservedSSO_Admin_0a"], Scope::All),
    )
    .unwrap();
    assert_eq!(merged.conflicts.len(), 1);
    assert!(merged.map_users.is_none());
    let owned = merge_roles(None, &sso_roles(&["R"], Scope::All))
        .unwrap()
        .map_users
        .unwrap();
    let current = data(&[("mapRoles", &owned)]);
    let users_only = sso_roles(&[], Scope::Users(["alice".to_string()].into()));
    assert!(merge_roles(Some(&current), &users_only)
        .unwrap()
        .map_users
        .is_none());
}

#[test]
fn an_unreadable_map_roles_blocks_role_grants_but_not_users() {
    let current = data(&[("mapRoles", "- rolearn: [unclosed\n")]);
    let err = merge_roles(Some(&current), &sso_roles(&["R"], Scope::All)).unwrap_err();
    assert!(err.to_string().contains("mapRoles does not parse"), "{err}");
    let users = Desired {
        scope: Scope::All,
        entries: entries(&[("alice", &["devs"])]),
    };
    assert!(merge(Some(&current), &users).unwrap().writes());
}
