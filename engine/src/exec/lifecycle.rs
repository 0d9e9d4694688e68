//! The model lifecycle beyond training: `REPRODUCE MODEL` and the
//! drift-triggered retrain with its promotion gate.
//!
//! **Reproduce.** A version's record keeps its `CREATE MODEL` statement,
//! options and the Delta version of every lake table its query read. To
//! reproduce it, the statement is parsed again and every lake table in its
//! query is pinned to the recorded version (`VERSION AS OF n`, through the
//! same time-travel path as any query), so rows that landed since are not
//! read. Before training, every data file of each pinned version is
//! looked up: a version whose files `VACUUM` removed is reported by table,
//! version and file rather than failing deep inside a scan. Training is
//! deterministic on the CPU for a given seed (the seeded split, the seeded
//! initialisation and a fixed reduction order), so the tensors compare
//! bit for bit; the metrics are shown side by side.
//!
//! **Retrain on drift** (`CREATE MONITOR … ON DRIFT RETRAIN MODEL m
//! [PROMOTE WHEN metric op x]`), as MLflow-style registries gate a
//! challenger against the champion. When a monitor's run finds drift, the
//! production version's `CREATE MODEL` statement is trained again on the
//! data as it is now (same options and seed) and registered as a new
//! version in no stage. The candidate's metric is its held-out split's;
//! production is evaluated on the latest rows, what it would score if
//! kept. The candidate is promoted only when the gate holds and it is not
//! worse than production (higher accuracy, precision, recall, f1, auc or
//! r2; lower log_loss, rmse, mae or inertia; without a gate the kind's
//! main metric decides). One retrain of a model runs at a time: a lock in
//! the process and a create-only lease document in the lake; a second
//! detection meanwhile is recorded as skipped. Each step — detected,
//! trained, evaluated, promoted or refused with its reason, failed — is a
//! row of `system.model_events`; nothing touches the production stage
//! unless the promotion step is reached.

use std::sync::Arc;

use arrow::array::{
    BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use autolake_sql::sqlparser::ast::{
    Expr, ObjectName, TableFactor, TableVersion, Value, VisitMut, VisitorMut,
};
use autolake_sql::{CreateModel, OnDrift, Statement};
use autolake_udfs::ml::ModelKind;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use super::models::{model_name, train_model};
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::lake::TableName;
use crate::lake::docs::DocStore;
use crate::models::{Lineage, ModelRecord};
use crate::monitor::RetrainRule;
use crate::names::lake_table;
use crate::principal::{Access, Action, Object};

/// What `REPRODUCE MODEL` and `ALTER MODEL … SET LOGGING` touch.
pub(super) fn accesses(
    cx: &StatementContext,
    statement: &Statement,
    out: &mut Vec<Access>,
) -> Result<()> {
    match statement {
        Statement::ReproduceModel { name, version } => {
            // Retraining needs what training needs: TRAIN on the model and
            // SELECT on what its query reads.
            out.push(Access {
                action: Action::Create,
                object: Object::Model(model_name(name)?),
            });
            if let Some(create) = recorded_statement(cx, name, *version)? {
                super::reads::query_accesses(cx, &create.query, out)?;
            }
        }
        Statement::AlterModelLogging { name, table, .. } => {
            out.push(Access {
                action: Action::Alter,
                object: Object::Model(model_name(name)?),
            });
            if let Some(table) = table {
                out.push(Access {
                    action: Action::Insert,
                    object: Object::Table(lake_table(table)?),
                });
            }
        }
        other => return Err(super::reads::outside(autolake_sql::Family::Models, other)),
    }
    Ok(())
}

/// Runs `REPRODUCE MODEL` or `ALTER MODEL … SET LOGGING`.
pub(super) async fn run(cx: &StatementContext, statement: &Statement) -> Result<StatementResult> {
    match statement {
        Statement::ReproduceModel { name, version } => reproduce(cx, name, *version).await,
        Statement::AlterModelLogging {
            name,
            table,
            sample,
        } => super::predictions::set_logging(cx, name, table.as_ref(), *sample).await,
        other => Err(super::reads::outside(autolake_sql::Family::Models, other)),
    }
}

/// The `CREATE MODEL` statement version `version` (or the default one) of
/// model `name` was trained with; `None` when the model does not exist
/// (the statement then fails with the registry's message).
pub(crate) fn recorded_statement(
    cx: &StatementContext,
    name: &ObjectName,
    version: Option<u64>,
) -> Result<Option<CreateModel>> {
    let Ok(record) = cx.engine.models().get(&model_name(name)?, version) else {
        return Ok(None);
    };
    Ok(Some(parse_create(&record.record)?))
}

fn parse_create(record: &ModelRecord) -> Result<CreateModel> {
    let parsed = autolake_sql::parse(&record.sql)?;
    match parsed.into_iter().next().map(|p| p.statement) {
        Some(Statement::CreateModel(c)) => Ok(c),
        _ => Err(Error::internal(format!(
            "model {} version {} records no CREATE MODEL statement",
            record.name, record.version
        ))),
    }
}

/// Pins every unversioned lake table of a query to its recorded version.
struct Pin<'a> {
    lineage: &'a [Lineage],
    error: Option<Error>,
}

