//! The read-only `system` schema: views over lake state, computed when
//! scanned.
//!
//! Each system table implements [`SystemTable`] (a schema and a function
//! producing its rows); [`SystemSchema`] exposes them to DataFusion and
//! refuses every registration. Writes are refused earlier, in the session,
//! for every statement kind, so no SQL — admin's included — changes them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::cache::FileCache;
use super::scan::LakeScan;
use super::{Lake, SYSTEM_SCHEMA, TableName};
use crate::error::Result;

/// Table-configuration key recording a table's owner when it changed
/// hands; otherwise the owner is the user of the creating commit.
pub const OWNER_PROPERTY: &str = "autolake.owner";

/// A table of the `system` schema.
#[async_trait]
pub trait SystemTable: fmt::Debug + Send + Sync {
    /// The table's columns.
    fn schema(&self) -> SchemaRef;
    /// Its rows, read now.
    async fn rows(&self) -> Result<Vec<RecordBatch>>;
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
    /// The system schema of `lake`, with every built-in system table.
    pub fn new(lake: Arc<Lake>, files: Arc<FileCache>) -> Self {
        let mut schema = Self {
            lake: Arc::clone(&lake),
            files,
            tables: BTreeMap::new(),
            delta_tables: BTreeMap::new(),
        };
        schema.add(
            "tables",
            Arc::new(TablesTable {
                lake: Arc::clone(&lake),
                owners: None,
            }),
        );
        schema.add("monitors", Arc::new(crate::monitor::MonitorsTable { lake }));
        let metrics = crate::monitor::metrics_table();
        schema.add_delta(&metrics.table, crate::monitor::metrics_schema());
        schema
    }

    /// Adds a system table (used by capabilities that keep their own state).
    pub fn add(&mut self, name: &str, table: Arc<dyn SystemTable>) {
        self.tables.insert(name.to_string(), table);
    }

    /// Makes `system.tables` show the owners governance records (an owner
    /// changed by `ALTER TABLE … OWNER TO` included).
    pub fn set_table_owners(&mut self, owners: TableOwners) {
        self.add(
            "tables",
            Arc::new(TablesTable {
                lake: Arc::clone(&self.lake),
                owners: Some(owners),
            }),
        );
    }

    /// Adds a Delta table AutoLake appends to (empty, with `schema`, until
    /// first written).
    pub fn add_delta(&mut self, name: &str, schema: SchemaRef) {
        self.delta_tables.insert(name.to_string(), schema);
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
            return self
                .delta_table(name, schema)
                .await
                .map(Some)
                .map_err(|e| DataFusionError::External(Box::new(e)));
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

/// The user of a table's creating commit, when that commit is still in
/// the log.
async fn creator(table: &deltalake::DeltaTable) -> Option<String> {
    let bytes = table.log_store().read_commit_entry(0).await.ok()??;
    String::from_utf8_lossy(&bytes).lines().find_map(|line| {
        let action: serde_json::Value = serde_json::from_str(line).ok()?;
        action
            .get("commitInfo")?
            .get("userName")?
            .as_str()
            .map(str::to_string)
    })
}

/// Who owns a lake table, where governance recorded it.
pub type TableOwners = Arc<dyn Fn(&TableName) -> Option<String> + Send + Sync>;

/// `system.tables`: one row per lake table.
struct TablesTable {
    lake: Arc<Lake>,
    /// Recorded owners; a table without one is owned by the user of its
    /// creating commit.
    owners: Option<TableOwners>,
}

impl std::fmt::Debug for TablesTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TablesTable")
            .field("lake", &self.lake)
            .finish_non_exhaustive()
    }
}

fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

#[async_trait]
impl SystemTable for TablesTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("schema", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("location", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new("files", DataType::Int64, false),
            Field::new("bytes", DataType::Int64, false),
            Field::new("partition_columns", DataType::Utf8, false),
            Field::new("owner", DataType::Utf8, true),
            Field::new("created_at", utc_millis(), true),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let mut schema_col = StringBuilder::new();
        let mut name = StringBuilder::new();
        let mut location = StringBuilder::new();
        let mut version = Int64Builder::new();
        let mut files = Int64Builder::new();
        let mut bytes = Int64Builder::new();
        let mut partitions = StringBuilder::new();
        let mut owner = StringBuilder::new();
        let mut created = TimestampMillisecondBuilder::new().with_timezone("UTC");
        for schema in self.lake.list_schemas().await? {
            for table in self.lake.list_tables(&schema).await? {
                let table_name = TableName::new(&schema, &table);
                // A table dropped between listing and loading is skipped.
                let Some(delta) = self.lake.load_table(&table_name).await? else {
                    continue;
                };
                let snapshot = delta.snapshot()?;
                let log_data = snapshot.log_data();
                let (count, size) = log_data
                    .iter()
                    .fold((0i64, 0i64), |(c, s), f| (c + 1, s + f.size()));
                let metadata = snapshot.metadata();
                schema_col.append_value(&schema);
                name.append_value(&table);
                location.append_value(self.lake.table_url(&table_name).as_str());
                version.append_value(snapshot.version() as i64);
                files.append_value(count);
                bytes.append_value(size);
                partitions.append_value(metadata.partition_columns().join(","));
                let recorded = self.owners.as_ref().and_then(|owners| owners(&table_name));
                let table_owner = match recorded {
                    Some(o) => Some(o),
                    None => match metadata.configuration().get(OWNER_PROPERTY) {
                        Some(o) => Some(o.clone()),
                        None => creator(&delta).await,
                    },
                };
                owner.append_option(table_owner);
                created.append_option(metadata.created_time());
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(schema_col.finish()),
            Arc::new(name.finish()),
            Arc::new(location.finish()),
            Arc::new(version.finish()),
            Arc::new(files.finish()),
            Arc::new(bytes.finish()),
            Arc::new(partitions.finish()),
            Arc::new(owner.finish()),
            Arc::new(created.finish()),
        ];
        Ok(vec![RecordBatch::try_new(self.schema(), columns)?])
    }
}
