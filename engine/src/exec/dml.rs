//! Lake DML: `INSERT [OVERWRITE]`, `UPDATE`, `DELETE`, `MERGE INTO`.
//!
//! `INSERT` is planned by DataFusion (column lists, implicit casts and
//! arity checks are DataFusion's) and the planned input is streamed into a
//! delta-rs write. `UPDATE`, `DELETE` and `MERGE` map onto delta-rs's
//! operations, which take predicates and values as SQL text resolved
//! against the table: identifiers are normalised first (unquoted names
//! folded to lower case, then quoted) so they mean what they mean in a query.

use std::ops::ControlFlow;

use autolake_sql::sqlparser::ast::{
    self, AssignmentTarget, Expr, Ident, MergeAction, MergeClauseKind, ObjectName, TableFactor,
    VisitMut, VisitorMut,
};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::sql::parser::Statement as DFStatement;
use deltalake::protocol::SaveMode;

use super::query::count_result;
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::lake::TableName;
use crate::lake::write;
use crate::names::{ident_name, lake_table, write_target};

pub(super) async fn insert(
    cx: &StatementContext,
    statement: &DFStatement,
    target: TableName,
    kind: &'static str,
) -> Result<StatementResult> {
    let table = cx.engine.lake().require_table(&target).await?;
    bounded(cx, &target, kind, None, &[])?;
    let plan = super::query::plan(cx, statement.clone()).await?;
    let LogicalPlan::Dml(dml) = plan else {
        return Err(Error::invalid(format!(
            "INSERT into {target}: unexpected plan"
        )));
    };
    let mode = match dml.op {
        WriteOp::Insert(InsertOp::Overwrite) => SaveMode::Overwrite,
        WriteOp::Insert(InsertOp::Append) => SaveMode::Append,
        other => {
            return Err(Error::invalid(format!(
                "{other} into {target} is not supported"
            )));
        }
    };
    let input = crate::lake::types::guard_insert(std::sync::Arc::unwrap_or_clone(dml.input))?;
    // A job's logged predictions are committed before its output.
    let input = match super::predictions::log_before_output(cx, input).await? {
        Ok(rows) | Err(rows) => rows,
    };
    let stamp = cx.stamp(kind);
    let (_, rows) = write::write_plan(
        table,
        &target,
        input,
        std::sync::Arc::new(cx.ctx.state()),
        mode,
        None,
        false,
        &stamp,
    )
    .await?;
    count_result(kind, rows)
}

pub(super) async fn update(
    cx: &StatementContext,
    update: &ast::Update,
    kind: &'static str,
) -> Result<StatementResult> {
    if update.from.is_some() || !update.table.joins.is_empty() {
        return Err(Error::invalid(
            "UPDATE … FROM and joins are not supported on lake tables: use MERGE INTO",
        ));
    }
    let name = lake_table(&write_target(&update.table.relation)?)?;
    let table = cx.engine.lake().require_table(&name).await?;
    let stamp = cx.stamp(kind);
    let columns = table_columns(&table)?;
    let stamps = timestamp_columns(&table)?;
    let mut read: Vec<&Expr> = update.selection.iter().collect();
    read.extend(update.assignments.iter().map(|a| &a.value));
    let predicate = bounded(cx, &name, kind, update.selection.as_ref(), &read)?;
    let mut builder = table
        .update()
        .with_session_state(std::sync::Arc::new(cx.ctx.state()))
        .with_commit_properties(stamp.properties());
    if let Some(pred) = predicate {
        builder = builder.with_predicate(pred);
    }
    for a in &update.assignments {
        let column = existing_column(&name, &columns, assignment_column(&a.target)?)?;
        let value = exact(&stamps, &column, delta_sql(&a.value));
        builder = builder.with_update(column, value);
    }
    let (_, metrics) = builder.await.map_err(|e| write::write_error(&name, e))?;
    count_result(kind, metrics.num_updated_rows as u64)
}

/// The predicate a write by this session's principal runs with: its own,
/// and the row policies bounding the principal's view of the table (see
/// [`super::governance::bounded_predicate`]).
fn bounded(
    cx: &StatementContext,
    table: &TableName,
    kind: &str,
    own: Option<&Expr>,
    read: &[&Expr],
) -> Result<Option<String>> {
    let state = cx.engine.governance().cached();
    let policies = super::governance::bounded_predicate(&state, &cx.principal, table, kind, read)?;
    Ok(match (own, policies) {
        (Some(own), Some(p)) => Some(format!("({}) AND {}", delta_sql(own), delta_sql(&p))),
        (Some(own), None) => Some(delta_sql(own)),
        (None, Some(p)) => Some(delta_sql(&p)),
        (None, None) => None,
    })
}

pub(super) fn delete_target(delete: &ast::Delete) -> Result<ObjectName> {
    let from = match &delete.from {
        ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
    };
    match (from.as_slice(), delete.using.as_ref()) {
        ([t], None) if t.joins.is_empty() && delete.tables.is_empty() => write_target(&t.relation),
        _ => Err(Error::invalid(
            "DELETE from several tables or with USING is not supported on lake tables: use MERGE INTO",
        )),
    }
}

