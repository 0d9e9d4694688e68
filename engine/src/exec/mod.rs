//! Running statements: name resolution, the accesses each statement makes,
//! and dispatch to the lake (DDL, DML, maintenance) or to DataFusion.
//!
//! Statements whose target is a lake table are executed here with
//! delta-rs operations (see [`crate::lake::write`]); queries, `EXPLAIN`,
//! `SHOW`, `SET`, external tables and views go to DataFusion after the
//! time-travel rewrite in [`time_travel`].

mod ddl;
mod dml;
mod drift;
pub(crate) mod governance;
mod maintenance;
pub(crate) mod models;
pub(crate) mod sources;
mod streams;
pub(crate) mod time_travel;

pub(crate) use dml::single_table as write_target;
pub(crate) use drift::record as record_drift;
pub(crate) use drift::result_schema as drift_result_schema;

use std::sync::Arc;

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use autolake_sql::Statement;
use autolake_sql::sqlparser::ast::{self, Ident, ObjectName, ObjectNamePart};
use datafusion::common::TableReference;
use datafusion::sql::parser::Statement as DFStatement;

use crate::error::{Error, Result};
use crate::lake::{DEFAULT_SCHEMA, LAKE_CATALOG, SYSTEM_SCHEMA, TableName};
use crate::principal::{Access, Action, Object};
use crate::session::{Session, StatementResult};

/// Runs one statement (already authorized).
pub(crate) async fn run(
    session: &Session,
    statement: &Statement,
    text: &str,
) -> Result<StatementResult> {
    let kind = statement.kind();
    match statement {
        Statement::DescribeHistory(h) => maintenance::describe_history(session, h).await,
        Statement::Restore(r) => maintenance::restore(session, r).await,
        Statement::Optimize(o) => maintenance::optimize(session, o).await,
        Statement::Vacuum(v) => maintenance::vacuum(session, v).await,
        Statement::CheckDrift(c) => drift::check_drift(session, c).await,
        Statement::CreateMonitor(m) => drift::create_monitor(session, m).await,
        Statement::RunMonitor(name) => drift::run_monitor(session, name).await,
        Statement::DropMonitor { name, if_exists } => {
            drift::drop_monitor(session, name, *if_exists).await
        }
        Statement::ShowMonitors => {
            datafusion_statement(
                session,
                parse_one_df(
                    "SELECT name, \"table\", schedule, owner \
                     FROM lake.system.monitors ORDER BY name",
                )?,
                kind,
            )
            .await
        }
        Statement::CreateModel(m) => models::create_model(session, m, text).await,
        Statement::ShowModels => models::show_models(session).await,
        Statement::DescribeModel { name, version } => {
            models::describe_model(session, name, *version).await
        }
        Statement::AlterModelStage {
            name,
            stage,
            version,
        } => models::alter_stage(session, name, stage, *version).await,
        Statement::DropModel {
            name,
            version,
            if_exists,
        } => models::drop_model(session, name, *version, *if_exists).await,
        Statement::EvaluateModel {
            name,
            version,
            query,
        } => models::evaluate_model(session, name, *version, query).await,
        Statement::CreateSource(c) => sources::create_source(session, c).await,
        Statement::ShowSources => sources::show_sources(session).await,
        Statement::DropSource { name, if_exists } => {
            sources::drop_source(session, name, *if_exists).await
        }
        Statement::SyncTable(s) => sources::sync_table(session, s).await,
        Statement::SyncSource { source, schema } => {
            sources::sync_source(session, source, schema).await
        }
        Statement::Governance(g) => governance::run(session, g).await,
        Statement::CreateJob(job) => {
            crate::jobs::create(session, job).await?;
            Ok(done(kind))
        }
        Statement::AlterJob { name, pause } => {
            crate::jobs::set_paused(session, &crate::jobs::job_name(name)?, *pause).await?;
            Ok(done(kind))
        }
        Statement::DropJob { name, if_exists } => {
            crate::jobs::drop(session, &crate::jobs::job_name(name)?, *if_exists).await?;
            Ok(done(kind))
        }
        Statement::RunJob(name) => run_job(session, &crate::jobs::job_name(name)?).await,
        Statement::ShowJobs => {
            datafusion_statement(
                session,
                parse_one_df(
                    "SELECT name, schedule, kind, paused, last_run, last_status, next_run \
                     FROM lake.system.jobs ORDER BY name",
                )?,
                kind,
            )
            .await
        }
        Statement::Sql(df) => run_sql(session, df, kind).await,
    }
}