impl VisitorMut for Pin<'_> {
    type Break = ();

    fn pre_visit_table_factor(
        &mut self,
        factor: &mut TableFactor,
    ) -> std::ops::ControlFlow<Self::Break> {
        if let TableFactor::Table {
            name,
            version,
            args: None,
            ..
        } = factor
            && version.is_none()
        {
            match lake_table(name) {
                Ok(table) => {
                    let key = format!("{}.{}", table.schema, table.table);
                    if let Some(l) = self.lineage.iter().find(|l| l.table == key) {
                        *version = Some(TableVersion::VersionAsOf(Expr::value(Value::Number(
                            l.version.to_string(),
                            false,
                        ))));
                    }
                }
                Err(e) if self.error.is_none() => self.error = Some(e),
                Err(_) => {}
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Checks every data file of each recorded table version still exists.
async fn require_files(cx: &StatementContext, record: &ModelRecord) -> Result<()> {
    let lake = cx.engine.lake();
    for l in &record.lineage {
        let (schema, table) = l.table.split_once('.').unwrap_or(("", &l.table));
        let name = TableName::new(schema, table);
        let gone = |why: String| Error::NotFound {
            kind: "training data",
            name: format!(
                "of model {} version {}: table {} version {} {why}; the rows it was trained on no longer exist",
                record.name, record.version, l.table, l.version
            ),
        };
        let Some(mut delta) = lake.load_table(&name).await? else {
            return Err(gone("was dropped".to_string()));
        };
        if delta.load_version(l.version).await.is_err() {
            return Err(gone("is no longer in the table's log".to_string()));
        }
        let root = lake.table_path(&name);
        let snapshot = delta.snapshot()?;
        for view in snapshot.log_data().iter() {
            let location = view
                .object_store_path()
                .parts()
                .fold(root.clone(), |path, part| path.join(part));
            if let Err(e) = lake.store().head(&location).await {
                return Err(match e {
                    object_store::Error::NotFound { .. } => gone(format!(
                        "was vacuumed: its file {} is gone",
                        view.object_store_path()
                    )),
                    other => other.into(),
                });
            }
        }
    }
    Ok(())
}

/// `REPRODUCE MODEL m [VERSION n]`: retrains from the version's statement
/// over the recorded table versions and compares.
pub(crate) async fn reproduce(
    cx: &StatementContext,
    name: &ObjectName,
    version: Option<u64>,
) -> Result<StatementResult> {
    let name = model_name(name)?;
    let original = cx.engine.models().get(&name, version)?;
    let record = &original.record;
    let mut create = parse_create(record)?;
    let mut pin = Pin {
        lineage: &record.lineage,
        error: None,
    };
    let _ = create.query.visit(&mut pin);
    if let Some(e) = pin.error {
        return Err(e);
    }
    require_files(cx, record).await?;
    let (trained, again) = train_model(cx, &create, &record.sql).await?;
    let same_spec =
        serde_json::to_string(&record.spec).ok() == serde_json::to_string(&again.spec).ok();
    let weights_identical = same_spec
        && original.model.to_safetensors().map_err(Error::internal)?
            == trained.model.to_safetensors().map_err(Error::internal)?;
    let same_versions = again.lineage == record.lineage;
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::UInt64, false),
        Field::new("weights_identical", DataType::Boolean, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("recorded", DataType::Float64, true),
        Field::new("reproduced", DataType::Float64, true),
        Field::new("equal", DataType::Boolean, false),
        Field::new("table_versions", DataType::Utf8, false),
    ]));
    let mut metrics: Vec<&String> = record.metrics.keys().chain(again.metrics.keys()).collect();
    metrics.sort();
    metrics.dedup();
    let versions = record
        .lineage
        .iter()
        .map(|l| format!("{}@{}", l.table, l.version))
        .collect::<Vec<_>>()
        .join(", ");
    let n = metrics.len();
    let recorded: Vec<Option<f64>> = metrics
        .iter()
        .map(|m| record.metrics.get(*m).copied())
        .collect();
    let reproduced: Vec<Option<f64>> = metrics
        .iter()
        .map(|m| again.metrics.get(*m).copied())
        .collect();
    let equal: Vec<bool> = recorded
        .iter()
        .zip(&reproduced)
        .map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            _ => false,
        })
        .collect();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec![name.as_str(); n])),
            Arc::new(UInt64Array::from(vec![record.version; n])),
            Arc::new(BooleanArray::from(vec![
                weights_identical && same_versions;
                n
            ])),
            Arc::new(StringArray::from_iter_values(
                metrics.iter().map(|m| m.as_str()),
            )),
            Arc::new(Float64Array::from(recorded)),
            Arc::new(Float64Array::from(reproduced)),
            Arc::new(BooleanArray::from(equal)),
            Arc::new(StringArray::from(vec![versions.as_str(); n])),
        ],
    )?;
    Ok(StatementResult::batches(
        "REPRODUCE MODEL",
        schema,
        vec![batch],
    ))
}

