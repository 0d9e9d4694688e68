//! AutoLake's SQL front end: turns text into typed statements, with no I/O.
//!
//! Plain SQL is left to DataFusion's parser (wrapped in
//! [`Statement::Sql`]); the statements a lake adds — `DESCRIBE HISTORY`,
//! `RESTORE`, `OPTIMIZE`, `VACUUM`, drift checks and monitors, models, sources, jobs, templates and pipelines, and time travel in `FROM` clauses — are
//! parsed here into the typed values of [`statement`]. The engine decides
//! what each one means.

pub mod dialect;
mod drift;
mod error;
pub mod governance;
mod jobs;
mod maintenance;
mod models;
pub mod parser;
mod pipelines;
mod sources;
pub mod statement;
pub mod template;
mod tokens;

pub use dialect::AutoLakeDialect;
pub use error::{ParseError, Result};
pub use governance::{Governance, Grantee};
pub use parser::parse;
pub use statement::{
    CreateJob, CreateModel, CreateMonitor, CreatePipeline, CreateSource, CreateTemplate,
    DRIFT_TESTS, DescribeHistory, DriftCheck, DriftReference, Family, JOB_STATEMENTS, JobSchedule,
    MODEL_TYPES, OnDrift, Optimize, ParamType, ParsedStatement, Restore, SOURCE_TYPES, Statement,
    SyncTable, TEMPLATE_STATEMENTS, TemplateParam, TimeTravel, Vacuum, WindowSpec, redact,
};

/// Re-export of the SQL AST, so the engine names one sqlparser.
pub use datafusion::sql::sqlparser;
