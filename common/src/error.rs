//! One error vocabulary for the whole system (DESIGN: quickwit's `ErrorCode`),
//! shared by the core, every edge and every backend client.
//!
//! Domain errors carry an [`ErrorCode`]; the code maps to a gRPC status code and
//! back, so the bridge turns a status into the same WebSocket `error` envelope a
//! client would get from any edge.

use std::time::Duration;

/// What kind of failure an error is, independent of the edge that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed or violates a documented limit.
    InvalidArgument,
    /// The thing named does not exist.
    NotFound,
    /// The caller may not do this (role policy, authentication scope).
    PermissionDenied,
    /// The request contradicts current state (someone else holds the lease).
    Conflict,
    /// Too many requests; retry after a delay.
    RateLimited,
    /// A dependency is down or the service is draining; retry.
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorCode {
    /// Every code (a new one belongs here too: the exhaustive match in
    /// this module's tests names them all).
    pub const ALL: [Self; 7] = [
        Self::InvalidArgument,
        Self::NotFound,
        Self::PermissionDenied,
        Self::Conflict,
        Self::RateLimited,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The name used in WebSocket `error` envelopes (`data.code`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "InvalidArgument",
            Self::NotFound => "NotFound",
            Self::PermissionDenied => "PermissionDenied",
            Self::Conflict => "Conflict",
            Self::RateLimited => "RateLimited",
            Self::Unavailable => "Unavailable",
            Self::Internal => "Internal",
        }
    }

    /// The code named `name` (as [`ErrorCode::as_str`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == name)
    }

    /// Whether a client may retry the same request unchanged.
    pub fn retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::Unavailable)
    }

    /// The gRPC status code this maps to.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::NotFound => tonic::Code::NotFound,
            Self::PermissionDenied => tonic::Code::PermissionDenied,
            Self::Conflict => tonic::Code::FailedPrecondition,
            Self::RateLimited => tonic::Code::ResourceExhausted,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::Internal => tonic::Code::Internal,
        }
    }

    /// The HTTP status this maps to, for the REST endpoints.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument => 400,
            Self::NotFound => 404,
            Self::PermissionDenied => 403,
            Self::Conflict => 409,
            Self::RateLimited => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }

    /// The inverse of [`ErrorCode::grpc_code`], for statuses coming back.
    pub fn from_grpc(code: tonic::Code) -> Self {
        match code {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Self::InvalidArgument,
            tonic::Code::NotFound => Self::NotFound,
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => Self::PermissionDenied,
            tonic::Code::FailedPrecondition | tonic::Code::Aborted | tonic::Code::AlreadyExists => {
                Self::Conflict
            }
            tonic::Code::ResourceExhausted => Self::RateLimited,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                Self::Unavailable
            }
            _ => Self::Internal,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain error: a code, a message for humans, and maybe a retry hint.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CoreError {
    /// The kind of failure.
    pub code: ErrorCode,
    /// What went wrong, for the caller.
    pub message: String,
    /// When set, how long to wait before retrying.
    pub retry_after: Option<Duration>,
    /// With several core replicas: the URL of the replica that owns the
    /// session (the caller should send its session calls there).
    pub owner_url: Option<String>,
}

impl CoreError {
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            owner_url: None,
        }
    }

    /// `InvalidArgument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// `PermissionDenied`.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }

    /// `Conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// `Unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// `Internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// Reads back an error from a gRPC status.
    pub fn from_status(status: &tonic::Status) -> Self {
        let retry_after = status
            .metadata()
            .get(RETRY_AFTER_MS_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        // A call cut off by a broken connection (the core died mid-call)
        // comes back UNKNOWN with the transport error as its source, never
        // from the core itself: its outcome is in doubt, and the answer is a
        // retry, as for UNAVAILABLE.
        let code = match status.code() {
            tonic::Code::Unknown if std::error::Error::source(status).is_some() => {
                ErrorCode::Unavailable
            }
            code => ErrorCode::from_grpc(code),
        };
        let owner_url = status
            .metadata()
            .get(OWNER_URL_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Self {
            code,
            message: status.message().to_owned(),
            retry_after,
            owner_url,
        }
    }
}

/// A session a `SubscribeMany` stream cannot serve, as the core sends it.
impl From<CoreError> for meno_proto::SessionStreamRefused {
    fn from(err: CoreError) -> Self {
        Self {
            code: err.code.as_str().to_owned(),
            message: err.message,
            owner_url: err.owner_url.unwrap_or_default(),
            retry_after_ms: err
                .retry_after
                .map(|after| u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// A `SubscribeMany` refusal read back (an unknown code reads as `Internal`).
impl From<meno_proto::SessionStreamRefused> for CoreError {
    fn from(refused: meno_proto::SessionStreamRefused) -> Self {
        Self {
            code: ErrorCode::from_name(&refused.code).unwrap_or(ErrorCode::Internal),
            message: refused.message,
            retry_after: refused.retry_after_ms.map(Duration::from_millis),
            owner_url: (!refused.owner_url.is_empty()).then_some(refused.owner_url),
        }
    }
}

/// gRPC metadata key carrying a retry hint in milliseconds.
pub const RETRY_AFTER_MS_HEADER: &str = "meno-retry-after-ms";

/// gRPC metadata key carrying the URL of the core replica that owns the
/// session a call named (with `UNAVAILABLE`): call it there instead.
pub const OWNER_URL_HEADER: &str = "meno-owner-url";

impl From<CoreError> for tonic::Status {
    fn from(err: CoreError) -> Self {
        let mut status = tonic::Status::new(err.code.grpc_code(), err.message);
        if let Some(after) = err.retry_after {
            if let Ok(value) = after.as_millis().to_string().parse() {
                status.metadata_mut().insert(RETRY_AFTER_MS_HEADER, value);
            }
        }
        if let Some(url) = err.owner_url {
            if let Ok(value) = url.parse() {
                status.metadata_mut().insert(OWNER_URL_HEADER, value);
            }
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_found_by_its_name() {
        for code in ErrorCode::ALL {
            // Naming each variant makes a new one a compile error here.
            match code {
                ErrorCode::InvalidArgument
                | ErrorCode::NotFound
                | ErrorCode::PermissionDenied
                | ErrorCode::Conflict
                | ErrorCode::RateLimited
                | ErrorCode::Unavailable
                | ErrorCode::Internal => {}
            }
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::from_name("Teapot"), None);
    }

    #[test]
    fn a_stream_refusal_round_trips() {
        let mut err = CoreError::unavailable("owned elsewhere");
        err.owner_url = Some("http://core-2:50051".into());
        err.retry_after = Some(Duration::from_millis(250));
        let back = CoreError::from(meno_proto::SessionStreamRefused::from(err));
        assert_eq!(back.code, ErrorCode::Unavailable);
        assert_eq!(back.message, "owned elsewhere");
        assert_eq!(back.owner_url.as_deref(), Some("http://core-2:50051"));
        assert_eq!(back.retry_after, Some(Duration::from_millis(250)));
        let unknown = meno_proto::SessionStreamRefused {
            code: "Teapot".into(),
            ..Default::default()
        };
        assert_eq!(CoreError::from(unknown).code, ErrorCode::Internal);
    }

    #[test]
    fn every_code_round_trips_through_grpc() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_grpc(code.grpc_code()), code);
        }
    }

    #[test]
    fn a_call_cut_off_by_the_transport_is_retryable() {
        let broken = std::io::Error::other("stream closed because of a broken pipe");
        let status = tonic::Status::from_error(Box::new(broken));
        assert_eq!(status.code(), tonic::Code::Unknown);
        let err = CoreError::from_status(&status);
        assert_eq!(err.code, ErrorCode::Unavailable);
        assert!(err.code.retryable());
        // An UNKNOWN without a transport cause stays an internal error.
        let unknown = CoreError::from_status(&tonic::Status::unknown("a bug"));
        assert_eq!(unknown.code, ErrorCode::Internal);
    }

    #[test]
    fn retry_hint_survives_a_status() {
        let mut err = CoreError::new(ErrorCode::RateLimited, "slow down");
        err.retry_after = Some(Duration::from_millis(250));
        let back = CoreError::from_status(&tonic::Status::from(err));
        assert_eq!(back.code, ErrorCode::RateLimited);
        assert_eq!(back.retry_after, Some(Duration::from_millis(250)));
        assert_eq!(back.message, "slow down");
    }
}
