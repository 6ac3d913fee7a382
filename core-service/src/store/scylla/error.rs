//! Driver errors in the store's vocabulary: anything that may pass by itself
//! (no connection, timeouts, overload, too few replicas) is
//! [`StoreError::Unavailable`], so callers get gRPC `UNAVAILABLE` and retry;
//! what retrying cannot fix (bad CQL, missing permission) is
//! [`StoreError::Backend`]; rows that do not decode are
//! [`StoreError::Corrupt`].

use scylla::errors::{
    DbError, ExecutionError, NewSessionError, PagerExecutionError, PrepareError,
    RequestAttemptError,
};

use super::schema::SchemaError;
use crate::store::StoreError;

/// A failure of one driver call, classified.
#[derive(Debug)]
pub(crate) enum StoreFailure {
    /// May pass by itself: retry.
    Transient(String),
    /// Retrying will not help.
    Permanent(String),
}

impl From<StoreFailure> for StoreError {
    fn from(failure: StoreFailure) -> Self {
        match failure {
            StoreFailure::Transient(why) => StoreError::Unavailable(why),
            StoreFailure::Permanent(why) => StoreError::Backend(why),
        }
    }
}

impl From<StoreFailure> for SchemaError {
    fn from(failure: StoreFailure) -> Self {
        match failure {
            StoreFailure::Transient(why) => SchemaError::Unavailable(why),
            StoreFailure::Permanent(why) => SchemaError::Database(why),
        }
    }
}

fn db_error_is_transient(error: &DbError) -> bool {
    matches!(
        error,
        DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::ReadTimeout { .. }
            | DbError::WriteTimeout { .. }
            | DbError::ReadFailure { .. }
            | DbError::WriteFailure { .. }
            | DbError::RateLimitReached { .. }
            | DbError::TruncateError
            | DbError::ServerError
    )
}

fn attempt_is_transient(error: &RequestAttemptError) -> bool {
    match error {
        RequestAttemptError::DbError(db_error, _) => db_error_is_transient(db_error),
        RequestAttemptError::SerializationError(_)
        | RequestAttemptError::CqlRequestSerialization(_) => false,
        // Broken connections, stream exhaustion, unparsable frames from a
        // node that is going away: all worth a retry.
        _ => true,
    }
}

fn prepare_is_transient(error: &PrepareError) -> bool {
    match error {
        PrepareError::AllAttemptsFailed { first_attempt } => attempt_is_transient(first_attempt),
        PrepareError::PreparedStatementIdsMismatch => false,
        _ => true,
    }
}

fn execution_is_transient(error: &ExecutionError) -> bool {
    match error {
        ExecutionError::BadQuery(_) => false,
        ExecutionError::LastAttemptError(attempt) => attempt_is_transient(attempt),
        ExecutionError::PrepareError(prepare) => prepare_is_transient(prepare),
        // No node to ask, no connection, our own deadline, schema or
        // metadata agreement not reached: the cluster may come back.
        _ => true,
    }
}

impl From<ExecutionError> for StoreFailure {
    fn from(error: ExecutionError) -> Self {
        if execution_is_transient(&error) {
            StoreFailure::Transient(error.to_string())
        } else {
            StoreFailure::Permanent(error.to_string())
        }
    }
}

impl From<PrepareError> for StoreFailure {
    fn from(error: PrepareError) -> Self {
        if prepare_is_transient(&error) {
            StoreFailure::Transient(format!("preparing a statement: {error}"))
        } else {
            StoreFailure::Permanent(format!("preparing a statement: {error}"))
        }
    }
}

impl From<PagerExecutionError> for StoreFailure {
    fn from(error: PagerExecutionError) -> Self {
        match &error {
            PagerExecutionError::PrepareError(prepare) if !prepare_is_transient(prepare) => {
                StoreFailure::Permanent(error.to_string())
            }
            PagerExecutionError::SerializationError(_) => {
                StoreFailure::Permanent(error.to_string())
            }
            _ => StoreFailure::Transient(error.to_string()),
        }
    }
}

impl From<NewSessionError> for StoreFailure {
    fn from(error: NewSessionError) -> Self {
        match &error {
            NewSessionError::EmptyKnownNodesList | NewSessionError::IllegalConfig(_) => {
                StoreFailure::Permanent(format!("cannot connect: {error}"))
            }
            _ => StoreFailure::Transient(format!("cannot connect: {error}")),
        }
    }
}

impl From<ExecutionError> for StoreError {
    fn from(error: ExecutionError) -> Self {
        StoreFailure::from(error).into()
    }
}

impl From<PagerExecutionError> for StoreError {
    fn from(error: PagerExecutionError) -> Self {
        StoreFailure::from(error).into()
    }
}

impl From<ExecutionError> for SchemaError {
    fn from(error: ExecutionError) -> Self {
        StoreFailure::from(error).into()
    }
}

/// True when a statement failed because its keyspace or table does not
/// exist (yet): Cassandra and ScyllaDB both answer `Invalid` with a message.
pub(crate) fn is_missing_schema(error: &ExecutionError) -> bool {
    let db_error = match error {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db_error, message)) => {
            Some((db_error, message))
        }
        ExecutionError::PrepareError(PrepareError::AllAttemptsFailed {
            first_attempt: RequestAttemptError::DbError(db_error, message),
        }) => Some((db_error, message)),
        _ => None,
    };
    db_error.is_some_and(|(db_error, message)| {
        matches!(db_error, DbError::Invalid | DbError::ConfigError)
            && (message.contains("does not exist")
                || message.contains("unconfigured table")
                || message.contains("Keyspace"))
    })
}

/// A row that could not be decoded, named.
pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}
