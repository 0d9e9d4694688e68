//! `CHECK DRIFT` and drift monitors.
//!
//! A check is one DataFusion plan: the reference and current samples
//! (any two queries; by default the table at an earlier version and the
//! table now) are projected to the checked columns plus a flag marking the
//! current rows, unioned, and aggregated with one drift aggregate per
//! column ([`autolake_udfs::drift::check_function`]). So a check reads each
//! sample once, runs on every core, and each test is the same code as the
//! `drift_*` SQL functions. The single result row is then turned into one
//! row per column: `column, test, statistic, p_value, threshold,
//! drift_detected`.
//!
//! Monitors are saved checks ([`crate::monitor`]); `RUN MONITOR` runs one
//! and appends its rows, stamped with the monitor, the run time and the
//! table version, to the Delta table `system.drift_metrics` in one commit.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, UInt64Type};
use autolake_sql::{CreateMonitor, DriftCheck, DriftReference};
use autolake_udfs::drift::{DriftTest, check_function};
use datafusion::common::Column;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, cast, lit};

use super::query::datafusion_statement;
use super::query::{parse_one_df, plan};
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::lake::{LAKE_CATALOG, TableName};
use crate::monitor::{self, Monitor};
use crate::names::{ident_name, lake_table};
use crate::principal::{Access, Action, Object};
use autolake_sql::{Family, Statement};

/// What a drift statement touches: a check reads its table and its
/// samples' queries; a monitor is created, run or dropped.
pub(super) fn accesses(
    cx: &StatementContext,
    statement: &Statement,
    out: &mut Vec<Access>,
) -> Result<()> {
    let monitor = |action, name| -> Result<Access> {
        Ok(Access {
            action,
            object: Object::Monitor(monitor::monitor_name(name)?),
        })
    };
    match statement {
        Statement::CheckDrift(c) => check_accesses(cx, c, out)?,
        Statement::CreateMonitor(m) => {
            out.push(monitor(Action::Create, &m.name)?);
            check_accesses(cx, &m.check, out)?;
            if let Some(on) = &m.on_drift {
                // Retraining is training: TRAIN on the model.
                out.push(Access {
                    action: Action::Create,
                    object: Object::Model(super::models::model_name(&on.model)?),
                });
            }
        }
        Statement::RunMonitor(name) => out.push(monitor(Action::Select, name)?),
        Statement::DropMonitor { name, .. } => out.push(monitor(Action::Drop, name)?),
        Statement::ShowMonitors => {}
        other => return Err(super::reads::outside(Family::Drift, other)),
    }
    Ok(())
}

/// A drift check reads its table and whatever its sample queries read.
fn check_accesses(
    cx: &StatementContext,
    check: &autolake_sql::DriftCheck,
    out: &mut Vec<Access>,
) -> Result<()> {
    out.push(Access {
        action: Action::Select,
        object: Object::Table(lake_table(&check.table)?),
    });
    let queries = [
        match &check.reference {
            autolake_sql::DriftReference::Query(q) => Some(q),
            autolake_sql::DriftReference::At(_) => None,
        },
        check.current.as_ref(),
    ];
    for query in queries.into_iter().flatten() {
        super::reads::query_accesses(cx, query, out)?;
    }
    Ok(())
}

/// Runs a drift statement.
pub(super) async fn run(cx: &StatementContext, statement: &Statement) -> Result<StatementResult> {
    match statement {
        Statement::CheckDrift(c) => check_drift(cx, c).await,
        Statement::CreateMonitor(m) => create_monitor(cx, m).await,
        Statement::RunMonitor(name) => run_monitor(cx, name).await,
        Statement::DropMonitor { name, if_exists } => drop_monitor(cx, name, *if_exists).await,
        Statement::ShowMonitors => {
            datafusion_statement(
                cx,
                parse_one_df(
                    "SELECT name, \"table\", schedule, owner \
                 FROM lake.system.monitors ORDER BY name",
                )?,
                statement.kind(),
            )
            .await
        }
        other => Err(super::reads::outside(Family::Drift, other)),
    }
}

/// The flag column marking current rows in the unioned samples.
const CURRENT_FLAG: &str = "__autolake_is_current";

/// One column's outcome.
#[derive(Debug, Clone)]
pub(crate) struct ColumnDrift {
    pub(crate) column: String,
    pub(crate) test: DriftTest,
    pub(crate) statistic: f64,
    pub(crate) p_value: Option<f64>,
    pub(crate) threshold: f64,
    pub(crate) drift_detected: bool,
}

fn result_columns(rows: &[ColumnDrift]) -> Vec<ArrayRef> {
    vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.column.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.test.name()),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.statistic),
        )),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.p_value))),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.threshold),
        )),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| Some(r.drift_detected)),
        )),
    ]
}

