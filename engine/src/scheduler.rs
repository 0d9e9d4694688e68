//! Running jobs: one run through the session funnel as the job's owner
//! ([`run`]), and the [`Scheduler`] that starts runs when they are due.
//! This sits above the sessions; statements reach it through
//! [`JobRunner`] (`RUN JOB`).
//!
//! Every finished run is counted in the engine's metrics
//! (`autolake_job_runs_total{job,status}`, skipped checks included), and
//! [`job_lags`] tells, for `/metrics`, how far each job is behind its
//! inputs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use autolake_sql::Statement;
use chrono::{DateTime, Utc};
use datafusion::logical_expr::{col, lit};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use object_store::ObjectStoreExt;
use serde_json::{Value, json};

use crate::context::{Engine, JobRunner};
use crate::error::{Error, Result};
use crate::exec::changes::ChangesTable;
use crate::governance::Securable;
use crate::jobs::next_due;
use crate::jobs::schedule::Schedule;
use crate::jobs::schedule::parse_interval;
use crate::jobs::window::{JobInputs, Windowing, instant_literal, to_micros};
use crate::jobs::{
    Job, JobRun, JobState, Pending, RunRecord, RunStatus, Trigger, require, runs_schema, runs_table,
};
use crate::lake::write::CommitStamp;
use crate::lake::{TableName, ledger};
use crate::principal::{Interface, Principal};
use crate::session::Session;

/// Runs jobs for the statements below the funnel (`RUN JOB`).
#[derive(Debug)]
pub(crate) struct Runner;

impl JobRunner for Runner {
    fn run(
        self: Arc<Self>,
        engine: Arc<Engine>,
        name: String,
        trigger: Trigger,
    ) -> BoxFuture<'static, Result<RunRecord>> {
        Box::pin(async move { run(&engine, &name, trigger).await })
    }
}

/// Runs job `name` once now, as its owner, waiting for a run already in
/// progress in this process to finish first.
pub async fn run(engine: &Arc<Engine>, name: &str, trigger: Trigger) -> Result<RunRecord> {
    let jobs = engine.jobs();
    let lock = jobs.lock(name);
    let _running = lock.lock().await;
    let job = require(jobs, name).await?;
    let mut state = jobs.state(name).await?;
    // What the upstreams had committed when this run started: the next
    // upstream run after these starts the next one.
    let upstream = crate::jobs::upstream_runs(jobs, &job).await?;
    let started = Utc::now();
    let mut record = RunRecord {
        job: name.to_string(),
        run: state.run + 1,
        status: RunStatus::Failed,
        trigger,
        started,
        ended: started,
        rows_read: 0,
        rows_written: 0,
        late_rows: 0,
        inputs: state.inputs.clone(),
        watermark: state.watermark,
        error: None,
    };
    let result = attempt(engine, &job, &mut state, &mut record).await;
    record.ended = Utc::now();
    state.last_start = Some(started);
    if record.status == RunStatus::Skipped {
        // A check that found nothing new still counts as the schedule's run.
        state.upstream = upstream;
        jobs.states.put(name, &state).await?;
        count_run(engine, name, RunStatus::Skipped);
        return Ok(record);
    }
    match &result {
        Ok(()) => {
            record.status = RunStatus::Succeeded;
            state.run = record.run;
            state.inputs = record.inputs.clone();
            state.watermark = record.watermark;
            state.failures = 0;
            state.retry_at = None;
            state.last_error = None;
            state.pending = None;
            state.upstream = upstream;
        }
        Err(e) => {
            record.status = RunStatus::Failed;
            record.error = Some(e.to_string());
            state.failures = state.failures.saturating_add(1);
            let backoff = Duration::from_secs(1 << state.failures.min(9).saturating_sub(1))
                .min(Duration::from_secs(300));
            state.retry_at =
                Some(record.ended + chrono::Duration::from_std(backoff).unwrap_or_default());
            state.last_error = record.error.clone();
        }
    }
    state.last_status = Some(record.status);
    jobs.states.put(name, &state).await?;
    append_runs(engine, std::slice::from_ref(&record)).await?;
    count_run(engine, name, record.status);
    result.map(|()| record)
}

