//! Cold start and memory of the release binary as a Lambda, under a minimal Runtime API stub.
//!
//! The stub implements the four routes the runtime client uses (`invocation/next`,
//! `invocation/{id}/response`, `invocation/{id}/error`, `init/error`). It notes when each `/next`
//! poll arrives and hands out events the bench queues, so the bench sees the same milestones as
//! Lambda: the first poll is the end of the cold start, the second one means the first
//! invocation is over and the process is idle.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{mpsc, Mutex};

use crate::bed::{BenchBed, Membership};
use crate::child;
use crate::stats::Samples;
use crate::table::{bytes, Table, Target};

const SECTION: &str = "4 cold start";
const API: &str = "/2018-06-01/runtime";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:eks-iam-sync";
/// Nothing the bench waits for takes this long unless something is broken.
const PATIENCE: Duration = Duration::from_secs(60);

/// How an invocation ended, as the function reported it.
#[derive(Debug)]
pub struct Outcome {
    pub at: Instant,
    pub error: bool,
    pub body: String,
}

struct Shared {
    polls: mpsc::UnboundedSender<Instant>,
    events: Mutex<mpsc::UnboundedReceiver<Value>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    next_id: AtomicU64,
}

/// One stub per function process, so a killed process's pending poll cannot take the next
/// process's event.
pub struct RuntimeStub {
    address: String,
    polls: mpsc::UnboundedReceiver<Instant>,
    events: mpsc::UnboundedSender<Value>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeStub {
    pub async fn start() -> anyhow::Result<Self> {
        let (polls_tx, polls) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            polls: polls_tx,
            events: Mutex::new(events_rx),
            outcomes: outcomes_tx,
            next_id: AtomicU64::new(1),
        });
        let router = axum::Router::new()
            .route(&format!("{API}/invocation/next"), get(next))
            .route(&format!("{API}/invocation/{{id}}/response"), post(response))
            .route(&format!("{API}/invocation/{{id}}/error"), post(error))
            .route(&format!("{API}/init/error"), post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            address,
            polls,
            events,
            outcomes,
            server,
        })
    }

    /// `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// When the next `/next` poll arrived.
    pub async fn poll(&mut self) -> anyhow::Result<Instant> {
        tokio::time::timeout(PATIENCE, self.polls.recv())
            .await
            .map_err(|_| anyhow::anyhow!("the function never polled /next"))?
            .ok_or_else(|| anyhow::anyhow!("the runtime stub stopped"))
    }

    /// Queues an event for a pending or later `/next`.
    pub fn invoke(&self, event: Value) {
        let _ = self.events.send(event);
    }

    /// The next invocation's (or the init's) reported outcome.
    pub async fn outcome(&mut self) -> anyhow::Result<Outcome> {
        tokio::time::timeout(PATIENCE, self.outcomes.recv())
            .await
            .map_err(|_| anyhow::anyhow!("the function never answered the invocation"))?
            .ok_or_else(|| anyhow::anyhow!("the runtime stub stopped"))
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let _ = shared.polls.send(Instant::now());
    let Some(event) = shared.events.lock().await.recv().await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            HeaderMap::new(),
            String::new(),
        );
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + Duration::from_secs(60);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", format!("bench-{id}"));
    set(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string(),
    );
    set("lambda-runtime-invoked-function-arn", FUNCTION_ARN.into());
    set(
        "lambda-runtime-trace-id",
        format!("Root=1-00000000-{id:024x}"),
    );
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, event.to_string())
}

fn report(shared: &Shared, error: bool, body: String) -> StatusCode {
    let _ = shared.outcomes.send(Outcome {
        at: Instant::now(),
        error,
        body,
    });
    StatusCode::ACCEPTED
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(_id): UrlPath<String>,
    body: String,
) -> StatusCode {
    report(&shared, false, body)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    UrlPath(_id): UrlPath<String>,
    body: String,
) -> StatusCode {
    report(&shared, true, body)
}

async fn init_error(State(shared): State<Arc<Shared>>, body: String) -> StatusCode {
    report(&shared, true, format!("init error: {body}"))
}

