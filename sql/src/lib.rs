//! AutoLake's SQL front end: turns text into typed statements, with no I/O.
//!
//! Plain SQL is left to DataFusion's parser (wrapped in
//! [`Statement::Sql`]); the statements a lake adds — `DESCRIBE HISTORY`,
//! `RESTORE`, `OPTIMIZE`, `VACUUM`, drift checks and monitors, models, sources, jobs, and time travel in `FROM` clauses — are
//! parsed here into the typed values of [`statement`]. The engine decides
//! what each one means.

pub mod dialect;
pub mod governance;
pub mod parser;
pub mod statement;

pub use dialect::AutoLakeDialect;
pub use governance::{Governance, Grantee};
pub use parser::parse;
pub use statement::{
    CreateJob, CreateModel, CreateMonitor, CreateSource, DRIFT_TESTS, DescribeHistory, DriftCheck,
    DriftReference, JOB_STATEMENTS, JobSchedule, MODEL_TYPES, Optimize, ParsedStatement, Restore,
    SOURCE_TYPES, Statement, SyncTable, TimeTravel, Vacuum, WindowSpec, redact,
};

/// Re-export of the SQL AST, so the engine names one sqlparser.
pub use datafusion::sql::sqlparser;

/// A statement that could not be parsed: the message, where, and which
/// statement it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}syntax error at line {line}, column {column}: {message}", statement.as_ref().map(|s| format!("in statement `{s}`: ")).unwrap_or_default())]
pub struct ParseError {
    /// What was wrong.
    pub message: String,
    /// 1-based line of the offending token (0 when unknown).
    pub line: u64,
    /// 1-based column of the offending token (0 when unknown).
    pub column: u64,
    /// The start of the failing statement's text.
    pub statement: Option<String>,
}

/// Result of parsing.
pub type Result<T, E = ParseError> = std::result::Result<T, E>;
