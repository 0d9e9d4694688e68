//! Model statements: `CREATE MODEL`, `EVALUATE MODEL`, `SHOW MODELS`,
//! `DESCRIBE MODEL`, `ALTER MODEL … SET STAGE`, `DROP MODEL`.
//!
//! `CREATE MODEL` plans its query like any other (time travel included),
//! streams the batches into the training collector, trains off the async
//! runtime and registers the result as the next version, with the lake
//! tables and Delta versions the query read. Nothing is registered when
//! anything fails.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use autolake_sql::CreateModel;
use autolake_sql::sqlparser::ast::{self, ObjectName};
use autolake_udfs::ml::data::Collector;
use autolake_udfs::ml::metrics::{self, Metrics};
use autolake_udfs::ml::train::{TrainOptions, train_with_progress};
use autolake_udfs::ml::{DeviceChoice, ModelKind, resolve_device};
use datafusion::common::TableReference;
use datafusion::sql::parser::Statement as DFStatement;
use futures::TryStreamExt;

use super::query::{datafusion_statement, parse_one_df};
use super::time_travel;
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::lake::{INTERNAL_CATALOG, TIME_TRAVEL_SCHEMA};
use crate::models::{Lineage, ModelRecord, metrics_json};
use crate::names::read_object;
use crate::principal::Object;
use crate::principal::{Access, Action};
use autolake_sql::{Family, Statement};

/// What a model statement touches: the model, and what its query reads.
pub(super) fn accesses(
    cx: &StatementContext,
    statement: &Statement,
    out: &mut Vec<Access>,
) -> Result<()> {
    let model = |action, name| -> Result<Access> {
        Ok(Access {
            action,
            object: Object::Model(model_name(name)?),
        })
    };
    match statement {
        Statement::CreateModel(m) => {
            out.push(model(Action::Create, &m.name)?);
            super::reads::query_accesses(cx, &m.query, out)?;
        }
        Statement::DescribeModel { name, .. } => out.push(model(Action::Select, name)?),
        Statement::AlterModelStage { name, .. } => out.push(model(Action::Alter, name)?),
        Statement::DropModel { name, .. } => out.push(model(Action::Drop, name)?),
        Statement::EvaluateModel { name, query, .. } => {
            out.push(model(Action::Select, name)?);
            super::reads::query_accesses(cx, query, out)?;
        }
        Statement::ShowModels => {}
        other => return Err(super::reads::outside(Family::Models, other)),
    }
    Ok(())
}

/// Runs a model statement; `text` is the statement as written (a model
/// records its training statement).
pub(super) async fn run(
    cx: &StatementContext,
    statement: &Statement,
    text: &str,
) -> Result<StatementResult> {
    match statement {
        Statement::CreateModel(m) => create_model(cx, m, text).await,
        Statement::ShowModels => show_models(cx).await,
        Statement::DescribeModel { name, version } => describe_model(cx, name, *version).await,
        Statement::AlterModelStage {
            name,
            stage,
            version,
        } => alter_stage(cx, name, stage, *version).await,
        Statement::DropModel {
            name,
            version,
            if_exists,
        } => drop_model(cx, name, *version, *if_exists).await,
        Statement::EvaluateModel {
            name,
            version,
            query,
        } => evaluate_model(cx, name, *version, query).await,
        other => Err(super::reads::outside(Family::Models, other)),
    }
}

/// A model name written in SQL: one identifier.
pub(crate) fn model_name(name: &ObjectName) -> Result<String> {
    crate::names::single_name("model", name)
}

/// A query's statement form.
fn query_statement(query: &ast::Query) -> DFStatement {
    DFStatement::Statement(Box::new(ast::Statement::Query(Box::new(query.clone()))))
}

/// Plans a query (time travel resolved) and returns its plan and the lake
/// tables and versions it reads.
async fn plan_with_lineage(
    cx: &StatementContext,
    query: &ast::Query,
) -> Result<(datafusion::logical_expr::LogicalPlan, Vec<Lineage>)> {
    let statement = time_travel::rewrite(cx, query_statement(query)).await?;
    let mut lineage = Vec::new();
    for r in cx.ctx.state().resolve_table_references(&statement)? {
        if super::changes::is_function_name(&r) {
            continue;
        }
        if let Some(l) = lineage_of(cx, &r).await?
            && !lineage.contains(&l)
        {
            lineage.push(l);
        }
    }
    let statement = super::changes::rewrite(cx, statement).await?;
    let plan = super::query::rewritten_plan(cx, statement).await?;
    Ok((plan, lineage))
}

