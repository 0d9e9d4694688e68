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
//! the pinned one (see `table_changes` in the statement handlers). A run repeated after a crash reuses
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
//! **Scheduling.** [`crate::scheduler::Scheduler`] (inside `autolake serve`, or once with
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

pub mod schedule;
pub(crate) mod window;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use autolake_sql::JobSchedule;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::lake::docs::DocStore;
use crate::lake::ledger;
use crate::lake::write::CommitStamp;
use crate::lake::{Lake, SYSTEM_SCHEMA, TableName};
use schedule::Schedule;
use window::JobInputs;

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
    /// The jobs after whose committed runs this one runs (`AFTER a, b`).
    #[serde(default)]
    pub after: Vec<String>,
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
            (None, None) => format!("AFTER {}", self.after.join(", ")),
        }
    }

    pub(crate) fn schedule(&self) -> Result<Schedule> {
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
    /// How the last run ended.
    pub last_status: Option<RunStatus>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub failures: u32,
    /// For a job that runs `AFTER` others: per upstream job, its last
    /// succeeded run that this job has followed.
    #[serde(default)]
    pub upstream: BTreeMap<String, i64>,
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
    pub(crate) defs: DocStore<Job>,
    pub(crate) states: DocStore<JobState>,
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

    pub(crate) fn lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(name.to_string()).or_default())
    }

    /// Whether a run of `name` is in progress in this process.
    pub fn is_running(&self, name: &str) -> bool {
        self.lock(name).try_lock().is_err()
    }
}

/// How a run ended, as `system.job_runs` and `system.jobs` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Its statement ran and committed.
    Succeeded,
    /// It failed; the next run retries the same inputs.
    Failed,
    /// A run that committed its output but died before recording it,
    /// recorded afterwards from the output's commit.
    Recovered,
    /// Nothing new in its inputs: no statement ran.
    Skipped,
}

impl RunStatus {
    /// The status as SQL shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Recovered => "recovered",
            RunStatus::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Its schedule came due (serve's scheduler, `jobs run-due`).
    Schedule,
    /// `RUN JOB`.
    Manual,
}

impl Trigger {
    /// The trigger as SQL shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
        }
    }
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The job.
    pub job: String,
    /// The run's number.
    pub run: i64,
    /// How it ended.
    pub status: RunStatus,
    /// What started it.
    pub trigger: Trigger,
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
    /// Marks a commit as this run's.
    pub(crate) fn stamp(&self, stamp: CommitStamp) -> CommitStamp {
        stamp
            .with_transaction(ledger::job_app(&self.name, &self.id), self.run)
            .with_info("autolake.job.name", json!(self.name))
            .with_info("autolake.job.run", json!(self.run))
            .with_info("autolake.job.inputs", json!(self.consumed))
            .with_info("autolake.job.watermark", json!(self.watermark))
    }
}

/// A job name written in SQL: one identifier.
pub(crate) fn job_name(name: &autolake_sql::sqlparser::ast::ObjectName) -> Result<String> {
    crate::names::single_name("job", name)
}

pub(crate) async fn require(jobs: &Jobs, name: &str) -> Result<Job> {
    jobs.get(name).await?.ok_or_else(|| Error::NotFound {
        kind: "job",
        name: name.to_string(),
    })
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

/// Whether a job that runs `AFTER` others is due: an upstream has
/// succeeded in a run this job has not followed yet, and no failure's
/// backoff is pending. A paused or dropped upstream starts nothing
/// (`system.jobs` shows it in `blocked_by`).
pub(crate) async fn upstream_due(
    jobs: &Jobs,
    job: &Job,
    state: &JobState,
    now: DateTime<Utc>,
) -> Result<bool> {
    if job.after.is_empty() || (state.failures > 0 && state.retry_at.is_some_and(|r| r > now)) {
        return Ok(false);
    }
    for upstream in &job.after {
        let run = jobs.state(upstream).await?.run;
        if run > state.upstream.get(upstream).copied().unwrap_or(0) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The last succeeded run of each of `job`'s upstreams, now.
pub(crate) async fn upstream_runs(jobs: &Jobs, job: &Job) -> Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for upstream in &job.after {
        out.insert(upstream.clone(), jobs.state(upstream).await?.run);
    }
    Ok(out)
}

/// Why a job's upstreams start nothing: each paused or missing one.
pub(crate) async fn blocked_by(jobs: &Jobs, job: &Job) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for upstream in &job.after {
        match jobs.get(upstream).await? {
            None => out.push(format!("{upstream} (dropped)")),
            Some(u) if u.paused => out.push(format!("{upstream} (paused)")),
            Some(u) => {
                // An upstream blocked further up blocks this one too.
                if !u.after.is_empty()
                    && Box::pin(blocked_by(jobs, &u)).await?.len() == u.after.len()
                {
                    out.push(format!("{upstream} (blocked)"));
                }
            }
        }
    }
    Ok(out)
}

/// The jobs that would run after `name`, directly or further down, given
/// every job's upstreams: a new `AFTER` edge into `name` from one of them
/// closes a cycle.
pub(crate) fn downstream_of(all: &[Job], name: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut frontier = vec![name.to_string()];
    while let Some(current) = frontier.pop() {
        for job in all {
            if job.after.contains(&current) && !found.contains(&job.name) {
                found.push(job.name.clone());
                frontier.push(job.name.clone());
            }
        }
    }
    found
}

/// When a job is next due: its schedule after the last start (or after
/// its creation, for a cron job that never ran; at once for an interval
/// job that never ran), and not before a failure's backoff ends.
pub(crate) fn next_due(job: &Job, state: &JobState) -> Option<DateTime<Utc>> {
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
