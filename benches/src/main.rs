//! TPC-H over the lake against plain DataFusion over Parquet, in one run.
//!
//! 1. Generates TPC-H at the chosen scale factor in memory (`tpchgen`).
//! 2. Load: writes the same batches (a) as plain Parquet files with
//!    `ArrowWriter` (the baseline) and (b) into lake tables through an
//!    AutoLake session (`CREATE TABLE … AS SELECT` — a Delta commit per
//!    table), and reports rows/s and the ratio.
//! 3. Queries: runs the 22 queries on a plain DataFusion `SessionContext`
//!    over the Parquet files and on the AutoLake session over the lake
//!    tables, alternating, `--iterations` times each, and reports the best
//!    time per query, the ratio and the geometric mean of the ratios.
//!
//! With `--governance`, step 3 instead compares the same queries run by a
//! user under row policies (keeping every row) and column masks, with the
//! audit log on, against the local admin on an engine opened without
//! governance (no boundaries, no audit). It does so twice: with policies
//! the data files' statistics prove true for every row (`l_quantity > 0`,
//! which the engine then skips), and with the same policies written as
//! `abs(l_quantity) > 0`, which no statistics prove, so every row is read
//! and tested.
//!
//! With `--observability`, step 3 instead compares an engine that records
//! metrics and query history (`system.queries`) with one opened without
//! them, on the same lake: the 22 queries, then 2000 one-row statements
//! (where a per-statement cost shows), then a copy of `lineitem` with and
//! without a watched progress count (what the CLI's progress bar reads).
//!
//! With `--cluster N`, step 3 instead compares the queries run by this
//! process with the same queries sent to a Ballista cluster of one
//! scheduler and N executors started on this machine (`autolake cluster
//! …`): what distribution costs where nothing is gained by it.
//!
//! ```text
//! scripts/bench.sh tpch --scale 1
//! scripts/bench.sh tpch --scale 1 --governance
//! scripts/bench.sh tpch --scale 1 --observability
//! scripts/bench.sh tpch --scale 1 --cluster 2
//! ```

/// The allocator of the `autolake` binary, so that what is measured here
/// allocates as the product does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod tpch_data;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use autolake_engine::{Engine, EngineConfig, Interface, Principal, Session};
use clap::Parser;
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tpch_data::{QUERIES, Table, generate};

#[derive(Debug, Parser)]
#[command(about = "TPC-H: AutoLake lake tables vs plain DataFusion over Parquet")]
struct Args {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Working folder (emptied first).
    #[arg(long, default_value = "target/tpch-bench")]
    dir: PathBuf,
    /// Runs of each query per engine; the best is reported.
    #[arg(long, default_value_t = 3)]
    iterations: usize,
    /// Only these queries (1-22), comma separated.
    #[arg(long, value_delimiter = ',')]
    queries: Vec<usize>,
    /// Measure governance instead: the queries run by a user under row
    /// policies (that keep every row) and column masks, with the audit log
    /// on, against the local admin on an engine without governance.
    #[arg(long)]
    governance: bool,
    /// Measure observability instead: metrics and query history on
    /// against an engine opened without them, and the progress count.
    #[arg(long)]
    observability: bool,
    /// Measure scale-out instead: the queries on this process against a
    /// Ballista cluster of one scheduler and this many executors, started
    /// on this machine from the `autolake` binary beside this one.
    #[arg(long)]
    cluster: Option<usize>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)?;
    }
    std::fs::create_dir_all(&args.dir)?;

    let started = Instant::now();
    let tables = generate(args.scale)?;
    let total_rows: usize = tables.iter().map(Table::rows).sum();
    println!(
        "generated TPC-H SF{} ({} rows) in {:.1}s",
        args.scale,
        total_rows,
        started.elapsed().as_secs_f64()
    );

    // Load: plain Parquet, then the lake.
    let parquet_dir = args.dir.join("parquet");
    let started = Instant::now();
    for t in &tables {
        write_parquet(&parquet_dir, t)?;
    }
    let parquet_load = started.elapsed();

    let lake_dir = args.dir.join("lake");
    let engine = Engine::open(EngineConfig::for_lake(lake_dir.to_string_lossy())).await?;
    let session = engine.session(Principal::local_admin(), Interface::Embedded);
    let mut lake_load = Duration::ZERO;
    for t in &tables {
        let mem = MemTable::try_new(Arc::clone(&t.schema), vec![t.batches.clone()])?;
        session
            .context()
            .register_table(format!("mem_{}", t.name), Arc::new(mem))?;
        let started = Instant::now();
        session
            .execute(&format!(
                "CREATE TABLE {} AS SELECT * FROM mem_{}",
                t.name, t.name
            ))
            .await?;
        lake_load += started.elapsed();
        session
            .context()
            .deregister_table(format!("mem_{}", t.name))?;
    }
    let rate = |d: Duration| total_rows as f64 / d.as_secs_f64();
    println!("\nload ({} rows)", total_rows);
    println!(
        "  plain parquet : {:>8.2}s {:>12.0} rows/s",
        parquet_load.as_secs_f64(),
        rate(parquet_load)
    );
    println!(
        "  autolake      : {:>8.2}s {:>12.0} rows/s",
        lake_load.as_secs_f64(),
        rate(lake_load)
    );
    let load_ratio = lake_load.as_secs_f64() / parquet_load.as_secs_f64();
    println!("  ratio (autolake / parquet): {load_ratio:.3}x   target <= 1.30x");
    drop(tables);

    if args.governance {
        return governance(&args, &lake_dir, &session).await;
    }
    if args.observability {
        session.engine().close().await?;
        return observability(&args, &lake_dir).await;
    }
    if let Some(executors) = args.cluster {
        session.engine().close().await?;
        return cluster(&args, &lake_dir, executors).await;
    }

    // Queries.
    let baseline = SessionContext::new();
    for name in TABLES {
        baseline
            .register_parquet(
                name,
                parquet_dir.join(name).to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await?;
    }
    let geomean = compare(
        &args,
        (&Runner::DataFusion(&baseline), "datafusion"),
        (&Runner::AutoLake(&session), "autolake"),
    )
    .await?;
    println!("geomean ratio (autolake / datafusion): {geomean:.3}x   target <= 1.10x");
    Ok(())
}