async fn lineage_of(cx: &StatementContext, r: &TableReference) -> Result<Option<Lineage>> {
    let resolved = r
        .clone()
        .resolve(crate::lake::LAKE_CATALOG, crate::lake::DEFAULT_SCHEMA);
    if resolved.catalog.as_ref() == INTERNAL_CATALOG
        && resolved.schema.as_ref() == TIME_TRAVEL_SCHEMA
    {
        // A snapshot registered by time travel: `schema.table@v<n>#i`.
        let name = resolved.table.as_ref();
        if let Some((table, rest)) = name.split_once("@v")
            && let Some(version) = rest.split('#').next().and_then(|v| v.parse::<u64>().ok())
        {
            return Ok(Some(Lineage {
                table: table.to_string(),
                version,
            }));
        }
        return Ok(None);
    }
    match read_object(r) {
        Object::Table(t) => {
            let version = match cx.engine.lake().load_table(&t).await? {
                Some(table) => table.version().unwrap_or(0),
                None => return Ok(None),
            };
            Ok(Some(Lineage {
                table: format!("{}.{}", t.schema, t.table),
                version,
            }))
        }
        _ => Ok(None),
    }
}

/// Trains the model a `CREATE MODEL` statement describes, without
/// registering it: the trained model and the record it would be
/// registered with (version 0).
pub(crate) async fn train_model(
    cx: &StatementContext,
    create: &CreateModel,
    text: &str,
) -> Result<(autolake_udfs::ml::train::Trained, ModelRecord)> {
    let name = model_name(&create.name)?;
    let kind = ModelKind::from_name(&create.model_type)
        .ok_or_else(|| Error::invalid(format!("unknown model type {}", create.model_type)))?;
    let options = TrainOptions::parse(kind, &create.options)?;
    let device = match &options.device {
        Some(d) => resolve_device(DeviceChoice::parse(d).map_err(Error::invalid)?)
            .map_err(Error::invalid)?,
        None => cx.engine.models().device().clone(),
    };
    let started = Instant::now();
    let (plan, lineage) = plan_with_lineage(cx, &create.query).await?;
    let schema = Arc::new(plan.schema().as_arrow().clone());
    let mut collector = Collector::new(&name, kind, &schema, options.target.as_deref())?;
    let mut stream = cx
        .ctx
        .execute_logical_plan(plan)
        .await?
        .execute_stream()
        .await?;
    while let Some(batch) = stream.try_next().await? {
        collector.push(&batch)?;
    }
    let data = collector.finish()?;
    let train_options = options.clone();
    let train_device = device.clone();
    let device_text = autolake_udfs::ml::device::device_name(&device);
    // The device is marked busy with this model (system.devices) and
    // sampled while it trains: its busy fraction is kept with the version.
    let work = cx
        .engine
        .devices()
        .begin(&device_text, format!("training model {name}"));
    let progress = Arc::clone(&cx.probe.progress);
    if let Some((unit, steps)) = options.progress_steps(kind) {
        progress.stage(format!("CREATE MODEL {name}: training"), unit, Some(steps));
    }
    let trained = tokio::task::spawn_blocking(move || {
        train_with_progress(kind, data, &train_options, &train_device, &|done, _| {
            progress.set_done(done)
        })
    })
    .await
    .map_err(|e| Error::invalid(format!("training of model {name} failed: {e}")))??;
    let device_busy_ratio = work.finish();
    let train_seconds = started.elapsed().as_secs_f64();
    let record = ModelRecord {
        name: name.clone(),
        version: 0,
        spec: trained.model.spec().clone(),
        metrics: trained.metrics.clone(),
        training_rows: trained.training_rows as u64,
        validation_rows: trained.validation_rows as u64,
        device: device_text,
        train_seconds,
        device_busy_ratio,
        owner: cx.principal.name.clone(),
        created_at: chrono::Utc::now(),
        sql: text.to_string(),
        options: create.options.clone(),
        lineage,
        tensors: String::new(),
    };
    Ok((trained, record))
}

