//! Record-by-record reading of CSV and NDJSON files, for syncs that must
//! account for every row.
//!
//! DataFusion's readers stop a whole query at the first malformed value
//! and do not say which file the row came from. A sync needs more: with
//! `on_error 'fail'` the error names the file, the line and the reason;
//! with `on_error 'quarantine'` good rows flow on and every bad row is kept,
//! with its raw text, for `<target>__rejected`.
//!
//! How: CSV files are cut into blocks of whole records, decoded in
//! parallel by Arrow's CSV decoder straight into the table's types; only a
//! block the decoder refuses is read again record by record: records split
//! by the `csv` crate, each column of a chunk of [`CHUNK_ROWS`] converted
//! with Arrow's safe cast from text to the table's type, so a value that was
//! present but came out null did not parse, and its row is bad. NDJSON
//! chunks go through Arrow's JSON decoder in one call; only when a chunk
//! fails is it decoded again line by line to find the bad lines. Each file
//! is read on a blocking thread and its batches pass through a channel of
//! two, so memory stays at a few chunks whatever the files' size (remote
//! files are fetched whole, one at a time).

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow::compute::{CastOptions, cast_with_options, concat_batches, filter};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::FormatOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use tokio::sync::mpsc;

/// A file format a files source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma- (or `delimiter`-) separated values.
    Csv,
    /// Newline-delimited JSON, one object per line.
    Json,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "csv" | "tsv" | "txt" => Some(Self::Csv),
            "json" | "ndjson" | "jsonl" => Some(Self::Json),
            "parquet" | "parq" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The lower-case name (`csv`, `json`, `parquet`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Parquet => "parquet",
        }
    }
}

/// What to do with a row that does not fit its table's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop with the file, line and reason.
    Fail,
    /// Keep the good rows; set bad rows aside in `<target>__rejected`.
    Quarantine,
}

/// Rows per chunk.
pub const CHUNK_ROWS: usize = 8192;

/// Records read to infer a file's columns.
pub const INFER_ROWS: usize = 1000;

/// The narrowest type most of `values` (non-empty, as text) have: a bad
/// value among good ones does not turn a numeric column into text, it
/// becomes a bad row. Text when no type has a majority.
fn majority_type(values: &[&str]) -> DataType {
    if values.is_empty() {
        return DataType::Utf8;
    }
    let text = StringArray::from_iter_values(values.iter().copied());
    let options = CastOptions {
        safe: true,
        format_options: FormatOptions::default(),
    };
    for candidate in [
        DataType::Int64,
        DataType::Float64,
        DataType::Boolean,
        DataType::Date32,
        DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
    ] {
        // Booleans only from true/false: Arrow also reads 1/0 and yes/no.
        if candidate == DataType::Boolean
            && !values
                .iter()
                .any(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"))
        {
            continue;
        }
        // Dates only from date-shaped text, not from numbers.
        if matches!(candidate, DataType::Date32 | DataType::Timestamp(..))
            && !values.iter().any(|v| v.len() >= 8 && v.contains('-'))
        {
            continue;
        }
        let Ok(cast) = cast_with_options(&text, &candidate, &options) else {
            continue;
        };
        let parsed = values.len() - cast.null_count();
        if parsed * 2 > values.len() {
            return candidate;
        }
    }
    DataType::Utf8
}

/// Infers a CSV file's columns from its first [`INFER_ROWS`] records:
/// names from the header (or `column_1`, …), types by [`majority_type`].
/// Records with the wrong number of fields are left out.
pub fn infer_csv_schema(reader: impl Read, header: bool, delimiter: u8) -> Result<Schema, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(reader);
    let mut records = rdr.records();
    let first = match records.next() {
        Some(r) => r.map_err(|e| format!("unreadable first record: {e}"))?,
        None => return Err("the file is empty".to_string()),
    };
    let names: Vec<String> = if header {
        first.iter().map(|n| n.trim().to_string()).collect()
    } else {
        (1..=first.len()).map(|i| format!("column_{i}")).collect()
    };
    let mut sample: Vec<csv::StringRecord> = Vec::new();
    if !header {
        sample.push(first);
    }
    for record in records.take(INFER_ROWS) {
        match record {
            Ok(r) if r.len() == names.len() => sample.push(r),
            _ => {}
        }
    }
    let fields = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let values: Vec<&str> = sample
                .iter()
                .filter_map(|r| r.get(i))
                .filter(|v| !v.is_empty())
                .collect();
            Field::new(name, majority_type(&values), true)
        })
        .collect::<Vec<_>>();
    Ok(Schema::new(fields))
}

