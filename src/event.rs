//! Turns the Lambda input into a trigger: which IAM users to recompute, or everything.
//!
//! Four inputs reach the function, directly or as the body of an SQS message (see
//! [`crate::batch`]): an EventBridge rule forwarding IAM calls recorded by CloudTrail
//! (`AddUserToGroup`, `DeleteUser`, ...), a schedule for the periodic full reconcile, a direct
//! invoke `{"action": "reconcile", "dryRun": true}` by an operator, and the function's own
//! follow-ups `{"action": "followUp", ...}` ([`crate::follow_up`]).
//!
//! The event is only a hint about *whom* to recompute, never a statement of access: the desired
//! state is always read back from IAM. So parsing is lenient, reading only the handful of fields
//! it needs and ignoring the rest (CloudTrail adds fields over time), and it never panics: any
//! other input is an [`EventError`] that says what was received. Names are the exception: a
//! `userName`, `newUserName` or `groupName` IAM could never hold is refused here, before any
//! call ([`crate::names`]). Every [`EventError`] is permanent: the same input fails the same way
//! on every retry.
//!
//! ```
//! use eks_iam_sync::event::{parse, Parsed, Trigger};
//!
//! let input = serde_json::json!({"action": "reconcile", "dryRun": true});
//! let Ok(Parsed::Run(run)) = parse(&input) else { panic!("a direct invoke runs") };
//! assert_eq!(run.trigger, Trigger::All);
//! assert!(run.dry_run);
//! ```

use std::collections::BTreeSet;

use serde_json::Value;

use crate::follow_up::{ClusterFilter, FollowUp};
use crate::names::{self, NameKind};

/// EventBridge's detail-type for CloudTrail-recorded API calls.
const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
/// EventBridge's detail-type for schedule rules.
const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";
/// The operator's direct-invoke action.
const RECONCILE_ACTION: &str = "reconcile";
/// The action of the function's own follow-up messages.
const FOLLOW_UP_ACTION: &str = "followUp";
/// How much of an unrecognised input an error quotes: enough to recognise it in a log line.
const PREVIEW_CHARS: usize = 200;

/// What to recompute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// IAM user names whose access may have changed. A rename carries both the old and the new
    /// name, so the entry under the old one is removed and the new one written.
    Users(BTreeSet<String>),
    /// IAM role names whose roles were created or deleted (Identity Center provisioning a
    /// permission set, or a mapped role recreated): only role entries of these names are
    /// recomputed, and no user is touched.
    Roles(BTreeSet<String>),
    /// Every mapped group's membership is re-read: schedules, operator runs, and group changes
    /// (a deleted or renamed group changes access for members the event does not list).
    All,
}

/// A run the input asks for, with what the logs need to tie it back to its cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub trigger: Trigger,
    /// Compute and report changes without writing them; only a direct invoke can ask for it.
    pub dry_run: bool,
    /// CloudTrail's `detail.eventID` (what one searches CloudTrail for), else EventBridge's `id`.
    pub event_id: Option<String>,
    /// The IAM API call (`AddUserToGroup`), `Scheduled Event`, or the direct-invoke action.
    pub event_name: Option<String>,
    /// Who made the IAM call (`detail.userIdentity.arn`), for the audit trail only.
    pub principal: Option<String>,
    /// Users the event says lost access (`RemoveUserFromGroup`, `DeleteUser`, the old name of a
    /// rename). IAM is eventually consistent: if it still grants one of them, the read may
    /// predate the change, and the run reports the user for a re-check.
    pub revoked: BTreeSet<String>,
    /// Only these clusters (a follow-up for clusters that failed); `None`: every cluster.
    pub clusters: Option<ClusterFilter>,
    /// 0 for an event; `n` for the `n`-th follow-up of one.
    pub attempt: u32,
}

impl Invocation {
    /// A real run for `trigger` on every cluster, with nothing to tie it to a cause.
    pub fn new(trigger: Trigger) -> Self {
        Self {
            trigger,
            dry_run: false,
            event_id: None,
            event_name: None,
            principal: None,
            revoked: BTreeSet::new(),
            clusters: None,
            attempt: 0,
        }
    }
}

