//! `system.devices`: one row per compute device, read fresh when scanned;
//! `system.device_history`: the readings of the last hour (see
//! [`crate::devices`]).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::table::{SystemTable, utc_millis};
use crate::devices::Devices;
use crate::error::Result;

/// `system.devices`: the CPU, and each CUDA GPU NVML lists.
#[derive(Debug)]
pub(crate) struct DevicesTable {
    pub(crate) devices: Arc<Devices>,
}

#[async_trait]
impl SystemTable for DevicesTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("device", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("memory_total_bytes", DataType::Int64, false),
            Field::new("memory_used_bytes", DataType::Int64, false),
            Field::new("utilization", DataType::Float64, false),
            Field::new("busy_seconds", DataType::Float64, false),
            Field::new("idle_seconds", DataType::Float64, false),
            Field::new("since", utc_millis(), false),
            Field::new("current_work", DataType::Utf8, true),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let devices = Arc::clone(&self.devices);
        // NVML calls block briefly: off the async workers.
        let rows = tokio::task::spawn_blocking(move || devices.rows())
            .await
            .map_err(|e| crate::error::Error::Internal(format!("device sampling failed: {e}")))?;
        let mut device = StringBuilder::new();
        let mut name = StringBuilder::new();
        let mut total = Int64Builder::new();
        let mut used = Int64Builder::new();
        let mut utilization = Float64Builder::new();
        let mut busy = Float64Builder::new();
        let mut idle = Float64Builder::new();
        let mut since = TimestampMillisecondBuilder::new().with_timezone("UTC");
        let mut work = StringBuilder::new();
        for r in rows {
            device.append_value(&r.device);
            name.append_value(&r.name);
            total.append_value(r.memory_total_bytes.min(i64::MAX as u64) as i64);
            used.append_value(r.memory_used_bytes.min(i64::MAX as u64) as i64);
            utilization.append_value(r.utilization);
            busy.append_value(r.busy_seconds);
            idle.append_value(r.idle_seconds);
            since.append_value(r.since.timestamp_millis());
            work.append_option(r.current_work);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(device.finish()),
            Arc::new(name.finish()),
            Arc::new(total.finish()),
            Arc::new(used.finish()),
            Arc::new(utilization.finish()),
            Arc::new(busy.finish()),
            Arc::new(idle.finish()),
            Arc::new(since.finish()),
            Arc::new(work.finish()),
        ];
        Ok(vec![RecordBatch::try_new(self.schema(), columns)?])
    }
}

/// `system.device_history`: each device's readings of the last hour, at
/// most one a second (`serve` takes one every second).
#[derive(Debug)]
pub(crate) struct DeviceHistoryTable {
    pub(crate) devices: Arc<Devices>,
}

#[async_trait]
impl SystemTable for DeviceHistoryTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("device", DataType::Utf8, false),
            Field::new("at", utc_millis(), false),
            Field::new("utilization", DataType::Float64, false),
            Field::new("memory_used_bytes", DataType::Int64, false),
            Field::new("busy_seconds", DataType::Float64, false),
            Field::new("idle_seconds", DataType::Float64, false),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let devices = Arc::clone(&self.devices);
        // A reading first, so the history ends now (at least one).
        let samples = tokio::task::spawn_blocking(move || {
            devices.sample();
            devices.history()
        })
        .await
        .map_err(|e| crate::error::Error::Internal(format!("device sampling failed: {e}")))?;
        let mut device = StringBuilder::new();
        let mut at = TimestampMillisecondBuilder::new().with_timezone("UTC");
        let mut utilization = Float64Builder::new();
        let mut used = Int64Builder::new();
        let mut busy = Float64Builder::new();
        let mut idle = Float64Builder::new();
        for s in samples {
            device.append_value(&s.device);
            at.append_value(s.at.timestamp_millis());
            utilization.append_value(s.utilization);
            used.append_value(s.memory_used_bytes.min(i64::MAX as u64) as i64);
            busy.append_value(s.busy_seconds);
            idle.append_value(s.idle_seconds);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(device.finish()),
            Arc::new(at.finish()),
            Arc::new(utilization.finish()),
            Arc::new(used.finish()),
            Arc::new(busy.finish()),
            Arc::new(idle.finish()),
        ];
        Ok(vec![RecordBatch::try_new(self.schema(), columns)?])
    }
}
