//! Jobs: statements run on a schedule, incrementally and exactly once.
//!
//! ```text
//! CREATE JOB name SCHEDULE 'cron' | EVERY 'interval'
//!   [WINDOW TUMBLE (ts, 'size') | HOP (ts, 'slide', 'size')]
//!   [WATERMARK 'lateness'] [LATE INTO table]
//!   AS INSERT … | MERGE … | SYNC … | CHECK DRIFT … | CREATE MODEL … | RUN MONITOR …
//! ```
//!
//! **Definitions** are JSON documents at `<lake>/jobs/<name>.json` (a
//! [`DocStore`]); the creator owns the job (governance ownership, changed
//! with `ALTER JOB … OWNER TO`) and every run executes as the owner at the
//! time of the run, through the same session funnel as any statement, so
//! privileges, row policies, masks and the audit log apply (interface
//! `job`). A paused job stays paused across restarts because the flag is
//! in the definition.
//!
//! **Exactly once, as Structured Streaming and delta-rs's streaming writers
//! do it.** Each run has a number. Every Delta commit a run makes carries
//! the application transaction `(autolake.job:<name>, run)` and, in its
//! commit info, the run's input versions (`autolake.job.inputs`, table →
//! last version consumed) and watermark. So the output and the record of
//! what produced it land in one atomic commit. After every run the job's
//! progress is also written to `<lake>/job_state/<name>.json`; when a run
//! died between its commit and that write, the next run finds the output
//! table's transaction version ahead of the state document and recovers
//! the inputs and watermark from that commit's info instead of running the
//! same input again. Two processes running the same run number collide on
//! the application transaction (delta-rs reports a concurrent commit of
//! the same app id as a conflict), so at most one of them commits.
//!
//! **Inputs.** At the start of a run the current version of every table
//! read through `table_changes('t')` is pinned and written to the state
//! document before anything is read (as Structured Streaming's offset log
//! does); the run reads the commits after the last consumed version up to
//! the pinned one (see [`changes`]). A run repeated after a crash reuses
//! the pinned versions, so it reads, computes and writes exactly what the
//! interrupted attempt would have. A run with nothing new to read is
//! skipped without a commit or a record.
//!
//! **Windows.** A windowed job keeps a watermark: the newest event time
//! seen minus the allowed lateness, never moving back. A window
//! `[start, start + size)` is emitted once, in the run where the watermark
//! passes its end; its rows are read from the input as of the pinned
//! version, so a restart recomputes exactly the same windows. Rows arriving
//! for a window that has already been emitted (or without an event time)
//! are late: they are written to the late table (`LATE INTO`, by default
//! `<schema>.<job>_late`) in the same run, under the same application
//! transaction, and counted in `system.job_runs`. Because all state is the
//! watermark and the consumed versions, both committed with the output,
//! nothing besides the lake needs to survive a crash.
//!
//! **Scheduling.** [`Scheduler`] (inside `autolake serve`, or once with
//! `autolake jobs run-due`) starts a job when its schedule says so; runs of
//! one job never overlap in a process (a lock per job). A failed run is
//! recorded with its error and retried with exponential backoff (1 s, 2 s,
//! 4 s, … up to 5 minutes) before its schedule is considered again.
//! Monitors are scheduled the same way and run as `RUN MONITOR` by their
//! owner.
//!
//! Every run (succeeded, failed or recovered) is one row of the Delta
//! table `system.job_runs`; `system.jobs` lists the definitions with their
//! progress.

pub(crate) mod changes;
pub mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use autolake_sql::{JobSchedule, Statement};
use chrono::{DateTime, Utc};
use datafusion::logical_expr::{col, lit};
use deltalake::delta_datafusion::DataFusionMixins;
use deltalake::protocol::SaveMode;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::governance::Securable;
use crate::lake::docs::DocStore;
use crate::lake::system::SystemTable;
use crate::lake::write::CommitStamp;
use crate::lake::{Lake, SYSTEM_SCHEMA, TableName};
use crate::principal::{Access, Action, Interface, Object, Principal};
use crate::session::{Engine, Session};
use changes::{JobInputs, Windowing};
use schedule::{Schedule, parse_interval};

