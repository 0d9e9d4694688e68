//! The model registry: versioned models stored in the lake.
//!
//! Layout, under the lake root:
//!
//! ```text
//! models/<m>/v<n>/model.json          the record: spec, metrics, lineage, owner, …
//! models/<m>/v<n>/<uuid>.safetensors  the tensors the record names
//! models/<m>/stages.json              version → stage
//! ```
//!
//! A version exists once its `model.json` does: the tensors are written
//! first and the record last, with a create-only put, so a failed or
//! concurrent training never leaves a half-registered version (a loser of
//! the race for number `n` takes `n + 1`). Versions never change; stages
//! do. Every process sees what the lake holds: before each statement the
//! registry lists `models/` and loads what it has not seen (versions are
//! cached for good; stages are re-read when their file changed), so
//! `predict` — which resolves models while planning, synchronously —
//! always finds the current production version.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use autolake_udfs::ml::{ModelProvider, ModelSpec, TrainedModel};
use candle_core::Device;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::Lake;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The stages a version can be in.
pub const STAGES: [&str; 4] = ["production", "staging", "archived", "none"];

/// A table and the Delta version a training query read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// `schema.table`.
    pub table: String,
    /// Its Delta version.
    pub version: u64,
}

/// Everything recorded about one model version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The model's name.
    pub name: String,
    /// Its version, from 1.
    pub version: u64,
    /// Architecture, features and encoding.
    pub spec: ModelSpec,
    /// Metrics on the held-out rows.
    pub metrics: BTreeMap<String, f64>,
    /// Rows trained on.
    pub training_rows: u64,
    /// Rows the metrics were computed on.
    pub validation_rows: u64,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Seconds spent training (encoding included).
    pub train_seconds: f64,
    /// The device's busy fraction while training ran, as sampled (see
    /// `crate::devices`); absent for versions trained before it was kept.
    #[serde(default)]
    pub device_busy_ratio: Option<f64>,
    /// Who trained it.
    pub owner: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// The `CREATE MODEL` statement.
    pub sql: String,
    /// The options it was trained with.
    pub options: Vec<(String, String)>,
    /// The lake tables and versions the training query read.
    pub lineage: Vec<Lineage>,
    /// The tensors' file, beside the record.
    pub tensors: String,
}

/// One registered version, ready to run.
#[derive(Debug)]
pub struct ModelVersion {
    /// Its record.
    pub record: ModelRecord,
    /// The model on the engine's device.
    pub model: Arc<TrainedModel>,
}

#[derive(Debug, Default)]
struct Entry {
    versions: BTreeMap<u64, Arc<ModelVersion>>,
    stages: BTreeMap<u64, String>,
    /// The stage file's e-tag or time when read.
    stages_seen: Option<String>,
}

impl Entry {
    /// The version `predict('m')` uses: production, else the latest.
    fn default_version(&self) -> Option<u64> {
        self.stages
            .iter()
            .filter(|(v, s)| *s == "production" && self.versions.contains_key(v))
            .map(|(v, _)| *v)
            .max()
            .or_else(|| self.versions.keys().next_back().copied())
    }
}

/// The models of a lake, cached in this process.
#[derive(Debug)]
pub struct ModelRegistry {
    lake: Arc<Lake>,
    device: Device,
    /// Where `predict` counts its rows (none when unobserved).
    metrics: Option<Arc<crate::metrics::Metrics>>,
    models: RwLock<BTreeMap<String, Entry>>,
    /// Which models' predictions are logged, and the rows logged so far.
    logs: Arc<crate::inference_log::PredictionLogs>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl ModelRegistry {
    /// The registry of `lake`, running models on `device`; `predict`
    /// counts what it scores in `metrics`.
    pub fn new(
        lake: Arc<Lake>,
        device: Device,
        metrics: Option<Arc<crate::metrics::Metrics>>,
    ) -> Self {
        Self {
            logs: Arc::new(crate::inference_log::PredictionLogs::new(Arc::clone(&lake))),
            lake,
            device,
            metrics,
            models: RwLock::default(),
        }
    }

    /// Inference logging: the settings and the rows logged so far.
    pub fn logs(&self) -> &Arc<crate::inference_log::PredictionLogs> {
        &self.logs
    }

    /// The device models run on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn root(&self) -> object_store::path::Path {
        self.lake.path("models")
    }

    fn version_dir(&self, name: &str, version: u64) -> object_store::path::Path {
        self.root().join(name).join(format!("v{version}"))
    }

