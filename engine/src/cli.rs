//! The `autolake` command line: `sql` (REPL, `-e`, `-f`, stdin) and `demo`.
//!
//! Results go to stdout in the chosen format, errors to stderr. Exit status:
//! 0 success, 1 a statement failed (the message names the statement, and
//! for syntax errors the line and column), 2 usage error (clap's).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use arrow::array::RecordBatch;
use autolake_sql::ParsedStatement;
use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::principal::{Interface, Principal};
use crate::session::{Engine, EngineConfig, Session};

/// AutoLake: an AI factory in one binary — a DataFusion engine over a lake
/// of Delta tables.
#[derive(Debug, Parser)]
#[command(name = "autolake", version, about, long_about = None)]
pub struct Cli {
    /// Lake root: a local path, file://, memory://name or s3://bucket/prefix.
    #[arg(long, env = "AUTOLAKE_LAKE", global = true)]
    pub lake: Option<String>,
    /// TOML configuration file (lake, device, [storage_options]).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Compute device for models: auto, cpu or cuda[:N].
    #[arg(long, env = "AUTOLAKE_DEVICE", global = true)]
    pub device: Option<String>,
    /// Memory the merge of a `SYNC … KEY` run may hold before it spills to
    /// disk: bytes with an optional KiB/MiB/GiB suffix, or `auto` (a
    /// quarter of the machine's memory).
    #[arg(long, env = "AUTOLAKE_MERGE_MEMORY", global = true, value_parser = parse_cache_size)]
    pub merge_memory: Option<CacheSize>,
    /// Days of query history `system.queries` keeps (default 30).
    #[arg(long, env = "AUTOLAKE_QUERY_HISTORY_DAYS", global = true)]
    pub query_history_days: Option<u32>,
    /// Run queries on a Ballista cluster: the scheduler's df://HOST:PORT.
    #[arg(long, env = "AUTOLAKE_CLUSTER", global = true)]
    pub cluster: Option<String>,
    /// Log lines on stderr as text or as JSON objects (one per line, with
    /// the statement's query_id).
    #[arg(long, env = "AUTOLAKE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: time, level, message, fields and the
    /// spans (the statement's `query_id`).
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run SQL: an interactive REPL, or statements from -e, -f or stdin.
    Sql(SqlArgs),
    /// Run the factory end to end on bundled sample data.
    Demo,
    /// Serve the lake: Arrow Flight SQL, HTTP (/healthz) and the job
    /// scheduler.
    Serve(ServeArgs),
    /// Jobs, for external schedulers.
    Jobs {
        /// What to do.
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Scale-out: a Ballista scheduler or executor with AutoLake's
    /// functions and the lake's object store.
    Cluster {
        /// Which process.
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

/// `autolake cluster …`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The scheduler: plans stages and hands tasks to executors.
    Scheduler {
        /// Address to listen on (gRPC and its REST API).
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
    },
    /// An executor: runs tasks, reading the lake with its own credentials.
    Executor {
        /// The scheduler, df://HOST:PORT.
        #[arg(long)]
        scheduler: String,
        /// Address for its results (Flight); its task port is the next one
        /// (port 0: two free ports).
        #[arg(long, default_value = "127.0.0.1:50060")]
        bind: std::net::SocketAddr,
        /// Tasks run at once (default: the machine's cores).
        #[arg(long)]
        slots: Option<usize>,
        /// Folder for shuffle files (default: a temporary one).
        #[arg(long)]
        work_dir: Option<std::path::PathBuf>,
    },
}

/// `autolake jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Run every job and monitor that is due now, wait for them, and exit
    /// (1 when a run failed): for cron or another external scheduler.
    RunDue,
}

/// Arguments of `autolake serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Flight SQL listen address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub flight: std::net::SocketAddr,
    /// HTTP listen address (/healthz).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: std::net::SocketAddr,
    /// PEM certificate for TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS (with --tls-cert).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a login token stays valid.
    #[arg(long, env = "AUTOLAKE_TOKEN_TTL", default_value_t = 3600)]
    pub token_ttl: u64,
    /// Do not run scheduled jobs in this process.
    #[arg(long)]
    pub no_scheduler: bool,
    /// Memory for decoded table scans, so repeated reads of a table skip
    /// Parquet decoding: bytes with an optional KiB/MiB/GiB suffix, 0 for
    /// none, or `auto` (an eighth of the machine's memory).
    #[arg(long, env = "AUTOLAKE_SCAN_CACHE", default_value = "auto", value_parser = parse_cache_size)]
    pub scan_cache: CacheSize,
}

