//! Drift tests through SQL against scipy/numpy on the same data, in one
//! run.
//!
//! 1. Creates a lake table of `--rows` reference and `--rows` current
//!    values (normal samples, the current one shifted and wider) with
//!    `CREATE TABLE … AS SELECT` in a temporary lake.
//! 2. For each test, spawns this binary once per measurement (so each
//!    process's peak memory is the test's own) and times
//!    `SELECT drift_x(x, is_current) FROM …` twice: over the lake table
//!    (the Delta scan included) and over the same rows already in memory
//!    (a `MemTable` of two partitions, loaded before the clock starts) —
//!    the like-for-like comparison with Python, whose arrays are loaded
//!    before its clock starts too.
//! 3. Runs the Python baseline (`drift_baseline.py`) on the same Delta
//!    table: it loads the two samples into numpy arrays (not timed) and
//!    times `scipy.stats.ks_2samp`, `scipy.stats.wasserstein_distance`
//!    (normalised as Evidently), PSI and Jensen–Shannon with
//!    `numpy.histogram` bins, each in its own process.
//! 4. Prints best-of-`--iterations` seconds, peak RSS, the speed-up over
//!    Python (in memory against in memory) and both statistics (they must
//!    agree).
//!
//! ```text
//! scripts/bench.sh drift --rows 10000000
//! ```
//!
//! Python: `AUTOLAKE_BENCH_PYTHON`, else `.venv/bin/python` (numpy, scipy
//! and deltalake installed), else `python3`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use arrow::array::{Array, AsArray, Float64Array};
use autolake_engine::{Engine, EngineConfig, Interface, Principal};
use clap::Parser;

#[path = "common.rs"]
mod common;
use common::python;

#[derive(Debug, Parser)]
#[command(about = "Drift tests through AutoLake SQL vs scipy/numpy on the same data")]
struct Args {
    /// Values per sample.
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Measurements per test (the best is reported).
    #[arg(long, default_value_t = 3)]
    iterations: usize,
    /// Internal: run one test on an existing lake and print its timing.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Internal: the lake of `--child`.
    #[arg(long, hide = true)]
    lake: Option<PathBuf>,
    /// Internal: with `--child`, read the rows from memory.
    #[arg(long, hide = true)]
    memory: bool,
}

const TESTS: [(&str, &str); 4] = [
    ("ks", "drift_ks(x, is_current)['statistic']"),
    ("wasserstein", "drift_wasserstein(x, is_current)"),
    ("psi", "drift_psi(x, is_current)"),
    ("js", "drift_js(x, is_current)"),
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let (Some(test), Some(lake)) = (&args.child, &args.lake) {
        return child(test, lake, args.memory).await;
    }

    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let engine = Engine::open(EngineConfig::for_lake(lake.display().to_string())).await?;
    let session = engine.session(Principal::local_admin(), Interface::Embedded);
    let started = Instant::now();
    // Box–Muller normals: reference N(0, 1), current N(0.1, 1.1²).
    session
        .execute(&format!(
            "CREATE TABLE samples AS
             SELECT is_current,
                    CASE WHEN is_current THEN 0.1 + 1.1 * z ELSE z END AS x
             FROM (SELECT value >= {n} AS is_current,
                          sqrt(-2.0 * ln(1.0 - random())) * cos(2.0 * pi() * random()) AS z
                   FROM generate_series(0, {last}))",
            n = args.rows,
            last = 2 * args.rows - 1
        ))
        .await?;
    println!(
        "data: {} + {} values written to a lake table in {:.1}s",
        args.rows,
        args.rows,
        started.elapsed().as_secs_f64()
    );
    let table = lake.join("tables/public/samples");

    let exe = std::env::current_exe()?;
    let python = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("drift_baseline.py");
    println!(
        "\n{:<12} {:>10} {:>10} {:>10} {:>8} {:>11} {:>11}   statistic (autolake / python)",
        "test", "scan s", "memory s", "python s", "speedup", "autolake MB", "python MB"
    );
    for (test, _) in TESTS {
        let measure = |memory: bool| {
            let mut command = Command::new(&exe);
            command.args(["--child", test, "--lake", &lake.display().to_string()]);
            if memory {
                command.arg("--memory");
            }
            best(args.iterations, || run_json(&mut command))
        };
        let scan = measure(false)?;
        let ours = measure(true)?;
        let theirs = best(args.iterations, || {
            run_json(Command::new(&python).arg(&script).arg(test).arg(&table))
        })?;
        println!(
            "{:<12} {:>10.3} {:>10.3} {:>10.3} {:>7.1}x {:>11.0} {:>11.0}   {:.12} / {:.12}",
            test,
            scan.seconds,
            ours.seconds,
            theirs.seconds,
            theirs.seconds / ours.seconds,
            ours.peak_mb,
            theirs.peak_mb,
            ours.statistic,
            theirs.statistic
        );
    }
    Ok(())
}

/// One measurement.
#[derive(Debug, Clone, Copy)]
struct Measurement {
    seconds: f64,
    peak_mb: f64,
    statistic: f64,
}

fn best(
    iterations: usize,
    mut run: impl FnMut() -> Result<Measurement, Box<dyn std::error::Error>>,
) -> Result<Measurement, Box<dyn std::error::Error>> {
    let mut best: Option<Measurement> = None;
    for _ in 0..iterations.max(1) {
        let m = run()?;
        best = Some(match best {
            Some(b) if b.seconds <= m.seconds => b,
            _ => m,
        });
    }
    Ok(best.expect("at least one iteration"))
}

/// Runs a measuring process; it prints `seconds peak_mb statistic`.
fn run_json(command: &mut Command) -> Result<Measurement, Box<dyn std::error::Error>> {
    let out = command.output()?;
    if !out.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    let fields: Vec<f64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [seconds, peak_mb, statistic] = fields[..] else {
        return Err(format!("unexpected output from {command:?}: {text}").into());
    };
    Ok(Measurement {
        seconds,
        peak_mb,
        statistic,
    })
}

async fn child(
    test: &str,
    lake: &std::path::Path,
    memory: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let (_, expr) = TESTS
        .iter()
        .find(|(name, _)| *name == test)
        .ok_or("unknown test")?;
    let engine = Engine::open(EngineConfig::for_lake(lake.display().to_string())).await?;
    let session = engine.session(Principal::local_admin(), Interface::Embedded);
    let table = if memory {
        // The rows in memory, dealt into two partitions (one per core).
        let rows = session.execute("SELECT x, is_current FROM samples").await?;
        let schema = rows.first().ok_or("no rows")?.schema();
        let mut partitions = vec![Vec::new(), Vec::new()];
        for (i, batch) in rows.into_iter().enumerate() {
            partitions[i % 2].push(batch);
        }
        let table = datafusion::datasource::MemTable::try_new(schema, partitions)?;
        session
            .context()
            .register_table("samples_in_memory", std::sync::Arc::new(table))?;
        "samples_in_memory"
    } else {
        "samples"
    };
    let started = Instant::now();
    let batches = session
        .execute(&format!("SELECT {expr} FROM {table}"))
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let column = batches[0].column(0);
    let values: &Float64Array = column.as_primitive();
    let statistic = if values.is_null(0) {
        f64::NAN
    } else {
        values.value(0)
    };
    println!("{seconds} {} {statistic}", peak_rss_mb());
    Ok(())
}

/// This process's peak resident memory, from `/proc/self/status`.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
