//! The engine and its sessions: the one funnel every interface uses.
//!
//! ```text
//! Session::execute(sql)
//!   parse (autolake-sql) ─► for each statement:
//!     refresh catalog names ─► resolve objects + accesses ─► Authorizer
//!     ─► run: lake statements through `exec` (one Delta commit each,
//!             stamped with user, statement kind and interface)
//!             everything else through DataFusion (streamed)
//! ```
//!
//! A [`Session`] carries the [`Principal`] and [`Interface`] for its whole
//! life; the CLI, Flight SQL, jobs and the demo all create sessions from one
//! [`Engine`] and call [`Session::execute_statement`], so authorization,
//! commit bookkeeping and (later) audit live here once.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use autolake_sql::ParsedStatement;
use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::delta_datafusion::planner::DeltaPlanner;
use futures::TryStreamExt;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::lake::catalog::LakeCatalog;
use crate::lake::system::SystemSchema;
use crate::lake::{DEFAULT_SCHEMA, LAKE_CATALOG, Lake};
use crate::principal::{AllowAll, Authorizer, Interface, Principal};

/// Catalog and schema holding the per-statement time-travel snapshots.
pub(crate) const INTERNAL_CATALOG: &str = "__autolake";
pub(crate) const TIME_TRAVEL_SCHEMA: &str = "time_travel";

/// How an engine is opened: the lake and its storage options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Lake root URI.
    pub lake: String,
    /// Object-store options for the lake root (S3 endpoint, keys, …).
    pub storage_options: HashMap<String, String>,
    /// Compute device: `auto`, `cpu` or `cuda[:N]`.
    pub device: String,
}

impl EngineConfig {
    /// A configuration for the lake at `uri`, with defaults otherwise.
    pub fn for_lake(uri: impl Into<String>) -> Self {
        Self {
            lake: uri.into(),
            device: "auto".to_string(),
            ..Self::default()
        }
    }
}

/// A lake opened for work: shared by every session of a process.
#[derive(Debug)]
pub struct Engine {
    lake: Arc<Lake>,
    config: EngineConfig,
    authorizer: Arc<dyn Authorizer>,
    system: Arc<SystemSchema>,
}

impl Engine {
    /// Opens the lake of `config`, failing with a clear error when it
    /// cannot be reached.
    pub async fn open(config: EngineConfig) -> Result<Arc<Self>> {
        let lake = Lake::open(&config.lake, &config.storage_options).await?;
        let system = Arc::new(SystemSchema::new(Arc::clone(&lake)));
        Ok(Arc::new(Self {
            lake,
            config,
            authorizer: Arc::new(AllowAll),
            system,
        }))
    }

    /// The lake.
    pub fn lake(&self) -> &Arc<Lake> {
        &self.lake
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// A new session for `principal` arriving through `interface`.
    pub fn session(self: &Arc<Self>, principal: Principal, interface: Interface) -> Session {
        Session::new(Arc::clone(self), principal, interface)
    }

    pub(crate) fn authorizer(&self) -> &dyn Authorizer {
        self.authorizer.as_ref()
    }
}

/// The output of one statement: a stream of record batches.
pub struct StatementResult {
    /// The statement's kind (`SELECT`, `INSERT`, …).
    pub kind: &'static str,
    /// Whether the statement returns rows a user asked for (queries,
    /// SHOW/DESCRIBE, maintenance reports) rather than a status.
    pub returns_rows: bool,
    stream: SendableRecordBatchStream,
}

impl StatementResult {
    pub(crate) fn stream(kind: &'static str, stream: SendableRecordBatchStream) -> Self {
        Self {
            kind,
            returns_rows: true,
            stream,
        }
    }

    pub(crate) fn batches(
        kind: &'static str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Self {
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        Self::stream(
            kind,
            Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
        )
    }

    pub(crate) fn status(mut self) -> Self {
        self.returns_rows = false;
        self
    }

