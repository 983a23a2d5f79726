//! One invocation: parse the input, delegate the run, decide whether the invocation failed.
//!
//! The Lambda runtime and the CLI's `handle` command both call [`handle`], so a sample event
//! behaves the same locally as in AWS.

use std::time::Instant;

use crate::event::{self, EventError, Parsed};
use crate::report::Report;
use crate::sync::{self, App, RunError};

/// Why an invocation failed. Lambda retries these and finally sends them to the failure
/// destination, which is what a failed cluster needs.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The input is not something this function handles; nothing was written.
    #[error("unsupported input, nothing was written: {0}")]
    Event(#[from] EventError),
    #[error(transparent)]
    Run(#[from] RunError),
    /// Some clusters failed; the others were brought in step. The report says which.
    #[error("{}", .0.failure_summary().unwrap_or_default())]
    ClustersFailed(Box<Report>),
}

/// [`handle_within`] with the default deadline, [`sync::DEFAULT_TIMEOUT`] from now.
pub async fn handle(app: &App, input: &serde_json::Value) -> Result<Report, HandleError> {
    handle_within(app, input, Instant::now() + sync::DEFAULT_TIMEOUT).await
}

/// Handles one input and returns the per-cluster report, finishing before `deadline` (the
/// Lambda context's deadline, less a margin to return the result); any failed cluster makes it
/// an error that still carries the whole report.
pub async fn handle_within(
    app: &App,
    input: &serde_json::Value,
    deadline: Instant,
) -> Result<Report, HandleError> {
    let invocation = match event::parse(input)? {
        Parsed::Run(invocation) => invocation,
        Parsed::Ignored {
            event_id,
            event_name,
            reason,
        } => {
            tracing::info!(
                event_id = event_id.as_deref().unwrap_or(""),
                event_name = event_name.as_deref().unwrap_or(""),
                outcome = "ignored",
                reason = %reason,
                "event ignored"
            );
            return Ok(Report {
                event_id,
                event_name,
                trigger: "none".into(),
                dry_run: false,
                ignored: Some(reason),
                iam_rereads: 0,
                clusters: Vec::new(),
            });
        }
    };
    let report = sync::run(app, &invocation, deadline).await?;
    if report.failure_summary().is_some() {
        return Err(HandleError::ClustersFailed(Box::new(report)));
    }
    Ok(report)
}
