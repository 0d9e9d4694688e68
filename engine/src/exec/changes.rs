//! `table_changes(…)`: the rows committed to a lake table between two
//! versions, and event-time windows over them.
//!
//! As Databricks's function of the same name, `table_changes('t', from [,
//! to])` returns the table's columns plus `_change_type` (`insert`,
//! `delete`, `update_preimage`, `update_postimage`), `_commit_version` and
//! `_commit_timestamp`, for the commits `from..=to` (both inclusive; `to`
//! defaults to the latest). The rows come from delta-rs's change-data-feed
//! reader: a commit's change files where it wrote some (updates, deletes
//! and merges of tables with `delta.enableChangeDataFeed`, which AutoLake
//! sets on every table it creates), otherwise its added files as inserts
//! and removed files as deletes. Commits that do not change data
//! (`OPTIMIZE`) contribute nothing.
//!
//! Inside a job, `table_changes('t')` takes its range from the job's run:
//! the versions committed after the last version the job consumed, up to
//! the version pinned when the run started (see [`crate::jobs`]). A job
//! with a `WINDOW` clause instead sees the rows of the windows that close
//! in this run, each with `window_start` and `window_end` (see
//! [`Windowing`]).
//!
//! Like time travel, each call is resolved before planning: the provider
//! is registered under a private name and the call rewritten to it. Every
//! provider is a [`LakeTable`], so the table's SELECT privilege, row
//! policies and masks apply to its changes as to the table itself.

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use autolake_sql::sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, Ident, ObjectName, TableAlias, TableFactor, Value,
    VisitorMut,
};
use datafusion::catalog::{Session as DFSession, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::TableType;
use datafusion::datasource::empty::EmptyTable;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, col};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::sql::parser::Statement as DFStatement;

use deltalake::delta_datafusion::DataFusionMixins;
use deltalake::{DeltaTable, DeltaTableError};
use futures::StreamExt;

use super::time_travel::visit_df;
use crate::context::StatementContext;
use crate::error::{Error, Result};
use crate::jobs::window::{Windowing, instant_literal};
use crate::lake::TableName;
use crate::lake::table::LakeTable;
use crate::lake::{INTERNAL_CATALOG, TIME_TRAVEL_SCHEMA};
use crate::principal::Object;

/// The function's name.
pub(crate) const FUNCTION: &str = "table_changes";

/// One `table_changes(…)` call as written.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The table whose changes are read.
    pub(crate) table: TableName,
    /// First version, inclusive; `None` inside a job.
    pub(crate) from: Option<i64>,
    /// Last version, inclusive; the latest when `None`.
    pub(crate) to: Option<i64>,
}

/// Every `table_changes(…)` call of a statement, in order.
pub(crate) fn calls(statement: &DFStatement) -> Result<Vec<Call>> {
    let mut statement = statement.clone();
    let mut collect = Collect::default();
    visit_df(&mut statement, &mut collect);
    collect.found.into_iter().collect()
}

/// Whether `name` (as a table reference) names the function itself.
pub(crate) fn is_function_name(r: &TableReference) -> bool {
    matches!(r, TableReference::Bare { table } if table.as_ref() == FUNCTION)
}

/// Resolves every `table_changes(…)` call of `statement`.
pub(crate) async fn rewrite(
    cx: &StatementContext,
    mut statement: DFStatement,
) -> Result<DFStatement> {
    let mut collect = Collect::default();
    visit_df(&mut statement, &mut collect);
    if collect.found.is_empty() {
        return Ok(statement);
    }
    let schema = &cx.time_travel;
    for name in datafusion::catalog::SchemaProvider::table_names(schema.as_ref()) {
        if name.starts_with("changes:") {
            datafusion::catalog::SchemaProvider::deregister_table(schema.as_ref(), &name)?;
        }
    }
    let mut registered = Vec::new();
    for (i, call) in collect.found.into_iter().enumerate() {
        let call = call?;
        let provider = provider(cx, &call).await?;
        let private = format!("changes:{}#{i}", call.table);
        datafusion::catalog::SchemaProvider::register_table(
            schema.as_ref(),
            private.clone(),
            provider,
        )?;
        registered.push(private);
    }
    let mut apply = Apply {
        names: registered.into_iter(),
    };
    visit_df(&mut statement, &mut apply);
    Ok(statement)
}