/// A `--scan-cache` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSize {
    Auto,
    Bytes(u64),
}

fn parse_cache_size(text: &str) -> std::result::Result<CacheSize, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("auto") {
        return Ok(CacheSize::Auto);
    }
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let unit_bytes: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "'{text}' is not a size: expected bytes with an optional KiB, MiB, GiB or TiB suffix (e.g. 2GiB), 0, or auto"
            ));
        }
    };
    let number: u64 = number.parse().map_err(|_| {
        format!("'{text}' is not a size: expected a whole number first (e.g. 512MiB), 0, or auto")
    })?;
    number
        .checked_mul(unit_bytes)
        .map(CacheSize::Bytes)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Arguments of `autolake sql`.
#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    /// Statements to run, separated by ';'.
    #[arg(short = 'e', long = "execute", conflicts_with = "file")]
    pub execute: Option<String>,
    /// A file of statements to run.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Output format of results.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Result output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON array of objects per result.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        // delta-rs reports routine conversions (nanosecond timestamps stored
        // as microseconds, as Delta requires) as warnings; -v shows them.
        // A job failed on a cluster is the statement's error already.
        (false, 0) => {
            "warn,deltalake_core=error,buoyant_kernel=error,\
             ballista_core::execution_plans::distributed_query=off"
        }
        (false, 1) => "info,autolake_engine=info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUTOLAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Builds the engine configuration from flags, environment and file:
/// a flag or variable wins over the file, the file over defaults.
pub fn engine_config(cli: &Cli) -> Result<EngineConfig> {
    let mut config = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::invalid(format!("cannot read config file {}: {e}", path.display()))
            })?;
            toml::from_str::<EngineConfig>(&text).map_err(|e| {
                Error::invalid(format!("invalid config file {}: {e}", path.display()))
            })?
        }
        None => EngineConfig::default(),
    };
    if let Some(lake) = &cli.lake {
        config.lake = lake.clone();
    }
    if config.lake.is_empty() {
        config.lake = "./lake".to_string();
    }
    if let Some(device) = &cli.device {
        config.device = device.clone();
    }
    if config.device.is_empty() {
        config.device = "auto".to_string();
    }
    if let Some(CacheSize::Bytes(bytes)) = cli.merge_memory {
        config.merge_memory = Some(bytes);
    }
    if cli.query_history_days.is_some() {
        config.query_history_days = cli.query_history_days;
    }
    if let Some(cluster) = &cli.cluster {
        config.cluster = Some(cluster.clone());
    }
    // An empty setting is none: `AUTOLAKE_CLUSTER=` runs here.
    config.cluster = config.cluster.filter(|c| !c.trim().is_empty());
    Ok(config)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let mut config = engine_config(&cli)?;
    let cluster_process = matches!(cli.command, Command::Cluster { .. });
    if cluster_process {
        // Its own processes never send queries to a cluster.
        config.cluster = None;
    } else if let Some(cluster) = &config.cluster {
        // A wrong address fails now, not at the first query.
        crate::cluster::check_reachable(&crate::cluster::ClusterAddress::parse(cluster)?).await?;
    }
    let engine = Engine::open(config).await?;
    let code = run_command(&engine, cli.command).await;
    if let Err(e) = engine.close().await {
        eprintln!("warning: the audit log could not be written: {e}");
    }
    code
}