/// The metrics each model kind reports, and whether a higher value is
/// better.
fn metric_direction(kind: ModelKind, metric: &str) -> Option<bool> {
    let higher = ["accuracy", "precision", "recall", "f1", "auc", "r2"];
    let lower = ["log_loss", "rmse", "mae", "inertia"];
    let known: &[&str] = if kind == ModelKind::Kmeans {
        &["inertia"]
    } else if kind.is_regressor() {
        &["rmse", "mae", "r2"]
    } else {
        &["accuracy", "precision", "recall", "f1", "auc", "log_loss"]
    };
    if !known.contains(&metric) {
        return None;
    }
    Some(higher.contains(&metric) || !lower.contains(&metric))
}

/// The metric a kind is compared on when no gate names one.
fn default_metric(kind: ModelKind) -> &'static str {
    if kind == ModelKind::Kmeans {
        "inertia"
    } else if kind.is_regressor() {
        "rmse"
    } else {
        "accuracy"
    }
}

/// Checks a monitor's `ON DRIFT` clause when it is created: the model
/// exists and reports the gate's metric.
pub(crate) fn retrain_rule(cx: &StatementContext, on: &OnDrift) -> Result<RetrainRule> {
    let model = model_name(&on.model)?;
    let version = cx.engine.models().get(&model, None)?;
    parse_create(&version.record)?;
    let kind = version.record.spec.kind;
    if let Some((metric, _, _)) = &on.gate
        && metric_direction(kind, metric).is_none()
    {
        let known: Vec<&str> = [
            "accuracy",
            "precision",
            "recall",
            "f1",
            "auc",
            "log_loss",
            "rmse",
            "mae",
            "r2",
            "inertia",
        ]
        .into_iter()
        .filter(|m| metric_direction(kind, m).is_some())
        .collect();
        return Err(Error::invalid(format!(
            "PROMOTE WHEN {metric}: model {model} is a {} and reports {}",
            kind.name(),
            known.join(", ")
        )));
    }
    Ok(RetrainRule {
        model,
        gate: on.gate.clone(),
    })
}

