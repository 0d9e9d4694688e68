//! Runs every `tests/slt/*.slt` file against a fresh lake through
//! AutoLake's session — the same funnel the CLI and servers use.
//!
//! Results are rendered as text with Arrow's display (NULL as `NULL`, the
//! empty string as `(empty)`); statements that return no rows report their
//! row count, so `statement count n` works for DML.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use autolake_engine::{Engine, EngineConfig, Interface, Principal, Session};
use sqllogictest::{DBOutput, DefaultColumnType};

struct AutoLakeDb {
    session: Session,
    _lake: Arc<tempfile::TempDir>,
}

#[async_trait]
impl sqllogictest::AsyncDB for AutoLakeDb {
    type Error = autolake_engine::Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Self::Error> {
        let result = self.session.sql(sql).await?;
        let returns_rows = result.returns_rows;
        let schema = result.schema();
        let batches = result.collect().await?;
        if !returns_rows {
            let count = batches
                .iter()
                .filter(|b| b.num_columns() == 1 && b.schema().field(0).name() == "count")
                .filter_map(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<arrow::array::UInt64Array>()
                        .map(|a| a.value(0))
                })
                .sum();
            return Ok(DBOutput::StatementComplete(count));
        }
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| {
                            let s = f.value(row).to_string();
                            if s.is_empty() {
                                "(empty)".to_string()
                            } else {
                                s
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; schema.fields().len()],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "autolake"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files
}

async fn run_file(path: &Path) -> Result<(), String> {
    let lake = Arc::new(tempfile::tempdir().map_err(|e| e.to_string())?);
    let lake_path = lake.path().to_string_lossy().to_string();
    // Files that need scratch files of their own write them under __SCRATCH__.
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scratch_path = scratch.path().to_string_lossy().to_string();
    let engine = Engine::open(EngineConfig::for_lake(&lake_path))
        .await
        .map_err(|e| e.to_string())?;
    let mut runner = sqllogictest::Runner::new(move || {
        let engine = Arc::clone(&engine);
        let lake = Arc::clone(&lake);
        async move {
            Ok(AutoLakeDb {
                session: engine.session(Principal::local_admin(), Interface::Embedded),
                _lake: lake,
            })
        }
    });
    runner.set_var("__SCRATCH__".to_string(), scratch_path);
    runner.with_column_validator(sqllogictest::default_column_validator);
    runner
        .run_file_async(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictests() {
    let mut failures = Vec::new();
    let files = slt_files();
    for file in &files {
        if let Err(e) = run_file(file).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} .slt files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
