//! `system.templates` (one row per template version) and
//! `system.pipelines` (one row per pipeline).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, ListBuilder, RecordBatch, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::table::{SystemTable, utc_millis};
use crate::error::Result;
use crate::governance::{Governance, Securable};
use crate::pipelines::{PipelineStatus, Pipelines};

/// `system.templates`: every version of every template.
#[derive(Debug)]
pub(crate) struct TemplatesTable {
    pub(crate) pipelines: Arc<Pipelines>,
    pub(crate) governance: Arc<Governance>,
}

#[async_trait]
impl SystemTable for TemplatesTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("version", DataType::UInt64, false),
            Field::new("parameters", DataType::Utf8, false),
            Field::new("body", DataType::Utf8, false),
            Field::new("owner", DataType::Utf8, false),
            Field::new("created_by", DataType::Utf8, false),
            Field::new("created_at", utc_millis(), false),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let owners = self.governance.cached();
        let mut name = StringBuilder::new();
        let mut version = UInt64Builder::new();
        let mut parameters = StringBuilder::new();
        let mut body = StringBuilder::new();
        let mut owner = StringBuilder::new();
        let mut created_by = StringBuilder::new();
        let mut created_at = TimestampMillisecondBuilder::new().with_timezone("UTC");
        for t in self.pipelines.templates().await? {
            let owned_by = owners
                .owners
                .get(&Securable::Template(t.name.clone()))
                .cloned();
            for v in &t.versions {
                name.append_value(&t.name);
                version.append_value(v.version);
                let params: Vec<String> = v
                    .params
                    .iter()
                    .map(|p| match &p.default {
                        Some(d) => {
                            format!("{} {} DEFAULT '{}'", p.name, p.ty, d.replace('\'', "''"))
                        }
                        None => format!("{} {}", p.name, p.ty),
                    })
                    .collect();
                parameters.append_value(params.join(", "));
                body.append_value(&v.body);
                owner.append_value(owned_by.as_deref().unwrap_or(&v.created_by));
                created_by.append_value(&v.created_by);
                created_at.append_value(v.created_at.timestamp_millis());
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(name.finish()),
            Arc::new(version.finish()),
            Arc::new(parameters.finish()),
            Arc::new(body.finish()),
            Arc::new(owner.finish()),
            Arc::new(created_by.finish()),
            Arc::new(created_at.finish()),
        ];
        Ok(vec![RecordBatch::try_new(self.schema(), columns)?])
    }
}

/// `system.pipelines`: one row per pipeline.
#[derive(Debug)]
pub(crate) struct PipelinesTable {
    pub(crate) pipelines: Arc<Pipelines>,
}

#[async_trait]
impl SystemTable for PipelinesTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("template", DataType::Utf8, false),
            Field::new("template_version", DataType::UInt64, false),
            Field::new("parameters", DataType::Utf8, false),
            Field::new(
                "objects",
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                false,
            ),
            Field::new("owner", DataType::Utf8, false),
            Field::new("created_at", utc_millis(), false),
            Field::new("status", DataType::Utf8, false),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let mut name = StringBuilder::new();
        let mut template = StringBuilder::new();
        let mut version = UInt64Builder::new();
        let mut parameters = StringBuilder::new();
        let mut objects = ListBuilder::new(StringBuilder::new());
        let mut owner = StringBuilder::new();
        let mut created_at = TimestampMillisecondBuilder::new().with_timezone("UTC");
        let mut status = StringBuilder::new();
        for p in self.pipelines.list().await? {
            name.append_value(&p.name);
            template.append_value(&p.template);
            version.append_value(p.template_version);
            let params: serde_json::Map<String, serde_json::Value> = p
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            parameters.append_value(serde_json::Value::Object(params).to_string());
            for o in &p.objects {
                objects.values().append_value(o.to_string());
            }
            objects.append(true);
            owner.append_value(&p.owner);
            created_at.append_value(p.created_at.timestamp_millis());
            status.append_value(match p.status {
                PipelineStatus::Creating => "creating",
                PipelineStatus::Active => "active",
            });
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(name.finish()),
            Arc::new(template.finish()),
            Arc::new(version.finish()),
            Arc::new(parameters.finish()),
            Arc::new(objects.finish()),
            Arc::new(owner.finish()),
            Arc::new(created_at.finish()),
            Arc::new(status.finish()),
        ];
        Ok(vec![RecordBatch::try_new(self.schema(), columns)?])
    }
}

/// A system table listing objects of one kind, with a `pipeline` column
/// added: the pipeline that made each object, if any.
#[derive(Debug)]
pub(crate) struct WithPipeline {
    pub(crate) inner: Arc<dyn SystemTable>,
    pub(crate) pipelines: Arc<Pipelines>,
    /// The object kind, as pipelines record it (`table`, `job`, …).
    pub(crate) kind: &'static str,
    /// The columns whose values, joined by `.`, name the object.
    pub(crate) key: &'static [&'static str],
}

#[async_trait]
impl SystemTable for WithPipeline {
    fn schema(&self) -> SchemaRef {
        let inner = self.inner.schema();
        let mut fields: Vec<Field> = inner.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("pipeline", DataType::Utf8, true));
        Arc::new(Schema::new(fields))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let members = self.pipelines.membership().await?;
        let schema = self.schema();
        let mut out = Vec::new();
        for batch in self.inner.rows().await? {
            let keys: Vec<&arrow::array::StringArray> = self
                .key
                .iter()
                .map(|c| {
                    batch
                        .column_by_name(c)
                        .and_then(|a| a.as_any().downcast_ref::<arrow::array::StringArray>())
                        .ok_or_else(|| {
                            crate::error::Error::internal(format!("system table without {c}"))
                        })
                })
                .collect::<Result<_>>()?;
            let mut pipeline = StringBuilder::new();
            for row in 0..batch.num_rows() {
                let name: Vec<&str> = keys.iter().map(|k| k.value(row)).collect();
                pipeline.append_option(members.get(&(self.kind.to_string(), name.join("."))));
            }
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(pipeline.finish()));
            out.push(RecordBatch::try_new(Arc::clone(&schema), columns)?);
        }
        Ok(out)
    }
}