/// The provider one call reads.
async fn provider(cx: &StatementContext, call: &Call) -> Result<Arc<dyn TableProvider>> {
    let lake = cx.engine.lake();
    let table = lake.require_table(&call.table).await?;
    let latest = table.version().unwrap_or(0) as i64;
    let job = cx.job.as_ref().map(|j| &j.inputs);
    let (from, to, windows) = match (call.from, job) {
        (Some(from), _) => {
            let to = call.to.unwrap_or(latest);
            if let Some(beyond) = [from, to].into_iter().find(|v| *v > latest) {
                return Err(Error::NotFound {
                    kind: "version",
                    name: format!("{beyond} of {} (latest version is {latest})", call.table),
                });
            }
            if from > to {
                return Err(Error::invalid(format!(
                    "table_changes('{}', {from}, {to}): the first version is after the last",
                    call.table
                )));
            }
            (from, to, None)
        }
        (None, Some(inputs)) => {
            let Some((consumed, pinned)) = inputs.ranges.get(&call.table.to_string()) else {
                return Err(Error::invalid(format!(
                    "table_changes('{}') is not an input of this job",
                    call.table
                )));
            };
            (consumed + 1, *pinned, inputs.windows.clone())
        }
        (None, None) => {
            return Err(Error::invalid(format!(
                "table_changes('{}') without versions reads what is new since a job's last run, so it works only inside a job; elsewhere write table_changes('{}', from_version[, to_version])",
                call.table, call.table
            )));
        }
    };
    if let Some(windows) = windows {
        let mut at = table.clone();
        at.load_version(to as u64).await?;
        let inner = cx
            .catalog
            .scan_settings()
            .provider(&call.table, &at)
            .await?;
        let windowed = WindowedTable::try_new(inner, windows)?;
        return Ok(Arc::new(LakeTable::new(
            call.table.clone(),
            Arc::new(windowed),
        )));
    }
    let changes = ChangesTable::try_new(&table, &call.table, from, to)?;
    Ok(Arc::new(LakeTable::new(
        call.table.clone(),
        Arc::new(changes),
    )))
}

/// The change columns appended to a table's own.
fn change_fields() -> [Field; 3] {
    [
        Field::new("_change_type", DataType::Utf8, true),
        Field::new("_commit_version", DataType::Int64, true),
        Field::new(
            "_commit_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]
}

/// The changes of one table between two versions (inclusive), in types
/// a Delta table can store (delta-rs reports the version unsigned and the
/// commit time without a zone).
#[derive(Debug)]
pub(crate) struct ChangesTable {
    table: DeltaTable,
    name: TableName,
    from: i64,
    to: i64,
    schema: SchemaRef,
}

impl ChangesTable {
    /// The changes of `table` in versions `from..=to`.
    pub(crate) fn try_new(
        table: &DeltaTable,
        name: &TableName,
        from: i64,
        to: i64,
    ) -> Result<Self> {
        let snapshot = table.snapshot()?;
        let mut fields: Vec<Field> = snapshot
            .snapshot()
            .input_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(change_fields());
        Ok(Self {
            table: table.clone(),
            name: name.clone(),
            from,
            to,
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

#[async_trait]
impl TableProvider for ChangesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn DFSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if self.from > self.to {
            return EmptyTable::new(Arc::clone(&self.schema))
                .scan(state, projection, &[], limit)
                .await;
        }
        let plan = self
            .table
            .clone()
            .scan_cdf()
            .with_starting_version(self.from as u64)
            .with_ending_version(self.to as u64)
            .build(state, None)
            .await
            .map_err(|e| match e {
                DeltaTableError::ChangeDataNotEnabled { .. }
                | DeltaTableError::ChangeDataNotRecorded { .. } => DataFusionError::Plan(format!(
                    "table_changes on {} from version {}: {e}; the table was written without the change data feed there, so read from a later version",
                    self.name, self.from
                )),
                other => DataFusionError::External(Box::new(other)),
            })?;
        let input = plan.schema();
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let mut exprs = Vec::with_capacity(wanted.len());
        for i in wanted {
            let field = self.schema.field(i);
            let (index, found) = input.column_with_name(field.name()).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "the change feed of {} lacks column {}",
                    self.name,
                    field.name()
                ))
            })?;
            let column: Arc<dyn datafusion::physical_plan::PhysicalExpr> = Arc::new(
                datafusion::physical_expr::expressions::Column::new(found.name(), index),
            );
            let expr = if found.data_type() == field.data_type() {
                column
            } else {
                datafusion::physical_expr::expressions::cast(
                    column,
                    &input,
                    field.data_type().clone(),
                )?
            };
            exprs.push((expr, field.name().clone()));
        }
        let mut out: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(exprs, plan)?);
        if let Some(limit) = limit {
            out = Arc::new(GlobalLimitExec::new(
                Arc::new(
                    datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec::new(
                        out,
                    ),
                ),
                0,
                Some(limit),
            ));
        }
        Ok(out)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }
}

