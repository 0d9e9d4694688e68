//! Jobs: freshness and windowed throughput, in one run.
//!
//! 1. Freshness. A job `EVERY '1 second'` copies `table_changes('src')`
//!    into `out`, run by the in-process scheduler (as in `autolake serve`).
//!    `--commits` single-row commits land in `src` at random moments; for
//!    each, the time from its Delta commit to the job's output commit that
//!    carries it (both commit timestamps) is measured. Reports p50 and p99
//!    (target p99 ≤ 2 s).
//! 2. Throughput. `--events` Nexmark bids (the `nexmark` crate's
//!    generator) are appended to a lake table in `--batches` commits; after
//!    each, `RUN JOB` runs a tumbling 10-second window count/sum per
//!    auction. Events per second of job time, and per core, against plain
//!    DataFusion's GROUP BY over the same bids in memory in the same run.
//!
//! ```text
//! scripts/bench.sh jobs --commits 60 --events 2000000
//! ```

/// The allocator of the `autolake` binary, so that what is measured here
/// allocates as the product does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use autolake_engine::{Engine, EngineConfig, Interface, Principal, Session};
use clap::Parser;
use datafusion::prelude::SessionContext;

#[derive(Debug, Parser)]
#[command(about = "Jobs: commit-to-output freshness; windowed throughput over Nexmark bids")]
struct Args {
    /// Single-row commits whose freshness is measured.
    #[arg(long, default_value_t = 60)]
    commits: usize,
    /// Nexmark bids for the windowed job.
    #[arg(long, default_value_t = 2_000_000)]
    events: usize,
    /// Appends (and job runs) the bids arrive in.
    #[arg(long, default_value_t = 10)]
    batches: usize,
}

type BoxError = Box<dyn std::error::Error>;

async fn value(session: &Session, sql: &str) -> Result<i64, BoxError> {
    let batches = session.execute(sql).await?;
    let batch = batches.first().ok_or("no rows")?;
    let column = arrow::compute::cast(batch.column(0), &DataType::Int64)?;
    Ok(column
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or("not an integer")?
        .value(0))
}

/// Commit time (ms since the epoch) of a table's latest version.
async fn latest_commit_ms(session: &Session, table: &str) -> Result<i64, BoxError> {
    let batches = session
        .execute(&format!("DESCRIBE HISTORY {table} LIMIT 1"))
        .await?;
    let batch = batches.first().ok_or("no history")?;
    let ts = batch
        .column_by_name("timestamp")
        .ok_or("no timestamp column")?;
    let ts = arrow::compute::cast(ts, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    let ts = arrow::compute::cast(&ts, &DataType::Int64)?;
    Ok(ts
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or("bad timestamp")?
        .value(0))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn freshness(commits: usize) -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(EngineConfig::for_lake(dir.path().to_str().ok_or("path")?)).await?;
    let admin = engine.session(Principal::local_admin(), Interface::Embedded);
    admin
        .execute(
            "CREATE TABLE src (id BIGINT); CREATE TABLE out (id BIGINT); \
             CREATE JOB fresh EVERY '1 second' AS INSERT INTO out SELECT id FROM table_changes('src')",
        )
        .await?;
    let scheduler = autolake_engine::scheduler::Scheduler::new(Arc::clone(&engine))
        .spawn(Duration::from_millis(200));
    let mut lags = Vec::with_capacity(commits);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for id in 0..commits as i64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(seed % 1000)).await;
        admin
            .execute(&format!("INSERT INTO src VALUES ({id})"))
            .await?;
        let committed = latest_commit_ms(&admin, "src").await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while value(&admin, &format!("SELECT count(*) FROM out WHERE id = {id}")).await? == 0 {
            if Instant::now() > deadline {
                return Err(format!("commit {id} did not reach the output in 30 s").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let output = latest_commit_ms(&admin, "out").await?;
        lags.push((output - committed) as f64 / 1000.0);
    }
    scheduler.abort();
    lags.sort_by(|a, b| a.total_cmp(b));
    println!(
        "freshness, EVERY '1 second' ({commits} commits): p50 {:.3} s, p99 {:.3} s, max {:.3} s (target p99 <= 2 s)",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags[lags.len() - 1]
    );
    Ok(())
}

/// Nexmark bids as (auction, price, date_time ms) batches.
fn bids(events: usize, batches: usize) -> Result<Vec<RecordBatch>, BoxError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, false),
        Field::new("price", DataType::Int64, false),
        Field::new(
            "date_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]));
    // `EventGenerator::default()` derives a step of 0 and repeats one event;
    // `new` steps through the stream.
    let generator = nexmark::EventGenerator::new(nexmark::config::NexmarkConfig::default())
        .with_type_filter(nexmark::event::EventType::Bid);
    let per_batch = events.div_ceil(batches);
    let mut out = Vec::new();
    let (mut auction, mut price, mut time) = (Vec::new(), Vec::new(), Vec::new());
    for event in generator.take(events) {
        if let nexmark::event::Event::Bid(bid) = event {
            auction.push(bid.auction as i64);
            price.push(bid.price as i64);
            time.push(bid.date_time as i64);
        }
        if auction.len() == per_batch {
            out.push(RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(std::mem::take(&mut auction))),
                    Arc::new(Int64Array::from(std::mem::take(&mut price))),
                    Arc::new(TimestampMillisecondArray::from(std::mem::take(&mut time))),
                ],
            )?);
        }
    }
    if !auction.is_empty() {
        out.push(RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(auction)),
                Arc::new(Int64Array::from(price)),
                Arc::new(TimestampMillisecondArray::from(time)),
            ],
        )?);
    }
    Ok(out)
}