/// A saved job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The job's name.
    pub name: String,
    /// The statement each run executes.
    pub statement: String,
    /// Its kind (`INSERT`, `MERGE`, …).
    pub kind: String,
    /// A cron schedule, when it has one.
    pub cron: Option<String>,
    /// An interval schedule, when it has one.
    pub every: Option<String>,
    /// Event-time windows over its input.
    pub window: Option<JobWindow>,
    /// Whether runs are suspended.
    pub paused: bool,
    /// This definition's identity: a job dropped and made again under the
    /// same name is a new job whose runs start afresh.
    #[serde(default)]
    pub id: String,
    /// Who created it (the owner is governance's; see `system.grants`).
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The windows of a windowed job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobWindow {
    /// The event-time column of the input.
    pub column: String,
    /// Window length.
    pub size: String,
    /// Distance between window starts (hopping); tumbling when absent.
    pub slide: Option<String>,
    /// Allowed lateness.
    pub watermark: String,
    /// Where late rows go, `schema.table`.
    pub late_into: String,
}

impl Job {
    /// The schedule as written (`EVERY '1 minute'`, `SCHEDULE '@hourly'`).
    pub fn schedule_text(&self) -> String {
        match (&self.cron, &self.every) {
            (Some(c), _) => JobSchedule::Cron(c.clone()).to_string(),
            (None, Some(e)) => JobSchedule::Every(e.clone()).to_string(),
            (None, None) => String::new(),
        }
    }

    fn schedule(&self) -> Result<Schedule> {
        match (&self.cron, &self.every) {
            (Some(c), _) => Schedule::cron(c),
            (None, Some(e)) => Schedule::every(e),
            (None, None) => Err(Error::invalid(format!("job {} has no schedule", self.name))),
        }
    }
}

/// A job's progress, rewritten after each run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobState {
    /// The last run that succeeded (0 before the first).
    pub run: i64,
    /// Per input table, the last version consumed.
    pub inputs: BTreeMap<String, i64>,
    /// The watermark of a windowed job, microseconds since the epoch.
    pub watermark: Option<i64>,
    /// When the last run started.
    pub last_start: Option<DateTime<Utc>>,
    /// How the last run ended (`succeeded`, `failed`, `recovered`).
    pub last_status: Option<String>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub failures: u32,
    /// No scheduled run before this (backoff after a failure).
    pub retry_at: Option<DateTime<Utc>>,
    /// The run in progress and the input versions pinned for it, written
    /// before it reads anything: a run repeated after a crash reads exactly
    /// the same versions.
    pub pending: Option<Pending>,
}

/// A run's pinned inputs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pending {
    /// The run.
    pub run: i64,
    /// Per input table, the last version the run reads.
    pub inputs: BTreeMap<String, i64>,
}

/// The jobs of a lake, and the locks that keep one job's runs apart.
#[derive(Debug)]
pub struct Jobs {
    defs: DocStore<Job>,
    states: DocStore<JobState>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Jobs {
    /// The jobs of `lake`.
    pub fn new(lake: Arc<Lake>) -> Self {
        Self {
            defs: DocStore::new(Arc::clone(&lake), "jobs", "job"),
            states: DocStore::new(lake, "job_state", "job state"),
            locks: Mutex::default(),
        }
    }

    /// The job called `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<Job>> {
        self.defs.get(name).await
    }

    /// Every job, by name.
    pub async fn list(&self) -> Result<Vec<Job>> {
        self.defs.list().await
    }

    /// A job's progress (empty before its first run).
    pub async fn state(&self, name: &str) -> Result<JobState> {
        Ok(self.states.get(name).await?.unwrap_or_default())
    }

    fn lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(name.to_string()).or_default())
    }

    /// Whether a run of `name` is in progress in this process.
    pub fn is_running(&self, name: &str) -> bool {
        self.lock(name).try_lock().is_err()
    }
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The job.
    pub job: String,
    /// The run's number.
    pub run: i64,
    /// `succeeded`, `failed`, `recovered` or `skipped` (nothing new).
    pub status: String,
    /// What started it (`schedule`, `manual`).
    pub trigger: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended.
    pub ended: DateTime<Utc>,
    /// Rows committed to its inputs in the versions it consumed.
    pub rows_read: i64,
    /// Rows its statement wrote.
    pub rows_written: i64,
    /// Rows sent to the late table.
    pub late_rows: i64,
    /// Per input, the last version consumed.
    pub inputs: BTreeMap<String, i64>,
    /// The watermark after the run.
    pub watermark: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A run in progress, as its session sees it: the inputs
/// `table_changes('t')` reads, and what every commit carries.
#[derive(Debug)]
pub(crate) struct JobRun {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) run: i64,
    pub(crate) inputs: JobInputs,
    pub(crate) consumed: BTreeMap<String, i64>,
    pub(crate) watermark: Option<i64>,
}