    fn stages_path(&self, name: &str) -> object_store::path::Path {
        self.root().join(name).join("stages.json")
    }

    /// Brings the cache up to date with the lake.
    pub async fn refresh(&self) -> Result<()> {
        self.logs.refresh().await?;
        let root = self.root();
        let listed: Vec<object_store::ObjectMeta> =
            self.lake.store().list(Some(&root)).try_collect().await?;
        // name → (versions with a record, stage file's tag)
        let mut found: BTreeMap<String, (Vec<u64>, Option<String>)> = BTreeMap::new();
        for meta in &listed {
            let parts: Vec<_> = meta
                .location
                .prefix_match(&root)
                .map(|p| p.map(|p| p.as_ref().to_string()).collect())
                .unwrap_or_default();
            match parts.as_slice() {
                [name, file] if file == "stages.json" => {
                    let tag = meta
                        .e_tag
                        .clone()
                        .unwrap_or_else(|| meta.last_modified.to_rfc3339());
                    found.entry(name.clone()).or_default().1 = Some(tag);
                }
                [name, dir, file] if file == "model.json" => {
                    if let Some(v) = dir.strip_prefix('v').and_then(|v| v.parse::<u64>().ok()) {
                        found.entry(name.clone()).or_default().0.push(v);
                    }
                }
                _ => {}
            }
        }
        // What to load, decided under the lock, loaded outside it.
        let (missing, stale_stages) = {
            let models = read(&self.models);
            let mut missing = Vec::new();
            let mut stale = Vec::new();
            for (name, (versions, tag)) in &found {
                let entry = models.get(name);
                for v in versions {
                    if entry.is_none_or(|e| !e.versions.contains_key(v)) {
                        missing.push((name.clone(), *v));
                    }
                }
                if entry.map(|e| &e.stages_seen) != Some(tag) {
                    stale.push((name.clone(), tag.clone()));
                }
            }
            (missing, stale)
        };
        let mut loaded = Vec::new();
        for (name, version) in missing {
            match self.load_version(&name, version).await {
                Ok(v) => loaded.push((name, version, Arc::new(v))),
                Err(e) => tracing::warn!("model {name} version {version} is unreadable: {e}"),
            }
        }
        let mut stages = Vec::new();
        for (name, tag) in stale_stages {
            let map = if tag.is_some() {
                self.read_stages(&name).await?
            } else {
                BTreeMap::new()
            };
            stages.push((name, tag, map));
        }
        let mut models = write(&self.models);
        models.retain(|name, _| found.contains_key(name));
        for (name, entry) in models.iter_mut() {
            let versions = &found[name].0;
            entry.versions.retain(|v, _| versions.contains(v));
        }
        for (name, version, v) in loaded {
            models.entry(name).or_default().versions.insert(version, v);
        }
        for (name, tag, map) in stages {
            let entry = models.entry(name).or_default();
            entry.stages = map;
            entry.stages_seen = tag;
        }
        models.retain(|_, e| !e.versions.is_empty());
        Ok(())
    }

