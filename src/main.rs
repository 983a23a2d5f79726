//! One binary: under Lambda (`AWS_LAMBDA_RUNTIME_API` set) it serves the Lambda runtime;
//! anywhere else it is a CLI. `main` only wires config, SDK clients and the mode.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use clap::{Parser, Subcommand};
use eks_iam_sync::batch;
use eks_iam_sync::cluster::{EksDirectory, DEFAULT_CACHE_TTL};
use eks_iam_sync::config::{ClusterRef, Config};
use eks_iam_sync::credentials::AssumeRoles;
use eks_iam_sync::handler::{self, handle_within, HandleError};
use eks_iam_sync::iam::SdkIam;
use eks_iam_sync::queue;
use eks_iam_sync::report::{Outcome, Report};
use eks_iam_sync::sync::{self, App, TokenConnector};
use eks_iam_sync::token;
use eks_iam_sync::token_role;
use eks_iam_sync::{progress, report_text};
use tracing::Instrument;

#[derive(Parser)]
#[command(
    name = "eks-iam-sync",
    version,
    about = "Keeps EKS access (aws-auth mapUsers or access entries) in step with IAM group membership"
)]
struct Cli {
    /// Seconds a `handle`, `reconcile` or `audit` run may take; each cluster gets a deadline within it,
    /// and a cluster that has not finished by then is reported as failed.
    #[arg(long, global = true, default_value_t = eks_iam_sync::sync::DEFAULT_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86400))]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

/// Kept back from the Lambda deadline to serialise and return the result.
const LAMBDA_RESULT_MARGIN: Duration = Duration::from_millis(1500);

/// The instant `deadline` (Lambda's wall-clock deadline) falls on, less a margin. A deadline
/// that has passed already, or leaves no time once the margin is off, is not one Lambda sets
/// (its timeout is at least a second; ours, in the template, a minute): local runtimes such as
/// `cargo lambda watch` send none, which reads as the epoch. Such a run gets the CLI's default.
fn lambda_deadline(deadline: SystemTime) -> Instant {
    match deadline.duration_since(SystemTime::now()) {
        Ok(left) if left > LAMBDA_RESULT_MARGIN => Instant::now() + (left - LAMBDA_RESULT_MARGIN),
        _ => {
            tracing::warn!(
                default_s = eks_iam_sync::sync::DEFAULT_TIMEOUT.as_secs(),
                "the invocation carries no usable deadline; using the default"
            );
            Instant::now() + eks_iam_sync::sync::DEFAULT_TIMEOUT
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run exactly one Lambda invocation on an event file and print the JSON result.
    Handle {
        /// An EventBridge event, a Scheduled Event, {"action":"reconcile","dryRun":bool}, a
        /// follow-up, or an SQS batch of those (as Lambda's event source mapping sends it); or
        /// {"action":"audit","fixLogging":bool}, which exits as `audit` does.
        event: std::path::PathBuf,
    },
    /// Full reconcile of every configured cluster. Prints one line per cluster (outcome,
    /// added, changed, removed, conflicts, reason); with --output json the JSON report the
    /// Lambda returns. On a terminal, a line on stderr as each cluster finishes.
    Reconcile {
        /// Print, per cluster, the diff of mapUsers or access entries that would be written;
        /// write nothing.
        #[arg(long)]
        dry_run: bool,
        /// `text` (diffs, then a line per cluster) or `json` (the whole report).
        #[arg(long, value_enum, default_value_t = ReconcileOutput::Text)]
        output: ReconcileOutput,
    },
    /// Read every cluster of the fleet (listed and discovered, as `reconcile` does) and report
    /// every identity path into it (aws-auth mapUsers, mapRoles, mapAccounts; access entries
    /// with their access policies), classified per-person, self-declared, node, account-wide,
    /// shared or service, and whether `audit` and `authenticator` control-plane logging is on.
    /// The function's own role is a machine identity only when EKS_IAM_SYNC_FUNCTION_ROLE names
    /// it (the stack's FunctionRoleArn output). Writes nothing, unless --fix-logging.
    #[command(after_help = AUDIT_EXIT_CODES)]
    Audit {
        /// `table` (one per cluster, then a summary line) or `json` (the whole report).
        #[arg(long, value_enum, default_value_t = AuditOutput::Table)]
        output: AuditOutput,
        /// Enable `audit` and `authenticator` control-plane logging (UpdateClusterConfig) on
        /// clusters where either is off; the types already enabled stay enabled.
        #[arg(long)]
        fix_logging: bool,
    },
    /// Remove this installation's entries (users and roles, aws-auth and access entries) from a
    /// cluster that has left the fleet: taken out of the config or no longer matching
    /// discovery. Prints what would go, then asks; --yes skips the question. Other
    /// installations' entries and hand entries stay. A cluster still in the fleet is refused.
    #[command(after_help = RELEASE_EXIT_CODES)]
    Release {
        /// The cluster's name.
        #[arg(long)]
        cluster: String,
        /// Defaults to the SDK's region (AWS_REGION, profile).
        #[arg(long)]
        region: Option<String>,
        /// The role to reach the cluster through, when it is in another account (as its
        /// `roleArn` was in the config).
        #[arg(long)]
        role_arn: Option<String>,
        /// Remove without asking (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Print an ExecCredential exactly as `aws eks get-token` does (a kubeconfig exec plugin).
    Token {
        #[arg(long)]
        cluster_name: String,
        /// Defaults to the SDK's region (AWS_REGION, profile).
        #[arg(long)]
        region: Option<String>,
        /// Sign the token as this role, assumed under the caller's own name (IAM user name or
        /// role session name), not `aws eks get-token`'s fixed one.
        #[arg(long)]
        role_arn: Option<String>,
        /// The role session name to use instead of the caller's (2-64 of `[A-Za-z0-9_+=,.@-]`).
        #[arg(long, requires = "role_arn")]
        session_name: Option<String>,
    },
}

/// How `reconcile` prints its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ReconcileOutput {
    Text,
    Json,
}

/// How `audit` prints its report.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum AuditOutput {
    Table,
    Json,
}

const RELEASE_EXIT_CODES: &str = "Exit codes:
  0  released, or nothing of this installation was on the cluster
  1  the cluster could not be read or written, or it is still in the fleet
  3  not confirmed: nothing was changed";

const AUDIT_EXIT_CODES: &str = "Exit codes:
  0  every active path is per-person, node, account-wide, service, or shared or self-declared
     granting no more than node groups (system:bootstrappers, system:nodes), and every cluster
     logs both audit and authenticator (or --fix-logging had the missing types enabled)
  1  the audit could not run (configuration, credentials)
  2  usage error
  3  findings: a shared or self-declared path grants more than node groups (other groups or any
     access policy), or a cluster lacks audit or authenticator logging
  4  a cluster or discovery region could not be read (wins over 3: the audit is incomplete)";

/// JSON log lines on stderr. The level is `RUST_LOG` where set (local runs, the tests), else the
/// function's application log level (`AWS_LAMBDA_LOG_LEVEL`, which Lambda sets from the
/// template's `LogLevel`), else info. Inside an invocation each line carries the Lambda request
/// id as `span.requestId`.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        log_filter(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref()).into()
    });
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
}