async fn run_command(engine: &std::sync::Arc<Engine>, command: Command) -> Result<ExitCode> {
    match command {
        Command::Sql(args) => {
            let session = engine.session(Principal::local_admin(), Interface::Cli);
            let mut out = std::io::stdout().lock();
            if let Some(sql) = &args.execute {
                Ok(run_script(&session, sql, args.format, &mut out).await)
            } else if let Some(path) = &args.file {
                let sql = std::fs::read_to_string(path).map_err(|e| {
                    Error::invalid(format!("cannot read SQL file {}: {e}", path.display()))
                })?;
                Ok(run_script(&session, &sql, args.format, &mut out).await)
            } else if std::io::stdin().is_terminal() {
                drop(out);
                repl(&session, args.format).await
            } else {
                let sql = std::io::read_to_string(std::io::stdin())?;
                Ok(run_script(&session, &sql, args.format, &mut out).await)
            }
        }
        Command::Demo => {
            let mut out = std::io::stdout().lock();
            match crate::demo::run(engine, &mut out).await {
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    Ok(ExitCode::SUCCESS)
                }
                other => other.map(|()| ExitCode::SUCCESS),
            }
        }
        Command::Serve(args) => {
            let options = crate::serve::ServeOptions {
                flight: args.flight,
                http: args.http,
                tls: args.tls_cert.zip(args.tls_key),
                token_ttl: std::time::Duration::from_secs(args.token_ttl.max(1)),
                scheduler: !args.no_scheduler,
                scan_cache: match args.scan_cache {
                    CacheSize::Auto => crate::serve::default_scan_cache(),
                    CacheSize::Bytes(bytes) => bytes,
                },
            };
            crate::serve::serve(std::sync::Arc::clone(engine), options)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Cluster {
            command: ClusterCommand::Scheduler { bind },
        } => crate::cluster::run_scheduler(std::sync::Arc::clone(engine), bind)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Cluster {
            command:
                ClusterCommand::Executor {
                    scheduler,
                    bind,
                    slots,
                    work_dir,
                },
        } => {
            let options = crate::cluster::ExecutorOptions {
                scheduler: crate::cluster::ClusterAddress::parse(&scheduler)?,
                bind,
                slots: slots
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                work_dir,
            };
            crate::cluster::run_executor(std::sync::Arc::clone(engine), options)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Jobs {
            command: JobsCommand::RunDue,
        } => {
            let scheduler = crate::scheduler::Scheduler::new(std::sync::Arc::clone(engine));
            let mut failed = false;
            // Jobs due now, then those after them, wave by wave; each job
            // runs at most once.
            let begun = chrono::Utc::now();
            let mut done = std::collections::HashSet::new();
            loop {
                let handles = scheduler.start_due_except(&done).await?;
                if handles.is_empty() {
                    break;
                }
                for handle in handles {
                    match handle.await {
                        Ok(Ok(r)) if r.status == crate::jobs::RunStatus::Skipped => {
                            println!("{}: nothing new", r.job);
                        }
                        Ok(Ok(r)) => println!(
                            "{} run {}: {} ({} rows read, {} written, {} late)",
                            r.job, r.run, r.status, r.rows_read, r.rows_written, r.late_rows
                        ),
                        Ok(Err(e)) => {
                            failed = true;
                            eprintln!("error: {e}");
                        }
                        Err(e) => {
                            failed = true;
                            eprintln!("error: a job run stopped: {e}");
                        }
                    }
                }
                for job in engine.jobs().list().await? {
                    let state = engine.jobs().state(&job.name).await?;
                    if state.last_start.is_some_and(|t| t >= begun) {
                        done.insert(job.name);
                    }
                }
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Runs a script: parses it whole first (a syntax error anywhere runs
/// nothing), then each statement in order, stopping at the first failure.
pub async fn run_script(
    session: &Session,
    sql: &str,
    format: Format,
    out: &mut dyn Write,
) -> ExitCode {
    let statements = match session.parse(sql) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    for statement in &statements {
        match run_one(session, statement, format, out).await {
            Ok(()) => {}
            // The reader went away (`| head`): stop quietly, like other CLIs.
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("error: {}", describe_failure(statement, &e));
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

/// "in statement `…` (line n): message"
fn describe_failure(statement: &ParsedStatement, e: &Error) -> String {
    let text: String = statement
        .display_text()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let short = if text.chars().count() > 80 {
        format!("{}…", text.chars().take(79).collect::<String>())
    } else {
        text
    };
    let message = e
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "in statement `{short}` (line {}): {message}",
        statement.line
    )
}

async fn run_one(
    session: &Session,
    statement: &ParsedStatement,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let bar = ProgressDisplay::start(session, &statement.statement);
    let result = session.execute_statement(statement).await;
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            drop(bar);
            return Err(e);
        }
    };
    let schema = result.schema();
    let mut stream = result.into_stream();
    let mut writer = ResultWriter::new(format, out);
    let mut failed = None;
    while let Some(batch) = stream.next().await {
        match batch {
            Ok(batch) => writer.batch(&batch)?,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(bar);
    if let Some(e) = failed {
        return Err(e.into());
    }
    if !schema.fields().is_empty() {
        writer.finish(&schema)?;
    }
    Ok(())
}

/// The progress bar of a long statement (SYNC, CREATE MODEL, OPTIMIZE,
/// VACUUM, CTAS, INSERT … SELECT, …), on stderr when it is a terminal and
/// nowhere otherwise: rows and rows/s, and a bar with percentage and ETA
/// where the total is known (a plan's row count, training epochs). It
/// reads the session's [`crate::progress::Progress`] ten times a
/// second; the statement itself only adds to a counter.
struct ProgressDisplay {
    ticker: tokio::task::JoinHandle<()>,
    bar: indicatif::ProgressBar,
    _watch: crate::progress::Watch,
}

impl ProgressDisplay {
    fn start(session: &Session, statement: &autolake_sql::Statement) -> Option<Self> {
        if !statement.is_long_running() || !std::io::stderr().is_terminal() {
            return None;
        }
        let progress = Arc::clone(session.progress());
        let watch = progress.watch();
        // Drawn only once it has its style, prefix and unit.
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
        bar.set_style(progress_style(false));
        bar.set_prefix(statement.kind());
        bar.set_message("rows");
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(10));
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_millis(100));
            // The stage shown and whether its total is known.
            let mut shape: Option<(u64, bool)> = None;
            loop {
                every.tick().await;
                let now = progress.snapshot();
                let now_shape = (now.stage, now.total.is_some());
                if shape.map(|s| s.0) != Some(now.stage) {
                    // A new stage: its rate and ETA start afresh.
                    shown.reset();
                }
                // Figures first, then the words and the style that show
                // them: a draw between two calls is never of a mix.
                shown.set_length(now.total.unwrap_or(0));
                shown.set_position(now.done);
                shown.set_prefix(now.label.clone());
                shown.set_message(now.unit);
                if shape != Some(now_shape) {
                    shown.set_style(progress_style(now_shape.1));
                    shape = Some(now_shape);
                }
                shown.tick();
            }
        });
        Some(Self {
            ticker,
            bar,
            _watch: watch,
        })
    }
}

impl Drop for ProgressDisplay {
    fn drop(&mut self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// A bar with percentage and ETA when the total is known; a count and a
/// rate otherwise.
fn progress_style(total_known: bool) -> indicatif::ProgressStyle {
    let template = if total_known {
        "{spinner} {prefix} [{bar:30}] {percent}% {human_pos}/{human_len} {msg} ({rate}, ETA {eta})"
    } else {
        "{spinner} {prefix} {human_pos} {msg} ({rate}, {elapsed})"
    };
    indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let rate = state.per_sec();
                let _ = if rate >= 100.0 {
                    write!(w, "{}/s", indicatif::HumanCount(rate as u64))
                } else {
                    write!(w, "{rate:.1}/s")
                };
            },
        )
        .progress_chars("=> ")
}

/// Writes result batches in one of the output formats; `table` needs all
/// rows for column widths, the others stream.
struct ResultWriter<'a> {
    format: Format,
    out: &'a mut dyn Write,
    table_rows: Vec<RecordBatch>,
    wrote_header: bool,
    json_rows: usize,
}

impl<'a> ResultWriter<'a> {
    fn new(format: Format, out: &'a mut dyn Write) -> Self {
        Self {
            format,
            out,
            table_rows: Vec::new(),
            wrote_header: false,
            json_rows: 0,
        }
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_columns() == 0 {
            return Ok(());
        }
        match self.format {
            Format::Table => self.table_rows.push(batch.clone()),
            Format::Csv => {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(!self.wrote_header)
                    .build(&mut *self.out);
                w.write(&csv_ready(batch)?)?;
                self.wrote_header = true;
            }
            Format::Ndjson => {
                let mut w = arrow::json::LineDelimitedWriter::new(&mut *self.out);
                w.write(batch)?;
                w.finish()?;
            }
            Format::Json => {
                let mut buf = Vec::new();
                {
                    let mut w = arrow::json::ArrayWriter::new(&mut buf);
                    w.write(batch)?;
                    w.finish()?;
                }
                // Splice batches into one array: strip each batch's brackets.
                let text = String::from_utf8_lossy(&buf);
                let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
                if !inner.is_empty() {
                    let sep = if self.json_rows == 0 { "[" } else { "," };
                    write!(self.out, "{sep}{inner}")?;
                    self.json_rows += batch.num_rows();
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, schema: &arrow::datatypes::SchemaRef) -> Result<()> {
        match self.format {
            Format::Table => {
                let table = if self.table_rows.is_empty() {
                    arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                        Arc::clone(schema),
                    )])?
                } else {
                    arrow::util::pretty::pretty_format_batches(&self.table_rows)?
                };
                writeln!(self.out, "{table}")?;
            }
            Format::Csv if !self.wrote_header => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(self.out, "{}", names.join(","))?;
            }
            Format::Json => {
                if self.json_rows == 0 {
                    writeln!(self.out, "[]")?;
                } else {
                    writeln!(self.out, "]")?;
                }
            }
            Format::Csv | Format::Ndjson => {}
        }
        self.out.flush()?;
        Ok(())
    }
}

/// `batch` with its lists, structs and maps as their JSON text: CSV has no
/// nested values (table and JSON output show them as they are).
fn csv_ready(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<arrow::array::ArrayRef> = Vec::with_capacity(fields.capacity());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if field.data_type().is_nested() {
            columns.push(Arc::new(json_text(field.data_type(), column)?));
            fields.push(Field::new(field.name(), DataType::Utf8, true));
        } else {
            columns.push(Arc::clone(column));
            fields.push(field.as_ref().clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Each value of `column` as JSON text (NULL stays NULL).
fn json_text(
    data_type: &arrow::datatypes::DataType,
    column: &arrow::array::ArrayRef,
) -> Result<arrow::array::StringArray> {
    use arrow::datatypes::{Field, Schema};
    let single = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("v", data_type.clone(), true)])),
        vec![Arc::clone(column)],
    )?;
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        w.write(&single)?;
        w.finish()?;
    }
    // One line a row: {"v": …}, or {} where the value is NULL.
    let text = String::from_utf8_lossy(&buf);
    let values = text
        .lines()
        .map(|line| {
            let row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
                .map_err(|e| Error::invalid(format!("cannot show a nested value as CSV: {e}")))?;
            Ok(row.get("v").map(|v| v.to_string()))
        })
        .collect::<Result<Vec<Option<String>>>>()?;
    Ok(arrow::array::StringArray::from(values))
}