/// The outcome of parsing input that is well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Run(Invocation),
    /// Well-formed input that needs no run, such as a failed IAM call (it changed nothing); the
    /// caller logs `reason`.
    Ignored {
        event_id: Option<String>,
        event_name: Option<String>,
        reason: String,
    },
}

/// Input that cannot be turned into a run. Each variant names what was received, so the log
/// line alone tells which rule or caller sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("expected a JSON object (an EventBridge event or {{\"action\": \"reconcile\"}}), received {received}")]
    NotAnObject { received: String },
    #[error("unrecognised input with source {event_source} and detail-type {detail_type}: expected an IAM call via CloudTrail, a Scheduled Event or {{\"action\": \"reconcile\"}}; received {received}")]
    Unrecognized {
        event_source: String,
        detail_type: String,
        received: String,
    },
    #[error("CloudTrail event from detail.eventSource {event_source}, expected iam.amazonaws.com; received {received}")]
    NotIam {
        event_source: String,
        received: String,
    },
    #[error("IAM event {event_name} is not handled; the EventBridge rule should not forward it")]
    Unsupported { event_name: String },
    #[error("{event_name} event lacks {field}")]
    MissingField {
        event_name: String,
        field: &'static str,
    },
    #[error("{field} should be {expected}, received {received}")]
    InvalidField {
        field: &'static str,
        expected: &'static str,
        received: String,
    },
    #[error(
        "unknown action {action}, expected \"reconcile\" (or \"followUp\", the function's own)"
    )]
    UnknownAction { action: String },
    /// A name IAM could never hold; `detail` quotes it (cut, control characters escaped).
    #[error("{field}: {detail}")]
    InvalidName { field: String, detail: String },
    #[error("follow-up message: {detail}; received {received}")]
    InvalidFollowUp { detail: String, received: String },
}

/// Reads the Lambda input; see the module documentation for what is accepted.
pub fn parse(input: &Value) -> Result<Parsed, EventError> {
    let Some(object) = input.as_object() else {
        return Err(EventError::NotAnObject {
            received: preview(input),
        });
    };
    if let Some(action) = object.get("action") {
        if action.as_str() == Some(FOLLOW_UP_ACTION) {
            return follow_up(input);
        }
        return direct_invoke(action, object.get("dryRun"), object.get("cause"));
    }
    let source = input.get("source");
    let detail_type = input.get("detail-type");
    match (
        source.and_then(Value::as_str),
        detail_type.and_then(Value::as_str),
    ) {
        (Some("aws.events"), Some(SCHEDULED_DETAIL_TYPE)) => Ok(Parsed::Run(Invocation {
            event_id: text(input, "/id"),
            event_name: Some(SCHEDULED_DETAIL_TYPE.to_owned()),
            ..Invocation::new(Trigger::All)
        })),
        (Some("aws.iam"), Some(CLOUDTRAIL_DETAIL_TYPE)) => iam_call(input),
        _ => Err(EventError::Unrecognized {
            event_source: describe(source),
            detail_type: describe(detail_type),
            received: preview(input),
        }),
    }
}

/// `{"action": "reconcile", "dryRun": bool}`; `dryRun` may be absent or null (a real run).
/// A `cause` is what template.yaml's MemberAccountChangeRule adds when it turns another
/// account's IAM event into a reconcile: `{"account", "eventName", "eventID"}`, kept for the
/// logs when it is well-formed, ignored otherwise (it selects nothing).
fn direct_invoke(
    action: &Value,
    dry_run: Option<&Value>,
    cause: Option<&Value>,
) -> Result<Parsed, EventError> {
    match action.as_str() {
        Some(RECONCILE_ACTION) => {}
        Some(other) => {
            return Err(EventError::UnknownAction {
                action: preview(&Value::from(other)),
            })
        }
        None => {
            return Err(EventError::InvalidField {
                field: "action",
                expected: "the string \"reconcile\"",
                received: preview(action),
            })
        }
    }
    let dry_run = match dry_run {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => {
            return Err(EventError::InvalidField {
                field: "dryRun",
                expected: "true or false",
                received: preview(other),
            })
        }
    };
    let (event_name, event_id) = match member_account_cause(cause) {
        Some((account, name, id)) => (format!("{RECONCILE_ACTION}:{name}@{account}"), Some(id)),
        None => (RECONCILE_ACTION.to_owned(), None),
    };
    Ok(Parsed::Run(Invocation {
        dry_run,
        event_name: Some(event_name),
        event_id,
        ..Invocation::new(Trigger::All)
    }))
}

