//! The read-only `system` schema: views over lake state, computed when
//! scanned.
//!
//! Each system table implements [`SystemTable`] (a schema and a function
//! producing its rows); [`SystemSchema`] exposes them to DataFusion and
//! refuses every registration. Writes are refused earlier, in the session,
//! for every statement kind, so no SQL — admin's included — changes them.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

mod devices;
mod grants;
mod jobs;
mod models;
mod monitors;
mod pipelines;
mod sources;
mod table;
mod tables;
mod tags;
mod users;

use crate::error::Result;
use crate::governance::accounts::UserStore;
use crate::governance::audit::{audit_schema, audit_table};
use crate::governance::{Governance, Securable};
use crate::jobs::{Jobs, runs_schema, runs_table};
use crate::lake::cache::FileCache;
use crate::lake::scan::LakeScan;
use crate::lake::{Lake, SYSTEM_SCHEMA, TableName};
use crate::models::ModelRegistry;
use crate::monitor::{metrics_schema, metrics_table};
use crate::sources::Sources;
use table::SystemTable;

/// The state the system tables show.
pub(crate) struct Stores {
    pub lake: Arc<Lake>,
    pub files: Arc<FileCache>,
    pub governance: Arc<Governance>,
    pub models: Arc<ModelRegistry>,
    pub sources: Arc<Sources>,
    pub jobs: Arc<Jobs>,
    pub devices: Arc<crate::devices::Devices>,
    pub pipelines: Arc<crate::pipelines::Pipelines>,
}

/// The `system` schema.
#[derive(Debug)]
pub struct SystemSchema {
    lake: Arc<Lake>,
    files: Arc<FileCache>,
    /// Views computed when scanned.
    tables: BTreeMap<String, Arc<dyn SystemTable>>,
    /// Delta tables AutoLake appends to, stored as lake tables of the
    /// schema `system`; empty (with their columns) until first written.
    delta_tables: BTreeMap<String, SchemaRef>,
}

impl SystemSchema {
    /// The system schema of `lake` with every system table: the one place
    /// they are registered.
    pub(crate) fn new(stores: Stores) -> Self {
        let Stores {
            lake,
            files,
            governance,
            models,
            sources,
            jobs,
            devices,
            pipelines,
        } = stores;
        let mut schema = Self {
            lake: Arc::clone(&lake),
            files,
            tables: BTreeMap::new(),
            delta_tables: BTreeMap::new(),
        };
        let owners = Arc::clone(&governance);
        schema.add(
            "tables",
            Arc::new(tables::TablesTable {
                lake: Arc::clone(&lake),
                owners: Arc::new(move |table| {
                    owners
                        .cached()
                        .owners
                        .get(&Securable::table(table))
                        .cloned()
                }),
            }),
        );
        schema.add(
            "users",
            Arc::new(users::UsersTable {
                users: UserStore::new(Arc::clone(&lake)),
            }),
        );
        schema.add(
            "templates",
            Arc::new(pipelines::TemplatesTable {
                pipelines: Arc::clone(&pipelines),
                governance: Arc::clone(&governance),
            }),
        );
        schema.add(
            "pipelines",
            Arc::new(pipelines::PipelinesTable {
                pipelines: Arc::clone(&pipelines),
            }),
        );
        schema.add(
            "column_tags",
            Arc::new(tags::ColumnTagsTable {
                governance: Arc::clone(&governance),
            }),
        );
        schema.add("grants", Arc::new(grants::GrantsTable { governance }));
        schema.add("models", Arc::new(models::ModelsTable { registry: models }));
        schema.add("sources", Arc::new(sources::SourcesTable { sources }));
        schema.add("jobs", Arc::new(jobs::JobsTable { jobs }));
        schema.add(
            "device_history",
            Arc::new(devices::DeviceHistoryTable {
                devices: Arc::clone(&devices),
            }),
        );
        schema.add("devices", Arc::new(devices::DevicesTable { devices }));
        schema.add(
            "monitors",
            Arc::new(monitors::MonitorsTable {
                lake: Arc::clone(&lake),
            }),
        );
        for (name, kind, key) in [
            ("tables", "table", &["schema", "name"][..]),
            ("models", "model", &["name"][..]),
            ("sources", "source", &["name"][..]),
            ("jobs", "job", &["name"][..]),
            ("monitors", "monitor", &["name"][..]),
        ] {
            schema.add_pipeline_column(name, &pipelines, kind, key);
        }
        for (table, columns) in [
            (audit_table(), audit_schema()),
            (
                crate::sources::lineage_table(),
                crate::sources::lineage_schema(),
            ),
            (runs_table(), runs_schema()),
            (metrics_table(), metrics_schema()),
            (
                crate::models::events_table(),
                crate::models::events_schema(),
            ),
            (
                crate::history::queries_table(),
                crate::history::queries_schema(),
            ),
        ] {
            schema.delta_tables.insert(table.table, columns);
        }
        schema
    }

    fn add(&mut self, name: &str, table: Arc<dyn SystemTable>) {
        self.tables.insert(name.to_string(), table);
    }

    /// Adds a `pipeline` column to the table `name`, which lists objects
    /// of `kind` named by the columns `key`.
    fn add_pipeline_column(
        &mut self,
        name: &str,
        pipelines: &Arc<crate::pipelines::Pipelines>,
        kind: &'static str,
        key: &'static [&'static str],
    ) {
        if let Some(inner) = self.tables.remove(name) {
            self.add(
                name,
                Arc::new(pipelines::WithPipeline {
                    inner,
                    pipelines: Arc::clone(pipelines),
                    kind,
                    key,
                }),
            );
        }
    }

    /// Whether `name` is a system table.
    pub fn contains(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.delta_tables.contains_key(name)
    }

    async fn delta_table(&self, name: &str, schema: &SchemaRef) -> Result<Arc<dyn TableProvider>> {
        let table_name = TableName::new(SYSTEM_SCHEMA, name);
        let Some(table) = self.lake.load_table(&table_name).await? else {
            return Ok(Arc::new(datafusion::datasource::MemTable::try_new(
                Arc::clone(schema),
                vec![vec![]],
            )?));
        };
        if LakeScan::supports(&table)? {
            Ok(Arc::new(LakeScan::try_new(
                &table,
                self.lake.store_url().clone(),
                &self.lake.table_path(&table_name),
                false,
                Arc::clone(&self.files),
            )?))
        } else {
            Ok(table.table_provider().await?)
        }
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables
            .keys()
            .chain(self.delta_tables.keys())
            .cloned()
            .collect()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if let Some(schema) = self.delta_tables.get(name) {
            let table = self
                .delta_table(name, schema)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            // Narrowed to the reader's own rows by the data boundaries.
            return Ok(Some(if name == crate::history::queries_table().table {
                Arc::new(crate::history::QueryHistoryTable(table))
            } else {
                table
            }));
        }
        Ok(self
            .tables
            .get(name)
            .map(|t| Arc::new(SystemTableProvider(Arc::clone(t))) as _))
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::Plan(format!(
            "{SYSTEM_SCHEMA}.{name} is read-only: the system schema is maintained by AutoLake and cannot be changed by SQL"
        )))
    }

    fn deregister_table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::Plan(format!(
            "{SYSTEM_SCHEMA}.{name} is read-only: the system schema is maintained by AutoLake and cannot be changed by SQL"
        )))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.contains(name)
    }
}

#[derive(Debug)]
struct SystemTableProvider(Arc<dyn SystemTable>);

#[async_trait]
impl TableProvider for SystemTableProvider {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let rows = self.0.rows().await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[rows],
            self.schema(),
            projection.cloned(),
        )?)
    }
}
