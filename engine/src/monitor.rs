//! Drift monitors: saved drift checks with a schedule.
//!
//! A monitor is one JSON document at `<lake>/monitors/<name>.json` (a
//! [`DocStore`]) holding
//! its check as `CHECK DRIFT` text (parsed again on every run, so a
//! monitor always means what its statement says), the table, the
//! schedule, the owner and the creation time. Any process on the lake
//! sees it. `system.monitors` lists them; each run appends to the Delta
//! table `system.drift_metrics` (stored like a lake table at
//! `<lake>/tables/system/drift_metrics`, so Delta tools can read it too).
//!
//! Schedules are checked when a monitor is created: a five-field cron
//! expression, a cron alias (`@hourly`, `@daily`, …) or an interval
//! (`15 minutes`, `1 hour`, `every 2 days`). The job scheduler of
//! `autolake serve` (and `autolake jobs run-due`) runs monitors when they
//! are due, as their owner; `RUN MONITOR name` runs one now.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use autolake_sql::sqlparser::ast::ObjectName;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lake::docs::DocStore;
use crate::lake::{Lake, SYSTEM_SCHEMA, TableName};

/// A saved drift check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Monitor {
    /// The monitor's name.
    pub name: String,
    /// The checked table, `schema.table`.
    pub table: String,
    /// The check, as a `CHECK DRIFT` statement.
    pub check: String,
    /// When it runs (cron or interval).
    pub schedule: String,
    /// Who created it.
    pub owner: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// What drift triggers: a model retrained, maybe promoted.
    #[serde(default)]
    pub on_drift: Option<RetrainRule>,
}

/// `ON DRIFT RETRAIN MODEL m [PROMOTE WHEN metric op x]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainRule {
    /// The model retrained.
    pub model: String,
    /// The promotion gate: metric, comparison (`>=`, `>`, `<=`, `<`),
    /// bound.
    pub gate: Option<(String, String, f64)>,
}

impl std::fmt::Display for RetrainRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ON DRIFT RETRAIN MODEL {}", self.model)?;
        if let Some((metric, op, bound)) = &self.gate {
            write!(f, " PROMOTE WHEN {metric} {op} {bound}")?;
        }
        Ok(())
    }
}

/// The monitors of a lake.
#[derive(Debug, Clone)]
pub struct MonitorStore {
    docs: DocStore<Monitor>,
}

impl MonitorStore {
    /// The monitors of `lake`.
    pub fn new(lake: Arc<Lake>) -> Self {
        Self {
            docs: DocStore::new(lake, "monitors", "monitor"),
        }
    }

    /// Saves a new monitor; `false` when one of that name exists.
    pub async fn create(&self, monitor: &Monitor) -> Result<bool> {
        self.docs.create(&monitor.name, monitor).await
    }

    /// The monitor called `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<Monitor>> {
        self.docs.get(name).await
    }

    /// Deletes a monitor; `false` when there was none.
    pub async fn delete(&self, name: &str) -> Result<bool> {
        self.docs.delete(name).await
    }

    /// Every monitor, by name.
    pub async fn list(&self) -> Result<Vec<Monitor>> {
        self.docs.list().await
    }
}

/// A monitor name written in SQL: one identifier.
pub(crate) fn monitor_name(name: &ObjectName) -> Result<String> {
    crate::names::single_name("monitor", name)
}

/// Checks a schedule: a five-field cron expression, a cron alias or an
/// interval.
pub(crate) fn validate_schedule(schedule: &str) -> Result<()> {
    crate::jobs::schedule::Schedule::any(schedule).map(|_| ())
}

/// Where monitor runs are recorded.
pub(crate) fn metrics_table() -> TableName {
    TableName::new(SYSTEM_SCHEMA, "drift_metrics")
}

/// The columns of a `CHECK DRIFT` result.
pub(crate) fn result_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("column", DataType::Utf8, false),
        Field::new("test", DataType::Utf8, false),
        Field::new("statistic", DataType::Float64, false),
        Field::new("p_value", DataType::Float64, true),
        Field::new("threshold", DataType::Float64, false),
        Field::new("drift_detected", DataType::Boolean, false),
    ]))
}

/// Columns of `system.drift_metrics`: the monitor run, then the columns of
/// a `CHECK DRIFT` result.
pub(crate) fn metrics_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("monitor", DataType::Utf8, false),
        Field::new(
            "run_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("table", DataType::Utf8, false),
        Field::new("table_version", DataType::Int64, false),
    ];
    fields.extend(result_schema().fields().iter().map(|f| f.as_ref().clone()));
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        for ok in [
            "@hourly",
            "*/15 * * * *",
            "0 6 * * 1-5",
            "15 minutes",
            "every 1 hour",
            "2 days",
        ] {
            validate_schedule(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "soon", "0 minutes", "* * *", "1 fortnight"] {
            let e = validate_schedule(bad).unwrap_err().to_string();
            assert!(e.contains("invalid schedule"), "{bad}: {e}");
        }
    }
}
