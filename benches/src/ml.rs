//! Models: scoring through SQL against the same candle model called
//! directly, and logistic-regression training against scikit-learn, in one
//! run.
//!
//! 1. Scoring: `--rows` rows × 32 float features held in memory (a
//!    `MemTable` of two partitions). A linear regression and an MLP
//!    (32-64-1) are trained on the first 100 000 rows; then
//!    `SELECT sum(predict('m', c0, …, c31)) FROM scores` is timed against
//!    the model's forward pass on one `(32, rows)` f32 tensor built from
//!    the same values beforehand (the direct-candle baseline: no SQL, no
//!    encoding, no Arrow), once with the features as DOUBLE columns and
//!    once as FLOAT (f32) columns, the tensor's own type. Reports rows/s
//!    of both and the overhead ratio.
//! 2. Training: `--train-rows` × 32 with a linear boundary and label
//!    noise, 80/20 split, written to Parquet. `CREATE MODEL … TYPE
//!    logistic_regression` (L-BFGS, the default solver; scan, encoding and
//!    metrics included; `--with-adam` adds the Adam solver) against
//!    `sklearn.linear_model.LogisticRegression().fit` (lbfgs) on the same
//!    rows loaded into numpy and standardised beforehand
//!    (`ml_baseline.py`, run by the Python `AUTOLAKE_BENCH_PYTHON` names,
//!    else the repository's `.venv`, into which scikit-learn is installed
//!    when missing). Reports seconds (best of `--iterations`), accuracy
//!    on the held-out rows, the time ratio to scikit-learn, and the growth
//!    of the peak resident set during training (Linux).
//!
//! ```text
//! scripts/bench.sh ml --rows 10000000
//! scripts/bench.sh ml --rows 100000 --train-rows 1000000 --iterations 2
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use autolake_engine::{Engine, EngineConfig, Interface, Principal, Session};
use candle_core::Tensor;
use clap::Parser;
use datafusion::datasource::MemTable;

#[path = "common.rs"]
mod common;
use common::python;

#[derive(Debug, Parser)]
#[command(about = "Models: predict through SQL vs direct candle; training vs scikit-learn")]
struct Args {
    /// Rows scored.
    #[arg(long, default_value_t = 10_000_000)]
    rows: usize,
    /// Rows of the training comparison.
    #[arg(long, default_value_t = 1_000_000)]
    train_rows: usize,
    /// Measurements per case (the best is reported).
    #[arg(long, default_value_t = 3)]
    iterations: usize,
    /// Also train with `solver 'adam'` (5 epochs of mini-batches), the
    /// solver before L-BFGS.
    #[arg(long)]
    with_adam: bool,
}

const FEATURES: usize = 32;
const BATCH: usize = 8192;

/// A deterministic stream of standard normals (SplitMix64 + Box–Muller).
struct Normals(u64);

