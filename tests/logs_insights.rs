//! The saved Logs Insights queries of template.yaml, checked offline: every QueryDefinition's
//! QueryString parses in the subset eks_testbed::logs_insights models, and runs over a test
//! bed's real audit log (read by the fields Logs Insights discovers in EKS audit events) with
//! the rows the question asks for. The access-entry query reads CloudTrail, which the bed has
//! not, so it runs over sample CloudTrail records (tests/data/cloudtrail-eks-sample.jsonl).
//!
//! `cargo test --test logs_insights -- --nocapture` prints each query's output.

use std::collections::BTreeSet;

use eks_testbed::bootstrap::{role_arn, ADMIN_ROLE};
use eks_testbed::logs_insights::{self, discover, Output, Row, Value};
use eks_testbed::moto::{IssuedKeys, ACCOUNT_ID, REGION};
use eks_testbed::{TestBed, TestBedOptions};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams};

/// The shared admin role of the seed's story: mapped to one fixed username.
const SHARED_ROLE: &str = "eks-cluster-admin";

/// Every `AWS::Logs::QueryDefinition` of template.yaml: (resource name, QueryString).
fn template_queries() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
    let template: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Logs::QueryDefinition")
        .map(|(name, r)| {
            let query = r["Properties"]["QueryString"]
                .as_str()
                .unwrap_or_else(|| panic!("{name:?}: QueryString must be a plain string"));
            (name.as_str().unwrap().to_owned(), query.to_owned())
        })
        .collect()
}

fn query(name: &str) -> logs_insights::Query {
    let (_, text) = template_queries()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("template.yaml has no {name}"));
    logs_insights::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"))
}

#[test]
fn every_saved_query_parses() {
    let queries = template_queries();
    assert_eq!(queries.len(), 5, "{queries:?}");
    for (name, text) in queries {
        if let Err(e) = logs_insights::parse(&text) {
            panic!("{name} does not parse: {e}\n{text}");
        }
    }
}

/// An audit event as a row of `/aws/eks/<cluster>/cluster`: EKS ships each audit event as one
/// log event of a `kube-apiserver-audit-*` stream, timestamped with the event's time.
fn audit_rows(bed: &TestBed, cluster: &str) -> Vec<Row> {
    bed.audit_events(cluster)
        .unwrap()
        .iter()
        .map(|event| {
            let mut row = discover(event);
            let at = event["requestReceivedTimestamp"]
                .as_str()
                .unwrap_or_default();
            row.insert("@timestamp".into(), Value::Str(at.to_owned()));
            row.insert(
                "@log".into(),
                Value::Str(format!("{ACCOUNT_ID}:/aws/eks/{cluster}/cluster")),
            );
            row.insert(
                "@logStream".into(),
                Value::Str("kube-apiserver-audit-0123456789abcdef".into()),
            );
            row.insert("@message".into(), Value::Str(event.to_string()));
            row
        })
        .collect()
}

fn strings(values: Vec<Value>) -> BTreeSet<String> {
    values.iter().map(Value::to_string).collect()
}

/// Maps alice as an IAM user and the shared role to its fixed username, as an operator would.
async fn map_alice_and_the_shared_role(bed: &TestBed, cluster: &str) {
    let api: Api<ConfigMap> = Api::namespaced(bed.admin_client(cluster).unwrap(), "kube-system");
    let mut aws_auth = api.get("aws-auth").await.unwrap();
    let data = aws_auth.data.get_or_insert_with(Default::default);
    let alice = &bed.description().credentials.users["alice"].arn;
    data.insert(
        "mapUsers".into(),
        format!("- userarn: {alice}\n  username: alice\n  groups:\n    - developers\n"),
    );
    let roles = data.entry("mapRoles".into()).or_default();
    roles.push_str(&format!(
        "- rolearn: {}\n  username: {SHARED_ROLE}\n  groups:\n    - developers\n",
        role_arn(ACCOUNT_ID, SHARED_ROLE)
    ));
    api.replace("aws-auth", &PostParams::default(), &aws_auth)
        .await
        .unwrap();
}

/// Lists pods with a token the AWS CLI makes for `keys`.
async fn list_pods_as(bed: &TestBed, cluster: &str, keys: &IssuedKeys) {
    let token = eks_testbed::awscli::get_token(keys, cluster, REGION, None).unwrap();
    let api: Api<Pod> = Api::namespaced(bed.client_with_token(cluster, &token).unwrap(), "default");
    api.list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", keys.arn));
}