pub(super) async fn delete(
    cx: &StatementContext,
    delete: &ast::Delete,
    kind: &'static str,
) -> Result<StatementResult> {
    let name = lake_table(&delete_target(delete)?)?;
    let table = cx.engine.lake().require_table(&name).await?;
    let stamp = cx.stamp(kind);
    let read: Vec<&Expr> = delete.selection.iter().collect();
    let predicate = bounded(cx, &name, kind, delete.selection.as_ref(), &read)?;
    let mut builder = table
        .delete()
        .with_session_state(std::sync::Arc::new(cx.ctx.state()))
        .with_commit_properties(stamp.properties());
    if let Some(pred) = predicate {
        builder = builder.with_predicate(pred);
    }
    let (_, metrics) = builder.await.map_err(|e| write::write_error(&name, e))?;
    count_result(kind, metrics.num_deleted_rows.unwrap_or(0) as u64)
}

pub(super) async fn merge(
    cx: &StatementContext,
    merge: &ast::Merge,
    kind: &'static str,
) -> Result<StatementResult> {
    let target_name = write_target(&merge.table)?;
    let name = lake_table(&target_name)?;
    let target_alias = factor_alias(&merge.table).unwrap_or_else(|| name.table.clone());
    let table = cx.engine.lake().require_table(&name).await?;
    let columns = table_columns(&table)?;
    let stamps = timestamp_columns(&table)?;
    bounded(cx, &name, kind, None, &[])?;

    // The source is planned by DataFusion, so it may be any table, a
    // subquery, or an older version of a table.
    let (source_sql, source_alias) = match &merge.source {
        TableFactor::Table {
            name: src, alias, ..
        } => {
            let mut factor = merge.source.clone();
            if let TableFactor::Table { alias: a, .. } = &mut factor {
                *a = None;
            }
            let default_alias = src
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(ident_name)
                .unwrap_or_default();
            (
                format!("SELECT * FROM {factor}"),
                alias
                    .as_ref()
                    .map(|a| ident_name(&a.name))
                    .unwrap_or(default_alias),
            )
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => (
            subquery.to_string(),
            alias
                .as_ref()
                .map(|a| ident_name(&a.name))
                .ok_or_else(|| Error::invalid("MERGE source subquery needs an alias"))?,
        ),
        other => {
            return Err(Error::invalid(format!(
                "unsupported MERGE source {other}: use a table or (subquery) AS alias"
            )));
        }
    };
    if source_alias == target_alias {
        return Err(Error::invalid(format!(
            "MERGE source and target are both named {source_alias}: give one an alias"
        )));
    }
    let source_plan = super::query::plan(cx, super::query::parse_one_df(&source_sql)?).await?;
    let source_plan = crate::lake::types::guard_source(source_plan)?;
    let source = datafusion::dataframe::DataFrame::new(cx.ctx.state(), source_plan);

    let stamp = cx.stamp(kind);
    let mut builder = table
        .merge(source, delta_sql(&merge.on))
        .with_source_alias(&source_alias)
        .with_target_alias(&target_alias)
        .with_session_state(std::sync::Arc::new(cx.ctx.state()))
        .with_commit_properties(stamp.properties());
    for clause in &merge.clauses {
        let predicate = clause.predicate.as_ref().map(delta_sql);
        builder = match (&clause.clause_kind, &clause.action) {
            (MergeClauseKind::Matched, MergeAction::Update(u)) => {
                let sets = assignments(&name, &columns, &stamps, &u.assignments)?;
                builder.when_matched_update(|mut b| {
                    if let Some(p) = predicate {
                        b = b.predicate(p);
                    }
                    sets.into_iter().fold(b, |b, (c, v)| b.update(c, v))
                })?
            }
            (MergeClauseKind::Matched, MergeAction::Delete { .. }) => {
                builder.when_matched_delete(|mut b| {
                    if let Some(p) = predicate {
                        b = b.predicate(p);
                    }
                    b
                })?
            }
            (
                MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget,
                MergeAction::Insert(insert),
            ) => {
                let sets = merge_insert_values(&name, &columns, &stamps, insert)?;
                builder.when_not_matched_insert(|mut b| {
                    if let Some(p) = predicate {
                        b = b.predicate(p);
                    }
                    sets.into_iter().fold(b, |b, (c, v)| b.set(c, v))
                })?
            }
            (MergeClauseKind::NotMatchedBySource, MergeAction::Update(u)) => {
                let sets = assignments(&name, &columns, &stamps, &u.assignments)?;
                builder.when_not_matched_by_source_update(|mut b| {
                    if let Some(p) = predicate {
                        b = b.predicate(p);
                    }
                    sets.into_iter().fold(b, |b, (c, v)| b.update(c, v))
                })?
            }
            (MergeClauseKind::NotMatchedBySource, MergeAction::Delete { .. }) => builder
                .when_not_matched_by_source_delete(|mut b| {
                    if let Some(p) = predicate {
                        b = b.predicate(p);
                    }
                    b
                })?,
            (kind, action) => {
                return Err(Error::invalid(format!(
                    "unsupported MERGE clause WHEN {kind} THEN {action}"
                )));
            }
        };
    }
    let (_, metrics) = builder.await.map_err(|e| write::write_error(&name, e))?;
    let affected = metrics.num_target_rows_inserted
        + metrics.num_target_rows_updated
        + metrics.num_target_rows_deleted;
    count_result(kind, affected as u64)
}

fn merge_insert_values(
    table: &TableName,
    columns: &[String],
    stamps: &[String],
    insert: &ast::MergeInsertExpr,
) -> Result<Vec<(String, String)>> {
    let ast::MergeInsertKind::Values(values) = &insert.kind else {
        return Err(Error::invalid("MERGE … INSERT needs (columns) VALUES (…)"));
    };
    let [row] = values.rows.as_slice() else {
        return Err(Error::invalid(
            "MERGE … INSERT VALUES takes exactly one row",
        ));
    };
    if insert.columns.is_empty() {
        return Err(Error::invalid(format!(
            "MERGE … INSERT into {table} must list the target columns: INSERT (c1, c2) VALUES (…)"
        )));
    }
    if insert.columns.len() != row.content.len() {
        return Err(Error::invalid(format!(
            "MERGE … INSERT lists {} columns but {} values",
            insert.columns.len(),
            row.content.len()
        )));
    }
    insert
        .columns
        .iter()
        .zip(&row.content)
        .map(|(c, v)| {
            let column = existing_column(table, columns, last_ident(c)?)?;
            let value = exact(stamps, &column, delta_sql(v));
            Ok((column, value))
        })
        .collect()
}

fn assignments(
    table: &TableName,
    columns: &[String],
    stamps: &[String],
    assignments: &[ast::Assignment],
) -> Result<Vec<(String, String)>> {
    assignments
        .iter()
        .map(|a| {
            let column = existing_column(table, columns, assignment_column(&a.target)?)?;
            let value = exact(stamps, &column, delta_sql(&a.value));
            Ok((column, value))
        })
        .collect()
}

/// The table's timestamp columns: delta-rs casts what is assigned to them
/// into microseconds, cutting nanoseconds without a word.
fn timestamp_columns(table: &deltalake::DeltaTable) -> Result<Vec<String>> {
    let schema = table.snapshot()?.snapshot().arrow_schema();
    Ok(schema
        .fields()
        .iter()
        .filter(|f| matches!(f.data_type(), arrow::datatypes::DataType::Timestamp(..)))
        .map(|f| f.name().clone())
        .collect())
}

/// `value` for `column`, checked to hold whole microseconds where the
/// column is a timestamp (see [`crate::lake::types::exact_microseconds_sql`]).
fn exact(stamps: &[String], column: &str, value: String) -> String {
    if stamps.iter().any(|s| s == column) {
        crate::lake::types::exact_microseconds_sql(&value, column)
    } else {
        value
    }
}

fn table_columns(table: &deltalake::DeltaTable) -> Result<Vec<String>> {
    Ok(table
        .snapshot()?
        .schema()
        .fields()
        .map(|f| f.name().to_string())
        .collect())
}

/// delta-rs ignores assignments to columns the table lacks; a user's typo
/// must be an error instead.
fn existing_column(table: &TableName, columns: &[String], column: String) -> Result<String> {
    if columns.contains(&column) {
        Ok(column)
    } else {
        Err(Error::NotFound {
            kind: "column",
            name: format!("{column} of {table} (columns: {})", columns.join(", ")),
        })
    }
}

fn assignment_column(target: &AssignmentTarget) -> Result<String> {
    match target {
        AssignmentTarget::ColumnName(name) => last_ident(name),
        AssignmentTarget::Tuple(_) => Err(Error::invalid(
            "tuple assignments (a, b) = (…) are not supported: assign each column",
        )),
    }
}

fn last_ident(name: &ObjectName) -> Result<String> {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(ident_name)
        .ok_or_else(|| Error::invalid(format!("invalid column name {name}")))
}

fn factor_alias(factor: &TableFactor) -> Option<String> {
    match factor {
        TableFactor::Table { alias: Some(a), .. } => Some(ident_name(&a.name)),
        _ => None,
    }
}

/// Renders an expression for delta-rs's SQL parser with identifier
/// semantics normalised: unquoted names are folded to lower case and every
/// name is quoted.
pub(super) fn delta_sql(expr: &Expr) -> String {
    struct Normalize;
    impl VisitorMut for Normalize {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            let fix = |i: &mut Ident| {
                if i.quote_style.is_none() {
                    i.value = i.value.to_lowercase();
                    i.quote_style = Some('"');
                }
            };
            match expr {
                Expr::Identifier(i) => fix(i),
                Expr::CompoundIdentifier(parts) => parts.iter_mut().for_each(fix),
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut expr = expr.clone();
    let _ = expr.visit(&mut Normalize);
    expr.to_string()
}