/// Governance on vs off over the same lake tables, alternating per query.
/// The policies keep every row and the masked columns (addresses) are only
/// ever shown by the queries, so both sides return the same row counts.
async fn governance(
    args: &Args,
    lake_dir: &Path,
    admin: &Session,
) -> Result<(), Box<dyn std::error::Error>> {
    admin
        .execute(
            "CREATE USER analyst PASSWORD 'analyst-pw';
             GRANT SELECT ON CATALOG lake TO USER analyst;
             CREATE POLICY positive_quantity ON lineitem TO analyst USING (l_quantity > 0);
             CREATE POLICY positive_total ON orders TO analyst USING (o_totalprice > 0);
             CREATE USER opaque PASSWORD 'opaque-pw';
             GRANT SELECT ON CATALOG lake TO USER opaque;
             CREATE POLICY opaque_quantity ON lineitem TO opaque USING (abs(l_quantity) > 0);
             CREATE POLICY opaque_total ON orders TO opaque USING (abs(o_totalprice) > 0);
             ALTER TABLE customer ALTER COLUMN c_address SET MASK ('***' || right(c_address, 3));
             ALTER TABLE supplier ALTER COLUMN s_address SET MASK ('***' || right(s_address, 3))",
        )
        .await?;
    let user = |name: &str| {
        admin.engine().session(
            Principal {
                name: name.to_string(),
                roles: Vec::new(),
                stored: true,
            },
            Interface::Embedded,
        )
    };
    let (on, opaque) = (user("analyst"), user("opaque"));
    let mut config = EngineConfig::for_lake(lake_dir.to_string_lossy());
    config.ungoverned = true;
    let off_engine = Engine::open(config).await?;
    let off = off_engine.session(Principal::local_admin(), Interface::Embedded);
    let geomean = compare(
        args,
        (&Runner::AutoLake(&off), "governance off"),
        (&Runner::AutoLake(&on), "governance on"),
    )
    .await?;
    // The same policies written so that file statistics cannot prove them
    // (a function call): every row is read and tested.
    println!("\npolicies the file statistics cannot prove (abs(x) > 0):");
    let opaque_geomean = compare(
        args,
        (&Runner::AutoLake(&off), "governance off"),
        (&Runner::AutoLake(&opaque), "governance on, opaque"),
    )
    .await?;
    // Statements so small that the per-statement cost shows: the
    // governance state check and the audit entry.
    let small = 2000;
    let (mut small_off, mut small_on) = (Duration::MAX, Duration::MAX);
    for _ in 0..args.iterations {
        for (runner, best) in [(&off, &mut small_off), (&on, &mut small_on)] {
            let started = Instant::now();
            for i in 0..small {
                runner.execute(&format!("SELECT {i} AS n")).await?;
            }
            *best = (*best).min(started.elapsed());
        }
    }
    println!(
        "{small} one-row statements: governance off {:.1}ms, on {:.1}ms ({:.3}x, {:.0} µs more per statement)",
        small_off.as_secs_f64() * 1e3,
        small_on.as_secs_f64() * 1e3,
        small_on.as_secs_f64() / small_off.as_secs_f64(),
        (small_on.as_secs_f64() - small_off.as_secs_f64()) * 1e6 / small as f64
    );
    admin.engine().close().await?;
    let audited = admin
        .execute("SELECT count(*) FROM system.audit_log")
        .await?;
    let entries = audited
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
        })
        .map_or(0, |c| c.value(0));
    println!("audit log entries written: {entries}");
    println!(
        "geomean ratio (governance on / off), policies proven by statistics: {geomean:.3}x   target <= 1.03x"
    );
    println!(
        "geomean ratio (governance on / off), policies tested on every row: {opaque_geomean:.3}x"
    );
    Ok(())
}