impl Normals {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn next(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn schema(target: Option<(&str, DataType)>) -> SchemaRef {
    let mut fields: Vec<Field> = (0..FEATURES)
        .map(|i| Field::new(format!("c{i}"), DataType::Float64, false))
        .collect();
    if let Some((name, t)) = target {
        fields.push(Field::new(name, t, false));
    }
    Arc::new(Schema::new(fields))
}

/// `rows` rows in batches: features, plus `y = w·x + noise` or the label
/// `w·x + noise > 0`.
fn batches(rows: usize, seed: u64, label: bool) -> Vec<RecordBatch> {
    let mut rng = Normals(seed);
    let weights: Vec<f64> = (0..FEATURES)
        .map(|i| ((i % 7) as f64 - 3.0) / 3.0)
        .collect();
    let schema = schema(Some(if label {
        ("label", DataType::Boolean)
    } else {
        ("y", DataType::Float64)
    }));
    let mut out = Vec::new();
    let mut start = 0;
    while start < rows {
        let n = BATCH.min(rows - start);
        let mut columns: Vec<Vec<f64>> = (0..FEATURES).map(|_| Vec::with_capacity(n)).collect();
        let mut target = Vec::with_capacity(n);
        for _ in 0..n {
            let mut score = 0.0;
            for (c, w) in columns.iter_mut().zip(&weights) {
                let v = rng.next();
                score += v * w;
                c.push(v);
            }
            target.push(score + rng.next());
        }
        let mut arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef)
            .collect();
        arrays.push(if label {
            Arc::new(BooleanArray::from_iter(
                target.iter().map(|t| Some(*t > 0.0)),
            ))
        } else {
            Arc::new(Float64Array::from(target))
        });
        out.push(RecordBatch::try_new(Arc::clone(&schema), arrays).expect("valid batch"));
        start += n;
    }
    out
}

/// Peak resident memory of this process, from `/proc/self/status`.
mod memory {
    fn status(field: &str) -> Option<u64> {
        let text = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = text.lines().find(|l| l.starts_with(field))?;
        let kib: u64 = line[field.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// Resets the peak (`VmHWM`) to the current resident set and returns
    /// that; `None` where Linux's `clear_refs` is not writable.
    pub(super) fn reset_peak() -> Option<u64> {
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
        status("VmRSS:")
    }

    /// The peak resident set since the last reset.
    pub(super) fn peak() -> Option<u64> {
        status("VmHWM:")
    }
}

/// Installs scikit-learn (with numpy and pyarrow) into the baseline's
/// Python when it cannot import them: once, then a no-op.
fn ensure_scikit_learn(python: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let importable = |p: &std::path::Path| {
        Command::new(p)
            .args(["-c", "import sklearn, numpy, pyarrow"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if importable(python) {
        return Ok(());
    }
    println!("installing scikit-learn into {} …", python.display());
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "scikit-learn",
            "numpy",
            "pyarrow",
        ])
        .output()?;
    if !out.status.success() || !importable(python) {
        return Err(format!(
            "scikit-learn is not importable by {} and pip could not install it \
             (set AUTOLAKE_BENCH_PYTHON to a Python with scikit-learn, numpy and pyarrow): {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

fn register(session: &Session, name: &str, batches: Vec<RecordBatch>) {
    let schema = batches[0].schema();
    let mut partitions = vec![Vec::new(), Vec::new()];
    for (i, b) in batches.into_iter().enumerate() {
        partitions[i % 2].push(b);
    }
    let table = MemTable::try_new(schema, partitions).expect("memtable");
    session
        .context()
        .register_table(name, Arc::new(table))
        .expect("registered");
}

fn best<T>(iterations: usize, mut run: impl FnMut() -> T) -> (f64, T) {
    let mut best: Option<(f64, T)> = None;
    for _ in 0..iterations.max(1) {
        let started = Instant::now();
        let out = run();
        let s = started.elapsed().as_secs_f64();
        if best.as_ref().is_none_or(|(b, _)| s < *b) {
            best = Some((s, out));
        }
    }
    best.expect("one iteration")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let lake = dir.path().join("lake");
    let engine = Engine::open(EngineConfig::for_lake(lake.display().to_string())).await?;
    let session = engine.session(Principal::local_admin(), Interface::Embedded);
    let columns: Vec<String> = (0..FEATURES).map(|i| format!("c{i}")).collect();
    let features = columns.join(", ");

    // 1. Scoring.
    let generated = Instant::now();
    let score_batches = batches(args.rows, 1, false);
    println!(
        "scoring data: {} rows × {FEATURES} features generated in {:.1}s",
        args.rows,
        generated.elapsed().as_secs_f64()
    );
    register(&session, "train_rows", batches(100_000, 2, false));
    session
        .execute(&format!(
            "CREATE MODEL bench_linear TYPE linear_regression OPTIONS (target 'y') \
             AS SELECT {features}, y FROM train_rows;
             CREATE MODEL bench_mlp TYPE mlp_regressor \
             OPTIONS (target 'y', hidden_layers '64', epochs 1, batch_size 1024) \
             AS SELECT {features}, y FROM train_rows"
        ))
        .await?;
    // The direct baseline's tensor: the same values, (32, rows), f32.
    let direct_input = {
        let mut data = vec![0f32; FEATURES * args.rows];
        let mut row = 0;
        for b in &score_batches {
            for c in 0..FEATURES {
                let values = b
                    .column(c)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("f64");
                for (i, v) in values.values().iter().enumerate() {
                    data[c * args.rows + row + i] = *v as f32;
                }
            }
            row += b.num_rows();
        }
        Tensor::from_vec(data, (FEATURES, args.rows), engine.models().device())?
    };
    // The same values as FLOAT (f32) columns, the tensor's own type.
    let f32_batches = score_batches
        .iter()
        .map(|b| {
            let schema = Arc::new(Schema::new(
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| Field::new(f.name(), DataType::Float32, f.is_nullable()))
                    .collect::<Vec<_>>(),
            ));
            let columns = b
                .columns()
                .iter()
                .map(|c| arrow::compute::cast(c, &DataType::Float32))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RecordBatch::try_new(schema, columns)?)
        })
        .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
    register(&session, "scores", score_batches);
    register(&session, "scores_f32", f32_batches);
    println!(
        "\n{:<24} {:>10} {:>14} {:>10} {:>14} {:>9}",
        "model (feature columns)", "SQL s", "SQL rows/s", "direct s", "direct rows/s", "overhead"
    );
    for model in ["bench_linear", "bench_mlp"] {
        let m = std::sync::Arc::clone(&engine.models().get(model, None)?.model);
        let (direct, _) = best(args.iterations, || {
            // The forward pass alone, on values already in a tensor.
            let y = m.forward(&direct_input).expect("forward");
            y.sum_all().and_then(|s| s.to_scalar::<f32>()).expect("sum")
        });
        for (table, kind) in [("scores", "DOUBLE"), ("scores_f32", "FLOAT")] {
            let sql = format!("SELECT sum(predict('{model}', {features})) FROM {table}");
            let mut sql_times = Vec::new();
            for _ in 0..args.iterations.max(1) {
                let started = Instant::now();
                session.execute(&sql).await?;
                sql_times.push(started.elapsed().as_secs_f64());
            }
            let sql_s = sql_times.iter().copied().fold(f64::INFINITY, f64::min);
            println!(
                "{:<24} {:>10.3} {:>14.0} {:>10.3} {:>14.0} {:>8.2}x",
                format!("{} ({kind})", model.trim_start_matches("bench_")),
                sql_s,
                args.rows as f64 / sql_s,
                direct,
                args.rows as f64 / direct,
                sql_s / direct
            );
        }
    }

    // 2. Training logistic regression against scikit-learn.
    let all = batches(args.train_rows, 3, true);
    let split = all.len() * 4 / 5;
    let (train, test): (Vec<_>, Vec<_>) =
        all.into_iter().enumerate().partition(|(i, _)| *i < split);
    let train: Vec<RecordBatch> = train.into_iter().map(|(_, b)| b).collect();
    let test: Vec<RecordBatch> = test.into_iter().map(|(_, b)| b).collect();
    let parquet_dir = dir.path().join("logistic");
    std::fs::create_dir_all(&parquet_dir)?;
    for (name, rows) in [("train", &train), ("test", &test)] {
        let file = std::fs::File::create(parquet_dir.join(format!("{name}.parquet")))?;
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, rows[0].schema(), None)?;
        for b in rows {
            writer.write(b)?;
        }
        writer.close()?;
    }
    let train_rows: usize = train.iter().map(RecordBatch::num_rows).sum();
    register(&session, "logistic_train", train);
    register(&session, "logistic_test", test);
    let mut trainers = vec![(
        "AutoLake CREATE MODEL (lbfgs)".to_string(),
        "validation_split 0".to_string(),
    )];
    if args.with_adam {
        trainers.push((
            "AutoLake CREATE MODEL (adam)".to_string(),
            "solver 'adam', epochs 5, batch_size 1024, learning_rate 0.01, validation_split 0"
                .to_string(),
        ));
    }
    let mut rows_out = Vec::new();
    for (i, (label, options)) in trainers.iter().enumerate() {
        let model = format!("bench_logistic_{i}");
        let mut seconds = f64::INFINITY;
        let mut growth = 0.0f64;
        for _ in 0..args.iterations.max(1) {
            let before = memory::reset_peak();
            let started = Instant::now();
            session
                .execute(&format!(
                    "CREATE MODEL {model} TYPE logistic_regression \
                     OPTIONS (target 'label', {options}) \
                     AS SELECT {features}, label FROM logistic_train"
                ))
                .await?;
            seconds = seconds.min(started.elapsed().as_secs_f64());
            if let (Some(before), Some(peak)) = (before, memory::peak()) {
                growth = growth.max(peak.saturating_sub(before) as f64 / 1048576.0);
            }
        }
        let metrics = session
            .execute(&format!(
                "EVALUATE MODEL {model} ON (SELECT {features}, label FROM logistic_test)"
            ))
            .await?;
        let accuracy = metrics[0]
            .column_by_name("accuracy")
            .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
            .map(|a| a.value(0))
            .unwrap_or(f64::NAN);
        rows_out.push((label.clone(), seconds, accuracy, growth));
    }
    let python = python();
    ensure_scikit_learn(&python)?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ml_baseline.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(&parquet_dir)
        .arg(args.iterations.max(1).to_string())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "the scikit-learn baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let (sk_s, sk_acc, sk_growth) = (
        theirs["seconds"].as_f64().unwrap_or(f64::NAN),
        theirs["accuracy"].as_f64().unwrap_or(f64::NAN),
        theirs["rss_growth_mb"].as_f64().unwrap_or(f64::NAN),
    );
    println!(
        "\nlogistic regression, {train_rows} training rows × {FEATURES} (the f32 matrix: {:.0} MiB), \
         best of {}:\n{:<32} {:>9} {:>9} {:>10} {:>15}",
        (train_rows * FEATURES * 4) as f64 / 1048576.0,
        args.iterations.max(1),
        "trainer",
        "seconds",
        "accuracy",
        "/ sklearn",
        "peak RSS +MiB"
    );
    for (label, seconds, accuracy, growth) in &rows_out {
        println!(
            "{label:<32} {seconds:>9.3} {accuracy:>9.4} {:>9.2}x {growth:>15.0}",
            seconds / sk_s
        );
    }
    println!(
        "{:<32} {sk_s:>9.3} {sk_acc:>9.4} {:>9.2}x {sk_growth:>15.0}",
        format!(
            "scikit-learn {} (lbfgs)",
            theirs["version"].as_str().unwrap_or("")
        ),
        1.0
    );
    println!(
        "AutoLake's seconds include the scan and encoding of the rows (and the metrics); \
         scikit-learn's are `fit` on standardised numpy arrays. Peak RSS growth: the \
         largest resident set during the statement (or `fit`) over the one before it."
    );
    Ok(())
}
