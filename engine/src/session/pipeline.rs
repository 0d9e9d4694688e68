//! Stamping a pipeline from a template, and dropping one: each statement
//! goes through the funnel as the session's principal (see
//! [`crate::pipelines`] for the design).

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use autolake_sql::{CreatePipeline, ParsedStatement};
use chrono::Utc;

use super::Session;
use crate::context::Engine;
use crate::context::StatementResult;
use crate::error::{Error, Result};
use crate::lake::TableName;
use crate::names::single_name;
use crate::pipelines::{Pipeline, PipelineObject, PipelineStatus};
use crate::principal::{Access, Action, Object};

impl Session {
    /// `CREATE PIPELINE p FROM TEMPLATE t …`: the body's statements run in
    /// order through the funnel; on the first failure everything made so
    /// far is dropped again and the error names the statement.
    pub(super) async fn create_pipeline(&self, create: &CreatePipeline) -> Result<StatementResult> {
        let engine = Arc::clone(&self.cx.engine);
        let name = single_name("pipeline", &create.name)?;
        crate::lake::validate_name("pipeline", &name)?;
        let template_name = single_name("template", &create.template)?;
        let template = engine
            .pipelines()
            .template(&template_name)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "template",
                name: template_name.clone(),
            })?;
        let version = template.version(create.version)?;
        let params = version
            .params
            .iter()
            .map(|p| p.to_param())
            .collect::<Result<Vec<_>>>()?;
        let values = autolake_sql::template::bind(&template_name, &params, &create.args)
            .map_err(Error::invalid)?;
        let filled = autolake_sql::template::substitute(&version.body, &params, &values)
            .map_err(|e| Error::invalid(format!("template {template_name}, {e}")))?;
        let statements =
            autolake_sql::template::statements(&template_name, &filled).map_err(Error::invalid)?;
        let mut pipeline = Pipeline {
            name: name.clone(),
            template: template_name.clone(),
            template_version: version.version,
            parameters: values,
            objects: Vec::new(),
            owner: self.cx.principal.name.clone(),
            created_at: Utc::now(),
            status: PipelineStatus::Creating,
        };
        let store = engine.pipelines();
        if !store.begin(&pipeline).await? {
            return Err(Error::AlreadyExists {
                kind: "pipeline",
                name,
            });
        }
        for (i, parsed) in statements.iter().enumerate() {
            let outcome = self.stamp_one(parsed, &mut pipeline).await;
            store.save(&pipeline).await?;
            if let Err(e) = outcome {
                let (removed, left) = self.remove(&pipeline.objects, true).await;
                let mut message = format!(
                    "pipeline {name} failed at statement {} (line {} of template {template_name} version {}): {e}",
                    i + 1,
                    parsed.line,
                    version.version
                );
                if left.is_empty() {
                    store.forget(&name).await?;
                    message.push_str(&match removed.is_empty() {
                        true => "; it had made nothing".to_string(),
                        false => format!("; removed what it had made: {}", removed.join(", ")),
                    });
                } else {
                    pipeline.objects.retain(|o| left.contains(o));
                    store.save(&pipeline).await?;
                    message.push_str(&format!(
                        "; could not remove {}: DROP PIPELINE {name} PURGE retries",
                        left.iter()
                            .map(|o| o.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                return Err(match e {
                    Error::PermissionDenied(_) => Error::PermissionDenied(message),
                    _ => Error::invalid(message),
                });
            }
        }
        pipeline.status = PipelineStatus::Active;
        store.save(&pipeline).await?;
        objects_result(&pipeline)
    }

    /// Runs one statement of a pipeline, recording what it made.
    async fn stamp_one(&self, parsed: &ParsedStatement, pipeline: &mut Pipeline) -> Result<()> {
        let engine = &self.cx.engine;
        let accesses = crate::exec::accesses(&self.cx, &parsed.statement)?;
        let candidates = candidates(&parsed.statement, &accesses);
        let mut before = Vec::with_capacity(candidates.len());
        for access in &candidates {
            let exists = existing(engine, &access.object).await?;
            if let Object::Table(t) = &access.object
                && matches!(
                    access.action,
                    Action::Insert | Action::Update | Action::Delete
                )
                && exists.is_some()
                && !owns_table(&pipeline.objects, t)
            {
                return Err(Error::invalid(format!(
                    "a pipeline writes only to tables it creates, and lake.{}.{} existed before pipeline {}",
                    t.schema, t.table, pipeline.name
                )));
            }
            before.push(exists);
        }
        let outcome = match Box::pin(self.execute_statement(parsed)).await {
            Ok(result) => result.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        // What the statement made, also when it failed late.
        for (access, before) in candidates.iter().zip(before) {
            let after = existing(engine, &access.object).await?;
            if let Some(object) = made(&access.object, before, after)
                && !pipeline.objects.contains(&object)
            {
                pipeline.objects.push(object);
            }
        }
        outcome
    }

    /// Drops `objects` newest first through the funnel (only the jobs and
    /// monitors unless `everything`); returns what was dropped and what
    /// could not be.
    async fn remove(
        &self,
        objects: &[PipelineObject],
        everything: bool,
    ) -> (Vec<String>, Vec<PipelineObject>) {
        let mut removed = Vec::new();
        let mut left = Vec::new();
        for object in objects.iter().rev() {
            if !everything && !object.runs() {
                continue;
            }
            let dropped = match self.parse_one(&object.drop_sql()) {
                Ok(parsed) => match Box::pin(self.execute_statement(&parsed)).await {
                    Ok(result) => result.collect().await.map(|_| ()),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match dropped {
                Ok(()) => removed.push(object.to_string()),
                Err(e) => {
                    tracing::warn!("could not drop {object}: {e}");
                    left.push(object.clone());
                }
            }
        }
        (removed, left)
    }

    /// `DROP PIPELINE p [PURGE]`: its jobs and monitors (with `PURGE`,
    /// everything it made) dropped through the funnel, then its record.
    pub(super) async fn drop_pipeline(
        &self,
        name: &str,
        if_exists: bool,
        purge: bool,
    ) -> Result<StatementResult> {
        let store = self.cx.engine.pipelines();
        let Some(mut pipeline) = store.get(name).await? else {
            if if_exists {
                return Ok(crate::exec::query::done("DROP PIPELINE"));
            }
            return Err(Error::NotFound {
                kind: "pipeline",
                name: name.to_string(),
            });
        };
        let (_, left) = self.remove(&pipeline.objects, purge).await;
        if !left.is_empty() {
            pipeline
                .objects
                .retain(|o| left.contains(o) || !(purge || o.runs()));
            store.save(&pipeline).await?;
            return Err(Error::invalid(format!(
                "pipeline {name} is kept: could not drop {}",
                left.iter()
                    .map(|o| o.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        store.forget(name).await?;
        Ok(crate::exec::query::done("DROP PIPELINE"))
    }
}

/// The objects a pipeline made, one row each.
fn objects_result(pipeline: &Pipeline) -> Result<StatementResult> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("version", DataType::UInt64, true),
    ]));
    let o = &pipeline.objects;
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec![pipeline.name.as_str(); o.len()])),
            Arc::new(StringArray::from_iter_values(o.iter().map(|o| &o.kind))),
            Arc::new(StringArray::from_iter_values(o.iter().map(|o| &o.name))),
            Arc::new(UInt64Array::from_iter(o.iter().map(|o| o.version))),
        ],
    )?;
    Ok(StatementResult::batches(
        "CREATE PIPELINE",
        schema,
        vec![batch],
    ))
}

/// The objects a statement could create or write, from its accesses:
/// what is created, and tables written (SYNC makes its target). A job's
/// body runs later, so only the job itself counts for `CREATE JOB`.
fn candidates(statement: &autolake_sql::Statement, accesses: &[Access]) -> Vec<Access> {
    let job = matches!(statement, autolake_sql::Statement::CreateJob(_));
    accesses
        .iter()
        .filter(|a| {
            if job {
                return matches!(a.object, Object::Job(_)) && a.action == Action::Create;
            }
            matches!(
                (&a.object, a.action),
                (
                    Object::Table(_)
                        | Object::Schema(_)
                        | Object::Source(_)
                        | Object::Model(_)
                        | Object::Job(_)
                        | Object::Monitor(_),
                    Action::Create,
                ) | (
                    Object::Table(_),
                    Action::Insert | Action::Update | Action::Delete
                )
            )
        })
        .cloned()
        .collect()
}

/// What exists of `object` now: `None` when it does not; for a model, its
/// latest version.
async fn existing(engine: &Engine, object: &Object) -> Result<Option<u64>> {
    Ok(match object {
        Object::Model(m) => {
            engine.models().refresh().await?;
            engine
                .models()
                .versions(m)
                .iter()
                .map(|v| v.record.version)
                .max()
        }
        other => match crate::governance::Securable::of(other) {
            Some(s) if crate::exec::object_exists(engine, &s).await? => Some(0),
            _ => None,
        },
    })
}

/// The pipeline object `object` is, given what existed before a statement
/// (`before`) and after it (`after`); `None` when the statement did not
/// make it.
fn made(object: &Object, before: Option<u64>, after: Option<u64>) -> Option<PipelineObject> {
    let (kind, name) = match object {
        Object::Table(t) => ("table", table_key(t)),
        Object::Schema(s) => ("schema", s.clone()),
        Object::Source(s) => ("source", s.clone()),
        Object::Model(m) => ("model", m.clone()),
        Object::Job(j) => ("job", j.clone()),
        Object::Monitor(m) => ("monitor", m.clone()),
        _ => return None,
    };
    let after = after?;
    let version = match (kind, before) {
        ("model", Some(b)) if after > b => Some(after),
        (_, Some(_)) => return None,
        _ => None,
    };
    Some(PipelineObject {
        kind: kind.to_string(),
        name,
        version,
    })
}

fn table_key(t: &TableName) -> String {
    format!("{}.{}", t.schema, t.table)
}

/// Whether a pipeline that made `objects` may write `table`.
fn owns_table(objects: &[PipelineObject], table: &TableName) -> bool {
    let key = table_key(table);
    objects.iter().any(|o| {
        (o.kind == "table" && o.name == key) || (o.kind == "schema" && o.name == table.schema)
    })
}