/// `CHECK DRIFT …`
pub(crate) async fn check_drift(
    cx: &StatementContext,
    check: &DriftCheck,
) -> Result<StatementResult> {
    let prepared = prepare(cx, check).await?;
    let rows = prepared.run().await?;
    let schema = crate::monitor::result_schema();
    let batch = RecordBatch::try_new(Arc::clone(&schema), result_columns(&rows))?;
    Ok(StatementResult::batches("CHECK DRIFT", schema, vec![batch]))
}

/// A check planned and ready to run.
pub(crate) struct PreparedCheck {
    table: TableName,
    /// Version of the table when the check was planned.
    version: i64,
    test: DriftTest,
    threshold: Option<f64>,
    columns: Vec<String>,
    frame: DataFrame,
}

/// Plans a check: resolves the table, both samples and the columns, and
/// checks each column's type against the test, without reading data.
pub(crate) async fn prepare(cx: &StatementContext, check: &DriftCheck) -> Result<PreparedCheck> {
    let table = lake_table(&check.table)?;
    let version = cx
        .engine
        .lake()
        .require_table(&table)
        .await?
        .version()
        .map_or(0, |v| v as i64);
    let test = match &check.test {
        None => DriftTest::Auto,
        Some(name) => DriftTest::from_name(name)
            .ok_or_else(|| Error::invalid(format!("unknown drift test {name}")))?,
    };
    let qualified = format!(
        "{}.{}.{}",
        quote(LAKE_CATALOG),
        quote(&table.schema),
        quote(&table.table)
    );
    let reference_sql = match &check.reference {
        DriftReference::At(at) => format!("SELECT * FROM {qualified} {at}"),
        DriftReference::Query(q) => q.to_string(),
    };
    let current_sql = match &check.current {
        Some(q) => q.to_string(),
        None => format!("SELECT * FROM {qualified}"),
    };
    let reference = sample(cx, &reference_sql, "reference").await?;
    let current = sample(cx, &current_sql, "current").await?;

    let field = |frame: &DataFrame, name: &str| {
        frame
            .schema()
            .fields()
            .iter()
            .find(|f| f.name() == name)
            .cloned()
    };
    let testable = |t: &DataType| match test {
        DriftTest::Auto => DriftTest::Psi.accepts(t),
        other => other.accepts(t),
    };
    let mut columns: Vec<(String, DataType)> = Vec::new();
    if check.columns.is_empty() {
        for f in current.schema().fields() {
            if field(&reference, f.name()).is_some() && testable(f.data_type()) {
                columns.push((f.name().clone(), f.data_type().clone()));
            }
        }
        if columns.is_empty() {
            return Err(Error::invalid(format!(
                "CHECK DRIFT on {table}: no column both samples share can be tested with {} \
                 (numeric{} columns)",
                test.name(),
                if matches!(test, DriftTest::Ks | DriftTest::Wasserstein) {
                    ""
                } else {
                    ", text, boolean, integer or date"
                }
            )));
        }
    } else {
        for ident in &check.columns {
            let name = ident_name(ident);
            let names = |frame: &DataFrame| crate::names::column_names(frame.schema().fields());
            let Some(f) = field(&current, &name) else {
                return Err(Error::invalid(format!(
                    "CHECK DRIFT on {table}: column {name} is not in the current sample \
                     (its columns: {})",
                    names(&current)
                )));
            };
            if field(&reference, &name).is_none() {
                return Err(Error::invalid(format!(
                    "CHECK DRIFT on {table}: column {name} is not in the reference sample \
                     (its columns: {})",
                    names(&reference)
                )));
            }
            if !testable(f.data_type()) {
                return Err(Error::invalid(format!(
                    "CHECK DRIFT on {table}: column {name} has type {}; {} tests {}",
                    type_name(f.data_type()),
                    test.name(),
                    if matches!(test, DriftTest::Ks | DriftTest::Wasserstein) {
                        "numeric columns"
                    } else {
                        "numeric, text, boolean, integer or date columns"
                    }
                )));
            }
            if columns.iter().any(|(c, _)| *c == name) {
                return Err(Error::invalid(format!(
                    "CHECK DRIFT on {table}: column {name} is listed twice"
                )));
            }
            columns.push((name, f.data_type().clone()));
        }
    }

    let project = |frame: DataFrame, is_current: bool| -> Result<DataFrame> {
        let mut exprs: Vec<Expr> = columns
            .iter()
            .map(|(c, t)| cast(Expr::Column(Column::new_unqualified(c)), t.clone()).alias(c))
            .collect();
        exprs.push(lit(is_current).alias(CURRENT_FLAG));
        Ok(frame.select(exprs)?)
    };
    let both = project(reference, false)?.union(project(current, true)?)?;
    let aggregates: Vec<Expr> = columns
        .iter()
        .enumerate()
        .map(|(i, (c, _))| {
            check_function(test)
                .call(vec![
                    Expr::Column(Column::new_unqualified(c)),
                    Expr::Column(Column::new_unqualified(CURRENT_FLAG)),
                ])
                .alias(format!("c{i}"))
        })
        .collect();
    let frame = both.aggregate(vec![], aggregates)?;
    Ok(PreparedCheck {
        table,
        version,
        test,
        threshold: check.threshold,
        columns: columns.into_iter().map(|(c, _)| c).collect(),
        frame,
    })
}

