//! Typed errors of the AWS glue.
//!
//! Every AWS failure is an [`AwsError`] naming the operation. Handlers return it as an
//! `Err` so Lambda (and EventBridge behind it) retries; conditions that are *answers*
//! rather than failures (conditional-check failed, parameter not found) never become
//! errors: the clients turn them into `Ok` values.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;

/// What kind of failure an AWS call had; all kinds are worth a retry by the caller's
/// caller (Lambda), and the distinction is kept for logs and fault tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    Throttled,
    /// 5xx from the service.
    Server,
    Timeout,
    /// Could not reach the service (connection refused, DNS, TLS).
    Unreachable,
    /// Anything else the service refused (4xx: validation, access denied).
    Client,
    /// The service answered with something kiln cannot use (missing field, bad item).
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {kind:?}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    pub message: String,
}

impl AwsError {
    pub fn new(operation: &'static str, kind: AwsErrorKind, message: impl Into<String>) -> Self {
        AwsError {
            operation,
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(operation: &'static str, message: impl Into<String>) -> Self {
        Self::new(operation, AwsErrorKind::Invalid, message)
    }
}

const THROTTLING_CODES: [&str; 6] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
];

/// The raw HTTP response type all SDK clients share (re-exported by each).
pub type HttpResponse = aws_sdk_dynamodb::config::http::HttpResponse;
pub type SdkError<E> = aws_sdk_dynamodb::error::SdkError<E, HttpResponse>;

/// Classifies any SDK error. Callers recognise answers (e.g. a failed condition) first.
pub fn from_sdk<E>(operation: &'static str, err: SdkError<E>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &err {
        SdkError::TimeoutError(_) => AwsErrorKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => AwsErrorKind::Timeout,
        SdkError::DispatchFailure(_) => AwsErrorKind::Unreachable,
        SdkError::ServiceError(ctx) => {
            if err.code().is_some_and(|c| THROTTLING_CODES.contains(&c)) {
                AwsErrorKind::Throttled
            } else if ctx.raw().status().as_u16() >= 500 {
                AwsErrorKind::Server
            } else {
                AwsErrorKind::Client
            }
        }
        SdkError::ResponseError(ctx) if ctx.raw().status().as_u16() >= 500 => AwsErrorKind::Server,
        _ => AwsErrorKind::Invalid,
    };
    let message = match (err.code(), err.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
    };
    AwsError::new(operation, kind, message)
}

/// An SDK result where the error `code` is an answer ("no such thing"), not a failure:
/// `Ok(None)` for it, the classified error for any other.
pub fn absent_on<T, E>(
    operation: &'static str,
    code: &str,
    result: Result<T, SdkError<E>>,
) -> Result<Option<T>, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code() == Some(code) => Ok(None),
        Err(e) => Err(from_sdk(operation, e)),
    }
}