async fn throughput(events: usize, batches: usize) -> Result<(), BoxError> {
    let parts = bids(events, batches)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Baseline: the same aggregation as one GROUP BY over the bids in memory.
    let ctx = SessionContext::new();
    let schema = parts[0].schema();
    ctx.register_batch("bids", arrow::compute::concat_batches(&schema, &parts)?)?;
    let started = Instant::now();
    let baseline = ctx
        .sql(
            "SELECT date_bin(INTERVAL '10 seconds', date_time) AS w, auction, count(*), sum(price) \
             FROM bids GROUP BY 1, 2",
        )
        .await?
        .collect()
        .await?;
    let baseline_s = started.elapsed().as_secs_f64();
    let windows: usize = baseline.iter().map(RecordBatch::num_rows).sum();

    let dir = tempfile::tempdir()?;
    let engine = Engine::open(EngineConfig::for_lake(dir.path().to_str().ok_or("path")?)).await?;
    let admin = engine.session(Principal::local_admin(), Interface::Embedded);
    admin
        .execute(
            "CREATE TABLE bids (auction BIGINT, price BIGINT, date_time TIMESTAMP); \
             CREATE TABLE bid_windows (window_start TIMESTAMP, window_end TIMESTAMP, auction BIGINT, bids BIGINT, volume BIGINT); \
             CREATE JOB q5 EVERY '1 hour' WINDOW TUMBLE (date_time, '10 seconds') \
               AS INSERT INTO bid_windows SELECT window_start, window_end, auction, count(*), sum(price) \
               FROM table_changes('bids') GROUP BY window_start, window_end, auction",
        )
        .await?;
    let mut job_s = 0.0;
    for part in &parts {
        admin.context().register_batch("incoming", part.clone())?;
        admin
            .execute("INSERT INTO bids SELECT auction, price, date_time FROM incoming")
            .await?;
        admin.context().deregister_table("incoming")?;
        let started = Instant::now();
        admin.execute("RUN JOB q5").await?;
        job_s += started.elapsed().as_secs_f64();
    }
    let emitted = value(&admin, "SELECT count(*) FROM bid_windows").await?;
    let rate = events as f64 / job_s;
    println!(
        "tumbling 10 s window count/sum per auction over {events} Nexmark bids in {batches} runs: \
         {job_s:.2} s of job time, {rate:.0} events/s, {:.0} events/s per core ({cores} cores; target >= 50000)",
        rate / cores as f64
    );
    println!(
        "  plain DataFusion GROUP BY in memory: {baseline_s:.3} s ({:.0} events/s); job / plain = {:.2}x; \
         {emitted} windows emitted of {windows} (the newest stay open until the watermark passes them)",
        events as f64 / baseline_s,
        job_s / baseline_s
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    freshness(args.commits).await?;
    throughput(args.events, args.batches).await?;
    Ok(())
}
