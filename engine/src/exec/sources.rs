//! `CREATE/DROP/SHOW SOURCES`, attaching sources to a session, and
//! `SYNC TABLE` / `SYNC SOURCE`: the AutoLake itself.
//!
//! A sync run reads a source table through the same DataFusion plan a
//! query would (projection and filters pushed into the source's SQL) and
//! writes it into a Delta table in one commit, streaming: batches flow
//! from the source into Parquet files, nothing is collected. Modes:
//!
//! | clause                  | first run   | later runs                              |
//! |-------------------------|-------------|-----------------------------------------|
//! | none                    | copy        | full refresh (overwrite, one commit)    |
//! | `INCREMENTAL ON c`      | copy        | append rows with `c` above the cursor   |
//! | `KEY (k, …)`            | copy        | merge every row on the key              |
//! | both                    | copy        | merge rows with `c` above the cursor    |
//!
//! Exactly-once: the cursor is the largest `c` in the target table itself,
//! read from the committed version a run starts from, so the cursor moves
//! in the very commit that adds the rows — a run killed before its commit
//! left nothing and its re-run reads the same rows; a run killed after it
//! is complete. Each run's commit also carries a Delta application
//! transaction (`autolake.sync:<source table>`, run number) and the run's
//! source and mode in its commit info, as delta-rs and Spark streaming do
//! for idempotent writers. Rows with a null cursor are copied by the first
//! run only.
//!
//! Merges on a key run in bounded memory: the full join of source and
//! target is a sort-merge join (not a hash join, whose build side would be
//! the whole source in memory) under a memory pool of `--merge-memory`
//! bytes (default: a quarter of the machine's memory); past it, the sorts
//! spill to the system's temporary directory.
//!
//! Schema evolution: columns the source gained are added to the target
//! (Delta schema merge); column types follow the lake's one type policy
//! (`lake::types`).
//!
//! Each run appends one row to `system.lineage`. That append is a second
//! commit; if a process dies between the two, the next run of the same sync
//! first writes the missing lineage row from the target's commit history.
//!
//! Bad rows in CSV/NDJSON files sources go through the validating reader
//! of `autolake_connectors::rows`: `on_error 'fail'` stops the run (nothing
//! committed) at the first bad row with file, line and reason;
//! `on_error 'quarantine'` commits the good rows and then appends the bad
//! ones to `<target>__rejected`, guarded by the same application
//! transaction so a re-run does not add them twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use autolake_connectors::rows::{BadRows, rejected_batch};
use autolake_connectors::{FileFormat, as_files_table, validated_table};
use autolake_sql::sqlparser::ast::ObjectName;
use autolake_sql::{CreateSource, SyncTable};
use chrono::Utc;
use datafusion::catalog::{MemoryCatalogProvider, TableProvider};
use datafusion::common::{ScalarValue, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::logical_expr::{Expr, Partitioning, cast, ident, lit};
use deltalake::DeltaTable;
use deltalake::protocol::SaveMode;
use serde_json::{Value, json};

use super::query::{datafusion_statement, done, parse_one_df};
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::lake::INTERNAL_CATALOG;
use crate::lake::ledger;
use crate::lake::write::{CommitStamp, append_system, write_error, write_plan};
use crate::lake::{LAKE_CATALOG, TableName};
use crate::names::ident_name_part;
use crate::names::{ident_name, lake_schema, lake_table};
use crate::principal::Action;
use crate::principal::{Access, Object};
use crate::sources::Source;
use autolake_sql::{Family, Statement};

/// What a source statement touches: the source, the source table read,
/// and the lake table or schema written.
pub(super) fn accesses(statement: &Statement, out: &mut Vec<Access>) -> Result<()> {
    let source = |action, name| -> Result<Access> {
        Ok(Access {
            action,
            object: Object::Source(source_name(name)?),
        })
    };
    match statement {
        Statement::CreateSource(c) => out.push(source(Action::Create, &c.name)?),
        Statement::DropSource { name, .. } => out.push(source(Action::Drop, name)?),
        Statement::SyncTable(s) => {
            match s.from.0.as_slice() {
                // A message stream: the source itself.
                [part] => out.push(Access {
                    action: Action::Select,
                    object: Object::Source(ident_name_part(part)?),
                }),
                _ => {
                    let (src, schema, table) = source_table(&s.from)?;
                    out.push(Access {
                        action: Action::Select,
                        object: Object::Other(format!("{src}.{schema}.{table}")),
                    });
                }
            }
            let target = lake_table(&s.target)?;
            for action in [Action::Insert, Action::Update, Action::Delete] {
                out.push(Access {
                    action,
                    object: Object::Table(target.clone()),
                });
            }
        }
        Statement::SyncSource {
            source: name,
            schema,
        } => {
            out.push(source(Action::Select, name)?);
            out.push(Access {
                action: Action::Create,
                object: Object::Schema(lake_schema(schema)?),
            });
        }
        Statement::ShowSources => {}
        other => return Err(super::reads::outside(Family::Sources, other)),
    }
    Ok(())
}

/// Runs a source statement.
pub(super) async fn run(cx: &StatementContext, statement: &Statement) -> Result<StatementResult> {
    match statement {
        Statement::CreateSource(c) => create_source(cx, c).await,
        Statement::ShowSources => show_sources(cx).await,
        Statement::DropSource { name, if_exists } => drop_source(cx, name, *if_exists).await,
        Statement::SyncTable(s) => sync_table(cx, s).await,
        Statement::SyncSource { source, schema } => sync_source(cx, source, schema).await,
        other => Err(super::reads::outside(Family::Sources, other)),
    }
}

/// A source name written in SQL: one identifier.
pub(crate) fn source_name(name: &ObjectName) -> Result<String> {
    crate::names::single_name("source", name)
}

/// `src.schema.table` written in SQL.
pub(crate) fn source_table(name: &ObjectName) -> Result<(String, String, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(crate::names::ident_name_part)
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [s, sc, t] => Ok((s.clone(), sc.clone(), t.clone())),
        _ => Err(Error::invalid(format!(
            "invalid source table {name}: expected source.schema.table (or, for a nats or mqtt source, the source's name)"
        ))),
    }
}

