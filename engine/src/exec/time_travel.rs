//! Time travel in queries: `FROM t VERSION AS OF n` and
//! `FROM t TIMESTAMP AS OF '…'`.
//!
//! DataFusion's planner does not know table versions, so before planning
//! each versioned table reference is resolved here: the Delta table is
//! loaded at that version, registered as a snapshot under a private name in
//! the session's `__autolake.time_travel` schema, and the reference is
//! rewritten to that name — keeping the original table name as its alias so
//! `t.col` still resolves. The snapshots of the previous statement are
//! dropped first; a running plan keeps its own reference to them.

use std::ops::ControlFlow;

use autolake_sql::sqlparser::ast::{
    Expr, Ident, ObjectName, TableAlias, TableFactor, TableVersion, Value, VisitMut, VisitorMut,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::catalog::SchemaProvider;
use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use deltalake::DeltaTableError;

use crate::context::StatementContext;
use crate::error::{Error, Result};
use crate::lake::{INTERNAL_CATALOG, TIME_TRAVEL_SCHEMA};
use crate::names::lake_table;

/// Resolves every versioned table reference in `statement`.
pub(crate) async fn rewrite(
    cx: &StatementContext,
    mut statement: DFStatement,
) -> Result<DFStatement> {
    let mut collect = Collect::default();
    visit_df(&mut statement, &mut collect);
    if collect.found.is_empty() {
        return Ok(statement);
    }
    for name in cx.time_travel.table_names() {
        cx.time_travel.deregister_table(&name)?;
    }
    let mut snapshots = Vec::new();
    for (i, (name, version)) in collect.found.into_iter().enumerate() {
        let table_name = lake_table(&name)?;
        let mut table = cx.engine.lake().require_table(&table_name).await?;
        let latest = table.version().unwrap_or(0);
        let label = match &version {
            TableVersion::VersionAsOf(expr) => {
                let v = version_number(expr).ok_or_else(|| {
                    Error::invalid(format!(
                        "VERSION AS OF needs a non-negative integer, found {expr}"
                    ))
                })?;
                if v > latest {
                    return Err(Error::NotFound {
                        kind: "version",
                        name: format!("{v} of {table_name} (latest version is {latest})"),
                    });
                }
                table.load_version(v).await.map_err(|e| match e {
                    DeltaTableError::InvalidVersion(_) | DeltaTableError::NotATable(_) => {
                        Error::NotFound {
                            kind: "version",
                            name: format!(
                                "{v} of {table_name}: its log entry was removed by log cleanup"
                            ),
                        }
                    }
                    other => other.into(),
                })?;
                format!("v{v}")
            }
            TableVersion::TimestampAsOf(expr) => {
                let ts = timestamp_literal(expr).ok_or_else(|| {
                    Error::invalid(format!(
                        "TIMESTAMP AS OF needs a timestamp string such as '2026-11-25T10:00:00Z', found {expr}"
                    ))
                })?;
                load_at_timestamp(&mut table, &table_name, &ts).await?;
                format!("v{}", table.version().unwrap_or(0))
            }
            other => {
                return Err(Error::invalid(format!(
                    "unsupported table version clause {other} on {table_name}: use VERSION AS OF n or TIMESTAMP AS OF '…'"
                )));
            }
        };
        let private = format!("{}.{}@{label}#{i}", table_name.schema, table_name.table);
        let provider = cx
            .catalog
            .scan_settings()
            .provider(&table_name, &table)
            .await?;
        cx.time_travel.register_table(private.clone(), provider)?;
        snapshots.push((private, table_name.table));
    }
    let mut apply = Apply {
        snapshots: snapshots.into_iter(),
    };
    visit_df(&mut statement, &mut apply);
    Ok(statement)
}

/// Loads `table` as it was at the time `ts`, refusing a time before the
/// table existed (delta-rs would fall back to its first version).
pub(crate) async fn load_at_timestamp(
    table: &mut deltalake::DeltaTable,
    name: &crate::lake::TableName,
    ts: &str,
) -> Result<()> {
    let at = parse_timestamp(ts)?;
    table
        .load_with_datetime(at)
        .await
        .map_err(|e| Error::NotFound {
            kind: "version",
            name: format!("of {name} at {ts} ({e})"),
        })?;
    if table.version() == Some(0) {
        let first = first_commit_time(table).await?;
        if let Some(first) = first.filter(|first| *first > at) {
            return Err(Error::NotFound {
                kind: "version",
                name: format!(
                    "of {name} at {ts}: the table was created later, at {}",
                    first.to_rfc3339()
                ),
            });
        }
    }
    Ok(())
}

/// When version 0 of a loaded-at-version-0 table was committed.
async fn first_commit_time(table: &deltalake::DeltaTable) -> Result<Option<DateTime<Utc>>> {
    use futures::TryStreamExt;
    let infos: Vec<_> = table.history(Some(1)).try_collect().await?;
    Ok(infos
        .first()
        .and_then(|i| i.timestamp)
        .and_then(DateTime::from_timestamp_millis))
}

/// Parses the timestamps users write: RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]`
/// (UTC) or a date (midnight UTC).
pub(crate) fn parse_timestamp(s: &str) -> Result<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(Error::invalid(format!(
        "invalid timestamp '{s}': expected RFC 3339 such as '2026-11-25T10:00:00Z', or 'YYYY-MM-DD[ HH:MM:SS]'"
    )))
}

fn version_number(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn timestamp_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        // TIMESTAMP '…'
        Expr::TypedString(t) => match &t.value.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Visits every query of a statement, wherever DataFusion's parser put it.
pub(crate) fn visit_df<V: VisitorMut>(statement: &mut DFStatement, visitor: &mut V) {
    match statement {
        DFStatement::Statement(s) => {
            let _ = s.visit(visitor);
        }
        DFStatement::Explain(e) => visit_df(&mut e.statement, visitor),
        DFStatement::CopyTo(c) => {
            if let CopyToSource::Query(q) = &mut c.source {
                let _ = q.visit(visitor);
            }
        }
        DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => {}
    }
}

#[derive(Default)]
struct Collect {
    found: Vec<(ObjectName, TableVersion)>,
}

impl VisitorMut for Collect {
    type Break = ();
    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            version: Some(version),
            ..
        } = factor
        {
            self.found.push((name.clone(), version.clone()));
        }
        ControlFlow::Continue(())
    }
}

/// Points each versioned reference (in the order [`Collect`] saw them) at
/// its snapshot.
struct Apply {
    snapshots: std::vec::IntoIter<(String, String)>,
}

impl VisitorMut for Apply {
    type Break = ();
    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias,
            version: version @ Some(_),
            ..
        } = factor
            && let Some((private, table)) = self.snapshots.next()
        {
            *name = ObjectName::from(vec![
                Ident::new(INTERNAL_CATALOG),
                Ident::new(TIME_TRAVEL_SCHEMA),
                Ident::with_quote('"', private),
            ]);
            if alias.is_none() {
                *alias = Some(TableAlias {
                    explicit: true,
                    name: Ident::with_quote('"', table),
                    columns: vec![],
                    at: None,
                });
            }
            *version = None;
        }
        ControlFlow::Continue(())
    }
}