/// `(account, eventName, eventID)` of a member-account cause, if each is plausible: an account
/// id, an API name, a CloudTrail event id. Anything else would only put untrusted text in logs.
fn member_account_cause(cause: Option<&Value>) -> Option<(&str, &str, String)> {
    let field = |name| cause?.get(name)?.as_str();
    let account =
        field("account").filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))?;
    let name = field("eventName")
        .filter(|n| (1..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric()))?;
    let id = field("eventID").filter(|i| {
        (1..=64).contains(&i.len()) && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })?;
    Some((account, name, id.to_owned()))
}

/// The function's own follow-up: strict, since only the function writes it, and every user name
/// checked like an event's (a follow-up is only a hint, IAM is read again).
fn follow_up(input: &Value) -> Result<Parsed, EventError> {
    let message: FollowUp =
        serde_json::from_value(input.clone()).map_err(|e| EventError::InvalidFollowUp {
            detail: e.to_string(),
            received: preview(input),
        })?;
    let trigger = match message.users {
        None => Trigger::All,
        Some(users) if users.is_empty() => {
            return Err(EventError::InvalidFollowUp {
                detail: "users is empty (leave it out for every user)".to_owned(),
                received: preview(input),
            })
        }
        Some(users) => {
            for name in &users {
                checked(NameKind::User, "users".to_owned(), name)?;
            }
            Trigger::Users(users)
        }
    };
    Ok(Parsed::Run(Invocation {
        event_id: message.cause,
        event_name: Some(format!("{FOLLOW_UP_ACTION}:{}", message.reason.as_str())),
        clusters: message.clusters,
        attempt: message.attempt,
        ..Invocation::new(trigger)
    }))
}

/// `name` if IAM could hold it as a `kind`, else the error naming `field`.
fn checked(kind: NameKind, field: String, name: &str) -> Result<(), EventError> {
    names::check(kind, name).map_err(|detail| EventError::InvalidName { field, detail })
}

/// An IAM API call recorded by CloudTrail.
fn iam_call(event: &Value) -> Result<Parsed, EventError> {
    let event_source = event.pointer("/detail/eventSource");
    if event_source.and_then(Value::as_str) != Some("iam.amazonaws.com") {
        return Err(EventError::NotIam {
            event_source: describe(event_source),
            received: preview(event),
        });
    }
    let event_name = match present(event, "/detail/eventName") {
        None => {
            return Err(EventError::MissingField {
                event_name: "CloudTrail".to_owned(),
                field: "detail.eventName",
            })
        }
        Some(value) => value.as_str().ok_or_else(|| EventError::InvalidField {
            field: "detail.eventName",
            expected: "a string",
            received: preview(value),
        })?,
    };
    let event_id = text(event, "/detail/eventID").or_else(|| text(event, "/id"));
    if let Some(code) = present(event, "/detail/errorCode") {
        let code = code.as_str().map_or_else(|| preview(code), str::to_owned);
        return Ok(Parsed::Ignored {
            event_id,
            event_name: Some(event_name.to_owned()),
            reason: format!("the {event_name} call failed with {code}, so IAM did not change"),
        });
    }
    let user = |field| user_name(event, event_name, field);
    let mut revoked = BTreeSet::new();
    let trigger = match event_name {
        "AddUserToGroup" | "RemoveUserFromGroup" | "DeleteUser" => {
            let name = user(UserField::UserName)?;
            if event_name != "AddUserToGroup" {
                revoked.insert(name.clone());
            }
            Trigger::Users(BTreeSet::from([name]))
        }
        "UpdateUser" => {
            // A new path alone keeps the name but changes the user's ARN, so recomputing the
            // name covers it; a rename needs both names, and the old one must be gone.
            let old = user(UserField::UserName)?;
            let mut names = BTreeSet::from([old.clone()]);
            if present(event, UserField::NewUserName.pointer()).is_some() {
                let new = user(UserField::NewUserName)?;
                if !new.eq_ignore_ascii_case(&old) {
                    revoked.insert(old);
                }
                names.insert(new);
            }
            Trigger::Users(names)
        }
        "DeleteGroup" | "UpdateGroup" => Trigger::All,
        // IAM Identity Center provisions a permission set into an account with CreateRole (and
        // removes it with DeleteRole), made by sso.amazonaws.com in that account's CloudTrail.
        "CreateRole" | "DeleteRole" => {
            Trigger::Roles(BTreeSet::from([role_name(event, event_name)?]))
        }
        other => {
            // Cut like every other quoted input: a huge name must not flood the log.
            return Err(EventError::Unsupported {
                event_name: crate::names::quote(other),
            });
        }
    };
    for field in GROUP_FIELDS {
        group_name(event, field)?;
    }
    Ok(Parsed::Run(Invocation {
        event_id,
        event_name: Some(event_name.to_owned()),
        principal: text(event, "/detail/userIdentity/arn"),
        revoked,
        ..Invocation::new(trigger)
    }))
}