impl PreparedCheck {
    /// Reads both samples and runs the tests.
    pub(crate) async fn run(self) -> Result<Vec<ColumnDrift>> {
        let batches = self.frame.collect().await?;
        let batch = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .ok_or_else(|| Error::invalid("CHECK DRIFT produced no result"))?;
        let mut rows = Vec::with_capacity(self.columns.len());
        for (i, column) in self.columns.iter().enumerate() {
            let result = batch.column(i).as_struct();
            let get_u64 = |name: &str| {
                result
                    .column_by_name(name)
                    .map(|a| a.as_primitive::<UInt64Type>().value(0))
                    .unwrap_or(0)
            };
            for (side, count, nulls) in [
                (
                    "reference",
                    get_u64("reference_values"),
                    get_u64("reference_nulls"),
                ),
                (
                    "current",
                    get_u64("current_values"),
                    get_u64("current_nulls"),
                ),
            ] {
                if count == 0 {
                    return Err(Error::invalid(format!(
                        "CHECK DRIFT on {}: column {column} has no non-null values in the \
                         {side} sample ({nulls} nulls); a drift test needs values on both sides",
                        self.table
                    )));
                }
            }
            let test_name = result
                .column_by_name("test")
                .map(|a| a.as_string::<i32>().value(0).to_string())
                .unwrap_or_default();
            let test = DriftTest::from_name(&test_name).unwrap_or(self.test);
            let float = |name: &str| {
                result.column_by_name(name).and_then(|a| {
                    let a = a.as_primitive::<arrow::datatypes::Float64Type>();
                    (!a.is_null(0)).then(|| a.value(0))
                })
            };
            let statistic = float("statistic").unwrap_or(f64::NAN);
            let p_value = float("p_value");
            let threshold = self.threshold.unwrap_or(test.default_threshold());
            let drift_detected = if test.uses_p_value() {
                p_value.is_some_and(|p| p < threshold)
            } else {
                statistic >= threshold
            };
            rows.push(ColumnDrift {
                column: column.clone(),
                test,
                statistic,
                p_value,
                threshold,
                drift_detected,
            });
        }
        Ok(rows)
    }
}

/// Plans one sample's query, naming the side in any error.
async fn sample(cx: &StatementContext, sql: &str, side: &str) -> Result<DataFrame> {
    let statement = parse_one_df(sql)?;
    let plan = plan(cx, statement).await.map_err(|e| match e {
        Error::NotFound { .. } | Error::Invalid(_) | Error::ReadOnly(_) => e,
        other => Error::invalid(format!("the {side} sample cannot be planned: {other}")),
    })?;
    Ok(DataFrame::new(cx.ctx.state(), plan))
}