/// Infers an NDJSON file's columns from its first [`INFER_ROWS`] lines
/// that are JSON objects: Arrow's inference, with scalar columns of mixed
/// types settled by [`majority_type`].
pub fn infer_json_schema(reader: impl Read) -> Result<Schema, String> {
    let mut objects = Vec::new();
    for line in BufReader::new(reader).lines().take(INFER_ROWS) {
        let line = line.map_err(|e| e.to_string())?;
        if let Ok(v @ serde_json::Value::Object(_)) = serde_json::from_str(&line) {
            objects.push(v);
        }
    }
    if objects.is_empty() {
        return Err("no line is a JSON object".to_string());
    }
    let mut fields: Vec<Field> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for o in &objects {
        if let serde_json::Value::Object(map) = o {
            for k in map.keys() {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
    }
    for name in names {
        let values: Vec<&serde_json::Value> = objects
            .iter()
            .filter_map(|o| o.get(&name))
            .filter(|v| !v.is_null())
            .collect();
        let nested = values
            .iter()
            .filter(|v| v.is_object() || v.is_array())
            .count();
        let field = if nested * 2 > values.len() {
            // Structs and lists: Arrow's inference over the values.
            let rows = values
                .iter()
                .filter(|v| v.is_object() || v.is_array())
                .map(|v| Ok::<_, arrow::error::ArrowError>(serde_json::json!({ name.clone(): v })));
            let inferred = arrow::json::reader::infer_json_schema_from_iterator(rows)
                .map_err(|e| e.to_string())?;
            inferred.field(0).clone()
        } else {
            let text: Vec<String> = values
                .iter()
                .filter(|v| !(v.is_object() || v.is_array()))
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            let refs: Vec<&str> = text.iter().map(String::as_str).collect();
            let all_strings = values.iter().all(|v| v.is_string());
            // JSON strings stay text unless they are dates or times.
            let t = match majority_type(&refs) {
                DataType::Int64 | DataType::Float64 | DataType::Boolean if all_strings => {
                    DataType::Utf8
                }
                t => t,
            };
            Field::new(&name, t, true)
        };
        fields.push(field.with_nullable(true));
    }
    Ok(Schema::new(fields))
}

/// A row that did not fit its table.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// The file (its URL).
    pub source: String,
    /// 1-based line where the row starts.
    pub line: u64,
    /// Why it was refused.
    pub error: String,
    /// Its values as text, one per table column, where they could be split.
    pub values: Vec<Option<String>>,
    /// The row as read.
    pub raw: String,
}

/// Where a sync collects bad rows in quarantine mode.
pub type BadRows = Arc<Mutex<Vec<BadRow>>>;

/// The columns of a rejected-rows table for a table of `schema`: every
/// column as text, then `_raw`, `_error`, `_source`, `_line`.
pub fn rejected_schema(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), DataType::Utf8, true))
        .collect();
    fields.push(Field::new("_raw", DataType::Utf8, true));
    fields.push(Field::new("_error", DataType::Utf8, false));
    fields.push(Field::new("_source", DataType::Utf8, false));
    fields.push(Field::new("_line", DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// Bad rows as one batch of [`rejected_schema`].
pub fn rejected_batch(schema: &Schema, rows: &[BadRow]) -> arrow::error::Result<RecordBatch> {
    let out = rejected_schema(schema);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(out.fields().len());
    for i in 0..schema.fields().len() {
        columns.push(Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.values.get(i).cloned().flatten()),
        )));
    }
    columns.push(Arc::new(StringArray::from_iter(
        rows.iter().map(|r| Some(r.raw.clone())),
    )));
    columns.push(Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.error.clone()),
    )));
    columns.push(Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.source.clone()),
    )));
    columns.push(Arc::new(arrow::array::Int64Array::from_iter_values(
        rows.iter().map(|r| r.line as i64),
    )));
    RecordBatch::try_new(out, columns)
}

#[derive(Debug)]
pub(crate) struct ValidatedFiles {
    pub(crate) schema: SchemaRef,
    pub(crate) files: Vec<ObjectMeta>,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) store_url: String,
    pub(crate) format: FileFormat,
    pub(crate) header: bool,
    pub(crate) delimiter: u8,
    pub(crate) on_error: OnError,
    pub(crate) bad: BadRows,
}

