//! What is known of a lake's data files: their statistics and, in a server,
//! their decoded contents.
//!
//! Delta data files are immutable — a write adds new files and the log
//! stops naming old ones — so anything derived from a set of files can be
//! kept under the files' paths without ever being invalidated: a table
//! that changes is a different set of files, a new key.
//!
//! - Statistics read from Parquet footers are kept per file for the life of
//!   the engine (bounded by entry count); every process uses them.
//! - Decoded scans ([`DataCache`]) are what a long-running server adds:
//!   the Arrow batches a full scan of a table (its files, the projected
//!   columns) produced, kept so that the next read of the same table is
//!   served from memory instead of decompressing and decoding the Parquet
//!   again. This is the part of serving a table that dominates once the
//!   network path copies nothing: a `pyarrow.flight` server holding a table
//!   in memory serves it at about twice the speed of any reader that
//!   decodes Parquet per request. The design follows the decoded-block
//!   caches of analytical servers (ClickHouse's uncompressed cache,
//!   Spark's cached tables) rather than InfluxDB 3's Parquet file cache,
//!   which saves the object-store fetch but not the decode.
//!
//! How the decoded cache is filled and used (see [`LakeScan`]):
//! - Only a scan with no filters and no limit fills it, through
//!   [`CacheFill`] over the Parquet scan. The wrapper passes no filter down
//!   (the default of `ExecutionPlan`), so nothing the physical optimizer
//!   adds later (dynamic filters of joins and top-k) can thin out what is
//!   kept. A scan whose every partition reached its end without an error is
//!   kept; one cancelled, failed, or larger than the budget is not, and
//!   what it had gathered is let go at once.
//! - Any later scan of the same files whose columns are a subset of a kept
//!   entry's is served from it (filters and limits are still applied above
//!   the scan, which reports them `Inexact`).
//! - The budget is bytes of Arrow buffers; the least recently used entries
//!   are dropped to make room. Budget 0 (the default, and what the CLI
//!   uses) turns the cache off; `autolake serve --scan-cache` sets it.
//! - `DROP TABLE` and `VACUUM` forget the entries under the table's folder,
//!   so removed data does not outlive its files in memory.
//!
//! [`LakeScan`]: super::scan::LakeScan

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::Statistics;
use datafusion::error::Result as DFResult;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::physical_plan::ExecutionPlan;
use futures::Stream;
use object_store::path::Path;

use super::pass::{PassThrough, Tap};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Statistics and decoded contents of immutable data files.
#[derive(Debug, Default)]
pub struct FileCache {
    statistics: Mutex<HashMap<(Path, String), Arc<Statistics>>>,
    data: DataCache,
}

impl FileCache {
    pub(crate) fn statistics(&self, key: &(Path, String)) -> Option<Arc<Statistics>> {
        lock(&self.statistics).get(key).cloned()
    }

    pub(crate) fn put_statistics(&self, key: (Path, String), stats: Arc<Statistics>) {
        let mut entries = lock(&self.statistics);
        // Bounded: a long-lived server must not grow without limit.
        if entries.len() > 100_000 {
            entries.clear();
        }
        entries.insert(key, stats);
    }

    /// The decoded scans.
    pub fn data(&self) -> &DataCache {
        &self.data
    }
}

/// Which scan an entry holds: the table folder, its files (in snapshot
/// order) and the file schema read with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ScanKey {
    pub root: Path,
    pub files: Arc<[Path]>,
    pub schema: String,
}

#[derive(Debug)]
struct Entry {
    /// Scan output columns held, ascending.
    columns: Vec<usize>,
    partitions: Arc<Vec<Vec<RecordBatch>>>,
    bytes: u64,
    last_used: u64,
}

#[derive(Debug, Default)]
struct DataState {
    entries: HashMap<ScanKey, Vec<Entry>>,
    used: u64,
    clock: u64,
}

/// Decoded scans of lake tables, least recently used out first.
#[derive(Debug, Default)]
pub struct DataCache {
    budget: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    state: Mutex<DataState>,
}

