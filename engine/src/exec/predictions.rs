//! Inference logging's statement side (see [`crate::inference_log`] for
//! the design): `ALTER MODEL m SET LOGGING`, the log rows appended when a
//! statement ends, and a job's `INSERT` that commits its log before its
//! output under the run's application transaction.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use autolake_sql::sqlparser::ast::ObjectName;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::logical_expr::LogicalPlan;
use futures::{Stream, TryStreamExt};

use super::models::model_name;
use crate::context::{Engine, StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::inference_log::{LoggingConfig, log_schema};
use crate::lake::ledger;
use crate::lake::write::CommitStamp;
use crate::names::lake_table;
use crate::principal::Principal;

/// `ALTER MODEL m SET LOGGING TO t [SAMPLE x]` / `SET LOGGING OFF`: the
/// log table is made when missing (or checked when it exists), then the
/// setting saved.
pub(crate) async fn set_logging(
    cx: &StatementContext,
    name: &ObjectName,
    table: Option<&ObjectName>,
    sample: f64,
) -> Result<StatementResult> {
    let model = model_name(name)?;
    cx.engine.models().get(&model, None)?;
    let logs = cx.engine.models().logs();
    let Some(table) = table else {
        logs.set(&model, None).await?;
        return Ok(super::query::done("ALTER MODEL"));
    };
    let target = lake_table(table)?;
    let lake = cx.engine.lake();
    match lake.load_table(&target).await? {
        Some(existing) => {
            let schema = existing.snapshot()?.snapshot().arrow_schema();
            let missing: Vec<String> = log_schema()
                .fields()
                .iter()
                .filter(|f| schema.field_with_name(f.name()).is_err())
                .map(|f| f.name().clone())
                .collect();
            if !missing.is_empty() {
                return Err(Error::invalid(format!(
                    "table {target} cannot hold prediction logs: it lacks the columns {}",
                    missing.join(", ")
                )));
            }
        }
        None => {
            if !lake.schema_exists(&target.schema).await? {
                return Err(Error::NotFound {
                    kind: "schema",
                    name: target.schema.clone(),
                });
            }
            crate::lake::write::create_table(
                lake.table_handle(&target)?,
                &target,
                &log_schema(),
                Vec::new(),
                false,
                Vec::new(),
                &cx.stamp("ALTER MODEL"),
            )
            .await?;
        }
    }
    logs.set(
        &model,
        Some(LoggingConfig {
            model: model.clone(),
            table: format!("{}.{}", target.schema, target.table),
            sample,
        }),
    )
    .await?;
    Ok(super::query::done("ALTER MODEL"))
}

/// The running statement's query id, as `predict` sees it.
fn query_id(cx: &StatementContext) -> String {
    cx.ctx
        .copied_config()
        .options()
        .extensions
        .get::<autolake_udfs::ml::PredictContext>()
        .map(|c| c.query_id.clone())
        .unwrap_or_default()
}

/// Appends what a statement logged; a table already holding `stamp`'s
/// application transaction is skipped (an earlier attempt logged it).
async fn append(
    engine: &Engine,
    ctx: &datafusion::prelude::SessionContext,
    query_id: &str,
    job: Option<(&str, i64)>,
    stamp: &CommitStamp,
) -> Result<()> {
    for (table, batch) in engine.models().logs().take(query_id, job)? {
        if let Some((app, run)) = stamp.transactions.first()
            && let Some(existing) = engine.lake().load_table(&table).await?
            && ledger::committed(&existing, app)
                .await?
                .is_some_and(|v| v >= *run)
        {
            continue;
        }
        crate::lake::write::append_system(engine.lake(), ctx, &table, batch, stamp).await?;
    }
    Ok(())
}

/// Appends the rows a finished statement logged (not part of a job run).
pub(crate) async fn log_predictions(cx: &StatementContext, query_id: &str) -> Result<()> {
    let stamp = CommitStamp::new(&cx.principal, "PREDICTION LOG", cx.interface);
    append(&cx.engine, &cx.ctx, query_id, None, &stamp).await
}

/// `stream`, appending the rows its statement logged once it ends.
pub(crate) fn log_predictions_at_end(
    cx: &StatementContext,
    stream: SendableRecordBatchStream,
    query_id: String,
) -> SendableRecordBatchStream {
    let engine = Arc::clone(&cx.engine);
    let ctx = cx.ctx.clone();
    let principal: Principal = cx.principal.clone();
    let interface = cx.interface;
    Box::pin(AtEnd {
        inner: stream,
        on_end: Some(Box::new(move || {
            tokio::spawn(async move {
                let stamp = CommitStamp::new(&principal, "PREDICTION LOG", interface);
                if let Err(e) = append(&engine, &ctx, &query_id, None, &stamp).await {
                    tracing::warn!("prediction log of query {query_id} not written: {e}");
                }
            });
        })),
    })
}

type OnEnd = Box<dyn FnOnce() + Send>;

struct AtEnd {
    inner: SendableRecordBatchStream,
    on_end: Option<OnEnd>,
}

impl Stream for AtEnd {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = polled
            && let Some(on_end) = self.on_end.take()
        {
            on_end();
        }
        polled
    }
}

impl RecordBatchStream for AtEnd {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// For a job's `INSERT` while predictions are logged: computes the rows
/// (`predict` logs as they are scored), commits the log with the run's
/// application transaction, and returns the rows as the plan to write.
/// `None` when nothing needs this (not a job, no model logged).
pub(crate) async fn log_before_output(
    cx: &StatementContext,
    input: LogicalPlan,
) -> Result<std::result::Result<LogicalPlan, LogicalPlan>> {
    let Some(job) = &cx.job else {
        return Ok(Err(input));
    };
    // Only a statement that scores with `predict` while some model is
    // logged computes its rows ahead of the write.
    if !cx.engine.models().logs().any() || !calls_predict(&input) {
        return Ok(Err(input));
    }
    let query_id = query_id(cx);
    let schema = Arc::new(input.schema().as_arrow().clone());
    let batches: Vec<RecordBatch> = cx
        .ctx
        .execute_logical_plan(input)
        .await?
        .execute_stream()
        .await?
        .try_collect()
        .await?;
    append(
        &cx.engine,
        &cx.ctx,
        &query_id,
        Some((&job.name, job.run)),
        &cx.stamp("PREDICTION LOG"),
    )
    .await?;
    let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
    let plan = datafusion::logical_expr::LogicalPlanBuilder::scan(
        "job_rows",
        datafusion::datasource::provider_as_source(Arc::new(table)),
        None,
    )?
    .build()?;
    Ok(Ok(plan))
}

/// Whether a plan calls `predict` anywhere.
fn calls_predict(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        let _ = node.apply_expressions(|e| {
            let _ = e.apply(|e| {
                if let datafusion::logical_expr::Expr::ScalarFunction(f) = e
                    && f.name() == "predict"
                {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            });
            Ok(if found {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        });
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}
