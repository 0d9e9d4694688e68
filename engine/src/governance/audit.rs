//! The audit log: every statement from every interface — succeeded, failed
//! or denied — as one row of the Delta table `system.audit_log`
//! (`<lake>/tables/system/audit_log`), hash-chained.
//!
//! Each entry's `hash` is SHA-256 over the previous entry's hash and the
//! entry's own fields (sequence number included), so altering a row,
//! removing one or reordering them breaks the chain; the last entry's
//! sequence number and hash are also kept at `<lake>/governance/audit_head`
//! so cutting entries off the end is seen too. `VERIFY AUDIT LOG` walks the
//! chain.
//!
//! Writes are batched off the statement path (as InfluxDB 3 batches its
//! write-ahead log): a statement pushes its entry into an in-memory buffer
//! and returns; a background task commits the buffer every
//! [`FLUSH_INTERVAL`] as one Delta commit, as does anything that reads the
//! log, and the engine when it closes. The chain spans processes: a commit
//! is made only on top of the version its head was read from (no
//! automatic rebase), and a process that loses that race rereads the head
//! and rechains its entries.
//!
//! Nothing recorded is lost to a crash. Before a statement returns, its
//! entry is also appended to the process's journal, a local file of JSON
//! lines (`<lake>/governance/audit_journal/` for a lake on the local file
//! system; under the system's temporary folder, per lake, otherwise),
//! locked by the process while it lives. Each audit commit carries, as a
//! Delta application transaction `(autolake.audit:<journal>, lines)`, how
//! many of each journal's lines it holds, in the same commit. Whoever opens
//! the lake next, or a running process every few seconds, takes the journals
//! no live process holds, appends the lines their transactions do not yet
//! cover and deletes them: a process killed with entries still buffered
//! loses none of them and duplicates none. (The journal is written without
//! `fsync`: it survives the process, not the machine.) A journal is rotated
//! after [`JOURNAL_LINES`] lines, once committed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use deltalake::protocol::SaveMode;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::hex;
use crate::error::{Error, Result};
use crate::lake::ledger;
use crate::lake::write::CommitStamp;
use crate::lake::{Lake, SYSTEM_SCHEMA, TableName};
use crate::principal::{Interface, Principal};

/// How often buffered entries are committed.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Lines after which a journal is rotated (once they are committed).
pub const JOURNAL_LINES: i64 = 10_000;

/// How often the flusher also takes over the journals of dead processes.
const RECOVER_EVERY: u32 = 20;

/// Flusher rounds between commits of `system.queries` (every 2 s): query
/// rows are statistics, not evidence, so they are committed less often
/// than the audit log — a commit per half second cost a busy process
/// about a tenth of a millisecond per statement. A read of the table, a
/// close, or [`QUERY_ROWS_AT_MOST`] rows waiting commit them at once.
const QUERIES_EVERY: u32 = 4;

/// Query rows waiting that are committed at the next round whatever.
const QUERY_ROWS_AT_MOST: usize = 5_000;

/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `system.audit_log`.
pub(crate) fn audit_table() -> TableName {
    TableName::new(SYSTEM_SCHEMA, "audit_log")
}

/// Columns of `system.audit_log`.
pub(crate) fn audit_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("time", ts, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("roles", DataType::Utf8, false),
        Field::new("interface", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("statement", DataType::Utf8, false),
        Field::new("objects", DataType::Utf8, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, true),
        Field::new("duration_ms", DataType::Int64, false),
        Field::new("prev_hash", DataType::Utf8, false),
        Field::new("hash", DataType::Utf8, false),
        // Added after the first release: last, so older logs gain it as
        // a new column.
        Field::new("query_id", DataType::Utf8, true),
    ]))
}

/// How a statement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It ran.
    Success,
    /// It failed.
    Failure,
    /// A privilege was missing; nothing ran.
    Denied,
}

impl Outcome {
    fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    /// The outcome of a statement that ended with `result`.
    pub fn of<T>(result: &Result<T>) -> Self {
        match result {
            Ok(_) => Outcome::Success,
            Err(Error::PermissionDenied(_) | Error::ReadOnly(_)) => Outcome::Denied,
            Err(_) => Outcome::Failure,
        }
    }
}

