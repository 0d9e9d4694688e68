//! Reading lake tables: a Delta snapshot as a DataFusion Parquet scan.
//!
//! The snapshot (from the Delta log) says which files make up the table at
//! a version and what their partition values are; everything after that is
//! DataFusion's own Parquet scan, built the way its `ListingTable` builds
//! one: the same file source and options from the session, file groups
//! split across `target_partitions`, and per-file statistics read from the
//! Parquet footers. Using the footers (not only the row counts the log
//! carries) gives the optimizer the same column statistics it has over
//! plain Parquet, so joins are ordered and distributed the same way.
//!
//! Data files are immutable in Delta, so a file's statistics are cached by
//! path for the life of the engine, and a server keeps whole decoded scans
//! under the files' paths ([`FileCache`]).
//!
//! Tables using reader features this scan does not implement (deletion
//! vectors, column mapping) are read with delta-rs's own provider instead;
//! see [`LakeScan::supports`].

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{ScalarValue, Statistics, plan_datafusion_err};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::error::Result as DFResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion_datasource::file::FileSource;
use datafusion_datasource::source::DataSourceExec;
use datafusion_datasource::{TableSchemaBuilder, compute_all_files_statistics};
use datafusion_datasource_parquet::source::ParquetSource;
use datafusion_datasource_parquet::{CachedParquetFileReaderFactory, transform_schema_to_view};
use deltalake::DeltaTable;
use object_store::ObjectMeta;
use object_store::path::Path;

use super::cache::{CacheFill, FileCache, ScanKey};
use crate::error::{Error, Result};

/// One data file of a snapshot.
#[derive(Debug, Clone)]
struct DataFile {
    meta: ObjectMeta,
    partition_values: Vec<ScalarValue>,
}

/// A lake table at one version, scanned as Parquet.
#[derive(Debug)]
pub struct LakeScan {
    store_url: ObjectStoreUrl,
    /// Columns in the table's order.
    schema: SchemaRef,
    /// Columns stored in the files (the table's minus partition columns).
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    /// For each table column, its index in the scan's output order (file
    /// columns, then partition columns).
    scan_index: Vec<usize>,
    files: Vec<DataFile>,
    /// The table's folder, files and file schema: what decoded scans of
    /// this snapshot are kept under.
    key: ScanKey,
    cache: Arc<FileCache>,
}

impl LakeScan {
    /// Whether this scan can read `table` (no deletion vectors, no column
    /// mapping, all files inside the table's folder).
    pub fn supports(table: &DeltaTable) -> Result<bool> {
        let snapshot = table.snapshot()?;
        let features = snapshot
            .protocol()
            .reader_features()
            .map(|f| f.iter().map(|f| f.to_string()).collect::<Vec<_>>())
            .unwrap_or_default();
        // Reader version 2 signals column mapping by table property alone.
        let column_mapping = snapshot
            .metadata()
            .configuration()
            .get("delta.columnMapping.mode")
            .is_some_and(|mode| mode != "none");
        Ok(!column_mapping
            && !features
                .iter()
                .any(|f| f == "deletionVectors" || f == "columnMapping"))
    }

