//! Event parsing: `event::parse` on any JSON value.
//!
//! The input is JSON text when it parses as such (the seeds are real EventBridge events, so the
//! mutations stay close to them); anything else is turned into a JSON value whose keys and
//! strings come mostly from the fields the parser looks at, so the nested branches are reached
//! without the fuzzer having to spell `detail.requestParameters.userName` by chance.
//!
//! Invariants: no panic; every error renders; a run names at least one user, each non-empty,
//! and an ignored event gives a reason.
#![no_main]

use arbitrary::{Result, Unstructured};
use eks_iam_sync::event::{parse, Parsed, Trigger};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// Words the parser matches on: object keys and the string values it compares with.
const WORDS: [&str; 26] = [
    "source",
    "detail-type",
    "detail",
    "eventSource",
    "eventName",
    "eventID",
    "requestParameters",
    "userName",
    "newUserName",
    "groupName",
    "errorCode",
    "userIdentity",
    "arn",
    "action",
    "dryRun",
    "id",
    "aws.iam",
    "aws.events",
    "Scheduled Event",
    "AWS API Call via CloudTrail",
    "iam.amazonaws.com",
    "reconcile",
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "DeleteUser",
    "UpdateUser",
];

fn word(u: &mut Unstructured) -> Result<String> {
    if u.ratio(3, 4)? {
        Ok((*u.choose(&WORDS)?).to_owned())
    } else {
        u.arbitrary()
    }
}

fn value(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 5 } else { 7 };
    Ok(match u.choose_index(kinds)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        4 => Value::String(word(u)?),
        5 => {
            let mut items = Vec::new();
            u.arbitrary_loop(None, Some(4), |u| {
                items.push(value(u, depth - 1)?);
                Ok(std::ops::ControlFlow::Continue(()))
            })?;
            Value::Array(items)
        }
        _ => {
            let mut map = Map::new();
            u.arbitrary_loop(None, Some(8), |u| {
                map.insert(word(u)?, value(u, depth - 1)?);
                Ok(std::ops::ControlFlow::Continue(()))
            })?;
            Value::Object(map)
        }
    })
}

fn input(data: &[u8]) -> Option<Value> {
    if let Ok(json) = serde_json::from_slice(data) {
        return Some(json);
    }
    value(&mut Unstructured::new(data), 5).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(event) = input(data) else { return };
    match parse(&event) {
        Ok(Parsed::Run(run)) => {
            if let Trigger::Users(names) = &run.trigger {
                assert!(!names.is_empty(), "a user run names nobody: {run:?}");
                assert!(
                    names.iter().all(|name| !name.is_empty()),
                    "empty user name: {run:?}"
                );
            }
        }
        Ok(Parsed::Ignored { reason, .. }) => assert!(!reason.is_empty()),
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty());
        }
    }
});