/// One statement, before it is chained.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When it started.
    pub time: DateTime<Utc>,
    /// Who.
    pub user: String,
    /// With which roles.
    pub roles: Vec<String>,
    /// Through which interface.
    pub interface: Interface,
    /// The statement kind.
    pub kind: String,
    /// The text, secrets redacted.
    pub statement: String,
    /// The objects it touched (`table sales.orders`, …).
    pub objects: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, when it failed or was denied.
    pub error: Option<String>,
    /// Rows returned or written, when known.
    pub rows: Option<i64>,
    /// Milliseconds it took.
    pub duration_ms: i64,
    /// The statement's id, also in `system.queries` and the logs.
    pub query_id: String,
    /// What its plans read (a statement's entry; `None` for a sign-in).
    pub stats: Option<crate::history::ScanStats>,
}

impl Entry {
    /// An entry for `principal` (roles as held now).
    pub fn new(principal: &Principal, roles: Vec<String>, interface: Interface) -> Self {
        Self {
            time: Utc::now(),
            user: principal.name.clone(),
            roles,
            interface,
            kind: String::new(),
            statement: String::new(),
            objects: Vec::new(),
            outcome: Outcome::Success,
            error: None,
            rows: None,
            duration_ms: 0,
            query_id: uuid::Uuid::new_v4().to_string(),
            stats: None,
        }
    }
}

/// A chained row, as stored (and, unchained with `seq` 0, as journaled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    seq: i64,
    time_us: i64,
    user: String,
    roles: String,
    interface: String,
    kind: String,
    statement: String,
    objects: String,
    outcome: String,
    error: Option<String>,
    rows: Option<i64>,
    duration_ms: i64,
    /// Absent from entries written before query ids were recorded, and
    /// then left out of the hash, so their chain still verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query_id: Option<String>,
}

impl Row {
    /// The row of `e`, before it is given its place in the chain.
    fn unchained(e: &Entry) -> Self {
        Row {
            seq: 0,
            time_us: e.time.timestamp_micros(),
            user: e.user.clone(),
            roles: e.roles.join(","),
            interface: e.interface.as_str().to_string(),
            kind: e.kind.clone(),
            statement: e.statement.clone(),
            objects: e.objects.join(", "),
            outcome: e.outcome.as_str().to_string(),
            error: e.error.clone(),
            rows: e.rows,
            duration_ms: e.duration_ms,
            query_id: Some(e.query_id.clone()),
        }
    }

    fn hash(&self, prev: &str) -> String {
        let mut h = Sha256::new();
        h.update(prev.as_bytes());
        h.update(b"\n");
        // serde_json of a struct is deterministic: fields in order.
        h.update(serde_json::to_vec(self).unwrap_or_default());
        hex(&h.finalize())
    }
}

/// The last chained entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Head {
    seq: i64,
    hash: String,
}

impl Head {
    fn genesis() -> Self {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

/// The head as stored beside the log, with the Delta version that ends
/// with it (so a writer rarely needs to read the log to chain on).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredHead {
    #[serde(flatten)]
    head: Head,
    version: i64,
}

/// One process's journal file, locked while the process lives.
#[derive(Debug)]
struct Journal {
    id: Arc<str>,
    path: PathBuf,
    file: std::fs::File,
    lines: i64,
}

impl Journal {
    /// A new journal in `dir`: made under a temporary name, locked, then
    /// renamed, so no other process ever sees it unlocked.
    fn create(dir: &std::path::Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let id: Arc<str> =
            format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()).into();
        let making = dir.join(format!(".{id}.tmp"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&making)?;
        file.try_lock().map_err(std::io::Error::other)?;
        let path = dir.join(format!("{id}.jsonl"));
        std::fs::rename(&making, &path)?;
        Ok(Self {
            id,
            path,
            file,
            lines: 0,
        })
    }

    /// Appends one line; returns its number (from 0).
    fn append(&mut self, row: &Row) -> std::io::Result<i64> {
        let mut line = serde_json::to_vec(row).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write: a killed process leaves whole lines.
        self.file.write_all(&line)?;
        self.lines += 1;
        Ok(self.lines - 1)
    }

    /// Unlocks and deletes the file (every line is committed).
    fn remove(self) {
        let Journal { path, file, .. } = self;
        drop(file);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("audit journal {} not removed: {e}", path.display());
        }
    }
}

/// A buffered row and where it is journaled (journal id, line number).
#[derive(Debug)]
struct Buffered {
    row: Row,
    journaled: Option<(Arc<str>, i64)>,
}

