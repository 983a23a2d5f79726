//! End to end: an organisation moves from one shared admin role to per-person names, as
//! README's "Moving from one shared admin role to per-person names" tells an operator to.
//!
//! The bed starts where most fleets are: the role `eks-cluster-admin` is mapped by hand to the
//! fixed username `eks-cluster-admin`, in aws-auth on a `CONFIG_MAP` cluster and as an access
//! entry on an `API` cluster, and the `CONFIG_MAP` cluster exports no control-plane logs. Two
//! admins behind the role are one user in the audit log. The operator then runs, with the built
//! binary: `audit` (findings), `audit --fix-logging`, adds a `roles` entry and reconciles (the
//! hand mappings are conflicts, left as they are), removes the hand mappings and reconciles
//! again (the tool's own mappings): the two admins are two users on both clusters. `audit`
//! still fails, since anyone who may assume the role chooses the session name
//! (`self-declared`); once the operator pins the session name in the roles' trust policies
//! (`sts:RoleSessionName` = `${aws:username}`), `audit` passes.

mod common;

use common::{
    aws_auth_data, cli, cli_on_terminal, role_with_trust, session, set_data_key, signed_in_as,
    trust_policy, REGION,
};
use eks_testbed::bootstrap::initial_map_roles;
use eks_testbed::eks::{AccessEntry, CreateAccessEntryRequest};
use eks_testbed::moto::ACCOUNT_ID;
use eks_testbed::TestBed;

const CM: &str = "mig-cm";
const API: &str = "mig-api";
const ADMIN_ROLE: &str = "eks-cluster-admin";

fn shared_mapping(role_arn: &str) -> String {
    format!("- rolearn: {role_arn}\n  username: eks-cluster-admin\n  groups:\n    - developers\n")
}

fn hand_entries(bed: &TestBed) -> Vec<AccessEntry> {
    bed.eks()
        .access_entries(ACCOUNT_ID, REGION, API)
        .into_iter()
        .filter(|e| !e.tags.contains_key("eks-iam-sync/managed"))
        .collect()
}

/// `audit --output json` as the operator runs it: its exit code and report.
fn audit(bed: &TestBed, config: &serde_json::Value, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["audit", "--output", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = cli(bed, config, &args);
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, json)
}

/// The class the audit gave `role_arn`'s active path on `cluster`.
fn class_of(report: &serde_json::Value, cluster: &str, role_arn: &str) -> Vec<String> {
    let cluster = report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == cluster)
        .unwrap();
    cluster["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["principal"] == role_arn && p["active"] == true)
        .map(|p| p["class"].as_str().unwrap().to_owned())
        .collect()
}

