//! Query history: `system.queries`, one row per statement of every
//! interface and process, with what its executed plan read.
//!
//! ```text
//! Session::execute_statement ─ probe.begin()            query_id, started
//!   planning ── RecordScans (last physical optimizer rule) keeps the plan's
//!               leaves and when the plan was finished
//!   execution ─ TrackingPool (the session's memory pool) keeps the peak
//!   result ends ─ probe.finish() ─► audit Entry { query_id, stats }
//!                 ─► AuditLog::record: the audit row, the metrics, and a
//!                    query row buffered beside the audit row
//!                 ─► committed after the audit log's batch (every 2 s,
//!                    before a read of either table, at close)
//! ```
//!
//! The figures come from the executed plan, as DataFusion's `EXPLAIN
//! ANALYZE` shows them: rows and bytes scanned are the leaves' `output_rows`
//! and Parquet `bytes_scanned`, files scanned the distinct files the leaves
//! were planned over, and peak memory the highest reservation the
//! session's memory pool held while the statement ran (sorts, joins,
//! aggregates and repartitions reserve there). Planning ends when the last
//! physical plan of the statement is optimized; execution is the rest.
//! A session plans its statements one after another, so a plan belongs to
//! the statement begun last; a statement's plans are kept until its result
//! ends, which over Flight SQL can be after the next statement began.
//! Statements run by delta-rs on the session (MERGE, UPDATE, DELETE) are
//! planned there too and count the same way.
//!
//! Storage and batching are the audit log's (see `governance::audit`): a
//! query row is committed to the Delta table `system.queries` right after
//! the audit rows of the same batch, appended without a chain (concurrent
//! processes append side by side). The audit log is the record that
//! survives a killed process (its journal); query rows still buffered when
//! a process is killed are lost, as are a profiler's samples.
//!
//! Users see their own rows; admin, auditor and holders of SELECT on the
//! schema `system` see every row: the data boundaries add the filter to
//! every scan of [`QueryHistoryTable`]. Rows older than
//! `query_history_days` (default 30) are deleted and their files vacuumed
//! by `VACUUM system.queries`, which `autolake serve` also runs hourly.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::TableType;
use datafusion::error::Result as DFResult;
use datafusion::execution::memory_pool::{
    MemoryLimit, MemoryPool, MemoryReservation, UnboundedMemoryPool,
};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_datasource::file_scan_config::FileScanConfig;
use datafusion_datasource::source::DataSourceExec;

use deltalake::protocol::SaveMode;

use crate::error::{Error, Result};
use crate::lake::write::{CommitStamp, write_error};
use crate::lake::{Lake, SYSTEM_SCHEMA, TableName};
use crate::principal::{Interface, Principal};

/// Days of query history kept unless configured.
pub const DEFAULT_HISTORY_DAYS: u32 = 30;

/// `system.queries`.
pub(crate) fn queries_table() -> TableName {
    TableName::new(SYSTEM_SCHEMA, "queries")
}

/// Columns of `system.queries`.
pub(crate) fn queries_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("query_id", DataType::Utf8, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("interface", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("statement", DataType::Utf8, false),
        Field::new("started_at", ts.clone(), false),
        Field::new("ended_at", ts, false),
        Field::new("planning_seconds", DataType::Float64, false),
        Field::new("execution_seconds", DataType::Float64, false),
        Field::new("rows", DataType::Int64, true),
        Field::new("rows_scanned", DataType::Int64, false),
        Field::new("bytes_scanned", DataType::Int64, false),
        Field::new("files_scanned", DataType::Int64, false),
        Field::new("peak_memory_bytes", DataType::Int64, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
    ]))
}

/// What a statement's executed plans read and held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanStats {
    /// Seconds from the start to the last optimized physical plan.
    pub planning_seconds: f64,
    /// Seconds from the start to the end of the result.
    pub elapsed_seconds: f64,
    /// Rows the plans' leaves produced.
    pub rows_scanned: u64,
    /// Bytes read from data files.
    pub bytes_scanned: u64,
    /// Distinct data files the scans were planned over.
    pub files_scanned: u64,
    /// The most memory the session's pool held while the statement ran.
    pub peak_memory_bytes: u64,
}

/// One row of `system.queries`.
#[derive(Debug, Clone)]
pub(crate) struct QueryRow {
    pub query_id: String,
    pub user: String,
    pub interface: String,
    pub kind: String,
    pub statement: String,
    pub started_us: i64,
    pub stats: ScanStats,
    pub rows: Option<i64>,
    pub outcome: String,
    pub error: Option<String>,
}