/// What is recorded but not committed yet.
#[derive(Debug, Default)]
struct Buffer {
    rows: Vec<Buffered>,
    journal: Option<Journal>,
    /// Rotated out; deleted with the next successful commit, which holds
    /// all their lines still buffered.
    retired: Vec<Journal>,
    /// Set when journaling failed, so the warning is given once.
    journal_failed: bool,
    /// `system.queries` rows, committed after the audit rows.
    queries: Vec<crate::history::QueryRow>,
}

/// The audit log of one lake, with its write buffer.
#[derive(Debug)]
pub struct AuditLog {
    lake: Arc<Lake>,
    /// Off only for the governance benchmark's baseline.
    enabled: bool,
    /// Every entry is also a statement counted here, recorded or not.
    metrics: Arc<crate::metrics::Metrics>,
    /// Off to measure what observing costs: no metrics and no query
    /// history (the audit log itself still records).
    observed: bool,
    /// Where journals live; `None` for in-memory lakes (nothing outlives
    /// the process there) and when disabled.
    journal_dir: Option<PathBuf>,
    pending: Mutex<Buffer>,
    /// Held while query rows are appended, so they go in order; the
    /// table as the last append left it.
    committing_queries: tokio::sync::Mutex<Option<deltalake::DeltaTable>>,
    /// Held while committing, so one process chains in order.
    flushing: tokio::sync::Mutex<Option<Chained>>,
}

/// What this process's last audit commit left: the head it wrote and the
/// table as of that commit, so the next commit needs no reload of the
/// table (a log replay) unless another process committed in between.
#[derive(Debug)]
struct Chained {
    head: Head,
    table: deltalake::DeltaTable,
}

impl AuditLog {
    /// The audit log of `lake` (recording nothing when not `enabled`).
    pub fn new(
        lake: Arc<Lake>,
        enabled: bool,
        observed: bool,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        let root = lake.root_url();
        let journal_dir = match root.scheme() {
            _ if !enabled => None,
            "memory" => None,
            "file" => root
                .to_file_path()
                .ok()
                .map(|p| p.join("governance").join("audit_journal")),
            _ => Some(
                std::env::temp_dir()
                    .join("autolake-audit-journal")
                    .join(&hex(&Sha256::digest(root.as_str().as_bytes()))[..16]),
            ),
        };
        Arc::new(Self {
            lake,
            enabled,
            observed,
            metrics,
            journal_dir,
            pending: Mutex::default(),
            committing_queries: tokio::sync::Mutex::new(None),
            flushing: tokio::sync::Mutex::new(None),
        })
    }