/// Counts a finished run in the metrics (unless the engine is unobserved).
fn count_run(engine: &Engine, job: &str, status: RunStatus) {
    if let Some(metrics) = engine.observed_metrics() {
        metrics.job_run(job, status.as_str());
    }
}

/// Each job's lag: the age in seconds of the oldest commit of its inputs
/// (the tables it reads through `table_changes`) that it has not consumed
/// yet, 0 when it is up to date. A paused or failing job's lag grows.
/// A commit's age is its log file's time, as Delta's commit timestamps
/// are; where that file was already cleaned up, the newest commit's age
/// stands in (the lag is at least that). A job whose statement or input
/// cannot be read is left out rather than failing every job's figure.
pub async fn job_lags(engine: &Arc<Engine>) -> Result<Vec<(String, f64)>> {
    let jobs = engine.jobs();
    let lake = engine.lake();
    let now = Utc::now();
    let mut lags = Vec::new();
    for job in jobs.list().await? {
        let state = jobs.state(&job.name).await?;
        let calls = match autolake_sql::parse(&job.statement)
            .ok()
            .and_then(|mut s| (s.len() == 1).then(|| s.remove(0)))
            .map(|p| p.statement)
        {
            Some(Statement::Sql(df)) => crate::exec::changes::calls(&df).unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut oldest: Option<DateTime<Utc>> = None;
        for call in calls.iter().filter(|c| c.from.is_none()) {
            let Ok(Some(table)) = lake.load_table(&call.table).await else {
                continue;
            };
            let current = table.version().unwrap_or(0) as i64;
            let consumed = state
                .inputs
                .get(&call.table.to_string())
                .copied()
                .unwrap_or(-1);
            if current <= consumed {
                continue;
            }
            let log = lake.table_path(&call.table).join("_delta_log");
            for version in [consumed + 1, current] {
                let commit = log.clone().join(format!("{version:020}.json"));
                if let Ok(meta) = lake.store().head(&commit).await {
                    let at = meta.last_modified;
                    oldest = Some(oldest.map_or(at, |o| o.min(at)));
                    break;
                }
            }
        }
        let lag = oldest.map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0));
        lags.push((job.name, lag));
    }
    Ok(lags)
}

