//! The statement context: the layer between the funnel
//! ([`crate::session`]) and the statement handlers ([`crate::exec`]).
//!
//! ```text
//! interfaces (cli, serve, demo, scheduler)
//!   └─ session   the funnel: parse, authorise, run, own, audit
//!        └─ exec      statement handlers, given a StatementContext
//!             └─ context   Engine (the stores), StatementContext, StatementResult
//!                  └─ system, jobs (store), models, sources, monitor, governance, lake
//! ```
//!
//! An [`Engine`] is the lake's stores, shared by every session of a
//! process; a [`StatementContext`] is one session's view of it. A
//! statement that must go back up through the funnel (`RUN JOB` runs a
//! job's statement as its owner) does so through [`JobRunner`], which
//! the layer above the sessions provides when it opens the engine.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use serde::Deserialize;

use crate::error::Result;
use crate::governance::Governance;
use crate::governance::audit::AuditLog;
use crate::jobs::{JobRun, Jobs, RunRecord, Trigger};
use crate::lake::Lake;
use crate::lake::cache::FileCache;
use crate::lake::catalog::LakeCatalog;
use crate::lake::write::CommitStamp;
use crate::models::ModelRegistry;
use crate::principal::{Interface, Principal};
use crate::sources::Sources;
use crate::system::SystemSchema;

/// How an engine is opened: the lake and its storage options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Lake root URI.
    pub lake: String,
    /// Object-store options for the lake root (S3 endpoint, keys, …).
    pub storage_options: HashMap<String, String>,
    /// Compute device: `auto`, `cpu` or `cuda[:N]`.
    pub device: String,
    /// Opens the engine without data boundaries and audit log: the
    /// baseline of the governance benchmark, settable from Rust only
    /// (never from a configuration file or the command line).
    #[serde(skip)]
    pub ungoverned: bool,
    /// Bytes the merge of a `SYNC … KEY` run may hold in memory before its
    /// sorts and join spill to disk; `None`: a quarter of the machine's
    /// memory (`--merge-memory`).
    #[serde(skip)]
    pub merge_memory: Option<u64>,
    /// Opens the engine without metrics and query history (the audit log
    /// still records), to measure what observing costs; settable from
    /// Rust only.
    #[serde(skip)]
    pub unobserved: bool,
    /// Days `system.queries` keeps (`autolake.query_history_days`;
    /// `None`: 30). Older rows go at `VACUUM system.queries`, which
    /// `autolake serve` runs hourly.
    pub query_history_days: Option<u32>,
    /// The Ballista scheduler sessions run their queries on
    /// (`df://host:port`; `--cluster`, `AUTOLAKE_CLUSTER`); `None`: here.
    pub cluster: Option<String>,
}

/// The machine's memory in bytes, from `/proc/meminfo` (4 GiB where it
/// cannot be read).
pub(crate) fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(4 << 30)
}

impl EngineConfig {
    /// A configuration for the lake at `uri`, with defaults otherwise.
    pub fn for_lake(uri: impl Into<String>) -> Self {
        Self {
            lake: uri.into(),
            device: "auto".to_string(),
            ..Self::default()
        }
    }
}

/// A lake opened for work: shared by every session of a process.
#[derive(Debug)]
pub struct Engine {
    pub(crate) lake: Arc<Lake>,
    pub(crate) config: EngineConfig,
    pub(crate) governance: Arc<Governance>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) devices: Arc<crate::devices::Devices>,
    pub(crate) system: Arc<SystemSchema>,
    pub(crate) files: Arc<FileCache>,
    pub(crate) models: Arc<ModelRegistry>,
    pub(crate) sources: Arc<Sources>,
    pub(crate) jobs: Arc<Jobs>,
    pub(crate) pipelines: Arc<crate::pipelines::Pipelines>,
    /// Runs jobs through the funnel: the layer above the sessions.
    pub(crate) runner: Arc<dyn JobRunner>,
}

impl Engine {
    /// Decoded scans of lake tables kept in memory (off unless a budget
    /// is set, as `autolake serve` does).
    pub fn scan_cache(&self) -> &crate::lake::cache::DataCache {
        self.files.data()
    }

    /// The lake's jobs.
    pub fn jobs(&self) -> &Arc<Jobs> {
        &self.jobs
    }

    /// The lake's templates and pipelines.
    pub fn pipelines(&self) -> &Arc<crate::pipelines::Pipelines> {
        &self.pipelines
    }

