//! How every AWS client of the product retries and times out, in one place, so the Lambda, the
//! CLI and the tests behave alike.
//!
//! The SDK's standard retry mode already retries throttling, 5xx and connection errors with
//! jittered backoff; what it lacks by default is a bound on a single attempt, so an endpoint
//! that accepts connections and never answers would hold a run until the function timeout. Each
//! attempt is therefore cut off, and the run's own deadline bounds the whole (see
//! [`crate::sync::run`]).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::SharedCredentialsProvider;

/// Attempts per AWS call, the first included. Default 5 (the SDK's is 3): a throttled IAM or
/// EKS burst during an onboarding wave usually clears within that.
pub const MAX_ATTEMPTS: u32 = 5;
/// One attempt of one AWS call, connection included. Default 10 s.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Establishing a connection. Default 3 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Standard mode, [`MAX_ATTEMPTS`] attempts.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// [`CONNECT_TIMEOUT`] and [`ATTEMPT_TIMEOUT`]; no overall bound (the run's deadline is it).
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// An SDK configuration with these settings for a fixed region, endpoint and identity: what
/// the end-to-end tests and the benchmark use to wire the product to the test bed exactly as
/// `main` wires it to AWS (which loads the same settings through `aws_config::defaults`).
pub fn config_for(
    region: &str,
    endpoint: &str,
    credentials: SharedCredentialsProvider,
) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attempt_is_bounded() {
        assert_eq!(retry_config().max_attempts(), MAX_ATTEMPTS);
        let timeouts = timeout_config();
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
    }
}