/// One attempt: recover a run committed but not recorded, pin the inputs,
/// compute the windows, run the statement.
async fn attempt(
    engine: &Arc<Engine>,
    job: &Job,
    state: &mut JobState,
    record: &mut RunRecord,
) -> Result<()> {
    // The run's statements go through the funnel as the job's owner, its
    // stored text through the audited parse.
    let principal = owner(engine, &Securable::Job(job.name.clone())).await?;
    let session = engine.session(principal, Interface::Job);
    let parsed = session.parse_one(&job.statement)?;
    let lake = engine.lake();

    // A run that committed its output but died before recording it.
    if let Some(output) = output_table(&parsed.statement)?
        && let Some(table) = lake.load_table(&output).await?
        && let Some(done) = committed_run(&table, job, state.run).await?
    {
        let recovered = RunRecord {
            run: done.run,
            status: RunStatus::Recovered,
            inputs: done.inputs.clone(),
            watermark: done.watermark,
            ended: Utc::now(),
            ..record.clone()
        };
        state.run = done.run;
        state.inputs = done.inputs;
        state.watermark = done.watermark;
        state.pending = None;
        state.last_status = Some(RunStatus::Recovered);
        engine.jobs().states.put(&job.name, state).await?;
        append_runs(engine, &[recovered]).await?;
        count_run(engine, &job.name, RunStatus::Recovered);
        record.run = state.run + 1;
        record.inputs = state.inputs.clone();
        record.watermark = state.watermark;
    }

    // Pin the inputs.
    let calls = match &parsed.statement {
        Statement::Sql(df) => crate::exec::changes::calls(df)?,
        _ => Vec::new(),
    };
    let mut ranges = BTreeMap::new();
    let mut consumed = state.inputs.clone();
    let repeated = state
        .pending
        .as_ref()
        .filter(|p| p.run == record.run)
        .map(|p| p.inputs.clone());
    for call in calls.iter().filter(|c| c.from.is_none()) {
        let key = call.table.to_string();
        let table = lake.require_table(&call.table).await?;
        let pinned = match repeated.as_ref().and_then(|r| r.get(&key)) {
            Some(v) => *v,
            None => table.version().unwrap_or(0) as i64,
        };
        let from = state.inputs.get(&key).copied().unwrap_or(-1);
        if pinned < from {
            return Err(Error::invalid(format!(
                "input {key} is at version {pinned}, before version {from} this job already consumed (was the table dropped and made again?)"
            )));
        }
        record.rows_read += rows_committed(&table, from, pinned).await?;
        ranges.insert(key.clone(), (from, pinned));
        consumed.insert(key, pinned);
    }
    if !ranges.is_empty() && ranges.values().all(|(from, to)| from == to) {
        record.status = RunStatus::Skipped;
        return Ok(());
    }
    if repeated.is_none() && !ranges.is_empty() {
        state.pending = Some(Pending {
            run: record.run,
            inputs: consumed.clone(),
        });
        engine.jobs().states.put(&job.name, state).await?;
    }

    // Windows: move the watermark, send late rows aside, find the windows
    // that close.
    let mut watermark = state.watermark;
    let mut windows = None;
    let mut late = None;
    if let Some(w) = &job.window {
        let (key, (from, to)) = ranges
            .iter()
            .next()
            .map(|(k, v)| (k.clone(), *v))
            .ok_or_else(|| Error::invalid(format!("windowed job {} has no input", job.name)))?;
        let input = calls
            .iter()
            .find(|c| c.table.to_string() == key)
            .map(|c| c.table.clone())
            .ok_or_else(|| Error::invalid("windowed input not found"))?;
        let size = micros(parse_interval(&w.size)?);
        let slide = match &w.slide {
            Some(s) => micros(parse_interval(s)?),
            None => size,
        };
        let lateness = if w.watermark.trim_start().starts_with('0') {
            0
        } else {
            micros(parse_interval(&w.watermark)?)
        };
        let table = lake.require_table(&input).await?;
        let news = ChangesTable::try_new(&table, &input, from + 1, to)?;
        let frame = session
            .context()
            .read_table(Arc::new(crate::lake::table::LakeTable::new(
                input.clone(),
                Arc::new(news),
            )))?;
        let frame = frame.filter(
            col("_change_type").in_list(vec![lit("insert"), lit("update_postimage")], false),
        )?;
        let ts_type = frame
            .schema()
            .field_with_unqualified_name(&w.column)?
            .data_type()
            .clone();
        let newest = frame
            .clone()
            .aggregate(
                vec![],
                vec![
                    datafusion::functions_aggregate::expr_fn::max(col(w.column.as_str()))
                        .alias("m"),
                ],
            )?
            .collect()
            .await?;
        let newest = newest
            .first()
            .filter(|b| b.num_rows() == 1 && b.column(0).is_valid(0))
            .map(|b| to_micros(b.column(0)))
            .transpose()?
            .map(|a| a.value(0));
        if let Some(previous) = state.watermark {
            let before = instant_literal(&ts_type, Windowing::late_before(size, slide, previous))?;
            let late_rows = frame.clone().filter(
                col(w.column.as_str())
                    .lt(before)
                    .or(col(w.column.as_str()).is_null()),
            )?;
            late = Some(late_rows);
        } else {
            late = Some(frame.clone().filter(col(w.column.as_str()).is_null())?);
        }
        if let Some(newest) = newest {
            let candidate = newest - lateness;
            watermark = Some(watermark.map_or(candidate, |w| w.max(candidate)));
        }
        if let Some(current) = watermark {
            windows = Windowing::closing(w.column.clone(), size, slide, state.watermark, current);
        }
    }

    let run = Arc::new(JobRun {
        name: job.name.clone(),
        id: job.id.clone(),
        run: record.run,
        inputs: JobInputs {
            ranges: ranges.clone(),
            windows: windows.clone(),
        },
        consumed: consumed.clone(),
        watermark,
    });
    let session = session.with_job(Arc::clone(&run));

    if let (Some(frame), Some(w)) = (late, &job.window) {
        record.late_rows = write_late(&session, &job.name, frame, &w.late_into).await?;
    }

    let rows = if job.window.is_some() && windows.is_none() {
        // No window closes in this run: nothing to emit yet.
        0
    } else {
        execute(&session, &job.name, &parsed).await?
    };
    record.rows_written = rows;
    record.inputs = consumed;
    record.watermark = watermark;
    Ok(())
}

fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

/// Runs the job's statement and returns the rows it wrote. A drift check's
/// result is appended to `system.drift_metrics`, as a monitor's is.
async fn execute(
    session: &Session,
    job: &str,
    parsed: &autolake_sql::ParsedStatement,
) -> Result<i64> {
    let result = session.execute_statement(parsed).await?;
    let returns_rows = result.returns_rows;
    let batches = result.collect().await?;
    if let Statement::CheckDrift(check) = &parsed.statement {
        return crate::exec::record_drift(&session.cx, job, check, &batches).await;
    }
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if !returns_rows
        && let Some(b) = batches.first()
        && b.num_columns() == 1
        && b.num_rows() == 1
        && let Some(count) = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::UInt64Array>()
    {
        return Ok(count.value(0) as i64);
    }
    Ok(rows as i64)
}

/// Appends a run's late rows to its late table (created with the input's
/// columns and the change columns), under the run's transaction: a run
/// repeated after a crash does not add them again.
async fn write_late(
    session: &Session,
    job: &str,
    frame: datafusion::dataframe::DataFrame,
    late_into: &str,
) -> Result<i64> {
    let (schema, table) = late_into.split_once('.').unwrap_or(("public", late_into));
    let name = TableName::new(schema, table);
    let lake = session.cx.engine.lake();
    let existing = lake.load_table(&name).await?;
    let (app, run) = match &session.cx.job {
        Some(r) => (ledger::job_app(&r.name, &r.id), r.run),
        None => {
            return Err(Error::invalid(format!(
                "late rows of job {job} outside its run"
            )));
        }
    };
    if let Some(t) = &existing
        && ledger::committed(t, &app).await?.is_some_and(|v| v >= run)
    {
        return Ok(0);
    }
    let batches: Vec<RecordBatch> = frame
        .collect()
        .await?
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .collect();
    if batches.is_empty() {
        return Ok(0);
    }
    // Through the funnel's ingest entry: authorised, stamped with the
    // run's transaction, owned when created, audited.
    let rows = session
        .ingest(crate::session::Ingest {
            table: name,
            batches,
            if_exists: Some(crate::session::IfExists::Append),
            if_missing: Some(crate::session::IfMissing::Create),
        })
        .await?;
    Ok(rows as i64)
}

/// The user a job or monitor runs as: its owner now.
async fn owner(engine: &Arc<Engine>, object: &Securable) -> Result<Principal> {
    let state = engine.governance().state().await?;
    let owner = state.owner(object).to_string();
    let users = crate::governance::accounts::UserStore::new(Arc::clone(engine.lake()));
    match users.get(&owner).await? {
        Some(user) => Ok(user.principal()),
        None if owner == Principal::local_admin().name => Ok(Principal::local_admin()),
        None => Err(Error::PermissionDenied(format!(
            "{object} runs as its owner {owner}, who no longer exists: give it a new owner with ALTER … OWNER TO"
        ))),
    }
}

/// The lake table whose commits record a job's runs.
fn output_table(statement: &Statement) -> Result<Option<TableName>> {
    use autolake_sql::sqlparser::ast::Statement as S;
    Ok(match statement {
        Statement::Sql(df) => match df.as_ref() {
            datafusion::sql::parser::Statement::Statement(s) => match s.as_ref() {
                S::Insert(i) => match &i.table {
                    autolake_sql::sqlparser::ast::TableObject::TableName(n) => {
                        Some(crate::names::lake_table(n)?)
                    }
                    _ => None,
                },
                S::Merge(m) => Some(crate::names::lake_table(&crate::names::write_target(
                    &m.table,
                )?)?),
                _ => None,
            },
            _ => None,
        },
        Statement::SyncTable(s) => Some(crate::names::lake_table(&s.target)?),
        Statement::CheckDrift(_) | Statement::RunMonitor(_) => {
            Some(crate::monitor::metrics_table())
        }
        _ => None,
    })
}

