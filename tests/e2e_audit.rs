//! The traceability audit on a mixed fleet: a `CONFIG_MAP` cluster with the seed's aws-auth
//! plus, by hand, a shared `eks-cluster-admin` mapping, a mapAccounts entry, a mapped user and a
//! CI role listed in `serviceIdentities`; an `API` cluster with a user entry, a role entry with
//! EKS's default username, a shared-username role entry with an access policy (seeded through
//! AssociateAccessPolicy) and the node entry; an `API_AND_CONFIG_MAP` cluster whose aws-auth
//! mappings are shadowed by access entries. Logging is off on the first, on on the others.
//!
//! The built binary runs as an operator runs it (`audit`, `--output json`, `--fix-logging`),
//! configured from the bed's environment; the library run checks what the JSON carries and that
//! nothing was written. The admin role mapped as `admin:{{SessionName}}` trusts the whole
//! account without pinning the session name (self-declared) until the clean state pins it. One
//! test runs the binary as a session of the shared admin role itself, with a fake node path and
//! session-named roles whose trust policies pin the name or do not. The tests share one bed and
//! take turns; each starts by putting the fleet back into the mixed state.

mod common;

use std::collections::BTreeSet;

use aws_sdk_eks::types::{AccessScope, AccessScopeType};
use common::{
    cli, cli_with, resource_version, role_with_trust, session, set_data_key, trust_policy, REGION,
};
use eks_iam_sync::audit::{self, AuditOptions, AuditReport, Class, PathReport, Source};
use eks_iam_sync::config::Config;
use eks_iam_sync::sync::App;
use eks_testbed::bootstrap::{initial_map_roles, ADMIN_ROLE};
use eks_testbed::eks::{AuthenticationMode, CreateAccessEntryRequest};
use eks_testbed::moto::ACCOUNT_ID;
use eks_testbed::{ClusterOptions, Fault, FleetOptions, Matcher, TestBed, Times};

const CM: &str = "audit-cm";
const API: &str = "audit-api";
const BOTH: &str = "audit-both";

const SHARED_ROLE: &str = "arn:aws:iam::123456789012:role/eks-cluster-admin";
const READONLY_ROLE: &str = "arn:aws:iam::123456789012:role/eks-readonly";
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
/// Listed in `serviceIdentities` with its path; mapped in aws-auth without it.
const CI_ROLE: &str = "arn:aws:iam::123456789012:role/ci/deployer";
const NODE_ROLE: &str = "arn:aws:iam::123456789012:role/eks-node-role";
const SYNC_ROLE: &str = "arn:aws:iam::123456789012:role/eks-iam-sync";
const ADMIN_POLICY: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";
const OTHER_ACCOUNT: &str = "210987654321";

/// Every write the EKS emulator serves.
const EKS_WRITES: [&str; 7] = [
    "CreateAccessEntry",
    "UpdateAccessEntry",
    "DeleteAccessEntry",
    "TagResource",
    "UntagResource",
    "UpdateClusterConfig",
    "AssociateAccessPolicy",
];

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn bed() -> &'static TestBed {
    TestBed::shared(
        FleetOptions::new()
            .cluster(ClusterOptions::new(CM))
            .cluster(ClusterOptions::new(API).mode(AuthenticationMode::Api))
            .cluster(ClusterOptions::new(BOTH).mode(AuthenticationMode::ApiAndConfigMap)),
    )
}

fn shared_mapping(groups: &str) -> String {
    format!("- rolearn: {SHARED_ROLE}\n  username: eks-cluster-admin\n  groups: {groups}\n")
}

fn ci_mapping() -> String {
    "- rolearn: arn:aws:iam::123456789012:role/deployer\n  username: ci-deployer\n  groups: [deployers]\n".into()
}

/// The bed's config with the CI role as a service identity, and `extra` clusters.
fn config(bed: &TestBed, extra: &[serde_json::Value]) -> serde_json::Value {
    let mut config = bed.description().sync_config.clone();
    config["serviceIdentities"] = serde_json::json!([CI_ROLE]);
    for cluster in extra {
        config["clusters"]
            .as_array_mut()
            .unwrap()
            .push(cluster.clone());
    }
    config
}

