//! Job statements (`CREATE JOB`, `ALTER JOB … PAUSE | RESUME`, `DROP JOB`,
//! `RUN JOB`, `SHOW JOBS`): their accesses and the job
//! definitions (see [`crate::jobs`] for how they run).

use autolake_sql::JobSchedule;
use chrono::Utc;
use deltalake::delta_datafusion::DataFusionMixins;

use super::changes;
use crate::jobs::schedule::Schedule;

use super::query::{datafusion_statement, done, parse_one_df};
use crate::context::StatementContext;
use crate::context::StatementResult;
use crate::error::{Error, Result};
use crate::jobs::job_name;
use crate::jobs::schedule::parse_interval;
use crate::jobs::{Job, JobWindow, require};
use crate::lake::TableName;
use crate::names::lake_table;
use crate::principal::{Access, Action, Object};
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use autolake_sql::{Family, Statement};
use std::sync::Arc;

/// What a job statement touches: the job, and for `CREATE JOB` whatever
/// its statement will do, since the creator must be able to do it.
pub(super) fn accesses(
    statement: &Statement,
    out: &mut Vec<Access>,
    body_accesses: impl Fn(&Statement) -> Result<Vec<Access>>,
) -> Result<()> {
    let job = |action, name| -> Result<Access> {
        Ok(Access {
            action,
            object: Object::Job(job_name(name)?),
        })
    };
    match statement {
        Statement::CreateJob(create) => {
            out.push(job(Action::Create, &create.name)?);
            for access in body_accesses(&create.body.statement)? {
                if !out.contains(&access) {
                    out.push(access);
                }
            }
            if let Some(late) = &create.late_into {
                out.push(Access {
                    action: Action::Insert,
                    object: Object::Table(lake_table(late)?),
                });
            }
        }
        Statement::AlterJob { name, .. } | Statement::RunJob(name) => {
            out.push(job(Action::Alter, name)?)
        }
        Statement::DropJob { name, .. } => out.push(job(Action::Drop, name)?),
        Statement::ShowJobs => {}
        other => return Err(super::reads::outside(Family::Jobs, other)),
    }
    Ok(())
}

/// Runs a job statement.
pub(super) async fn run(cx: &StatementContext, statement: &Statement) -> Result<StatementResult> {
    let kind = statement.kind();
    match statement {
        Statement::CreateJob(job) => create(cx, job).await?,
        Statement::AlterJob { name, pause } => set_paused(cx, &job_name(name)?, *pause).await?,
        Statement::DropJob { name, if_exists } => drop(cx, &job_name(name)?, *if_exists).await?,
        Statement::RunJob(name) => return run_job(cx, &job_name(name)?).await,
        Statement::ShowJobs => {
            return datafusion_statement(
                cx,
                parse_one_df(
                    "SELECT name, schedule, kind, paused, last_run, last_status, next_run \
         FROM lake.system.jobs ORDER BY name",
                )?,
                kind,
            )
            .await;
        }
        other => return Err(super::reads::outside(Family::Jobs, other)),
    }
    Ok(done(kind))
}

/// `RUN JOB name`: one run now, as the job's owner; one row describing it.
async fn run_job(cx: &StatementContext, name: &str) -> Result<StatementResult> {
    use arrow::array::{Int64Array, StringArray};
    // The run goes back up through the funnel, as the job's owner.
    let record = cx
        .engine
        .run_job(name, crate::jobs::Trigger::Manual)
        .await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("run", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("rows_written", DataType::Int64, false),
        Field::new("late_rows", DataType::Int64, false),
        Field::new("input_versions", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec![record.job.clone()])),
            Arc::new(Int64Array::from(vec![record.run])),
            Arc::new(StringArray::from(vec![record.status.as_str()])),
            Arc::new(Int64Array::from(vec![record.rows_read])),
            Arc::new(Int64Array::from(vec![record.rows_written])),
            Arc::new(Int64Array::from(vec![record.late_rows])),
            Arc::new(StringArray::from(vec![
                serde_json::json!(record.inputs).to_string(),
            ])),
        ],
    )?;
    Ok(StatementResult::batches("RUN JOB", schema, vec![batch]))
}

