//! Sync throughput: a PostgreSQL table into Delta against the source's own
//! limit, and a CSV file into Delta against DataFusion reading that file,
//! in one run.
//!
//! 1. Loads `--rows` rows (BIGINT id, INT, DOUBLE, NUMERIC(12,2), TEXT,
//!    TIMESTAMP) into PostgreSQL with `generate_series`.
//! 2. Baseline: `psql -c "COPY (SELECT * FROM t) TO STDOUT (FORMAT binary)"`
//!    into /dev/null: what the server can hand out, read by this machine.
//! 3. `autolake sql -e "CREATE SOURCE …; SYNC TABLE …"` as a child process,
//!    timed, its peak memory (max RSS) read from the kernel's accounting of
//!    waited-for children.
//! 4. Writes the same rows as a CSV file; DataFusion reads it (every column,
//!    streamed and dropped) as the baseline; `SYNC TABLE` from a files
//!    source into Delta is timed against it, and so is `CREATE TABLE … AS
//!    SELECT` from an external CSV table.
//! 5. The same for NDJSON (written by DataFusion from the CSV).
//! 6. `SYNC … KEY (id)` twice: the second run merges every row into the
//!    table the first wrote, under `--merge-memory 256MiB`: its peak memory
//!    is what bounded merging holds to.
//!
//! ```text
//! scripts/bench.sh sync --rows 5000000
//! ```
//!
//! Needs `psql` and a PostgreSQL at `AUTOLAKE_TEST_POSTGRES_URL` (user
//! `postgres`, trust auth, database `test`), and an optimised `autolake`
//! binary beside this one: `scripts/bench.sh sync` builds both and starts
//! the test suite's throwaway PostgreSQL for the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::Parser;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, SessionContext};
use futures::StreamExt;

#[derive(Debug, Parser)]
#[command(about = "SYNC TABLE: PostgreSQL → Delta vs COPY binary; CSV → Delta vs DataFusion")]
struct Args {
    /// Rows in the source table.
    #[arg(long, default_value_t = 5_000_000)]
    rows: u64,
}

/// The benchmark's PostgreSQL (`AUTOLAKE_TEST_POSTGRES_URL`).
fn postgres_url() -> String {
    std::env::var("AUTOLAKE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        eprintln!(
            "AUTOLAKE_TEST_POSTGRES_URL is not set: run `scripts/bench.sh sync`, which starts a throwaway PostgreSQL"
        );
        std::process::exit(2)
    })
}

/// `psql` connected to the benchmark's database, quiet.
fn psql_cmd() -> Command {
    let mut cmd = Command::new("psql");
    cmd.args(["-d", &postgres_url(), "-q"]);
    cmd
}

fn psql(sql: &str) -> Result<(), String> {
    let status = psql_cmd()
        .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("psql: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("psql failed: {sql}"))
    }
}

/// Runs a command, returning (seconds, its peak RSS in MiB, sampled from
/// `/proc/<pid>/status` every 20 ms).
fn timed(cmd: &mut Command) -> Result<(f64, f64), String> {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("{cmd:?} failed: {err}"));
    }
    Ok((secs, peak_kib as f64 / 1024.0))
}

fn autolake_bin() -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    me.with_file_name("autolake")
}

fn autolake(lake: &Path, sql: &str) -> Command {
    let mut cmd = Command::new(autolake_bin());
    cmd.arg("--lake").arg(lake).args(["-q", "sql", "-e", sql]);
    cmd
}

