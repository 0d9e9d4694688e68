//! Source connectors: each kind of external source (PostgreSQL, MySQL,
//! files, streams) becomes a DataFusion catalog behind one small trait, and
//! a registry maps `TYPE name` in `CREATE SOURCE` to its connector.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::CatalogProvider;

/// Errors of connectors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connector of this type is registered.
    #[error("unknown source type '{0}' (known: {1})")]
    UnknownType(String, String),
    /// The source's options are wrong.
    #[error("invalid options for source {source_name}: {message}")]
    Options {
        /// The source being created.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// The source could not be reached or read.
    #[error("source {source_name}: {message}")]
    Source {
        /// The source.
        source_name: String,
        /// What failed.
        message: String,
    },
}

/// Result with connector errors.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A kind of source: turns a definition's options into a catalog.
#[async_trait]
pub trait Connector: fmt::Debug + Send + Sync {
    /// The `TYPE` name in `CREATE SOURCE` (`postgres`, `files`, …).
    fn type_name(&self) -> &'static str;
    /// Option keys whose values are secrets, never shown back.
    fn secret_options(&self) -> &'static [&'static str] {
        &[]
    }
    /// Opens the source `name` as a catalog.
    async fn open(
        &self,
        name: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn CatalogProvider>>;
}

/// The connectors known to an engine, by type name.
#[derive(Debug, Default)]
pub struct Registry {
    connectors: BTreeMap<&'static str, Arc<dyn Connector>>,
}

impl Registry {
    /// Adds a connector.
    pub fn register(&mut self, connector: Arc<dyn Connector>) {
        self.connectors.insert(connector.type_name(), connector);
    }

    /// The connector for `type_name`.
    pub fn get(&self, type_name: &str) -> Result<Arc<dyn Connector>> {
        self.connectors
            .get(type_name.to_ascii_lowercase().as_str())
            .cloned()
            .ok_or_else(|| {
                Error::UnknownType(
                    type_name.to_string(),
                    self.connectors
                        .keys()
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
    }
}
