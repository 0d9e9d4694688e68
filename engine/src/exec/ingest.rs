//! Bulk ingest: uploaded Arrow batches written into a lake table in one
//! Delta commit, creating, appending to or replacing the table as the
//! client asks (Flight SQL's `CommandStatementIngest`).
//!
//! Like a statement, an ingest is split in two so the session's funnel can
//! authorize it between the halves: [`plan`] decides what the upload does
//! (which table, which save mode) and so which accesses it needs; [`run`]
//! writes it. The funnel ([`Session::ingest`](crate::session::Session::ingest))
//! checks the accesses, records ownership of a table it created and writes
//! the one audit entry.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast, col, lit};
use deltalake::DeltaTable;
use deltalake::protocol::SaveMode;

use crate::context::StatementContext;
use crate::error::{Error, Result};
use crate::lake::TableName;
use crate::lake::write::write_plan;
use crate::principal::{Access, Action, Object};

/// An upload of record batches into a lake table.
#[derive(Debug)]
pub struct Ingest {
    /// The table written.
    pub table: TableName,
    /// The rows, in one schema.
    pub batches: Vec<RecordBatch>,
    /// What to do when the table exists (`None`: not said, an error if
    /// it does).
    pub if_exists: Option<IfExists>,
    /// What to do when it does not (`None`: not said, an error if it
    /// does not).
    pub if_missing: Option<IfMissing>,
}

/// What an ingest does to a table that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Refuse the upload.
    Fail,
    /// Add the rows.
    Append,
    /// Replace the table's rows with the upload.
    Replace,
}

/// What an ingest does when its table does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Create the table with the upload's schema.
    Create,
    /// Refuse the upload.
    Fail,
}

/// What an authorized ingest will write.
pub(crate) struct Target {
    handle: DeltaTable,
    mode: SaveMode,
    replace: bool,
}

/// Decides what `request` does to its table and the accesses that needs.
pub(crate) async fn plan(cx: &StatementContext, request: &Ingest) -> Result<(Target, Vec<Access>)> {
    let table = &request.table;
    crate::lake::validate_name("schema", &table.schema)?;
    crate::lake::validate_name("table", &table.table)?;
    if table.schema == crate::lake::SYSTEM_SCHEMA {
        return Err(Error::ReadOnly(table.to_string()));
    }
    let lake = cx.engine.lake();
    if !lake.schema_exists(&table.schema).await? {
        return Err(Error::NotFound {
            kind: "schema",
            name: table.schema.clone(),
        });
    }
    let existing = lake.load_table(table).await?;
    let (handle, mode, replace, actions) = match (existing, request.if_exists, request.if_missing) {
        (Some(_), Some(IfExists::Fail), _) => {
            return Err(Error::AlreadyExists {
                kind: "table",
                name: table.to_string(),
            });
        }
        (Some(t), Some(IfExists::Append), _) => (t, SaveMode::Append, false, vec![Action::Insert]),
        (Some(t), Some(IfExists::Replace), _) => (
            t,
            SaveMode::Overwrite,
            true,
            vec![Action::Delete, Action::Insert],
        ),
        (None, _, Some(IfMissing::Create)) => (
            lake.table_handle(table)?,
            SaveMode::Append,
            false,
            vec![Action::Create, Action::Insert],
        ),
        (None, _, Some(IfMissing::Fail)) => {
            return Err(Error::NotFound {
                kind: "table",
                name: table.to_string(),
            });
        }
        (Some(_), None, _) | (None, _, None) => {
            return Err(Error::invalid(
                "ingest needs table definition options: what to do when the table exists \
                 (fail, append, replace) and when it does not (create, fail)",
            ));
        }
    };
    let accesses = actions
        .into_iter()
        .map(|action| Access {
            action,
            object: Object::Table(table.clone()),
        })
        .collect();
    Ok((
        Target {
            handle,
            mode,
            replace,
        },
        accesses,
    ))
}

/// Writes an authorized upload; the number of rows written.
pub(crate) async fn run(cx: &StatementContext, request: Ingest, target: Target) -> Result<u64> {
    let table = &request.table;
    if target.replace {
        // Replacing reaches rows a bounded user cannot see.
        let state = cx.engine.governance().cached();
        super::governance::bounded_predicate(
            &state,
            &cx.principal,
            table,
            "INSERT OVERWRITE",
            &[],
        )?;
    }
    let Some(first) = request.batches.first() else {
        return Err(Error::invalid(format!(
            "nothing to ingest into {table}: the upload held no record batch"
        )));
    };
    let schema = first.schema();
    let plan = cx
        .ctx
        .read_batches(request.batches.clone())
        .map_err(|e| {
            Error::invalid(format!(
                "the uploaded batches do not share one schema ({schema}): {e}"
            ))
        })?
        .into_unoptimized_plan();
    let plan = if target.handle.version().is_some() && !target.replace {
        by_table_columns(table, &target.handle, plan)?
    } else {
        plan
    };
    let stamp = cx.stamp("INGEST");
    let (_, rows) = write_plan(
        target.handle,
        table,
        plan,
        Arc::new(cx.ctx.state()),
        target.mode,
        None,
        target.replace,
        &stamp,
    )
    .await?;
    Ok(rows)
}

/// An append's rows in the table's columns, matched by name as `INSERT`
/// matches a column list: a column the upload lacks is NULL (refused where
/// the table requires a value), a column the table lacks is refused.
fn by_table_columns(
    table: &TableName,
    handle: &DeltaTable,
    plan: LogicalPlan,
) -> Result<LogicalPlan> {
    let columns = handle.snapshot()?.snapshot().arrow_schema();
    let sent = Arc::clone(plan.schema());
    if let Some(extra) = sent
        .fields()
        .iter()
        .find(|f| columns.field_with_name(f.name()).is_err())
    {
        return Err(Error::invalid(format!(
            "ingest into {table}: the upload has a column {} the table does not have (columns: {})",
            extra.name(),
            crate::names::column_names(columns.fields())
        )));
    }
    let exprs = columns
        .fields()
        .iter()
        .map(|f| {
            if sent.field_with_unqualified_name(f.name()).is_ok() {
                Ok(col(Column::new_unqualified(f.name())))
            } else if f.is_nullable() {
                Ok(cast(lit(ScalarValue::Null), f.data_type().clone()).alias(f.name()))
            } else {
                Err(Error::invalid(format!(
                    "ingest into {table}: the upload has no column {}, which the table requires (NOT NULL)",
                    f.name()
                )))
            }
        })
        .collect::<Result<Vec<Expr>>>()?;
    Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
}
