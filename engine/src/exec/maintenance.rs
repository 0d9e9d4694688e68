//! Table history and maintenance: `DESCRIBE HISTORY`, `RESTORE`,
//! `OPTIMIZE [ZORDER BY]`, `VACUUM`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use autolake_sql::{DescribeHistory, Optimize, Restore, TimeTravel, Vacuum};
use deltalake::operations::optimize::OptimizeType;
use deltalake::operations::vacuum::VacuumMode;
use futures::TryStreamExt;
use serde_json::Value;

use super::time_travel::load_at_timestamp;
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::lake::write;
use crate::names::lake_table;
use crate::principal::{Access, Action, Object};
use autolake_sql::{Family, Statement};

/// What a maintenance statement touches: reading a table's history, or
/// altering the table.
pub(super) fn accesses(statement: &Statement, out: &mut Vec<Access>) -> Result<()> {
    if let Statement::Vacuum(v) = statement
        && is_query_history(&v.table)
    {
        // Retention of the query history: the admin's maintenance.
        out.push(Access {
            action: Action::Alter,
            object: Object::System("queries".to_string()),
        });
        return Ok(());
    }
    let (action, table) = match statement {
        // Which machines run queries: no data, nothing to grant.
        Statement::ShowCluster => return Ok(()),
        Statement::DescribeHistory(h) => (Action::Select, &h.table),
        Statement::Restore(r) => (Action::Alter, &r.table),
        Statement::Optimize(o) => (Action::Alter, &o.table),
        Statement::Vacuum(v) => (Action::Alter, &v.table),
        other => return Err(super::reads::outside(Family::Maintenance, other)),
    };
    out.push(Access {
        action,
        object: Object::Table(lake_table(table)?),
    });
    Ok(())
}

/// Runs a maintenance statement.
pub(super) async fn run(cx: &StatementContext, statement: &Statement) -> Result<StatementResult> {
    match statement {
        Statement::DescribeHistory(h) => describe_history(cx, h).await,
        Statement::Restore(r) => restore(cx, r).await,
        Statement::Optimize(o) => optimize(cx, o).await,
        Statement::Vacuum(v) if is_query_history(&v.table) => vacuum_history(cx, v).await,
        Statement::Vacuum(v) => vacuum(cx, v).await,
        Statement::ShowCluster => crate::cluster::show(cx).await,
        other => Err(super::reads::outside(Family::Maintenance, other)),
    }
}

/// Whether `name` is `system.queries` (or `lake.system.queries`).
fn is_query_history(name: &autolake_sql::sqlparser::ast::ObjectName) -> bool {
    let Ok(parts) = crate::names::name_parts(name) else {
        return false;
    };
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    matches!(
        parts.as_slice(),
        [crate::lake::SYSTEM_SCHEMA, "queries"]
            | [
                crate::lake::LAKE_CATALOG,
                crate::lake::SYSTEM_SCHEMA,
                "queries"
            ]
    )
}

/// `VACUUM system.queries`: deletes the rows older than the configured
/// history and the files that held them.
async fn vacuum_history(cx: &StatementContext, v: &Vacuum) -> Result<StatementResult> {
    let days = cx
        .engine
        .config()
        .query_history_days
        .unwrap_or(crate::history::DEFAULT_HISTORY_DAYS);
    let done = crate::history::retain(
        cx.engine.lake(),
        days,
        v.retain_hours,
        v.dry_run,
        cx.stamp("VACUUM"),
    )
    .await?;
    if !v.dry_run {
        let root = cx
            .engine
            .lake()
            .table_path(&crate::history::queries_table());
        cx.engine.scan_cache().forget_under(&root);
    }
    kv_result(
        "VACUUM",
        vec![
            ("rows_deleted", done.rows as i64),
            ("files_deleted", done.files as i64),
        ],
    )
}

fn kv_result(kind: &'static str, rows: Vec<(&str, i64)>) -> Result<StatementResult> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("value", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )?;
    Ok(StatementResult::batches(kind, schema, vec![batch]))
}

