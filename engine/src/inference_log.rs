//! Inference logging: `ALTER MODEL m SET LOGGING TO lake.s.t [SAMPLE x]`.
//!
//! ```text
//! predict('m', …) ─► ModelProvider::log ─► PredictionLogs (rows per query id)
//!   a statement ends ─► rows appended to t (one commit per table)
//!   a job's INSERT  ─► its rows computed first, the log committed with the
//!                      run's application transaction, then the output
//! ```
//!
//! A model's setting is a document at `<lake>/model_logging/<m>.json`.
//! Each `predict` batch of a logged model hands its inputs and outputs to
//! [`PredictionLogs`], which keeps the sampled rows under the statement's
//! query id (the engine tells `predict` the id through the
//! `autolake_predict.query_id` setting). Sampling is decided by a hash of
//! a row's inputs, so the same rows are sampled every time they are
//! scored — a run repeated after a crash logs what the first attempt
//! would have.
//!
//! **Exactly once for jobs.** A job's `INSERT` with logged predictions
//! computes its rows first; the log rows are committed to each log table
//! with the run's application transaction `(job, run)` — the same one its
//! output commit carries — unless that table already holds that
//! transaction (an earlier attempt of the same run logged and then died);
//! then the output is written. A crash before the log commit repeats the
//! run; between the two commits, the repeated run finds the log committed
//! and writes only the output; after the output commit the run is
//! recovered as any job run is. So every output row's prediction is
//! logged exactly once. Statements outside jobs append their log rows
//! when they end (a crash loses at most that statement's rows).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::array_value_to_string;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lake::docs::DocStore;
use crate::lake::{Lake, TableName};

/// Where a model's predictions go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggingConfig {
    /// The model.
    pub model: String,
    /// The log table, `schema.table`.
    pub table: String,
    /// The share of rows logged, in (0, 1].
    pub sample: f64,
}

/// Columns of a prediction log table.
pub fn log_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("inputs", DataType::Utf8, false),
        Field::new("output", DataType::Utf8, true),
        Field::new("query_id", DataType::Utf8, true),
        Field::new("job", DataType::Utf8, true),
        Field::new("job_run", DataType::Int64, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

#[derive(Debug)]
struct Row {
    table: String,
    model: String,
    version: i64,
    inputs: String,
    output: Option<String>,
    at: i64,
}

/// The logging settings of a lake's models and the rows logged by
/// statements still running in this process.
#[derive(Debug)]
pub struct PredictionLogs {
    docs: DocStore<LoggingConfig>,
    configs: RwLock<HashMap<String, LoggingConfig>>,
    rows: Mutex<HashMap<String, Vec<Row>>>,
}

impl PredictionLogs {
    /// The settings of `lake`'s models.
    pub fn new(lake: Arc<Lake>) -> Self {
        Self {
            docs: DocStore::new(lake, "model_logging", "model logging"),
            configs: RwLock::default(),
            rows: Mutex::default(),
        }
    }

    /// Re-reads the settings.
    pub async fn refresh(&self) -> Result<()> {
        let configs: HashMap<String, LoggingConfig> = self
            .docs
            .list()
            .await?
            .into_iter()
            .map(|c| (c.model.clone(), c))
            .collect();
        *self.configs.write().unwrap_or_else(|e| e.into_inner()) = configs;
        Ok(())
    }

    /// Sets or (with `None`) removes a model's logging.
    pub async fn set(&self, model: &str, config: Option<LoggingConfig>) -> Result<()> {
        match config {
            Some(c) => self.docs.put(model, &c).await?,
            None => {
                self.docs.delete(model).await?;
            }
        }
        self.refresh().await
    }

    /// A model's logging, if it is logged.
    pub fn config(&self, model: &str) -> Option<LoggingConfig> {
        self.configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(model)
            .cloned()
    }

    /// Whether any model is logged.
    pub fn any(&self) -> bool {
        !self
            .configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Keeps the sampled rows of one `predict` batch of version `version`
    /// of a logged model, whose features are `names`.
    pub fn record(
        &self,
        config: &LoggingConfig,
        version: u64,
        names: &[String],
        query_id: &str,
        features: &[ArrayRef],
        output: &ArrayRef,
    ) {
        let at = chrono::Utc::now().timestamp_micros();
        let mut kept = Vec::new();
        for row in 0..output.len() {
            let inputs = inputs_json(names, features, row);
            if config.sample < 1.0 && !sampled(&inputs, config.sample) {
                continue;
            }
            kept.push(Row {
                table: config.table.clone(),
                model: config.model.clone(),
                version: version as i64,
                inputs,
                output: (!output.is_null(row))
                    .then(|| array_value_to_string(output, row).unwrap_or_default()),
                at,
            });
        }
        if kept.is_empty() {
            return;
        }
        self.rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(query_id.to_string())
            .or_default()
            .extend(kept);
    }

    /// Takes the rows a statement logged, one batch per log table; `job`
    /// names the job run they belong to, if any.
    pub fn take(
        &self,
        query_id: &str,
        job: Option<(&str, i64)>,
    ) -> Result<Vec<(TableName, RecordBatch)>> {
        let rows = self
            .rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(query_id)
            .unwrap_or_default();
        let mut by_table: HashMap<String, Vec<Row>> = HashMap::new();
        for row in rows {
            by_table.entry(row.table.clone()).or_default().push(row);
        }
        let mut out = Vec::new();
        for (table, rows) in by_table {
            let (schema, name) = table.split_once('.').unwrap_or(("public", &table));
            let n = rows.len();
            let batch = RecordBatch::try_new(
                log_schema(),
                vec![
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.model))),
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.version))),
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| &r.inputs),
                    )),
                    Arc::new(StringArray::from_iter(
                        rows.iter().map(|r| r.output.as_deref()),
                    )),
                    Arc::new(StringArray::from(vec![Some(query_id); n])),
                    Arc::new(StringArray::from(vec![job.map(|j| j.0); n])),
                    Arc::new(Int64Array::from(vec![job.map(|j| j.1); n])),
                    Arc::new(
                        TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.at))
                            .with_timezone("UTC"),
                    ),
                ],
            )?;
            out.push((TableName::new(schema, name), batch));
        }
        Ok(out)
    }
}

