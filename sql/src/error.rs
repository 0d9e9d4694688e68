//! The error of parsing: what was wrong, where, in which statement.

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