impl JobRun {
    /// The application transaction of a job's commits.
    pub(crate) fn app_id(name: &str, id: &str) -> String {
        format!("autolake.job:{name}:{id}")
    }

    /// Marks a commit as this run's.
    pub(crate) fn stamp(&self, stamp: CommitStamp) -> CommitStamp {
        stamp
            .with_transaction(Self::app_id(&self.name, &self.id), self.run)
            .with_info("autolake.job.name", json!(self.name))
            .with_info("autolake.job.run", json!(self.run))
            .with_info("autolake.job.inputs", json!(self.consumed))
            .with_info("autolake.job.watermark", json!(self.watermark))
    }
}

/// A job name written in SQL: one identifier.
pub(crate) fn job_name(name: &autolake_sql::sqlparser::ast::ObjectName) -> Result<String> {
    crate::exec::single_name("job", name)
}

/// `CREATE JOB …`
pub(crate) async fn create(session: &Session, create: &autolake_sql::CreateJob) -> Result<()> {
    let name = job_name(&create.name)?;
    let (cron, every) = match &create.schedule {
        JobSchedule::Cron(c) => {
            Schedule::cron(c)?;
            (Some(c.clone()), None)
        }
        JobSchedule::Every(e) => {
            Schedule::every(e)?;
            (None, Some(e.clone()))
        }
    };
    let body = &create.body;
    let calls = match &body.statement {
        Statement::Sql(df) => changes::calls(df)?,
        _ => Vec::new(),
    };
    for call in &calls {
        session.engine.lake().require_table(&call.table).await?;
    }
    let window = match &create.window {
        None => None,
        Some(w) => {
            let inputs: Vec<&changes::Call> = calls.iter().filter(|c| c.from.is_none()).collect();
            let [input] = inputs.as_slice() else {
                return Err(Error::invalid(format!(
                    "a windowed job reads exactly one table_changes('table') input; job {name} has {}",
                    inputs.len()
                )));
            };
            let size = parse_interval(&w.size)?;
            if let Some(slide) = &w.slide {
                let slide = parse_interval(slide)?;
                if slide > size {
                    return Err(Error::invalid(format!(
                        "HOP slide '{}' is longer than the window size '{}'",
                        w.slide.as_deref().unwrap_or_default(),
                        w.size
                    )));
                }
            }
            let watermark = create
                .watermark
                .clone()
                .unwrap_or_else(|| "0 seconds".to_string());
            if watermark.trim_start().starts_with('0') {
                // Zero lateness is allowed; any other text must parse.
            } else {
                parse_interval(&watermark)?;
            }
            let table = session.engine.lake().require_table(&input.table).await?;
            let column = crate::exec::ident_name(&w.column);
            let schema = table.snapshot()?.snapshot().input_schema();
            match schema.field_with_name(&column) {
                Ok(f) if matches!(f.data_type(), DataType::Timestamp(..) | DataType::Date32) => {}
                Ok(f) => {
                    return Err(Error::invalid(format!(
                        "the window's event-time column {column} of {} has type {}: expected a timestamp",
                        input.table,
                        f.data_type()
                    )));
                }
                Err(_) => {
                    return Err(Error::NotFound {
                        kind: "column",
                        name: format!(
                            "{column} of {} (columns: {})",
                            input.table,
                            crate::exec::column_names(schema.fields())
                        ),
                    });
                }
            }
            let late_into = match &create.late_into {
                Some(t) => crate::exec::lake_table(t)?,
                None => TableName::new(input.table.schema.clone(), format!("{name}_late")),
            };
            Some(JobWindow {
                column,
                size: w.size.clone(),
                slide: w.slide.clone(),
                watermark,
                late_into: format!("{}.{}", late_into.schema, late_into.table),
            })
        }
    };
    let job = Job {
        name: name.clone(),
        statement: body.text.clone(),
        kind: body.statement.kind().to_string(),
        cron,
        every,
        window,
        paused: false,
        id: uuid::Uuid::new_v4().simple().to_string(),
        created_by: session.principal.name.clone(),
        created_at: Utc::now(),
    };
    let jobs = session.engine.jobs();
    if !jobs.defs.create(&name, &job).await? {
        if create.if_not_exists {
            return Ok(());
        }
        return Err(Error::AlreadyExists { kind: "job", name });
    }
    // A job made again under an old name starts afresh.
    jobs.states.delete(&name).await?;
    Ok(())
}