/// One row of `system.model_events`.
struct Event {
    version: Option<u64>,
    event: &'static str,
    reason: String,
    metrics: Option<String>,
    at: chrono::DateTime<chrono::Utc>,
}

impl Event {
    fn new(version: Option<u64>, event: &'static str, reason: impl Into<String>) -> Self {
        Self {
            version,
            event,
            reason: reason.into(),
            metrics: None,
            at: chrono::Utc::now(),
        }
    }
}

async fn append_events(
    cx: &StatementContext,
    model: &str,
    monitor: &str,
    events: &[Event],
) -> Result<()> {
    let n = events.len();
    let batch = RecordBatch::try_new(
        crate::models::events_schema(),
        vec![
            Arc::new(StringArray::from(vec![model; n])),
            Arc::new(Int64Array::from_iter(
                events.iter().map(|e| e.version.map(|v| v as i64)),
            )),
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| e.event),
            )),
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| e.reason.as_str()),
            )),
            Arc::new(StringArray::from_iter(
                events.iter().map(|e| e.metrics.as_deref()),
            )),
            Arc::new(StringArray::from(vec![monitor; n])),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    events.iter().map(|e| e.at.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
        ],
    )?;
    crate::lake::write::append_system(
        cx.engine.lake(),
        &cx.ctx,
        &crate::models::events_table(),
        batch,
        &cx.stamp("RETRAIN"),
    )
    .await
}

/// Who holds a model's retrain, so two processes never retrain one model
/// at once.
#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    holder: String,
    since: chrono::DateTime<chrono::Utc>,
}

/// A lease older than this is taken over (its process died).
const LEASE_TIMEOUT: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Drift was detected by `monitor` in `drifted`: retrains `rule.model`
/// on the latest data, evaluates the new version and promotes it when it
/// passes the gate and is not worse than production. Every step is a row
/// of `system.model_events`; a failure leaves production as it was.
pub(crate) async fn retrain(
    cx: &StatementContext,
    monitor: &str,
    rule: &RetrainRule,
    drifted: &[String],
) -> Result<()> {
    let model = &rule.model;
    let production = cx.engine.models().get(model, None).ok();
    let mut events = vec![Event::new(
        production.as_ref().map(|p| p.record.version),
        "drift_detected",
        format!("monitor {monitor}: drift in {}", drifted.join(", ")),
    )];
    // One retrain of a model at a time: in this process, and across
    // processes through a create-only lease in the lake.
    let lock = cx.engine.jobs().lock(&format!("retrain.{model}"));
    let Ok(_held) = lock.try_lock() else {
        events.push(Event::new(
            None,
            "skipped",
            format!("a retrain of model {model} is already running"),
        ));
        return append_events(cx, model, monitor, &events).await;
    };
    let leases: DocStore<Lease> =
        DocStore::new(Arc::clone(cx.engine.lake()), "retrains", "retrain lease");
    let lease = Lease {
        holder: format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple()),
        since: chrono::Utc::now(),
    };
    if !leases.create(model, &lease).await? {
        match leases.get(model).await? {
            Some(held) if chrono::Utc::now() - held.since < LEASE_TIMEOUT => {
                events.push(Event::new(
                    None,
                    "skipped",
                    format!(
                        "a retrain of model {model} is already running (since {})",
                        held.since.to_rfc3339()
                    ),
                ));
                return append_events(cx, model, monitor, &events).await;
            }
            _ => leases.put(model, &lease).await?,
        }
    }
    let outcome = retrain_held(cx, rule, production, &mut events).await;
    leases.delete(model).await?;
    if let Err(e) = &outcome {
        events.push(Event::new(None, "failed", e.to_string()));
    }
    append_events(cx, model, monitor, &events).await
}

