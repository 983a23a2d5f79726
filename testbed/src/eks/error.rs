//! EKS wire errors: an HTTP status, the error code in the `x-amzn-ErrorType` header and a
//! JSON body with `message` (plus `clusterName` where the EKS model has one), which is what
//! the SDK's REST-JSON error parser reads. Messages quote EKS's own wording where it is known,
//! because operators (and the product's logs) read them.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Failures a test can inject in front of an operation with
/// [`EksEmulator::fail_next`](super::EksEmulator::fail_next).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InjectedError {
    /// What EKS answers when a caller exceeds its request rate: HTTP 429
    /// `TooManyRequestsException`, "Too Many Requests". The EKS model does not declare it for
    /// read operations, so the SDK surfaces it as an unhandled error with that code, and its
    /// retry classifier treats the code as throttling.
    Throttling,
    /// HTTP 500 `ServerException`, modelled on every EKS operation; retried as transient.
    ServerException,
    /// HTTP 503 `ServiceUnavailableException`; retried as transient.
    ServiceUnavailable,
}

/// An error response of the emulated service.
#[derive(Debug, thiserror::Error)]
pub(super) enum ApiError {
    #[error("No cluster found for name: {0}.")]
    ClusterNotFound(String),
    #[error(
        "The specified principalArn could not be found. You can view your available access \
         entries with 'list-access-entries'."
    )]
    AccessEntryNotFound { cluster: String },
    #[error("The specified access entry resource is already in use on this cluster.")]
    AccessEntryInUse { cluster: String },
    #[error("Cluster {cluster} already has the maximum of {limit} access entries.")]
    AccessEntryLimitExceeded { cluster: String, limit: usize },
    #[error(
        "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to \
         perform this operation."
    )]
    AccessEntriesDisabled { cluster: String },
    #[error("No resource found for ARN: {0}.")]
    ResourceNotFound(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    #[error("Authorization header is not a valid SigV4 authorization: {0}")]
    IncompleteSignature(String),
    #[error("Credential should be scoped to correct service: 'eks'.")]
    WrongSigningService,
    #[error("No operation is served at {method} {path}.")]
    UnknownOperation { method: String, path: String },
    #[error("{}", injected_message(*.0))]
    Injected(InjectedError),
}

impl ApiError {
    /// The error code the SDK matches on.
    pub(super) fn code(&self) -> &'static str {
        match self {
            Self::ClusterNotFound(_) | Self::AccessEntryNotFound { .. } => {
                "ResourceNotFoundException"
            }
            Self::AccessEntryInUse { .. } => "ResourceInUseException",
            Self::AccessEntryLimitExceeded { .. } => "ResourceLimitExceededException",
            Self::AccessEntriesDisabled { .. } => "InvalidRequestException",
            Self::ResourceNotFound(_) => "NotFoundException",
            Self::InvalidParameter(_) => "InvalidParameterException",
            Self::BadRequest(_) => "BadRequestException",
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature(_) => "IncompleteSignatureException",
            Self::WrongSigningService => "InvalidSignatureException",
            Self::UnknownOperation { .. } => "UnknownOperationException",
            Self::Injected(InjectedError::Throttling) => "TooManyRequestsException",
            Self::Injected(InjectedError::ServerException) => "ServerException",
            Self::Injected(InjectedError::ServiceUnavailable) => "ServiceUnavailableException",
        }
    }

    pub(super) fn status(&self) -> StatusCode {
        match self {
            Self::ClusterNotFound(_)
            | Self::AccessEntryNotFound { .. }
            | Self::ResourceNotFound(_)
            | Self::UnknownOperation { .. } => StatusCode::NOT_FOUND,
            Self::AccessEntryInUse { .. } => StatusCode::CONFLICT,
            Self::InvalidParameter(_)
            | Self::BadRequest(_)
            | Self::AccessEntryLimitExceeded { .. }
            | Self::AccessEntriesDisabled { .. } => StatusCode::BAD_REQUEST,
            Self::MissingAuthenticationToken
            | Self::IncompleteSignature(_)
            | Self::WrongSigningService => StatusCode::FORBIDDEN,
            Self::Injected(InjectedError::Throttling) => StatusCode::TOO_MANY_REQUESTS,
            Self::Injected(InjectedError::ServerException) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Injected(InjectedError::ServiceUnavailable) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn body(&self) -> Value {
        let mut body = json!({ "message": self.to_string() });
        if let Some(cluster) = self.cluster_name() {
            body["clusterName"] = json!(cluster);
        }
        body
    }

    /// The `clusterName` member the EKS model gives these exceptions.
    fn cluster_name(&self) -> Option<&str> {
        match self {
            Self::ClusterNotFound(cluster)
            | Self::AccessEntryNotFound { cluster }
            | Self::AccessEntryInUse { cluster }
            | Self::AccessEntryLimitExceeded { cluster, .. }
            | Self::AccessEntriesDisabled { cluster } => Some(cluster),
            _ => None,
        }
    }
}

/// An EKS error answered to a Rust caller of the emulator (e.g.
/// [`EksEmulator::create_access_entry`](super::EksEmulator::create_access_entry)): the code
/// and message the wire would carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EksError {
    pub code: &'static str,
    pub message: String,
}

impl From<ApiError> for EksError {
    fn from(err: ApiError) -> Self {
        Self {
            code: err.code(),
            message: err.to_string(),
        }
    }
}

fn injected_message(error: InjectedError) -> &'static str {
    match error {
        InjectedError::Throttling => "Too Many Requests",
        InjectedError::ServerException => "An internal error occurred (injected).",
        InjectedError::ServiceUnavailable => "The service is unavailable (injected).",
    }
}

/// The full HTTP response for `err`.
pub(super) fn error_response(err: &ApiError, request_id: &str) -> Response {
    let mut response = (err.status(), Json(err.body())).into_response();
    response.headers_mut().insert(
        HeaderName::from_static("x-amzn-errortype"),
        HeaderValue::from_static(err.code()),
    );
    set_request_id(&mut response, request_id);
    response
}

/// Adds the `x-amzn-RequestId` header every EKS response carries.
pub(super) fn set_request_id(response: &mut Response, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-amzn-requestid"), value);
    }
}