/// The tracing filter for Lambda's application log level: ours at that level, the SDK's
/// chatty crates at warn at most. FATAL has no tracing level: error.
fn log_filter(lambda_level: Option<&str>) -> String {
    let level = match lambda_level.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR") | Some("FATAL") => "error",
        _ => "info",
    };
    let sdk = if matches!(level, "error") {
        "error"
    } else {
        "warn"
    };
    format!("{level},aws_config={sdk},aws_smithy_runtime={sdk}")
}

async fn app(sdk: &aws_config::SdkConfig) -> Result<App, String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let credentials = sdk
        .credentials_provider()
        .ok_or("no AWS credentials provider is configured")?;
    let identities = Arc::new(AssumeRoles::new(credentials, aws_sdk_sts::Client::new(sdk)));
    Ok(App {
        config,
        // Role mappings are resolved in each cluster's account, as the role it is reached as.
        iam: Box::new(
            SdkIam::new(aws_sdk_iam::Client::new(sdk)).with_identities(identities.clone()),
        ),
        clusters: Box::new(EksDirectory::with_identities(
            sdk.clone(),
            DEFAULT_CACHE_TTL,
            identities.clone(),
        )),
        connector: Box::new(TokenConnector::new(identities)),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(eks_iam_sync::aws::retry_config())
        .timeout_config(eks_iam_sync::aws::timeout_config())
        .load()
        .await;
    let result = if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda(&sdk).await
    } else {
        cli(Cli::parse(), &sdk).await
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("eks-iam-sync: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn lambda(sdk: &aws_config::SdkConfig) -> Result<ExitCode, String> {
    let app = app(sdk).await?;
    let app = &app;
    // The retry queue the template wires in; without it failed clusters fail the batch.
    let follow_ups = queue::from_env(sdk)?;
    let follow_ups = follow_ups.as_ref();
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            // Every line logged during the invocation names it.
            let span = tracing::info_span!("invocation", requestId = %event.context.request_id);
            async move {
                let deadline = lambda_deadline(event.context.deadline());
                tracing::debug!(
                    time_left_ms =
                        deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
                    "invocation"
                );
                match handler::lambda(app, follow_ups, &event.payload, deadline).await {
                    Ok(result) => Ok(result),
                    Err(HandleError::ClustersFailed(report)) => {
                        tracing::error!(report = %serde_json::to_string(&report)?, "invocation failed");
                        Err(lambda_runtime::Error::from(
                            HandleError::ClustersFailed(report).to_string(),
                        ))
                    }
                    Err(e) => Err(lambda_runtime::Error::from(e.to_string())),
                }
            }
            .instrument(span)
        },
    ))
    .await
    .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

