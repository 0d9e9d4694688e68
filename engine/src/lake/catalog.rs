//! The lake as a DataFusion catalog: `lake` → schemas → Delta tables.
//!
//! DataFusion asks for schema and table *names* synchronously but for
//! tables asynchronously. Tables are therefore always opened from storage
//! at their latest version when a statement plans (so a commit by another
//! process is seen by the next statement), while the name lists are a
//! snapshot that the session refreshes before each statement
//! ([`LakeCatalog::refresh`]).
//!
//! Each session has its own catalog instance: tables registered by
//! DataFusion itself (`CREATE EXTERNAL TABLE`, `CREATE VIEW`) live in the
//! session's overlay and never touch the lake.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use deltalake::DeltaTable;

use super::cache::FileCache;
use super::scan::LakeScan;
use super::{DEFAULT_SCHEMA, Lake, SYSTEM_SCHEMA, TableName};
use crate::error::Result;

/// The `lake` catalog of one session.
#[derive(Debug)]
pub struct LakeCatalog {
    lake: Arc<Lake>,
    schemas: RwLock<BTreeMap<String, Arc<LakeSchema>>>,
    system: Arc<dyn SchemaProvider>,
    scan_settings: ScanSettings,
}

/// How a session's lake tables are read: as a [`LakeScan`], or — for
/// tables using features it does not implement — with delta-rs's provider.
/// Both follow the session's Parquet settings (view types, filter
/// pushdown), kept current by [`LakeCatalog::refresh`]; delta-rs reads them
/// from a session and without one would push every filter into the Parquet
/// decoder, which DataFusion does not do by default.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    lake: Arc<Lake>,
    files: Arc<FileCache>,
    state: Arc<RwLock<Arc<SessionState>>>,
}

impl ScanSettings {
    fn new(lake: Arc<Lake>, files: Arc<FileCache>, config: SessionConfig) -> Self {
        Self {
            lake,
            files,
            state: Arc::new(RwLock::new(Arc::new(Self::state(config)))),
        }
    }

    fn state(config: SessionConfig) -> SessionState {
        SessionStateBuilder::new().with_config(config).build()
    }

    fn update(&self, config: &SessionConfig) {
        let mut current = self.state.write().unwrap_or_else(|e| e.into_inner());
        let key = |c: &SessionConfig| {
            let p = &c.options().execution.parquet;
            (
                p.pushdown_filters,
                p.reorder_filters,
                p.schema_force_view_types,
            )
        };
        if key(current.config()) != key(config) {
            *current = Arc::new(Self::state(config.clone()));
        }
    }