    /// Starts the task that takes over dead processes' journals and then
    /// commits buffered entries every [`FLUSH_INTERVAL`]; it ends when the
    /// log is dropped.
    pub fn start_flusher(self: &Arc<Self>) {
        if !self.enabled {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = 0u32;
            loop {
                let Some(log) = weak.upgrade() else { break };
                if tick.is_multiple_of(RECOVER_EVERY)
                    && let Err(e) = log.recover().await
                {
                    tracing::warn!("audit journals of ended processes not taken over yet: {e}");
                }
                if let Err(e) = log.flush_entries().await {
                    tracing::warn!("audit log commit failed (entries kept for the next try): {e}");
                } else if (tick.is_multiple_of(QUERIES_EVERY)
                    || log.queries_waiting() >= QUERY_ROWS_AT_MOST)
                    && let Err(e) = log.flush_queries().await
                {
                    tracing::warn!("query history commit failed (rows kept for the next try): {e}");
                }
                drop(log);
                tick = tick.wrapping_add(1);
                tokio::time::sleep(FLUSH_INTERVAL).await;
            }
        });
    }

    /// Buffers one entry (and journals it); it is committed within
    /// [`FLUSH_INTERVAL`].
    pub fn record(&self, entry: Entry) {
        let seconds = entry
            .stats
            .as_ref()
            .map_or(entry.duration_ms as f64 / 1000.0, |s| s.elapsed_seconds);
        if self.observed {
            self.metrics.statement(
                entry.interface.as_str(),
                &entry.kind,
                entry.outcome.as_str(),
                seconds,
                entry.rows,
                entry.stats.as_ref(),
            );
        }
        if !self.enabled {
            return;
        }
        let row = Row::unchained(&entry);
        let query = match &entry.stats {
            Some(stats) if self.observed => Some(crate::history::QueryRow {
                query_id: entry.query_id,
                user: entry.user,
                interface: row.interface.clone(),
                kind: entry.kind,
                statement: entry.statement,
                started_us: row.time_us,
                stats: stats.clone(),
                rows: entry.rows,
                outcome: row.outcome.clone(),
                error: entry.error,
            }),
            _ => None,
        };
        let mut buffer = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let journaled = self.journal(&mut buffer, &row);
        buffer.rows.push(Buffered { row, journaled });
        buffer.queries.extend(query);
    }

    fn journal(&self, buffer: &mut Buffer, row: &Row) -> Option<(Arc<str>, i64)> {
        let dir = self.journal_dir.as_ref()?;
        let appended = match buffer.journal.take() {
            Some(journal) => Ok(journal),
            None => Journal::create(dir),
        }
        .and_then(|mut journal| match journal.append(row) {
            Ok(line) => {
                let id = Arc::clone(&journal.id);
                buffer.journal = Some(journal);
                Ok((id, line))
            }
            Err(e) => {
                // Possibly torn: written no further, kept (locked) until
                // what it holds is committed.
                buffer.retired.push(journal);
                Err(e)
            }
        });
        match appended {
            Ok(at) => {
                buffer.journal_failed = false;
                Some(at)
            }
            Err(e) => {
                if !buffer.journal_failed {
                    tracing::warn!(
                        "the audit journal in {} cannot be written ({e}): entries are kept in memory only until committed",
                        dir.display()
                    );
                }
                buffer.journal_failed = true;
                None
            }
        }
    }

    fn head_path(&self) -> object_store::path::Path {
        self.lake.path("governance").join("audit_head.json")
    }

    async fn stored_head(&self) -> Result<Option<StoredHead>> {
        match self.lake.store().get(&self.head_path()).await {
            Ok(found) => {
                let bytes = found.bytes().await?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| Error::internal(format!("the audit log head is unreadable: {e}")))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Commits every buffered entry, after taking over the journals of
    /// processes that ended: what reads the log calls this first.
    pub async fn flush(&self) -> Result<()> {
        self.recover().await?;
        self.flush_buffered().await
    }

    /// Commits and deletes the journal: call when the process ends.
    pub async fn close(&self) -> Result<()> {
        self.flush().await?;
        let _chained = self.flushing.lock().await;
        let mut buffer = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.rows.is_empty()
            && let Some(journal) = buffer.journal.take()
        {
            journal.remove();
        }
        Ok(())
    }

    /// Commits every buffered entry, chained, as one Delta commit, then
    /// the query rows recorded with them.
    async fn flush_buffered(&self) -> Result<()> {
        self.flush_entries().await?;
        self.flush_queries().await
    }

    /// Query rows waiting for their commit.
    fn queries_waiting(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queries
            .len()
    }

    /// Appends the buffered `system.queries` rows (no chain: processes
    /// append side by side, with delta-rs's retries).
    async fn flush_queries(&self) -> Result<()> {
        let mut table = self.committing_queries.lock().await;
        let rows = {
            let mut buffer = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut buffer.queries)
        };
        if rows.is_empty() {
            return Ok(());
        }
        match crate::history::append(&self.lake, &rows, table.take()).await {
            Ok(committed) => {
                *table = Some(committed);
                Ok(())
            }
            Err(e) => {
                let mut buffer = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                let later = std::mem::take(&mut buffer.queries);
                buffer.queries = rows;
                buffer.queries.extend(later);
                Err(e)
            }
        }
    }

    async fn flush_entries(&self) -> Result<()> {
        let mut chained = self.flushing.lock().await;
        let buffered = {
            let mut buffer = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if buffer.rows.is_empty() {
                return Ok(());
            }
            if buffer
                .journal
                .as_ref()
                .is_some_and(|j| j.lines >= JOURNAL_LINES)
                && let Some(full) = buffer.journal.take()
            {
                buffer.retired.push(full);
            }
            std::mem::take(&mut buffer.rows)
        };
        let mut covered: BTreeMap<&str, i64> = BTreeMap::new();
        for (id, line) in buffered.iter().filter_map(|b| b.journaled.as_ref()) {
            let lines = covered.entry(id).or_default();
            *lines = (*lines).max(line + 1);
        }
        let transactions: Vec<(String, i64)> = covered
            .into_iter()
            .map(|(id, lines)| (ledger::journal_app(id), lines))
            .collect();
        let rows: Vec<Row> = buffered.iter().map(|b| b.row.clone()).collect();
        let result = self.commit(&mut chained, &rows, &transactions).await;
        let mut buffer = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(()) => {
                for journal in std::mem::take(&mut buffer.retired) {
                    journal.remove();
                }
            }
            Err(_) => {
                // Keep them, in order, ahead of anything buffered since.
                let later = std::mem::take(&mut buffer.rows);
                buffer.rows = buffered;
                buffer.rows.extend(later);
            }
        }
        result
    }

    /// Takes over the journals no live process holds: appends the lines
    /// their transactions do not cover yet, then deletes them.
    pub async fn recover(&self) -> Result<()> {
        let Some(dir) = &self.journal_dir else {
            return Ok(());
        };
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut chained = self.flushing.lock().await;
        for found in listing {
            let path = found?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jsonl"))
                .map(str::to_string)
            else {
                continue;
            };
            // Gone already (taken over by another process), or held by a
            // live one (this one included).
            let Ok(mut file) = std::fs::OpenOptions::new().read(true).open(&path) else {
                continue;
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
            }
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            let mut rows = Vec::new();
            // Only whole lines: the process may have died writing the last.
            for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
                match serde_json::from_str::<Row>(line) {
                    Ok(row) => rows.push(row),
                    Err(e) => {
                        tracing::warn!(
                            "audit journal {} line {}: {e}; the lines after it are not taken",
                            path.display(),
                            rows.len() + 1
                        );
                        break;
                    }
                }
            }
            let app = ledger::journal_app(&id);
            let table = self.lake.load_table(&audit_table()).await?;
            let committed = ledger::committed_or_zero(table.as_ref(), &app).await?;
            let total = rows.len() as i64;
            if committed < total {
                let rest = &rows[committed.max(0) as usize..];
                self.commit(&mut chained, rest, &[(app, total)]).await?;
                tracing::info!(
                    "audit log: {} entries of an ended process taken over from its journal",
                    rest.len()
                );
            }
            drop(file);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(e.into());
            }
        }
        Ok(())
    }

    async fn commit(
        &self,
        chained: &mut Option<Chained>,
        rows: &[Row],
        transactions: &[(String, i64)],
    ) -> Result<()> {
        let name = audit_table();
        let mut last_error = None;
        for _ in 0..20 {
            // On top of this process's own last commit, as that commit
            // left the table, unless another process has committed since
            // (its commit file is there): then the table is loaded again.
            // A commit made between this look and the write still fails
            // (no rebase) and is retried the same way.
            let latest = match chained.take() {
                Some(last) if !Self::committed_after(&last.table).await? => Some(last),
                _ => None,
            };
            let (handle, head) = match latest {
                Some(last) => (last.table, last.head),
                None => {
                    let handle = match self.lake.load_table(&name).await? {
                        Some(t) => t,
                        None => self.lake.table_handle(&name)?,
                    };
                    let version = handle.version().map_or(-1, |v| v as i64);
                    let head = match self.stored_head().await? {
                        Some(stored) if stored.version == version => stored.head,
                        _ => self.read_head(&name, version).await?,
                    };
                    (handle, head)
                }
            };
            let version = handle.version().map_or(-1, |v| v as i64);
            let (batch, new_head) = chain(&head, rows)?;
            let stamp = transactions.iter().fold(
                CommitStamp::new(&Principal::local_admin(), "AUDIT", Interface::Embedded),
                |stamp, (app, lines)| stamp.with_transaction(app.clone(), *lines),
            );
            let mut write = handle
                .write(vec![batch])
                .with_save_mode(SaveMode::Append)
                // A log written before `query_id` existed gains the column.
                .with_schema_mode(deltalake::operations::write::SchemaMode::Merge)
                // Never rebased onto a commit we did not chain after.
                .with_commit_properties(stamp.properties().with_max_retries(0));
            if version < 0 {
                write = write.with_table_name("audit_log");
            }
            match write.await {
                Ok(table) => {
                    let version = table.version().map_or(0, |v| v as i64);
                    let stored = StoredHead {
                        head: new_head.clone(),
                        version,
                    };
                    let body = serde_json::to_vec(&stored)
                        .map_err(|e| Error::invalid(format!("audit head: {e}")))?;
                    self.lake
                        .store()
                        .put(&self.head_path(), PutPayload::from(body))
                        .await?;
                    *chained = Some(Chained {
                        head: new_head,
                        table,
                    });
                    return Ok(());
                }
                Err(e) => {
                    // Another process committed first: reread and rechain.
                    last_error = Some(e);
                }
            }
        }
        Err(Error::internal(format!(
            "the audit log could not be committed: {}",
            last_error.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// Whether a commit follows the version `table` is at.
    async fn committed_after(table: &deltalake::DeltaTable) -> Result<bool> {
        let Some(version) = table.version() else {
            return Ok(true);
        };
        let next = deltalake::logstore::commit_uri_from_version(Some(version + 1));
        match table.log_store().object_store(None).head(&next).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The last entry of the table at `version` (genesis when empty).
    async fn read_head(&self, name: &TableName, version: i64) -> Result<Head> {
        if version < 0 {
            return Ok(Head::genesis());
        }
        let rows = self.read_all(name).await?;
        Ok(rows
            .last()
            .map_or_else(Head::genesis, |(row, _, hash)| Head {
                seq: row.seq,
                hash: hash.clone(),
            }))
    }

    /// Every stored row in sequence order, with its stored hashes.
    async fn read_all(&self, name: &TableName) -> Result<Vec<(Row, String, String)>> {
        let Some(table) = self.lake.load_table(name).await? else {
            return Ok(Vec::new());
        };
        let ctx = SessionContext::new();
        ctx.register_table("audit", table.table_provider().await?)?;
        let batches = ctx
            .sql("SELECT * FROM audit ORDER BY seq")
            .await?
            .collect()
            .await?;
        let mut out = Vec::new();
        for batch in &batches {
            out.extend(rows_of(batch)?);
        }
        Ok(out)
    }

    /// Walks the chain: `(intact, entries, first bad seq, detail)`.
    pub async fn verify(&self) -> Result<(bool, i64, Option<i64>, String)> {
        self.flush().await?;
        let _guard = self.flushing.lock().await;
        // The head first: the rows read next are at least as new.
        let stored = self.stored_head().await?.map(|s| s.head);
        let rows = self.read_all(&audit_table()).await?;
        Ok(walk(&rows, stored.as_ref()))
    }
}

/// Walks a chain read back in sequence order: `(intact, entries, first bad
/// seq, detail)`. `stored` is the head recorded at the last commit.
fn walk(rows: &[(Row, String, String)], stored: Option<&Head>) -> (bool, i64, Option<i64>, String) {
    let count = rows.len() as i64;
    let mut prev = Head::genesis();
    for (row, prev_hash, hash) in rows {
        let expected_seq = prev.seq + 1;
        if row.seq != expected_seq {
            let what = if row.seq > expected_seq {
                format!("entries {expected_seq}..{} are missing", row.seq - 1)
            } else {
                format!("entry {} is out of order or repeated", row.seq)
            };
            return (false, count, Some(expected_seq.min(row.seq)), what);
        }
        if *prev_hash != prev.hash {
            return (
                false,
                count,
                Some(row.seq),
                format!("entry {} does not follow entry {}", row.seq, prev.seq),
            );
        }
        if row.hash(prev_hash) != *hash {
            return (
                false,
                count,
                Some(row.seq),
                format!("entry {} was altered", row.seq),
            );
        }
        prev = Head {
            seq: row.seq,
            hash: hash.clone(),
        };
    }
    // The head read before the rows: other processes may have appended
    // since, so the log must reach it and hold it unchanged.
    if let Some(stored) = stored {
        if stored.seq > prev.seq {
            return (
                false,
                count,
                Some(prev.seq + 1),
                format!(
                    "the log ends at entry {} but entry {} was written: entries were removed from the end",
                    prev.seq, stored.seq
                ),
            );
        }
        let at = rows
            .get((stored.seq - 1).max(0) as usize)
            .map_or(GENESIS, |(_, _, hash)| hash.as_str());
        if stored.seq > 0 && at != stored.hash {
            return (
                false,
                count,
                Some(stored.seq),
                format!(
                    "entry {} is not the one written: the log was rewritten",
                    stored.seq
                ),
            );
        }
    }
    (true, count, None, format!("{count} entries, chain intact"))
}

/// A statement's result stream that records its audit entry when it ends
/// (or is dropped unfinished), with the rows it produced and its duration.
pub(crate) struct AuditedStream {
    inner: datafusion::execution::SendableRecordBatchStream,
    log: Arc<AuditLog>,
    entry: Option<Entry>,
    started: std::time::Instant,
    rows: i64,
    /// A status result: the row count is the value of its `count` column.
    counts: bool,
    probe: Arc<crate::history::Probe>,
    /// The statement's span (its query_id), entered while polled.
    span: tracing::Span,
}

impl AuditedStream {
    pub(crate) fn new(
        inner: datafusion::execution::SendableRecordBatchStream,
        log: Arc<AuditLog>,
        entry: Entry,
        started: std::time::Instant,
        counts: bool,
        probe: Arc<crate::history::Probe>,
        span: tracing::Span,
    ) -> Self {
        Self {
            inner,
            log,
            entry: Some(entry),
            started,
            rows: 0,
            counts,
            probe,
            span,
        }
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some(mut entry) = self.entry.take() {
            entry.duration_ms = self.started.elapsed().as_millis() as i64;
            entry.stats = Some(self.probe.finish(self.started));
            entry.rows = Some(self.rows);
            if let Some(e) = error {
                entry.outcome = Outcome::Failure;
                entry.error = Some(e);
            }
            let _in = self.span.enter();
            tracing::info!(
                query_id = %entry.query_id,
                kind = %entry.kind,
                outcome = entry.outcome.as_str(),
                rows = self.rows,
                ms = entry.duration_ms,
                "statement ended"
            );
            self.log.record(entry);
        }
    }
}

impl futures::Stream for AuditedStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let span = self.span.clone();
        let _in = span.enter();
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => {
                let n = if self.counts {
                    batch
                        .column_by_name("count")
                        .and_then(|c| arrow::compute::cast(c, &DataType::Int64).ok())
                        .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned())
                        .map_or(0, |c| c.iter().flatten().sum())
                } else {
                    batch.num_rows() as i64
                };
                self.rows += n;
            }
            Poll::Ready(Some(Err(e))) => {
                let message = crate::error::clean_datafusion_message(e);
                self.finish(Some(message));
            }
            Poll::Ready(None) => self.finish(None),
            Poll::Pending => {}
        }
        polled
    }
}