/// What the decoded cache holds and has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataCacheUsage {
    pub budget: u64,
    pub bytes: u64,
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
}

impl DataCache {
    /// Sets the budget in bytes (0 turns the cache off and empties it).
    pub fn set_budget(&self, bytes: u64) {
        self.budget.store(bytes, Ordering::Relaxed);
        let mut state = lock(&self.state);
        evict(&mut state, bytes, 0);
    }

    pub(crate) fn enabled(&self) -> bool {
        self.budget.load(Ordering::Relaxed) > 0
    }

    /// What the cache holds now.
    pub fn usage(&self) -> DataCacheUsage {
        let state = lock(&self.state);
        DataCacheUsage {
            budget: self.budget.load(Ordering::Relaxed),
            bytes: state.used,
            entries: state.entries.values().map(Vec::len).sum(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// The partitions of a kept scan of `key` holding every column of
    /// `columns` (ascending), projected to them.
    pub(crate) fn get(&self, key: &ScanKey, columns: &[usize]) -> Option<Vec<Vec<RecordBatch>>> {
        if !self.enabled() {
            return None;
        }
        let found = {
            let mut state = lock(&self.state);
            state.clock += 1;
            let clock = state.clock;
            state.entries.get_mut(key).and_then(|entries| {
                let entry = entries
                    .iter_mut()
                    .filter(|e| columns.iter().all(|c| e.columns.binary_search(c).is_ok()))
                    .min_by_key(|e| e.columns.len())?;
                entry.last_used = clock;
                Some((entry.columns.clone(), Arc::clone(&entry.partitions)))
            })
        };
        let Some((held, partitions)) = found else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        // Positions of the wanted columns among those held.
        let positions: Vec<usize> = columns
            .iter()
            .filter_map(|c| held.binary_search(c).ok())
            .collect();
        let projected = partitions
            .iter()
            .map(|batches| {
                batches
                    .iter()
                    .map(|b| {
                        if positions.len() == held.len() {
                            Ok(b.clone())
                        } else {
                            b.project(&positions)
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(projected)
    }

    fn put(
        &self,
        key: ScanKey,
        columns: Vec<usize>,
        partitions: Vec<Vec<RecordBatch>>,
        bytes: u64,
    ) {
        let budget = self.budget.load(Ordering::Relaxed);
        if bytes > budget {
            return;
        }
        let mut state = lock(&self.state);
        // Entries of the same scan with fewer columns are now redundant.
        let mut freed = 0;
        if let Some(entries) = state.entries.get_mut(&key) {
            entries.retain(|e| {
                let redundant = e.columns.iter().all(|c| columns.binary_search(c).is_ok());
                if redundant {
                    freed += e.bytes;
                }
                !redundant
            });
        }
        state.used -= freed;
        evict(&mut state, budget, bytes);
        state.clock += 1;
        let entry = Entry {
            columns,
            partitions: Arc::new(partitions),
            bytes,
            last_used: state.clock,
        };
        state.used += bytes;
        state.entries.entry(key).or_default().push(entry);
    }

    /// Forgets every scan of files under `root` (a dropped or vacuumed table).
    pub(crate) fn forget_under(&self, root: &Path) {
        let mut state = lock(&self.state);
        let mut freed = 0;
        state.entries.retain(|key, entries| {
            let under = key.root.prefix_match(root).is_some();
            if under {
                freed += entries.iter().map(|e| e.bytes).sum::<u64>();
            }
            !under
        });
        state.used -= freed;
    }
}

/// Drops least recently used entries until `incoming` more bytes fit in
/// `budget`.
fn evict(state: &mut DataState, budget: u64, incoming: u64) {
    while state.used + incoming > budget {
        let oldest = state
            .entries
            .iter()
            .flat_map(|(key, entries)| entries.iter().enumerate().map(move |(i, e)| (key, i, e)))
            .min_by_key(|(_, _, e)| e.last_used)
            .map(|(key, i, _)| (key.clone(), i));
        let Some((key, i)) = oldest else {
            return;
        };
        if let Some(entries) = state.entries.get_mut(&key) {
            let entry = entries.swap_remove(i);
            state.used -= entry.bytes;
            if entries.is_empty() {
                state.entries.remove(&key);
            }
        }
    }
}

/// Batches of a scan being gathered for the cache.
#[derive(Debug)]
struct Fill {
    partitions: Vec<Option<Vec<RecordBatch>>>,
    bytes: u64,
    abandoned: bool,
}

/// Passes a full scan through unchanged and keeps what it produced in the
/// [`DataCache`] once every partition has ended: the [`Tap`] of a
/// [`PassThrough`] over the scan.
#[derive(Debug)]
pub(crate) struct CacheFill {
    cache: Arc<FileCache>,
    key: ScanKey,
    columns: Vec<usize>,
    fill: Arc<Mutex<Fill>>,
}

impl CacheFill {
    /// Gathers what `input` produces (the scan of `key`'s `columns`).
    pub(crate) fn over(
        input: Arc<dyn ExecutionPlan>,
        cache: Arc<FileCache>,
        key: ScanKey,
        columns: Vec<usize>,
    ) -> PassThrough<Self> {
        let fill = Self::new(&input, cache, key, columns);
        PassThrough::new(input, fill)
    }

    fn new(
        input: &Arc<dyn ExecutionPlan>,
        cache: Arc<FileCache>,
        key: ScanKey,
        columns: Vec<usize>,
    ) -> Self {
        let partitions = input.properties().partitioning.partition_count();
        Self {
            cache,
            key,
            columns,
            fill: Arc::new(Mutex::new(Fill {
                partitions: vec![None; partitions],
                bytes: 0,
                abandoned: false,
            })),
        }
    }
}

impl Tap for CacheFill {
    fn name(&self) -> &'static str {
        "CacheFill"
    }

    fn renew(&self, input: &Arc<dyn ExecutionPlan>) -> Self {
        Self::new(
            input,
            Arc::clone(&self.cache),
            self.key.clone(),
            self.columns.clone(),
        )
    }

    fn tap(&self, partition: usize, input: SendableRecordBatchStream) -> SendableRecordBatchStream {
        Box::pin(FillStream {
            input,
            partition,
            batches: Vec::new(),
            shared: Some(Arc::clone(&self.fill)),
            cache: Arc::clone(&self.cache),
            key: self.key.clone(),
            columns: self.columns.clone(),
        })
    }
}

/// One partition of a [`CacheFill`].
struct FillStream {
    input: SendableRecordBatchStream,
    partition: usize,
    batches: Vec<RecordBatch>,
    /// `None` once this partition has stopped gathering.
    shared: Option<Arc<Mutex<Fill>>>,
    cache: Arc<FileCache>,
    key: ScanKey,
    columns: Vec<usize>,
}

impl FillStream {
    fn abandon(&mut self) {
        if let Some(shared) = self.shared.take() {
            let mut fill = lock(&shared);
            fill.abandoned = true;
            fill.partitions.clear();
        }
        self.batches = Vec::new();
    }

    fn gather(&mut self, batch: &RecordBatch) {
        let Some(shared) = &self.shared else {
            return;
        };
        let budget = self.cache.data.budget.load(Ordering::Relaxed);
        let over = {
            let mut fill = lock(shared);
            fill.bytes += batch.get_array_memory_size() as u64;
            fill.abandoned || fill.bytes > budget
        };
        if over {
            self.abandon();
        } else {
            self.batches.push(batch.clone());
        }
    }

    fn finish(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let complete = {
            let mut fill = lock(&shared);
            let abandoned = fill.abandoned;
            match fill.partitions.get_mut(self.partition) {
                Some(slot @ None) if !abandoned => {
                    *slot = Some(std::mem::take(&mut self.batches));
                }
                _ => {
                    fill.abandoned = true;
                    fill.partitions.clear();
                }
            }
            if !fill.abandoned && fill.partitions.iter().all(Option::is_some) {
                let partitions = std::mem::take(&mut fill.partitions)
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>();
                // Only one partition finishes last.
                fill.abandoned = true;
                Some((partitions, fill.bytes))
            } else {
                None
            }
        };
        if let Some((partitions, bytes)) = complete {
            self.cache
                .data
                .put(self.key.clone(), self.columns.clone(), partitions, bytes);
        }
    }
}

impl Stream for FillStream {
    type Item = DFResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.input.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => self.gather(batch),
            Poll::Ready(Some(Err(_))) => self.abandon(),
            Poll::Ready(None) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }
}

impl RecordBatchStream for FillStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

impl Drop for FillStream {
    fn drop(&mut self) {
        // A partition dropped before its end (a cancelled query, a limit
        // above) leaves the scan incomplete: nothing of it is kept.
        if self.shared.is_some() {
            self.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(values.to_vec())),
                Arc::new(Int64Array::from(
                    values.iter().map(|v| v * 10).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn key(root: &str, file: &str) -> ScanKey {
        ScanKey {
            root: Path::from(root),
            files: vec![Path::from(format!("{root}/{file}"))].into(),
            schema: "s".to_string(),
        }
    }

    #[test]
    fn serves_subsets_of_what_it_holds_and_evicts_the_oldest() {
        let cache = DataCache::default();
        let b = batch(&[1, 2, 3]);
        let size = b.get_array_memory_size() as u64;
        // Off by default: nothing is kept or found.
        cache.put(key("t/x", "1"), vec![0, 1], vec![vec![b.clone()]], size);
        assert!(cache.get(&key("t/x", "1"), &[0, 1]).is_none());

        cache.set_budget(2 * size + size / 2);
        cache.put(key("t/x", "1"), vec![0, 1], vec![vec![b.clone()]], size);
        let only_b = cache.get(&key("t/x", "1"), &[1]).unwrap();
        assert_eq!(only_b[0][0].num_columns(), 1);
        assert_eq!(only_b[0][0].schema().field(0).name(), "b");
        // Another file set is another table version.
        assert!(cache.get(&key("t/x", "2"), &[0]).is_none());

        cache.put(key("t/y", "1"), vec![0, 1], vec![vec![b.clone()]], size);
        // Touch x so that y is the oldest when z needs room.
        assert!(cache.get(&key("t/x", "1"), &[0]).is_some());
        cache.put(key("t/z", "1"), vec![0, 1], vec![vec![b.clone()]], size);
        assert!(cache.get(&key("t/y", "1"), &[0]).is_none());
        assert!(cache.get(&key("t/x", "1"), &[0]).is_some());
        assert!(cache.get(&key("t/z", "1"), &[0]).is_some());
        let usage = cache.usage();
        assert_eq!((usage.entries, usage.bytes), (2, 2 * size));

        // Larger than the whole budget: not kept, nothing evicted for it.
        cache.put(key("t/w", "1"), vec![0], vec![vec![b.clone()]], 3 * size);
        assert_eq!(cache.usage().entries, 2);

        cache.forget_under(&Path::from("t/x"));
        assert!(cache.get(&key("t/x", "1"), &[0]).is_none());
        assert_eq!(cache.usage().bytes, size);
        cache.set_budget(0);
        assert_eq!(cache.usage().entries, 0);
    }

    #[test]
    fn a_wider_entry_replaces_the_narrower_ones() {
        let cache = DataCache::default();
        cache.set_budget(1 << 30);
        let b = batch(&[1]);
        let narrow = b.project(&[1]).unwrap();
        cache.put(key("t", "1"), vec![1], vec![vec![narrow]], 10);
        cache.put(key("t", "1"), vec![0, 1], vec![vec![b]], 20);
        let usage = cache.usage();
        assert_eq!((usage.entries, usage.bytes), (1, 20));
        let both = cache.get(&key("t", "1"), &[0, 1]).unwrap();
        assert_eq!(both[0][0].num_columns(), 2);
    }
}
