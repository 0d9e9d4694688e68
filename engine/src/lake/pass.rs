//! A plan node that passes its input's rows through unchanged while
//! watching them: the shape shared by the scan cache's filler
//! ([`super::cache`]) and the progress count (`crate::progress`).
//!
//! [`PassThrough`] is its input to the planner (same schema, partitioning,
//! ordering and statistics); a [`Tap`] says what happens to each
//! partition's stream.

use std::fmt;
use std::sync::Arc;

use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

/// What a [`PassThrough`] does to the streams it passes on.
pub(crate) trait Tap: fmt::Debug + Send + Sync + Sized + 'static {
    /// The node's name in plans.
    fn name(&self) -> &'static str;
    /// The tap for a new input (fresh state where it keeps some).
    fn renew(&self, input: &Arc<dyn ExecutionPlan>) -> Self;
    /// Watches partition `partition`'s stream.
    fn tap(&self, partition: usize, input: SendableRecordBatchStream) -> SendableRecordBatchStream;
}

/// Its input's rows, unchanged, through a [`Tap`].
#[derive(Debug)]
pub(crate) struct PassThrough<T: Tap> {
    input: Arc<dyn ExecutionPlan>,
    tap: T,
}

impl<T: Tap> PassThrough<T> {
    /// `input` watched by `tap`.
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>, tap: T) -> Self {
        Self { input, tap }
    }
}

impl<T: Tap> DisplayAs for PassThrough<T> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.tap.name())
    }
}

impl<T: Tap> ExecutionPlan for PassThrough<T> {
    fn name(&self) -> &str {
        self.tap.name()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "{} takes one input",
                self.tap.name()
            )));
        }
        let input = children.swap_remove(0);
        let tap = self.tap.renew(&input);
        Ok(Arc::new(Self::new(input, tap)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        Ok(self.tap.tap(partition, input))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DFResult<Arc<Statistics>> {
        Ok(input_stats
            .first()
            .cloned()
            .unwrap_or_else(|| Arc::new(Statistics::new_unknown(&self.schema()))))
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }
}
