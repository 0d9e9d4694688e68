//! Planning and running statements with DataFusion (after time travel and
//! `table_changes` are resolved), and the small results other statements
//! return.

use std::sync::Arc;

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use autolake_sql::Statement;
use datafusion::sql::parser::Statement as DFStatement;

use super::{changes, time_travel};
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::lake::{DEFAULT_SCHEMA, LAKE_CATALOG};

/// Plans and runs a statement with DataFusion, streaming its result.
pub(crate) async fn datafusion_statement(
    cx: &StatementContext,
    statement: DFStatement,
    kind: &'static str,
) -> Result<StatementResult> {
    let plan = plan(cx, statement).await?;
    let is_query = !matches!(
        plan,
        datafusion::logical_expr::LogicalPlan::Ddl(_)
            | datafusion::logical_expr::LogicalPlan::Statement(_)
            | datafusion::logical_expr::LogicalPlan::Dml(_)
    );
    let frame = cx.ctx.execute_logical_plan(plan).await?;
    let stream = frame.execute_stream().await?;
    let result = StatementResult::stream(kind, stream);
    Ok(if is_query { result } else { result.status() })
}

/// Plans a statement with DataFusion after resolving time travel.
pub(crate) async fn plan(
    cx: &StatementContext,
    statement: DFStatement,
) -> Result<datafusion::logical_expr::LogicalPlan> {
    let statement = time_travel::rewrite(cx, statement).await?;
    let statement = changes::rewrite(cx, statement).await?;
    rewritten_plan(cx, statement).await
}

/// Plans a statement whose time travel and changes are already resolved.
pub(crate) async fn rewritten_plan(
    cx: &StatementContext,
    statement: DFStatement,
) -> Result<datafusion::logical_expr::LogicalPlan> {
    let state = cx.ctx.state();
    match state.statement_to_plan(statement.clone()).await {
        Ok(plan) => Ok(plan),
        Err(e)
            if matches!(e.find_root(), datafusion::error::DataFusionError::Plan(_))
                && missing_table(&state, &statement) =>
        {
            Err(Error::TableNotFound(e))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether a statement names a table the catalog does not have (DataFusion
/// reports it only as a planning error, in words).
fn missing_table(state: &datafusion::execution::SessionState, statement: &DFStatement) -> bool {
    let Ok(references) = state.resolve_table_references(statement) else {
        return false;
    };
    references.iter().any(|r| {
        if r.schema().is_none() && state.table_functions().contains_key(r.table()) {
            return false;
        }
        let resolved = r.clone().resolve(LAKE_CATALOG, DEFAULT_SCHEMA);
        let schema = state
            .catalog_list()
            .catalog(&resolved.catalog)
            .and_then(|c| c.schema(&resolved.schema));
        match schema {
            Some(schema) => !schema.table_exist(&resolved.table),
            None => resolved.schema.as_ref() != "information_schema",
        }
    })
}

pub(crate) fn parse_one_df(sql: &str) -> Result<DFStatement> {
    match autolake_sql::parse(sql)?.pop().map(|p| p.statement) {
        Some(Statement::Sql(s)) => Ok(*s),
        _ => Err(Error::invalid(format!("not a SQL statement: {sql}"))),
    }
}

/// A one-row, one-column `count` result, as DataFusion reports DML.
pub(crate) fn count_result(kind: &'static str, rows: u64) -> Result<StatementResult> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(UInt64Array::from(vec![rows]))],
    )?;
    Ok(StatementResult::batches(kind, schema, vec![batch]).status())
}

/// An empty result for DDL.
pub(crate) fn done(kind: &'static str) -> StatementResult {
    let schema = Arc::new(Schema::empty());
    StatementResult::batches(kind, schema, vec![]).status()
}
