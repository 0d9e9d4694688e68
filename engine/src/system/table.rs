//! What every system table is: a schema and rows read when scanned.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use async_trait::async_trait;

use crate::error::Result;
use crate::lake::TableName;

/// A table of the `system` schema.
#[async_trait]
pub(crate) trait SystemTable: fmt::Debug + Send + Sync {
    /// The table's columns.
    fn schema(&self) -> SchemaRef;
    /// Its rows, read now.
    async fn rows(&self) -> Result<Vec<RecordBatch>>;
}

/// Who owns a lake table, where governance recorded it.
pub(crate) type TableOwners = Arc<dyn Fn(&TableName) -> Option<String> + Send + Sync>;

/// The type of the system tables' timestamps.
pub(crate) fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// A text column.
pub(crate) fn strings(values: Vec<String>) -> arrow::array::ArrayRef {
    std::sync::Arc::new(arrow::array::StringArray::from(values))
}
