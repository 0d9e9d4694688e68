//! `system.tables`: one row per lake table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::table::{SystemTable, TableOwners, utc_millis};
use crate::error::Result;
use crate::lake::{Lake, TableName};

/// Table-configuration key recording a table's owner when it changed
/// hands; otherwise the owner is the user of the creating commit.
const OWNER_PROPERTY: &str = "autolake.owner";

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

/// `system.tables`: one row per lake table.
pub(super) struct TablesTable {
    pub(super) lake: Arc<Lake>,
    /// Recorded owners; a table without one is owned by the user of its
    /// creating commit.
    pub(super) owners: TableOwners,
}

impl std::fmt::Debug for TablesTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TablesTable")
            .field("lake", &self.lake)
            .finish_non_exhaustive()
    }
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
                let recorded = (self.owners)(&table_name);
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