/// `ALTER JOB name PAUSE | RESUME`
pub(crate) async fn set_paused(session: &Session, name: &str, paused: bool) -> Result<()> {
    let jobs = session.engine.jobs();
    let mut job = require(jobs, name).await?;
    job.paused = paused;
    jobs.defs.put(name, &job).await
}

/// `DROP JOB [IF EXISTS] name`; its runs stay in `system.job_runs`.
pub(crate) async fn drop(session: &Session, name: &str, if_exists: bool) -> Result<()> {
    let jobs = session.engine.jobs();
    if !jobs.defs.delete(name).await? {
        if if_exists {
            return Ok(());
        }
        return Err(Error::NotFound {
            kind: "job",
            name: name.to_string(),
        });
    }
    jobs.states.delete(name).await?;
    Ok(())
}

async fn require(jobs: &Jobs, name: &str) -> Result<Job> {
    jobs.get(name).await?.ok_or_else(|| Error::NotFound {
        kind: "job",
        name: name.to_string(),
    })
}

/// Runs job `name` once now, as its owner, waiting for a run already in
/// progress in this process to finish first.
pub async fn run(engine: &Arc<Engine>, name: &str, trigger: &str) -> Result<RunRecord> {
    let jobs = engine.jobs();
    let lock = jobs.lock(name);
    let _running = lock.lock().await;
    let job = require(jobs, name).await?;
    let mut state = jobs.state(name).await?;
    let started = Utc::now();
    let mut record = RunRecord {
        job: name.to_string(),
        run: state.run + 1,
        status: "failed".to_string(),
        trigger: trigger.to_string(),
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
    if record.status == "skipped" {
        // A check that found nothing new still counts as the schedule's run.
        jobs.states.put(name, &state).await?;
        return Ok(record);
    }
    match &result {
        Ok(()) => {
            record.status = "succeeded".to_string();
            state.run = record.run;
            state.inputs = record.inputs.clone();
            state.watermark = record.watermark;
            state.failures = 0;
            state.retry_at = None;
            state.last_error = None;
            state.pending = None;
        }
        Err(e) => {
            record.status = "failed".to_string();
            record.error = Some(e.to_string());
            state.failures = state.failures.saturating_add(1);
            let backoff = Duration::from_secs(1 << state.failures.min(9).saturating_sub(1))
                .min(Duration::from_secs(300));
            state.retry_at =
                Some(record.ended + chrono::Duration::from_std(backoff).unwrap_or_default());
            state.last_error = record.error.clone();
        }
    }
    state.last_status = Some(record.status.clone());
    jobs.states.put(name, &state).await?;
    append_runs(engine, std::slice::from_ref(&record)).await?;
    result.map(|()| record)
}

/// One attempt: recover a run committed but not recorded, pin the inputs,
/// compute the windows, run the statement.
async fn attempt(
    engine: &Arc<Engine>,
    job: &Job,
    state: &mut JobState,
    record: &mut RunRecord,
) -> Result<()> {
    let mut parsed = autolake_sql::parse(&job.statement)?;
    if parsed.len() != 1 {
        return Err(Error::invalid(format!(
            "job {} holds {} statements",
            job.name,
            parsed.len()
        )));
    }
    let parsed = parsed.remove(0);
    let lake = engine.lake();

    // A run that committed its output but died before recording it.
    if let Some(output) = output_table(&parsed.statement)?
        && let Some(table) = lake.load_table(&output).await?
        && let Some(done) = committed_run(&table, job, state.run).await?
    {
        let recovered = RunRecord {
            run: done.run,
            status: "recovered".to_string(),
            inputs: done.inputs.clone(),
            watermark: done.watermark,
            ended: Utc::now(),
            ..record.clone()
        };
        state.run = done.run;
        state.inputs = done.inputs;
        state.watermark = done.watermark;
        state.pending = None;
        state.last_status = Some("recovered".to_string());
        engine.jobs().states.put(&job.name, state).await?;
        append_runs(engine, &[recovered]).await?;
        record.run = state.run + 1;
        record.inputs = state.inputs.clone();
        record.watermark = state.watermark;
    }

    let principal = owner(engine, &Securable::Job(job.name.clone())).await?;
    let session = engine.session(principal, Interface::Job);

    // Pin the inputs.
    let calls = match &parsed.statement {
        Statement::Sql(df) => changes::calls(df)?,
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
        record.status = "skipped".to_string();
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
        let news = changes::ChangesTable::try_new(&table, &input, from + 1, to)?;
        let frame = session.context().read_table(Arc::new(
            crate::governance::boundaries::LakeTable::new(input.clone(), Arc::new(news)),
        ))?;
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
            .map(|b| changes::to_micros(b.column(0)))
            .transpose()?
            .map(|a| a.value(0));
        if let Some(previous) = state.watermark {
            let before =
                changes::instant_literal(&ts_type, Windowing::late_before(size, slide, previous))?;
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
        return crate::exec::record_drift(session, job, check, &batches).await;
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
    let lake = session.engine.lake();
    let existing = lake.load_table(&name).await?;
    let (app, run) = match &session.job {
        Some(r) => (JobRun::app_id(&r.name, &r.id), r.run),
        None => {
            return Err(Error::invalid(format!(
                "late rows of job {job} outside its run"
            )));
        }
    };
    if let Some(t) = &existing
        && t.snapshot()?
            .transaction_version(t.log_store().as_ref(), &app)
            .await?
            .is_some_and(|v| v >= run)
    {
        return Ok(0);
    }
    let probe = frame.clone().limit(0, Some(1))?.collect().await?;
    if probe.iter().all(|b| b.num_rows() == 0) {
        return Ok(0);
    }
    let action = if existing.is_some() {
        Action::Insert
    } else {
        Action::Create
    };
    session
        .authorize(&[Access {
            action,
            object: Object::Table(name.clone()),
        }])
        .await?;
    let handle = match existing {
        Some(t) => t,
        None => lake.table_handle(&name)?,
    };
    let stamp = session.stamp("JOB LATE ROWS");
    let (_, rows) = crate::lake::write::write_plan(
        handle,
        &name,
        frame.into_unoptimized_plan(),
        Arc::new(session.context().state()),
        SaveMode::Append,
        None,
        false,
        &stamp,
    )
    .await?;
    Ok(rows as i64)
}

/// The user a job or monitor runs as: its owner now.
async fn owner(engine: &Arc<Engine>, object: &Securable) -> Result<Principal> {
    let state = engine.governance().state().await?;
    let owner = state.owner(object).to_string();
    let users = crate::serve::users::UserStore::new(Arc::clone(engine.lake()));
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
                        Some(crate::exec::lake_table(n)?)
                    }
                    _ => None,
                },
                S::Merge(m) => Some(crate::exec::lake_table(&crate::exec::write_target(
                    &m.table,
                )?)?),
                _ => None,
            },
            _ => None,
        },
        Statement::SyncTable(s) => Some(crate::exec::lake_table(&s.target)?),
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
    let app = JobRun::app_id(&job.name, &job.id);
    let job = job.name.as_str();
    let Some(run) = table
        .snapshot()?
        .transaction_version(table.log_store().as_ref(), &app)
        .await?
        .filter(|r| *r > recorded)
    else {
        return Ok(None);
    };
    let history: Vec<_> = table.history(Some(1000)).try_collect().await?;
    let info = history.iter().find(|c| {
        c.info.get("autolake.job.name").and_then(Value::as_str) == Some(job)
            && c.info.get("autolake.job.run").and_then(Value::as_i64) == Some(run)
    });
    let Some(info) = info else {
        return Err(Error::invalid(format!(
            "job {job}: run {run} is committed but its commit is not among the last 1000 of the output table, so its inputs cannot be recovered"
        )));
    };
    let inputs = info
        .info
        .get("autolake.job.inputs")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let watermark = info
        .info
        .get("autolake.job.watermark")
        .and_then(Value::as_i64);
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