    /// The scan of `table` as loaded; files are read through the store
    /// registered in the session under `store_url` at `table_root`.
    pub fn try_new(
        table: &DeltaTable,
        store_url: ObjectStoreUrl,
        table_root: &Path,
        view_types: bool,
        cache: Arc<FileCache>,
    ) -> Result<Self> {
        let snapshot = table.snapshot()?;
        let arrow_schema = snapshot.snapshot().arrow_schema();
        let arrow_schema = if view_types {
            Arc::new(transform_schema_to_view(&arrow_schema))
        } else {
            arrow_schema
        };
        let partition_columns = snapshot.metadata().partition_columns().to_vec();
        let file_fields: Vec<FieldRef> = arrow_schema
            .fields()
            .iter()
            .filter(|f| !partition_columns.contains(f.name()))
            .cloned()
            .collect();
        // Partition values come from the log, as plain (non-view) types.
        let partition_fields: Vec<FieldRef> = partition_columns
            .iter()
            .map(|name| {
                let field = arrow_schema.field_with_name(name).map_err(|_| {
                    Error::invalid(format!(
                        "partition column {name} is not in the table schema"
                    ))
                })?;
                Ok(Arc::new(Field::new(
                    name,
                    plain_type(field.data_type()),
                    field.is_nullable(),
                )))
            })
            .collect::<Result<_>>()?;
        let table_fields: Vec<FieldRef> = arrow_schema
            .fields()
            .iter()
            .map(|f| {
                partition_fields
                    .iter()
                    .find(|p| p.name() == f.name())
                    .cloned()
                    .unwrap_or_else(|| Arc::clone(f))
            })
            .collect();
        let scan_index = table_fields
            .iter()
            .map(
                |f| match partition_columns.iter().position(|p| p == f.name()) {
                    Some(i) => file_fields.len() + i,
                    None => file_fields
                        .iter()
                        .position(|ff| ff.name() == f.name())
                        .unwrap_or_default(),
                },
            )
            .collect();

        let mut files = Vec::new();
        for view in snapshot.log_data().iter() {
            let relative = view.object_store_path();
            let location = relative
                .parts()
                .fold(table_root.clone(), |path, part| path.join(part));
            let raw = view.partition_values_map();
            let partition_values = partition_fields
                .iter()
                .map(|f| parse_partition_value(f, raw.get(f.name()).cloned().flatten()))
                .collect::<Result<_>>()?;
            files.push(DataFile {
                meta: ObjectMeta {
                    location,
                    last_modified: chrono::DateTime::from_timestamp_millis(
                        view.modification_time(),
                    )
                    .unwrap_or_default(),
                    size: view.size().max(0) as u64,
                    e_tag: None,
                    version: None,
                },
                partition_values,
            });
        }
        let file_schema = Arc::new(Schema::new(file_fields));
        let key = ScanKey {
            root: table_root.clone(),
            files: files.iter().map(|f| f.meta.location.clone()).collect(),
            schema: schema_key(&file_schema),
        };
        Ok(Self {
            store_url,
            schema: Arc::new(Schema::new(table_fields)),
            file_schema,
            partition_fields,
            scan_index,
            files,
            key,
            cache,
        })
    }

    fn scan_schema(&self) -> SchemaRef {
        let fields: Vec<FieldRef> = self
            .file_schema
            .fields()
            .iter()
            .chain(self.partition_fields.iter())
            .cloned()
            .collect();
        Arc::new(Schema::new(fields))
    }

    async fn file_statistics(
        &self,
        state: &dyn Session,
        format: &ParquetFormat,
        schema_key: &str,
        file: &DataFile,
    ) -> DFResult<Arc<Statistics>> {
        let key = (file.meta.location.clone(), schema_key.to_string());
        if let Some(stats) = self.cache.statistics(&key) {
            return Ok(stats);
        }
        let store = state.runtime_env().object_store(&self.store_url)?;
        let stats = format
            .infer_stats(state, &store, Arc::clone(&self.file_schema), &file.meta)
            .await?;
        // Float bounds leave NaN out: not bounds at all (see `nan`).
        let stats = Arc::new(super::nan::without_float_bounds(stats, &self.file_schema));
        self.cache.put_statistics(key, Arc::clone(&stats));
        Ok(stats)
    }
}

impl LakeScan {
    /// `source` reading through DataFusion's cached Parquet readers with
    /// float statistics hidden (see `nan`), as `create_physical_plan`
    /// would set it up otherwise.
    fn nan_safe(
        &self,
        state: &dyn Session,
        format: &ParquetFormat,
        source: Arc<dyn FileSource>,
    ) -> DFResult<Arc<dyn FileSource>> {
        let parquet = source
            .downcast_ref::<ParquetSource>()
            .cloned()
            .ok_or_else(|| plan_datafusion_err!("cannot scan lake table: not a Parquet source"))?;
        let runtime = state.runtime_env();
        let store = runtime.object_store(&self.store_url)?;
        let cache = runtime.cache_manager.get_file_metadata_cache();
        let readers = super::nan::NanSafeReaders::new(Arc::new(
            CachedParquetFileReaderFactory::new(store, cache),
        ));
        let mut parquet = parquet
            .with_table_parquet_options(format.options().clone())
            .with_parquet_file_reader_factory(Arc::new(readers));
        if let Some(hint) = format.metadata_size_hint() {
            parquet = parquet.with_metadata_size_hint(hint);
        }
        Ok(Arc::new(parquet))
    }
}

/// What identifies the schema a file is read with.
fn schema_key(file_schema: &Schema) -> String {
    format!("{:?}", file_schema.fields())
}

/// Partition columns are materialised from the log, so dictionary and
/// view encodings buy nothing there.
fn plain_type(data_type: &arrow::datatypes::DataType) -> arrow::datatypes::DataType {
    use arrow::datatypes::DataType;
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Dictionary(_, v) => plain_type(v),
        other => other.clone(),
    }
}

