//! Sources: external systems attached to the lake as catalogs.
//!
//! A source definition (`CREATE SOURCE crm TYPE postgres OPTIONS (…)`) is a
//! JSON document at `<lake>/sources/<name>.json` holding its type, options
//! (secrets included: the lake is the place a deployment keeps its
//! connection details), owner and creation time, so every process on the
//! lake knows it. Nothing shows a secret back: `SHOW SOURCES` and
//! `system.sources` print the options through the connector registry's
//! redaction, and every connector error is scrubbed of the definition's
//! secrets before it leaves the connector.
//!
//! Opening a source (connecting, listing its tables, inferring file
//! schemas) is done lazily, the first time a statement names it, and cached
//! in the engine by definition: a statement that names `crm.public.x`
//! attaches `crm` to its session's DataFusion context. A cached source whose
//! table list lacks a table the statement names is opened again, so tables
//! created in the source after it was opened are found. A source that
//! cannot be reached fails only the statements that use it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use autolake_connectors::{OpenedSource, Registry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::docs::DocStore;
use crate::lake::{LAKE_CATALOG, Lake, SYSTEM_SCHEMA, TableName};

/// A source definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The source's name: the catalog name queries use.
    pub name: String,
    /// The connector type (`postgres`, `mysql`, `files`).
    #[serde(rename = "type")]
    pub source_type: String,
    /// The options as given, secrets included.
    pub options: BTreeMap<String, String>,
    /// Who created it.
    pub owner: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Names a source cannot take: they are catalogs already.
const RESERVED: [&str; 4] = [
    LAKE_CATALOG,
    SYSTEM_SCHEMA,
    "datafusion",
    crate::lake::INTERNAL_CATALOG,
];

/// The sources of a lake and the ones opened by this process.
#[derive(Debug)]
pub struct Sources {
    docs: DocStore<Source>,
    registry: Registry,
    opened: Mutex<HashMap<String, (Source, OpenedSource)>>,
    /// When a source last failed to open, so listings skip it for a while
    /// instead of waiting on it each time.
    failed: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long listings leave a source alone after it failed to open.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

impl Sources {
    /// The sources of `lake`, with every built-in connector.
    pub fn new(lake: Arc<Lake>) -> Self {
        Self {
            docs: DocStore::new(lake, "sources", "source"),
            registry: Registry::builtin(),
            opened: Mutex::default(),
            failed: Mutex::default(),
        }
    }

    /// The connector registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Checks a new definition: the name is free for a catalog, the type
    /// known, the options valid.
    pub fn validate(&self, source: &Source) -> Result<()> {
        if RESERVED.contains(&source.name.as_str()) {
            return Err(Error::invalid(format!(
                "'{}' cannot name a source: it is a catalog or schema of the engine",
                source.name
            )));
        }
        self.registry
            .validate(&source.name, &source.source_type, &source.options)
            .map_err(connector_error)
    }

    /// Saves a new source; `false` when one of that name exists.
    pub async fn create(&self, source: &Source) -> Result<bool> {
        self.docs.create(&source.name, source).await
    }

    /// The source called `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<Source>> {
        self.docs.get(name).await
    }

    /// Removes a source; `false` when there was none.
    pub async fn drop_source(&self, name: &str) -> Result<bool> {
        self.forget(name);
        self.docs.delete(name).await
    }

    /// Every source, by name.
    pub async fn list(&self) -> Result<Vec<Source>> {
        self.docs.list().await
    }

    /// Drops this process's opened copy of a source.
    pub fn forget(&self, name: &str) {
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// The source `name` opened (from the cache when its definition has not
    /// changed); `None` when no source has that name.
    pub async fn open(
        &self,
        name: &str,
        state: &datafusion::execution::SessionState,
    ) -> Result<Option<(Source, OpenedSource)>> {
        let Some(source) = self.get(name).await? else {
            self.forget(name);
            return Ok(None);
        };
        if let Some((cached, opened)) = self
            .opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            && *cached == source
        {
            return Ok(Some((source, opened.clone())));
        }
        match self.check(&source, state).await {
            Ok(opened) => {
                self.failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
                Ok(Some((source, opened)))
            }
            Err(e) => {
                self.failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_string(), std::time::Instant::now());
                Err(e)
            }
        }
    }

    /// Whether `name` failed to open within the last minute (listings
    /// skip it).
    pub fn recently_failed(&self, name: &str) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .is_some_and(|t| t.elapsed() < RETRY_AFTER)
    }

    /// Opens a definition not saved yet (proving it works) and keeps it
    /// opened for the first statements that use it.
    pub async fn check(
        &self,
        source: &Source,
        state: &datafusion::execution::SessionState,
    ) -> Result<OpenedSource> {
        let connector = self
            .registry
            .get(&source.source_type)
            .map_err(connector_error)?;
        let opened = connector
            .open(&source.name, &source.options, state)
            .await
            .map_err(connector_error)?;
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(source.name.clone(), (source.clone(), opened.clone()));
        Ok(opened)
    }

    /// A source's default schema (whose tables `SYNC SOURCE` names plainly)
    /// and the schemas it never mirrors (the server's own).
    pub fn schemas_of(&self, source: &Source) -> (Option<String>, &'static [&'static str]) {
        match source.source_type.as_str() {
            "mysql" => (
                source
                    .options
                    .get("url")
                    .and_then(|u| url::Url::parse(u).ok())
                    .map(|u| u.path().trim_start_matches('/').to_string())
                    .filter(|db| !db.is_empty()),
                &["information_schema", "mysql", "performance_schema", "sys"],
            ),
            _ => (
                Some("public".to_string()),
                &["information_schema", "pg_catalog", "pg_toast"],
            ),
        }
    }

    /// The options of `source` as listings show them.
    pub fn shown_options(&self, source: &Source) -> BTreeMap<String, String> {
        self.registry.redacted(&source.source_type, &source.options)
    }
}

fn connector_error(e: autolake_connectors::Error) -> Error {
    use autolake_connectors::Error as E;
    match e {
        E::UnknownType(..) | E::Options { .. } => Error::invalid(e.to_string()),
        E::Source { .. } => Error::Source(e.to_string()),
    }
}

/// Where sync runs are recorded.
pub(crate) fn lineage_table() -> TableName {
    TableName::new(SYSTEM_SCHEMA, "lineage")
}

/// Columns of `system.lineage`: one row per sync run.
pub(crate) fn lineage_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("run", DataType::Int64, false),
        Field::new("mode", DataType::Utf8, false),
        Field::new("cursor_column", DataType::Utf8, true),
        Field::new("cursor", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, false),
        Field::new("rejected", DataType::Int64, false),
        Field::new("version", DataType::Int64, false),
        Field::new(
            "synced_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("user", DataType::Utf8, false),
    ]))
}
