//! Scale-out on Apache DataFusion Ballista: how a session's plans run on a cluster.
//!
//! Design, after Ballista's own physical-plan submission
//! (`ballista_core::execution_plans::execute_physical_plan`):
//! - **The coordinator plans.** A session whose `autolake.cluster` names a
//!   scheduler (`--cluster`, `AUTOLAKE_CLUSTER`, config `cluster`, or `SET
//!   autolake.cluster = 'df://host:port'`) plans every statement exactly as
//!   a local one: privileges, row policies, masks, time travel,
//!   `table_changes` and the lake scan are resolved here, by the funnel and
//!   this process's optimizer rules. Only then does [`ClusterPlanner`] (the
//!   session's query planner, around delta-rs's) look at the finished
//!   physical plan: the largest subtrees that read lake files and that
//!   datafusion-proto can encode go to the scheduler as `RemoteExec`
//!   nodes; what stays (a write into the lake, the progress counter) runs
//!   here over their results. So a CTAS, an INSERT … SELECT or a job runs
//!   its query on the cluster and commits once, from here, as locally.
//! - **Nothing an executor receives lets it read what a policy hides.** It
//!   gets a physical plan whose scans already carry the row filters and
//!   masks (the `row_policy` marker decodes through [`AutoLakeCodec`]);
//!   `current_user()` and `is_member()` are folded into literals while
//!   planning, and the executors' function registry does not hold them, so
//!   a plan that still named them would fail rather than run as someone
//!   else. Credentials never travel: executors open the lake's object
//!   store from their own `--lake`, configuration and environment.
//! - **Executors know AutoLake's functions.** `autolake cluster executor`
//!   opens the lake like any AutoLake process, so `predict` and
//!   `predict_proba` load models from the lake (each version once per
//!   executor, cached by the model registry) and the `drift_*` aggregates
//!   merge partial states across executors as DataFusion's aggregates do.
//!   The scheduler is opened the same way, since it decodes every plan.
//! - **What cannot run distributed is refused, not silently run here:** a
//!   table that needs delta-rs's own scan (deletion vectors, column
//!   mapping) fails with an error naming it.

mod codec;
mod remote;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::error::Result as DFResult;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;

pub(crate) use codec::AutoLakeCodec;

use crate::settings::session_cluster;

/// The session's query planner: delta-rs's, then the cluster split (see
/// the module docs).
#[derive(Debug)]
pub(crate) struct ClusterPlanner {
    inner: Arc<dyn QueryPlanner + Send + Sync>,
    models: Arc<crate::models::ModelRegistry>,
    lake: Arc<crate::lake::Lake>,
}

impl ClusterPlanner {
    pub(crate) fn new(
        inner: Arc<dyn QueryPlanner + Send + Sync>,
        models: Arc<crate::models::ModelRegistry>,
        lake: Arc<crate::lake::Lake>,
    ) -> Self {
        Self {
            inner,
            models,
            lake,
        }
    }

    /// `predict('m', …)` as `predict('m@N', …)`: the version this process
    /// resolves now, whatever an executor's registry holds.
    fn pin_models(&self, plan: &LogicalPlan) -> DFResult<LogicalPlan> {
        use datafusion::common::ScalarValue;
        use datafusion::common::tree_node::{Transformed, TreeNode};
        use datafusion::logical_expr::Expr;
        use datafusion::logical_expr::expr_rewriter::NamePreserver;
        plan.clone()
            .transform_up_with_subqueries(|node| {
                // Column names stay those of the query as written.
                let names = NamePreserver::new(&node);
                node.map_expressions(|expr| {
                    let name = names.save(&expr);
                    let pinned = expr.transform_up(|e| {
                        let Expr::ScalarFunction(mut call) = e else {
                            return Ok(Transformed::no(e));
                        };
                        let name = call.func.name();
                        if name != "predict" && name != "predict_proba" {
                            return Ok(Transformed::no(Expr::ScalarFunction(call)));
                        }
                        let reference = match call.args.first() {
                            Some(Expr::Literal(
                                ScalarValue::Utf8(Some(r))
                                | ScalarValue::Utf8View(Some(r))
                                | ScalarValue::LargeUtf8(Some(r)),
                                _,
                            )) => r.clone(),
                            _ => return Ok(Transformed::no(Expr::ScalarFunction(call))),
                        };
                        match self.models.pinned(&reference) {
                            Some(pinned) if pinned != reference => {
                                call.args[0] = Expr::Literal(ScalarValue::Utf8(Some(pinned)), None);
                                Ok(Transformed::yes(Expr::ScalarFunction(call)))
                            }
                            _ => Ok(Transformed::no(Expr::ScalarFunction(call))),
                        }
                    })?;
                    Ok(pinned.update_data(|e| name.restore(e)))
                })
            })
            .map(|t| t.data)
    }
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let Some(address) = session_cluster(session_state.config())? else {
            return self
                .inner
                .create_physical_plan(logical_plan, session_state)
                .await;
        };
        let pinned = self.pin_models(logical_plan)?;
        let plan = self
            .inner
            .create_physical_plan(&pinned, session_state)
            .await?;
        remote::distribute(plan, &address, &self.lake)
    }
}
