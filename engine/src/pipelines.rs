//! Templates and the pipelines stamped from them.
//!
//! ```text
//! CREATE [OR REPLACE] TEMPLATE t (p IDENT|TEXT|INT|DOUBLE|INTERVAL [DEFAULT v], …)
//!   AS $$ statement; statement; … $$
//! CREATE PIPELINE p FROM TEMPLATE t [VERSION n] WITH (p = v, …)
//! DROP PIPELINE p [PURGE]        SHOW PIPELINES        SHOW TEMPLATES
//! ```
//!
//! **Templates** are JSON documents at `<lake>/templates/<t>.json` holding
//! every version (`OR REPLACE` appends one; a pipeline names the version
//! it was stamped from). The body is checked when the template is made:
//! placeholders, defaults and the statements themselves, parsed with
//! stand-in values (see [`autolake_sql::template`] for how values are
//! checked and written — by type, so no value can change a statement's
//! shape).
//!
//! **Stamping** happens in the funnel ([`crate::session`]): the body is
//! filled, parsed, and each statement runs through
//! `Session::execute_statement` as the creator, so privileges, ownership
//! and the audit log apply to each one as if typed. Like dbt's or
//! Terraform's runs, a pipeline is all or nothing: before each statement
//! the objects it could create (its `Create` accesses, and tables it
//! writes) are looked up, and after it those that now exist and did not
//! before are recorded as the pipeline's. When a statement fails, the
//! recorded objects are dropped in reverse order, data included, each
//! drop a statement of its own in the audit log. A statement that writes
//! to a table the pipeline did not create is refused before it runs: a
//! pipeline's writes stay inside what it can remove.
//!
//! The pipeline's document (`<lake>/pipelines/<p>.json`) is written with
//! status `creating` before the first statement and updated after each, so
//! a process that dies halfway leaves a record of what exists; `DROP
//! PIPELINE p PURGE` removes it. `DROP PIPELINE p` drops its jobs and
//! monitors (the moving parts) and keeps its data; `PURGE` drops
//! everything.

use std::collections::HashMap;
use std::sync::Arc;

use autolake_sql::{ParamType, TemplateParam};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::lake::docs::DocStore;

/// One version of a template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateVersion {
    /// 1, 2, …
    pub version: u64,
    /// Its parameters, in order.
    pub params: Vec<StoredParam>,
    /// The statements, with `${p}` placeholders.
    pub body: String,
    /// Who wrote this version.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A template parameter as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredParam {
    /// Its name.
    pub name: String,
    /// `IDENT`, `TEXT`, `INT`, `DOUBLE` or `INTERVAL`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Its default value, if any.
    pub default: Option<String>,
}

impl StoredParam {
    /// From a parsed parameter.
    pub fn from_param(p: &TemplateParam) -> Self {
        Self {
            name: p.name.clone(),
            ty: p.ty.as_str().to_string(),
            default: p.default.clone(),
        }
    }

    /// Back to a parameter the substitution takes.
    pub fn to_param(&self) -> Result<TemplateParam> {
        Ok(TemplateParam {
            name: self.name.clone(),
            ty: ParamType::from_word(&self.ty).ok_or_else(|| {
                Error::internal(format!(
                    "parameter {} has an unknown type {}",
                    self.name, self.ty
                ))
            })?,
            default: self.default.clone(),
        })
    }
}

/// A template and its versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Template {
    /// Its name.
    pub name: String,
    /// Every version, oldest first.
    pub versions: Vec<TemplateVersion>,
}

impl Template {
    /// Version `n`, or the latest.
    pub fn version(&self, n: Option<u64>) -> Result<&TemplateVersion> {
        match n {
            None => self
                .versions
                .last()
                .ok_or_else(|| Error::internal(format!("template {} has no version", self.name))),
            Some(n) => self
                .versions
                .iter()
                .find(|v| v.version == n)
                .ok_or_else(|| Error::NotFound {
                    kind: "template version",
                    name: format!(
                        "{} version {n} (versions: 1 to {})",
                        self.name,
                        self.versions.len()
                    ),
                }),
        }
    }
}

/// An object a pipeline made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineObject {
    /// `schema`, `table`, `source`, `model`, `job` or `monitor`.
    pub kind: String,
    /// Its name (`schema.table` for tables and views).
    pub name: String,
    /// For a model that existed before: the version the pipeline trained.
    pub version: Option<u64>,
}

impl std::fmt::Display for PipelineObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)?;
        if let Some(v) = self.version {
            write!(f, " version {v}")?;
        }
        Ok(())
    }
}

