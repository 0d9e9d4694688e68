//! `system.sources`: one row per source, options redacted.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::table::{SystemTable, utc_millis};
use crate::error::Result;
use crate::sources::Sources;

/// `system.sources`: one row per source, options redacted.
#[derive(Debug)]
pub(crate) struct SourcesTable {
    pub(crate) sources: Arc<Sources>,
}

#[async_trait]
impl SystemTable for SourcesTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("type", DataType::Utf8, false),
            Field::new("options", DataType::Utf8, false),
            Field::new("owner", DataType::Utf8, false),
            Field::new("created_at", utc_millis(), false),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let mut name = StringBuilder::new();
        let mut kind = StringBuilder::new();
        let mut options = StringBuilder::new();
        let mut owner = StringBuilder::new();
        let mut created = TimestampMillisecondBuilder::new().with_timezone("UTC");
        for s in self.sources.list().await? {
            name.append_value(&s.name);
            kind.append_value(&s.source_type);
            let shown = self.sources.shown_options(&s);
            options.append_value(serde_json::to_string(&shown).unwrap_or_default());
            owner.append_value(&s.owner);
            created.append_value(s.created_at.timestamp_millis());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(name.finish()),
            Arc::new(kind.finish()),
            Arc::new(options.finish()),
            Arc::new(owner.finish()),
            Arc::new(created.finish()),
        ];
        Ok(vec![RecordBatch::try_new(self.schema(), columns)?])
    }
}
