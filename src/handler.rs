//! One invocation: parse the input, delegate the run, decide what failed and what is left for
//! later.
//!
//! Three entry points share the same run:
//! - [`handle`]: one input (an EventBridge event, the schedule, a direct invoke), for the CLI's
//!   `handle` and `reconcile` and for a direct Lambda invoke. Any failed cluster is an error.
//! - [`handle_batch`]: an SQS batch from the event source mappings. One run over the union of
//!   its messages; what fails is retried through follow-ups ([`crate::follow_up`]) rather than
//!   by failing the batch, so one cluster that stays down does not stall the FIFO event queue.
//! - [`handle_audit`]: the direct invoke `{"action":"audit"}`, which reads and reports only.
//! - [`lambda`]: what the Lambda runtime calls; it picks one of the two and decides what is
//!   retried: an input that can never succeed is logged as an error and dropped, not retried.

use std::time::Instant;

use serde_json::Value;

use crate::audit;
use crate::batch::{self, BatchResponse, Dropped};
use crate::event::{self, EventError, Invocation, Parsed};
use crate::follow_up::{self, Planned};
use crate::queue::{FollowUps, QueueError};
use crate::report::Report;
use crate::sync::{self, App, RunError};

/// Why an invocation failed. Lambda retries these and finally sends them to the failure
/// destination, which is what a failed cluster needs.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The input is not something this function handles (or names someone IAM could never
    /// hold); nothing was read or written. Permanent: the Lambda drops it.
    #[error("unsupported input, nothing was written: {0}")]
    Event(#[from] EventError),
    #[error(transparent)]
    Run(#[from] RunError),
    /// Some clusters failed; the others were brought in step. The report says which.
    #[error("{}", .0.failure_summary().unwrap_or_default())]
    ClustersFailed(Box<Report>),
    /// The run succeeded but its re-check could not be queued; retrying redoes both.
    #[error(transparent)]
    FollowUp(#[from] QueueError),
}

/// Handles one input and returns the per-cluster report; any failed cluster makes it an error
/// that still carries the whole report.
pub async fn handle(app: &App, input: &Value) -> Result<Report, HandleError> {
    handle_within(app, input, Instant::now() + sync::DEFAULT_TIMEOUT).await
}

/// [`handle`], finishing before `deadline` (the Lambda context's deadline, less a margin to
/// return the result): every cluster is cut off there.
pub async fn handle_within(
    app: &App,
    input: &Value,
    deadline: Instant,
) -> Result<Report, HandleError> {
    let invocation = match event::parse(input)? {
        Parsed::Run(invocation) => invocation,
        Parsed::Ignored {
            event_id,
            event_name,
            reason,
        } => {
            log_ignored(None, event_id.as_deref(), event_name.as_deref(), &reason);
            return Ok(Report {
                event_id,
                event_name,
                trigger: "none".into(),
                dry_run: false,
                ignored: Some(reason),
                iam_rereads: 0,
                recheck: Vec::new(),
                clusters: Vec::new(),
            });
        }
    };
    let report = run(app, &invocation, deadline).await?;
    if report.failure_summary().is_some() {
        return Err(HandleError::ClustersFailed(Box::new(report)));
    }
    Ok(report)
}

/// What one SQS batch came to.
#[derive(Debug)]
pub struct BatchOutcome {
    /// What Lambda gets: the messages to deliver again.
    pub response: BatchResponse,
    /// The run's report; `None` when no message asked for a run, or it failed before any
    /// cluster (then every member is in `response`).
    pub report: Option<Report>,
    /// The follow-ups sent (to the retry queue, or to the dead-letter queue).
    pub follow_ups: Vec<Planned>,
    /// Messages dropped for good.
    pub dropped: Vec<Dropped>,
}

/// Handles an SQS batch as one run over the union of its messages.
///
/// - A message that can never succeed is logged as an error and dropped (not in the response).
/// - The run failing before any cluster (IAM unreadable) fails every member: nothing was done.
/// - Failed clusters become one follow-up for just them, and still-granted users of a revoking
///   event a delayed re-check; the batch itself succeeds, so the FIFO queue keeps flowing.
///   Without `follow_ups`, or when sending one fails, every member fails instead: nothing is
///   lost either way.
pub async fn handle_batch(
    app: &App,
    follow_ups: Option<&FollowUps>,
    input: &Value,
    deadline: Instant,
) -> BatchOutcome {
    let read = batch::read(input);
    for dropped in &read.dropped {
        tracing::error!(
            message_id = %dropped.message_id,
            outcome = "rejected",
            error = %dropped.error,
            "message dropped: it can never succeed, so it is not retried"
        );
    }
    for ignored in &read.ignored {
        log_ignored(
            Some(&ignored.message_id),
            ignored.event_id.as_deref(),
            ignored.event_name.as_deref(),
            &ignored.reason,
        );
    }
    let mut outcome = BatchOutcome {
        response: BatchResponse::default(),
        report: None,
        follow_ups: Vec::new(),
        dropped: read.dropped,
    };
    let Some(invocation) = read.invocation else {
        return outcome;
    };
    let retry_all = |outcome: &mut BatchOutcome| {
        outcome.response = BatchResponse::failing(&read.members);
    };
    let report = match run(app, &invocation, deadline).await {
        Ok(report) => report,
        Err(e) => {
            tracing::error!(
                event_id = invocation.event_id.as_deref().unwrap_or(""),
                messages = read.members.len(),
                error = %e,
                "run failed before touching any cluster; every message is delivered again"
            );
            retry_all(&mut outcome);
            return outcome;
        }
    };
    let planned = match follow_ups {
        Some(follow_ups) => follow_up::plan(&invocation, &report, &follow_ups.policy),
        None => Vec::new(),
    };
    if follow_ups.is_none() && report.failure_summary().is_some() {
        tracing::error!(
            error = %report.failure_summary().unwrap_or_default(),
            "no retry queue configured; every message is delivered again"
        );
        retry_all(&mut outcome);
    }
    if let Some(follow_ups) = follow_ups {
        if let Err(e) = send_all(follow_ups, &invocation, &planned).await {
            tracing::error!(error = %e, "every message is delivered again instead");
            retry_all(&mut outcome);
        } else {
            outcome.follow_ups = planned;
        }
    }
    outcome.report = Some(report);
    outcome
}

/// What the Lambda runtime calls: an SQS batch, or one direct input.
///
/// A direct input that can never succeed is logged as an error and answered with success and
/// `{"rejected": ...}`, so that an asynchronous invoke is not retried. A failed cluster is an
/// error (Lambda retries the invoke, then its failure destination takes it).
pub async fn lambda(
    app: &App,
    follow_ups: Option<&FollowUps>,
    input: &Value,
    deadline: Instant,
) -> Result<Value, HandleError> {
    let started = Instant::now();
    if batch::is_sqs_batch(input) {
        let outcome = handle_batch(app, follow_ups, input, deadline).await;
        if let Some(report) = &outcome.report {
            emit_metrics(report, started);
        }
        return Ok(serde_json::to_value(outcome.response).expect("a batch response serialises"));
    }
    if let Some(audit) = handle_audit(app, input, deadline).await {
        return Ok(audit);
    }
    let result = handle_within(app, input, deadline).await;
    match &result {
        Ok(report) => emit_metrics(report, started),
        Err(HandleError::ClustersFailed(report)) => emit_metrics(report, started),
        Err(_) => {}
    }
    match result {
        Ok(report) => {
            // Only re-checks can be planned here: a failed cluster is an error.
            if let (Some(follow_ups), Ok(Parsed::Run(invocation))) =
                (follow_ups, event::parse(input))
            {
                let planned = follow_up::plan(&invocation, &report, &follow_ups.policy);
                send_all(follow_ups, &invocation, &planned).await?;
            }
            Ok(serde_json::to_value(report).expect("a report serialises"))
        }
        Err(HandleError::Event(e)) => {
            tracing::error!(outcome = "rejected", error = %e, "input rejected: it can never succeed, so it is not retried");
            Ok(serde_json::json!({ "rejected": e.to_string() }))
        }
        Err(e) => Err(e),
    }
}

/// Prints the run's metrics (embedded metric format) on stdout, one JSON document a line, where
/// Lambda hands them to CloudWatch Logs, which extracts the metrics.
fn emit_metrics(report: &Report, started: Instant) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let namespace = crate::metrics::namespace_from_env();
    for document in crate::metrics::documents(report, started.elapsed(), &namespace, now_ms) {
        println!("{document}");
    }
}

/// The direct invoke `{"action":"audit","fixLogging":bool}`: the audit's JSON report
/// (findings and unreadable clusters are in its `exitCode`, not an invocation error: the audit
/// itself succeeded, and retrying it would only repeat it), or `{"rejected": ...}` for a
/// malformed request. `None` when `input` is not an audit request.
pub async fn handle_audit(app: &App, input: &Value, deadline: Instant) -> Option<Value> {
    let options = match audit::request(input)? {
        Ok(options) if options.fix_logging && app.config.fix_logging_refused => {
            let e = format!(
                "audit: fixLogging is not allowed for this function ({}=false): deploy the stack with AllowFixLogging=true, or run `eks-iam-sync audit --fix-logging` with your own credentials",
                crate::config::ENV_ALLOW_FIX_LOGGING
            );
            tracing::error!(outcome = "rejected", error = %e, "audit request rejected");
            return Some(serde_json::json!({ "rejected": e }));
        }
        Ok(options) => options,
        Err(e) => {
            tracing::error!(outcome = "rejected", error = %e, "audit request rejected");
            return Some(serde_json::json!({ "rejected": e }));
        }
    };
    let report = audit::run(app, options, deadline).await;
    tracing::info!(summary = %audit::render::summary_line(&report.summary), exit_code = report.exit_code, "audit finished");
    Some(serde_json::to_value(report).expect("an audit report serialises"))
}

/// The run, and the warning a still-granted revocation deserves wherever it runs.
async fn run(app: &App, invocation: &Invocation, deadline: Instant) -> Result<Report, RunError> {
    let report = sync::run(app, invocation, deadline).await?;
    if !report.recheck.is_empty() {
        tracing::warn!(
            event_id = invocation.event_id.as_deref().unwrap_or(""),
            event_name = invocation.event_name.as_deref().unwrap_or(""),
            recheck = %report.recheck.join(","),
            "IAM still grants users this event revoked; the read may predate the change, re-checking later"
        );
    }
    Ok(report)
}

/// Sends every planned follow-up, stopping at the first that fails.
async fn send_all(
    follow_ups: &FollowUps,
    invocation: &Invocation,
    planned: &[Planned],
) -> Result<(), QueueError> {
    for follow_up in planned {
        follow_ups.queue.send(follow_up).await?;
        let message = &follow_up.message;
        let clusters = message
            .clusters
            .as_ref()
            .map(|f| {
                f.0.iter()
                    .map(|c| format!("{}/{}", c.region, c.name))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_else(|| "all".to_owned());
        let users = message
            .users
            .as_ref()
            .map(|u| u.iter().cloned().collect::<Vec<_>>().join(","))
            .unwrap_or_else(|| "all".to_owned());
        macro_rules! line {
            ($level:ident, $text:literal) => {
                tracing::$level!(
                    event_id = invocation.event_id.as_deref().unwrap_or(""),
                    follow_up = message.reason.as_str(),
                    attempt = message.attempt,
                    delay_s = follow_up.delay_seconds,
                    clusters = %clusters,
                    users = %users,
                    $text
                )
            };
        }
        if follow_up.dead_letter {
            line!(
                error,
                "attempts used up; follow-up sent to the dead-letter queue"
            );
        } else {
            line!(info, "follow-up queued");
        }
    }
    Ok(())
}

fn log_ignored(
    message_id: Option<&str>,
    event_id: Option<&str>,
    event_name: Option<&str>,
    reason: &str,
) {
    tracing::info!(
        message_id = message_id.unwrap_or(""),
        event_id = event_id.unwrap_or(""),
        event_name = event_name.unwrap_or(""),
        outcome = "ignored",
        reason = %reason,
        "event ignored"
    );
}