/// The request parameters that name an IAM group: never needed to pick whom to recompute, but
/// an event carrying a name IAM could not hold is not a real IAM call.
const GROUP_FIELDS: [&str; 2] = ["groupName", "newGroupName"];

/// Checks a group name of the event's request parameters, when present.
fn group_name(event: &Value, field: &str) -> Result<(), EventError> {
    let path = format!("detail.requestParameters.{field}");
    let Some(value) = present(event, &format!("/detail/requestParameters/{field}")) else {
        return Ok(());
    };
    match value.as_str() {
        Some(name) => checked(NameKind::Group, path, name),
        None => Err(EventError::InvalidName {
            field: path,
            detail: format!(
                "expected {}, received {}",
                NameKind::Group.rule(),
                preview(value)
            ),
        }),
    }
}

/// The request parameters that name an IAM user.
#[derive(Clone, Copy)]
enum UserField {
    UserName,
    NewUserName,
}

impl UserField {
    fn pointer(self) -> &'static str {
        match self {
            UserField::UserName => "/detail/requestParameters/userName",
            UserField::NewUserName => "/detail/requestParameters/newUserName",
        }
    }

    fn path(self) -> &'static str {
        match self {
            UserField::UserName => "detail.requestParameters.userName",
            UserField::NewUserName => "detail.requestParameters.newUserName",
        }
    }
}

/// A user name the event must carry: missing (including a null `requestParameters`) or
/// malformed is an error, since without it there is no one to recompute.
fn user_name(event: &Value, event_name: &str, field: UserField) -> Result<String, EventError> {
    let value = present(event, field.pointer()).ok_or_else(|| EventError::MissingField {
        event_name: event_name.to_owned(),
        field: field.path(),
    })?;
    match value.as_str() {
        Some(name) => {
            checked(NameKind::User, field.path().to_owned(), name)?;
            Ok(name.to_owned())
        }
        None => Err(EventError::InvalidField {
            field: field.path(),
            expected: "a non-empty IAM user name",
            received: preview(value),
        }),
    }
}

/// The role name a role event must carry, checked like a user name.
fn role_name(event: &Value, event_name: &str) -> Result<String, EventError> {
    const FIELD: &str = "detail.requestParameters.roleName";
    let value = present(event, "/detail/requestParameters/roleName").ok_or_else(|| {
        EventError::MissingField {
            event_name: event_name.to_owned(),
            field: FIELD,
        }
    })?;
    match value.as_str() {
        Some(name) => {
            checked(NameKind::Role, FIELD.to_owned(), name)?;
            Ok(name.to_owned())
        }
        None => Err(EventError::InvalidField {
            field: FIELD,
            expected: "a non-empty IAM role name",
            received: preview(value),
        }),
    }
}

/// The value at `pointer`, treating JSON null as absent (CloudTrail writes nulls freely).
fn present<'a>(value: &'a Value, pointer: &str) -> Option<&'a Value> {
    value.pointer(pointer).filter(|v| !v.is_null())
}