/// The rows as one batch of `system.queries`.
pub(crate) fn batch_of(rows: &[QueryRow]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&QueryRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let int = |f: &dyn Fn(&ScanStats) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter()
                .map(|r| i64::try_from(f(&r.stats)).unwrap_or(i64::MAX)),
        ))
    };
    let micros = |s: f64| (s.max(0.0) * 1e6).round() as i64;
    let columns: Vec<ArrayRef> = vec![
        text(&|r| &r.query_id),
        text(&|r| &r.user),
        text(&|r| &r.interface),
        text(&|r| &r.kind),
        text(&|r| &r.statement),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.started_us))
                .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                rows.iter()
                    .map(|r| r.started_us + micros(r.stats.elapsed_seconds)),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| to_micros(r.stats.planning_seconds)),
        )),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| {
            to_micros((r.stats.elapsed_seconds - r.stats.planning_seconds).max(0.0))
        }))),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.rows))),
        int(&|s| s.rows_scanned),
        int(&|s| s.bytes_scanned),
        int(&|s| s.files_scanned),
        int(&|s| s.peak_memory_bytes),
        text(&|r| &r.outcome),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.error.as_deref()),
        )),
    ];
    Ok(RecordBatch::try_new(queries_schema(), columns)?)
}

/// Appends `rows` to `system.queries` in one commit, creating the table
/// with its first rows.
pub(crate) async fn append(
    lake: &Lake,
    rows: &[QueryRow],
    cached: Option<deltalake::DeltaTable>,
) -> Result<deltalake::DeltaTable> {
    let name = queries_table();
    let batch = batch_of(rows)?;
    let stamp = CommitStamp::new(
        &Principal::local_admin(),
        "QUERY HISTORY",
        Interface::Embedded,
    );
    let mut last = None;
    // The table as this process last committed it: appends commit on top
    // of whatever others committed since (delta-rs retries blind appends),
    // so no log replay is needed; a failure loads it afresh.
    let mut cached = cached;
    for _ in 0..3 {
        let handle = match cached.take() {
            Some(t) => t,
            None => match lake.load_table(&name).await? {
                Some(t) => t,
                None => lake.table_handle(&name)?,
            },
        };
        let fresh = handle.version().is_none();
        let mut write = handle
            .write(vec![batch.clone()])
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(stamp.properties());
        if fresh {
            write = write.with_table_name("queries");
        }
        match write.await {
            Ok(table) => return Ok(table),
            // Another process created the table first: append to it.
            Err(e) => last = Some(write_error(&name, e)),
        }
    }
    Err(last.unwrap_or_else(|| Error::internal("system.queries could not be written")))
}

/// Seconds kept to the microsecond, as the timestamps are.
fn to_micros(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e6
}

/// How long files the history no longer references are kept, unless
/// `RETAIN n HOURS` says otherwise.
const HISTORY_FILES_KEPT_HOURS: f64 = 1.0;

/// What a retention pass removed (or would remove).
#[derive(Debug, Default)]
pub(crate) struct Retained {
    pub rows: u64,
    pub files: u64,
}

/// Deletes the rows of `system.queries` that started more than `days`
/// ago, then vacuums the files no longer referenced for more than an hour
/// (or `retain_hours`).
pub(crate) async fn retain(
    lake: &Lake,
    days: u32,
    retain_hours: Option<f64>,
    dry_run: bool,
    stamp: CommitStamp,
) -> Result<Retained> {
    use datafusion::prelude::{col, lit};
    let name = queries_table();
    let Some(table) = lake.load_table(&name).await? else {
        return Ok(Retained::default());
    };
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let old = col("started_at").lt(lit(datafusion::scalar::ScalarValue::TimestampMicrosecond(
        Some(cutoff.timestamp_micros()),
        Some("UTC".into()),
    )));
    if dry_run {
        let ctx = datafusion::prelude::SessionContext::new();
        let count = ctx
            .read_table(table.table_provider().await?)?
            .filter(old)?
            .count()
            .await?;
        return Ok(Retained {
            rows: count as u64,
            files: 0,
        });
    }
    let (table, deleted) = table
        .delete()
        .with_predicate(old)
        .with_commit_properties(stamp.properties())
        .await
        .map_err(|e| write_error(&name, e))?;
    // An hour by default: a file another process has written but not yet
    // committed is young, and must not be taken for an unreferenced one.
    let hours = retain_hours.unwrap_or(HISTORY_FILES_KEPT_HOURS);
    let (_, vacuumed) = table
        .vacuum()
        .with_retention_period(chrono::Duration::milliseconds((hours * 3_600_000.0) as i64))
        .with_enforce_retention_duration(false)
        .with_commit_properties(stamp.properties())
        .await
        .map_err(|e| write_error(&name, e))?;
    Ok(Retained {
        rows: deleted.num_deleted_rows.unwrap_or(0) as u64,
        files: vacuumed.files_deleted.len() as u64,
    })
}

/// A memory pool that keeps the peak of what it holds, over another pool.
#[derive(Debug)]
pub(crate) struct TrackingPool {
    inner: Arc<dyn MemoryPool>,
    held: AtomicUsize,
    peak: AtomicUsize,
}