/// A table at one version, cut into the windows closing in a run.
#[derive(Debug)]
struct WindowedTable {
    inner: Arc<dyn TableProvider>,
    windows: Windowing,
    ts: usize,
    schema: SchemaRef,
}

impl WindowedTable {
    fn try_new(inner: Arc<dyn TableProvider>, windows: Windowing) -> Result<Self> {
        let base = inner.schema();
        let (ts, field) =
            base.column_with_name(&windows.column)
                .ok_or_else(|| Error::NotFound {
                    kind: "column",
                    name: format!(
                        "{} (the window's event-time column; columns: {})",
                        windows.column,
                        crate::names::column_names(base.fields())
                    ),
                })?;
        if !matches!(
            field.data_type(),
            DataType::Timestamp(..) | DataType::Date32
        ) {
            return Err(Error::invalid(format!(
                "the window's event-time column {} has type {}: expected a timestamp",
                windows.column,
                field.data_type()
            )));
        }
        let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
        for name in ["window_start", "window_end"] {
            if base.column_with_name(name).is_some() {
                return Err(Error::invalid(format!(
                    "the windowed input already has a column {name}"
                )));
            }
            fields.push(Field::new(
                name,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ));
        }
        Ok(Self {
            inner,
            windows,
            ts,
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

#[async_trait]
impl TableProvider for WindowedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn DFSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        // The closing windows' event-time range prunes files; the window
        // assignment below is exact whatever the scan returns.
        let w = &self.windows;
        let base = self.inner.schema();
        let t = base.field(self.ts).data_type().clone();
        let column = col(datafusion::common::Column::new_unqualified(&w.column));
        let hint = |micros: i64| {
            instant_literal(&t, micros).map_err(|e| DataFusionError::Plan(e.to_string()))
        };
        let mut range = column.clone().lt(hint(w.last_start + w.size)?);
        if let Some(first) = w.first_start {
            range = range.and(column.gt_eq(hint(first)?));
        }
        let pushdown = self.inner.supports_filters_pushdown(&[&range])?;
        let filters = if pushdown.first() == Some(&TableProviderFilterPushDown::Unsupported) {
            vec![]
        } else {
            vec![range]
        };
        let plan = self.inner.scan(state, None, &filters, None).await?;
        let partition = Arc::new(Windows {
            plan,
            windows: self.windows.clone(),
            ts: self.ts,
            schema: Arc::clone(&self.schema),
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            Arc::clone(&self.schema),
            vec![partition],
            projection,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

/// The one partition of a [`WindowedTable`] scan.
#[derive(Debug)]
struct Windows {
    plan: Arc<dyn ExecutionPlan>,
    windows: Windowing,
    ts: usize,
    schema: SchemaRef,
}

impl PartitionStream for Windows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = Arc::clone(&self.schema);
        let windows = self.windows.clone();
        let ts = self.ts;
        let input = datafusion::physical_plan::execute_stream(Arc::clone(&self.plan), ctx);
        let stream = futures::stream::once(async move { input }).flat_map(move |input| {
            let schema = Arc::clone(&schema);
            let windows = windows.clone();
            match input {
                Ok(s) => s
                    .map(move |batch| batch.and_then(|b| windows.assign(&b, ts, &schema)))
                    .boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

fn is_call(factor: &TableFactor) -> bool {
    matches!(factor, TableFactor::Table { name, args: Some(_), .. }
        if name.0.len() == 1
            && name.0[0].as_ident().is_some_and(|i| i.value.eq_ignore_ascii_case(FUNCTION)))
}

#[derive(Default)]
struct Collect {
    found: Vec<Result<Call>>,
}

impl VisitorMut for Collect {
    type Break = ();
    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if is_call(factor)
            && let TableFactor::Table {
                args: Some(args), ..
            } = factor
        {
            self.found.push(parse_call(&args.args));
        }
        ControlFlow::Continue(())
    }
}

fn parse_call(args: &[FunctionArg]) -> Result<Call> {
    let usage = "table_changes('table', from_version[, to_version]), or table_changes('table') inside a job";
    let values: Vec<&ast::Expr> = args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            other => Err(Error::invalid(format!(
                "unexpected argument {other}: expected {usage}"
            ))),
        })
        .collect::<Result<_>>()?;
    let Some((first, versions)) = values.split_first() else {
        return Err(Error::invalid(format!(
            "missing table name: expected {usage}"
        )));
    };
    let table_text = match first {
        ast::Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            _ => {
                return Err(Error::invalid(format!(
                    "table_changes needs the table's name as a string: expected {usage}"
                )));
            }
        },
        _ => {
            return Err(Error::invalid(format!(
                "table_changes needs the table's name as a string: expected {usage}"
            )));
        }
    };
    let table = match crate::names::read_object(&TableReference::parse_str(&table_text)) {
        Object::Table(t) => t,
        _ => {
            return Err(Error::invalid(format!(
                "table_changes('{table_text}'): not a lake table (expected table, schema.table or lake.schema.table)"
            )));
        }
    };
    let version = |e: &ast::Expr| -> Result<i64> {
        match e {
            ast::Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n.parse::<i64>().ok().filter(|v| *v >= 0),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| {
            Error::invalid(format!(
                "table_changes('{table_text}', …): versions must be non-negative integers, found {e}"
            ))
        })
    };
    let (from, to) = match versions {
        [] => (None, None),
        [f] => (Some(version(f)?), None),
        [f, t] => (Some(version(f)?), Some(version(t)?)),
        _ => {
            return Err(Error::invalid(format!(
                "too many arguments: expected {usage}"
            )));
        }
    };
    Ok(Call { table, from, to })
}

/// Points each call (in the order [`Collect`] saw them) at its provider.
struct Apply {
    names: std::vec::IntoIter<String>,
}

impl VisitorMut for Apply {
    type Break = ();
    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if is_call(factor)
            && let TableFactor::Table {
                name, alias, args, ..
            } = factor
            && let Some(private) = self.names.next()
        {
            *name = ObjectName::from(vec![
                Ident::new(INTERNAL_CATALOG),
                Ident::new(TIME_TRAVEL_SCHEMA),
                Ident::with_quote('"', private),
            ]);
            *args = None;
            if alias.is_none() {
                *alias = Some(TableAlias {
                    explicit: true,
                    name: Ident::new(FUNCTION),
                    columns: vec![],
                    at: None,
                });
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, RecordBatch, TimestampMicrosecondArray};
    use arrow::datatypes::TimestampMicrosecondType;

    #[test]
    fn closing_windows_follow_the_watermark() {
        let min = 60_000_000;
        // Tumbling minutes, watermark moving from 10:30 to 13:10 (minutes
        // since the epoch): windows [10, 11) and [11, 12) close.
        let w = Windowing::closing(
            "ts".into(),
            min,
            min,
            Some(10 * min + min / 2),
            13 * min + min / 6,
        )
        .unwrap();
        assert_eq!(w.first_start, Some(10 * min));
        assert_eq!(w.last_start, 12 * min);
        // Not moving past a window's end closes nothing.
        assert!(Windowing::closing("ts".into(), min, min, Some(13 * min), 13 * min + 5).is_none());
        // Late: before the start of the first open window.
        assert_eq!(Windowing::late_before(min, min, 13 * min + 5), 13 * min);
        // Hopping 5-minute windows every minute: at watermark 20:00 the
        // window [15, 20) has closed, so anything before 20:00 has lost a
        // window; at 20:30, still 20:00.
        assert_eq!(Windowing::late_before(5 * min, min, 20 * min), 20 * min);
        assert_eq!(
            Windowing::late_before(5 * min, min, 20 * min + min / 2),
            20 * min
        );
    }

    #[test]
    fn rows_are_copied_into_each_closing_window() {
        let min = 60_000_000;
        let w = Windowing {
            column: "ts".into(),
            size: 3 * min,
            slide: min,
            first_start: Some(min),
            last_start: 2 * min,
        };
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        )]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(TimestampMicrosecondArray::from(vec![
                Some(2 * min + 1),
                None,
                Some(0),
            ]))],
        )
        .unwrap();
        let out_schema = Arc::new(Schema::new(vec![
            schema.field(0).clone(),
            Field::new(
                "window_start",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new(
                "window_end",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]));
        let out = w.assign(&batch, 0, &out_schema).unwrap();
        // 2:00+ is in windows starting 0, 1 and 2; only 1 and 2 close.
        // 0:00 is only in the window starting 0, which does not close.
        let starts: Vec<i64> = out
            .column(1)
            .as_primitive::<TimestampMicrosecondType>()
            .values()
            .to_vec();
        assert_eq!(starts, vec![min, 2 * min]);
    }
}