/// Opens the sources a statement reads and registers them with the
/// session's DataFusion context (see [`crate::sources`]).
pub(crate) async fn attach(
    cx: &StatementContext,
    statement: &autolake_sql::Statement,
    accesses: &[Access],
) -> Result<()> {
    // (source, schema.table it must have)
    let mut wanted: Vec<(String, Option<(String, String)>)> = Vec::new();
    let listing = |a: &Access| match &a.object {
        Object::Table(t) => t.schema == "information_schema",
        Object::Other(t) => t.split('.').nth(1) == Some("information_schema"),
        _ => false,
    };
    if accesses.iter().any(listing) {
        attach_all(cx).await;
    }
    for access in accesses {
        if let Object::Other(text) = &access.object {
            let parts: Vec<&str> = text.splitn(3, '.').collect();
            if let [c, s, t] = parts.as_slice()
                && ![LAKE_CATALOG, INTERNAL_CATALOG, "datafusion"].contains(c)
            {
                wanted.push((c.to_string(), Some((s.to_string(), t.to_string()))));
            }
        }
    }
    if let autolake_sql::Statement::SyncSource { source, .. } = statement {
        wanted.push((source_name(source)?, None));
    }
    let sources = cx.engine.sources();
    let state = cx.ctx.state();
    for (name, table) in wanted {
        if name == "information_schema" {
            continue;
        }
        let mut opened = sources.open(&name, &state).await?;
        if let (Some((_, o)), Some((schema, t))) = (&opened, &table) {
            let known = o.catalog.schema(schema).is_some_and(|s| s.table_exist(t));
            if !known {
                // Created in the source after it was opened here.
                sources.forget(&name);
                opened = sources.open(&name, &state).await?;
            }
        }
        match opened {
            Some((_, o)) => register(cx, &name, &o),
            None => {
                // Dropped (maybe by another process): forget it here too.
                if cx.ctx.catalog(&name).is_some() {
                    cx.ctx
                        .register_catalog(&name, Arc::new(MemoryCatalogProvider::new()));
                }
            }
        }
    }
    Ok(())
}

fn register(cx: &StatementContext, name: &str, opened: &autolake_connectors::OpenedSource) {
    for (url, store) in &opened.stores {
        cx.ctx.register_object_store(url, Arc::clone(store));
    }
    cx.ctx.register_catalog(name, Arc::clone(&opened.catalog));
}