impl TrackingPool {
    /// Tracking over an unbounded pool, as a session has by default.
    pub(crate) fn unbounded() -> Self {
        Self {
            inner: Arc::new(UnboundedMemoryPool::default()),
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    fn add(&self, bytes: usize) {
        let now = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Starts a new peak from what is held now.
    fn reset_peak(&self) {
        self.peak
            .store(self.held.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

impl fmt::Display for TrackingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tracking({})", self.inner)
    }
}

impl MemoryPool for TrackingPool {
    fn name(&self) -> &str {
        "tracking"
    }

    fn register(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.add(additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink);
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(shrink))
            });
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DFResult<()> {
        self.inner.try_grow(reservation, additional)?;
        self.add(additional);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

/// One statement's plans, as [`RecordScans`] found them.
#[derive(Debug)]
struct Current {
    started: Instant,
    planned: Option<Instant>,
    leaves: Vec<Arc<dyn ExecutionPlan>>,
}

/// Statements a session keeps plans for at most: one whose result is
/// never read nor dropped cannot hold plans forever.
const RUNNING_AT_MOST: usize = 64;

/// A session's probe: the plans of the session's statements still running
/// (a result streamed to a client outlives the next statement's start),
/// and the session's pool.
#[derive(Debug)]
pub(crate) struct Probe {
    running: Mutex<Vec<Current>>,
    pool: Arc<TrackingPool>,
    /// How far the running statement has got (shown by the CLI).
    pub(crate) progress: Arc<crate::progress::Progress>,
}

impl Probe {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::new(Vec::new()),
            pool: Arc::new(TrackingPool::unbounded()),
            progress: Arc::default(),
        })
    }

    /// The session's memory pool.
    pub(crate) fn pool(&self) -> Arc<dyn MemoryPool> {
        Arc::clone(&self.pool) as _
    }

    /// A statement starts at `started`; the plans made from now on are its
    /// own (statements of one session are planned one after another).
    pub(crate) fn begin(&self, started: Instant) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.is_empty() {
            self.pool.reset_peak();
        }
        if running.len() >= RUNNING_AT_MOST {
            running.remove(0);
        }
        running.push(Current {
            started,
            planned: None,
            leaves: Vec::new(),
        });
    }

    fn planned(&self, plan: &Arc<dyn ExecutionPlan>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let Some(current) = running.last_mut() else {
            return;
        };
        current.planned = Some(Instant::now());
        let _ = plan.apply(|node| {
            if node.children().is_empty() && !current.leaves.iter().any(|l| Arc::ptr_eq(l, node)) {
                current.leaves.push(Arc::clone(node));
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }

    /// The statement that began at `started` has ended: what it read.
    pub(crate) fn finish(&self, started: Instant) -> ScanStats {
        let elapsed_seconds = started.elapsed().as_secs_f64();
        let peak_memory_bytes = self.pool.peak() as u64;
        let current = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running
                .iter()
                .position(|c| c.started == started)
                .map(|i| running.remove(i))
        };
        let mut stats = ScanStats {
            elapsed_seconds,
            peak_memory_bytes,
            ..ScanStats::default()
        };
        let Some(current) = current else {
            return stats;
        };
        stats.planning_seconds = current
            .planned
            .map_or(0.0, |p| p.duration_since(started).as_secs_f64())
            .min(elapsed_seconds);
        let mut files = BTreeSet::new();
        for leaf in &current.leaves {
            if let Some(metrics) = leaf.metrics() {
                stats.rows_scanned += metrics.output_rows().unwrap_or(0) as u64;
                stats.bytes_scanned += metrics
                    .sum_by_name("bytes_scanned")
                    .map_or(0, |m| m.as_usize() as u64);
            }
            if let Some(scan) = leaf.downcast_ref::<DataSourceExec>()
                && let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>()
            {
                for group in &config.file_groups {
                    for file in group.files() {
                        files.insert(file.object_meta.location.to_string());
                    }
                }
            }
        }
        stats.files_scanned = files.len() as u64;
        stats
    }
}

/// The last physical optimizer rule of a session: notes each optimized
/// plan's leaves (the scans) for the statement running now, and counts
/// the plan's rows while a progress display watches (see
/// [`crate::progress`]).
#[derive(Debug)]
pub(crate) struct RecordScans(pub(crate) Arc<Probe>);

impl PhysicalOptimizerRule for RecordScans {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.0.planned(&plan);
        Ok(self.0.progress.instrument(plan))
    }

    fn name(&self) -> &str {
        "autolake_record_scans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `system.queries` as read: the stored table, which the data boundaries
/// narrow to the reader's own rows unless the reader may see all.
#[derive(Debug)]
pub(crate) struct QueryHistoryTable(pub(crate) Arc<dyn TableProvider>);

#[async_trait]
impl TableProvider for QueryHistoryTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::MemoryConsumer;

    #[test]
    fn the_pool_keeps_the_peak_of_what_it_held() {
        let pool: Arc<TrackingPool> = Arc::new(TrackingPool::unbounded());
        let as_pool: Arc<dyn MemoryPool> = Arc::clone(&pool) as _;
        let mut a = MemoryConsumer::new("a").register(&as_pool);
        a.grow(1000);
        a.try_grow(500).unwrap();
        a.shrink(1200);
        assert_eq!(pool.peak(), 1500);
        pool.reset_peak();
        assert_eq!(pool.peak(), 300);
        a.free();
        let b = MemoryConsumer::new("b").register(&as_pool);
        b.grow(100);
        assert_eq!(pool.peak(), 300);
        drop(b);
        assert_eq!(pool.held.load(Ordering::Relaxed), 0);
        let _ = &mut a;
    }
}
