//! How far a long statement has got: what the CLI's progress bar shows.
//!
//! ```text
//! CLI (stderr is a terminal, statement is long-running)
//!   session.progress().watch() ─ a Watch guard; a ticker reads snapshot()
//!   funnel: begin(kind) for each statement
//!   physical planning: the session's last optimizer rule (history's
//!     RecordScans) puts a CountRows node on top of each plan while
//!     watched; it counts the rows leaving the plan (what a CTAS, INSERT …
//!     SELECT, SYNC or MERGE writes, what CREATE MODEL trains on) and
//!     its total is the plan's row statistics where known
//!   training: stage("training", "epochs", n) and set_done(epoch)
//! ```
//!
//! Nothing is counted and no plan changes unless someone watches: a
//! statement run through Flight SQL, a job or a CLI writing to a file
//! runs the same plan as before. While watched, the cost is one relaxed
//! atomic add per batch (see the observability benchmark).
//!
//! A statement that plans several times (a sync's look for new rows, then
//! its copy; OPTIMIZE's one plan per group of files) adds up its plans:
//! their rows, and their totals while every plan's total is known (a
//! plan's statistics account for its limits and filters, estimated where
//! not exact; a count past its total drops the total).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::error::Result as DFResult;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use futures::Stream;

use crate::lake::pass::{PassThrough, Tap};

/// What a progress display shows now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The statement's kind and stage (`CREATE MODEL: training`).
    pub label: String,
    /// What is counted (`rows`, `epochs`).
    pub unit: &'static str,
    /// Counted so far.
    pub done: u64,
    /// The total, where known.
    pub total: Option<u64>,
    /// Changes when the stage changes (a display restarts its rate).
    pub stage: u64,
}

#[derive(Debug)]
struct Stage {
    label: String,
    unit: &'static str,
    /// The total so far; `None` before any is known.
    total: Option<u64>,
    /// A plan of this stage had no known total: the stage has none.
    unknown: bool,
}

/// One session's progress.
#[derive(Debug)]
pub struct Progress {
    /// Displays watching (a count, so nested watches are harmless).
    watchers: AtomicUsize,
    stage: Mutex<Stage>,
    stage_number: AtomicU64,
    done: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            watchers: AtomicUsize::new(0),
            stage: Mutex::new(Stage {
                label: String::new(),
                unit: "rows",
                total: None,
                unknown: false,
            }),
            stage_number: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }
}

/// Keeps progress counted while held.
#[derive(Debug)]
pub struct Watch(Arc<Progress>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Progress {
    /// Counts progress until the returned guard is dropped.
    pub fn watch(self: &Arc<Self>) -> Watch {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watch(Arc::clone(self))
    }

    /// Whether anyone watches.
    pub fn watched(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// A statement of `kind` starts: rows, none yet, total unknown.
    pub(crate) fn begin(&self, kind: &str) {
        self.stage(kind.to_string(), "rows", None);
    }

    /// A new stage: `unit`s counted from zero, out of `total` where known.
    pub(crate) fn stage(&self, label: String, unit: &'static str, total: Option<u64>) {
        let mut stage = self.stage.lock().unwrap_or_else(|e| e.into_inner());
        *stage = Stage {
            label,
            unit,
            total,
            unknown: false,
        };
        self.done.store(0, Ordering::Relaxed);
        self.stage_number.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets how many units are done.
    pub(crate) fn set_done(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
    }

    fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// A new plan of the statement, of `total` rows where known.
    fn planned(&self, total: Option<u64>) {
        let mut stage = self.stage.lock().unwrap_or_else(|e| e.into_inner());
        match total {
            Some(t) if !stage.unknown => stage.total = Some(stage.total.unwrap_or(0) + t),
            _ => {
                stage.unknown = true;
                stage.total = None;
            }
        }
    }

    /// What a display shows now; a total that the count passed (an
    /// estimate), or of nothing, is dropped.
    pub fn snapshot(&self) -> Snapshot {
        let stage = self.stage.lock().unwrap_or_else(|e| e.into_inner());
        let done = self.done.load(Ordering::Relaxed);
        let total = stage.total.filter(|t| *t >= done && *t > 0);
        Snapshot {
            label: stage.label.clone(),
            unit: stage.unit,
            done,
            total,
            stage: self.stage_number.load(Ordering::Relaxed),
        }
    }

    /// Puts a counting node on top of `plan` when watched; `plan` as it is
    /// otherwise.
    pub(crate) fn instrument(
        self: &Arc<Self>,
        plan: Arc<dyn ExecutionPlan>,
    ) -> Arc<dyn ExecutionPlan> {
        if !self.watched() {
            return plan;
        }
        let total = StatisticsContext::new()
            .compute(plan.as_ref(), &StatisticsArgs::new())
            .ok()
            .and_then(|s| match s.num_rows {
                Precision::Exact(n) | Precision::Inexact(n) => Some(n as u64),
                Precision::Absent => None,
            });
        self.planned(total);
        Arc::new(PassThrough::new(plan, CountRows(Arc::clone(self))))
    }
}

/// Counts the rows leaving a plan into a [`Progress`]: the [`Tap`] of a
/// [`PassThrough`] on top of the plan.
#[derive(Debug)]
struct CountRows(Arc<Progress>);

impl Tap for CountRows {
    fn name(&self) -> &'static str {
        "CountRows"
    }

    fn renew(&self, _input: &Arc<dyn ExecutionPlan>) -> Self {
        Self(Arc::clone(&self.0))
    }

    fn tap(
        &self,
        _partition: usize,
        input: SendableRecordBatchStream,
    ) -> SendableRecordBatchStream {
        Box::pin(CountStream {
            input,
            progress: Arc::clone(&self.0),
        })
    }
}

struct CountStream {
    input: SendableRecordBatchStream,
    progress: Arc<Progress>,
}

impl Stream for CountStream {
    type Item = DFResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.input.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(batch))) = &polled {
            self.progress.add(batch.num_rows() as u64);
        }
        polled
    }
}

impl RecordBatchStream for CountStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn counts_only_while_watched_and_takes_the_plan_total() {
        let ctx = SessionContext::new();
        let plan = ctx
            .sql("SELECT * FROM generate_series(1, 10000)")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let progress = Arc::new(Progress::default());
        progress.begin("SELECT");
        let same = progress.instrument(Arc::clone(&plan));
        assert!(Arc::ptr_eq(&same, &plan), "unwatched plans are left alone");

        let watch = progress.watch();
        let counted = progress.instrument(Arc::clone(&plan));
        assert_eq!(counted.name(), "CountRows");
        let rows: usize = datafusion::physical_plan::collect(counted, ctx.task_ctx())
            .await
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum();
        let snap = progress.snapshot();
        assert_eq!((snap.label.as_str(), snap.unit), ("SELECT", "rows"));
        assert_eq!(snap.done, rows as u64);
        assert_eq!(snap.done, 10000);
        if let Some(total) = snap.total {
            assert_eq!(total, 10000);
        }
        progress.stage("CREATE MODEL: training".into(), "epochs", Some(5));
        progress.set_done(2);
        let snap = progress.snapshot();
        assert_eq!((snap.done, snap.total, snap.unit), (2, Some(5), "epochs"));
        // Plans of one stage add up, until one has no known total.
        progress.begin("OPTIMIZE");
        progress.planned(Some(10));
        progress.planned(Some(5));
        assert_eq!(progress.snapshot().total, Some(15));
        progress.planned(None);
        progress.planned(Some(5));
        assert_eq!(progress.snapshot().total, None);
        drop(watch);
        assert!(!progress.watched());
    }
}
