//! Parquet statistics a lake scan can trust when float columns hold NaN.
//!
//! Parquet writers (arrow-rs, so delta-rs and pyarrow) leave NaN out of a
//! float column's min/max, while DataFusion orders NaN above every number
//! and holds NaN = NaN. Bounds computed without NaN are then not bounds for
//! DataFusion's comparisons: `x > 5` prunes a row group whose only match is
//! a NaN, a TopK or join threshold skips it, and DataFusion 55's Parquet
//! opener reads a file whose float column has min = max and no nulls as
//! that constant — every NaN of the file comes back as the other value
//! (`median`, `sum`, `SELECT x` all change).
//!
//! Lake scans therefore hide float statistics from the reader: the file
//! level min/max of float columns are dropped ([`without_float_bounds`]),
//! and the Parquet footer and page index the reader prunes with have float
//! columns' statistics cleared ([`NanSafeReaders`]). Every other column
//! prunes as before; float columns are read as they are, so a query over
//! them answers as DataFusion does over the same rows in memory.

use std::ops::Range;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use bytes::Bytes;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion_datasource_parquet::ParquetFileReaderFactory;
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::basic::{LogicalType, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;

/// Whether values of `data_type` can be NaN.
pub fn is_float(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

/// `stats` of a file of `schema` with the min/max of float columns dropped.
pub fn without_float_bounds(mut stats: Statistics, schema: &Schema) -> Statistics {
    for (field, column) in schema
        .fields()
        .iter()
        .zip(stats.column_statistics.iter_mut())
    {
        if is_float(field.data_type()) {
            column.min_value = Precision::Absent;
            column.max_value = Precision::Absent;
        }
    }
    stats
}

/// Readers whose Parquet metadata carries no statistics for float columns.
#[derive(Debug)]
pub struct NanSafeReaders {
    inner: Arc<dyn ParquetFileReaderFactory>,
}

impl NanSafeReaders {
    /// Wraps the readers DataFusion would use.
    pub fn new(inner: Arc<dyn ParquetFileReaderFactory>) -> Self {
        Self { inner }
    }
}

impl ParquetFileReaderFactory for NanSafeReaders {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::common::Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(NanSafeReader { inner }))
    }
}

struct NanSafeReader {
    inner: Box<dyn AsyncFileReader + Send>,
}

impl AsyncFileReader for NanSafeReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = self.inner.get_metadata(options).await?;
            without_float_statistics(metadata)
        }
        .boxed()
    }
}

/// `metadata` with no min/max, null or page statistics for float leaves;
/// their page index locations are removed too, so nothing loads it later.
pub fn without_float_statistics(
    metadata: Arc<ParquetMetaData>,
) -> parquet::errors::Result<Arc<ParquetMetaData>> {
    let floats: Vec<usize> = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            matches!(
                c.physical_type(),
                PhysicalType::FLOAT | PhysicalType::DOUBLE
            ) || matches!(c.logical_type_ref(), Some(LogicalType::Float16))
        })
        .map(|(i, _)| i)
        .collect();
    if floats.is_empty() {
        return Ok(metadata);
    }
    let mut builder = Arc::unwrap_or_clone(metadata).into_builder();
    let row_groups = builder
        .take_row_groups()
        .into_iter()
        .map(|group| {
            let columns = group
                .columns()
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    if floats.contains(&i) {
                        column
                            .clone()
                            .into_builder()
                            .clear_statistics()
                            .set_column_index_offset(None)
                            .set_column_index_length(None)
                            .build()
                    } else {
                        Ok(column.clone())
                    }
                })
                .collect::<parquet::errors::Result<Vec<_>>>()?;
            group.into_builder().set_column_metadata(columns).build()
        })
        .collect::<parquet::errors::Result<Vec<_>>>()?;
    builder = builder.set_row_groups(row_groups);
    if let Some(mut index) = builder.take_column_index() {
        for group in index.iter_mut() {
            for &i in &floats {
                if let Some(column) = group.get_mut(i) {
                    *column = ColumnIndexMetaData::NONE;
                }
            }
        }
        builder = builder.set_column_index(Some(index));
    }
    Ok(Arc::new(builder.build()))
}