/// Parses a partition value as Delta serialises it (a string, or null).
fn parse_partition_value(field: &Field, value: Option<String>) -> Result<ScalarValue> {
    let Some(value) = value else {
        return Ok(ScalarValue::try_from(field.data_type())?);
    };
    let strings: ArrayRef = Arc::new(StringArray::from(vec![value.as_str()]));
    let typed = cast(&strings, field.data_type()).map_err(|e| {
        Error::invalid(format!(
            "partition value '{value}' of column {} is not a valid {}: {e}",
            field.name(),
            field.data_type()
        ))
    })?;
    if typed.is_null(0) {
        return Err(Error::invalid(format!(
            "partition value '{value}' of column {} is not a valid {}",
            field.name(),
            field.data_type()
        )));
    }
    Ok(ScalarValue::try_from_array(&typed, 0)?)
}

#[async_trait]
impl TableProvider for LakeScan {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // DataFusion keeps every filter above the scan and pushes what the
        // Parquet source can use (pruning, optional row filters) down.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let projection: Option<Vec<usize>> = projection.map(|p| {
            p.iter()
                .map(|i| self.scan_index.get(*i).copied().unwrap_or(*i))
                .collect()
        });
        if self.files.is_empty() {
            let schema = self.scan_schema();
            let projected = match &projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        // A scan sent to a cluster is read there: no decoded scan of this
        // process goes with it, and its Parquet readers are DataFusion's.
        let remote = crate::settings::session_cluster(state.config())?.is_some();
        // Decoded scans of these files, when a server keeps them.
        let data = self.cache.data();
        let columns: Vec<usize> = match &projection {
            Some(p) => p.clone(),
            None => (0..self.scan_index.len()).collect(),
        };
        let ascending = columns.windows(2).all(|w| w[0] < w[1]);
        if ascending
            && !remote
            && let Some(partitions) = data.get(&self.key, &columns)
        {
            let schema = Arc::new(self.scan_schema().project(&columns)?);
            let source = MemorySourceConfig::try_new(&partitions, schema, None)?.with_limit(limit);
            return Ok(DataSourceExec::from_data_source(source));
        }
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let collect = state.config().collect_statistics();
        let schema_key = &self.key.schema;
        let mut files = Vec::with_capacity(self.files.len());
        for file in &self.files {
            let mut part = PartitionedFile::from(file.meta.clone())
                .with_partition_values(file.partition_values.clone());
            if collect {
                part = part.with_statistics(
                    self.file_statistics(state, &format, schema_key, file)
                        .await?,
                );
            }
            files.push(part);
        }
        let groups = FileGroup::new(files).split_files(state.config().target_partitions().max(1));
        let (groups, statistics) =
            compute_all_files_statistics(groups, self.scan_schema(), collect, false)?;
        let table_schema = TableSchemaBuilder::from(&self.file_schema)
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let floats = self
            .file_schema
            .fields()
            .iter()
            .any(|f| super::nan::is_float(f.data_type()));
        // NaN-safe readers stay in this process (a plan carries no reader
        // factory): on a cluster, float tables are read without pruning
        // instead, which needs no statistics at all (see `nan`).
        let format = if floats && remote {
            let mut options = format.options().clone();
            options.global.pruning = false;
            options.global.enable_page_index = false;
            ParquetFormat::default().with_options(options)
        } else {
            format
        };
        let source = format.file_source(table_schema);
        let source = if floats && !remote {
            self.nan_safe(state, &format, source)?
        } else {
            source
        };
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(groups)
            .with_statistics(statistics)
            .with_projection_indices(projection)?
            .with_limit(limit)
            .build();
        let plan = if floats && !remote {
            // `create_physical_plan` would put DataFusion's readers back.
            DataSourceExec::from_data_source(config)
        } else {
            format
                .create_physical_plan(state, config)
                .await
                .map_err(|e| plan_datafusion_err!("cannot scan lake table: {e}"))?
        };
        // Only a whole scan is kept: anything filtered or cut short is not
        // the table.
        Ok(
            if ascending && !remote && data.enabled() && filters.is_empty() && limit.is_none() {
                Arc::new(CacheFill::over(
                    plan,
                    Arc::clone(&self.cache),
                    self.key.clone(),
                    columns,
                ))
            } else {
                plan
            },
        )
    }
}