/// Metrics and query history on against off: two engines opened afresh on
/// the loaded lake, alike but for that switch; then the progress count's
/// cost on a write.
async fn observability(args: &Args, lake_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let open = |unobserved: bool| {
        let mut config = EngineConfig::for_lake(lake_dir.to_string_lossy());
        config.unobserved = unobserved;
        Engine::open(config)
    };
    let (on_engine, off_engine) = (open(false).await?, open(true).await?);
    let on = &on_engine.session(Principal::local_admin(), Interface::Embedded);
    let off = off_engine.session(Principal::local_admin(), Interface::Embedded);
    let geomean = compare(
        args,
        (&Runner::AutoLake(&off), "observed off"),
        (&Runner::AutoLake(on), "observed on"),
    )
    .await?;
    let small = 2000;
    let (mut small_off, mut small_on) = (Duration::MAX, Duration::MAX);
    for round in 0..args.iterations {
        // Each goes first in turn, so drift in the machine favours neither.
        let mut order = [(&off, &mut small_off), (on, &mut small_on)];
        if round % 2 == 1 {
            order.reverse();
        }
        for (runner, best) in order {
            let started = Instant::now();
            for i in 0..small {
                runner
                    .execute(&format!(
                        "SELECT n_name FROM nation WHERE n_nationkey = {}",
                        i % 25
                    ))
                    .await?;
            }
            *best = (*best).min(started.elapsed());
        }
    }
    let per_statement = (small_on.as_secs_f64() - small_off.as_secs_f64()) * 1e6 / small as f64;
    println!(
        "{small} one-row statements: observed off {:.1}ms, on {:.1}ms ({:.3}x, {per_statement:.1} µs more per statement)   target <= 1.02x, <= 50 µs",
        small_off.as_secs_f64() * 1e3,
        small_on.as_secs_f64() * 1e3,
        small_on.as_secs_f64() / small_off.as_secs_f64(),
    );

    // The progress count: a copy of lineitem, watched (a reader polling
    // ten times a second, as the CLI's bar does) or not, alternating.
    let (mut quiet, mut watched) = (Duration::MAX, Duration::MAX);
    for i in 0..args.iterations {
        for watch in [false, true] {
            let guard = watch.then(|| on.progress().watch());
            let progress = Arc::clone(on.progress());
            let reader = tokio::spawn(async move {
                let mut last = 0;
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    last = last.max(progress.snapshot().done);
                }
            });
            let started = Instant::now();
            on.execute(&format!(
                "CREATE TABLE copy_{i}_{watch} AS SELECT * FROM lineitem"
            ))
            .await?;
            let elapsed = started.elapsed();
            reader.abort();
            let counted = on.progress().snapshot().done;
            if watch && counted == 0 {
                return Err("the watched copy counted no rows".into());
            }
            drop(guard);
            let best = if watch { &mut watched } else { &mut quiet };
            *best = (*best).min(elapsed);
        }
    }
    println!(
        "copy of lineitem: progress unwatched {:.1}ms, watched {:.1}ms ({:.3}x)   target <= 1.00x (noise aside)",
        quiet.as_secs_f64() * 1e3,
        watched.as_secs_f64() * 1e3,
        watched.as_secs_f64() / quiet.as_secs_f64()
    );
    on.engine().close().await?;
    println!("geomean ratio (observed on / off): {geomean:.3}x   target <= 1.02x");
    Ok(())
}

