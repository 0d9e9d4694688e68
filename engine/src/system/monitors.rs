//! `system.monitors`: one row per monitor.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::table::{SystemTable, utc_millis};
use crate::error::Result;
use crate::lake::Lake;
use crate::monitor::MonitorStore;

/// `system.monitors`: one row per monitor.
#[derive(Debug)]
pub(crate) struct MonitorsTable {
    pub(crate) lake: Arc<Lake>,
}

#[async_trait]
impl SystemTable for MonitorsTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("table", DataType::Utf8, false),
            Field::new("schedule", DataType::Utf8, false),
            Field::new("check", DataType::Utf8, false),
            Field::new("owner", DataType::Utf8, false),
            Field::new("created_at", utc_millis(), false),
            Field::new("on_drift", DataType::Utf8, true),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let monitors = MonitorStore::new(Arc::clone(&self.lake)).list().await?;
        let mut name = StringBuilder::new();
        let mut table = StringBuilder::new();
        let mut schedule = StringBuilder::new();
        let mut check = StringBuilder::new();
        let mut owner = StringBuilder::new();
        let mut created = TimestampMillisecondBuilder::new().with_timezone("UTC");
        let mut on_drift = StringBuilder::new();
        for m in monitors {
            name.append_value(&m.name);
            table.append_value(&m.table);
            schedule.append_value(&m.schedule);
            check.append_value(&m.check);
            owner.append_value(&m.owner);
            created.append_value(m.created_at.timestamp_millis());
            on_drift.append_option(m.on_drift.as_ref().map(|r| r.to_string()));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(name.finish()),
            Arc::new(table.finish()),
            Arc::new(schedule.finish()),
            Arc::new(check.finish()),
            Arc::new(owner.finish()),
            Arc::new(created.finish()),
            Arc::new(on_drift.finish()),
        ];
        Ok(vec![RecordBatch::try_new(self.schema(), columns)?])
    }
}