/// `CREATE MODEL`.
pub(crate) async fn create_model(
    cx: &StatementContext,
    create: &CreateModel,
    text: &str,
) -> Result<StatementResult> {
    let (trained, record) = train_model(cx, create, text).await?;
    let name = record.name.clone();
    let kind = record.spec.kind;
    let train_seconds = record.train_seconds;
    let version = cx
        .engine
        .models()
        .register(record.clone(), &trained.model)
        .await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("metrics", DataType::Utf8, false),
        Field::new("training_rows", DataType::Int64, false),
        Field::new("validation_rows", DataType::Int64, false),
        Field::new("train_seconds", DataType::Float64, false),
        Field::new("device", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec![name])),
            Arc::new(Int64Array::from(vec![version as i64])),
            Arc::new(StringArray::from(vec![kind.name()])),
            Arc::new(StringArray::from(vec![metrics_json(&record.metrics)])),
            Arc::new(Int64Array::from(vec![record.training_rows as i64])),
            Arc::new(Int64Array::from(vec![record.validation_rows as i64])),
            Arc::new(Float64Array::from(vec![train_seconds])),
            Arc::new(StringArray::from(vec![record.device])),
        ],
    )?;
    Ok(StatementResult::batches(
        "CREATE MODEL",
        schema,
        vec![batch],
    ))
}

/// `EVALUATE MODEL m [VERSION n] ON (SELECT …)`: the model's metrics on
/// the query's rows, whose columns are matched to features by name.
pub(crate) async fn evaluate_model(
    cx: &StatementContext,
    name: &ObjectName,
    version: Option<u64>,
    query: &ast::Query,
) -> Result<StatementResult> {
    let name = model_name(name)?;
    let (found, rows, metrics) = evaluate_metrics(cx, &name, version, query).await?;
    let mut fields = vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("rows", DataType::Int64, false),
    ];
    let mut values: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![name])),
        Arc::new(Int64Array::from(vec![found.record.version as i64])),
        Arc::new(Int64Array::from(vec![rows as i64])),
    ];
    for (metric, value) in &metrics {
        fields.push(Field::new(metric, DataType::Float64, true));
        values.push(Arc::new(Float64Array::from(vec![*value])));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), values)?;
    Ok(StatementResult::batches(
        "EVALUATE MODEL",
        schema,
        vec![batch],
    ))
}

/// The metrics of version `version` (or the default one) of model `name`
/// on a query's rows, with the version and the rows counted.
pub(crate) async fn evaluate_metrics(
    cx: &StatementContext,
    name: &str,
    version: Option<u64>,
    query: &ast::Query,
) -> Result<(Arc<crate::models::ModelVersion>, usize, Metrics)> {
    let found = cx.engine.models().get(name, version)?;
    let model = Arc::clone(&found.model);
    let spec = model.spec().clone();
    let (plan, _) = plan_with_lineage(cx, query).await?;
    let columns: Vec<String> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let position = |column: &str, role: &str| {
        columns.iter().position(|c| c == column).ok_or_else(|| {
            Error::invalid(format!(
                "EVALUATE MODEL {name}: the query has no column {column} ({role}); \
                 the model needs {}{}; the query has {}",
                spec.describe_features(),
                spec.target
                    .as_ref()
                    .map(|t| format!(" and the target {}", t.name))
                    .unwrap_or_default(),
                columns.join(", ")
            ))
        })
    };
    let feature_at: Vec<usize> = spec
        .features
        .iter()
        .map(|f| position(&f.name, "a feature"))
        .collect::<Result<_>>()?;
    let target_at = match &spec.target {
        Some(t) => Some(position(&t.name, "the target")?),
        None => None,
    };
    let mut stream = cx
        .ctx
        .execute_logical_plan(plan)
        .await?
        .execute_stream()
        .await?;
    let mut truth_values = Vec::new();
    let mut predicted_values = Vec::new();
    let mut truth_classes = Vec::new();
    let mut probabilities = Vec::new();
    let mut inertia = 0.0;
    let mut rows = 0usize;
    let classes = spec.target.as_ref().map_or(0, |t| t.classes.len());
    while let Some(batch) = stream.try_next().await? {
        let n = batch.num_rows();
        if n == 0 {
            continue;
        }
        let arrays: Vec<ArrayRef> = feature_at
            .iter()
            .map(|i| Arc::clone(batch.column(*i)))
            .collect();
        let x = model.input(&arrays, n)?;
        let candle =
            |e: candle_core::Error| Error::invalid(format!("model computation failed: {e}"));
        match (spec.kind, target_at) {
            (ModelKind::Kmeans, _) => {
                let (_, d) = model.assign(&x).map_err(candle)?;
                inertia += d.iter().map(|v| *v as f64).sum::<f64>();
            }
            (k, Some(t)) if k.is_regressor() => {
                let target = cast(batch.column(t), &DataType::Float64)?;
                let target = target.as_primitive::<arrow::datatypes::Float64Type>();
                if target.null_count() > 0 {
                    return Err(Error::invalid(format!(
                        "EVALUATE MODEL {name}: the target has null values; filter them out"
                    )));
                }
                let predicted = model.predict(&arrays, n)?;
                let predicted = predicted.as_primitive::<arrow::datatypes::Float64Type>();
                truth_values.extend(target.values().iter().copied());
                predicted_values.extend(predicted.values().iter().copied());
            }
            (_, Some(t)) => {
                let labels = cast(batch.column(t), &DataType::Utf8)?;
                let labels = labels.as_string::<i32>();
                let known = &spec
                    .target
                    .as_ref()
                    .expect("classifiers have a target")
                    .classes;
                for label in labels.iter() {
                    let Some(label) = label else {
                        return Err(Error::invalid(format!(
                            "EVALUATE MODEL {name}: the target has null values; filter them out"
                        )));
                    };
                    let Some(i) = known.iter().position(|c| c == label) else {
                        return Err(Error::invalid(format!(
                            "EVALUATE MODEL {name}: label '{label}' was not seen in training \
                             (classes: {})",
                            known.join(", ")
                        )));
                    };
                    truth_classes.push(i as u32);
                }
                let p = model
                    .probabilities(&x)
                    .and_then(|p| p.t())
                    .and_then(|p| p.contiguous())
                    .and_then(|p| p.flatten_all())
                    .and_then(|p| p.to_vec1::<f32>())
                    .map_err(candle)?;
                probabilities.extend(p.into_iter().map(f64::from));
            }
            _ => unreachable!("supervised models have a target column"),
        }
        rows += n;
    }
    if rows == 0 {
        return Err(Error::invalid(format!(
            "EVALUATE MODEL {name}: the query returned no rows"
        )));
    }
    let metrics: Metrics = match spec.kind {
        ModelKind::Kmeans => Metrics::from([("inertia".to_string(), inertia)]),
        k if k.is_regressor() => metrics::regression(&truth_values, &predicted_values),
        _ => metrics::classification(&truth_classes, &probabilities, classes),
    };
    Ok((found, rows, metrics))
}

