//! Running statements: the accesses each statement makes and its
//! handler, one file per statement family.
//!
//! [`accesses`] and [`run`] dispatch on [`Family`]; each family's file has
//! its own `accesses` (what the authorizer checks) and `run` side by side:
//! [`sql`] (DataFusion's statements: lake tables through [`ddl`] and
//! [`dml`], everything else planned by DataFusion after the time-travel
//! rewrite in [`time_travel`]), [`maintenance`], [`drift`], [`models`],
//! [`sources`] (with [`streams`]), [`jobs`], [`pipelines`] and [`governance`]. Bulk
//! ingest, which is not a statement, is [`ingest`]. Lake writes are
//! committed through [`crate::lake::write`].

pub(crate) mod changes;
mod ddl;
mod dml;
mod drift;
pub(crate) mod governance;
pub(crate) mod ingest;
mod jobs;
mod lifecycle;
mod maintenance;
pub(crate) mod models;
mod pipelines;
mod predictions;
pub(crate) mod query;
mod reads;
pub(crate) mod sources;
mod sql;
mod streams;
pub(crate) mod time_travel;

pub(crate) use drift::record as record_drift;
pub(crate) use governance::exists as object_exists;
pub(crate) use predictions::{log_predictions, log_predictions_at_end};

use autolake_sql::{Family, Statement};

use crate::context::{StatementContext, StatementResult};
use crate::error::Result;
use crate::principal::Access;
use reads::outside;

/// The objects a statement touches and how, for the authorizer. Writes to
/// the system schema are refused here, for everyone.
pub(crate) fn accesses(cx: &StatementContext, statement: &Statement) -> Result<Vec<Access>> {
    let mut out = Vec::new();
    match statement {
        Statement::Sql(df) => sql::accesses(cx, df, &mut out)?,
        Statement::Governance(g) => governance::accesses(&cx.principal, g, &mut out)?,
        Statement::ReproduceModel { .. } | Statement::AlterModelLogging { .. } => {
            lifecycle::accesses(cx, statement, &mut out)?
        }
        other => match other.family() {
            Family::Maintenance => maintenance::accesses(other, &mut out)?,
            Family::Drift => drift::accesses(cx, other, &mut out)?,
            Family::Models => models::accesses(cx, other, &mut out)?,
            Family::Sources => sources::accesses(other, &mut out)?,
            Family::Jobs => jobs::accesses(other, &mut out, |s| accesses(cx, s))?,
            Family::Pipelines => pipelines::accesses(other, &mut out)?,
            family @ (Family::Sql | Family::Governance) => {
                return Err(outside(family, other));
            }
        },
    }
    Ok(out)
}

/// Runs one statement (already authorized).
pub(crate) async fn run(
    cx: &StatementContext,
    statement: &Statement,
    text: &str,
) -> Result<StatementResult> {
    match statement {
        Statement::Sql(df) => sql::run(cx, df, statement.kind()).await,
        Statement::Governance(g) => governance::run(cx, g).await,
        Statement::ReproduceModel { .. } | Statement::AlterModelLogging { .. } => {
            lifecycle::run(cx, statement).await
        }
        other => match other.family() {
            Family::Maintenance => maintenance::run(cx, other).await,
            Family::Drift => drift::run(cx, other).await,
            Family::Models => models::run(cx, other, text).await,
            Family::Sources => sources::run(cx, other).await,
            Family::Jobs => jobs::run(cx, other).await,
            Family::Pipelines => pipelines::run(cx, other).await,
            family @ (Family::Sql | Family::Governance) => Err(outside(family, other)),
        },
    }
}