impl PartitionStream for ValidatedFiles {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = mpsc::channel::<datafusion::error::Result<RecordBatch>>(2);
        let job = Job {
            schema: Arc::clone(&self.schema),
            format: self.format,
            header: self.header,
            delimiter: self.delimiter,
            on_error: self.on_error,
            bad: Arc::clone(&self.bad),
        };
        let files = self.files.clone();
        let store = Arc::clone(&self.store);
        let store_url = self.store_url.clone();
        tokio::spawn(async move {
            for file in files {
                let source = format!("{store_url}{}", file.location);
                let reader = match open_file(&store, &store_url, &file).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(DataFusionError::Execution(e))).await;
                        return;
                    }
                };
                let job = job.clone();
                let tx2 = tx.clone();
                let done = tokio::task::spawn_blocking(move || {
                    job.read(&source, reader, &mut |batch| {
                        tx2.blocking_send(batch).is_ok()
                    })
                })
                .await;
                match done {
                    Ok(true) => {}
                    // The consumer went away or an error was sent.
                    Ok(false) => return,
                    Err(e) => {
                        let _ = tx
                            .send(Err(DataFusionError::Execution(format!(
                                "reading files failed: {e}"
                            ))))
                            .await;
                        return;
                    }
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

/// A reader over one file: streamed from a local disk, fetched whole from
/// an object store.
pub(crate) async fn open_file(
    store: &Arc<dyn ObjectStore>,
    store_url: &str,
    file: &ObjectMeta,
) -> Result<Box<dyn Read + Send>, String> {
    let source = format!("{store_url}{}", file.location);
    if store_url.starts_with("file://") {
        let f = std::fs::File::open(format!("/{}", file.location))
            .map_err(|e| format!("{source}: cannot open: {e}"))?;
        return Ok(Box::new(f));
    }
    let got = store
        .get(&file.location)
        .await
        .map_err(|e| format!("{source}: cannot read: {e}"))?;
    let bytes = got
        .bytes()
        .await
        .map_err(|e| format!("{source}: cannot read: {e}"))?;
    Ok(Box::new(std::io::Cursor::new(bytes)))
}

/// What reading one file needs.
#[derive(Debug, Clone)]
struct Job {
    schema: SchemaRef,
    format: FileFormat,
    header: bool,
    delimiter: u8,
    on_error: OnError,
    bad: BadRows,
}

type Emit<'a> = dyn FnMut(datafusion::error::Result<RecordBatch>) -> bool + 'a;

/// Decodes one block with a copy of the job (see `Job::read_blocks`).
type DecodeBlock<'a> = dyn Fn(&Job, Block) -> Result<Vec<RecordBatch>, String> + Sync + 'a;

impl Job {
    /// Reads one file, emitting good batches; `false` when reading must
    /// stop (an error was emitted or the consumer left).
    fn read(&self, source: &str, reader: Box<dyn Read + Send>, emit: &mut Emit<'_>) -> bool {
        let result = match self.format {
            FileFormat::Csv => self.read_csv(source, reader, emit),
            FileFormat::Json => self.read_json(source, reader, emit),
            FileFormat::Parquet => self.read_parquet(source, reader, emit),
        };
        match result {
            Ok(go_on) => go_on,
            Err(message) => {
                emit(Err(DataFusionError::Execution(message)));
                false
            }
        }
    }

    /// Handles the bad rows of a chunk: the first one is the error in fail
    /// mode; otherwise they are kept.
    fn bad_rows(&self, mut rows: Vec<BadRow>) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        rows.sort_by_key(|r| r.line);
        if self.on_error == OnError::Fail {
            let first = &rows[0];
            return Err(format!(
                "bad row in {}, line {}: {} (set OPTIONS (on_error 'quarantine') on the source to keep the good rows and set bad ones aside)",
                first.source, first.line, first.error
            ));
        }
        self.bad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(rows);
        Ok(())
    }

    /// CSV at the speed of a scan: the file is cut into blocks of whole
    /// records, decoded in parallel by Arrow's CSV decoder straight into
    /// the table's types. A block the decoder refuses (a value that does
    /// not parse, a wrong number of fields) is read again record by record
    /// ([`Job::read_csv_records`]), which names or sets aside each bad row
    /// exactly as a whole-file read that way would.
    fn read_csv(
        &self,
        source: &str,
        reader: Box<dyn Read + Send>,
        emit: &mut Emit<'_>,
    ) -> Result<bool, String> {
        // A one-column file's blank line is a record to the decoder and
        // none to the `csv` crate: such files are read record by record.
        if self.schema.fields().len() < 2 {
            return self.read_csv_records(source, reader, self.header, 0, emit);
        }
        let blocks = Blocks::new(reader, Cut::Csv, self.header)
            .map_err(|e| format!("{source}: cannot read: {e}"))?;
        self.read_blocks(
            source,
            blocks,
            &|job: &Job, block: Block| {
                if let Some(batches) = job.decode_csv_block(&block.bytes) {
                    return Ok(batches);
                }
                let mut batches = Vec::new();
                job.read_csv_records(
                    source,
                    Box::new(std::io::Cursor::new(block.bytes)),
                    false,
                    block.first_line - 1,
                    &mut |batch| {
                        batches.extend(batch.ok());
                        true
                    },
                )?;
                Ok(batches)
            },
            emit,
        )
    }

    /// Decodes a file's blocks on a pool of threads and emits their
    /// batches in file order, so in fail mode the error is still the file's
    /// first bad row and bad rows are kept in line order. Each block is
    /// decoded by a copy of the job that keeps its own bad rows; they join
    /// the job's when the block's turn comes. At most two blocks per thread
    /// are read ahead: memory stays at a few blocks whatever the file size.
    fn read_blocks(
        &self,
        source: &str,
        mut blocks: Blocks,
        decode: &DecodeBlock<'_>,
        emit: &mut Emit<'_>,
    ) -> Result<bool, String> {
        type Decoded = (Result<Vec<RecordBatch>, String>, Vec<BadRow>);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (work_tx, work_rx) =
            std::sync::mpsc::sync_channel::<(Block, std::sync::mpsc::SyncSender<Decoded>)>(workers);
        let work_rx = Mutex::new(work_rx);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let next = work_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((block, done)) = next else { break };
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            continue;
                        }
                        let local = Job {
                            bad: BadRows::default(),
                            ..self.clone()
                        };
                        let out = decode(&local, block);
                        let bad = std::mem::take(
                            &mut *local.bad.lock().unwrap_or_else(|e| e.into_inner()),
                        );
                        let _ = done.send((out, bad));
                    }
                });
            }
            let result = (|| -> Result<bool, String> {
                let mut ahead = std::collections::VecDeque::new();
                let mut more = true;
                loop {
                    while more && ahead.len() < 2 * workers {
                        match blocks
                            .next_block()
                            .map_err(|e| format!("{source}: cannot read: {e}"))?
                        {
                            Some(block) => {
                                let (done, result) = std::sync::mpsc::sync_channel(1);
                                work_tx
                                    .send((block, done))
                                    .map_err(|_| format!("{source}: the decoders stopped"))?;
                                ahead.push_back(result);
                            }
                            None => more = false,
                        }
                    }
                    let Some(next) = ahead.pop_front() else {
                        return Ok(true);
                    };
                    let (out, bad) = next
                        .recv()
                        .map_err(|_| format!("{source}: decoding a block failed"))?;
                    let batches = out?;
                    self.bad_rows(bad)?;
                    for batch in batches {
                        if !emit(Ok(batch)) {
                            return Ok(false);
                        }
                    }
                }
            })();
            // Blocks still queued are skipped; the threads end with the queue.
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            drop(work_tx);
            result
        })
    }

    /// One block through Arrow's CSV decoder; `None` when any record of it
    /// does not fit the table.
    fn decode_csv_block(&self, bytes: &[u8]) -> Option<Vec<RecordBatch>> {
        let reader = arrow::csv::ReaderBuilder::new(Arc::clone(&self.schema))
            .with_header(false)
            .with_delimiter(self.delimiter)
            .with_batch_size(CHUNK_ROWS)
            .build_buffered(bytes)
            .ok()?;
        reader.collect::<Result<Vec<_>, _>>().ok()
    }

    /// Reads CSV record by record; `line_offset` is added to every line
    /// number (a block's records are numbered within the whole file).
    fn read_csv_records(
        &self,
        source: &str,
        reader: Box<dyn Read + Send>,
        header: bool,
        line_offset: u64,
        emit: &mut Emit<'_>,
    ) -> Result<bool, String> {
        let width = self.schema.fields().len();
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(header)
            .delimiter(self.delimiter)
            .flexible(true)
            .from_reader(reader);
        let mut chunk = CsvChunk::new(width);
        let mut bad = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            let line = rdr.position().line();
            match rdr.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map(|p| p.line()).unwrap_or(line) + line_offset;
                    if record.len() != width {
                        bad.push(BadRow {
                            source: source.to_string(),
                            line,
                            error: format!("expected {width} fields, found {}", record.len()),
                            values: record.iter().map(|v| Some(v.to_string())).collect(),
                            raw: raw_record(&record, self.delimiter),
                        });
                        // Keep fail mode's error at the first bad row.
                        if self.on_error == OnError::Fail {
                            break;
                        }
                    } else {
                        chunk.push(line, &record, self.delimiter);
                    }
                }
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(line) + line_offset;
                    bad.push(BadRow {
                        source: source.to_string(),
                        line,
                        error: format!("unreadable record: {e}"),
                        values: Vec::new(),
                        raw: String::new(),
                    });
                    if self.on_error == OnError::Fail || matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        break;
                    }
                }
            }
            if chunk.lines.len() >= CHUNK_ROWS {
                let batch = self.convert_csv(source, &mut chunk, &mut bad)?;
                self.bad_rows(std::mem::take(&mut bad))?;
                if !emit(Ok(batch)) {
                    return Ok(false);
                }
            }
        }
        // In fail mode this reports the earliest bad row; rows read before
        // it are never committed, as the sync fails as a whole.
        let batch = self.convert_csv(source, &mut chunk, &mut bad)?;
        self.bad_rows(bad)?;
        if batch.num_rows() > 0 {
            return Ok(emit(Ok(batch)));
        }
        Ok(true)
    }

    /// Casts a chunk's text columns to the table's types; rows with a
    /// value that does not parse move to `bad`.
    fn convert_csv(
        &self,
        source: &str,
        chunk: &mut CsvChunk,
        bad: &mut Vec<BadRow>,
    ) -> Result<RecordBatch, String> {
        let rows = chunk.lines.len();
        let cast_options = CastOptions {
            safe: true,
            format_options: FormatOptions::default(),
        };
        let mut arrays = Vec::with_capacity(chunk.columns.len());
        let mut reasons: Vec<Option<String>> = vec![None; rows];
        for (field, values) in self.schema.fields().iter().zip(&chunk.columns) {
            let text = StringArray::from_iter(values.iter().map(|v| v.as_deref()));
            let cast = cast_with_options(&text, field.data_type(), &cast_options)
                .map_err(|e| format!("{source}: column {}: {e}", field.name()))?;
            for (row, reason) in reasons.iter_mut().enumerate() {
                if reason.is_none() && text.is_valid(row) && cast.is_null(row) {
                    *reason = Some(format!(
                        "column {}: '{}' is not a valid {}",
                        field.name(),
                        text.value(row),
                        field.data_type()
                    ));
                }
            }
            arrays.push(cast);
        }
        let mut keep = Vec::with_capacity(rows);
        for (row, reason) in reasons.into_iter().enumerate() {
            keep.push(reason.is_none());
            if let Some(error) = reason {
                bad.push(BadRow {
                    source: source.to_string(),
                    line: chunk.lines[row],
                    error,
                    values: chunk.columns.iter().map(|c| c[row].clone()).collect(),
                    raw: chunk.raw[row].clone(),
                });
            }
        }
        chunk.clear();
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .map_err(|e| format!("{source}: {e}"))?;
        if keep.iter().all(|k| *k) {
            return Ok(batch);
        }
        let mask = BooleanArray::from(keep);
        let columns = batch
            .columns()
            .iter()
            .map(|c| filter(c, &mask))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{source}: {e}"))?;
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| format!("{source}: {e}"))
    }

    /// NDJSON as CSV: blocks of whole lines decoded in parallel by Arrow's
    /// JSON decoder; a block it refuses is decoded again in chunks of lines,
    /// and a chunk it refuses line by line ([`Job::decode_json`]).
    fn read_json(
        &self,
        source: &str,
        reader: Box<dyn Read + Send>,
        emit: &mut Emit<'_>,
    ) -> Result<bool, String> {
        let blocks = Blocks::new(reader, Cut::Lines, false)
            .map_err(|e| format!("{source}: cannot read: {e}"))?;
        self.read_blocks(
            source,
            blocks,
            &|job: &Job, block: Block| {
                if let Ok(batches) = job.decode_json_block(&block.bytes) {
                    return Ok(batches);
                }
                let mut batches = Vec::new();
                let mut lines: Vec<(u64, String)> = Vec::new();
                let count = block.bytes.split(|b| *b == b'\n').count();
                for (i, line) in block.bytes.split(|b| *b == b'\n').enumerate() {
                    // The piece after a block's final newline is no line.
                    if i + 1 == count && line.is_empty() {
                        break;
                    }
                    let number = block.first_line + i as u64;
                    let line = match std::str::from_utf8(line) {
                        Ok(line) if line.trim().is_empty() => continue,
                        Ok(line) => line.to_string(),
                        Err(e) => {
                            job.bad_rows(vec![BadRow {
                                source: source.to_string(),
                                line: number,
                                error: format!("not valid UTF-8: {e}"),
                                values: vec![None; job.schema.fields().len()],
                                raw: String::from_utf8_lossy(line).into_owned(),
                            }])?;
                            continue;
                        }
                    };
                    lines.push((number, line));
                    if lines.len() >= CHUNK_ROWS {
                        batches.push(job.decode_json(source, &std::mem::take(&mut lines))?);
                    }
                }
                batches.push(job.decode_json(source, &lines)?);
                batches.retain(|b| b.num_rows() > 0);
                Ok(batches)
            },
            emit,
        )
    }

    /// One block of lines through Arrow's JSON decoder in one pass.
    fn decode_json_block(&self, bytes: &[u8]) -> Result<Vec<RecordBatch>, String> {
        let mut decoder = self.json_decoder(CHUNK_ROWS)?;
        let mut rest = bytes;
        let mut batches = Vec::new();
        loop {
            let read = decoder.decode(rest).map_err(|e| e.to_string())?;
            rest = &rest[read..];
            batches.extend(decoder.flush().map_err(|e| e.to_string())?);
            if rest.is_empty() {
                return Ok(batches);
            }
            if read == 0 {
                return Err("the decoder made no progress".to_string());
            }
        }
    }

    fn json_decoder(&self, rows: usize) -> Result<arrow::json::reader::Decoder, String> {
        arrow::json::ReaderBuilder::new(Arc::clone(&self.schema))
            .with_batch_size(rows.max(1))
            .with_coerce_primitive(true)
            .build_decoder()
            .map_err(|e| e.to_string())
    }

    fn decode_json(&self, source: &str, lines: &[(u64, String)]) -> Result<RecordBatch, String> {
        let whole = (|| -> Result<Option<RecordBatch>, String> {
            let mut decoder = self.json_decoder(lines.len())?;
            for (_, line) in lines {
                decoder.decode(line.as_bytes()).map_err(|e| e.to_string())?;
                decoder.decode(b"\n").map_err(|e| e.to_string())?;
            }
            decoder.flush().map_err(|e| e.to_string())
        })();
        if let Ok(batch) = whole {
            return Ok(batch.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(&self.schema))));
        }
        // Some line is bad: decode them one by one.
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (number, line) in lines {
            let one = (|| -> Result<Option<RecordBatch>, String> {
                let value: serde_json::Value =
                    serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
                if !value.is_object() {
                    return Err("not a JSON object".to_string());
                }
                let mut decoder = self.json_decoder(1)?;
                decoder.decode(line.as_bytes()).map_err(|e| e.to_string())?;
                decoder.flush().map_err(|e| e.to_string())
            })();
            match one {
                Ok(Some(batch)) => good.push(batch),
                Ok(None) => {}
                Err(error) => bad.push(BadRow {
                    source: source.to_string(),
                    line: *number,
                    error,
                    values: json_values(&self.schema, line),
                    raw: line.clone(),
                }),
            }
        }
        self.bad_rows(bad)?;
        concat_batches(&self.schema, &good).map_err(|e| format!("{source}: {e}"))
    }

    fn read_parquet(
        &self,
        source: &str,
        mut reader: Box<dyn Read + Send>,
        emit: &mut Emit<'_>,
    ) -> Result<bool, String> {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{source}: cannot read: {e}"))?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(bytes),
        )
        .map_err(|e| format!("{source}: {e}"))?
        .with_batch_size(CHUNK_ROWS);
        for batch in builder.build().map_err(|e| format!("{source}: {e}"))? {
            let batch = batch.map_err(|e| format!("{source}: {e}"))?;
            let batch = align(&self.schema, batch).map_err(|e| format!("{source}: {e}"))?;
            if !emit(Ok(batch)) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A Parquet file's batch in the table's column order and types.
fn align(schema: &SchemaRef, batch: RecordBatch) -> arrow::error::Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(Arc::clone(c)),
            Some(c) => arrow::compute::cast(c, f.data_type()),
            None => Ok(arrow::array::new_null_array(
                f.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<arrow::error::Result<Vec<_>>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// The values of a JSON line as text, per column, where it is an object.
fn json_values(schema: &Schema, line: &str) -> Vec<Option<String>> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(line) else {
        return vec![None; schema.fields().len()];
    };
    schema
        .fields()
        .iter()
        .map(|f| match map.get(f.name()) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        })
        .collect()
}

fn raw_record(record: &csv::StringRecord, delimiter: u8) -> String {
    record
        .iter()
        .collect::<Vec<_>>()
        .join(&(delimiter as char).to_string())
}

/// Bytes per block, cut at the first record end after this size.
const BLOCK_BYTES: usize = 4 << 20;

/// A run of whole records and the file line its first one starts on.
struct Block {
    bytes: Vec<u8>,
    first_line: u64,
}

/// Where a record ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// At a newline outside quotes. With `"` as the only quote character
    /// (doubled inside a quoted field), a newline is outside quotes exactly
    /// when an even number of quotes came before it in the record.
    Csv,
    /// At every newline (JSON text holds none unescaped).
    Lines,
}