/// A row's inputs as a JSON object, feature name to value.
fn inputs_json(names: &[String], features: &[ArrayRef], row: usize) -> String {
    let mut map = serde_json::Map::new();
    for (name, array) in names.iter().zip(features) {
        let value = if array.is_null(row) {
            serde_json::Value::Null
        } else {
            let text = array_value_to_string(array, row).unwrap_or_default();
            match array.data_type() {
                t if t.is_numeric() => serde_json::from_str(&text)
                    .ok()
                    .filter(serde_json::Value::is_number)
                    .unwrap_or(serde_json::Value::String(text)),
                DataType::Boolean => serde_json::Value::Bool(text == "true"),
                _ => serde_json::Value::String(text),
            }
        };
        map.insert(name.clone(), value);
    }
    serde_json::Value::Object(map).to_string()
}

/// Whether a row with these inputs is in a `share` sample: FNV-1a of the
/// inputs, so the same row is always in or always out.
fn sampled(inputs: &str, share: f64) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in inputs.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ((hash >> 11) as f64 / (1u64 << 53) as f64) < share
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};

    #[test]
    fn inputs_are_json_and_sampling_is_stable() {
        let names = vec!["a".to_string(), "s".to_string()];
        let features: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![Some(1.5), None])),
            Arc::new(StringArray::from(vec!["x\"y", "z"])),
        ];
        assert_eq!(inputs_json(&names, &features, 0), r#"{"a":1.5,"s":"x\"y"}"#);
        assert_eq!(inputs_json(&names, &features, 1), r#"{"a":null,"s":"z"}"#);
        let kept = (0..10_000)
            .filter(|i| sampled(&format!("{{\"a\":{i}}}"), 0.25))
            .count();
        assert!((2_200..2_800).contains(&kept), "{kept}");
        assert_eq!(sampled("{\"a\":7}", 0.25), sampled("{\"a\":7}", 0.25));
    }
}
