//! `SYNC TABLE t FROM stream_source`: one micro-batch of a NATS JetStream
//! subject or an MQTT topic into a lake table (see
//! [`autolake_connectors::stream`]). A job runs it on its schedule.
//!
//! The target table exists beforehand and its columns say what a message
//! holds: each message is one JSON object, decoded into the table's types
//! (fields matched by name; missing fields are null; unknown fields are
//! ignored). A message that does not decode is not dropped: it goes, with
//! its error, subject and sequence, to `<table>_rejected` in the same run.
//!
//! Order of work: read the batch (unacknowledged), write the rows (and the
//! rejected messages) in commits carrying the application transaction
//! `(autolake.stream:<source>, n)`, then acknowledge. For NATS, `n` is the
//! highest stream sequence written, so after a crash between commit and
//! acknowledgement the redelivered messages at or below the committed
//! sequence are acknowledged without being written again: exactly once.
//! For MQTT, `n` counts batches and a redelivery writes again (MQTT has no
//! message identity across reconnects): at least once.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::delta_datafusion::DataFusionMixins;
use deltalake::protocol::SaveMode;

use super::query::count_result;
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::lake::write::write_plan;
use crate::lake::{TableName, ledger};
use crate::sources::Source;

/// The most messages one run reads.
const BATCH: usize = 10_000;

/// Source types read as message streams.
pub(crate) fn is_stream(source_type: &str) -> bool {
    matches!(source_type, "nats" | "mqtt")
}

pub(crate) async fn sync_stream(
    cx: &StatementContext,
    target: &TableName,
    source: &Source,
) -> Result<StatementResult> {
    let lake = cx.engine.lake();
    let table = lake.load_table(target).await?.ok_or_else(|| {
        Error::invalid(format!(
            "SYNC TABLE {target} FROM {}: create {target} first; its columns say which fields of each JSON message are kept",
            source.name
        ))
    })?;
    let schema: SchemaRef = Arc::new(table.snapshot()?.snapshot().input_schema().as_ref().clone());
    let app = ledger::stream_app(&source.name);
    let committed = ledger::committed_or_zero(Some(&table), &app).await?;
    // The broker's record of what this target has read: a durable
    // JetStream consumer, or an MQTT persistent session (its client id
    // names the source definition, so a source made again starts afresh).
    let consumer = match source.source_type.as_str() {
        "mqtt" => format!(
            "autolake_{}_{}_{}_{}",
            target.schema,
            target.table,
            source.name,
            source.created_at.timestamp_millis()
        ),
        _ => format!("autolake_{}_{}", target.schema, target.table),
    };
    let batch = autolake_connectors::stream::read(
        &source.source_type,
        &source.name,
        &source.options,
        &consumer,
        BATCH,
        Duration::from_millis(500),
    )
    .await
    .map_err(|e| Error::Source(e.to_string()))?;
    let nats = source.source_type == "nats";
    let fresh: Vec<_> = batch
        .messages
        .iter()
        .filter(|m| !nats || m.sequence as i64 > committed)
        .collect();
    if fresh.is_empty() {
        // Nothing new (or only redeliveries of what is committed).
        batch
            .ack(&source.name)
            .await
            .map_err(|e| Error::Source(e.to_string()))?;
        return count_result("SYNC TABLE", 0);
    }
    let version = if nats {
        fresh
            .iter()
            .map(|m| m.sequence as i64)
            .max()
            .unwrap_or(committed)
    } else {
        committed + 1
    };

    let mut good = Vec::new();
    let mut bad: Vec<(String, String, String, i64)> = Vec::new();
    for m in &fresh {
        match decode(&schema, &m.payload) {
            Ok(rows) => good.push(rows),
            Err(e) => bad.push((
                String::from_utf8_lossy(&m.payload).into_owned(),
                e,
                m.subject.clone(),
                m.sequence as i64,
            )),
        }
    }
    let stamp = cx
        .stamp("SYNC TABLE")
        .with_transaction(&app, version)
        .with_info("autolake.stream.source", serde_json::json!(source.name));
    if !bad.is_empty() {
        write_rejected(cx, target, &bad, &stamp).await?;
    }
    let rows = arrow::compute::concat_batches(&schema, &good)?;
    let written = rows.num_rows() as u64;
    let plan = cx.ctx.read_batch(rows)?.into_unoptimized_plan();
    write_plan(
        table,
        target,
        plan,
        Arc::new(cx.ctx.state()),
        SaveMode::Append,
        None,
        false,
        &stamp,
    )
    .await?;
    batch
        .ack(&source.name)
        .await
        .map_err(|e| Error::Source(e.to_string()))?;
    count_result("SYNC TABLE", written)
}

/// One message as a one-row batch of the table's columns.
fn decode(schema: &SchemaRef, payload: &[u8]) -> std::result::Result<RecordBatch, String> {
    let text = std::str::from_utf8(payload).map_err(|e| format!("not UTF-8: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if !value.is_object() {
        return Err("not a JSON object".to_string());
    }
    let mut decoder = arrow::json::ReaderBuilder::new(Arc::clone(schema))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder.decode(text.as_bytes()).map_err(|e| e.to_string())?;
    decoder
        .flush()
        .map_err(|e| e.to_string())?
        .filter(|b| b.num_rows() == 1)
        .ok_or_else(|| "no row decoded".to_string())
}

/// Appends undecodable messages to `<table>_rejected`.
async fn write_rejected(
    cx: &StatementContext,
    target: &TableName,
    bad: &[(String, String, String, i64)],
    stamp: &crate::lake::write::CommitStamp,
) -> Result<()> {
    let name = TableName::new(target.schema.clone(), format!("{}_rejected", target.table));
    let schema = Arc::new(Schema::new(vec![
        Field::new("payload", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new("subject", DataType::Utf8, false),
        Field::new("sequence", DataType::Int64, false),
        Field::new("received_at", DataType::Utf8, false),
    ]));
    let now = chrono::Utc::now().to_rfc3339();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            bad.iter().map(|b| b.0.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            bad.iter().map(|b| b.1.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            bad.iter().map(|b| b.2.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(bad.iter().map(|b| b.3))),
        Arc::new(StringArray::from_iter_values(
            bad.iter().map(|_| now.as_str()),
        )),
    ];
    let batch = RecordBatch::try_new(schema, columns)?;
    // Created with the first rejected message, appended to after.
    crate::lake::write::append_system(cx.engine.lake(), &cx.ctx, &name, batch, stamp).await
}

/// A stream source's definition, if `name` is one.
pub(crate) async fn stream_source(cx: &StatementContext, name: &str) -> Result<Option<Source>> {
    Ok(cx
        .engine
        .sources()
        .get(name)
        .await?
        .filter(|s| is_stream(&s.source_type)))
}