/// `SHOW MODELS`: the latest version of each model, and the production one.
pub(crate) async fn show_models(cx: &StatementContext) -> Result<StatementResult> {
    datafusion_statement(
        cx,
        parse_one_df(
            "SELECT name, max(version) AS latest_version, \
                    max(CASE WHEN stage = 'production' THEN version END) AS production_version, \
                    first_value(type) AS type, first_value(target) AS target, \
                    first_value(owner ORDER BY version DESC) AS owner \
             FROM lake.system.models GROUP BY name ORDER BY name",
        )?,
        "SHOW MODELS",
    )
    .await
}

/// `DESCRIBE MODEL m [VERSION n]`: its versions as `system.models` rows.
pub(crate) async fn describe_model(
    cx: &StatementContext,
    name: &ObjectName,
    version: Option<u64>,
) -> Result<StatementResult> {
    let name = model_name(name)?;
    // Existence (and a useful error) first.
    cx.engine.models().get(&name, version)?;
    let filter = match version {
        Some(v) => format!(" AND version = {v}"),
        None => String::new(),
    };
    datafusion_statement(
        cx,
        parse_one_df(&format!(
            "SELECT * FROM lake.system.models WHERE name = '{name}'{filter} ORDER BY version"
        ))?,
        "DESCRIBE MODEL",
    )
    .await
}

/// `ALTER MODEL m SET STAGE 's' [VERSION n]`.
pub(crate) async fn alter_stage(
    cx: &StatementContext,
    name: &ObjectName,
    stage: &str,
    version: Option<u64>,
) -> Result<StatementResult> {
    let name = model_name(name)?;
    let stage = stage.to_lowercase();
    let version = cx.engine.models().set_stage(&name, version, &stage).await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("stage", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec![name])),
            Arc::new(Int64Array::from(vec![version as i64])),
            Arc::new(StringArray::from(vec![stage])),
        ],
    )?;
    Ok(StatementResult::batches("ALTER MODEL", schema, vec![batch]))
}

/// `DROP MODEL [IF EXISTS] m [VERSION n]`.
pub(crate) async fn drop_model(
    cx: &StatementContext,
    name: &ObjectName,
    version: Option<u64>,
    if_exists: bool,
) -> Result<StatementResult> {
    let name = model_name(name)?;
    let dropped = cx.engine.models().drop_model(&name, version).await?;
    if !dropped && !if_exists {
        return Err(Error::NotFound {
            kind: "model",
            name,
        });
    }
    Ok(super::query::done("DROP MODEL"))
}