async fn retrain_held(
    cx: &StatementContext,
    rule: &RetrainRule,
    production: Option<Arc<crate::models::ModelVersion>>,
    events: &mut Vec<Event>,
) -> Result<()> {
    let model = &rule.model;
    let Some(production) = production else {
        return Err(Error::NotFound {
            kind: "model",
            name: format!("{model} (it was dropped after the monitor was made)"),
        });
    };
    let state = cx.engine.governance().state().await?;
    if !state.allows(
        &cx.principal,
        crate::governance::Privilege::Train,
        &crate::governance::Securable::Model(model.clone()),
    ) {
        events.push(Event::new(
            None,
            "refused",
            format!("user {} lacks TRAIN on model {model}", cx.principal.name),
        ));
        return Ok(());
    }
    // The production version's statement, over the data as it is now.
    let create = parse_create(&production.record)?;
    let trained = train_model(cx, &create, &production.record.sql).await;
    let (trained, record) = match trained {
        Ok(t) => t,
        Err(e) => {
            events.push(Event::new(None, "training_failed", e.to_string()));
            return Ok(());
        }
    };
    let kind = record.spec.kind;
    let version = cx
        .engine
        .models()
        .register(record.clone(), &trained.model)
        .await?;
    let mut trained_event = Event::new(
        Some(version),
        "trained",
        format!(
            "trained from version {}'s statement on {} rows ({} held out)",
            production.record.version, record.training_rows, record.validation_rows
        ),
    );
    trained_event.metrics = Some(crate::models::metrics_json(&record.metrics));
    events.push(trained_event);

    let (metric, gate) = match &rule.gate {
        Some((metric, op, bound)) => (metric.clone(), Some((op.clone(), *bound))),
        None => (default_metric(kind).to_string(), None),
    };
    let higher_better = metric_direction(kind, &metric).unwrap_or(true);
    let candidate = record.metrics.get(&metric).copied();
    // Production on the latest rows: what it would score if kept.
    let current =
        super::models::evaluate_metrics(cx, model, Some(production.record.version), &create.query)
            .await
            .map(|(_, _, m)| m.get(&metric).copied());
    let current = match current {
        Ok(v) => v,
        Err(e) => {
            events.push(Event::new(
                Some(version),
                "refused",
                format!(
                    "production version {} could not be evaluated: {e}",
                    production.record.version
                ),
            ));
            return Ok(());
        }
    };
    let mut evaluated = Event::new(
        Some(version),
        "evaluated",
        format!(
            "{metric} {} on the validation split; production version {}: {} on the latest rows",
            show(candidate),
            production.record.version,
            show(current)
        ),
    );
    evaluated.metrics = Some(
        serde_json::json!({ "candidate": candidate, "production": current, "metric": metric })
            .to_string(),
    );
    events.push(evaluated);
    let Some(candidate) = candidate else {
        events.push(Event::new(
            Some(version),
            "refused",
            format!("the new version reports no {metric}"),
        ));
        return Ok(());
    };
    if let Some((op, bound)) = &gate {
        let passes = match op.as_str() {
            ">=" => candidate >= *bound,
            ">" => candidate > *bound,
            "<=" => candidate <= *bound,
            _ => candidate < *bound,
        };
        if !passes {
            events.push(Event::new(
                Some(version),
                "refused",
                format!(
                    "gate not met: {metric} {} is not {op} {bound}",
                    show(Some(candidate))
                ),
            ));
            return Ok(());
        }
    }
    if let Some(current) = current {
        let worse = if higher_better {
            candidate < current
        } else {
            candidate > current
        };
        if worse {
            events.push(Event::new(
                Some(version),
                "refused",
                format!(
                    "{metric} {} is worse than production version {}'s {}",
                    show(Some(candidate)),
                    production.record.version,
                    show(Some(current))
                ),
            ));
            return Ok(());
        }
    }
    cx.engine
        .models()
        .set_stage(model, Some(version), "production")
        .await?;
    events.push(Event::new(
        Some(version),
        "promoted",
        format!(
            "{metric} {}{}{}; was production version {}",
            show(Some(candidate)),
            gate.map(|(op, b)| format!(" {op} {b}")).unwrap_or_default(),
            current
                .map(|c| format!(", not worse than {}", show(Some(c))))
                .unwrap_or_default(),
            production.record.version
        ),
    ));
    Ok(())
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_string(), |v| format!("{v:.4}"))
}