impl datafusion::physical_plan::RecordBatchStream for AuditedStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Drop for AuditedStream {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// Chains `rows` after `head`: the batch to append and the new head.
fn chain(head: &Head, rows: &[Row]) -> Result<(RecordBatch, Head)> {
    let mut prev = head.clone();
    let mut chained = Vec::with_capacity(rows.len());
    for row in rows {
        let row = Row {
            seq: prev.seq + 1,
            ..row.clone()
        };
        let hash = row.hash(&prev.hash);
        let prev_hash = std::mem::replace(
            &mut prev,
            Head {
                seq: row.seq,
                hash: hash.clone(),
            },
        )
        .hash;
        chained.push((row, prev_hash, hash));
    }
    Ok((batch_of(&chained)?, prev))
}

fn batch_of(rows: &[(Row, String, String)]) -> Result<RecordBatch> {
    let strings = |f: &dyn Fn(&(Row, String, String)) -> &str| -> ArrayRef {
        let mut b = StringBuilder::new();
        for r in rows {
            b.append_value(f(r));
        }
        Arc::new(b.finish())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0.seq))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.0.time_us))
                .with_timezone("UTC"),
        ),
        strings(&|r| &r.0.user),
        strings(&|r| &r.0.roles),
        strings(&|r| &r.0.interface),
        strings(&|r| &r.0.kind),
        strings(&|r| &r.0.statement),
        strings(&|r| &r.0.objects),
        strings(&|r| &r.0.outcome),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.0.error.as_deref()),
        )),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0.rows))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.0.duration_ms),
        )),
        strings(&|r| &r.1),
        strings(&|r| &r.2),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.0.query_id.as_deref()),
        )),
    ];
    Ok(RecordBatch::try_new(audit_schema(), columns)?)
}