/// Attaches every source that can be opened, for listings (information
/// schema, Flight SQL metadata); one that cannot is left out, not an
/// error for the listing.
pub(crate) async fn attach_all(cx: &StatementContext) {
    let sources = cx.engine.sources();
    let Ok(all) = sources.list().await else {
        return;
    };
    let state = cx.ctx.state();
    for source in all {
        if sources.recently_failed(&source.name) {
            continue;
        }
        if let Ok(Some((_, opened))) = sources.open(&source.name, &state).await {
            register(cx, &source.name, &opened);
        }
    }
}

/// `CREATE SOURCE`: checked, opened once (so a wrong URL or password fails
/// now, not at first use), then saved.
pub(crate) async fn create_source(
    cx: &StatementContext,
    c: &CreateSource,
) -> Result<StatementResult> {
    let name = source_name(&c.name)?;
    let sources = cx.engine.sources();
    let source = Source {
        name: name.clone(),
        source_type: c.source_type.clone(),
        options: c.options.iter().cloned().collect::<BTreeMap<_, _>>(),
        owner: cx.principal.name.clone(),
        created_at: Utc::now(),
    };
    sources.validate(&source)?;
    if sources.get(&name).await?.is_some() {
        if c.if_not_exists {
            return Ok(done("CREATE SOURCE"));
        }
        return Err(Error::AlreadyExists {
            kind: "source",
            name,
        });
    }
    let opened = sources.check(&source, &cx.ctx.state()).await?;
    if !sources.create(&source).await? {
        sources.forget(&name);
        if c.if_not_exists {
            return Ok(done("CREATE SOURCE"));
        }
        return Err(Error::AlreadyExists {
            kind: "source",
            name,
        });
    }
    register(cx, &name, &opened);
    Ok(done("CREATE SOURCE"))
}

/// `DROP SOURCE`: the definition goes; lake tables synced from it stay.
pub(crate) async fn drop_source(
    cx: &StatementContext,
    name: &ObjectName,
    if_exists: bool,
) -> Result<StatementResult> {
    let name = source_name(name)?;
    if !cx.engine.sources().drop_source(&name).await? && !if_exists {
        return Err(Error::NotFound {
            kind: "source",
            name,
        });
    }
    if cx.ctx.catalog(&name).is_some() {
        cx.ctx
            .register_catalog(&name, Arc::new(MemoryCatalogProvider::new()));
    }
    Ok(done("DROP SOURCE"))
}

/// `SHOW SOURCES`.
pub(crate) async fn show_sources(cx: &StatementContext) -> Result<StatementResult> {
    datafusion_statement(
        cx,
        parse_one_df("SELECT name, type, options, owner FROM lake.system.sources ORDER BY name")?,
        "SHOW SOURCES",
    )
    .await
}

/// How a sync run writes its target, decided by what exists and what the
/// statement says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncMode {
    /// No target yet: the source's rows copied into a new table.
    Copy,
    /// A target and neither cursor nor key: its rows replaced.
    Refresh,
    /// `INCREMENTAL ON c` without a key: the rows past the cursor added.
    Append,
    /// A key: the rows past the cursor (or all) merged on the key.
    Merge,
}

impl SyncMode {
    fn as_str(self) -> &'static str {
        match self {
            SyncMode::Copy => "copy",
            SyncMode::Refresh => "refresh",
            SyncMode::Append => "append",
            SyncMode::Merge => "merge",
        }
    }

    /// The mode a commit's info records.
    fn recorded(text: Option<&str>) -> Self {
        match text {
            Some("append") => SyncMode::Append,
            Some("merge") => SyncMode::Merge,
            Some("refresh") => SyncMode::Refresh,
            _ => SyncMode::Copy,
        }
    }
}

/// What one sync run did.
#[derive(Debug, Clone)]
struct Run {
    source: String,
    target: String,
    run: i64,
    mode: SyncMode,
    cursor_column: Option<String>,
    cursor: Option<String>,
    rows: i64,
    rejected: i64,
    version: i64,
    user: String,
}

