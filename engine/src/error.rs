//! The engine's error type: one enum, converted into `DataFusionError` at
//! DataFusion boundaries and into exit codes / gRPC statuses by interfaces.
//!
//! Every error has a [`ErrorKind`], decided by its variant (and, for
//! errors of DataFusion and delta-rs, by their own variants), never by the
//! text of its message: a user's mistake (`InvalidArgument`, `NotFound`,
//! `AlreadyExists`, `PermissionDenied`), a conflict to retry, a service
//! that cannot be reached (`Unavailable`), or a failure of AutoLake's own
//! machinery (`Internal`). Interfaces map kinds, not messages.

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
    /// A name in a query that resolves to no table: DataFusion's planning
    /// error, raised only after a look in the catalog found the table
    /// missing.
    #[error("{}", clean_datafusion_message(.0))]
    TableNotFound(DataFusionError),
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
    /// A service AutoLake needs cannot be used now (an address to listen
    /// on, say); the message names it.
    #[error("{0}")]
    Unavailable(String),
    /// A failure of AutoLake's own machinery or state, not of the request
    /// (the audit log could not be committed, a stored record is
    /// unreadable, a password could not be hashed).
    #[error("{0}")]
    Internal(String),
}

/// What kind of failure an [`Error`] is, for interfaces to map (gRPC
/// codes, exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or asks for something invalid.
    InvalidArgument,
    /// A named object does not exist.
    NotFound,
    /// A named object exists already.
    AlreadyExists,
    /// The principal may not do this.
    PermissionDenied,
    /// Another writer committed first; retrying may succeed.
    Conflict,
    /// A memory or other resource limit was reached.
    ResourceExhausted,
    /// A lake, source or address cannot be reached or used now.
    Unavailable,
    /// AutoLake itself failed.
    Internal,
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        // Messages often quote a library's error, which may end in a
        // backtrace: a user never sees one.
        let msg = msg.into();
        if msg.lines().any(is_backtrace_line) {
            Error::Invalid(strip_backtrace(&msg))
        } else {
            Error::Invalid(msg)
        }
    }

    /// Shorthand for [`Error::Internal`].
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    /// The kind of failure, decided by type.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse(_) | Error::Invalid(_) => ErrorKind::InvalidArgument,
            Error::NotFound { .. } | Error::TableNotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::ReadOnly(_) | Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Lake { .. } | Error::Source(_) | Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Storage(object_store::Error::NotFound { .. }) => ErrorKind::NotFound,
            Error::Storage(_) => ErrorKind::Unavailable,
            Error::DataFusion(e) => datafusion_kind(e),
            Error::Delta(DeltaTableError::InvalidVersion(_)) => ErrorKind::NotFound,
            Error::Delta(DeltaTableError::VersionAlreadyExists(_)) => ErrorKind::Conflict,
            Error::Delta(_) | Error::Io(_) | Error::Internal(_) => ErrorKind::Internal,
        }
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

/// The kind of a DataFusion error, from its innermost variant.
fn datafusion_kind(e: &DataFusionError) -> ErrorKind {
    match e.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Execution(_) => ErrorKind::InvalidArgument,
        DataFusionError::ResourcesExhausted(_) => ErrorKind::ResourceExhausted,
        DataFusionError::External(inner) => match inner.downcast_ref::<Error>() {
            Some(ours) => ours.kind(),
            None => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
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

/// A line of a Rust backtrace: `12: crate::module::function` or
/// `at ./src/file.rs:10:5`.
fn is_backtrace_line(line: &str) -> bool {
    let line = line.trim_start();
    let lower = line.to_ascii_lowercase();
    if lower.starts_with("backtrace") || lower.starts_with("stack backtrace") {
        return true;
    }
    if line.starts_with("at ") && line.contains(".rs:") {
        return true;
    }
    match line.split_once(": ") {
        Some((number, rest)) => {
            !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()) && rest.contains("::")
        }
        None => false,
    }
}

/// A message without the backtrace a library appended and without the
/// prefixes of DataFusion's and delta-rs's wrapping layers.
pub(crate) fn strip_backtrace(msg: &str) -> String {
    let msg = msg.split("\n\nbacktrace").next().unwrap_or(msg);
    let msg: Vec<&str> = msg.lines().take_while(|l| !is_backtrace_line(l)).collect();
    let mut s = msg.join("\n").trim().to_string();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_no_backtrace() {
        let raw = "Generic DeltaTable error: Unsupported: Time64(ns)\n\nStack backtrace:\n   0: buoyant_kernel::error::Error::with_backtrace\n             at ./src/error.rs:10:5\n   1: core::ops::function::FnOnce::call_once";
        assert_eq!(strip_backtrace(raw), "Unsupported: Time64(ns)");
        let inline =
            "writing t failed: bad type\n   0: buoyant_kernel::error::Error::with_backtrace";
        assert_eq!(strip_backtrace(inline), "writing t failed: bad type");
        // Numbers followed by text are not frames.
        let plain = "line 2\n3: not a frame";
        assert_eq!(strip_backtrace(plain), plain);
    }

    #[test]
    fn kinds_come_from_types_not_messages() {
        let user = Error::invalid("table t does not exist, not found");
        assert_eq!(user.kind(), ErrorKind::InvalidArgument);
        let missing = Error::NotFound {
            kind: "table",
            name: "lake.default.t".to_string(),
        };
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        assert_eq!(
            Error::internal("the audit log could not be committed").kind(),
            ErrorKind::Internal
        );
        assert_eq!(
            Error::Unavailable("cannot listen".to_string()).kind(),
            ErrorKind::Unavailable
        );
        // A DataFusion planning error that merely says "not found" is a
        // mistake in the statement; only a catalog lookup makes it NotFound.
        let plan = || DataFusionError::Plan("table 'lake.default.t' not found".to_string());
        assert_eq!(Error::DataFusion(plan()).kind(), ErrorKind::InvalidArgument);
        assert_eq!(Error::TableNotFound(plan()).kind(), ErrorKind::NotFound);
        let exhausted = DataFusionError::Context(
            "sorting".to_string(),
            Box::new(DataFusionError::ResourcesExhausted("memory".to_string())),
        );
        assert_eq!(
            Error::DataFusion(exhausted).kind(),
            ErrorKind::ResourceExhausted
        );
        assert_eq!(
            Error::Delta(DeltaTableError::InvalidVersion(7)).kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn engine_errors_cross_datafusion_unchanged() {
        let ours = Error::PermissionDenied("SELECT on table t".to_string());
        let through = Error::from(DataFusionError::from(ours));
        assert!(matches!(through, Error::PermissionDenied(_)));
        assert_eq!(through.kind(), ErrorKind::PermissionDenied);
    }
}