    /// The process's metrics (`GET /metrics`).
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The metrics, unless the engine was opened unobserved.
    pub(crate) fn observed_metrics(&self) -> Option<&crate::metrics::Metrics> {
        (!self.config.unobserved).then_some(self.metrics.as_ref())
    }

    /// The machine's compute devices and how busy they are.
    pub fn devices(&self) -> &Arc<crate::devices::Devices> {
        &self.devices
    }

    /// The lake.
    pub fn lake(&self) -> &Arc<Lake> {
        &self.lake
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The model registry.
    pub fn models(&self) -> &Arc<ModelRegistry> {
        &self.models
    }

    /// The lake's sources.
    pub fn sources(&self) -> &Arc<Sources> {
        &self.sources
    }

    /// Users' roles, grants, owners, policies and masks.
    pub fn governance(&self) -> &Arc<Governance> {
        &self.governance
    }

    /// The audit log.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    /// Runs the job `name` now (what started it: `trigger`) and returns
    /// what the run did.
    pub async fn run_job(self: &Arc<Self>, name: &str, trigger: Trigger) -> Result<RunRecord> {
        Arc::clone(&self.runner)
            .run(Arc::clone(self), name.to_string(), trigger)
            .await
    }

    /// Commits what is still buffered (the audit log): call before the
    /// process exits.
    pub async fn close(&self) -> Result<()> {
        self.audit.close().await
    }
}

/// Runs a job through the funnel, as its owner.
pub(crate) trait JobRunner: std::fmt::Debug + Send + Sync {
    /// Runs the job `name` of `engine` once.
    fn run(
        self: Arc<Self>,
        engine: Arc<Engine>,
        name: String,
        trigger: Trigger,
    ) -> BoxFuture<'static, Result<RunRecord>>;
}

/// What a statement runs with: the engine's stores, the DataFusion
/// state of its session, who runs it, through which interface, and the
/// job run it belongs to. Statement handlers take this, never the
/// session, so nothing below the funnel can re-enter it.
pub(crate) struct StatementContext {
    pub(crate) engine: Arc<Engine>,
    pub(crate) principal: Principal,
    pub(crate) interface: Interface,
    pub(crate) ctx: SessionContext,
    pub(crate) catalog: Arc<LakeCatalog>,
    pub(crate) time_travel: Arc<MemorySchemaProvider>,
    /// The job run this session executes, if any.
    pub(crate) job: Option<Arc<JobRun>>,
    /// What the statement running now reads (`system.queries`).
    pub(crate) probe: Arc<crate::history::Probe>,
}

impl StatementContext {
    /// The stamp of a commit made for a statement of `kind`.
    pub(crate) fn stamp(&self, kind: &str) -> CommitStamp {
        let stamp = CommitStamp::new(&self.principal, kind, self.interface);
        match &self.job {
            Some(run) => run.stamp(stamp),
            None => stamp,
        }
    }
}

/// The output of one statement: a stream of record batches.
pub struct StatementResult {
    /// The statement's kind (`SELECT`, `INSERT`, …).
    pub kind: &'static str,
    /// Whether the statement returns rows a user asked for (queries,
    /// SHOW/DESCRIBE, maintenance reports) rather than a status.
    pub returns_rows: bool,
    pub(crate) stream: SendableRecordBatchStream,
}

impl StatementResult {
    pub(crate) fn stream(kind: &'static str, stream: SendableRecordBatchStream) -> Self {
        Self {
            kind,
            returns_rows: true,
            stream,
        }
    }

    pub(crate) fn batches(
        kind: &'static str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Self {
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        Self::stream(
            kind,
            Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
        )
    }

    pub(crate) fn status(mut self) -> Self {
        self.returns_rows = false;
        self
    }

    /// The schema of the rows.
    pub fn schema(&self) -> SchemaRef {
        self.stream.schema()
    }

    /// The rows as a stream (a large result is never materialised).
    pub fn into_stream(self) -> SendableRecordBatchStream {
        self.stream
    }

    /// All rows, collected.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        Ok(self.stream.try_collect().await?)
    }
}

impl std::fmt::Debug for StatementResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementResult")
            .field("kind", &self.kind)
            .field("returns_rows", &self.returns_rows)
            .field("schema", &self.stream.schema())
            .finish()
    }
}