/// A run committed to the output after the recorded run `recorded`.
struct Committed {
    run: i64,
    inputs: BTreeMap<String, i64>,
    watermark: Option<i64>,
}

async fn committed_run(
    table: &deltalake::DeltaTable,
    job: &Job,
    recorded: i64,
) -> Result<Option<Committed>> {
    let app = ledger::job_app(&job.name, &job.id);
    let job = job.name.as_str();
    let Some(run) = ledger::committed(table, &app)
        .await?
        .filter(|r| *r > recorded)
    else {
        return Ok(None);
    };
    let info = ledger::find_commit(
        table,
        &format!("run {run} of job {job}"),
        &[
            ("autolake.job.name", json!(job)),
            ("autolake.job.run", json!(run)),
        ],
    )
    .await?;
    let inputs = info
        .get("autolake.job.inputs")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let watermark = info.get("autolake.job.watermark").and_then(Value::as_i64);
    Ok(Some(Committed {
        run,
        inputs,
        watermark,
    }))
}

/// Rows inserted, updated or deleted in `table` by the commits after `from`
/// up to `to`, from the commits' metrics.
async fn rows_committed(table: &deltalake::DeltaTable, from: i64, to: i64) -> Result<i64> {
    if to <= from {
        return Ok(0);
    }
    let latest = table.version().unwrap_or(0) as i64;
    let history: Vec<_> = table
        .history(Some((latest - from).max(1) as usize))
        .try_collect()
        .await?;
    let mut rows = 0;
    for (i, commit) in history.iter().enumerate() {
        let version = latest - i as i64;
        if version <= from || version > to {
            continue;
        }
        let metrics = commit.info.get("operationMetrics");
        let metric = |k: &str| {
            metrics
                .and_then(|m| m.get(k))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        rows += [
            "num_added_rows",
            "num_updated_rows",
            "num_deleted_rows",
            "num_target_rows_inserted",
            "num_target_rows_updated",
            "num_target_rows_deleted",
        ]
        .iter()
        .map(|k| metric(k))
        .sum::<i64>();
    }
    Ok(rows)
}

async fn append_runs(engine: &Arc<Engine>, records: &[RunRecord]) -> Result<()> {
    let mut job = StringBuilder::new();
    let mut run = Int64Builder::new();
    let mut status = StringBuilder::new();
    let mut trigger = StringBuilder::new();
    let mut start = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut end = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut read = Int64Builder::new();
    let mut written = Int64Builder::new();
    let mut late = Int64Builder::new();
    let mut inputs = StringBuilder::new();
    let mut watermark = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut error = StringBuilder::new();
    for r in records {
        job.append_value(&r.job);
        run.append_value(r.run);
        status.append_value(r.status.as_str());
        trigger.append_value(r.trigger.as_str());
        start.append_value(r.started.timestamp_micros());
        end.append_value(r.ended.timestamp_micros());
        read.append_value(r.rows_read);
        written.append_value(r.rows_written);
        late.append_value(r.late_rows);
        inputs.append_value(json!(r.inputs).to_string());
        watermark.append_option(r.watermark);
        error.append_option(r.error.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(job.finish()),
        Arc::new(run.finish()),
        Arc::new(status.finish()),
        Arc::new(trigger.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(read.finish()),
        Arc::new(written.finish()),
        Arc::new(late.finish()),
        Arc::new(inputs.finish()),
        Arc::new(watermark.finish()),
        Arc::new(error.finish()),
    ];
    let batch = RecordBatch::try_new(runs_schema(), columns)?;
    let stamp = CommitStamp::new(&Principal::local_admin(), "JOB RUN", Interface::Job);
    let session = engine.session(Principal::local_admin(), Interface::Job);
    crate::lake::write::append_system(
        engine.lake(),
        session.context(),
        &runs_table(),
        batch,
        &stamp,
    )
    .await
}

/// Runs jobs and monitors when they are due.
#[derive(Debug)]
pub struct Scheduler {
    engine: Arc<Engine>,
}

impl Scheduler {
    /// A scheduler for the jobs of `engine`'s lake.
    pub fn new(engine: Arc<Engine>) -> Arc<Self> {
        Arc::new(Self { engine })
    }

    /// Starts every job and monitor that is due and not running; returns
    /// the started runs, which finish on their own.
    pub async fn start_due(
        self: &Arc<Self>,
    ) -> Result<Vec<tokio::task::JoinHandle<Result<RunRecord>>>> {
        self.start_due_except(&std::collections::HashSet::new())
            .await
    }

    /// [`Scheduler::start_due`], leaving out the jobs named in `done`.
    pub async fn start_due_except(
        self: &Arc<Self>,
        done: &std::collections::HashSet<String>,
    ) -> Result<Vec<tokio::task::JoinHandle<Result<RunRecord>>>> {
        let now = Utc::now();
        let mut started = Vec::new();
        let jobs = self.engine.jobs();
        for job in jobs.list().await? {
            if job.paused || jobs.is_running(&job.name) || done.contains(&job.name) {
                continue;
            }
            let state = jobs.state(&job.name).await?;
            if next_due(&job, &state).is_some_and(|due| due <= now)
                || crate::jobs::upstream_due(jobs, &job, &state, now).await?
            {
                let engine = Arc::clone(&self.engine);
                let name = job.name.clone();
                started.push(tokio::spawn(async move {
                    run(&engine, &name, Trigger::Schedule).await
                }));
            }
        }
        self.start_due_monitors(now, &mut started).await?;
        Ok(started)
    }

    async fn start_due_monitors(
        self: &Arc<Self>,
        now: DateTime<Utc>,
        started: &mut Vec<tokio::task::JoinHandle<Result<RunRecord>>>,
    ) -> Result<()> {
        let jobs = self.engine.jobs();
        let monitors = crate::monitor::MonitorStore::new(Arc::clone(self.engine.lake()))
            .list()
            .await?;
        for monitor in monitors {
            let Ok(schedule) = Schedule::any(&monitor.schedule) else {
                continue;
            };
            // A monitor's last start is kept beside the jobs' progress.
            let key = format!("monitor.{}", monitor.name);
            if jobs.is_running(&key) {
                continue;
            }
            let mut state = jobs.state(&key).await?;
            let due = schedule.next_after(state.last_start.unwrap_or(monitor.created_at));
            if due > now {
                continue;
            }
            state.last_start = Some(now);
            jobs.states.put(&key, &state).await?;
            let engine = Arc::clone(&self.engine);
            started.push(tokio::spawn(async move {
                let lock = engine.jobs().lock(&key);
                let _running = lock.lock().await;
                let started = Utc::now();
                let principal = owner(&engine, &Securable::Monitor(monitor.name.clone())).await?;
                let session = engine.session(principal, Interface::Job);
                let sql = format!("RUN MONITOR \"{}\"", monitor.name.replace('"', "\"\""));
                let rows = session.execute(&sql).await?;
                Ok(RunRecord {
                    job: format!("monitor {}", monitor.name),
                    run: 0,
                    status: RunStatus::Succeeded,
                    trigger: Trigger::Schedule,
                    started,
                    ended: Utc::now(),
                    rows_read: 0,
                    rows_written: rows.iter().map(RecordBatch::num_rows).sum::<usize>() as i64,
                    late_rows: 0,
                    inputs: BTreeMap::new(),
                    watermark: None,
                    error: None,
                })
            }));
        }
        Ok(())
    }

    /// Checks for due work every `tick` until the process ends.
    pub fn spawn(self: Arc<Self>, tick: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                match self.start_due().await {
                    Ok(runs) => {
                        for handle in runs {
                            tokio::spawn(async move {
                                match handle.await {
                                    Ok(Err(e)) => tracing::warn!("job run failed: {e}"),
                                    Err(e) => tracing::warn!("job run panicked: {e}"),
                                    Ok(Ok(_)) => {}
                                }
                            });
                        }
                    }
                    Err(e) => tracing::warn!("job scheduler: {e}"),
                }
            }
        })
    }
}
