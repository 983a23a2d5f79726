//! The metric lines the function prints are valid embedded-metric-format documents: checked
//! against the JSON schema AWS publishes in "Specification: Embedded metric format"
//! (`tests/data/emf-schema.json`, validated by Python's `jsonschema` from the test bed's venv,
//! which cfn-lint brings), plus the rules the specification states in prose: each metric a
//! directive names is a number at the root, each dimension it names a string there.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use eks_iam_sync::metrics;
use eks_iam_sync::report::{ClusterReport, Outcome, Report};
use serde_json::Value;

const VALIDATOR: &str = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft7Validator(schema)
bad = 0
for n, line in enumerate(sys.stdin, 1):
    doc = json.loads(line)
    problems = [e.message for e in validator.iter_errors(doc)]
    for directive in doc.get("_aws", {}).get("CloudWatchMetrics", []):
        if len(directive["Metrics"]) > 100:
            problems.append("more than 100 metrics in a directive")
        for metric in directive["Metrics"]:
            value = doc.get(metric["Name"])
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"metric {metric['Name']} is not a number at the root")
        for dimension_set in directive["Dimensions"]:
            for name in dimension_set:
                if not isinstance(doc.get(name), str):
                    problems.append(f"dimension {name} is not a string at the root")
    for p in problems:
        print(f"line {n}: {p}")
    bad += bool(problems)
print(f"{n - bad} valid, {bad} invalid")
sys.exit(1 if bad else 0)
"#;

fn python() -> String {
    match std::env::var("EKS_TESTBED_VENV") {
        Ok(venv) => format!("{venv}/bin/python"),
        Err(_) => "python3".into(),
    }
}

/// Runs the validator over `lines`: its exit status and output.
fn validate(lines: &[String]) -> (bool, String) {
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/emf-schema.json");
    let mut child = Command::new(python())
        .args(["-c", VALIDATOR, schema])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python (scripts/testbed-setup makes the venv; source its env file)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn cluster(name: &str, outcome: Outcome) -> ClusterReport {
    ClusterReport::new(name, "eu-west-1", outcome)
}

fn report(trigger: &str, clusters: Vec<ClusterReport>) -> Report {
    Report {
        event_id: Some("0e4e2b4e-1234-4f6c-9f3e-2c1d5e6f7a8b".into()),
        event_name: Some("AddUserToGroup".into()),
        trigger: trigger.into(),
        dry_run: false,
        ignored: None,
        iam_rereads: 1,
        recheck: Vec::new(),
        clusters,
    }
}

/// Reports of every kind a run ends with: every outcome, zero counts, a failed full
/// reconcile, a role run, an empty fleet.
fn reports() -> Vec<Report> {
    let mut updated = cluster("prod", Outcome::Updated);
    updated.added = 3;
    updated.changed = 1;
    updated.retries = 2;
    let mut conflict = cluster("dev", Outcome::Conflict);
    conflict.conflicts = vec!["arn:aws:iam::123456789012:user/bob".into()];
    let mut retired = cluster("both", Outcome::Updated);
    retired.removed = 1;
    retired.retired = 4;
    vec![
        report(
            "all",
            vec![
                updated,
                conflict,
                retired,
                cluster("gone", Outcome::Skipped),
                cluster("same", Outcome::Unchanged),
            ],
        ),
        report(
            "all",
            vec![cluster("down", Outcome::Failed).with_reason("timeout")],
        ),
        report("alice", vec![cluster("prod", Outcome::Unchanged)]),
        report("roles:AWSReservedSSO_Admin_0a1b", vec![]),
        report("all", vec![]),
    ]
}

fn lines() -> Vec<String> {
    reports()
        .iter()
        .flat_map(|r| {
            metrics::documents(
                r,
                Duration::from_millis(812),
                metrics::DEFAULT_NAMESPACE,
                1_764_700_000_000,
            )
        })
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn every_metric_line_is_a_valid_embedded_metric_format_document() {
    let lines = lines();
    assert_eq!(
        lines.len(),
        5 * 6,
        "a run line and five outcome lines per run"
    );
    assert!(
        lines.iter().all(|l| !l.contains('\n')),
        "one document a line"
    );
    let (ok, out) = validate(&lines);
    assert!(ok, "{out}");
    assert!(out.contains("30 valid, 0 invalid"), "{out}");
}

#[test]
fn the_validator_rejects_what_the_specification_forbids() {
    let good: Value = serde_json::from_str(&lines()[0]).unwrap();
    let mut bad_unit = good.clone();
    bad_unit["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Millis".into();
    let mut missing_value = good.clone();
    missing_value.as_object_mut().unwrap().remove("Runs");
    let mut no_timestamp = good;
    no_timestamp["_aws"]
        .as_object_mut()
        .unwrap()
        .remove("Timestamp");
    for doc in [bad_unit, missing_value, no_timestamp] {
        let (ok, out) = validate(&[doc.to_string()]);
        assert!(!ok, "accepted: {doc}\n{out}");
    }
}