/// The queries here against a cluster on this machine: the overhead of
/// distribution where nothing is gained by it.
async fn cluster(
    args: &Args,
    lake_dir: &Path,
    executors: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let binary = std::env::current_exe()?.with_file_name("autolake");
    if !binary.exists() {
        return Err(format!(
            "{} is missing: build it first (cargo build --bin autolake, or --release)",
            binary.display()
        )
        .into());
    }
    let free = || -> std::io::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let port = free()?;
    let address = format!("df://127.0.0.1:{port}");
    let slots = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = |args: Vec<String>| {
        std::process::Command::new(&binary)
            .arg("--lake")
            .arg(lake_dir)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    };
    let mut processes = vec![start(vec![
        "cluster".into(),
        "scheduler".into(),
        "--bind".into(),
        format!("127.0.0.1:{port}"),
    ])?];
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("the scheduler did not start in 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for _ in 0..executors {
            processes.push(start(vec![
                "cluster".into(),
                "executor".into(),
                "--scheduler".into(),
                address.clone(),
                "--bind".into(),
                "127.0.0.1:0".into(),
                "--slots".into(),
                slots.to_string(),
            ])?);
        }
        let local_engine = Engine::open(EngineConfig::for_lake(lake_dir.to_string_lossy())).await?;
        let local = local_engine.session(Principal::local_admin(), Interface::Embedded);
        let mut config = EngineConfig::for_lake(lake_dir.to_string_lossy());
        config.cluster = Some(address.clone());
        let remote_engine = Engine::open(config).await?;
        let remote = remote_engine.session(Principal::local_admin(), Interface::Embedded);
        // Every executor registered before anything is timed.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let listed = remote.execute("SHOW CLUSTER").await?;
            if listed.iter().map(RecordBatch::num_rows).sum::<usize>() >= executors {
                break;
            }
            if Instant::now() > deadline {
                return Err("the executors did not register in 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let geomean = compare(
            args,
            (&Runner::AutoLake(&local), "local"),
            (
                &Runner::AutoLake(&remote),
                &format!("{executors} executors"),
            ),
        )
        .await?;
        println!("geomean ratio (cluster of {executors} on this machine / local): {geomean:.3}x");
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    for process in &mut processes {
        let _ = process.kill();
        let _ = process.wait();
    }
    result
}

const TABLES: [&str; 8] = [
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

/// Where a query runs.
enum Runner<'a> {
    DataFusion(&'a SessionContext),
    AutoLake(&'a Session),
}

impl Runner<'_> {
    /// Runs `sql` once: its time and row count.
    async fn time(&self, sql: &str) -> Result<(Duration, usize), Box<dyn std::error::Error>> {
        let started = Instant::now();
        let batches = match self {
            Runner::DataFusion(ctx) => ctx.sql(sql).await?.collect().await?,
            Runner::AutoLake(session) => session.execute(sql).await?,
        };
        Ok((
            started.elapsed(),
            batches.iter().map(RecordBatch::num_rows).sum(),
        ))
    }
}

/// Runs the selected queries on `base` and `other`, alternating, best of
/// `--iterations` each; prints one line per query and returns the geometric
/// mean of the ratios other / base. Differing row counts are an error.
async fn compare(
    args: &Args,
    (base, base_name): (&Runner<'_>, &str),
    (other, other_name): (&Runner<'_>, &str),
) -> Result<f64, Box<dyn std::error::Error>> {
    let selected: Vec<usize> = if args.queries.is_empty() {
        (1..=22).collect()
    } else {
        args.queries.clone()
    };
    println!(
        "\n{:<5} {:>14} {:>14} {:>8} {:>8}",
        "query", base_name, other_name, "ratio", "rows"
    );
    let mut log_sum = 0.0;
    for q in &selected {
        let sql = QUERIES
            .get(q.wrapping_sub(1))
            .ok_or_else(|| format!("no TPC-H query {q}"))?;
        let (mut best_base, mut best_other) = (Duration::MAX, Duration::MAX);
        let mut rows = (0, 0);
        for _ in 0..args.iterations {
            let (d, r) = base.time(sql).await?;
            best_base = best_base.min(d);
            rows.0 = r;
            let (d, r) = other.time(sql).await?;
            best_other = best_other.min(d);
            rows.1 = r;
        }
        if rows.0 != rows.1 {
            return Err(format!(
                "q{q}: {base_name} returned {} rows, {other_name} {}",
                rows.0, rows.1
            )
            .into());
        }
        let ratio = best_other.as_secs_f64() / best_base.as_secs_f64();
        log_sum += ratio.ln();
        println!(
            "q{:<4} {:>12.1}ms {:>12.1}ms {:>7.3}x {:>8}",
            q,
            best_base.as_secs_f64() * 1e3,
            best_other.as_secs_f64() * 1e3,
            ratio,
            rows.0
        );
    }
    Ok((log_sum / selected.len() as f64).exp())
}

fn write_parquet(dir: &Path, table: &Table) -> Result<(), Box<dyn std::error::Error>> {
    let dir = dir.join(table.name);
    std::fs::create_dir_all(&dir)?;
    let file = std::fs::File::create(dir.join("part-0.parquet"))?;
    // The same codec as the lake's writer (delta-rs defaults to snappy).
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&table.schema), Some(props))?;
    for batch in &table.batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(())
}