fn rows_of(batch: &RecordBatch) -> Result<Vec<(Row, String, String)>> {
    let col = |name: &str| -> Result<&ArrayRef> {
        batch
            .column_by_name(name)
            .ok_or_else(|| Error::invalid(format!("the audit log lacks column {name}")))
    };
    let strings = |name: &str| -> Result<StringArray> {
        let array = arrow::compute::cast(col(name)?, &DataType::Utf8)?;
        Ok(array
            .as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .unwrap_or_else(|| StringArray::from(Vec::<Option<&str>>::new())))
    };
    let ints = |name: &str| -> Result<Int64Array> {
        let array = arrow::compute::cast(col(name)?, &DataType::Int64)?;
        Ok(array
            .as_any()
            .downcast_ref::<Int64Array>()
            .cloned()
            .unwrap_or_else(|| Int64Array::from(Vec::<Option<i64>>::new())))
    };
    let seq = ints("seq")?;
    let time = ints("time")?;
    let [
        user,
        roles,
        interface,
        kind,
        statement,
        objects,
        outcome,
        error,
        prev,
        hash,
    ] = [
        "user",
        "roles",
        "interface",
        "kind",
        "statement",
        "objects",
        "outcome",
        "error",
        "prev_hash",
        "hash",
    ]
    .map(strings);
    let (user, roles, interface, kind, statement, objects, outcome, error, prev, hash) = (
        user?, roles?, interface?, kind?, statement?, objects?, outcome?, error?, prev?, hash?,
    );
    let rows_col = ints("rows")?;
    let duration = ints("duration_ms")?;
    let query_id = match batch.column_by_name("query_id") {
        Some(_) => Some(strings("query_id")?),
        None => None,
    };
    let n = batch.num_rows();
    if [seq.len(), time.len(), user.len(), hash.len()]
        .iter()
        .any(|l| *l != n)
    {
        return Err(Error::internal(
            "the audit log has columns of unexpected types",
        ));
    }
    let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    Ok((0..n)
        .map(|i| {
            (
                Row {
                    seq: seq.value(i),
                    time_us: time.value(i),
                    user: user.value(i).to_string(),
                    roles: roles.value(i).to_string(),
                    interface: interface.value(i).to_string(),
                    kind: kind.value(i).to_string(),
                    statement: statement.value(i).to_string(),
                    objects: objects.value(i).to_string(),
                    outcome: outcome.value(i).to_string(),
                    error: opt(&error, i),
                    rows: (!rows_col.is_null(i)).then(|| rows_col.value(i)),
                    duration_ms: duration.value(i),
                    query_id: query_id.as_ref().and_then(|q| opt(q, i)),
                },
                prev.value(i).to_string(),
                hash.value(i).to_string(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str) -> Row {
        let mut e = Entry::new(
            &Principal::local_admin(),
            vec!["admin".into()],
            Interface::Cli,
        );
        e.kind = kind.to_string();
        e.statement = format!("{kind} …");
        Row::unchained(&e)
    }

    #[test]
    fn chaining_links_every_entry_to_the_one_before() {
        let (batch, head) = chain(&Head::genesis(), &[entry("SELECT"), entry("INSERT")]).unwrap();
        let rows = rows_of(&batch).unwrap();
        assert_eq!(head.seq, 2);
        assert_eq!(rows[0].1, GENESIS);
        assert_eq!(rows[1].1, rows[0].2);
        assert_eq!(rows[1].2, head.hash);
        assert_eq!(rows[0].0.hash(GENESIS), rows[0].2);
        let mut altered = rows[0].0.clone();
        altered.user = "mallory".into();
        assert_ne!(altered.hash(GENESIS), rows[0].2);
    }

    #[test]
    fn walking_finds_altered_removed_reordered_and_cut_entries() {
        let entries: Vec<Row> = (0..5).map(|i| entry(&format!("S{i}"))).collect();
        let (batch, head) = chain(&Head::genesis(), &entries).unwrap();
        let rows = rows_of(&batch).unwrap();
        assert!(walk(&rows, Some(&head)).0);

        let mut altered = rows.clone();
        altered[2].0.statement = "DROP TABLE evidence".into();
        assert_eq!(walk(&altered, Some(&head)).2, Some(3));

        let mut removed = rows.clone();
        removed.remove(1);
        let (intact, _, bad, detail) = walk(&removed, Some(&head));
        assert!(!intact && bad == Some(2), "{detail}");

        let mut reordered = rows.clone();
        reordered.swap(1, 2);
        assert!(!walk(&reordered, Some(&head)).0);
        // Renumbered to hide the swap: the hashes no longer match.
        reordered[1].0.seq = 2;
        reordered[2].0.seq = 3;
        assert!(!walk(&reordered, Some(&head)).0);

        // A head older than the rows (another process appended since).
        let older = Head {
            seq: 3,
            hash: rows[2].2.clone(),
        };
        assert!(walk(&rows, Some(&older)).0);
        let wrong = Head {
            seq: 3,
            hash: rows[3].2.clone(),
        };
        assert!(walk(&rows, Some(&wrong)).3.contains("rewritten"));

        let cut = &rows[..4];
        let (intact, _, bad, detail) = walk(cut, Some(&head));
        assert!(!intact && bad == Some(5), "{detail}");
        assert!(detail.contains("removed from the end"), "{detail}");
    }
}