fn app(bed: &TestBed, config: &serde_json::Value) -> App {
    let mut app = common::app(bed);
    app.config = Config {
        function_role: app.config.function_role.take(),
        ..Config::parse(&config.to_string()).unwrap()
    };
    app
}

/// Puts the fleet into the mixed state; idempotent.
async fn mixed(bed: &TestBed) {
    set_data_key(
        bed,
        CM,
        "mapRoles",
        &format!(
            "{}{}{}",
            initial_map_roles(),
            shared_mapping("[system:masters]"),
            ci_mapping()
        ),
    )
    .await;
    set_data_key(
        bed,
        CM,
        "mapUsers",
        &format!("- userarn: {ALICE}\n  username: alice\n  groups: [developers]\n"),
    )
    .await;
    set_data_key(bed, CM, "mapAccounts", &format!("- '{OTHER_ACCOUNT}'\n")).await;
    role_with_trust(bed, ADMIN_ROLE, "/", &trust_policy(false)).await;
    let eks = bed.eks();
    let shared = CreateAccessEntryRequest {
        username: Some("eks-cluster-admin".into()),
        ..CreateAccessEntryRequest::new(SHARED_ROLE)
    };
    let alice = CreateAccessEntryRequest {
        username: Some("alice".into()),
        kubernetes_groups: vec!["developers".into()],
        ..CreateAccessEntryRequest::new(ALICE)
    };
    for request in [shared, alice, CreateAccessEntryRequest::new(READONLY_ROLE)] {
        let principal = request.principal_arn.clone();
        if eks
            .access_entry_for(ACCOUNT_ID, REGION, API, &principal)
            .is_none()
        {
            eks.create_access_entry(ACCOUNT_ID, REGION, API, request)
                .unwrap();
        }
    }
    // Through the real API, as an operator would.
    bed.eks_client(&bed.description().credentials.admin_role, REGION)
        .associate_access_policy()
        .cluster_name(API)
        .principal_arn(SHARED_ROLE)
        .policy_arn(ADMIN_POLICY)
        .access_scope(
            AccessScope::builder()
                .r#type(AccessScopeType::Cluster)
                .build(),
        )
        .send()
        .await
        .unwrap();
    eks.set_logging(ACCOUNT_ID, REGION, CM, &[]);
    eks.set_logging(ACCOUNT_ID, REGION, API, &["audit", "authenticator"]);
    eks.set_logging(ACCOUNT_ID, REGION, BOTH, &["api", "audit", "authenticator"]);
}

/// The mixed state without its findings: logging on everywhere, no shared path beyond nodes,
/// the admin role's session name pinned to the caller's IAM user name.
async fn clean(bed: &TestBed) {
    mixed(bed).await;
    role_with_trust(bed, ADMIN_ROLE, "/", &trust_policy(true)).await;
    set_data_key(
        bed,
        CM,
        "mapRoles",
        &format!("{}{}", initial_map_roles(), ci_mapping()),
    )
    .await;
    bed.eks()
        .set_logging(ACCOUNT_ID, REGION, CM, &["audit", "authenticator"]);
    bed.eks_client(&bed.description().credentials.admin_role, REGION)
        .delete_access_entry()
        .cluster_name(API)
        .principal_arn(SHARED_ROLE)
        .send()
        .await
        .unwrap();
}

fn writes(bed: &TestBed) -> Vec<(&'static str, u64)> {
    EKS_WRITES.map(|op| (op, bed.eks().calls(op))).to_vec()
}