/// Cuts a stream into blocks of whole records.
struct Blocks {
    reader: Box<dyn Read + Send>,
    cut: Cut,
    /// Bytes read and not yet handed out: whole records first.
    pending: Vec<u8>,
    next_line: u64,
    done: bool,
}

impl Blocks {
    fn new(reader: Box<dyn Read + Send>, cut: Cut, header: bool) -> std::io::Result<Self> {
        let mut blocks = Self {
            reader,
            cut,
            pending: Vec::new(),
            next_line: 1,
            done: false,
        };
        if header {
            // Skip the header record, however many lines it spans.
            loop {
                if let Some(end) = first_record_end(cut, &blocks.pending) {
                    blocks.take(end + 1);
                    break;
                }
                if !blocks.fill(64 << 10)? {
                    blocks.pending.clear();
                    break;
                }
            }
        }
        Ok(blocks)
    }

    /// Reads up to `more` bytes; false at the end of the stream.
    fn fill(&mut self, more: usize) -> std::io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let start = self.pending.len();
        self.pending.resize(start + more, 0);
        let mut filled = start;
        while filled < self.pending.len() {
            match self.reader.read(&mut self.pending[filled..]) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.pending.truncate(start);
                    return Err(e);
                }
            }
        }
        self.pending.truncate(filled);
        Ok(filled > start)
    }

    /// Hands out the first `n` pending bytes as a block.
    fn take(&mut self, n: usize) -> Block {
        let rest = self.pending.split_off(n);
        let bytes = std::mem::replace(&mut self.pending, rest);
        let first_line = self.next_line;
        self.next_line += memchr::memchr_iter(b'\n', &bytes).count() as u64;
        Block { bytes, first_line }
    }

    fn next_block(&mut self) -> std::io::Result<Option<Block>> {
        while self.pending.len() < BLOCK_BYTES && self.fill(BLOCK_BYTES - self.pending.len())? {}
        loop {
            if self.done {
                if self.pending.is_empty() {
                    return Ok(None);
                }
                let n = self.pending.len();
                return Ok(Some(self.take(n)));
            }
            if let Some(end) = last_record_end(self.cut, &self.pending) {
                return Ok(Some(self.take(end + 1)));
            }
            // One record longer than a block: read on.
            self.fill(BLOCK_BYTES)?;
        }
    }
}