/// The interactive REPL: statements end with `;` and may span lines;
/// `\q` (or Ctrl-D) quits; history is kept in `~/.autolake_history`.
async fn repl(session: &Session, format: Format) -> Result<ExitCode> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new()
        .map_err(|e| Error::invalid(format!("cannot start the line editor: {e}")))?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".autolake_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    eprintln!(
        "AutoLake {} — lake {} — end statements with ';', \\q to quit",
        env!("CARGO_PKG_VERSION"),
        session.engine().lake().uri()
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "autolake> "
        } else {
            "       -> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
                    break;
                }
                if trimmed.is_empty() && buffer.is_empty() {
                    continue;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if buffer.trim_end().ends_with(';') {
                    let sql = std::mem::take(&mut buffer);
                    let _ = editor.add_history_entry(sql.trim());
                    let mut out = std::io::stdout().lock();
                    run_script(session, &sql, format, &mut out).await;
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::invalid(format!("input error: {e}"))),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_cache_sizes() {
        assert_eq!(parse_cache_size("auto"), Ok(CacheSize::Auto));
        assert_eq!(parse_cache_size("0"), Ok(CacheSize::Bytes(0)));
        assert_eq!(parse_cache_size("512MiB"), Ok(CacheSize::Bytes(512 << 20)));
        assert_eq!(parse_cache_size("2 GB"), Ok(CacheSize::Bytes(2 << 30)));
        for bad in ["lots", "2 parsecs", "GiB", "-1", "99999999999TiB"] {
            let e = parse_cache_size(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        let usage = Cli::try_parse_from(["autolake", "serve", "--scan-cache", "big"]).unwrap_err();
        assert_eq!(usage.exit_code(), 2);
        assert!(usage.to_string().contains("'big' is not a size"), "{usage}");
    }

    #[test]
    fn config_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("autolake.toml");
        std::fs::write(
            &file,
            "lake = \"/from/file\"\n[storage_options]\nregion = \"x\"\n",
        )
        .unwrap();
        let cli = Cli::parse_from(["autolake", "--config", file.to_str().unwrap(), "demo"]);
        let config = engine_config(&cli).unwrap();
        assert_eq!(config.lake, "/from/file");
        assert_eq!(config.storage_options["region"], "x");
        let cli = Cli::parse_from([
            "autolake",
            "--config",
            file.to_str().unwrap(),
            "--lake",
            "/flag",
            "demo",
        ]);
        assert_eq!(engine_config(&cli).unwrap().lake, "/flag");
        std::fs::write(&file, "lakes = 1\n").unwrap();
        let cli = Cli::parse_from(["autolake", "--config", file.to_str().unwrap(), "demo"]);
        let err = engine_config(&cli).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
