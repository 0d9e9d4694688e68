//! `system.models`: one row per model version.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::table::{SystemTable, utc_millis};
use crate::error::Result;
use crate::models::{ModelRegistry, metrics_json};

/// `system.models`: one row per model version.
#[derive(Debug)]
pub(crate) struct ModelsTable {
    pub(crate) registry: Arc<ModelRegistry>,
}

/// The columns of `system.models`.
pub(crate) fn models_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("features", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, true),
        Field::new("metrics", DataType::Utf8, false),
        Field::new("stage", DataType::Utf8, false),
        Field::new("device", DataType::Utf8, false),
        Field::new("train_seconds", DataType::Float64, false),
        Field::new("device_busy_ratio", DataType::Float64, true),
        Field::new("training_rows", DataType::Int64, false),
        Field::new("owner", DataType::Utf8, false),
        Field::new("created_at", utc_millis(), false),
        Field::new("sql", DataType::Utf8, false),
        Field::new("lineage", DataType::Utf8, false),
    ]))
}

#[async_trait]
impl SystemTable for ModelsTable {
    fn schema(&self) -> SchemaRef {
        models_schema()
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        self.registry.refresh().await?;
        let mut name = StringBuilder::new();
        let mut version = Int64Builder::new();
        let mut kind = StringBuilder::new();
        let mut features = StringBuilder::new();
        let mut target = StringBuilder::new();
        let mut metrics = StringBuilder::new();
        let mut stage = StringBuilder::new();
        let mut device = StringBuilder::new();
        let mut seconds = Float64Builder::new();
        let mut busy = Float64Builder::new();
        let mut rows = Int64Builder::new();
        let mut owner = StringBuilder::new();
        let mut created = TimestampMillisecondBuilder::new().with_timezone("UTC");
        let mut sql = StringBuilder::new();
        let mut lineage = StringBuilder::new();
        for (m, s) in self.registry.all() {
            let r = &m.record;
            name.append_value(&r.name);
            version.append_value(r.version as i64);
            kind.append_value(r.spec.kind.name());
            features.append_value(r.spec.describe_features());
            target.append_option(r.spec.target.as_ref().map(|t| t.name.clone()));
            metrics.append_value(metrics_json(&r.metrics));
            stage.append_value(s);
            device.append_value(&r.device);
            seconds.append_value(r.train_seconds);
            busy.append_option(r.device_busy_ratio);
            rows.append_value(r.training_rows as i64);
            owner.append_value(&r.owner);
            created.append_value(r.created_at.timestamp_millis());
            sql.append_value(&r.sql);
            lineage.append_value(
                r.lineage
                    .iter()
                    .map(|l| format!("{}@{}", l.table, l.version))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(name.finish()),
            Arc::new(version.finish()),
            Arc::new(kind.finish()),
            Arc::new(features.finish()),
            Arc::new(target.finish()),
            Arc::new(metrics.finish()),
            Arc::new(stage.finish()),
            Arc::new(device.finish()),
            Arc::new(seconds.finish()),
            Arc::new(busy.finish()),
            Arc::new(rows.finish()),
            Arc::new(owner.finish()),
            Arc::new(created.finish()),
            Arc::new(sql.finish()),
            Arc::new(lineage.finish()),
        ];
        Ok(vec![RecordBatch::try_new(self.schema(), columns)?])
    }
}