/// A column type as SQL users know it.
fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "TEXT".to_string(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTEA".to_string(),
        DataType::Timestamp(_, None) => "TIMESTAMP".to_string(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ".to_string(),
        DataType::List(_) | DataType::LargeList(_) => "ARRAY".to_string(),
        DataType::Struct(_) => "STRUCT".to_string(),
        other => other.to_string().to_uppercase(),
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `CREATE MONITOR …`: validates the check by planning it, then saves it.
pub(crate) async fn create_monitor(
    cx: &StatementContext,
    create: &CreateMonitor,
) -> Result<StatementResult> {
    let name = monitor::monitor_name(&create.name)?;
    monitor::validate_schedule(&create.schedule)?;
    let prepared = prepare(cx, &create.check).await?;
    let on_drift = match &create.on_drift {
        Some(on) => Some(super::lifecycle::retrain_rule(cx, on)?),
        None => None,
    };
    let monitor = Monitor {
        name: name.clone(),
        table: prepared.table.to_string(),
        check: create.check.to_string(),
        schedule: create.schedule.clone(),
        owner: cx.principal.name.clone(),
        created_at: chrono::Utc::now(),
        on_drift,
    };
    let store = monitor::MonitorStore::new(Arc::clone(cx.engine.lake()));
    if !store.create(&monitor).await? && !create.if_not_exists {
        return Err(Error::AlreadyExists {
            kind: "monitor",
            name,
        });
    }
    Ok(super::query::done("CREATE MONITOR"))
}

/// `DROP MONITOR [IF EXISTS] name`; its metrics stay in
/// `system.drift_metrics`.
pub(crate) async fn drop_monitor(
    cx: &StatementContext,
    name: &autolake_sql::sqlparser::ast::ObjectName,
    if_exists: bool,
) -> Result<StatementResult> {
    let name = monitor::monitor_name(name)?;
    let store = monitor::MonitorStore::new(Arc::clone(cx.engine.lake()));
    if !store.delete(&name).await? && !if_exists {
        return Err(Error::NotFound {
            kind: "monitor",
            name,
        });
    }
    Ok(super::query::done("DROP MONITOR"))
}

/// `RUN MONITOR name`: runs the check now, appends its rows to
/// `system.drift_metrics` and returns them.
pub(crate) async fn run_monitor(
    cx: &StatementContext,
    name: &autolake_sql::sqlparser::ast::ObjectName,
) -> Result<StatementResult> {
    let name = monitor::monitor_name(name)?;
    let lake = Arc::clone(cx.engine.lake());
    let store = monitor::MonitorStore::new(Arc::clone(&lake));
    let Some(saved) = store.get(&name).await? else {
        return Err(Error::NotFound {
            kind: "monitor",
            name,
        });
    };
    let check = match autolake_sql::parse(&saved.check)?
        .pop()
        .map(|p| p.statement)
    {
        Some(autolake_sql::Statement::CheckDrift(c)) => c,
        _ => {
            return Err(Error::invalid(format!(
                "monitor {name} holds no drift check: {}",
                saved.check
            )));
        }
    };
    let prepared = prepare(cx, &check).await?;
    let (table, version) = (prepared.table.clone(), prepared.version);
    let rows = prepared.run().await?;
    let schema = crate::monitor::result_schema();
    let result = RecordBatch::try_new(Arc::clone(&schema), result_columns(&rows))?;
    let batch = metrics_batch(&name, &table, version, &result)?;
    append_metrics(cx, batch.clone()).await?;
    let drifted: Vec<String> = rows
        .iter()
        .filter(|r| r.drift_detected)
        .map(|r| r.column.clone())
        .collect();
    if let Some(rule) = &saved.on_drift
        && !drifted.is_empty()
    {
        super::lifecycle::retrain(cx, &name, rule, &drifted).await?;
    }
    Ok(StatementResult::batches(
        "RUN MONITOR",
        monitor::metrics_schema(),
        vec![batch],
    ))
}

/// A drift check's result rows with the monitor (or job), the time and
/// the checked table version in front: rows of `system.drift_metrics`.
fn metrics_batch(
    label: &str,
    table: &crate::lake::TableName,
    version: i64,
    result: &RecordBatch,
) -> Result<RecordBatch> {
    let n = result.num_rows();
    let run_at = chrono::Utc::now();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![label; n])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![run_at.timestamp_micros(); n])
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(vec![table.to_string(); n])),
        Arc::new(Int64Array::from(vec![version; n])),
    ];
    columns.extend(result.columns().iter().cloned());
    Ok(RecordBatch::try_new(monitor::metrics_schema(), columns)?)
}

/// Records the result of a job's `CHECK DRIFT` in `system.drift_metrics`
/// under the job's name, as a monitor run is; returns the rows recorded.
pub(crate) async fn record(
    cx: &StatementContext,
    job: &str,
    check: &DriftCheck,
    batches: &[RecordBatch],
) -> Result<i64> {
    let table = crate::names::lake_table(&check.table)?;
    let version = cx
        .engine
        .lake()
        .require_table(&table)
        .await?
        .version()
        .unwrap_or(0) as i64;
    let result = arrow::compute::concat_batches(&crate::monitor::result_schema(), batches)?;
    let batch = metrics_batch(job, &table, version, &result)?;
    let rows = batch.num_rows() as i64;
    append_metrics(cx, batch).await?;
    Ok(rows)
}

/// Appends rows to `system.drift_metrics` in one commit, creating the
/// table with the first run.
async fn append_metrics(cx: &StatementContext, batch: RecordBatch) -> Result<()> {
    let stamp = cx.stamp("RUN MONITOR");
    crate::lake::write::append_system(
        cx.engine.lake(),
        &cx.ctx,
        &monitor::metrics_table(),
        batch,
        &stamp,
    )
    .await
}