impl PipelineObject {
    /// The statement that drops it.
    pub fn drop_sql(&self) -> String {
        let quoted = |name: &str| {
            name.split('.')
                .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(".")
        };
        let name = quoted(&self.name);
        match (self.kind.as_str(), self.version) {
            ("model", Some(v)) => format!("DROP MODEL IF EXISTS {name} VERSION {v}"),
            ("model", None) => format!("DROP MODEL IF EXISTS {name}"),
            ("table", _) => format!("DROP TABLE IF EXISTS lake.{name}"),
            ("schema", _) => format!("DROP SCHEMA IF EXISTS lake.{name}"),
            (kind, _) => format!("DROP {} IF EXISTS {name}", kind.to_uppercase()),
        }
    }

    /// Whether `DROP PIPELINE` without `PURGE` drops it: the parts that
    /// run, not the data.
    pub fn runs(&self) -> bool {
        matches!(self.kind.as_str(), "job" | "monitor")
    }
}

/// A pipeline's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineStatus {
    /// Its statements are running (or the process running them died).
    Creating,
    /// Every statement ran.
    Active,
}

/// A pipeline stamped from a template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pipeline {
    /// Its name.
    pub name: String,
    /// The template.
    pub template: String,
    /// The template's version.
    pub template_version: u64,
    /// The values of the template's parameters, defaults included.
    pub parameters: Vec<(String, String)>,
    /// What it made, in order.
    pub objects: Vec<PipelineObject>,
    /// Its creator, who owns every object.
    pub owner: String,
    /// When it was stamped.
    pub created_at: DateTime<Utc>,
    /// Whether it is complete.
    pub status: PipelineStatus,
}

/// The templates and pipelines of a lake.
#[derive(Debug)]
pub struct Pipelines {
    templates: DocStore<Template>,
    pipelines: DocStore<Pipeline>,
}

impl Pipelines {
    /// The templates and pipelines of `lake`.
    pub fn new(lake: Arc<Lake>) -> Self {
        Self {
            templates: DocStore::new(Arc::clone(&lake), "templates", "template"),
            pipelines: DocStore::new(lake, "pipelines", "pipeline"),
        }
    }

    /// The template `name`.
    pub async fn template(&self, name: &str) -> Result<Option<Template>> {
        self.templates.get(name).await
    }

    /// Every template.
    pub async fn templates(&self) -> Result<Vec<Template>> {
        self.templates.list().await
    }

    /// Adds a version of a template (the first makes it); returns the
    /// version. `or_replace` is needed to add to an existing template.
    pub async fn add_template(
        &self,
        name: &str,
        or_replace: bool,
        version: TemplateVersion,
    ) -> Result<u64> {
        match self.templates.get(name).await? {
            None => {
                let doc = Template {
                    name: name.to_string(),
                    versions: vec![TemplateVersion {
                        version: 1,
                        ..version
                    }],
                };
                if !self.templates.create(name, &doc).await? {
                    return Err(Error::AlreadyExists {
                        kind: "template",
                        name: name.to_string(),
                    });
                }
                Ok(1)
            }
            Some(_) if !or_replace => Err(Error::AlreadyExists {
                kind: "template",
                name: name.to_string(),
            }),
            Some(mut doc) => {
                let n = doc.versions.last().map_or(0, |v| v.version) + 1;
                doc.versions.push(TemplateVersion {
                    version: n,
                    ..version
                });
                self.templates.put(name, &doc).await?;
                Ok(n)
            }
        }
    }

    /// Removes a template; `false` when there was none.
    pub async fn drop_template(&self, name: &str) -> Result<bool> {
        self.templates.delete(name).await
    }

    /// The pipeline `name`.
    pub async fn get(&self, name: &str) -> Result<Option<Pipeline>> {
        self.pipelines.get(name).await
    }

    /// Every pipeline.
    pub async fn list(&self) -> Result<Vec<Pipeline>> {
        self.pipelines.list().await
    }

    /// Records a new pipeline; `false` when the name is taken.
    pub(crate) async fn begin(&self, pipeline: &Pipeline) -> Result<bool> {
        self.pipelines.create(&pipeline.name, pipeline).await
    }

    /// Saves a pipeline's progress.
    pub(crate) async fn save(&self, pipeline: &Pipeline) -> Result<()> {
        self.pipelines.put(&pipeline.name, pipeline).await
    }

    /// Forgets a pipeline (its objects are dropped separately).
    pub(crate) async fn forget(&self, name: &str) -> Result<bool> {
        self.pipelines.delete(name).await
    }

    /// Which pipeline each object belongs to: `(kind, name)` → pipeline.
    pub async fn membership(&self) -> Result<HashMap<(String, String), String>> {
        let mut out = HashMap::new();
        for p in self.list().await? {
            for o in &p.objects {
                out.insert((o.kind.clone(), o.name.clone()), p.name.clone());
            }
        }
        Ok(out)
    }
}