    fn session(&self) -> Arc<SessionState> {
        Arc::clone(&self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A provider reading the table `name`, loaded at some version.
    pub async fn provider(
        &self,
        name: &TableName,
        table: &DeltaTable,
    ) -> DFResult<Arc<dyn TableProvider>> {
        let inner: Arc<dyn TableProvider> = if LakeScan::supports(table)? {
            let view_types = self
                .session()
                .config()
                .options()
                .execution
                .parquet
                .schema_force_view_types;
            Arc::new(LakeScan::try_new(
                table,
                self.lake.store_url().clone(),
                &self.lake.table_path(name),
                view_types,
                Arc::clone(&self.files),
            )?)
        } else {
            table.table_provider().with_session(self.session()).await?
        };
        let keys = super::keys::Keys::of_table(table);
        Ok(Arc::new(
            super::table::LakeTable::new(name.clone(), inner).keyed(&keys),
        ))
    }
}

impl LakeCatalog {
    /// A catalog over `lake` whose `system` schema is `system`.
    pub fn new(
        lake: Arc<Lake>,
        system: Arc<dyn SchemaProvider>,
        files: Arc<FileCache>,
        config: SessionConfig,
    ) -> Self {
        let scan_settings = ScanSettings::new(Arc::clone(&lake), files, config);
        // `public` always exists, so a session can register its own tables
        // before its first statement.
        let public = Arc::new(LakeSchema::new(
            Arc::clone(&lake),
            DEFAULT_SCHEMA.to_string(),
            scan_settings.clone(),
        ));
        Self {
            lake,
            schemas: RwLock::new(BTreeMap::from([(DEFAULT_SCHEMA.to_string(), public)])),
            system,
            scan_settings,
        }
    }

    /// How this session's Delta scans are configured.
    pub fn scan_settings(&self) -> &ScanSettings {
        &self.scan_settings
    }

    /// Re-reads schema and table names from storage, keeping each schema's
    /// session-local tables, and takes the session's current settings.
    pub async fn refresh(&self, config: &SessionConfig) -> Result<()> {
        self.scan_settings.update(config);
        let names = self.lake.list_schemas().await?;
        let mut listed = Vec::with_capacity(names.len());
        for name in &names {
            listed.push((name.clone(), self.lake.list_tables(name).await?));
        }
        let mut schemas = self.schemas.write().unwrap_or_else(|e| e.into_inner());
        schemas.retain(|name, schema| names.contains(name) || schema.has_session_tables());
        for (name, tables) in listed {
            let schema = schemas.entry(name.clone()).or_insert_with(|| {
                Arc::new(LakeSchema::new(
                    Arc::clone(&self.lake),
                    name.clone(),
                    self.scan_settings.clone(),
                ))
            });
            schema.set_lake_tables(tables);
        }
        Ok(())
    }

    /// The schema `name` as this session sees it (lake tables plus its own).
    pub fn session_schema(&self, name: &str) -> Option<Arc<LakeSchema>> {
        self.schemas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

impl CatalogProvider for LakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .schemas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.push(SYSTEM_SCHEMA.to_string());
        names.sort();
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SYSTEM_SCHEMA {
            return Some(Arc::clone(&self.system) as _);
        }
        self.session_schema(name).map(|s| s as _)
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DFResult<Option<Arc<dyn SchemaProvider>>> {
        Err(DataFusionError::Plan(format!(
            "schemas of the lake are created with CREATE SCHEMA, not registered (schema {name})"
        )))
    }
}

/// One schema of the lake, plus the session's own tables in it.
#[derive(Debug)]
pub struct LakeSchema {
    lake: Arc<Lake>,
    name: String,
    scan_settings: ScanSettings,
    lake_tables: RwLock<BTreeSet<String>>,
    session_tables: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
}

impl LakeSchema {
    fn new(lake: Arc<Lake>, name: String, scan_settings: ScanSettings) -> Self {
        Self {
            lake,
            name,
            scan_settings,
            lake_tables: RwLock::default(),
            session_tables: RwLock::default(),
        }
    }

    fn set_lake_tables(&self, tables: BTreeSet<String>) {
        *self.lake_tables.write().unwrap_or_else(|e| e.into_inner()) = tables;
    }

    fn has_session_tables(&self) -> bool {
        !self
            .session_tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    fn session_table(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        self.session_tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Whether `name` is a table DataFusion registered in this session.
    pub fn is_session_table(&self, name: &str) -> bool {
        self.session_table(name).is_some()
    }
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self
            .lake_tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        names.extend(
            self.session_tables
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned(),
        );
        names.into_iter().collect()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self.session_table(name) {
            return Ok(Some(t));
        }
        let table_name = TableName::new(&self.name, name);
        match self.lake.load_table(&table_name).await? {
            Some(table) => Ok(Some(
                self.scan_settings.provider(&table_name, &table).await?,
            )),
            None => Ok(None),
        }
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if self
            .lake_tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&name)
        {
            return Err(DataFusionError::Plan(format!(
                "table {} already exists in the lake",
                TableName::new(&self.name, &name)
            )));
        }
        Ok(self
            .session_tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .session_tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.session_table(name).is_some()
            || self
                .lake_tables
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(name)
    }
}