/// The first record end in `bytes`, which start a record.
fn first_record_end(cut: Cut, bytes: &[u8]) -> Option<usize> {
    if cut == Cut::Lines {
        return memchr::memchr(b'\n', bytes);
    }
    let mut quoted = false;
    let mut at = 0;
    while let Some(i) = memchr::memchr2(b'"', b'\n', &bytes[at..]) {
        let i = at + i;
        if bytes[i] == b'"' {
            quoted = !quoted;
        } else if !quoted {
            return Some(i);
        }
        at = i + 1;
    }
    None
}

/// The last record end in `bytes`, which start a record. Scanned from the
/// start for CSV, as quote parity is only known from a record's beginning.
fn last_record_end(cut: Cut, bytes: &[u8]) -> Option<usize> {
    if cut == Cut::Lines {
        return memchr::memrchr(b'\n', bytes);
    }
    let mut quoted = false;
    let mut last = None;
    let mut at = 0;
    while let Some(i) = memchr::memchr2(b'"', b'\n', &bytes[at..]) {
        let i = at + i;
        if bytes[i] == b'"' {
            quoted = !quoted;
        } else if !quoted {
            last = Some(i);
        }
        at = i + 1;
    }
    last
}

/// A chunk of CSV records as text columns.
struct CsvChunk {
    columns: Vec<Vec<Option<String>>>,
    lines: Vec<u64>,
    raw: Vec<String>,
}

