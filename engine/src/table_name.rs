//! The names every layer shares: the lake's catalog, its default and
//! system schemas, and [`TableName`]. They sit below the lake and the
//! principal, which both speak of tables, so neither imports the other for
//! them.

/// Name of the schema every lake has.
pub const DEFAULT_SCHEMA: &str = "public";
/// Name of the catalog that holds the lake's schemas.
pub const LAKE_CATALOG: &str = "lake";
/// Name of AutoLake's read-only schema.
pub const SYSTEM_SCHEMA: &str = "system";
/// A schema or table of the lake, by schema and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    /// Schema (namespace) name.
    pub schema: String,
    /// Table name within the schema.
    pub table: String,
}

impl TableName {
    /// A table name in a schema.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{LAKE_CATALOG}.{}.{}", self.schema, self.table)
    }
}
