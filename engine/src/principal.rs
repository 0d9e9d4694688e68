//! Who is asking, through which interface, and what a statement touches.
//!
//! The session computes, for each statement, the objects it touches and how
//! ([`Access`]) and checks them for its [`Principal`] against the lake's
//! governance state ([`crate::governance::State::check`]) before anything
//! runs. Interfaces never check privileges themselves.

use std::fmt;

use crate::table_name::TableName;

/// An authenticated user and the roles they act with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name, recorded in commits and the audit log.
    pub name: String,
    /// Roles held when the session began; for a stored user the lake's
    /// current roles apply instead (see [`crate::governance::State`]).
    pub roles: Vec<String>,
    /// Whether this is a user stored in the lake (who must still exist
    /// for each statement), rather than the local administrator or a
    /// principal an embedding program made up.
    pub stored: bool,
}

impl Principal {
    /// The local administrator an embedded `autolake sql` session runs as.
    pub fn local_admin() -> Self {
        Self {
            name: "admin".to_string(),
            roles: vec!["admin".to_string()],
            stored: false,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The way a statement reached the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// `autolake sql` (REPL, `-e`, `-f`).
    Cli,
    /// A Flight SQL client.
    FlightSql,
    /// A scheduled or manually run job.
    Job,
    /// `autolake demo`.
    Demo,
    /// An embedding program using the library directly.
    Embedded,
    /// The web command deck (its pages and `/api/v1/`).
    Web,
}

impl Interface {
    /// Lower-case name, as recorded in commit info.
    pub fn as_str(&self) -> &'static str {
        match self {
            Interface::Cli => "cli",
            Interface::FlightSql => "flight_sql",
            Interface::Job => "job",
            Interface::Demo => "demo",
            Interface::Embedded => "embedded",
            Interface::Web => "web",
        }
    }
}

/// What a statement does to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reads rows.
    Select,
    /// Adds rows.
    Insert,
    /// Changes rows.
    Update,
    /// Removes rows.
    Delete,
    /// Creates the object.
    Create,
    /// Drops the object.
    Drop,
    /// Changes the object's definition or maintains its storage.
    Alter,
}

/// An object a statement touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A lake table.
    Table(TableName),
    /// A lake schema.
    Schema(String),
    /// A drift monitor.
    Monitor(String),
    /// A model.
    Model(String),
    /// A source (its definition, and reading its tables).
    Source(String),
    /// A job.
    Job(String),
    /// A pipeline template.
    Template(String),
    /// A pipeline.
    Pipeline(String),
    /// The lake catalog itself.
    Catalog,
    /// A table of the `system` schema, by name.
    System(String),
    /// Users, roles and role membership.
    Account,
    /// Something outside the lake, by its name as written (external tables,
    /// views, other catalogs).
    Other(String),
}

/// One access of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// How.
    pub action: Action,
    /// What.
    pub object: Object,
}