/// An optional string used only for logs: anything but a string counts as absent.
fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A field's value for an error message, or `missing`.
fn describe(value: Option<&Value>) -> String {
    value.map_or_else(|| "missing".to_owned(), preview)
}

/// Compact JSON cut to [`PREVIEW_CHARS`] characters, so a huge input cannot flood the logs.
fn preview(value: &Value) -> String {
    let json = value.to_string();
    match json.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &json[..cut]),
        None => json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn load(text: &str) -> Value {
        serde_json::from_str(text).expect("test event is JSON")
    }

    fn add_user_to_group() -> Value {
        load(include_str!("../tests/data/events/add-user-to-group.json"))
    }

    /// The reference CloudTrail event turned into another IAM call.
    fn iam_event(event_name: &str, request_parameters: Value) -> Value {
        let mut event = add_user_to_group();
        event["detail"]["eventName"] = json!(event_name);
        event["detail"]["requestParameters"] = request_parameters;
        event
    }

    fn run(input: &Value) -> Invocation {
        match parse(input) {
            Ok(Parsed::Run(invocation)) => invocation,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    fn users(names: &[&str]) -> Trigger {
        Trigger::Users(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn add_user_to_group_recomputes_that_user() {
        assert_eq!(
            run(&add_user_to_group()),
            Invocation {
                trigger: users(&["alice"]),
                dry_run: false,
                event_id: Some("b1c2d3e4-f5a6-4b7c-8d9e-0a1b2c3d4e5f".to_owned()),
                event_name: Some("AddUserToGroup".to_owned()),
                principal: Some(
                    "arn:aws:sts::123456789012:assumed-role/Admin/admin@example.com".to_owned()
                ),
                revoked: BTreeSet::new(),
                clusters: None,
                attempt: 0,
            }
        );
    }

    #[test]
    fn remove_user_from_group_recomputes_that_user() {
        let event = load(include_str!(
            "../tests/data/events/remove-user-from-group.json"
        ));
        let invocation = run(&event);
        assert_eq!(invocation.trigger, users(&["alice"]));
        assert_eq!(
            invocation.event_name.as_deref(),
            Some("RemoveUserFromGroup")
        );
        assert_eq!(invocation.revoked, BTreeSet::from(["alice".to_owned()]));
    }

    #[test]
    fn revoking_events_name_whom_they_revoke() {
        let revoked = |event_name, parameters| run(&iam_event(event_name, parameters)).revoked;
        let alice = BTreeSet::from(["alice".to_owned()]);
        assert_eq!(revoked("DeleteUser", json!({"userName": "alice"})), alice);
        assert!(revoked("AddUserToGroup", json!({"userName": "alice"})).is_empty());
        assert_eq!(
            revoked(
                "UpdateUser",
                json!({"userName": "alice", "newUserName": "alice.smith"})
            ),
            alice
        );
        assert!(revoked(
            "UpdateUser",
            json!({"userName": "alice", "newUserName": "Alice"})
        )
        .is_empty());
        assert!(revoked("DeleteGroup", json!({"groupName": "g"})).is_empty());
    }

    #[test]
    fn a_10000_character_user_name_is_refused_naming_the_field() {
        let name = "a".repeat(10_000);
        let error = parse(&iam_event("AddUserToGroup", json!({"userName": name}))).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("detail.requestParameters.userName: "),
            "{message}"
        );
        assert!(message.contains("10000 characters"), "{message}");
        assert!(message.len() < 400, "{} bytes", message.len());
    }

    #[test]
    fn a_user_name_with_newlines_is_refused_escaped() {
        let error = parse(&iam_event(
            "RemoveUserFromGroup",
            json!({"userName": "alice\nadmin\r\n", "groupName": "eks-developers"}),
        ))
        .unwrap_err();
        let message = error.to_string();
        assert!(
            !message.contains('\n') && !message.contains('\r'),
            "{message}"
        );
        assert!(message.contains("alice\\nadmin\\r\\n"), "{message}");
    }

    #[test]
    fn every_named_field_is_checked() {
        for (event_name, parameters, field) in [
            (
                "UpdateUser",
                json!({"userName": "alice", "newUserName": "bad name"}),
                "detail.requestParameters.newUserName",
            ),
            (
                "AddUserToGroup",
                json!({"userName": "alice", "groupName": "g".repeat(129)}),
                "detail.requestParameters.groupName",
            ),
            (
                "DeleteGroup",
                json!({"groupName": "eks\ndevelopers"}),
                "detail.requestParameters.groupName",
            ),
            (
                "UpdateGroup",
                json!({"groupName": "g", "newGroupName": ""}),
                "detail.requestParameters.newGroupName",
            ),
            (
                "DeleteUser",
                json!({"userName": ""}),
                "detail.requestParameters.userName",
            ),
            (
                "DeleteGroup",
                json!({"groupName": 7}),
                "detail.requestParameters.groupName",
            ),
        ] {
            match parse(&iam_event(event_name, parameters)) {
                Err(EventError::InvalidName { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{event_name}: expected InvalidName for {field}, got {other:?}"),
            }
        }
        // The longest names IAM allows pass.
        let ok = iam_event(
            "AddUserToGroup",
            json!({"userName": "u".repeat(64), "groupName": "g".repeat(128)}),
        );
        run(&ok);
    }

    #[test]
    fn a_follow_up_runs_its_users_on_its_clusters() {
        let input = json!({
            "action": "followUp", "reason": "clustersFailed", "attempt": 3,
            "users": ["alice", "bob"],
            "clusters": [{"name": "prod", "region": "eu-west-1"}],
            "cause": "e1,e2",
        });
        let invocation = run(&input);
        assert_eq!(invocation.trigger, users(&["alice", "bob"]));
        assert_eq!(invocation.attempt, 3);
        assert_eq!(invocation.event_id.as_deref(), Some("e1,e2"));
        assert_eq!(
            invocation.event_name.as_deref(),
            Some("followUp:clustersFailed")
        );
        assert!(invocation.clusters.unwrap().covers("prod", "eu-west-1"));
        assert!(
            invocation.revoked.is_empty(),
            "a re-check schedules no re-check"
        );
    }

    #[test]
    fn a_follow_up_without_users_is_a_full_reconcile() {
        let input = json!({"action": "followUp", "reason": "recheck", "attempt": 1});
        let invocation = run(&input);
        assert_eq!(invocation.trigger, Trigger::All);
        assert_eq!(invocation.clusters, None);
    }

    #[test]
    fn a_malformed_follow_up_is_refused() {
        for input in [
            json!({"action": "followUp", "reason": "because", "attempt": 1}),
            json!({"action": "followUp", "reason": "recheck"}),
            json!({"action": "followUp", "reason": "recheck", "attempt": 1, "users": []}),
            json!({"action": "followUp", "reason": "recheck", "attempt": 1, "extra": 1}),
        ] {
            assert!(
                matches!(parse(&input), Err(EventError::InvalidFollowUp { .. })),
                "{input}"
            );
        }
        let bad_user = json!({"action": "followUp", "reason": "recheck", "attempt": 1, "users": ["ok", "not ok"]});
        match parse(&bad_user) {
            Err(EventError::InvalidName { field, detail }) => {
                assert_eq!(field, "users");
                assert!(detail.contains("\"not ok\""), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn delete_user_recomputes_that_user() {
        let event = load(include_str!("../tests/data/events/delete-user.json"));
        assert_eq!(run(&event).trigger, users(&["alice"]));
    }

    #[test]
    fn scheduled_event_reconciles_everything() {
        let event = load(include_str!(
            "../tests/data/events/scheduled-reconcile.json"
        ));
        let invocation = run(&event);
        assert_eq!(invocation.trigger, Trigger::All);
        assert!(!invocation.dry_run);
        assert_eq!(
            invocation.event_id.as_deref(),
            Some("89d1a02d-5ec7-412e-82f5-13505f849b41")
        );
    }

    #[test]
    fn failed_call_is_ignored_with_its_error_code() {
        let event = load(include_str!(
            "../tests/data/events/add-user-to-group-failed.json"
        ));
        match parse(&event) {
            Ok(Parsed::Ignored {
                event_name, reason, ..
            }) => {
                assert_eq!(event_name.as_deref(), Some("AddUserToGroup"));
                assert!(reason.contains("AccessDenied"), "{reason}");
            }
            other => panic!("expected Ignored, got {other:?}"),
        }
    }

    #[test]
    fn update_user_rename_recomputes_old_and_new_name() {
        let event = iam_event(
            "UpdateUser",
            json!({"userName": "alice", "newUserName": "alice.smith"}),
        );
        assert_eq!(run(&event).trigger, users(&["alice", "alice.smith"]));
    }

    #[test]
    fn update_user_new_path_recomputes_the_user() {
        let event = iam_event(
            "UpdateUser",
            json!({"userName": "alice", "newPath": "/engineering/"}),
        );
        assert_eq!(run(&event).trigger, users(&["alice"]));
    }

    #[test]
    fn role_events_recompute_only_that_role() {
        for file in ["create-role-sso.json", "delete-role-sso.json"] {
            let event = load(
                &std::fs::read_to_string(format!("{}/events/{file}", env!("CARGO_MANIFEST_DIR")))
                    .unwrap(),
            );
            assert_eq!(
                run(&event).trigger,
                Trigger::Roles(BTreeSet::from([
                    "AWSReservedSSO_AdministratorAccess_0123456789abcdef".to_string()
                ]))
            );
        }
        let bad = parse(&iam_event("CreateRole", json!({"roleName": "a b"}))).unwrap_err();
        assert!(
            bad.to_string()
                .contains("detail.requestParameters.roleName"),
            "{bad}"
        );
        let missing = parse(&iam_event("DeleteRole", json!({}))).unwrap_err();
        assert!(missing.to_string().contains("roleName"), "{missing}");
    }

    #[test]
    fn delete_group_reconciles_everything() {
        let event = iam_event("DeleteGroup", json!({"groupName": "eks-developers"}));
        assert_eq!(run(&event).trigger, Trigger::All);
    }

    #[test]
    fn update_group_rename_reconciles_everything() {
        let event = iam_event(
            "UpdateGroup",
            json!({"groupName": "eks-developers", "newGroupName": "eks-platform"}),
        );
        assert_eq!(run(&event).trigger, Trigger::All);
    }

    #[test]
    fn direct_invoke_honours_dry_run() {
        let invocation = run(&json!({"action": "reconcile", "dryRun": true}));
        assert_eq!(invocation.trigger, Trigger::All);
        assert!(invocation.dry_run);
    }

    #[test]
    fn a_member_account_cause_names_the_run_and_selects_nothing() {
        let input = json!({"action": "reconcile", "dryRun": false, "cause": {
            "account": "210987654321", "eventName": "CreateRole", "eventID": "0f1e2d3c-4b5a"}});
        let Ok(Parsed::Run(run)) = parse(&input) else {
            panic!("a reconcile")
        };
        assert_eq!(run.trigger, Trigger::All);
        assert_eq!(
            run.event_name.as_deref(),
            Some("reconcile:CreateRole@210987654321")
        );
        assert_eq!(run.event_id.as_deref(), Some("0f1e2d3c-4b5a"));
        for cause in [
            json!({"account": "x", "eventName": "CreateRole", "eventID": "1"}),
            json!({"account": "210987654321", "eventName": "Create Role\n", "eventID": "1"}),
            json!("CreateRole"),
        ] {
            let input = json!({"action": "reconcile", "cause": cause});
            let Ok(Parsed::Run(run)) = parse(&input) else {
                panic!("still a reconcile")
            };
            assert_eq!(run.event_name.as_deref(), Some("reconcile"));
            assert_eq!(run.event_id, None);
        }
    }

    #[test]
    fn direct_invoke_without_dry_run_is_a_real_run() {
        assert!(!run(&json!({"action": "reconcile"})).dry_run);
        assert!(!run(&json!({"action": "reconcile", "dryRun": null})).dry_run);
    }

    #[test]
    fn direct_invoke_with_non_boolean_dry_run_is_refused() {
        let error = parse(&json!({"action": "reconcile", "dryRun": "yes"})).unwrap_err();
        assert!(
            matches!(
                error,
                EventError::InvalidField {
                    field: "dryRun",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn unknown_action_is_named() {
        let error = parse(&json!({"action": "destroy"})).unwrap_err();
        assert!(error.to_string().contains("destroy"), "{error}");
    }

    #[test]
    fn null_request_parameters_name_the_missing_user_name() {
        let error = parse(&iam_event("AddUserToGroup", Value::Null)).unwrap_err();
        assert_eq!(
            error,
            EventError::MissingField {
                event_name: "AddUserToGroup".to_owned(),
                field: "detail.requestParameters.userName",
            }
        );
    }

    #[test]
    fn non_string_user_name_is_refused() {
        let error = parse(&iam_event("DeleteUser", json!({"userName": 42}))).unwrap_err();
        assert!(error.to_string().contains("userName"), "{error}");
    }

    #[test]
    fn unhandled_iam_call_is_unsupported_by_name() {
        let error = parse(&iam_event("CreateUser", json!({"userName": "bob"}))).unwrap_err();
        assert_eq!(
            error,
            EventError::Unsupported {
                event_name: "\"CreateUser\"".to_owned()
            }
        );
        let huge = "X".repeat(10_000);
        let error = parse(&iam_event(&huge, json!({"userName": "bob"}))).unwrap_err();
        assert!(error.to_string().len() < 300, "the name is cut: {error}");
    }

    #[test]
    fn cloudtrail_event_from_another_service_is_refused() {
        let mut event = add_user_to_group();
        event["detail"]["eventSource"] = json!("s3.amazonaws.com");
        let error = parse(&event).unwrap_err();
        assert!(error.to_string().contains("s3.amazonaws.com"), "{error}");
    }

    #[test]
    fn unknown_event_names_its_source_and_detail_type() {
        let event = json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}});
        let message = parse(&event).unwrap_err().to_string();
        assert!(message.contains("aws.ec2"), "{message}");
        assert!(
            message.contains("EC2 Instance State-change Notification"),
            "{message}"
        );
    }

    #[test]
    fn garbage_is_an_error_quoting_it() {
        for (input, quoted) in [
            (json!(42), "42"),
            (json!("reconcile"), "\"reconcile\""),
            (json!([1]), "[1]"),
            (json!(null), "null"),
        ] {
            let message = parse(&input).unwrap_err().to_string();
            assert!(message.contains(quoted), "{message}");
        }
        let message = parse(&json!({})).unwrap_err().to_string();
        assert!(message.contains("source missing"), "{message}");
    }

    #[test]
    fn long_input_is_quoted_truncated() {
        let message = parse(&json!({"junk": "x".repeat(10_000)}))
            .unwrap_err()
            .to_string();
        assert!(message.len() < 1_000, "{} bytes", message.len());
        assert!(message.ends_with('…'), "{message}");
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".*".prop_map(Value::from),
            // Strings the parser matches on, so the recursion reaches the interesting branches.
            prop::sample::select(vec![
                "aws.iam",
                "aws.events",
                "Scheduled Event",
                "AWS API Call via CloudTrail",
                "iam.amazonaws.com",
                "reconcile",
                "UpdateUser",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "source",
                        "detail-type",
                        "detail",
                        "eventSource",
                        "eventName",
                        "requestParameters",
                        "userName",
                        "newUserName",
                        "errorCode",
                        "action",
                        "dryRun",
                        "id",
                    ])
                    .prop_map(str::to_owned),
                    inner,
                    0..8
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_json(input in arbitrary_json()) {
            let _ = parse(&input);
        }

        #[test]
        fn parse_never_panics_on_a_mangled_iam_event(
            event_name in prop::sample::select(vec![
                "AddUserToGroup", "RemoveUserFromGroup", "DeleteUser", "UpdateUser",
                "DeleteGroup", "UpdateGroup", "CreateUser",
            ]),
            request_parameters in arbitrary_json(),
            error_code in arbitrary_json(),
        ) {
            let mut event = iam_event(event_name, request_parameters);
            event["detail"]["errorCode"] = error_code;
            let _ = parse(&event);
        }
    }
}