/// `CREATE JOB …`
pub(crate) async fn create(cx: &StatementContext, create: &autolake_sql::CreateJob) -> Result<()> {
    let name = job_name(&create.name)?;
    let (cron, every) = match &create.schedule {
        Some(JobSchedule::Cron(c)) => {
            Schedule::cron(c)?;
            (Some(c.clone()), None)
        }
        Some(JobSchedule::Every(e)) => {
            Schedule::every(e)?;
            (None, Some(e.clone()))
        }
        None => (None, None),
    };
    let mut after: Vec<String> = Vec::new();
    for upstream in &create.after {
        let upstream = job_name(upstream)?;
        if upstream == name {
            return Err(Error::invalid(format!(
                "job {name} cannot run after itself"
            )));
        }
        require(cx.engine.jobs(), &upstream).await?;
        if !after.contains(&upstream) {
            after.push(upstream);
        }
    }
    if !after.is_empty() {
        // A job of this name dropped earlier may still be upstream of
        // others: the new edges must not close a cycle through them.
        let all = cx.engine.jobs().list().await?;
        let below = crate::jobs::downstream_of(&all, &name);
        if let Some(u) = after.iter().find(|u| below.contains(u)) {
            return Err(Error::invalid(format!(
                "job {name} cannot run after {u}: {u} already runs after {name}, which would make a cycle"
            )));
        }
    }
    let body = &create.body;
    let calls = match &body.statement {
        Statement::Sql(df) => changes::calls(df)?,
        _ => Vec::new(),
    };
    for call in &calls {
        cx.engine.lake().require_table(&call.table).await?;
    }
    let window = match &create.window {
        None => None,
        Some(w) => {
            let inputs: Vec<&changes::Call> = calls.iter().filter(|c| c.from.is_none()).collect();
            let [input] = inputs.as_slice() else {
                return Err(Error::invalid(format!(
                    "a windowed job reads exactly one table_changes('table') input; job {name} has {}",
                    inputs.len()
                )));
            };
            let size = parse_interval(&w.size)?;
            if let Some(slide) = &w.slide {
                let slide = parse_interval(slide)?;
                if slide > size {
                    return Err(Error::invalid(format!(
                        "HOP slide '{}' is longer than the window size '{}'",
                        w.slide.as_deref().unwrap_or_default(),
                        w.size
                    )));
                }
            }
            let watermark = create
                .watermark
                .clone()
                .unwrap_or_else(|| "0 seconds".to_string());
            if watermark.trim_start().starts_with('0') {
                // Zero lateness is allowed; any other text must parse.
            } else {
                parse_interval(&watermark)?;
            }
            let table = cx.engine.lake().require_table(&input.table).await?;
            let column = crate::names::ident_name(&w.column);
            let schema = table.snapshot()?.snapshot().input_schema();
            match schema.field_with_name(&column) {
                Ok(f) if matches!(f.data_type(), DataType::Timestamp(..) | DataType::Date32) => {}
                Ok(f) => {
                    return Err(Error::invalid(format!(
                        "the window's event-time column {column} of {} has type {}: expected a timestamp",
                        input.table,
                        f.data_type()
                    )));
                }
                Err(_) => {
                    return Err(Error::NotFound {
                        kind: "column",
                        name: format!(
                            "{column} of {} (columns: {})",
                            input.table,
                            crate::names::column_names(schema.fields())
                        ),
                    });
                }
            }
            let late_into = match &create.late_into {
                Some(t) => crate::names::lake_table(t)?,
                None => TableName::new(input.table.schema.clone(), format!("{name}_late")),
            };
            Some(JobWindow {
                column,
                size: w.size.clone(),
                slide: w.slide.clone(),
                watermark,
                late_into: format!("{}.{}", late_into.schema, late_into.table),
            })
        }
    };
    let job = Job {
        name: name.clone(),
        statement: body.text.clone(),
        kind: body.statement.kind().to_string(),
        cron,
        every,
        after,
        window,
        paused: false,
        id: uuid::Uuid::new_v4().simple().to_string(),
        created_by: cx.principal.name.clone(),
        created_at: Utc::now(),
    };
    let jobs = cx.engine.jobs();
    if !jobs.defs.create(&name, &job).await? {
        if create.if_not_exists {
            return Ok(());
        }
        return Err(Error::AlreadyExists { kind: "job", name });
    }
    // A job made again under an old name starts afresh.
    jobs.states.delete(&name).await?;
    Ok(())
}

/// `ALTER JOB name PAUSE | RESUME`
pub(crate) async fn set_paused(cx: &StatementContext, name: &str, paused: bool) -> Result<()> {
    let jobs = cx.engine.jobs();
    let mut job = require(jobs, name).await?;
    job.paused = paused;
    jobs.defs.put(name, &job).await
}

/// `DROP JOB [IF EXISTS] name`; its runs stay in `system.job_runs`.
pub(crate) async fn drop(cx: &StatementContext, name: &str, if_exists: bool) -> Result<()> {
    let jobs = cx.engine.jobs();
    let downstream: Vec<String> = jobs
        .list()
        .await?
        .into_iter()
        .filter(|j| j.after.iter().any(|u| u == name))
        .map(|j| j.name)
        .collect();
    if !downstream.is_empty() {
        return Err(Error::invalid(format!(
            "job {name} cannot be dropped: {} run after it; drop or re-create them first",
            downstream.join(", ")
        )));
    }
    if !jobs.defs.delete(name).await? {
        if if_exists {
            return Ok(());
        }
        return Err(Error::NotFound {
            kind: "job",
            name: name.to_string(),
        });
    }
    jobs.states.delete(name).await?;
    Ok(())
}