impl CsvChunk {
    fn new(width: usize) -> Self {
        Self {
            columns: (0..width).map(|_| Vec::with_capacity(CHUNK_ROWS)).collect(),
            lines: Vec::with_capacity(CHUNK_ROWS),
            raw: Vec::with_capacity(CHUNK_ROWS),
        }
    }

    fn push(&mut self, line: u64, record: &csv::StringRecord, delimiter: u8) {
        for (column, value) in self.columns.iter_mut().zip(record.iter()) {
            // An empty field is a null, as DataFusion's CSV reader reads it.
            column.push((!value.is_empty()).then(|| value.to_string()));
        }
        self.lines.push(line);
        self.raw.push(raw_record(record, delimiter));
    }

    fn clear(&mut self) {
        for c in &mut self.columns {
            c.clear();
        }
        self.lines.clear();
        self.raw.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(format: FileFormat, on_error: OnError) -> Job {
        Job {
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
                Field::new("score", DataType::Float64, true),
            ])),
            format,
            header: true,
            delimiter: b',',
            on_error,
            bad: BadRows::default(),
        }
    }

    fn run(job: &Job, text: &str) -> (Vec<RecordBatch>, Result<(), String>) {
        run_bytes(job, text.as_bytes())
    }

    fn run_bytes(job: &Job, bytes: &[u8]) -> (Vec<RecordBatch>, Result<(), String>) {
        let mut out = Vec::new();
        let mut error = Ok(());
        job.read(
            "file:///t.csv",
            Box::new(std::io::Cursor::new(bytes.to_vec())),
            &mut |b| match b {
                Ok(b) => {
                    out.push(b);
                    true
                }
                Err(e) => {
                    error = Err(e.to_string());
                    false
                }
            },
        );
        (out, error)
    }

    #[test]
    fn csv_bad_rows_are_named_or_set_aside() {
        let text = "id,name,score\n1,a,0.5\nx,b,1.0\n3,c\n4,\"d,e\",2\n";
        let (_, error) = run(&job(FileFormat::Csv, OnError::Fail), text);
        let error = error.unwrap_err();
        assert!(
            error.contains("file:///t.csv, line 3: column id: 'x' is not a valid Int64"),
            "{error}"
        );

        let quarantine = job(FileFormat::Csv, OnError::Quarantine);
        let (batches, error) = run(&quarantine, text);
        error.unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 2);
        let bad = quarantine.bad.lock().unwrap().clone();
        assert_eq!(bad.len(), 2);
        assert_eq!((bad[0].line, bad[1].line), (3, 4));
        assert!(
            bad[1].error.contains("expected 3 fields, found 2"),
            "{bad:?}"
        );
        assert_eq!(bad[0].values[0].as_deref(), Some("x"));
        let batch = rejected_batch(&quarantine.schema, &bad).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema().field(4).name(), "_error");
    }

    /// Several blocks, quoted fields with newlines and delimiters across
    /// a block's end, bad rows in a later block: the same rows and lines as
    /// a record-by-record read.
    #[test]
    fn csv_blocks_keep_every_row_and_line() {
        let mut text = String::from("id,name,score\n");
        let mut line = 2u64;
        let mut bad_lines = Vec::new();
        let mut good = 0;
        for i in 0..400_000u64 {
            if i % 1000 == 7 {
                // A quoted field over two lines.
                text.push_str(&format!("{i},\"two\nlines, \"\"q\"\"\",{i}.5\n"));
                line += 2;
                good += 1;
            } else if i == 390_001 || i == 12 {
                text.push_str(&format!("{i},bad,not-a-number\n"));
                bad_lines.push(line);
                line += 1;
            } else {
                text.push_str(&format!("{i},name{i},{i}.25\n"));
                line += 1;
                good += 1;
            }
        }
        assert!(text.len() > 2 * BLOCK_BYTES, "{}", text.len());
        let quarantine = job(FileFormat::Csv, OnError::Quarantine);
        let (batches, error) = run(&quarantine, &text);
        error.unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, good);
        let names: usize = batches
            .iter()
            .map(|b| {
                let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
                names
                    .iter()
                    .filter(|n| *n == Some("two\nlines, \"q\""))
                    .count()
            })
            .sum();
        assert_eq!(names, 400);
        let bad = quarantine.bad.lock().unwrap().clone();
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, bad_lines);

        let (_, error) = run(&job(FileFormat::Csv, OnError::Fail), &text);
        let error = error.unwrap_err();
        assert!(
            error.contains(&format!("line {}: column score", bad_lines[0])),
            "{error}"
        );
    }

    /// NDJSON over several blocks with blank lines, invalid JSON, a wrong
    /// type and invalid UTF-8 in different blocks: every good row kept,
    /// every bad line named with its line number, in order.
    #[test]
    fn json_blocks_keep_every_row_and_line() {
        let mut bytes = Vec::new();
        let mut bad_lines = Vec::new();
        let mut good = 0;
        for (line, i) in (1u64..).zip(0..300_000u64) {
            match i {
                5 | 150_000 => {
                    bytes.extend_from_slice(format!("{{\"id\": {i}, \"name\": \"x\"\n").as_bytes());
                    bad_lines.push(line);
                }
                200_000 => {
                    bytes.extend_from_slice(b"{\"id\": \"many\", \"name\": \"y\"}\n");
                    bad_lines.push(line);
                }
                250_000 => {
                    bytes.extend_from_slice(b"{\"id\": 1, \"name\": \"\xff\"}\n");
                    bad_lines.push(line);
                }
                _ if i % 1000 == 3 => bytes.extend_from_slice(b"   \n"),
                _ => {
                    bytes.extend_from_slice(
                        format!("{{\"id\": {i}, \"name\": \"n{i}\", \"score\": {i}.5}}\n")
                            .as_bytes(),
                    );
                    good += 1;
                }
            }
        }
        assert!(bytes.len() > 3 * BLOCK_BYTES, "{}", bytes.len());
        let quarantine = job(FileFormat::Json, OnError::Quarantine);
        let (batches, error) = run_bytes(&quarantine, &bytes);
        error.unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, good);
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let ids = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>();
                ids.unwrap().values().to_vec()
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "rows out of order");
        let bad = quarantine.bad.lock().unwrap().clone();
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, bad_lines);
        assert!(bad[3].error.contains("UTF-8"), "{:?}", bad[3]);

        let (_, error) = run_bytes(&job(FileFormat::Json, OnError::Fail), &bytes);
        let error = error.unwrap_err();
        assert!(
            error.contains(&format!("line {}:", bad_lines[0])),
            "{error}"
        );
    }

    #[test]
    fn inference_follows_the_majority() {
        let schema = infer_csv_schema(
            "id,name,score,day,flag\n1,a,0.5,2026-01-01,true\n2,b,x,2026-01-02,false\n3,c\n4,d,2.5,,true\n"
                .as_bytes(),
            true,
            b',',
        )
        .unwrap();
        let types: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), f.data_type()))
            .collect();
        assert_eq!(
            types,
            vec![
                "id:Int64",
                "name:Utf8",
                "score:Float64",
                "day:Date32",
                "flag:Boolean"
            ]
        );
        let schema = infer_json_schema(
            "{\"id\": 1, \"tags\": [\"a\"], \"code\": \"007\"}\nnot json\n{\"id\": \"zz\", \"code\": \"9\"}\n{\"id\": 3}\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            schema.field_with_name("id").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            schema.field_with_name("code").unwrap().data_type(),
            &DataType::Utf8
        );
        assert!(matches!(
            schema.field_with_name("tags").unwrap().data_type(),
            DataType::List(_)
        ));
    }

    #[test]
    fn json_bad_lines_are_found_line_by_line() {
        let text = "{\"id\": 1, \"name\": \"a\", \"score\": 0.5}\n\n{\"id\": \"zz\"}\nnot json\n{\"id\": 4}\n";
        let quarantine = job(FileFormat::Json, OnError::Quarantine);
        let (batches, error) = run(&quarantine, text);
        error.unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 2);
        let bad = quarantine.bad.lock().unwrap().clone();
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![3, 4]);
        assert!(bad[1].error.contains("invalid JSON"), "{bad:?}");
        let (_, error) = run(&job(FileFormat::Json, OnError::Fail), text);
        assert!(error.unwrap_err().contains("line 3"));
    }
}
