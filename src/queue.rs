//! Sends follow-ups ([`crate::follow_up`]) to the retry queue, or to its dead-letter queue once
//! their attempts are used up.
//!
//! The retry queue is a standard SQS queue because only a standard queue delays each message
//! on its own (`DelaySeconds`, up to 900 s); a FIFO queue delays only the whole queue. It feeds
//! the function like the event queue does. Both URLs come from the environment the template
//! sets; without them (the CLI, a test) there is nowhere to send a follow-up, and a batch with
//! failed clusters is reported as failed instead, so nothing is lost.

use futures::future::BoxFuture;

use crate::follow_up::{Planned, RetryPolicy};

/// The retry queue's URL.
pub const RETRY_QUEUE_URL_ENV: &str = "EKS_IAM_SYNC_RETRY_QUEUE_URL";
/// Where follow-ups go after [`RetryPolicy::max_attempts`].
pub const DEAD_LETTER_QUEUE_URL_ENV: &str = "EKS_IAM_SYNC_RETRY_DEAD_LETTER_QUEUE_URL";
/// Overrides [`RetryPolicy::max_attempts`].
pub const MAX_ATTEMPTS_ENV: &str = "EKS_IAM_SYNC_RETRY_MAX_ATTEMPTS";

/// A follow-up that could not be sent; the batch it came from is then delivered again.
#[derive(Debug, thiserror::Error)]
#[error("sending the {reason} follow-up (attempt {attempt}) to {queue}: {detail}")]
pub struct QueueError {
    pub queue: String,
    pub reason: &'static str,
    pub attempt: u32,
    pub detail: String,
}

/// Where follow-ups go.
pub trait FollowUpQueue: Send + Sync {
    fn send<'a>(&'a self, planned: &'a Planned) -> BoxFuture<'a, Result<(), QueueError>>;
}

/// The retry queue, with the policy its follow-ups follow.
pub struct FollowUps {
    pub queue: Box<dyn FollowUpQueue>,
    pub policy: RetryPolicy,
}

/// The two queues through the SQS API (`AWS_ENDPOINT_URL_SQS` is honoured by the SDK).
pub struct SqsFollowUps {
    client: aws_sdk_sqs::Client,
    retry_queue_url: String,
    dead_letter_queue_url: String,
}

impl SqsFollowUps {
    pub fn new(
        client: aws_sdk_sqs::Client,
        retry_queue_url: impl Into<String>,
        dead_letter_queue_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            retry_queue_url: retry_queue_url.into(),
            dead_letter_queue_url: dead_letter_queue_url.into(),
        }
    }
}

impl FollowUpQueue for SqsFollowUps {
    fn send<'a>(&'a self, planned: &'a Planned) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            let (queue, delay) = if planned.dead_letter {
                (&self.dead_letter_queue_url, 0)
            } else {
                (&self.retry_queue_url, planned.delay_seconds)
            };
            let delay = i32::try_from(delay).unwrap_or(i32::MAX);
            self.client
                .send_message()
                .queue_url(queue)
                .message_body(planned.message.body())
                .delay_seconds(delay)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| QueueError {
                    queue: queue.clone(),
                    reason: planned.message.reason.as_str(),
                    attempt: planned.message.attempt,
                    detail: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
                })
        })
    }
}

/// The follow-up queues the environment names, if any: both URLs or neither.
pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Option<FollowUps>, String> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let mut policy = RetryPolicy::default();
    if let Some(text) = var(MAX_ATTEMPTS_ENV) {
        policy.max_attempts = text
            .parse()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| format!("{MAX_ATTEMPTS_ENV} should be 1 to 100, received {text:?}"))?;
    }
    match (var(RETRY_QUEUE_URL_ENV), var(DEAD_LETTER_QUEUE_URL_ENV)) {
        (None, None) => Ok(None),
        (Some(retry), Some(dead_letter)) => Ok(Some(FollowUps {
            queue: Box::new(SqsFollowUps::new(
                aws_sdk_sqs::Client::new(sdk),
                retry,
                dead_letter,
            )),
            policy,
        })),
        _ => Err(format!(
            "set both {RETRY_QUEUE_URL_ENV} and {DEAD_LETTER_QUEUE_URL_ENV}, or neither"
        )),
    }
}