    async fn load_version(&self, name: &str, version: u64) -> Result<ModelVersion> {
        let dir = self.version_dir(name, version);
        let record: ModelRecord = {
            let bytes = self
                .lake
                .store()
                .get(&dir.clone().join("model.json"))
                .await?
                .bytes()
                .await?;
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::internal(format!("unreadable model record: {e}")))?
        };
        let bytes = self
            .lake
            .store()
            .get(&dir.join(record.tensors.as_str()))
            .await?
            .bytes()
            .await?;
        let model = TrainedModel::from_safetensors(record.spec.clone(), &bytes, &self.device)
            .map_err(Error::internal)?;
        Ok(ModelVersion {
            record,
            model: Arc::new(model),
        })
    }

    async fn read_stages(&self, name: &str) -> Result<BTreeMap<u64, String>> {
        match self.lake.store().get(&self.stages_path(name)).await {
            Ok(found) => {
                let bytes = found.bytes().await?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    Error::internal(format!("the stages of model {name} are unreadable: {e}"))
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(BTreeMap::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Registers a trained model as the next version of `record.name`;
    /// returns the version given.
    pub async fn register(&self, mut record: ModelRecord, model: &TrainedModel) -> Result<u64> {
        let name = record.name.clone();
        let tensors = model.to_safetensors().map_err(Error::internal)?;
        self.refresh().await?;
        let mut version = read(&self.models)
            .get(&name)
            .and_then(|e| e.versions.keys().next_back().copied())
            .unwrap_or(0)
            + 1;
        record.tensors = format!("{}.safetensors", uuid::Uuid::new_v4());
        loop {
            let dir = self.version_dir(&name, version);
            record.version = version;
            let tensors_path = dir.clone().join(record.tensors.as_str());
            self.lake
                .store()
                .put(&tensors_path, PutPayload::from(tensors.clone()))
                .await?;
            let body = serde_json::to_vec_pretty(&record)
                .map_err(|e| Error::invalid(format!("model {name} cannot be saved: {e}")))?;
            let put = self
                .lake
                .store()
                .put_opts(
                    &dir.join("model.json"),
                    PutPayload::from(body),
                    PutOptions::from(PutMode::Create),
                )
                .await;
            match put {
                Ok(_) => break,
                // Another process registered this number first: take the next.
                Err(object_store::Error::AlreadyExists { .. }) => {
                    let _ = self.lake.store().delete(&tensors_path).await;
                    version += 1;
                }
                Err(e) => {
                    let _ = self.lake.store().delete(&tensors_path).await;
                    return Err(e.into());
                }
            }
        }
        self.refresh().await?;
        Ok(version)
    }

    /// The versions of `name`, oldest first (after a refresh).
    pub fn versions(&self, name: &str) -> Vec<Arc<ModelVersion>> {
        read(&self.models)
            .get(name)
            .map(|e| e.versions.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every version of every model with its stage.
    pub fn all(&self) -> Vec<(Arc<ModelVersion>, String)> {
        let models = read(&self.models);
        models
            .values()
            .flat_map(|e| {
                e.versions.iter().map(|(v, m)| {
                    let stage = e.stages.get(v).cloned().unwrap_or_else(|| "none".into());
                    (Arc::clone(m), stage)
                })
            })
            .collect()
    }

    /// Version `version` of `name`, or the default one.
    pub fn get(&self, name: &str, version: Option<u64>) -> Result<Arc<ModelVersion>> {
        let models = read(&self.models);
        let Some(entry) = models.get(name) else {
            let known: Vec<&str> = models.keys().map(String::as_str).collect();
            return Err(Error::NotFound {
                kind: "model",
                name: if known.is_empty() {
                    format!("{name} (no models are registered)")
                } else {
                    format!("{name} (models: {})", known.join(", "))
                },
            });
        };
        let version = match version {
            Some(v) => v,
            None => entry.default_version().unwrap_or(0),
        };
        entry.versions.get(&version).cloned().ok_or_else(|| {
            let known: Vec<String> = entry.versions.keys().map(u64::to_string).collect();
            Error::NotFound {
                kind: "version",
                name: format!("{version} of model {name} (versions: {})", known.join(", ")),
            }
        })
    }

    /// Puts a version in a stage; a version leaving `production` or
    /// `staging` for another makes room, one version per such stage.
    pub async fn set_stage(&self, name: &str, version: Option<u64>, stage: &str) -> Result<u64> {
        if !STAGES.contains(&stage) {
            return Err(Error::invalid(format!(
                "invalid stage '{stage}': expected one of {}",
                STAGES.join(", ")
            )));
        }
        self.refresh().await?;
        let version = match version {
            Some(v) => self.get(name, Some(v))?.record.version,
            None => self
                .versions(name)
                .last()
                .map(|v| v.record.version)
                .ok_or_else(|| Error::NotFound {
                    kind: "model",
                    name: name.to_string(),
                })?,
        };
        let mut stages = self.read_stages(name).await?;
        if matches!(stage, "production" | "staging") {
            stages.retain(|_, s| s != stage);
        }
        stages.insert(version, stage.to_string());
        let body = serde_json::to_vec_pretty(&stages)
            .map_err(|e| Error::invalid(format!("stages of {name} cannot be saved: {e}")))?;
        self.lake
            .store()
            .put(&self.stages_path(name), PutPayload::from(body))
            .await?;
        self.refresh().await?;
        Ok(version)
    }

    /// Drops a version, or the whole model; `false` when there was none.
    pub async fn drop_model(&self, name: &str, version: Option<u64>) -> Result<bool> {
        self.refresh().await?;
        let versions = self.versions(name);
        if versions.is_empty() {
            return Ok(false);
        }
        let prefix = match version {
            Some(v) => {
                if !versions.iter().any(|m| m.record.version == v) {
                    return Err(Error::NotFound {
                        kind: "version",
                        name: format!("{v} of model {name}"),
                    });
                }
                self.version_dir(name, v)
            }
            None => self.root().join(name),
        };
        // The record first, so a half-finished drop leaves no version.
        if let Some(v) = version {
            self.lake
                .store()
                .delete(&self.version_dir(name, v).join("model.json"))
                .await?;
        } else {
            for v in &versions {
                self.lake
                    .store()
                    .delete(&self.version_dir(name, v.record.version).join("model.json"))
                    .await?;
            }
        }
        let rest: Vec<_> = self.lake.store().list(Some(&prefix)).try_collect().await?;
        for meta in rest {
            let _ = self.lake.store().delete(&meta.location).await;
        }
        self.refresh().await?;
        Ok(true)
    }
}

impl ModelRegistry {
    /// The version a `predict` reference names (`'m'`, `'m@3'`).
    fn referenced(&self, reference: &str) -> std::result::Result<Arc<ModelVersion>, String> {
        let (name, version) = match reference.rsplit_once('@') {
            Some((name, v)) => match v.parse::<u64>() {
                Ok(v) => (name, Some(v)),
                Err(_) => {
                    return Err(format!(
                        "invalid model reference '{reference}': expected 'model' or 'model@version'"
                    ));
                }
            },
            None => (reference, None),
        };
        let lower = name.to_lowercase();
        let name = if read(&self.models).contains_key(name) {
            name
        } else {
            lower.as_str()
        };
        match self.get(name, version) {
            Ok(found) => Ok(found),
            // Another process (a cluster's coordinator) may have trained it
            // since this one last looked: look again, once.
            Err(_) if self.refresh_now() => self.get(name, version).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The public name of a `predict` reference pinned to the version it
    /// names now (`'m'` → `'m@3'`), so that a plan run elsewhere scores
    /// with the version this process would.
    pub fn pinned(&self, reference: &str) -> Option<String> {
        let version = self.referenced(reference).ok()?;
        Some(format!(
            "{}@{}",
            version.record.name, version.record.version
        ))
    }

    /// Reloads the registry from the lake from synchronous code, where a
    /// multi-threaded runtime allows it; whether it did.
    fn refresh_now(&self) -> bool {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return false;
        }
        tokio::task::block_in_place(|| handle.block_on(self.refresh())).is_ok()
    }
}

impl ModelProvider for ModelRegistry {
    fn resolve(&self, reference: &str) -> std::result::Result<Arc<TrainedModel>, String> {
        self.referenced(reference).map(|v| Arc::clone(&v.model))
    }

    fn log(&self, batch: autolake_udfs::ml::Predictions<'_>) {
        let name = batch.reference.split('@').next().unwrap_or(batch.reference);
        let Some(config) = self.logs.config(name) else {
            return;
        };
        let Ok(v) = self.referenced(batch.reference) else {
            return;
        };
        let names: Vec<String> = v
            .record
            .spec
            .features
            .iter()
            .map(|f| f.name.clone())
            .collect();
        self.logs.record(
            &config,
            v.record.version,
            &names,
            batch.query_id,
            batch.features,
            batch.output,
        );
    }

    fn observe(&self, reference: &str, rows: usize, seconds: f64) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        if let Ok(v) = self.referenced(reference) {
            metrics.predict(
                &v.record.name,
                v.record.version,
                &autolake_udfs::ml::device::device_name(&self.device),
                rows,
                seconds,
            );
        }
    }
}

/// Resolves where an engine's models run, saying so once in the log.
pub(crate) fn engine_device(choice: &str) -> Result<Device> {
    let parsed = autolake_udfs::ml::DeviceChoice::parse(choice).map_err(Error::invalid)?;
    let device = autolake_udfs::ml::resolve_device(parsed).map_err(Error::invalid)?;
    tracing::info!(
        "models run on {} (device '{}')",
        autolake_udfs::ml::device::device_name(&device),
        if choice.is_empty() { "auto" } else { choice }
    );
    Ok(device)
}

/// Metrics as compact JSON.
pub fn metrics_json(metrics: &BTreeMap<String, f64>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = metrics
        .iter()
        .map(|(k, v)| {
            let value = serde_json::Number::from_f64((v * 1e6).round() / 1e6)
                .map_or(serde_json::Value::Null, serde_json::Value::Number);
            (k.clone(), value)
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Where the lifecycle's events are kept.
pub(crate) fn events_table() -> crate::lake::TableName {
    crate::lake::TableName::new(crate::lake::SYSTEM_SCHEMA, "model_events")
}

/// Columns of `system.model_events`.
pub(crate) fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, true),
        Field::new("event", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("metrics", DataType::Utf8, true),
        Field::new("monitor", DataType::Utf8, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}
