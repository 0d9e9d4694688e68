//! Flight SQL throughput: `autolake serve` read by ADBC, against a
//! `pyarrow.flight` server and PostgreSQL's `psql` reading the same rows,
//! in one run.
//!
//! 1. Writes `--rows` lineitem-like numeric rows (8 columns: BIGINT keys,
//!    INT line numbers, DOUBLE quantities and prices) into a lake table.
//! 2. Serves the lake in this process (`autolake_engine::serve`).
//! 3. Runs `flight_baseline.py measure`: ADBC fetches `SELECT *` from
//!    AutoLake; a `pyarrow.flight` server (a separate Python process)
//!    serves the same rows, loaded from the same Delta table; `psql` reads
//!    them from a PostgreSQL table loaded with COPY; the `pyarrow.flight`
//!    client also reads AutoLake (Flight SQL by hand), so the two servers
//!    are compared with the same client, reading from the two servers in
//!    turn. Each is timed best of `--iterations`; throughput is the Arrow
//!    size of the rows over that time. Also the time to the first batch of `SELECT 1` through ADBC.
//!    "autolake is" compares AutoLake read by pyarrow with the anchor, and
//!    AutoLake read by ADBC with psql. The server keeps decoded scans
//!    (`--scan-cache`, on by default in `autolake serve`), so its first
//!    read decodes the Parquet files and later ones are served from
//!    memory, as the anchor's are; the first ADBC read is shown on its
//!    own, and `--no-scan-cache` measures every read decoding.
//!
//! ```text
//! scripts/bench.sh flight --rows 10000000
//! ```
//!
//! Needs the venv of `scripts/test.sh` (pyarrow, deltalake, ADBC) and a
//! PostgreSQL on 127.0.0.1 that `psql -U postgres -d test` reaches.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use autolake_engine::governance::accounts::UserStore;
use autolake_engine::serve::{ServeOptions, serve};
use autolake_engine::{Engine, EngineConfig, Interface, Principal};
use clap::Parser;

#[path = "common.rs"]
mod common;
use common::{free_port, python};

#[derive(Debug, Parser)]
#[command(about = "Flight SQL: AutoLake vs pyarrow.flight vs psql on the same rows")]
struct Args {
    /// Rows in the table.
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Measurements per client (the best is reported).
    #[arg(long, default_value_t = 3)]
    iterations: usize,
    /// Serve without the scan cache: every read decodes the Parquet files.
    #[arg(long)]
    no_scan_cache: bool,
}

const PASSWORD: &str = "bench-password";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let engine = Engine::open(EngineConfig::for_lake(lake.display().to_string())).await?;
    let session = engine.session(Principal::local_admin(), Interface::Embedded);
    session
        .execute(&format!(
            "CREATE TABLE lineitem AS
             SELECT value AS l_orderkey,
                    value % 200000 AS l_partkey,
                    value % 10000 AS l_suppkey,
                    CAST(value % 7 + 1 AS INT) AS l_linenumber,
                    CAST(value % 50 + 1 AS DOUBLE) AS l_quantity,
                    CAST(value % 100000 AS DOUBLE) * 1.01 AS l_extendedprice,
                    CAST(value % 11 AS DOUBLE) / 100 AS l_discount,
                    CAST(value % 9 AS DOUBLE) / 100 AS l_tax
             FROM generate_series(1, {})",
            args.rows
        ))
        .await?;
    UserStore::new(Arc::clone(engine.lake()))
        .create("admin", PASSWORD, vec!["admin".into()])
        .await?;

    let port = free_port()?;
    let options = ServeOptions {
        flight: format!("127.0.0.1:{port}").parse()?,
        http: format!("127.0.0.1:{}", free_port()?).parse()?,
        tls: None,
        token_ttl: Duration::from_secs(3600),
        scheduler: false,
        scan_cache: if args.no_scan_cache {
            0
        } else {
            autolake_engine::serve::default_scan_cache()
        },
    };
    let server = tokio::spawn(serve(Arc::clone(&engine), options));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let python = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flight_baseline.py");
    let table = lake.join("tables/public/lineitem");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(["measure", &port.to_string(), PASSWORD])
            .arg(table)
            .arg(args.iterations.to_string())
            .output()
    })
    .await??;
    server.abort();
    if !out.status.success() {
        return Err(format!(
            "the Python clients failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let number = |k: &str| result[k].as_f64().unwrap_or(f64::NAN);
    let gb = number("bytes") / 1e9;
    let (ours, ours_pyarrow, anchor, psql) = (
        number("autolake_s"),
        number("autolake_pyarrow_s"),
        number("pyarrow_flight_s"),
        number("psql_s"),
    );
    println!("{} rows, {:.2} GB as Arrow\n", result["rows"], gb);
    println!(
        "{:<28} {:>9} {:>9} {:>14}",
        "reader", "seconds", "GB/s", "autolake is"
    );
    let first = number("autolake_first_s");
    println!(
        "{:<28} {:>9.3} {:>9.2} {:>14}",
        "autolake serve → ADBC, 1st",
        first,
        gb / first,
        ""
    );
    println!(
        "{:<28} {:>9.3} {:>9.2} {:>14}",
        "autolake serve → ADBC",
        ours,
        gb / ours,
        ""
    );
    println!(
        "{:<28} {:>9.3} {:>9.2} {:>14}",
        "autolake serve → pyarrow",
        ours_pyarrow,
        gb / ours_pyarrow,
        ""
    );
    println!(
        "{:<28} {:>9.3} {:>9.2} {:>13.2}x",
        "pyarrow.flight → pyarrow",
        anchor,
        gb / anchor,
        anchor / ours_pyarrow
    );
    println!(
        "{:<28} {:>9.3} {:>9.2} {:>13.2}x",
        "PostgreSQL → psql (libpq)",
        psql,
        gb / psql,
        psql / ours
    );
    println!(
        "\ntime to first batch of SELECT 1 through ADBC: {:.2} ms",
        number("autolake_first_batch_ms")
    );
    Ok(())
}