/// `RUN JOB name`: one run now, as the job's owner; one row describing it.
async fn run_job(session: &Session, name: &str) -> Result<StatementResult> {
    use arrow::array::{Int64Array, StringArray};
    // Boxed: a job runs its statement through the session funnel that
    // called this.
    let record = Box::pin(crate::jobs::run(&session.engine, name, "manual")).await?;
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
            Arc::new(StringArray::from(vec![record.status.clone()])),
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

async fn run_sql(
    session: &Session,
    df: &DFStatement,
    kind: &'static str,
) -> Result<StatementResult> {
    use ast::Statement as S;
    let DFStatement::Statement(s) = df else {
        return datafusion_statement(session, df.clone(), kind).await;
    };
    match s.as_ref() {
        S::Insert(insert) => match insert_target(session, insert)? {
            Some(target) => dml::insert(session, df, target, kind).await,
            None => datafusion_statement(session, df.clone(), kind).await,
        },
        S::Update(update) => dml::update(session, update, kind).await,
        S::Delete(delete) => dml::delete(session, delete, kind).await,
        S::Merge(merge) => dml::merge(session, merge, kind).await,
        S::CreateTable(create) => ddl::create_table(session, create, kind).await,
        S::CreateSchema {
            schema_name,
            if_not_exists,
            ..
        } => ddl::create_schema(session, schema_name, *if_not_exists).await,
        S::Drop {
            object_type: ast::ObjectType::Table,
            names,
            if_exists,
            ..
        } if !names.iter().any(|n| is_session_table(session, n)) => {
            ddl::drop_tables(session, names, *if_exists).await
        }
        S::Drop {
            object_type: ast::ObjectType::Schema,
            names,
            if_exists,
            cascade,
            ..
        } => ddl::drop_schemas(session, names, *if_exists, *cascade).await,
        S::AlterTable(alter) => ddl::alter_table(session, alter, kind).await,
        S::ShowSchemas { .. } => {
            datafusion_statement(
                session,
                parse_one_df(
                    "SELECT schema_name FROM information_schema.schemata \
                     WHERE catalog_name = 'lake' ORDER BY schema_name",
                )?,
                kind,
            )
            .await
        }
        _ => datafusion_statement(session, df.clone(), kind).await,
    }
}

/// Plans and runs a statement with DataFusion, streaming its result.
pub(crate) async fn datafusion_statement(
    session: &Session,
    statement: DFStatement,
    kind: &'static str,
) -> Result<StatementResult> {
    let plan = plan(session, statement).await?;
    let is_query = !matches!(
        plan,
        datafusion::logical_expr::LogicalPlan::Ddl(_)
            | datafusion::logical_expr::LogicalPlan::Statement(_)
            | datafusion::logical_expr::LogicalPlan::Dml(_)
    );
    let frame = session.ctx.execute_logical_plan(plan).await?;
    let stream = frame.execute_stream().await?;
    let result = StatementResult::stream(kind, stream);
    Ok(if is_query { result } else { result.status() })
}

/// Plans a statement with DataFusion after resolving time travel.
pub(crate) async fn plan(
    session: &Session,
    statement: DFStatement,
) -> Result<datafusion::logical_expr::LogicalPlan> {
    let statement = time_travel::rewrite(session, statement).await?;
    let statement = crate::jobs::changes::rewrite(session, statement).await?;
    rewritten_plan(session, statement).await
}

/// Plans a statement whose time travel and changes are already resolved.
pub(crate) async fn rewritten_plan(
    session: &Session,
    statement: DFStatement,
) -> Result<datafusion::logical_expr::LogicalPlan> {
    let state = session.ctx.state();
    match state.statement_to_plan(statement.clone()).await {
        Ok(plan) => Ok(plan),
        Err(e)
            if matches!(e.find_root(), datafusion::error::DataFusionError::Plan(_))
                && missing_table(&state, &statement) =>
        {
            Err(Error::TableNotFound(e))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether a statement names a table the catalog does not have (DataFusion
/// reports it only as a planning error, in words).
fn missing_table(state: &datafusion::execution::SessionState, statement: &DFStatement) -> bool {
    let Ok(references) = state.resolve_table_references(statement) else {
        return false;
    };
    references.iter().any(|r| {
        if r.schema().is_none() && state.table_functions().contains_key(r.table()) {
            return false;
        }
        let resolved = r.clone().resolve(LAKE_CATALOG, DEFAULT_SCHEMA);
        let schema = state
            .catalog_list()
            .catalog(&resolved.catalog)
            .and_then(|c| c.schema(&resolved.schema));
        match schema {
            Some(schema) => !schema.table_exist(&resolved.table),
            None => resolved.schema.as_ref() != "information_schema",
        }
    })
}

fn parse_one_df(sql: &str) -> Result<DFStatement> {
    match autolake_sql::parse(sql)?.pop().map(|p| p.statement) {
        Some(Statement::Sql(s)) => Ok(*s),
        _ => Err(Error::invalid(format!("not a SQL statement: {sql}"))),
    }
}

/// A one-row, one-column `count` result, as DataFusion reports DML.
pub(crate) fn count_result(kind: &'static str, rows: u64) -> Result<StatementResult> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(UInt64Array::from(vec![rows]))],
    )?;
    Ok(StatementResult::batches(kind, schema, vec![batch]).status())
}

/// An empty result for DDL.
pub(crate) fn done(kind: &'static str) -> StatementResult {
    let schema = Arc::new(Schema::empty());
    StatementResult::batches(kind, schema, vec![]).status()
}

/// A table's column names, for messages (`a, b, c`).
pub(crate) fn column_names(fields: &arrow::datatypes::Fields) -> String {
    fields
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQL identifier semantics: unquoted names are case-insensitive (folded to
/// lower case, as DataFusion does), quoted names are exact.
pub(crate) fn ident_name(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// One part of a dotted name, with identifier semantics.
pub(crate) fn ident_name_part(part: &ObjectNamePart) -> Result<String> {
    match part {
        ObjectNamePart::Identifier(ident) => Ok(ident_name(ident)),
        other => Err(Error::invalid(format!("unsupported name part {other}"))),
    }
}

/// The name of an object named by one identifier (a monitor, a model).
pub(crate) fn single_name(kind: &str, name: &ObjectName) -> Result<String> {
    let [part] = name.0.as_slice() else {
        return Err(Error::invalid(format!(
            "invalid {kind} name {name}: expected a single name"
        )));
    };
    let name = ident_name_part(part)?;
    crate::lake::validate_name(kind, &name)?;
    Ok(name)
}

fn name_parts(name: &ObjectName) -> Result<Vec<String>> {
    name.0.iter().map(ident_name_part).collect()
}

/// Resolves a table name written in SQL to a lake table, refusing the
/// read-only system schema and other catalogs.
pub(crate) fn lake_table(name: &ObjectName) -> Result<TableName> {
    let parts = name_parts(name)?;
    let (schema, table) = match parts.as_slice() {
        [t] => (DEFAULT_SCHEMA.to_string(), t.clone()),
        [s, t] => (s.clone(), t.clone()),
        [c, s, t] if c == LAKE_CATALOG => (s.clone(), t.clone()),
        [c, _, _] => {
            return Err(Error::invalid(format!(
                "{name} is not a lake table: catalog '{c}' is not the lake (expected '{LAKE_CATALOG}')"
            )));
        }
        _ => {
            return Err(Error::invalid(format!(
                "invalid table name {name}: expected table, schema.table or lake.schema.table"
            )));
        }
    };
    if schema == SYSTEM_SCHEMA {
        return Err(Error::ReadOnly(format!("{SYSTEM_SCHEMA}.{table}")));
    }
    crate::lake::validate_name("table", &table)?;
    Ok(TableName::new(schema, table))
}

/// Resolves a schema name written in SQL (`s` or `lake.s`).
pub(crate) fn lake_schema(name: &ObjectName) -> Result<String> {
    let parts = name_parts(name)?;
    let schema = match parts.as_slice() {
        [s] => s.clone(),
        [c, s] if c == LAKE_CATALOG => s.clone(),
        _ => {
            return Err(Error::invalid(format!(
                "invalid schema name {name}: expected schema or lake.schema"
            )));
        }
    };
    if schema == SYSTEM_SCHEMA {
        return Err(Error::ReadOnly(SYSTEM_SCHEMA.to_string()));
    }
    crate::lake::validate_name("schema", &schema)?;
    Ok(schema)
}

/// Whether a name refers to a table DataFusion registered in this session
/// (an external table or a view) rather than a lake table.
fn is_session_table(session: &Session, name: &ObjectName) -> bool {
    let Ok(parts) = name_parts(name) else {
        return false;
    };
    let (schema, table) = match parts.as_slice() {
        [t] => (DEFAULT_SCHEMA, t.as_str()),
        [s, t] => (s.as_str(), t.as_str()),
        [c, s, t] if c == LAKE_CATALOG => (s.as_str(), t.as_str()),
        _ => return true,
    };
    session
        .catalog
        .session_schema(schema)
        .is_some_and(|s| s.is_session_table(table))
}

fn insert_target(session: &Session, insert: &ast::Insert) -> Result<Option<TableName>> {
    match &insert.table {
        ast::TableObject::TableName(name) if !is_session_table(session, name) => {
            Ok(Some(lake_table(name)?))
        }
        ast::TableObject::TableName(_) => Ok(None),
        other => Err(Error::invalid(format!(
            "INSERT into {other} is not supported: insert into a table by name"
        ))),
    }
}

/// The objects a statement touches and how, for the authorizer. Writes to
/// the system schema are refused here, for everyone.
pub(crate) fn accesses(session: &Session, statement: &Statement) -> Result<Vec<Access>> {
    use ast::Statement as S;
    let table = |action, name: &ObjectName| -> Result<Access> {
        Ok(Access {
            action,
            object: Object::Table(lake_table(name)?),
        })
    };
    let mut out = Vec::new();
    match statement {
        Statement::DescribeHistory(h) => out.push(table(Action::Select, &h.table)?),
        Statement::Restore(r) => out.push(table(Action::Alter, &r.table)?),
        Statement::Optimize(o) => out.push(table(Action::Alter, &o.table)?),
        Statement::Vacuum(v) => out.push(table(Action::Alter, &v.table)?),
        Statement::CheckDrift(c) => drift_accesses(session, c, &mut out)?,
        Statement::CreateMonitor(m) => {
            out.push(Access {
                action: Action::Create,
                object: Object::Monitor(crate::monitor::monitor_name(&m.name)?),
            });
            drift_accesses(session, &m.check, &mut out)?;
        }
        Statement::RunMonitor(name) => out.push(Access {
            action: Action::Select,
            object: Object::Monitor(crate::monitor::monitor_name(name)?),
        }),
        Statement::DropMonitor { name, .. } => out.push(Access {
            action: Action::Drop,
            object: Object::Monitor(crate::monitor::monitor_name(name)?),
        }),
        Statement::ShowMonitors | Statement::ShowModels | Statement::ShowSources => {}
        Statement::CreateSource(c) => out.push(Access {
            action: Action::Create,
            object: Object::Source(sources::source_name(&c.name)?),
        }),
        Statement::DropSource { name, .. } => out.push(Access {
            action: Action::Drop,
            object: Object::Source(sources::source_name(name)?),
        }),
        Statement::SyncTable(s) => {
            match s.from.0.as_slice() {
                // A message stream: the source itself.
                [part] => out.push(Access {
                    action: Action::Select,
                    object: Object::Source(ident_name_part(part)?),
                }),
                _ => {
                    let (src, schema, table) = sources::source_table(&s.from)?;
                    out.push(Access {
                        action: Action::Select,
                        object: Object::Other(format!("{src}.{schema}.{table}")),
                    });
                }
            }
            let target = lake_table(&s.target)?;
            for action in [Action::Insert, Action::Update, Action::Delete] {
                out.push(Access {
                    action,
                    object: Object::Table(target.clone()),
                });
            }
        }
        Statement::SyncSource { source, schema } => {
            out.push(Access {
                action: Action::Select,
                object: Object::Source(sources::source_name(source)?),
            });
            out.push(Access {
                action: Action::Create,
                object: Object::Schema(lake_schema(schema)?),
            });
        }
        Statement::CreateModel(m) => {
            out.push(Access {
                action: Action::Create,
                object: Object::Model(models::model_name(&m.name)?),
            });
            query_accesses(session, &m.query, &mut out)?;
        }
        Statement::DescribeModel { name, .. } => out.push(Access {
            action: Action::Select,
            object: Object::Model(models::model_name(name)?),
        }),
        Statement::AlterModelStage { name, .. } => out.push(Access {
            action: Action::Alter,
            object: Object::Model(models::model_name(name)?),
        }),
        Statement::DropModel { name, .. } => out.push(Access {
            action: Action::Drop,
            object: Object::Model(models::model_name(name)?),
        }),
        Statement::EvaluateModel { name, query, .. } => {
            out.push(Access {
                action: Action::Select,
                object: Object::Model(models::model_name(name)?),
            });
            query_accesses(session, query, &mut out)?;
        }
        Statement::Governance(g) => governance::accesses(&session.principal, g, &mut out)?,
        Statement::CreateJob(job) => {
            out.push(Access {
                action: Action::Create,
                object: Object::Job(crate::jobs::job_name(&job.name)?),
            });
            // The creator must be able to do what the job will do.
            for access in accesses(session, &job.body.statement)? {
                if !out.contains(&access) {
                    out.push(access);
                }
            }
            if let Some(late) = &job.late_into {
                out.push(Access {
                    action: Action::Insert,
                    object: Object::Table(lake_table(late)?),
                });
            }
        }
        Statement::AlterJob { name, .. } | Statement::RunJob(name) => out.push(Access {
            action: Action::Alter,
            object: Object::Job(crate::jobs::job_name(name)?),
        }),
        Statement::DropJob { name, .. } => out.push(Access {
            action: Action::Drop,
            object: Object::Job(crate::jobs::job_name(name)?),
        }),
        Statement::ShowJobs => {}
        Statement::Sql(df) => {
            if matches!(
                df.as_ref(),
                DFStatement::CopyTo(_) | DFStatement::CreateExternalTable(_)
            ) {
                // Reading or writing files of the server's machine.
                out.push(Access {
                    action: Action::Create,
                    object: Object::Catalog,
                });
            }
            if let DFStatement::Statement(s) = df.as_ref() {
                for model in governance::predicted_models(s.as_ref()) {
                    out.push(Access {
                        action: Action::Select,
                        object: Object::Model(model),
                    });
                }
                match s.as_ref() {
                    S::Insert(i) => {
                        if let Some(t) = insert_target(session, i)? {
                            if i.overwrite {
                                out.push(Access {
                                    action: Action::Delete,
                                    object: Object::Table(t.clone()),
                                });
                            }
                            out.push(Access {
                                action: Action::Insert,
                                object: Object::Table(t),
                            });
                        }
                    }
                    S::Update(u) => out.push(table(
                        Action::Update,
                        &dml::single_table(&u.table.relation)?,
                    )?),
                    S::Delete(d) => out.push(table(Action::Delete, &dml::delete_target(d)?)?),
                    S::Merge(m) => {
                        let target = dml::single_table(&m.table)?;
                        for action in [Action::Insert, Action::Update, Action::Delete] {
                            out.push(table(action, &target)?);
                        }
                    }
                    S::CreateTable(c) => out.push(table(Action::Create, &c.name)?),
                    S::CreateSchema { schema_name, .. } => out.push(Access {
                        action: Action::Create,
                        object: Object::Schema(lake_schema(&ddl::schema_object_name(schema_name))?),
                    }),
                    S::Drop {
                        object_type: ast::ObjectType::Table,
                        names,
                        ..
                    } => {
                        for n in names {
                            if !is_session_table(session, n) {
                                out.push(table(Action::Drop, n)?);
                            }
                        }
                    }
                    S::Drop {
                        object_type: ast::ObjectType::Schema,
                        names,
                        ..
                    } => {
                        for n in names {
                            out.push(Access {
                                action: Action::Drop,
                                object: Object::Schema(lake_schema(n)?),
                            });
                        }
                    }
                    S::AlterTable(a) => out.push(table(Action::Alter, &a.name)?),
                    _ => {}
                }
            }
            // Everything the statement reads: tables, and the tables whose
            // changes it reads.
            let written: Vec<Object> = out.iter().map(|a| a.object.clone()).collect();
            for object in reads(session, df)? {
                if !written.contains(&object) {
                    out.push(Access {
                        action: Action::Select,
                        object,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// What a query reads, and the models it scores with.
fn query_accesses(session: &Session, query: &ast::Query, out: &mut Vec<Access>) -> Result<()> {
    for model in governance::predicted_models(query) {
        let access = Access {
            action: Action::Select,
            object: Object::Model(model),
        };
        if !out.contains(&access) {
            out.push(access);
        }
    }
    let statement =
        DFStatement::Statement(Box::new(ast::Statement::Query(Box::new(query.clone()))));
    for object in reads(session, &statement)? {
        let access = Access {
            action: Action::Select,
            object,
        };
        if !out.contains(&access) {
            out.push(access);
        }
    }
    Ok(())
}

/// The objects a statement reads: its tables, and the tables whose changes
/// it reads with `table_changes`.
fn reads(session: &Session, df: &DFStatement) -> Result<Vec<Object>> {
    let mut objects: Vec<Object> = session
        .ctx
        .state()
        .resolve_table_references(df)?
        .into_iter()
        .filter(|r| !crate::jobs::changes::is_function_name(r))
        .map(|r| read_object(&r))
        .collect();
    objects.extend(
        crate::jobs::changes::calls(df)?
            .into_iter()
            .map(|c| Object::Table(c.table)),
    );
    Ok(objects)
}

/// A drift check reads its table and whatever its sample queries read.
fn drift_accesses(
    session: &Session,
    check: &autolake_sql::DriftCheck,
    out: &mut Vec<Access>,
) -> Result<()> {
    out.push(Access {
        action: Action::Select,
        object: Object::Table(lake_table(&check.table)?),
    });
    let queries = [
        match &check.reference {
            autolake_sql::DriftReference::Query(q) => Some(q),
            autolake_sql::DriftReference::At(_) => None,
        },
        check.current.as_ref(),
    ];
    for query in queries.into_iter().flatten() {
        query_accesses(session, query, out)?;
    }
    Ok(())
}

pub(crate) fn read_object(r: &TableReference) -> Object {
    let resolved = r.clone().resolve(LAKE_CATALOG, DEFAULT_SCHEMA);
    if resolved.catalog.as_ref() == LAKE_CATALOG && resolved.schema.as_ref() == SYSTEM_SCHEMA {
        Object::System(resolved.table.to_string())
    } else if resolved.catalog.as_ref() == LAKE_CATALOG {
        Object::Table(TableName::new(
            resolved.schema.as_ref(),
            resolved.table.as_ref(),
        ))
    } else {
        Object::Other(resolved.to_string())
    }
}
