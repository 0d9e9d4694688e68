//! The engine's error type: one enum, converted into `DataFusionError` at
//! DataFusion boundaries and into exit codes / gRPC statuses by interfaces.

use datafusion::error::DataFusionError;
use deltalake::DeltaTableError;

/// Everything that can go wrong while running a statement.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL text could not be parsed.
    #[error(transparent)]
    Parse(#[from] autolake_sql::ParseError),
    /// A named object does not exist.
    #[error("{kind} {name} does not exist")]
    NotFound {
        /// `table`, `schema`, `version`, …
        kind: &'static str,
        /// The fully qualified name.
        name: String,
    },
    /// A named object exists already.
    #[error("{kind} {name} already exists")]
    AlreadyExists {
        /// `table`, `schema`, …
        kind: &'static str,
        /// The fully qualified name.
        name: String,
    },
    /// The statement is well-formed but asks for something invalid.
    #[error("{0}")]
    Invalid(String),
    /// A write to AutoLake's own read-only state.
    #[error(
        "{0} is read-only: the system schema is maintained by AutoLake and cannot be changed by SQL"
    )]
    ReadOnly(String),
    /// The principal lacks a privilege.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The lake root could not be reached or used.
    #[error("cannot use the lake at {uri}: {reason}")]
    Lake {
        /// The lake URI as given.
        uri: String,
        /// What went wrong.
        reason: String,
    },
    /// A source could not be reached or read (the message names the source
    /// and never holds a secret).
    #[error("{0}")]
    Source(String),
    /// Another writer committed a conflicting change first.
    #[error(
        "concurrent write conflict on {table}: {reason}; the statement had no effect, retry it"
    )]
    Conflict {
        /// The table written.
        table: String,
        /// Delta's account of the conflict.
        reason: String,
    },
    /// An error from the query engine.
    #[error("{}", clean_datafusion_message(.0))]
    DataFusion(DataFusionError),
    /// An error from the Delta log or writer.
    #[error("{}", clean_delta_message(.0))]
    Delta(#[from] DeltaTableError),
    /// Object store failure.
    #[error("storage error: {0}")]
    Storage(#[from] object_store::Error),
    /// Local I/O failure.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// Whether the error is the user's SQL text not parsing.
    pub fn is_parse(&self) -> bool {
        matches!(self, Error::Parse(_))
            || matches!(self, Error::DataFusion(e) if matches!(e.find_root(), DataFusionError::SQL(..)))
    }
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

impl From<DataFusionError> for Error {
    /// Our own errors raised inside DataFusion (a refused privilege found
    /// while planning, say) come back as themselves.
    fn from(e: DataFusionError) -> Self {
        match e {
            DataFusionError::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::DataFusion(DataFusionError::External(other)),
            },
            DataFusionError::Context(context, inner) => match *inner {
                DataFusionError::External(b) if b.is::<Error>() => {
                    Error::from(DataFusionError::External(b))
                }
                other => Error::DataFusion(DataFusionError::Context(context, Box::new(other))),
            },
            other => Error::DataFusion(other),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::DataFusion(DataFusionError::ArrowError(Box::new(e), None))
    }
}

/// DataFusion wraps errors in context layers ("Error during planning: …",
/// "External error: …"); a user wants the innermost message.
pub(crate) fn clean_datafusion_message(e: &DataFusionError) -> String {
    let root = e.find_root();
    let msg = match root {
        DataFusionError::External(inner) => inner.to_string(),
        DataFusionError::ArrowError(inner, _) => inner.to_string(),
        DataFusionError::SQL(inner, _) => format!("syntax error: {inner}"),
        other => other.to_string(),
    };
    strip_backtrace(&msg)
}

fn clean_delta_message(e: &DeltaTableError) -> String {
    match e {
        DeltaTableError::Arrow { source } => strip_backtrace(&source.to_string()),
        DeltaTableError::GenericError { source } => strip_backtrace(&source.to_string()),
        DeltaTableError::InvalidVersion(v) => format!("version {v} does not exist"),
        other => strip_backtrace(&other.to_string()),
    }
}

fn strip_backtrace(msg: &str) -> String {
    let msg = msg.split("\n\nbacktrace").next().unwrap_or(msg);
    let mut s = msg.trim().to_string();
    for prefix in [
        "External error: ",
        "Error during planning: ",
        "Execution error: ",
        "Arrow error: ",
        "Invalid argument error: ",
        "Generic DeltaTable error: ",
        "Failed to convert into Arrow schema: ",
    ] {
        while let Some(rest) = s.strip_prefix(prefix) {
            s = rest.to_string();
        }
    }
    s
}