    /// The schema of the rows.
    pub fn schema(&self) -> SchemaRef {
        self.stream.schema()
    }

    /// The rows as a stream (a large result is never materialised).
    pub fn into_stream(self) -> SendableRecordBatchStream {
        self.stream
    }

    /// All rows, collected.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        Ok(self.stream.try_collect().await?)
    }
}

/// One principal's conversation with the engine.
pub struct Session {
    pub(crate) engine: Arc<Engine>,
    pub(crate) principal: Principal,
    pub(crate) interface: Interface,
    pub(crate) ctx: SessionContext,
    pub(crate) catalog: Arc<LakeCatalog>,
    pub(crate) time_travel: Arc<MemorySchemaProvider>,
}

impl std::fmt::Debug for StatementResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementResult")
            .field("kind", &self.kind)
            .field("returns_rows", &self.returns_rows)
            .field("schema", &self.stream.schema())
            .finish()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("principal", &self.principal)
            .field("interface", &self.interface)
            .field("lake", &self.engine.lake.uri())
            .finish()
    }
}

impl Session {
    fn new(engine: Arc<Engine>, principal: Principal, interface: Interface) -> Self {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(LAKE_CATALOG, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            // As delta-rs does: hash-join IN-list pushdown can panic when join
            // keys are dictionary arrays, which Delta partition columns are.
            .set_usize("datafusion.optimizer.hash_join_inlist_pushdown_max_size", 0)
            .set_usize(
                "datafusion.optimizer.hash_join_inlist_pushdown_max_distinct_values",
                0,
            );
        // delta-rs's planner executes the plan nodes its writes add.
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_query_planner(DeltaPlanner::new())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let catalog = Arc::new(LakeCatalog::new(
            Arc::clone(&engine.lake),
            Arc::clone(&engine.system),
        ));
        ctx.register_catalog(LAKE_CATALOG, Arc::clone(&catalog) as _);
        let internal = MemoryCatalogProvider::new();
        let time_travel = Arc::new(MemorySchemaProvider::new());
        datafusion::catalog::CatalogProvider::register_schema(
            &internal,
            TIME_TRAVEL_SCHEMA,
            Arc::clone(&time_travel) as _,
        )
        .expect("a fresh memory catalog accepts schemas");
        ctx.register_catalog(INTERNAL_CATALOG, Arc::new(internal));
        autolake_udfs::register_all(&ctx);
        Self {
            engine,
            principal,
            interface,
            ctx,
            catalog,
            time_travel,
        }
    }

    /// Who this session runs as.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The engine behind the session.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The DataFusion context (for embedding programs that register their
    /// own tables or functions).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Parses `sql` into statements without running anything.
    pub fn parse(&self, sql: &str) -> Result<Vec<ParsedStatement>> {
        Ok(autolake_sql::parse(sql)?)
    }

    /// Runs every statement of `sql` in order and collects the last
    /// statement's rows. Stops at the first failure.
    pub async fn execute(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let statements = self.parse(sql)?;
        let mut last = Vec::new();
        for statement in &statements {
            last = self.execute_statement(statement).await?.collect().await?;
        }
        Ok(last)
    }

    /// Runs one parsed statement: the funnel every interface goes through.
    pub async fn execute_statement(&self, parsed: &ParsedStatement) -> Result<StatementResult> {
        self.catalog.refresh().await?;
        let accesses = crate::exec::accesses(self, &parsed.statement)?;
        self.engine
            .authorizer()
            .authorize(&self.principal, &accesses)?;
        crate::exec::run(self, &parsed.statement).await
    }

    /// Shorthand: parse and run exactly one statement.
    pub async fn sql(&self, sql: &str) -> Result<StatementResult> {
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(Error::invalid(format!(
                "expected exactly one statement, found {}",
                statements.len()
            )));
        }
        self.execute_statement(&statements.remove(0)).await
    }
}