impl Run {
    fn lineage_batch(runs: &[Run]) -> Result<RecordBatch> {
        let now = Utc::now().timestamp_micros();
        let text = |f: &dyn Fn(&Run) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from_iter(runs.iter().map(f)))
        };
        let int = |f: &dyn Fn(&Run) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(runs.iter().map(f)))
        };
        let columns: Vec<ArrayRef> = vec![
            text(&|r| Some(r.source.clone())),
            text(&|r| Some(r.target.clone())),
            int(&|r| r.run),
            text(&|r| Some(r.mode.as_str().to_string())),
            text(&|r| r.cursor_column.clone()),
            text(&|r| r.cursor.clone()),
            int(&|r| r.rows),
            int(&|r| r.rejected),
            int(&|r| r.version),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(runs.iter().map(|_| now))
                    .with_timezone("UTC"),
            ),
            text(&|r| Some(r.user.clone())),
        ];
        Ok(RecordBatch::try_new(
            crate::sources::lineage_schema(),
            columns,
        )?)
    }

    /// The statement's result: one row per run.
    fn result(kind: &'static str, runs: &[Run]) -> Result<StatementResult> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, false),
            Field::new("target", DataType::Utf8, false),
            Field::new("mode", DataType::Utf8, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("rejected", DataType::Int64, false),
            Field::new("version", DataType::Int64, false),
            Field::new("cursor", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                runs.iter().map(|r| r.source.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                runs.iter().map(|r| r.target.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                runs.iter().map(|r| r.mode.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(runs.iter().map(|r| r.rows))),
            Arc::new(Int64Array::from_iter_values(
                runs.iter().map(|r| r.rejected),
            )),
            Arc::new(Int64Array::from_iter_values(runs.iter().map(|r| r.version))),
            Arc::new(StringArray::from_iter(
                runs.iter().map(|r| r.cursor.clone()),
            )),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        Ok(StatementResult::batches(kind, schema, vec![batch]))
    }
}

/// `SYNC TABLE t FROM src.schema.table [INCREMENTAL ON c] [KEY (…)]`.
pub(crate) async fn sync_table(cx: &StatementContext, s: &SyncTable) -> Result<StatementResult> {
    let target = lake_table(&s.target)?;
    if let [part] = s.from.0.as_slice() {
        let name = crate::names::ident_name_part(part)?;
        if let Some(source) = super::streams::stream_source(cx, &name).await? {
            if s.incremental_on.is_some() || !s.key.is_empty() {
                return Err(Error::invalid(format!(
                    "SYNC TABLE {target} FROM {name}: a message stream is appended as it arrives; INCREMENTAL ON and KEY do not apply"
                )));
            }
            return super::streams::sync_stream(cx, &target, &source).await;
        }
    }
    let (src, schema, table) = source_table(&s.from)?;
    if cx.engine.sources().get(&src).await?.is_none() {
        return Err(Error::NotFound {
            kind: "source",
            name: src,
        });
    }
    let cursor = s.incremental_on.as_ref().map(ident_name);
    let key: Vec<String> = s.key.iter().map(ident_name).collect();
    let run = sync_one(cx, &target, (&src, &schema, &table), cursor, &key).await?;
    Run::result("SYNC TABLE", &[run])
}

/// `SYNC SOURCE src INTO SCHEMA s`: every table of the source (for MySQL,
/// of the database its URL names), each a full refresh. Tables of the
/// source's default schema keep their names; others are named
/// `<schema>_<table>`.
pub(crate) async fn sync_source(
    cx: &StatementContext,
    source: &ObjectName,
    schema: &ObjectName,
) -> Result<StatementResult> {
    let src = source_name(source)?;
    let into = lake_schema(schema)?;
    let sources = cx.engine.sources();
    let Some((def, opened)) = sources.open(&src, &cx.ctx.state()).await? else {
        return Err(Error::NotFound {
            kind: "source",
            name: src,
        });
    };
    let (default_schema, skipped) = sources.schemas_of(&def);
    let lake = cx.engine.lake();
    if !lake.schema_exists(&into).await? {
        lake.create_schema(&into, &cx.principal.name).await?;
    }
    let mut schemas = opened.catalog.schema_names();
    schemas.sort();
    // A MySQL URL names one database: the source is that database.
    if def.source_type == "mysql"
        && let Some(db) = &default_schema
    {
        schemas.retain(|s| s == db);
    }
    let mut tables = Vec::new();
    for schema_name in schemas {
        if skipped.contains(&schema_name.as_str()) {
            continue;
        }
        let Some(provider) = opened.catalog.schema(&schema_name) else {
            continue;
        };
        let mut names = provider.table_names();
        names.sort();
        for t in names {
            let target = if Some(&schema_name) == default_schema.as_ref() {
                t.clone()
            } else {
                format!("{schema_name}_{t}")
            };
            tables.push((schema_name.clone(), t, target));
        }
    }
    if tables.is_empty() {
        return Err(Error::invalid(format!(
            "source {src} has no tables to sync"
        )));
    }
    let mut runs = Vec::new();
    for (schema_name, t, target) in tables {
        crate::lake::validate_name("table", &target)?;
        let name = TableName::new(&into, &target);
        let run = sync_one(cx, &name, (&src, &schema_name, &t), None, &[])
            .await
            .map_err(|e| {
                let done: Vec<String> = runs.iter().map(|r: &Run| r.target.clone()).collect();
                Error::invalid(format!(
                    "syncing {src}.{schema_name}.{t} into {name} failed: {e} (already synced: {})",
                    if done.is_empty() {
                        "none".to_string()
                    } else {
                        done.join(", ")
                    }
                ))
            })?;
        runs.push(run);
    }
    Run::result("SYNC SOURCE", &runs)
}

/// One sync run of one table.
async fn sync_one(
    cx: &StatementContext,
    target: &TableName,
    (src, schema, table): (&str, &str, &str),
    cursor_column: Option<String>,
    key: &[String],
) -> Result<Run> {
    let source_text = format!("{src}.{schema}.{table}");
    let provider = cx
        .ctx
        .table_provider(TableReference::full(src, schema, table))
        .await
        .map_err(|_| Error::NotFound {
            kind: "source table",
            name: source_text.clone(),
        })?;
    let source_schema = provider.schema();
    for c in cursor_column.iter().chain(key) {
        if source_schema.field_with_name(c).is_err() {
            return Err(Error::NotFound {
                kind: "column",
                name: format!("{c} in {source_text}"),
            });
        }
    }
    if let Some(c) = &cursor_column {
        let t = source_schema.field_with_name(c)?.data_type();
        if !(t.is_numeric()
            || t.is_temporal()
            || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
        {
            return Err(Error::invalid(format!(
                "INCREMENTAL ON {c}: column {c} of {source_text} has type {t}; a cursor must be a number, a date/time or text"
            )));
        }
    }
    let lake = cx.engine.lake();
    let existing = lake.load_table(target).await?;
    let app_id = ledger::sync_app(&source_text);
    let last_run = ledger::committed_or_zero(existing.as_ref(), &app_id).await?;
    let recorded = match &existing {
        Some(t) => repair_lineage(cx, t, target, &source_text, last_run).await?,
        None => 0,
    };
    // Runs that found nothing new commit nothing but are recorded: number
    // after both.
    let run = last_run.max(recorded) + 1;
    let mode = match (existing.is_some(), cursor_column.is_some(), key.is_empty()) {
        (false, _, _) => SyncMode::Copy,
        (true, false, true) => SyncMode::Refresh,
        (true, true, true) => SyncMode::Append,
        (true, _, false) => SyncMode::Merge,
    };

    // The cursor, from the committed target.
    let cursor = match (&existing, &cursor_column) {
        (Some(t), Some(c)) => max_of(cx, t, c, target).await?,
        _ => None,
    };

    // The rows: the source table (CSV/NDJSON files through the validating
    // reader), above the cursor, in types Delta can store.
    let build = |bad: BadRows| -> Result<DataFrame> {
        let input: Arc<dyn TableProvider> = match as_files_table(&provider) {
            Some(files) if files.format != FileFormat::Parquet => validated_table(files, bad)?,
            _ => Arc::clone(&provider),
        };
        let mut frame = cx.ctx.read_table(input)?;
        if let (Some(c), Some(value)) = (&cursor_column, &cursor) {
            frame = frame.filter(ident(c).gt(lit(value.clone())))?;
        }
        // A source table is often read as one stream (a files source's
        // validating reader, one query to a database): spread its batches
        // over the session's partitions so Parquet encoding of the Delta
        // files runs on every core.
        let partitions = cx.ctx.copied_config().target_partitions();
        let frame = frame.repartition(Partitioning::RoundRobinBatch(partitions))?;
        delta_compatible(frame, &source_text)
    };

    // Appending or merging nothing: no commit (the probe's LIMIT 1 reaches
    // the source). A refresh of an empty source does commit: the table
    // becomes empty.
    if let Some(t) = &existing
        && (cursor_column.is_some() || !key.is_empty())
    {
        let probe_bad = BadRows::default();
        let probe = build(Arc::clone(&probe_bad))?
            .limit(0, Some(1))?
            .collect()
            .await?;
        // No row means the reader finished, so its bad rows are all known.
        let nothing = probe.iter().all(|b| b.num_rows() == 0)
            && probe_bad.lock().map(|b| b.is_empty()).unwrap_or(true);
        if nothing {
            let record = Run {
                source: source_text.clone(),
                target: target.to_string(),
                run,
                mode,
                cursor_column: cursor_column.clone(),
                cursor: cursor.as_ref().map(scalar_text),
                rows: 0,
                rejected: 0,
                version: t.version().unwrap_or(0) as i64,
                user: cx.principal.name.clone(),
            };
            append_lineage(cx, std::slice::from_ref(&record)).await?;
            return Ok(record);
        }
    }
    let bad = BadRows::default();
    let frame = build(Arc::clone(&bad))?;

    let stamp = cx
        .stamp("SYNC TABLE")
        .with_transaction(&app_id, run)
        .with_info("autolake.sync.source", json!(source_text))
        .with_info("autolake.sync.run", json!(run))
        .with_info("autolake.sync.mode", json!(mode.as_str()));
    let (written, rows) = match existing {
        None => {
            let handle = lake.table_handle(target)?;
            append(cx, handle, target, frame.into_unoptimized_plan(), &stamp).await?
        }
        Some(t) if key.is_empty() => {
            let save = if cursor_column.is_some() {
                SaveMode::Append
            } else {
                SaveMode::Overwrite
            };
            let plan = frame.into_unoptimized_plan();
            write_plan(
                t,
                target,
                plan,
                Arc::new(cx.ctx.state()),
                save,
                None,
                save == SaveMode::Overwrite,
                &stamp,
            )
            .await?
        }
        Some(t) => merge_on_key(cx, t, target, frame, key, &stamp).await?,
    };
    let version = written.version().unwrap_or(0) as i64;

    let rejected = std::mem::take(&mut *bad.lock().unwrap_or_else(|e| e.into_inner()));
    if !rejected.is_empty() {
        write_rejected(cx, target, &source_schema, &rejected, &app_id, run).await?;
    }
    let cursor_after = match &cursor_column {
        Some(c) => max_of(cx, &written, c, target)
            .await?
            .map(|v| scalar_text(&v)),
        None => None,
    };
    let record = Run {
        source: source_text,
        target: target.to_string(),
        run,
        mode,
        cursor_column,
        cursor: cursor_after,
        rows: rows as i64,
        rejected: rejected.len() as i64,
        version,
        user: cx.principal.name.clone(),
    };
    append_lineage(cx, std::slice::from_ref(&record)).await?;
    Ok(record)
}

/// Smallest memory pool a merge runs with: merging the spilled runs of
/// its sorts needs a batch of each in memory.
const MIN_MERGE_MEMORY: u64 = 256 << 20;

/// The session state a merge runs in: sort-merge joins instead of hash
/// joins, whose build side is held whole in memory, and a memory pool of
/// `limit` bytes, over which the join's sorts spill to disk.
fn spilling_state(base: SessionState, limit: u64) -> Result<SessionState> {
    let limit = usize::try_from(limit.max(MIN_MERGE_MEMORY)).unwrap_or(usize::MAX);
    let runtime = RuntimeEnvBuilder::from_runtime_env(base.runtime_env())
        .with_memory_pool(Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(limit),
            std::num::NonZeroUsize::new(3).expect("3 is not zero"),
        )))
        .build_arc()?;
    let mut config = base.config().clone();
    config.options_mut().optimizer.prefer_hash_join = false;
    // Each sort sets this much aside for merging its spilled runs; in a
    // small pool the default (10 MiB) would leave nothing for the sort.
    let reserve = &mut config.options_mut().execution.sort_spill_reservation_bytes;
    *reserve = (*reserve).min(limit / 32);
    Ok(SessionStateBuilder::new_from_existing(base)
        .with_config(config)
        .with_runtime_env(runtime)
        .build())
}

/// Upserts `frame` into `table` on `key`; every source column is set.
/// Memory stays bounded whatever the sizes of source and target: the
/// merge's full join runs as a sort-merge join whose sorts spill to disk
/// past `--merge-memory` ([`spilling_state`]).
async fn merge_on_key(
    cx: &StatementContext,
    table: DeltaTable,
    target: &TableName,
    frame: DataFrame,
    key: &[String],
    stamp: &CommitStamp,
) -> Result<(DeltaTable, u64)> {
    let quote = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let predicate = key
        .iter()
        .map(|k| format!("t.{} = s.{}", quote(k), quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let updates = columns.clone();
    let inserts = columns;
    let limit = cx
        .engine
        .config
        .merge_memory
        .unwrap_or_else(|| crate::context::machine_memory() / 4);
    let state = spilling_state(cx.ctx.state(), limit)?;
    let (table, metrics) = table
        .merge(frame, predicate)
        .with_source_alias("s")
        .with_target_alias("t")
        .with_merge_schema(true)
        .with_session_state(Arc::new(state))
        .with_commit_properties(stamp.properties())
        .when_matched_update(|u| {
            updates
                .iter()
                .fold(u, |u, c| u.update(c.as_str(), format!("s.{}", quote(c))))
        })?
        .when_not_matched_insert(|i| {
            inserts
                .iter()
                .fold(i, |i, c| i.set(c.as_str(), format!("s.{}", quote(c))))
        })?
        .await
        .map_err(|e| {
            if e.to_string().contains("Resources exhausted") {
                Error::invalid(format!(
                    "merging into {target} needs more memory than the {} MiB --merge-memory allows: raise it (or AUTOLAKE_MERGE_MEMORY)",
                    limit.max(MIN_MERGE_MEMORY) >> 20
                ))
            } else {
                write_error(target, e)
            }
        })?;
    Ok((
        table,
        (metrics.num_target_rows_inserted + metrics.num_target_rows_updated) as u64,
    ))
}

/// Casts columns to the types the lake stores them as (the one policy of
/// `lake::types`), for the merge, which does not go through `write_plan`.
fn delta_compatible(frame: DataFrame, source: &str) -> Result<DataFrame> {
    let mut changed = false;
    let mut exprs: Vec<Expr> = Vec::new();
    for field in frame.schema().fields() {
        let name = field.name();
        let to = crate::lake::types::storage_type(field.data_type()).map_err(|hint| {
            Error::invalid(format!(
                "column {name} of {source} has type {}, which a Delta table cannot store: {hint}",
                field.data_type()
            ))
        })?;
        match to {
            // Nanosecond timestamps are checked by `write_plan`'s policy;
            // a merge source keeps them and delta-rs casts to the table's.
            Some(DataType::Timestamp(..)) => exprs.push(ident(name)),
            Some(t) => {
                changed = true;
                exprs.push(cast(ident(name), t).alias(name));
            }
            None => exprs.push(ident(name)),
        }
    }
    Ok(if changed { frame.select(exprs)? } else { frame })
}

/// The largest value of `column` in a committed version of a table.
async fn max_of(
    cx: &StatementContext,
    table: &DeltaTable,
    column: &str,
    name: &TableName,
) -> Result<Option<ScalarValue>> {
    let has = table
        .snapshot()?
        .schema()
        .fields()
        .any(|f| f.name() == column);
    if !has {
        return Err(Error::invalid(format!(
            "{name} has no column {column} to continue from: sync it again without INCREMENTAL ON, or into a new table"
        )));
    }
    let provider = table.table_provider().await?;
    let batches = cx
        .ctx
        .read_table(provider)?
        .aggregate(vec![], vec![max(ident(column)).alias("m")])?
        .collect()
        .await?;
    let Some(batch) = batches.first().filter(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let value = ScalarValue::try_from_array(batch.column(0), 0)?;
    Ok((!value.is_null()).then_some(value))
}

/// A cursor value as text, in the form Arrow's cast reads back (ISO dates
/// and times).
fn scalar_text(v: &ScalarValue) -> String {
    v.to_array()
        .ok()
        .and_then(|a| arrow::compute::cast(&a, &DataType::Utf8).ok())
        .and_then(|a| {
            a.as_any()
                .downcast_ref::<StringArray>()
                .filter(|s| s.is_valid(0))
                .map(|s| s.value(0).to_string())
        })
        .unwrap_or_else(|| v.to_string())
}

/// Appends a run's bad rows to `<target>__rejected`, once per run.
async fn write_rejected(
    cx: &StatementContext,
    target: &TableName,
    schema: &Schema,
    rows: &[autolake_connectors::rows::BadRow],
    app_id: &str,
    run: i64,
) -> Result<()> {
    let name = TableName::new(&target.schema, format!("{}__rejected", target.table));
    let lake = cx.engine.lake();
    let existing = lake.load_table(&name).await?;
    if ledger::committed_or_zero(existing.as_ref(), app_id).await? >= run {
        return Ok(());
    }
    let batch = rejected_batch(schema, rows)?;
    let handle = match existing {
        Some(t) => t,
        None => lake.table_handle(&name)?,
    };
    let stamp = cx.stamp("SYNC TABLE").with_transaction(app_id, run);
    let plan = cx.ctx.read_batch(batch)?.into_unoptimized_plan();
    append(cx, handle, &name, plan, &stamp).await?;
    Ok(())
}

/// Appends the rows of `plan` in one commit (creating the table when
/// `handle` is not loaded).
async fn append(
    cx: &StatementContext,
    handle: DeltaTable,
    name: &TableName,
    plan: datafusion::logical_expr::LogicalPlan,
    stamp: &CommitStamp,
) -> Result<(DeltaTable, u64)> {
    write_plan(
        handle,
        name,
        plan,
        Arc::new(cx.ctx.state()),
        SaveMode::Append,
        None,
        false,
        stamp,
    )
    .await
}

async fn append_lineage(cx: &StatementContext, runs: &[Run]) -> Result<()> {
    let stamp = cx.stamp("SYNC TABLE");
    append_system(
        cx.engine.lake(),
        &cx.ctx,
        &crate::sources::lineage_table(),
        Run::lineage_batch(runs)?,
        &stamp,
    )
    .await
}

/// Writes the lineage row of a committed run whose process died before
/// recording it; returns the last run recorded.
async fn repair_lineage(
    cx: &StatementContext,
    table: &DeltaTable,
    target: &TableName,
    source: &str,
    committed: i64,
) -> Result<i64> {
    let lake = cx.engine.lake();
    let recorded = match lake.load_table(&crate::sources::lineage_table()).await? {
        None => 0,
        Some(lineage) => {
            let batches = cx
                .ctx
                .read_table(lineage.table_provider().await?)?
                .filter(
                    ident("source")
                        .eq(lit(source))
                        .and(ident("target").eq(lit(target.to_string()))),
                )?
                .aggregate(vec![], vec![max(ident("run")).alias("m")])?
                .collect()
                .await?;
            batches
                .first()
                .filter(|b| b.num_rows() > 0)
                .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().cloned())
                .filter(|a| a.is_valid(0))
                .map(|a| a.value(0))
                .unwrap_or(0)
        }
    };
    if recorded >= committed {
        return Ok(recorded);
    }
    // The run committed but its lineage row was lost: rebuild the row from
    // the run's commit.
    let found = ledger::find_commit(
        table,
        &format!("sync run {committed} of {source} into {target}"),
        &[
            ("autolake.sync.run", json!(committed)),
            ("autolake.sync.source", json!(source)),
        ],
    )
    .await?;
    let mode = SyncMode::recorded(found.get("autolake.sync.mode").and_then(Value::as_str));
    let rows = if mode == SyncMode::Merge {
        found.metric("num_target_rows_inserted") + found.metric("num_target_rows_updated")
    } else {
        found.metric("num_added_rows")
    };
    let run = Run {
        source: source.to_string(),
        target: target.to_string(),
        run: committed,
        mode,
        cursor_column: None,
        cursor: None,
        rows,
        rejected: 0,
        version: found.version,
        user: found.user(),
    };
    append_lineage(cx, &[run]).await?;
    Ok(committed)
}
