//! IAM events forwarded from a member account (deploy/member-account-events.yaml) reach the
//! function as what template.yaml's MemberAccountChangeRule makes of them: a full reconcile.
//! The transformer is read from template.yaml and applied to the sample in events/, so the
//! template and this test cannot drift apart.

use eks_iam_sync::event::{parse, Parsed, Trigger};

fn yaml(path: &str) -> serde_yaml_ng::Value {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What EventBridge's input transformer of `rule` sends for `event`: each `<name>` of the
/// template replaced by the value at its `$.a.b` path (all strings here).
fn transform(rule: &serde_yaml_ng::Value, event: &serde_json::Value) -> serde_json::Value {
    let transformer = &rule["Properties"]["Targets"][0]["InputTransformer"];
    let mut text = transformer["InputTemplate"].as_str().unwrap().to_owned();
    for (name, path) in transformer["InputPathsMap"].as_mapping().unwrap() {
        let pointer = path
            .as_str()
            .unwrap()
            .trim_start_matches('$')
            .replace('.', "/");
        let value = event.pointer(&pointer).and_then(|v| v.as_str()).unwrap();
        text = text.replace(&format!("<{}>", name.as_str().unwrap()), value);
    }
    serde_json::from_str(&text).expect("the input template makes JSON")
}

#[test]
fn a_member_account_event_is_a_full_reconcile() {
    let template = yaml("template.yaml");
    let rule = &template["Resources"]["MemberAccountChangeRule"];
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/member-account-create-role.json"
    );
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    assert_eq!(
        event["account"], "210987654321",
        "the sample is another account's"
    );

    let message = transform(rule, &event);
    assert_eq!(message["cause"]["account"], "210987654321");
    assert_eq!(message["cause"]["eventID"], event["detail"]["eventID"]);
    let Ok(Parsed::Run(run)) = parse(&message) else {
        panic!("the forwarded message is not a run: {message}")
    };
    assert_eq!(run.trigger, Trigger::All);
    assert!(!run.dry_run, "a forwarded event makes a real run");
    // The logs tie the run to the member account's event.
    assert_eq!(
        run.event_name.as_deref(),
        Some("reconcile:CreateRole@210987654321")
    );
    assert_eq!(
        run.event_id.as_ref(),
        event["detail"]["eventID"]
            .as_str()
            .map(str::to_owned)
            .as_ref()
    );
}

#[test]
fn two_member_events_never_deduplicate_into_one() {
    // The event queue is FIFO with content-based deduplication: identical bodies within five
    // minutes would be dropped, and with them a change made after the first run read IAM.
    let template = yaml("template.yaml");
    let rule = &template["Resources"]["MemberAccountChangeRule"];
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/member-account-create-role.json"
    );
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    let mut second = first.clone();
    second["detail"]["eventID"] = "another-event".into();
    assert_ne!(transform(rule, &first), transform(rule, &second));
}
