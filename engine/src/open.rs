//! Opening an engine: the one place the lake's stores, the system schema
//! and the job runner are wired together. It sits above every other
//! module, so each store stays ignorant of the others.

use std::sync::Arc;

use crate::context::{Engine, EngineConfig};
use crate::devices::Devices;
use crate::error::Result;
use crate::governance::Governance;
use crate::governance::audit::AuditLog;
use crate::jobs::Jobs;
use crate::lake::Lake;
use crate::lake::cache::FileCache;
use crate::models::ModelRegistry;
use crate::scheduler::Runner;
use crate::sources::Sources;
use crate::system::{Stores, SystemSchema};

impl Engine {
    /// Opens the lake of `config`, failing with a clear error when it
    /// cannot be reached.
    pub async fn open(config: EngineConfig) -> Result<Arc<Self>> {
        let device = crate::models::engine_device(&config.device)?;
        let lake = Lake::open(&config.lake, &config.storage_options).await?;
        let files: Arc<FileCache> = Arc::default();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let observed = (!config.unobserved).then(|| Arc::clone(&metrics));
        let devices = Devices::new(observed.clone());
        let models = Arc::new(ModelRegistry::new(Arc::clone(&lake), device, observed));
        let sources = Arc::new(Sources::new(Arc::clone(&lake)));
        let governance = Arc::new(Governance::new(Arc::clone(&lake)));
        let audit = AuditLog::new(
            Arc::clone(&lake),
            !config.ungoverned,
            !config.unobserved,
            Arc::clone(&metrics),
        );
        audit.start_flusher();
        let jobs = Arc::new(Jobs::new(Arc::clone(&lake)));
        let pipelines = Arc::new(crate::pipelines::Pipelines::new(Arc::clone(&lake)));
        let system = SystemSchema::new(Stores {
            lake: Arc::clone(&lake),
            files: Arc::clone(&files),
            governance: Arc::clone(&governance),
            models: Arc::clone(&models),
            sources: Arc::clone(&sources),
            jobs: Arc::clone(&jobs),
            devices: Arc::clone(&devices),
            pipelines: Arc::clone(&pipelines),
        });
        Ok(Arc::new(Self {
            lake,
            config,
            governance,
            audit,
            metrics,
            devices,
            system: Arc::new(system),
            files,
            models,
            sources,
            jobs,
            pipelines,
            runner: Arc::new(Runner),
        }))
    }
}