/// `reconcile --output json` through the binary: its JSON report. First the dry run an
/// operator reads (diffs, a line per cluster), printed for the README.
fn reconcile(bed: &TestBed, config: &serde_json::Value) -> serde_json::Value {
    let (code, out, err) = cli(bed, config, &["reconcile", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("\"clusters\""), "no JSON for people: {out}");
    println!("reconcile --dry-run:\n{out}");
    let (code, out, err) = cli(bed, config, &["reconcile", "--output", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn cluster<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_admin_role_moves_to_per_person_names_with_audit_before_and_after() {
    let bed = common::start_cm_and_api(CM, API).await;
    let (admin_role, _) = bed.seeder().create_role_at(ADMIN_ROLE, "/").await.unwrap();
    // Where the fleet starts: the shared mapping, in both stores; logs exported on API only.
    let shared_map_roles = format!("{}{}", initial_map_roles(), shared_mapping(&admin_role));
    set_data_key(&bed, CM, "mapRoles", &shared_map_roles).await;
    bed.eks()
        .create_access_entry(
            ACCOUNT_ID,
            REGION,
            API,
            CreateAccessEntryRequest {
                username: Some("eks-cluster-admin".into()),
                kubernetes_groups: vec!["developers".into()],
                ..CreateAccessEntryRequest::new(&admin_role)
            },
        )
        .unwrap();
    bed.eks()
        .set_logging(ACCOUNT_ID, REGION, API, &["audit", "authenticator"]);
    let hand_before = hand_entries(&bed);

    // Two admins, one user: nobody can tell who did what.
    for name in [CM, API] {
        let alice = session(&bed, &admin_role, "alice@example.com").await;
        let bob = session(&bed, &admin_role, "bob@example.com").await;
        assert_eq!(
            signed_in_as(&bed, name, &alice).await.unwrap(),
            "eks-cluster-admin"
        );
        assert_eq!(
            signed_in_as(&bed, name, &bob).await.unwrap(),
            "eks-cluster-admin"
        );
    }

    // Step 1: the audit names the problem and fails.
    let config = bed.description().sync_config.clone();
    let (code, before) = audit(&bed, &config, &[]);
    assert_eq!(code, 3, "{before:#}");
    assert_eq!(before["summary"]["sharedBeyondNodeGroups"], 2, "{before:#}");
    assert_eq!(before["summary"]["withoutAuditLogging"], 1, "{before:#}");
    for name in [CM, API] {
        assert_eq!(class_of(&before, name, &admin_role), ["shared"], "{name}");
    }
    let (_, table, _) = cli(&bed, &config, &["audit"]);
    println!("before:\n{table}");

    // Step 2: control-plane logs on everywhere; the shared paths still fail the audit.
    let (code, fixed) = audit(&bed, &config, &["--fix-logging"]);
    assert_eq!(code, 3, "{fixed:#}");
    assert_eq!(fixed["summary"]["withoutAuditLogging"], 0, "{fixed:#}");
    let logging = bed.eks().logging(ACCOUNT_ID, REGION, CM).unwrap();
    assert!(logging.contains("audit") && logging.contains("authenticator"));

    // Step 3: the role under a per-person name in the config. The hand mappings are someone
    // else's: conflicts, reported and left exactly as they are.
    let mut config = config;
    config["roles"] = serde_json::json!([{
        "roleArn": admin_role,
        "kubernetesGroups": ["developers"],
        "usernameTemplate": "admin:{{SessionName}}",
    }]);
    let report = reconcile(&bed, &config);
    for name in [CM, API] {
        let c = cluster(&report, name);
        assert_eq!(c["conflicts"].as_array().unwrap().len(), 1, "{c:#}");
        assert_eq!(c["added"], 0, "{c:#}");
    }
    assert_eq!(aws_auth_data(&bed, CM).await["mapRoles"], shared_map_roles);
    assert_eq!(hand_entries(&bed), hand_before);

    // Step 4: the operator removes the hand mappings, then reconciles at once; the tool
    // writes its own (the role has no mapping in between: seconds, see README).
    set_data_key(&bed, CM, "mapRoles", &initial_map_roles()).await;
    bed.eks_client(&bed.description().credentials.admin_role, REGION)
        .delete_access_entry()
        .cluster_name(API)
        .principal_arn(&admin_role)
        .send()
        .await
        .unwrap();
    let report = reconcile(&bed, &config);
    for name in [CM, API] {
        let c = cluster(&report, name);
        assert_eq!(
            (&c["outcome"], &c["added"]),
            (&"updated".into(), &1.into()),
            "{c:#}"
        );
        assert!(c["conflicts"].as_array().is_none_or(Vec::is_empty), "{c:#}");
    }
    // On a terminal, a line per cluster as it finishes (stderr), then the summary (stdout);
    // without one (every run above), no progress lines.
    let (code, out, _) = cli_on_terminal(&bed, &config, &["reconcile"]);
    assert_eq!(code, 0, "{out}");
    for name in [CM, API] {
        assert!(
            out.contains(&format!("/2] {name} (us-east-1): unchanged")),
            "{out}"
        );
    }
    assert!(out.contains("[1/2] ") && out.contains("[2/2] "), "{out}");
    let (_, _, stderr) = cli(&bed, &config, &["reconcile"]);
    assert!(!stderr.contains("[1/2]"), "{stderr}");
    let map_roles = aws_auth_data(&bed, CM).await["mapRoles"].clone();
    assert!(map_roles.starts_with(&initial_map_roles()), "{map_roles}");
    assert!(map_roles.contains("admin:{{SessionName}}"), "{map_roles}");

    // Step 5: two admins, two users, each naming the person, on both clusters.
    for name in [CM, API] {
        let alice = session(&bed, &admin_role, "alice@example.com").await;
        let bob = session(&bed, &admin_role, "bob@example.com").await;
        assert_eq!(
            signed_in_as(&bed, name, &alice).await.unwrap(),
            "admin:alice-example.com",
            "{name}"
        );
        assert_eq!(
            signed_in_as(&bed, name, &bob).await.unwrap(),
            "admin:bob-example.com",
            "{name}"
        );
    }

    // The audit still fails: anyone who may assume the role could have named the session
    // `alice@example.com`. It says how to fix that.
    let (code, named) = audit(&bed, &config, &[]);
    assert_eq!(code, 3, "{named:#}");
    assert_eq!(named["summary"]["sharedPaths"], 0, "{named:#}");
    for name in [CM, API] {
        assert_eq!(
            class_of(&named, name, &admin_role),
            ["self-declared"],
            "{name}"
        );
    }
    assert!(
        named
            .to_string()
            .contains("sts:RoleSessionName: ${aws:username}"),
        "{named:#}"
    );

    // Step 6: the session name pinned to the caller's IAM user name in the trust policy of
    // each role mapped with it (this one and the admin role every cluster starts with).
    for role in [ADMIN_ROLE, "eks-admin"] {
        role_with_trust(&bed, role, "/", &trust_policy(true)).await;
    }

    // And the audit passes.
    let (code, after) = audit(&bed, &config, &[]);
    assert_eq!(code, 0, "{after:#}");
    assert_eq!(after["summary"]["sharedPaths"], 0, "{after:#}");
    for name in [CM, API] {
        assert_eq!(
            class_of(&after, name, &admin_role),
            ["per-person"],
            "{name}"
        );
    }
    let (_, table, _) = cli(&bed, &config, &["audit"]);
    println!("after:\n{table}");
}