/// Where runs are recorded.
pub(crate) fn runs_table() -> TableName {
    TableName::new(SYSTEM_SCHEMA, "job_runs")
}

/// Columns of `system.job_runs`.
pub(crate) fn runs_schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("run", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("trigger", DataType::Utf8, false),
        Field::new("start", ts(), false),
        Field::new("end", ts(), false),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("rows_written", DataType::Int64, false),
        Field::new("late_rows", DataType::Int64, false),
        Field::new("input_versions", DataType::Utf8, false),
        Field::new("watermark", ts(), true),
        Field::new("error", DataType::Utf8, true),
    ]))
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
        status.append_value(&r.status);
        trigger.append_value(&r.trigger);
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

/// `system.jobs`: one row per job with its progress.
#[derive(Debug)]
pub(crate) struct JobsTable {
    pub(crate) jobs: Arc<Jobs>,
}

#[async_trait]
impl SystemTable for JobsTable {
    fn schema(&self) -> SchemaRef {
        let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("schedule", DataType::Utf8, false),
            Field::new("statement", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("window", DataType::Utf8, true),
            Field::new("paused", DataType::Boolean, false),
            Field::new("created_by", DataType::Utf8, false),
            Field::new("created_at", ts(), false),
            Field::new("last_run", DataType::Int64, false),
            Field::new("last_status", DataType::Utf8, true),
            Field::new("last_start", ts(), true),
            Field::new("last_error", DataType::Utf8, true),
            Field::new("next_run", ts(), true),
            Field::new("input_versions", DataType::Utf8, false),
            Field::new("watermark", ts(), true),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let mut name = StringBuilder::new();
        let mut schedule = StringBuilder::new();
        let mut statement = StringBuilder::new();
        let mut kind = StringBuilder::new();
        let mut window = StringBuilder::new();
        let mut paused = BooleanBuilder::new();
        let mut created_by = StringBuilder::new();
        let mut created_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut last_run = Int64Builder::new();
        let mut last_status = StringBuilder::new();
        let mut last_start = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut last_error = StringBuilder::new();
        let mut next_run = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut inputs = StringBuilder::new();
        let mut watermark = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        for job in self.jobs.list().await? {
            let state = self.jobs.state(&job.name).await?;
            name.append_value(&job.name);
            schedule.append_value(job.schedule_text());
            statement.append_value(&job.statement);
            kind.append_value(&job.kind);
            window.append_option(job.window.as_ref().map(|w| match &w.slide {
                Some(slide) => format!(
                    "HOP ({}, '{slide}', '{}') WATERMARK '{}' LATE INTO {}",
                    w.column, w.size, w.watermark, w.late_into
                ),
                None => format!(
                    "TUMBLE ({}, '{}') WATERMARK '{}' LATE INTO {}",
                    w.column, w.size, w.watermark, w.late_into
                ),
            }));
            paused.append_value(job.paused);
            created_by.append_value(&job.created_by);
            created_at.append_value(job.created_at.timestamp_micros());
            last_run.append_value(state.run);
            last_status.append_option(state.last_status.as_deref());
            last_start.append_option(state.last_start.map(|t| t.timestamp_micros()));
            last_error.append_option(state.last_error.as_deref());
            next_run.append_option(if job.paused {
                None
            } else {
                next_due(&job, &state).map(|t| t.timestamp_micros())
            });
            inputs.append_value(json!(state.inputs).to_string());
            watermark.append_option(state.watermark);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(name.finish()),
            Arc::new(schedule.finish()),
            Arc::new(statement.finish()),
            Arc::new(kind.finish()),
            Arc::new(window.finish()),
            Arc::new(paused.finish()),
            Arc::new(created_by.finish()),
            Arc::new(created_at.finish()),
            Arc::new(last_run.finish()),
            Arc::new(last_status.finish()),
            Arc::new(last_start.finish()),
            Arc::new(last_error.finish()),
            Arc::new(next_run.finish()),
            Arc::new(inputs.finish()),
            Arc::new(watermark.finish()),
        ];
        Ok(vec![RecordBatch::try_new(self.schema(), columns)?])
    }
}

/// When a job is next due: its schedule after the last start (or after
/// its creation, for a cron job that never ran; at once for an interval
/// job that never ran), and not before a failure's backoff ends.
fn next_due(job: &Job, state: &JobState) -> Option<DateTime<Utc>> {
    let schedule = job.schedule().ok()?;
    let next = match (state.last_start, &schedule) {
        (Some(last), s) => s.next_after(last),
        (None, Schedule::Every(_)) => job.created_at,
        (None, s @ Schedule::Cron(_)) => s.next_after(job.created_at),
    };
    Some(match state.retry_at {
        Some(retry) if state.failures > 0 => retry,
        _ => next,
    })
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
        let now = Utc::now();
        let mut started = Vec::new();
        for job in self.engine.jobs().list().await? {
            if job.paused || self.engine.jobs().is_running(&job.name) {
                continue;
            }
            let state = self.engine.jobs().state(&job.name).await?;
            if next_due(&job, &state).is_some_and(|due| due <= now) {
                let engine = Arc::clone(&self.engine);
                let name = job.name.clone();
                started.push(tokio::spawn(async move {
                    run(&engine, &name, "schedule").await
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
                    status: "succeeded".to_string(),
                    trigger: "schedule".to_string(),
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