fn path<'a>(
    report: &'a AuditReport,
    cluster: &str,
    source: Source,
    principal: &str,
) -> &'a PathReport {
    let cluster = report
        .clusters
        .iter()
        .find(|c| c.cluster == cluster)
        .unwrap_or_else(|| panic!("{cluster} missing"));
    cluster
        .paths
        .iter()
        .find(|p| p.source == source && p.principal.eq_ignore_ascii_case(principal))
        .unwrap_or_else(|| panic!("{source:?} {principal} missing in {cluster:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_of_the_mixed_fleet_is_classified_and_nothing_is_written() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    mixed(bed).await;
    let config = config(bed, &[]);
    let app = app(bed, &config);
    let versions = (
        resource_version(bed, CM).await,
        resource_version(bed, BOTH).await,
    );
    let before = writes(bed);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let report = audit::run(&app, AuditOptions::default(), deadline).await;
    println!("{}", audit::table(&report));

    let expect = |cluster, source, principal, class: Class, active: bool| {
        let p = path(&report, cluster, source, principal);
        assert_eq!((p.class, p.active), (class, active), "{p:?}");
        p
    };
    // CONFIG_MAP: the seed, the hand-made paths, the tool itself and the listed CI role.
    expect(CM, Source::MapRoles, NODE_ROLE, Class::Node, true);
    expect(CM, Source::MapRoles, SYNC_ROLE, Class::Service, true);
    // The admin role's trust policy lets anyone of the account choose the session name.
    let admin = "arn:aws:iam::123456789012:role/eks-admin";
    let self_declared = expect(CM, Source::MapRoles, admin, Class::SelfDeclared, true);
    assert!(self_declared.is_finding());
    assert!(
        self_declared.why.contains("sts:RoleSessionName"),
        "{}",
        self_declared.why
    );
    expect(API, Source::AccessEntry, admin, Class::SelfDeclared, true);
    let shared = expect(CM, Source::MapRoles, SHARED_ROLE, Class::Shared, true);
    assert!(shared.is_finding());
    let ci = "arn:aws:iam::123456789012:role/deployer";
    expect(CM, Source::MapRoles, ci, Class::Service, true);
    expect(CM, Source::MapUsers, ALICE, Class::PerPerson, true);
    expect(
        CM,
        Source::MapAccounts,
        OTHER_ACCOUNT,
        Class::AccountWide,
        true,
    );
    // API: access entries only; aws-auth, if read at all, is inactive.
    expect(API, Source::AccessEntry, ALICE, Class::PerPerson, true);
    // A role IAM does not know: whoever creates it writes its trust policy.
    let readonly = expect(
        API,
        Source::AccessEntry,
        READONLY_ROLE,
        Class::SelfDeclared,
        true,
    );
    assert!(readonly.why.contains("NoSuchEntity"), "{}", readonly.why);
    assert!(!readonly.is_finding(), "it grants nothing");
    assert_eq!(
        readonly.username,
        "arn:aws:sts::123456789012:assumed-role/eks-readonly/{{SessionName}}"
    );
    expect(API, Source::AccessEntry, NODE_ROLE, Class::Node, true);
    let shared_entry = expect(API, Source::AccessEntry, SHARED_ROLE, Class::Shared, true);
    assert_eq!(shared_entry.access_policies.len(), 1);
    assert_eq!(shared_entry.access_policies[0].policy_arn, ADMIN_POLICY);
    assert_eq!(shared_entry.access_policies[0].scope, "cluster");
    assert!(shared_entry.is_finding());
    let api = report.clusters.iter().find(|c| c.cluster == API).unwrap();
    assert!(api
        .paths
        .iter()
        .filter(|p| p.source.is_aws_auth())
        .all(|p| !p.active));
    assert_eq!(api.authentication_mode.as_deref(), Some("API"));
    // API_AND_CONFIG_MAP: an access entry wins over the aws-auth mapping of its principal.
    expect(BOTH, Source::MapRoles, NODE_ROLE, Class::Node, false);
    expect(BOTH, Source::AccessEntry, NODE_ROLE, Class::Node, true);
    expect(BOTH, Source::MapRoles, SYNC_ROLE, Class::Service, true);

    let logging = |cluster| {
        let c = report
            .clusters
            .iter()
            .find(|c| c.cluster == cluster)
            .unwrap();
        let l = c.logging.as_ref().unwrap();
        (l.audit, l.authenticator)
    };
    assert_eq!(logging(CM), (false, false));
    assert_eq!(logging(API), (true, true));
    assert_eq!(logging(BOTH), (true, true));
    let summary = &report.summary;
    assert_eq!((summary.clusters, summary.unreadable), (3, 0));
    assert_eq!(summary.shared_beyond_node_groups, 2);
    // The admin role on each cluster (on the API_AND_CONFIG_MAP one through its access entry).
    assert_eq!(summary.self_declared_beyond_node_groups, 3);
    assert_eq!(summary.without_audit_logging, 1);
    for class in Class::ALL {
        assert!(summary.by_class[class.as_str()] > 0, "{class:?}");
    }
    assert_eq!(report.exit_code, audit::EXIT_FINDINGS);

    // The direct invoke returns the same report.
    let invoked = eks_iam_sync::handler::lambda(
        &app,
        None,
        &serde_json::json!({"action": "audit"}),
        deadline,
    )
    .await
    .unwrap();
    assert_eq!(invoked["exitCode"], 3);
    assert_eq!(invoked["summary"]["sharedBeyondNodeGroups"], 2);
    // A function deployed without AllowFixLogging refuses fixLogging up front.
    let mut refusing = app;
    refusing.config.fix_logging_refused = true;
    let refused = eks_iam_sync::handler::lambda(
        &refusing,
        None,
        &serde_json::json!({"action": "audit", "fixLogging": true}),
        deadline,
    )
    .await
    .unwrap();
    assert!(
        refused["rejected"]
            .as_str()
            .unwrap()
            .contains("AllowFixLogging=true"),
        "{refused}"
    );

    // Nothing was written, anywhere.
    assert_eq!(writes(bed), before);
    assert_eq!(
        (
            resource_version(bed, CM).await,
            resource_version(bed, BOTH).await
        ),
        versions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_a_table_or_json_and_its_exit_code_names_the_reason() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    let config = config(bed, &[]);

    mixed(bed).await;
    let (code, table, stderr) = cli(bed, &config, &["audit"]);
    assert_eq!(code, 3, "{table}{stderr}");
    assert!(
        table.contains(&format!(
            "cluster {CM} (us-east-1)  mode CONFIG_MAP  logging: audit OFF, authenticator OFF"
        )),
        "{table}"
    );
    assert!(table.contains("shared!"), "{table}");
    assert!(
        table.contains("+AmazonEKSClusterAdminPolicy(cluster)"),
        "{table}"
    );
    let last = table.lines().last().unwrap();
    assert!(
        last.starts_with("audit: 3 clusters (0 unreadable)"),
        "{last}"
    );
    assert!(
        last.contains("2 shared paths (2 beyond node groups), 4 self-declared paths (3 beyond node groups), 1 clusters without audit logging"),
        "{last}"
    );
    assert!(
        table.contains("  ! self-declared arn:aws:iam::123456789012:role/eks-admin (mapRoles): the username carries the session name, but whoever assumes role eks-admin chooses the session name"),
        "{table}"
    );
    println!("{table}");

    let (code, json, _) = cli(bed, &config, &["audit", "--output", "json"]);
    assert_eq!(code, 3);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["exitCode"], 3);
    assert_eq!(json["clusters"].as_array().unwrap().len(), 3);
    let cm = &json["clusters"][0];
    assert_eq!(cm["cluster"], CM);
    assert_eq!(cm["logging"]["audit"], false);
    assert!(cm["paths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["class"] == "account-wide" && p["source"] == "mapAccounts"));

    // The same request as a direct invoke, through `handle`.
    let file = std::env::temp_dir().join(format!("eks-iam-sync-audit-{}.json", std::process::id()));
    std::fs::write(&file, r#"{"action":"audit"}"#).unwrap();
    let (code, out, _) = cli(bed, &config, &["handle", file.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}");
    let handled: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(handled["summary"], json["summary"]);
    std::fs::remove_file(file).ok();

    // Clean: 0.
    clean(bed).await;
    let (code, out, stderr) = cli(bed, &config, &["audit"]);
    assert_eq!(code, 0, "{out}{stderr}");

    // Only the authenticator log missing on one cluster: 3.
    bed.eks().set_logging(ACCOUNT_ID, REGION, CM, &["audit"]);
    let (code, out, _) = cli(bed, &config, &["audit", "--output", "json"]);
    assert_eq!(code, 3, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["withoutAuditLogging"], 1);
    assert_eq!(json["summary"]["sharedBeyondNodeGroups"], 0);
    bed.eks()
        .set_logging(ACCOUNT_ID, REGION, CM, &["audit", "authenticator"]);

    // A shared role granting only node groups is reported but passes; system:masters fails.
    let node_groups = format!(
        "{}{}{}",
        initial_map_roles(),
        ci_mapping(),
        shared_mapping("[system:bootstrappers, system:nodes]")
    );
    set_data_key(bed, CM, "mapRoles", &node_groups).await;
    let (code, out, _) = cli(bed, &config, &["audit", "--output", "json"]);
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["sharedPaths"], 1);
    let masters = format!(
        "{}{}{}",
        initial_map_roles(),
        ci_mapping(),
        shared_mapping("[system:masters]")
    );
    set_data_key(bed, CM, "mapRoles", &masters).await;
    let (code, _, _) = cli(bed, &config, &["audit"]);
    assert_eq!(code, 3);

    // A cluster that cannot be read: 4, and the others are still audited.
    let ghost = config_with_ghost(bed);
    let (code, out, _) = cli(bed, &ghost, &["audit", "--output", "json"]);
    assert_eq!(code, 4, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let clusters = json["clusters"].as_array().unwrap();
    let ghost = clusters.iter().find(|c| c["cluster"] == "ghost").unwrap();
    assert!(
        ghost["error"].as_str().unwrap().contains("does not exist"),
        "{ghost}"
    );
    assert!(clusters
        .iter()
        .filter(|c| c["cluster"] != "ghost")
        .all(|c| c["error"].is_null() && !c["paths"].as_array().unwrap().is_empty()));
}

fn config_with_ghost(bed: &TestBed) -> serde_json::Value {
    config(
        bed,
        &[serde_json::json!({"name": "ghost", "region": REGION})],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fix_logging_enables_only_what_is_off_and_keeps_other_types() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    mixed(bed).await;
    let eks = bed.eks();
    eks.set_logging(ACCOUNT_ID, REGION, API, &["api", "audit"]);
    let config = config(bed, &[]);
    let updates = |cluster| eks.calls_for("UpdateClusterConfig", cluster);
    let before = [CM, API, BOTH].map(updates);

    let (code, out, stderr) = cli(
        bed,
        &config,
        &["audit", "--fix-logging", "--output", "json"],
    );
    // The shared paths still fail the audit; logging no longer does.
    assert_eq!(code, 3, "{out}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["withoutAuditLogging"], 0);
    let fixed = |cluster: &str| {
        json["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cluster"] == cluster)
            .unwrap()["logging"]["fixed"]
            .clone()
    };
    assert_eq!(fixed(CM), serde_json::json!(["audit", "authenticator"]));
    assert_eq!(fixed(API), serde_json::json!(["authenticator"]));
    assert!(fixed(BOTH).is_null());
    assert_eq!(
        [CM, API, BOTH].map(updates),
        [before[0] + 1, before[1] + 1, before[2]]
    );
    let enabled = |cluster| eks.logging(ACCOUNT_ID, REGION, cluster).unwrap();
    let set = |types: &[&str]| types.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(enabled(CM), set(&["audit", "authenticator"]));
    assert_eq!(enabled(API), set(&["api", "audit", "authenticator"]));
    assert_eq!(enabled(BOTH), set(&["api", "audit", "authenticator"]));

    // Nothing left to enable: no call.
    let (_, out, _) = cli(bed, &config, &["audit", "--fix-logging"]);
    assert!(!out.contains("--fix-logging enabled"), "{out}");
    assert_eq!(
        [CM, API, BOTH].map(updates),
        [before[0] + 1, before[1] + 1, before[2]]
    );
}

/// aws-auth answering 503 twice is read on the third try; an API server that never answers
/// makes its cluster unreadable at the deadline, alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_aws_auth_is_retried_and_a_hung_api_server_fails_its_cluster_alone() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    mixed(bed).await;
    let app = app(bed, &config(bed, &[]));
    let aws_auth = Matcher::path("/api/v1/namespaces/kube-system/configmaps/aws-auth");

    let proxy = bed.proxy_api_server(CM).await.unwrap();
    proxy.inject(aws_auth.clone(), Fault::Unavailable, 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let report = audit::run(&app, AuditOptions::default(), deadline).await;
    assert_eq!(proxy.faulted(&aws_auth), 2);
    let cm = report.clusters.iter().find(|c| c.cluster == CM).unwrap();
    assert!(cm.error.is_none(), "{cm:?}");
    assert_eq!(
        path(&report, CM, Source::MapRoles, SHARED_ROLE).class,
        Class::Shared
    );

    proxy.clear();
    proxy.inject(Matcher::any(), Fault::BlackHole, Times::Always);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    let report = audit::run(&app, AuditOptions::default(), deadline).await;
    let cm = report.clusters.iter().find(|c| c.cluster == CM).unwrap();
    assert!(
        cm.error.as_deref().unwrap_or_default().contains("deadline"),
        "{cm:?}"
    );
    assert_eq!(report.exit_code, audit::EXIT_UNREADABLE);
    for other in [API, BOTH] {
        let c = report.clusters.iter().find(|c| c.cluster == other).unwrap();
        assert!(c.error.is_none() && !c.paths.is_empty(), "{c:?}");
    }
}

/// The audit run as an operator whose credentials are a session of the hand-mapped shared admin
/// role (what can read aws-auth everywhere): the shared role is still flagged, only the
/// function's role (EKS_IAM_SYNC_FUNCTION_ROLE) and the listed CI role are machines; a node's
/// username template with system:masters is flagged; a `{{SessionName}}` role is per-person only
/// when its trust policy pins the name (or it is an Identity Center role), else self-declared,
/// with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_is_not_fooled_by_who_runs_it_or_by_names() {
    let _turn = SERIAL.lock().await;
    let bed = bed();
    mixed(bed).await;
    let shared_role = role_with_trust(bed, "eks-cluster-admin", "/", &trust_policy(false)).await;
    assert_eq!(shared_role, SHARED_ROLE);
    let free = role_with_trust(bed, "eks-session-free", "/", &trust_policy(false)).await;
    let pinned = role_with_trust(bed, "eks-session-pinned", "/", &trust_policy(true)).await;
    let sso_trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::{ACCOUNT_ID}:saml-provider/AWSSSO_0123abcd_DO_NOT_DELETE"}},"Action":["sts:AssumeRoleWithSAML","sts:TagSession"],"Condition":{{"StringEquals":{{"SAML:aud":"https://signin.aws.amazon.com/saml"}}}}}}]}}"#
    );
    let sso = role_with_trust(
        bed,
        "AWSReservedSSO_Admin_0123abcd",
        "/aws-reserved/sso.amazonaws.com/",
        &sso_trust,
    )
    .await;
    let sso_in_aws_auth = format!("arn:aws:iam::{ACCOUNT_ID}:role/AWSReservedSSO_Admin_0123abcd");
    assert!(sso.ends_with("/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123abcd"));
    let fake_node = format!("arn:aws:iam::{ACCOUNT_ID}:role/eks-fake-node");
    let mapping = |arn: &str, username: &str, groups: &str| {
        format!("- rolearn: {arn}\n  username: {username}\n  groups: {groups}\n")
    };
    set_data_key(
        bed,
        CM,
        "mapRoles",
        &[
            initial_map_roles(),
            shared_mapping("[system:masters]"),
            ci_mapping(),
            mapping(
                &fake_node,
                "system:node:{{EC2PrivateDNSName}}",
                "[system:bootstrappers, system:nodes, system:masters]",
            ),
            mapping(&free, "free:{{SessionName}}", "[developers]"),
            mapping(&pinned, "pinned:{{SessionName}}", "[developers]"),
            mapping(&sso_in_aws_auth, "sso:{{SessionName}}", "[developers]"),
        ]
        .concat(),
    )
    .await;
    // The clusters the shared role can read: aws-auth maps it on CM, and API ignores aws-auth.
    let mut config = config(bed, &[]);
    config["clusters"] = serde_json::json!([
        {"name": CM, "region": REGION},
        {"name": API, "region": REGION},
    ]);
    let operator = session(bed, SHARED_ROLE, "alice").await;
    let env: Vec<(String, String)> = operator.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let (code, out, stderr) = cli_with(bed, &config, &env, &["audit", "--output", "json"]);
    assert_eq!(code, 3, "{out}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cluster = |name: &str| {
        json["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cluster"] == name)
            .unwrap()
            .clone()
    };
    let cm = cluster(CM);
    assert_eq!(
        cm["callerArn"],
        format!("arn:aws:sts::{ACCOUNT_ID}:assumed-role/eks-cluster-admin/alice")
    );
    let path = |principal: &str| {
        cm["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["principal"] == principal && p["source"] == "mapRoles")
            .unwrap_or_else(|| panic!("{principal} missing: {cm:#}"))
            .clone()
    };
    let class = |principal: &str| path(principal)["class"].as_str().unwrap().to_owned();
    assert_eq!(
        class(SHARED_ROLE),
        "shared",
        "the caller's own role is no machine"
    );
    assert_eq!(class(SYNC_ROLE), "service");
    assert_eq!(class("arn:aws:iam::123456789012:role/deployer"), "service");
    let node = path(&fake_node);
    assert_eq!(node["class"], "shared", "{node}");
    assert_eq!(node["beyondNodeGroups"], true);
    assert!(
        node["why"].as_str().unwrap().contains("not a node path"),
        "{node}"
    );
    assert_eq!(class(NODE_ROLE), "node");
    let free_path = path(&free);
    assert_eq!(free_path["class"], "self-declared", "{free_path}");
    assert!(
        free_path["why"]
            .as_str()
            .unwrap()
            .contains("StringEquals sts:RoleSessionName: ${aws:username}"),
        "{free_path}"
    );
    assert_eq!(class(&pinned), "per-person");
    let sso_path = path(&sso_in_aws_auth);
    assert_eq!(sso_path["class"], "per-person", "{sso_path}");
    assert!(
        sso_path["why"]
            .as_str()
            .unwrap()
            .contains("Identity Center"),
        "{sso_path}"
    );
    let api = cluster(API);
    let entry = api["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["principal"] == SHARED_ROLE && p["active"] == true)
        .unwrap()
        .clone();
    assert_eq!(entry["class"], "shared", "{entry}");
    // Shared: the shared role on both clusters, the fake node. Self-declared: the free role,
    // and the admin role (its trust policy as in the mixed state) on both clusters.
    let summary = &json["summary"];
    assert_eq!(summary["sharedBeyondNodeGroups"], 3, "{summary:#}");
    assert_eq!(summary["selfDeclaredBeyondNodeGroups"], 3, "{summary:#}");
    assert!(json["notes"].is_null(), "{}", json["notes"]);

    // The table says why each finding fails.
    let (code, table, _) = cli_with(bed, &config, &env, &["audit"]);
    assert_eq!(code, 3);
    for line in [
        format!("  ! shared {SHARED_ROLE} (mapRoles): a role mapped to a fixed username"),
        format!("  ! shared {fake_node} (mapRoles): looks like a node"),
        format!("  ! self-declared {free} (mapRoles): the username carries the session name, but whoever assumes role eks-session-free chooses"),
    ] {
        assert!(table.contains(&line), "{line}\n{table}");
    }
    println!("{table}");

    // Without the function's role named, the audit says so, and that role is just a role.
    let unset = [env.clone(), vec![("EKS_IAM_SYNC_FUNCTION_ROLE", "")]].concat();
    let (code, out, _) = cli_with(bed, &config, &unset, &["audit", "--output", "json"]);
    assert_eq!(code, 3);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        json["notes"][0]
            .as_str()
            .unwrap()
            .contains("EKS_IAM_SYNC_FUNCTION_ROLE is not set"),
        "{}",
        json["notes"]
    );
    let sync = json["clusters"][0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["principal"] == SYNC_ROLE)
        .unwrap()
        .clone();
    assert_eq!(sync["class"], "shared", "{sync}");
}