fn show(name: &str, output: &Output) {
    println!("==> {name}\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saved_queries_answer_over_a_real_audit_log() {
    let bed = TestBed::start(TestBedOptions {
        clusters: 1,
        name_prefix: "insights".into(),
    })
    .await
    .unwrap();
    let cluster = bed.cluster_names()[0].clone();
    let seeder = bed.seeder();
    seeder.create_role(SHARED_ROLE).await.unwrap();
    map_alice_and_the_shared_role(&bed, &cluster).await;
    bed.wait_until_group_can_list_pods(&cluster, "developers")
        .await
        .unwrap();
    let alice = bed.description().credentials.users["alice"].clone();
    let admin = role_arn(ACCOUNT_ID, ADMIN_ROLE);
    let shared = role_arn(ACCOUNT_ID, SHARED_ROLE);
    // alice as herself, and as the per-person admin role (as `token --role-arn` assumes it);
    // bob through the admin role as an SSO-named session; carol and dave through the shared
    // role, whose username names neither.
    list_pods_as(&bed, &cluster, &alice).await;
    let sessions = [
        (&admin, "alice"),
        (&admin, "bob@example.com"),
        (&shared, "carol"),
        (&shared, "dave"),
    ];
    for (role, session) in sessions {
        let keys = seeder.assume_role(role, session).await.unwrap();
        list_pods_as(&bed, &cluster, &keys).await;
    }
    let rows = audit_rows(&bed, &cluster);

    let person = logs_insights::run(&query("PersonActivityQuery"), &rows);
    show("PersonActivityQuery (alice)", &person);
    assert_eq!(
        strings(person.column("user.username")),
        BTreeSet::from(["alice".into(), "admin:alice".into()])
    );
    assert!(person.column("requestURI").iter().any(|uri| uri
        .to_string()
        .starts_with("/api/v1/namespaces/default/pods")));

    let detected = logs_insights::run(&query("SharedPathDetectedQuery"), &rows);
    show("SharedPathDetectedQuery", &detected);
    assert_eq!(
        strings(detected.column("user.username")),
        BTreeSet::from([SHARED_ROLE.to_owned()]),
        "only the shared role; admin:alice and admin:bob-example.com name their person"
    );
    assert_eq!(detected.column("sessions"), vec![Value::Num(2.0)]);
    assert_eq!(
        detected.column("user.extra.canonicalArn.0"),
        vec![Value::Str(shared.clone())]
    );

    let through_shared = logs_insights::run(&query("SharedPathRequestsQuery"), &rows);
    show("SharedPathRequestsQuery", &through_shared);
    assert_eq!(
        strings(through_shared.column("user.extra.sessionName.0")),
        BTreeSet::from(["carol".into(), "dave".into()]),
        "the session names are all that tells the people behind the shared role apart"
    );

    let aws_auth = logs_insights::run(&query("AwsAuthChangesQuery"), &rows);
    show("AwsAuthChangesQuery", &aws_auth);
    assert!(aws_auth.rows.iter().any(|r| {
        r.contains(&Value::Str("update".into()))
            && r.contains(&Value::Str("eks-testbed-admin".into()))
    }));
    assert!(strings(aws_auth.column("verb")).is_subset(&BTreeSet::from([
        "create".into(),
        "update".into(),
        "patch".into(),
        "delete".into()
    ])));
}

#[test]
fn the_access_entry_query_finds_who_changed_entries() {
    let sample = include_str!("data/cloudtrail-eks-sample.jsonl");
    let rows: Vec<Row> = sample
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let mut row = discover(&record);
            row.insert("@timestamp".into(), row["eventTime"].clone());
            row
        })
        .collect();
    let changes = logs_insights::run(&query("AccessEntryChangesQuery"), &rows);
    show(
        "AccessEntryChangesQuery (sample CloudTrail records)",
        &changes,
    );
    assert_eq!(
        changes.column("eventName"),
        [
            "DeleteAccessEntry",
            "AssociateAccessPolicy",
            "CreateAccessEntry"
        ]
        .map(|n| Value::Str(n.into()))
        .to_vec(),
        "newest first, the DescribeCluster read left out"
    );
    assert!(changes.column("userIdentity.arn").iter().all(|arn| arn
        .to_string()
        .starts_with("arn:aws:sts::111122223333:assumed-role/")));
}
