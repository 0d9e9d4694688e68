//! `system.jobs`: one row per job with its progress.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use serde_json::json;

use super::table::SystemTable;
use crate::error::Result;
use crate::jobs::{Jobs, next_due};

/// `system.jobs`: one row per job with its progress.
#[derive(Debug)]
pub(crate) struct JobsTable {
    pub(crate) jobs: Arc<Jobs>,
}

#[async_trait]
impl SystemTable for JobsTable {
    fn schema(&self) -> SchemaRef {
        let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("schedule", DataType::Utf8, false),
            Field::new("statement", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("window", DataType::Utf8, true),
            Field::new("paused", DataType::Boolean, false),
            Field::new("created_by", DataType::Utf8, false),
            Field::new("created_at", ts(), false),
            Field::new("last_run", DataType::Int64, false),
            Field::new("last_status", DataType::Utf8, true),
            Field::new("last_start", ts(), true),
            Field::new("last_error", DataType::Utf8, true),
            Field::new("next_run", ts(), true),
            Field::new("input_versions", DataType::Utf8, false),
            Field::new("watermark", ts(), true),
            Field::new("upstreams", DataType::Utf8, true),
            Field::new("blocked_by", DataType::Utf8, true),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let mut name = StringBuilder::new();
        let mut schedule = StringBuilder::new();
        let mut statement = StringBuilder::new();
        let mut kind = StringBuilder::new();
        let mut window = StringBuilder::new();
        let mut paused = BooleanBuilder::new();
        let mut created_by = StringBuilder::new();
        let mut created_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut last_run = Int64Builder::new();
        let mut last_status = StringBuilder::new();
        let mut last_start = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut last_error = StringBuilder::new();
        let mut next_run = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut inputs = StringBuilder::new();
        let mut watermark = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut upstreams = StringBuilder::new();
        let mut blocked = StringBuilder::new();
        for job in self.jobs.list().await? {
            let state = self.jobs.state(&job.name).await?;
            name.append_value(&job.name);
            schedule.append_value(job.schedule_text());
            statement.append_value(&job.statement);
            kind.append_value(&job.kind);
            window.append_option(job.window.as_ref().map(|w| match &w.slide {
                Some(slide) => format!(
                    "HOP ({}, '{slide}', '{}') WATERMARK '{}' LATE INTO {}",
                    w.column, w.size, w.watermark, w.late_into
                ),
                None => format!(
                    "TUMBLE ({}, '{}') WATERMARK '{}' LATE INTO {}",
                    w.column, w.size, w.watermark, w.late_into
                ),
            }));
            paused.append_value(job.paused);
            created_by.append_value(&job.created_by);
            created_at.append_value(job.created_at.timestamp_micros());
            last_run.append_value(state.run);
            last_status.append_option(state.last_status.map(|s| s.as_str()));
            last_start.append_option(state.last_start.map(|t| t.timestamp_micros()));
            last_error.append_option(state.last_error.as_deref());
            next_run.append_option(if job.paused {
                None
            } else {
                next_due(&job, &state).map(|t| t.timestamp_micros())
            });
            inputs.append_value(json!(state.inputs).to_string());
            watermark.append_option(state.watermark);
            if job.after.is_empty() {
                upstreams.append_null();
                blocked.append_null();
            } else {
                upstreams.append_value(job.after.join(", "));
                let why = crate::jobs::blocked_by(&self.jobs, &job).await?;
                blocked.append_option((!why.is_empty()).then(|| why.join(", ")));
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(name.finish()),
            Arc::new(schedule.finish()),
            Arc::new(statement.finish()),
            Arc::new(kind.finish()),
            Arc::new(window.finish()),
            Arc::new(paused.finish()),
            Arc::new(created_by.finish()),
            Arc::new(created_at.finish()),
            Arc::new(last_run.finish()),
            Arc::new(last_status.finish()),
            Arc::new(last_start.finish()),
            Arc::new(last_error.finish()),
            Arc::new(next_run.finish()),
            Arc::new(inputs.finish()),
            Arc::new(watermark.finish()),
            Arc::new(upstreams.finish()),
            Arc::new(blocked.finish()),
        ];
        Ok(vec![RecordBatch::try_new(self.schema(), columns)?])
    }
}