/// Reads every row of `frame` (every column decoded, then dropped).
async fn drain(frame: datafusion::dataframe::DataFrame) -> Result<u64, Box<dyn std::error::Error>> {
    let mut stream = frame.execute_stream().await?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch?.num_rows() as u64;
    }
    Ok(rows)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let n = args.rows;
    if !autolake_bin().exists() {
        return Err(format!(
            "{} not found: build it with scripts/bench.sh sync",
            autolake_bin().display()
        )
        .into());
    }
    let dir = tempfile::tempdir()?;
    println!("loading {n} rows into PostgreSQL …");
    psql("DROP TABLE IF EXISTS bench_sync")?;
    psql(&format!(
        "CREATE TABLE bench_sync AS SELECT g::bigint AS id, (g % 1000)::int AS k, \
         g * 0.5::float8 AS x, (g % 100000)::numeric(12,2) AS amount, \
         'customer-' || (g % 50000) AS name, \
         timestamp '2026-01-01' + g * interval '1 second' AS at \
         FROM generate_series(1, {n}) g"
    ))?;

    // The source's own limit: COPY binary to this machine.
    let (copy_s, _) = timed(psql_cmd().args([
        "-c",
        "COPY (SELECT * FROM bench_sync) TO STDOUT (FORMAT binary)",
        "-o",
        "/dev/null",
    ]))?;

    let lake = dir.path().join("lake");
    let (sync_s, sync_rss) = timed(&mut autolake(
        &lake,
        &format!(
            "CREATE SOURCE pg TYPE postgres OPTIONS (url '{}'); \
             SYNC TABLE synced FROM pg.public.bench_sync",
            postgres_url()
        ),
    ))?;

    // CSV: the same rows as a file.
    let csv = dir.path().join("files").join("bench.csv");
    std::fs::create_dir_all(csv.parent().unwrap())?;
    let status = psql_cmd()
        .args(["-c", "COPY bench_sync TO STDOUT WITH (FORMAT csv, HEADER)"])
        .stdout(std::fs::File::create(&csv)?)
        .status()?;
    if !status.success() {
        return Err("COPY to CSV failed".into());
    }
    let csv_bytes = std::fs::metadata(&csv)?.len();
    let ctx = SessionContext::new();
    let start = Instant::now();
    let frame = ctx
        .read_csv(
            csv.display().to_string(),
            CsvReadOptions::new().has_header(true),
        )
        .await?;
    assert_eq!(drain(frame).await?, n);
    let df_csv_s = start.elapsed().as_secs_f64();
    let (csv_sync_s, csv_rss) = timed(&mut autolake(
        &lake,
        &format!(
            "CREATE SOURCE files TYPE files OPTIONS (location '{}/'); \
             SYNC TABLE from_csv FROM files.public.bench",
            csv.parent().unwrap().display()
        ),
    ))?;
    // DataFusion's own CSV reader into Delta: an external table copied.
    let (ctas_s, ctas_rss) = timed(&mut autolake(
        &lake,
        &format!(
            "CREATE EXTERNAL TABLE bench_csv STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true'); \
             CREATE TABLE from_ctas AS SELECT * FROM bench_csv",
            csv.display()
        ),
    ))?;

    // NDJSON: the same rows, written by DataFusion.
    let json = dir.path().join("json").join("bench.json");
    std::fs::create_dir_all(json.parent().unwrap())?;
    ctx.read_csv(
        csv.display().to_string(),
        CsvReadOptions::new().has_header(true),
    )
    .await?
    .write_json(
        &json.display().to_string(),
        DataFrameWriteOptions::new().with_single_file_output(true),
        None,
    )
    .await?;
    let start = Instant::now();
    let frame = ctx
        .read_json(json.display().to_string(), JsonReadOptions::default())
        .await?;
    assert_eq!(drain(frame).await?, n);
    let df_json_s = start.elapsed().as_secs_f64();
    let (json_sync_s, json_rss) = timed(&mut autolake(
        &lake,
        &format!(
            "CREATE SOURCE jsonfiles TYPE files OPTIONS (location '{}/', format 'json'); \
             SYNC TABLE from_json FROM jsonfiles.public.bench",
            json.parent().unwrap().display()
        ),
    ))?;

    // A merge on a key: every source row matches a target row. The merge
    // runs under a fixed memory pool, smaller than the rows it joins.
    let merge_memory = "256MiB";
    timed(&mut autolake(
        &lake,
        "SYNC TABLE keyed FROM pg.public.bench_sync KEY (id)",
    ))?;
    let (merge_s, merge_rss) = timed(
        autolake(&lake, "SYNC TABLE keyed FROM pg.public.bench_sync KEY (id)")
            .args(["--merge-memory", merge_memory]),
    )?;
    psql("DROP TABLE IF EXISTS bench_sync")?;

    let rate = |s: f64| n as f64 / s;
    println!(
        "\nrows: {n}  (CSV file: {:.0} MiB, NDJSON file: {:.0} MiB)\n",
        csv_bytes as f64 / 1048576.0,
        std::fs::metadata(&json)?.len() as f64 / 1048576.0
    );
    println!(
        "{:<44} {:>10} {:>14} {:>12}",
        "", "seconds", "rows/s", "peak MiB"
    );
    let row = |name: &str, secs: f64, rss: Option<f64>| {
        let rss = rss.map_or("-".to_string(), |r| format!("{r:.0}"));
        println!("{name:<44} {secs:>10.2} {:>14.0} {rss:>12}", rate(secs));
    };
    row("PostgreSQL COPY binary (source limit)", copy_s, None);
    row("SYNC TABLE PostgreSQL → Delta", sync_s, Some(sync_rss));
    row("DataFusion reads the CSV", df_csv_s, None);
    row("SYNC TABLE CSV → Delta", csv_sync_s, Some(csv_rss));
    row(
        "CREATE TABLE AS SELECT external CSV",
        ctas_s,
        Some(ctas_rss),
    );
    row("DataFusion reads the NDJSON", df_json_s, None);
    row("SYNC TABLE NDJSON → Delta", json_sync_s, Some(json_rss));
    row(
        &format!("SYNC … KEY merge ({merge_memory} pool)"),
        merge_s,
        Some(merge_rss),
    );
    println!(
        "\nPostgreSQL sync is {:.2}× COPY's rate (target ≥ 0.6); CSV sync is {:.2}× DataFusion's CSV read rate, \
         NDJSON sync {:.2}× its NDJSON read rate (target ≥ 0.5)",
        copy_s / sync_s,
        df_csv_s / csv_sync_s,
        df_json_s / json_sync_s
    );
    Ok(())
}