pub(super) async fn describe_history(
    cx: &StatementContext,
    h: &DescribeHistory,
) -> Result<StatementResult> {
    let name = lake_table(&h.table)?;
    let table = cx.engine.lake().require_table(&name).await?;
    let latest = table.version().unwrap_or(0);
    let infos: Vec<_> = table.history(h.limit).try_collect().await?;

    let json =
        |v: Option<&Value>| -> Option<String> { v.filter(|v| !v.is_null()).map(Value::to_string) };
    let n = infos.len();
    let mut version = Vec::with_capacity(n);
    let mut timestamp = Vec::with_capacity(n);
    let mut operation = Vec::with_capacity(n);
    let mut user = Vec::with_capacity(n);
    let mut statement = Vec::with_capacity(n);
    let mut interface = Vec::with_capacity(n);
    let mut parameters = Vec::with_capacity(n);
    let mut metrics = Vec::with_capacity(n);
    // delta-rs lists commits newest first and without gaps.
    for (i, info) in infos.iter().enumerate() {
        version.push((latest - i as u64) as i64);
        timestamp.push(info.timestamp);
        operation.push(info.operation.clone());
        user.push(info.user_name.clone().or_else(|| {
            info.info
                .get("userName")
                .and_then(Value::as_str)
                .map(str::to_string)
        }));
        statement.push(
            info.info
                .get("autolake.statement")
                .and_then(Value::as_str)
                .map(str::to_string),
        );
        interface.push(
            info.info
                .get("autolake.interface")
                .and_then(Value::as_str)
                .map(str::to_string),
        );
        parameters.push(
            info.operation_parameters
                .as_ref()
                .map(|p| serde_json::to_string(p).unwrap_or_default()),
        );
        metrics.push(json(info.info.get("operationMetrics")));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("version", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("operation", DataType::Utf8, true),
        Field::new("user", DataType::Utf8, true),
        Field::new("statement", DataType::Utf8, true),
        Field::new("interface", DataType::Utf8, true),
        Field::new("operation_parameters", DataType::Utf8, true),
        Field::new("operation_metrics", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(version)),
        Arc::new(TimestampMillisecondArray::from(timestamp).with_timezone("UTC")),
        Arc::new(StringArray::from(operation)),
        Arc::new(StringArray::from(user)),
        Arc::new(StringArray::from(statement)),
        Arc::new(StringArray::from(interface)),
        Arc::new(StringArray::from(parameters)),
        Arc::new(StringArray::from(metrics)),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(StatementResult::batches(
        "DESCRIBE HISTORY",
        schema,
        vec![batch],
    ))
}

pub(super) async fn restore(cx: &StatementContext, r: &Restore) -> Result<StatementResult> {
    let name = lake_table(&r.table)?;
    let table = cx.engine.lake().require_table(&name).await?;
    let latest = table.version().unwrap_or(0);
    let target = match &r.to {
        TimeTravel::Version(v) => {
            if *v < 0 || *v as u64 > latest {
                return Err(Error::NotFound {
                    kind: "version",
                    name: format!("{v} of {name} (versions are 0 to {latest})"),
                });
            }
            *v as u64
        }
        TimeTravel::Timestamp(ts) => {
            let mut at = cx.engine.lake().table_handle(&name)?;
            load_at_timestamp(&mut at, &name, ts).await?;
            at.version().unwrap_or(0)
        }
    };
    if target == latest {
        // Already there: nothing to commit.
        return kv_result(
            "RESTORE",
            vec![("num_restored_files", 0), ("num_removed_files", 0)],
        );
    }
    let stamp = cx.stamp("RESTORE");
    let (_, metrics) = table
        .restore()
        .with_version_to_restore(target)
        .with_commit_properties(stamp.properties())
        .await
        .map_err(|e| write::write_error(&name, e))?;
    kv_result(
        "RESTORE",
        vec![
            ("num_restored_files", metrics.num_restored_file as i64),
            ("num_removed_files", metrics.num_removed_file as i64),
        ],
    )
}

pub(super) async fn optimize(cx: &StatementContext, o: &Optimize) -> Result<StatementResult> {
    let name = lake_table(&o.table)?;
    let table = cx.engine.lake().require_table(&name).await?;
    let schema = table.snapshot()?.schema();
    let partitions = table.snapshot()?.metadata().partition_columns().to_vec();
    let mut zorder = Vec::with_capacity(o.zorder_by.len());
    for col in &o.zorder_by {
        let col = col.to_lowercase();
        let Some(field) = schema
            .fields()
            .find(|f| f.name().eq_ignore_ascii_case(&col))
        else {
            return Err(Error::NotFound {
                kind: "column",
                name: format!("{col} of {name}"),
            });
        };
        if partitions.contains(field.name()) {
            return Err(Error::invalid(format!(
                "cannot ZORDER BY partition column {} of {name}",
                field.name()
            )));
        }
        zorder.push(field.name().to_string());
    }
    let optimize_type = if zorder.is_empty() {
        OptimizeType::Compact
    } else {
        OptimizeType::ZOrder(zorder)
    };
    let stamp = cx.stamp("OPTIMIZE");
    let (_, metrics) = table
        .optimize()
        .with_type(optimize_type)
        .with_session_state(Arc::new(cx.ctx.state()))
        .with_commit_properties(stamp.properties())
        .await
        .map_err(|e| write::write_error(&name, e))?;
    kv_result(
        "OPTIMIZE",
        vec![
            ("num_files_added", metrics.num_files_added as i64),
            ("num_files_removed", metrics.num_files_removed as i64),
            ("partitions_optimized", metrics.partitions_optimized as i64),
            (
                "total_considered_files",
                metrics.total_considered_files as i64,
            ),
        ],
    )
}

fn relative(root: &object_store::path::Path, path: &object_store::path::Path) -> String {
    path.prefix_match(root)
        .map(|parts| {
            parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_else(|| path.to_string())
}

pub(super) async fn vacuum(cx: &StatementContext, v: &Vacuum) -> Result<StatementResult> {
    let name = lake_table(&v.table)?;
    let lake = cx.engine.lake();
    let table = lake.require_table(&name).await?;
    let stamp = cx.stamp("VACUUM");
    let mut builder = table
        .vacuum()
        // Full: also removes files no commit references (a failed write's).
        .with_mode(VacuumMode::Full)
        .with_dry_run(v.dry_run)
        .with_commit_properties(stamp.properties());
    if let Some(hours) = v.retain_hours {
        // An explicit RETAIN is the user's decision, even below the
        // table's configured minimum (as with Databricks' check disabled).
        builder = builder
            .with_retention_period(chrono::Duration::milliseconds((hours * 3_600_000.0) as i64))
            .with_enforce_retention_duration(false);
    }
    // delta-rs reports every expired path, including ones an earlier
    // VACUUM already deleted; report what is (or would be) really deleted,
    // relative to the table root.
    let root = lake.table_path(&name);
    let present: std::collections::HashSet<String> = lake
        .store()
        .list(Some(&root))
        .map_ok(|m| relative(&root, &m.location))
        .try_collect()
        .await?;
    let (_, metrics) = builder.await.map_err(|e| write::write_error(&name, e))?;
    if !v.dry_run {
        cx.engine.scan_cache().forget_under(&root);
    }
    let mut deleted: Vec<String> = metrics
        .files_deleted
        .iter()
        .map(|p| {
            // Relative to the table, or absolute within the store.
            let p = p.trim_start_matches('/');
            p.strip_prefix(root.as_ref())
                .map_or(p, |rest| rest.trim_start_matches('/'))
                .to_string()
        })
        .filter(|p| present.contains(p))
        .collect();
    deleted.sort();
    let schema = Arc::new(Schema::new(vec![Field::new("path", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(StringArray::from_iter_values(deleted))],
    )?;
    Ok(StatementResult::batches("VACUUM", schema, vec![batch]))
}
