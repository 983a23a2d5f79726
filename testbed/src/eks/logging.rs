//! Control-plane logging: what DescribeCluster reports in `logging`, and UpdateClusterConfig
//! changing it.
//!
//! Shapes follow the EKS API Reference:
//! - `Logging`: `{"clusterLogging": [LogSetup]}`, `LogSetup`: `{"types": [...], "enabled": bool}`,
//!   the types `api`, `audit`, `authenticator`, `controllerManager`, `scheduler`. A new cluster
//!   exports none ("By default, cluster control plane logs aren't exported to CloudWatch Logs",
//!   `UpdateClusterConfig`), which EKS reports as one setup with every type and
//!   `enabled: false`; the emulator reports the enabled types in one setup and the others in a
//!   second, as EKS does after an update.
//! - `UpdateClusterConfig`: `POST /clusters/{name}/update-config`, answering `{"update": Update}`
//!   with `id`, `status` (`InProgress`), `type` (`LoggingUpdate`), `params`
//!   (`[{"type": "ClusterLogging", "value": <the new clusterLogging as JSON text>}]`),
//!   `createdAt` and `errors`. Types a request does not name keep their state. Errors:
//!   `ResourceNotFoundException` for an unknown cluster, `InvalidParameterException` for an
//!   unknown log type, a type both enabled and disabled, or an update that changes nothing
//!   (EKS: "No changes needed for the logging config provided").
//!
//! Only logging updates are emulated; a request for another kind of update (endpoint access,
//! authentication mode, ...) is refused with `InvalidParameterException` saying so. The update
//! takes effect at once (EKS takes minutes), so `ResourceInUseException` (another update in
//! progress) never arises here.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::ops::parse_body;
use super::{epoch_seconds_now, EmulatorState, Scope};

/// Every control-plane log type, in EKS's order.
pub const LOG_TYPES: [&str; 5] = [
    "api",
    "audit",
    "authenticator",
    "controllerManager",
    "scheduler",
];

/// The `logging` member of DescribeCluster's `cluster`.
pub(super) fn logging_json(enabled: &BTreeSet<String>) -> Value {
    let (on, off): (Vec<&str>, Vec<&str>) = LOG_TYPES.iter().partition(|t| enabled.contains(**t));
    let mut setups = Vec::new();
    if !on.is_empty() {
        setups.push(json!({"types": on, "enabled": true}));
    }
    if !off.is_empty() {
        setups.push(json!({"types": off, "enabled": false}));
    }
    json!({ "clusterLogging": setups })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    logging: Option<LoggingBody>,
    #[serde(flatten)]
    others: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoggingBody {
    #[serde(default)]
    cluster_logging: Vec<SetupBody>,
}

#[derive(Deserialize)]
struct SetupBody {
    #[serde(default)]
    types: Vec<String>,
    enabled: Option<bool>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter(message.into())
}

/// The enabled types after applying `setups` to `current`.
fn apply(current: &BTreeSet<String>, setups: &[SetupBody]) -> Result<BTreeSet<String>, ApiError> {
    let mut next = current.clone();
    let mut named = BTreeSet::new();
    for setup in setups {
        let enabled = setup.enabled.unwrap_or(false);
        for t in &setup.types {
            if !LOG_TYPES.contains(&t.as_str()) {
                return Err(invalid(format!(
                    "The log type {t} is not valid; valid types are {}.",
                    LOG_TYPES.join(", ")
                )));
            }
            if !named.insert(t.clone()) {
                return Err(invalid(format!(
                    "The log type {t} is specified more than once."
                )));
            }
            if enabled {
                next.insert(t.clone());
            } else {
                next.remove(t);
            }
        }
    }
    if next == *current {
        return Err(invalid("No changes needed for the logging config provided"));
    }
    Ok(next)
}

/// `POST /clusters/{name}/update-config`.
pub(super) fn update_config_op(
    state: &mut EmulatorState,
    scope: &Scope,
    cluster: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let body = parse_body::<UpdateBody>(body)?;
    let seq = state.next_entry_seq();
    let record = state.cluster_mut(scope, cluster)?;
    let others: Vec<&String> = body
        .others
        .keys()
        .filter(|k| k.as_str() != "clientRequestToken")
        .collect();
    let logging = match (body.logging, others.as_slice()) {
        (Some(_), [_, ..]) => {
            return Err(invalid(
                "Only one type of update can be allowed per request.",
            ))
        }
        (None, []) => return Err(invalid(
            "The request must contain an update: logging, resourcesVpcConfig, accessConfig, ...",
        )),
        (None, [first, ..]) => {
            return Err(invalid(format!(
                "The EKS emulator only updates logging, not {first}."
            )))
        }
        (Some(logging), []) => logging,
    };
    let enabled = apply(&record.logging, &logging.cluster_logging)?;
    record.logging = enabled.clone();
    let new_logging = logging_json(&enabled)["clusterLogging"].to_string();
    let digest = hex::encode(Sha256::digest(format!(
        "{}/update/{seq}",
        record.spec.arn()
    )));
    let id = format!(
        "{}-{}-{}-{}-{}",
        &digest[..8],
        &digest[8..12],
        &digest[12..16],
        &digest[16..20],
        &digest[20..32]
    );
    Ok(json!({
        "update": {
            "id": id,
            "status": "InProgress",
            "type": "LoggingUpdate",
            "params": [{"type": "ClusterLogging", "value": new_logging}],
            "createdAt": epoch_seconds_now(),
            "errors": [],
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(types: &[&str], enabled: bool) -> SetupBody {
        SetupBody {
            types: types.iter().map(|t| t.to_string()).collect(),
            enabled: Some(enabled),
        }
    }

    #[test]
    fn updates_change_only_the_named_types_and_refuse_no_ops_and_bad_types() {
        let current: BTreeSet<String> = ["api".to_string()].into();
        let next = apply(&current, &[setup(&["audit", "authenticator"], true)]).unwrap();
        assert_eq!(
            next.iter().map(String::as_str).collect::<Vec<_>>(),
            ["api", "audit", "authenticator"]
        );
        for bad in [
            vec![setup(&["api"], true)],
            vec![setup(&["bogus"], true)],
            vec![setup(&["audit"], true), setup(&["audit"], false)],
            vec![],
        ] {
            assert!(matches!(
                apply(&current, &bad),
                Err(ApiError::InvalidParameter(_))
            ));
        }
    }

    #[test]
    fn a_new_cluster_reports_every_type_disabled() {
        assert_eq!(
            logging_json(&BTreeSet::new()),
            json!({"clusterLogging": [{"types": LOG_TYPES, "enabled": false}]})
        );
    }
}