async fn cli(cli: Cli, sdk: &aws_config::SdkConfig) -> Result<ExitCode, String> {
    let deadline = Instant::now() + Duration::from_secs(cli.timeout);
    match cli.command {
        Command::Handle { event } => {
            let text = std::fs::read_to_string(&event)
                .map_err(|e| format!("cannot read {}: {e}", event.display()))?;
            let input: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", event.display()))?;
            let app = app(sdk).await?;
            if let Some(audit) = handler::handle_audit(&app, &input, deadline).await {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&audit).map_err(|e| e.to_string())?
                );
                let code = audit["exitCode"].as_u64().unwrap_or(1);
                return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
            }
            if batch::is_sqs_batch(&input) {
                let follow_ups = queue::from_env(sdk)?;
                let batch = handler::handle_batch(&app, follow_ups.as_ref(), &input, deadline);
                return print_batch(batch.await);
            }
            print_outcome(
                handle_within(&app, &input, deadline).await,
                ReconcileOutput::Json,
            )
        }
        Command::Reconcile { dry_run, output } => {
            let app = app(sdk).await?;
            let input = serde_json::json!({"action": "reconcile", "dryRun": dry_run});
            let run = handle_within(&app, &input, deadline);
            let outcome = if std::io::stderr().is_terminal() {
                progress::observed(
                    |p| eprintln!("{}", report_text::progress_line(p.report, p.done, p.total)),
                    run,
                )
                .await
            } else {
                run.await
            };
            print_outcome(outcome, output)
        }
        Command::Audit {
            output,
            fix_logging,
        } => {
            let app = app(sdk).await?;
            let options = eks_iam_sync::audit::AuditOptions { fix_logging };
            let report = eks_iam_sync::audit::run(&app, options, deadline).await;
            match output {
                AuditOutput::Table => print!("{}", eks_iam_sync::audit::table(&report)),
                AuditOutput::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                ),
            }
            Ok(ExitCode::from(report.exit_code))
        }
        Command::Release {
            cluster,
            region,
            role_arn,
            yes,
        } => {
            let region = region_or_sdks(region, sdk)?;
            let app = app(sdk).await?;
            let mut target = ClusterRef::new(&cluster, &region);
            target.role_arn = role_arn;
            release(&app, &target, yes, deadline).await
        }
        Command::Token {
            cluster_name,
            region,
            role_arn,
            session_name,
        } => {
            let region = region_or_sdks(region, sdk)?;
            let credentials = match role_arn {
                None => sdk
                    .credentials_provider()
                    .ok_or("no AWS credentials provider is configured")?
                    .provide_credentials()
                    .await
                    .map_err(|e| format!("no AWS credentials: {e}"))?,
                Some(role_arn) => {
                    let sts = aws_sdk_sts::config::Builder::from(sdk)
                        .region(aws_config::Region::new(region.clone()))
                        .build();
                    let sts = aws_sdk_sts::Client::from_conf(sts);
                    token_role::assume_as_caller(&sts, &role_arn, session_name.as_deref())
                        .await
                        .map_err(|e| e.to_string())?
                        .0
                }
            };
            let token = token::token(&credentials, &region, &cluster_name, SystemTime::now())
                .map_err(|e| e.to_string())?;
            println!("{}", token::exec_credential(&token));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `--region`, else the SDK's (AWS_REGION, profile).
fn region_or_sdks(region: Option<String>, sdk: &aws_config::SdkConfig) -> Result<String, String> {
    region
        .or_else(|| sdk.region().map(|r| r.to_string()))
        .ok_or_else(|| "no region: pass --region or set AWS_REGION".to_owned())
}

/// `release`: the dry run's diff and line, the question, then the release itself.
async fn release(
    app: &App,
    target: &ClusterRef,
    yes: bool,
    deadline: Instant,
) -> Result<ExitCode, String> {
    let installation = app.config.installation();
    let preview = sync::release(app, target, true, deadline)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(diff) = &preview.diff {
        print!("{diff}");
        if !diff.ends_with('\n') {
            println!();
        }
    }
    println!("{}", report_text::summary_line(&preview));
    if preview.outcome == Outcome::Failed {
        return Ok(ExitCode::from(1));
    }
    let count = preview.removed + preview.retired;
    if count == 0 {
        println!(
            "nothing of {installation} on {} ({}): nothing to release",
            target.name, target.region
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(format!(
                "not releasing {}: stdin is not a terminal to confirm on; pass --yes. \
                 Nothing was changed.",
                target.name
            ));
        }
        eprint!(
            "Remove these {count} entries of {installation} from {} ({})? [y/N] ",
            target.name, target.region
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| format!("reading the answer: {e}"))?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("not confirmed: nothing was changed");
            return Ok(ExitCode::from(3));
        }
    }
    let report = sync::release(app, target, false, deadline)
        .await
        .map_err(|e| e.to_string())?;
    println!("{}", report_text::summary_line(&report));
    Ok(if report.outcome == Outcome::Failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints an SQS batch's report and its partial batch response; a message to deliver again
/// makes the exit code 1.
fn print_batch(outcome: handler::BatchOutcome) -> Result<ExitCode, String> {
    let json = serde_json::json!({
        "report": outcome.report,
        "dropped": outcome.dropped.iter().map(|d| serde_json::json!({"messageId": d.message_id, "error": d.error})).collect::<Vec<_>>(),
        "response": outcome.response,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?
    );
    Ok(if outcome.response.batch_item_failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prints the report, for people (`report_text`) or as JSON; a failed cluster makes the exit
/// code 1.
fn print_outcome(
    outcome: Result<Report, HandleError>,
    output: ReconcileOutput,
) -> Result<ExitCode, String> {
    let (report, code) = match outcome {
        Ok(report) => (report, ExitCode::SUCCESS),
        Err(HandleError::ClustersFailed(report)) => (*report, ExitCode::from(1)),
        Err(e) => return Err(e.to_string()),
    };
    match output {
        ReconcileOutput::Text => print!("{}", report_text::for_people(&report)),
        ReconcileOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        ),
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn lambdas_log_level_sets_ours_and_keeps_the_sdk_quiet() {
        assert_eq!(
            log_filter(Some("DEBUG")),
            "debug,aws_config=warn,aws_smithy_runtime=warn"
        );
        assert_eq!(
            log_filter(Some("fatal")),
            "error,aws_config=error,aws_smithy_runtime=error"
        );
        assert_eq!(
            log_filter(None),
            "info,aws_config=warn,aws_smithy_runtime=warn"
        );
    }
}