/// The release binary as a Lambda function against `stub`, its log lines in `log`.
fn spawn_function(
    bed: &BenchBed,
    stub: &RuntimeStub,
    env: &BTreeMap<String, String>,
    log: &Path,
) -> anyhow::Result<(Instant, tokio::process::Child)> {
    let mut command = child::command(bed.product(), bed.work_dir(), env);
    command
        .env("AWS_LAMBDA_RUNTIME_API", stub.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "eks-iam-sync")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/eks-iam-sync")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    let started = Instant::now();
    let child = command.spawn()?;
    Ok((started, child))
}

/// Time from spawn to the first `/next`, `runs` times.
async fn cold_starts(
    bed: &BenchBed,
    env: &BTreeMap<String, String>,
    runs: usize,
) -> anyhow::Result<Samples> {
    let log = bed.work_dir().join("lambda-cold-start.log");
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut stub = RuntimeStub::start().await?;
        let (started, mut function) = spawn_function(bed, &stub, env, &log)?;
        let polled = stub.poll().await.map_err(|e| with_log(e, &log))?;
        samples.push(polled - started);
        function.kill().await?;
    }
    Ok(Samples::new(samples))
}

/// One cold invocation with a changing event: its duration (spawn to response) and the peak
/// RSS of the process once it is idle again.
async fn cold_invocation(
    bed: &BenchBed,
    membership: &mut Membership,
    env: &BTreeMap<String, String>,
    clusters: usize,
) -> anyhow::Result<(Duration, u64)> {
    let log = bed.work_dir().join("lambda-invocation.log");
    let mut stub = RuntimeStub::start().await?;
    stub.invoke(membership.flip(bed).await?);
    let (started, mut function) = spawn_function(bed, &stub, env, &log)?;
    stub.poll().await.map_err(|e| with_log(e, &log))?;
    let outcome = stub.outcome().await.map_err(|e| with_log(e, &log))?;
    anyhow::ensure!(!outcome.error, "the invocation failed: {}", outcome.body);
    let report: Value = serde_json::from_str(&outcome.body)?;
    let updated = report["clusters"].as_array().map_or(0, |c| {
        c.iter().filter(|c| c["outcome"] == "updated").count()
    });
    anyhow::ensure!(
        updated == clusters,
        "the invocation updated {updated} of {clusters} clusters: {report}"
    );
    stub.poll().await?;
    let pid = function
        .id()
        .ok_or_else(|| anyhow::anyhow!("the function exited after its invocation"))?;
    let peak = child::peak_rss(pid)?;
    function.kill().await?;
    Ok((outcome.at - started, peak))
}

fn with_log(e: anyhow::Error, log: &Path) -> anyhow::Error {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    anyhow::anyhow!("{e}; function log:\n{}", crate::tail(&text, 20))
}

/// Section 4 (cold start and memory); the binary's size is [`crate::artifact`]'s.
pub async fn measure(
    bed: &BenchBed,
    membership: &mut Membership,
    clusters: usize,
    runs: usize,
    table: &mut Table,
) -> anyhow::Result<()> {
    let config = bed.config(clusters, &[]);
    let env = bed.product_env(&config);
    let starts = cold_starts(bed, &env, runs).await?;
    table.check(
        SECTION,
        "process start → first /next poll (Runtime API stub)",
        starts.describe("starts"),
        Target::new(
            "median < 30 ms",
            starts.median() < Duration::from_millis(30),
        ),
    );
    // Settle the clusters to IAM first: the measured invocation must change every one of them.
    crate::latency::warm_once(&bed.app(&config)?, &membership.event()).await?;
    let mut peaks = Vec::new();
    let mut took = Vec::new();
    for _ in 0..runs.min(3) {
        let (duration, peak) = cold_invocation(bed, membership, &env, clusters).await?;
        took.push(duration);
        peaks.push(peak);
    }
    let took = Samples::new(took);
    table.info(
        SECTION,
        format!("cold invocation under the stub, {clusters} clusters (spawn → response)"),
        took.describe("invocations"),
    );
    let peak = peaks.into_iter().max().unwrap_or_default();
    table.check(
        SECTION,
        format!("peak RSS (VmHWM) after a {clusters}-cluster invocation"),
        format!("{} (largest of {} runs)", bytes(peak), took.len()),
        Target::new("< 32 MiB", peak < 32 * 1024 * 1024),
    );
    Ok(())
}
