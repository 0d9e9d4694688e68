//! `system.column_tags`: one row per tag on a column.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::table::{SystemTable, utc_millis};
use crate::error::Result;
use crate::governance::Governance;

/// `system.column_tags`: every tag set on a column. `origin` is `set` for a
/// tag set by `ALTER TABLE … SET TAGS`; `derived_from` names the source
/// column of a tag that followed the data (empty for set tags).
#[derive(Debug)]
pub(crate) struct ColumnTagsTable {
    pub(crate) governance: Arc<Governance>,
}

#[async_trait]
impl SystemTable for ColumnTagsTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("schema", DataType::Utf8, false),
            Field::new("table", DataType::Utf8, false),
            Field::new("column", DataType::Utf8, false),
            Field::new("tag", DataType::Utf8, false),
            Field::new("origin", DataType::Utf8, false),
            Field::new("derived_from", DataType::Utf8, true),
            Field::new("set_by", DataType::Utf8, false),
            Field::new("set_at", utc_millis(), false),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let state = self.governance.state().await?;
        let mut tags = state.tags.clone();
        tags.sort_by(|a, b| (&a.table, &a.column, &a.tag).cmp(&(&b.table, &b.column, &b.tag)));
        let mut schema = StringBuilder::new();
        let mut table = StringBuilder::new();
        let mut column = StringBuilder::new();
        let mut tag = StringBuilder::new();
        let mut origin = StringBuilder::new();
        let mut derived = StringBuilder::new();
        let mut by = StringBuilder::new();
        let mut at = TimestampMillisecondBuilder::new().with_timezone("UTC");
        for t in &tags {
            let (s, n) = t.table.split_once('.').unwrap_or(("", &t.table));
            schema.append_value(s);
            table.append_value(n);
            column.append_value(&t.column);
            tag.append_value(&t.tag);
            origin.append_value("set");
            derived.append_null();
            by.append_value(&t.created_by);
            at.append_value(t.created_at.timestamp_millis());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(schema.finish()),
            Arc::new(table.finish()),
            Arc::new(column.finish()),
            Arc::new(tag.finish()),
            Arc::new(origin.finish()),
            Arc::new(derived.finish()),
            Arc::new(by.finish()),
            Arc::new(at.finish()),
        ];
        Ok(vec![RecordBatch::try_new(self.schema(), columns)?])
    }
}
