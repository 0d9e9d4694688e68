//! The engine and its sessions: the one funnel every interface uses.
//!
//! ```text
//! Session::execute(sql)
//!   parse (autolake-sql) ─► for each statement:
//!     refresh catalog names and governance state
//!     ─► resolve objects + accesses ─► State::check (privileges)
//!     ─► run: lake statements through `exec` (one Delta commit each,
//!             stamped with user, statement kind and interface)
//!             everything else through DataFusion (streamed; the plan's
//!             analyzer applies SELECT checks, row policies and masks)
//!     ─► record owners of created objects, forget dropped ones
//!     ─► one audit entry, when the result stream ends
//! ```
//!
//! A [`Session`] carries the [`Principal`] and [`Interface`] for its whole
//! life; the CLI, Flight SQL, jobs and the demo all create sessions from one
//! [`Engine`] and call [`Session::execute_statement`], so authorization,
//! commit bookkeeping and audit live here once.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use autolake_sql::ParsedStatement;
use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::delta_datafusion::planner::DeltaPlanner;
use futures::TryStreamExt;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::governance::audit::{AuditLog, AuditedStream, Entry, Outcome};
use crate::governance::{Governance, Securable};
use crate::lake::cache::FileCache;
use crate::lake::catalog::LakeCatalog;
use crate::lake::system::SystemSchema;
use crate::lake::{DEFAULT_SCHEMA, LAKE_CATALOG, Lake};
use crate::models::ModelRegistry;
use crate::principal::{Access, Action, Interface, Object, Principal};
use crate::sources::Sources;

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
    /// Opens the engine without data boundaries and audit log: the
    /// baseline of the governance benchmark, settable from Rust only
    /// (never from a configuration file or the command line).
    #[serde(skip)]
    pub ungoverned: bool,
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
    governance: Arc<Governance>,
    audit: Arc<AuditLog>,
    system: Arc<SystemSchema>,
    files: Arc<FileCache>,
    models: Arc<ModelRegistry>,
    sources: Arc<Sources>,
    jobs: Arc<crate::jobs::Jobs>,
}

impl Engine {
    /// Opens the lake of `config`, failing with a clear error when it
    /// cannot be reached.
    pub async fn open(config: EngineConfig) -> Result<Arc<Self>> {
        let device = crate::models::engine_device(&config.device)?;
        let lake = Lake::open(&config.lake, &config.storage_options).await?;
        let files: Arc<FileCache> = Arc::default();
        let models = Arc::new(ModelRegistry::new(Arc::clone(&lake), device));
        let sources = Arc::new(Sources::new(Arc::clone(&lake)));
        let governance = Arc::new(Governance::new(Arc::clone(&lake)));
        let audit = AuditLog::new(Arc::clone(&lake), !config.ungoverned);
        audit.start_flusher();
        let mut system = SystemSchema::new(Arc::clone(&lake), Arc::clone(&files));
        let owners = Arc::clone(&governance);
        system.set_table_owners(Arc::new(move |table| {
            owners
                .cached()
                .owners
                .get(&Securable::table(table))
                .cloned()
        }));
        system.add(
            "users",
            Arc::new(crate::governance::tables::UsersTable {
                users: crate::serve::users::UserStore::new(Arc::clone(&lake)),
            }),
        );
        system.add(
            "grants",
            Arc::new(crate::governance::tables::GrantsTable {
                governance: Arc::clone(&governance),
            }),
        );
        system.add_delta(
            &crate::governance::audit::audit_table().table,
            crate::governance::audit::audit_schema(),
        );
        system.add(
            "models",
            Arc::new(crate::models::ModelsTable {
                registry: Arc::clone(&models),
            }),
        );
        system.add(
            "sources",
            Arc::new(crate::sources::SourcesTable {
                sources: Arc::clone(&sources),
            }),
        );
        system.add_delta(
            &crate::exec::sources::lineage_table().table,
            crate::exec::sources::lineage_schema(),
        );
        let jobs = Arc::new(crate::jobs::Jobs::new(Arc::clone(&lake)));
        system.add(
            "jobs",
            Arc::new(crate::jobs::JobsTable {
                jobs: Arc::clone(&jobs),
            }),
        );
        system.add_delta(&crate::jobs::runs_table().table, crate::jobs::runs_schema());
        Ok(Arc::new(Self {
            lake,
            config,
            governance,
            audit,
            system: Arc::new(system),
            files,
            models,
            sources,
            jobs,
        }))
    }

    /// Decoded scans of lake tables kept in memory (off unless a budget
    /// is set, as `autolake serve` does).
    pub fn scan_cache(&self) -> &crate::lake::cache::DataCache {
        self.files.data()
    }

    /// The lake's jobs.
    pub fn jobs(&self) -> &Arc<crate::jobs::Jobs> {
        &self.jobs
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

    /// The model registry.
    pub fn models(&self) -> &Arc<ModelRegistry> {
        &self.models
    }

    /// The lake's sources.
    pub fn sources(&self) -> &Arc<Sources> {
        &self.sources
    }

    /// Users' roles, grants, owners, policies and masks.
    pub fn governance(&self) -> &Arc<Governance> {
        &self.governance
    }

    /// The audit log.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    /// Commits what is still buffered (the audit log): call before the
    /// process exits.
    pub async fn close(&self) -> Result<()> {
        self.audit.close().await
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
    /// The job run this session executes, if any.
    pub(crate) job: Option<Arc<crate::jobs::JobRun>>,
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

/// Rows per batch in plans run for Flight SQL clients: 61 440 rows of
/// eight 8-byte columns are 3.75 MiB, one `DoGet` message under the 4 MiB
/// gRPC clients accept (see `serve::doget`).
const FLIGHT_BATCH_ROWS: usize = 61_440;

impl Session {
    fn new(engine: Arc<Engine>, principal: Principal, interface: Interface) -> Self {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(LAKE_CATALOG, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            // TIMESTAMPTZ means a UTC-adjusted instant (a Delta `timestamp`),
            // as in Databricks; unset, DataFusion would drop the zone.
            .set_str("datafusion.execution.time_zone", "UTC")
            // As delta-rs does: hash-join IN-list pushdown can panic when join
            // keys are dictionary arrays, which Delta partition columns are.
            .set_usize("datafusion.optimizer.hash_join_inlist_pushdown_max_size", 0)
            .set_usize(
                "datafusion.optimizer.hash_join_inlist_pushdown_max_distinct_values",
                0,
            );
        // Results sent to Flight SQL clients travel as one message per
        // batch: larger batches mean fewer messages, HTTP/2 frames and task
        // wake-ups per byte on both ends (see `serve::doget`).
        let config = if interface == Interface::FlightSql {
            config.with_batch_size(FLIGHT_BATCH_ROWS)
        } else {
            config
        };
        // Privileges, row policies and masks are applied first, before
        // type coercion and every optimizer rule.
        let mut analyzer_rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> = Vec::new();
        if !engine.config.ungoverned {
            analyzer_rules.push(Arc::new(crate::governance::boundaries::Boundaries::new(
                Arc::clone(&engine.governance),
                principal.clone(),
            )));
        }
        analyzer_rules.extend(Analyzer::new().rules);
        let mut physical_rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> =
            vec![Arc::new(crate::governance::boundaries::PolicyEstimates)];
        physical_rules.extend(PhysicalOptimizer::new().rules);
        // delta-rs's planner executes the plan nodes its writes add.
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_analyzer_rules(analyzer_rules)
            .with_physical_optimizer_rules(physical_rules)
            .with_query_planner(DeltaPlanner::new())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let catalog = Arc::new(LakeCatalog::new(
            Arc::clone(&engine.lake),
            Arc::clone(&engine.system),
            Arc::clone(&engine.files),
            ctx.copied_config(),
        ));
        let store_url: &url::Url = engine.lake.store_url().as_ref();
        ctx.register_object_store(store_url, Arc::clone(engine.lake.store()));
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
        autolake_udfs::register_all(&ctx, Arc::clone(&engine.models) as _);
        for udf in crate::governance::boundaries::identity_functions(&engine.governance, &principal)
        {
            ctx.register_udf(udf);
        }
        Self {
            engine,
            principal,
            interface,
            ctx,
            catalog,
            time_travel,
            job: None,
        }
    }

    /// The same session executing a job's run: `table_changes('t')` reads
    /// the run's inputs and every commit carries the run's transaction.
    pub(crate) fn with_job(mut self, run: Arc<crate::jobs::JobRun>) -> Self {
        self.job = Some(run);
        self
    }

    /// The stamp of a commit made by this session for a statement of
    /// `kind`.
    pub(crate) fn stamp(&self, kind: &str) -> crate::lake::write::CommitStamp {
        let stamp = crate::lake::write::CommitStamp::new(&self.principal, kind, self.interface);
        match &self.job {
            Some(run) => run.stamp(stamp),
            None => stamp,
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

    /// Parses `sql` into statements without running anything. Text that
    /// does not parse is recorded in the audit log as a failed statement.
    pub fn parse(&self, sql: &str) -> Result<Vec<ParsedStatement>> {
        autolake_sql::parse(sql).map_err(|e| {
            let mut entry = self.audit_entry();
            entry.kind = "PARSE".to_string();
            entry.statement = autolake_sql::redact(sql.trim());
            entry.outcome = Outcome::Failure;
            entry.error = Some(e.to_string());
            self.engine.audit.record(entry);
            Error::from(e)
        })
    }

    fn audit_entry(&self) -> Entry {
        let roles = self.engine.governance.cached().roles_of(&self.principal);
        Entry::new(&self.principal, roles, self.interface)
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
    /// Its audit entry is recorded when its result has been read (or
    /// dropped), or at once when it fails.
    pub async fn execute_statement(&self, parsed: &ParsedStatement) -> Result<StatementResult> {
        let started = std::time::Instant::now();
        let mut objects = Vec::new();
        let result = self.checked_run(parsed, &mut objects).await;
        let mut entry = self.audit_entry();
        entry.kind = parsed.statement.kind().to_string();
        entry.statement = parsed.display_text();
        entry.objects = objects;
        entry.outcome = Outcome::of(&result);
        match result {
            Ok(result) => Ok(StatementResult {
                kind: result.kind,
                returns_rows: result.returns_rows,
                stream: Box::pin(AuditedStream::new(
                    result.stream,
                    Arc::clone(&self.engine.audit),
                    entry,
                    started,
                    !result.returns_rows,
                )),
            }),
            Err(e) => {
                entry.error = Some(e.to_string());
                entry.duration_ms = started.elapsed().as_millis() as i64;
                self.engine.audit.record(entry);
                Err(e)
            }
        }
    }

    async fn checked_run(
        &self,
        parsed: &ParsedStatement,
        objects: &mut Vec<String>,
    ) -> Result<StatementResult> {
        self.catalog.refresh(&self.ctx.copied_config()).await?;
        self.engine.models.refresh().await?;
        let state = self.engine.governance.state().await?;
        let mut accesses = crate::exec::accesses(self, &parsed.statement)?;
        crate::exec::sources::attach(self, &parsed.statement, &accesses).await?;
        self.source_reads(&mut accesses).await?;
        *objects = describe(&accesses);
        state.check(&self.principal, &accesses)?;
        if accesses
            .iter()
            .any(|a| a.object == Object::System("audit_log".to_string()))
        {
            // A reader sees every statement made before its own.
            self.engine.audit.flush().await?;
        }
        let result = crate::exec::run(self, &parsed.statement, &parsed.text).await?;
        self.after(&parsed.statement, &accesses).await?;
        Ok(result)
    }

    /// Records in the audit log work done outside a statement (a bulk
    /// ingest): `rows` written, or the error.
    pub(crate) fn record(
        &self,
        kind: &str,
        text: String,
        objects: Vec<String>,
        result: &Result<u64>,
        started: std::time::Instant,
    ) {
        let mut entry = self.audit_entry();
        entry.kind = kind.to_string();
        entry.statement = text;
        entry.objects = objects;
        entry.outcome = Outcome::of(result);
        entry.error = result.as_ref().err().map(|e| e.to_string());
        entry.rows = result.as_ref().ok().map(|r| *r as i64);
        entry.duration_ms = started.elapsed().as_millis() as i64;
        self.engine.audit.record(entry);
    }

    /// Whether this session's principal may read `catalog.schema.table`
    /// (metadata listings show only such tables).
    pub fn may_read(&self, catalog: &str, schema: &str, table: &str) -> bool {
        let object = crate::exec::read_object(&datafusion::common::TableReference::full(
            catalog, schema, table,
        ));
        let object = match object {
            Object::Other(_)
                if catalog != crate::lake::LAKE_CATALOG && catalog != INTERNAL_CATALOG =>
            {
                Object::Source(catalog.to_string())
            }
            other => other,
        };
        let access = Access {
            action: Action::Select,
            object,
        };
        self.engine
            .governance
            .cached()
            .check(&self.principal, std::slice::from_ref(&access))
            .is_ok()
    }

    /// Checks accesses made outside a statement (a bulk ingest).
    pub(crate) async fn authorize(&self, accesses: &[Access]) -> Result<()> {
        let state = self.engine.governance.state().await?;
        state.check(&self.principal, accesses)
    }

    /// Reading a source's table (`src.schema.table`) is using the source.
    async fn source_reads(&self, accesses: &mut Vec<Access>) -> Result<()> {
        let mut more = Vec::new();
        for access in accesses.iter() {
            if let Object::Other(text) = &access.object
                && let [catalog, _, _] = text.splitn(3, '.').collect::<Vec<_>>().as_slice()
                && self.engine.sources.get(catalog).await?.is_some()
            {
                more.push(Access {
                    action: Action::Select,
                    object: Object::Source(catalog.to_string()),
                });
            }
        }
        accesses.extend(more);
        Ok(())
    }

    /// Ownership follows a statement that created or dropped objects.
    async fn after(&self, statement: &autolake_sql::Statement, accesses: &[Access]) -> Result<()> {
        let governance = &self.engine.governance;
        for access in accesses {
            let Some(object) = Securable::of(&access.object) else {
                continue;
            };
            // A job's statement creates its objects when it runs, not now.
            if matches!(statement, autolake_sql::Statement::CreateJob(_))
                && !matches!(object, Securable::Job(_))
            {
                continue;
            }
            match access.action {
                Action::Create => governance.own(&object, &self.principal.name).await?,
                Action::Drop => {
                    let one_version = matches!(
                        statement,
                        autolake_sql::Statement::DropModel {
                            version: Some(_),
                            ..
                        }
                    );
                    if !one_version {
                        governance.forget(&object).await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The result schema of a query, planned without running it (for
    /// prepared statements); `None` for other statements or when it cannot
    /// be planned before its parameters are bound.
    pub async fn plan_query(&self, parsed: &ParsedStatement) -> Option<SchemaRef> {
        use autolake_sql::sqlparser::ast::Statement as S;
        let autolake_sql::Statement::Sql(df) = &parsed.statement else {
            return None;
        };
        let datafusion::sql::parser::Statement::Statement(s) = df.as_ref() else {
            return None;
        };
        if !matches!(s.as_ref(), S::Query(_)) {
            return None;
        }
        self.catalog.refresh(&self.ctx.copied_config()).await.ok()?;
        let state = self.engine.governance.state().await.ok()?;
        let accesses = crate::exec::accesses(self, &parsed.statement).ok()?;
        state.check(&self.principal, &accesses).ok()?;
        crate::exec::sources::attach(self, &parsed.statement, &accesses)
            .await
            .ok()?;
        let plan = crate::exec::plan(self, df.as_ref().clone()).await.ok()?;
        Some(Arc::new(plan.schema().as_arrow().clone()))
    }

    /// Re-reads the lake's schema and table names and attaches the sources
    /// that can be reached (statements do this themselves; metadata
    /// listings call it first).
    pub async fn refresh_catalog(&self) -> Result<()> {
        self.catalog.refresh(&self.ctx.copied_config()).await?;
        crate::exec::sources::attach_all(self).await;
        Ok(())
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

/// The objects of a statement, as the audit log lists them.
fn describe(accesses: &[Access]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in accesses {
        let text = match &a.object {
            Object::Other(name) => format!("object {name}"),
            Object::System(name) => format!("table system.{name}"),
            Object::Account => "users and roles".to_string(),
            other => match Securable::of(other) {
                Some(s) => s.to_string(),
                None => continue,
            },
        };
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn rows(session: &Session, sql: &str) -> Vec<String> {
        let batches = session.execute(sql).await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        text.lines()
            .filter(|l| l.starts_with('|'))
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[tokio::test]
    async fn memory_lakes_are_shared_by_name_within_a_process() {
        let first = Engine::open(EngineConfig::for_lake("memory://shared-test"))
            .await
            .unwrap();
        let a = first.session(Principal::local_admin(), Interface::Embedded);
        a.execute("CREATE SCHEMA m; CREATE TABLE m.t (x INT); INSERT INTO m.t VALUES (1), (2)")
            .await
            .unwrap();
        a.execute("DELETE FROM m.t WHERE x = 1").await.unwrap();

        let second = Engine::open(EngineConfig::for_lake("memory://shared-test"))
            .await
            .unwrap();
        let b = second.session(Principal::local_admin(), Interface::Embedded);
        assert_eq!(rows(&b, "SELECT x FROM m.t").await, vec!["| 2 |"]);
        assert_eq!(
            rows(&b, "SELECT count(*) AS n FROM m.t VERSION AS OF 1").await,
            vec!["| 2 |"]
        );
        assert_eq!(
            rows(&b, "SELECT name, location FROM system.tables").await,
            vec!["| t | memory://shared-test/tables/m/t/ |"]
        );

        let other = Engine::open(EngineConfig::for_lake("memory://other-test"))
            .await
            .unwrap();
        let c = other.session(Principal::local_admin(), Interface::Embedded);
        assert!(rows(&c, "SELECT name FROM system.tables").await.is_empty());
    }

    #[tokio::test]
    async fn decoded_scans_are_kept_whole_and_never_outlive_their_files() {
        let engine = Engine::open(EngineConfig::for_lake("memory://scan-cache-test"))
            .await
            .unwrap();
        engine.scan_cache().set_budget(64 << 20);
        let admin = engine.session(Principal::local_admin(), Interface::FlightSql);
        admin
            .execute(
                "CREATE TABLE t (x INT, y TEXT, p TEXT) PARTITIONED BY (p); \
                 INSERT INTO t SELECT CAST(value AS INT), 'v' || value, \
                 CASE WHEN value % 2 = 0 THEN 'even' ELSE 'odd' END FROM generate_series(1, 50000)",
            )
            .await
            .unwrap();
        let cache = engine.scan_cache();
        let sum = "SELECT count(*) AS n, sum(x) AS s FROM t";

        // Filtered and limited scans are not the table: nothing is kept.
        assert_eq!(
            rows(&admin, "SELECT count(*) AS n FROM t WHERE x > 49991").await,
            vec!["| 9 |"]
        );
        assert_eq!(rows(&admin, "SELECT x FROM t LIMIT 1").await.len(), 1);
        assert_eq!(cache.usage().entries, 0);

        // A whole scan is kept and serves the next one, and narrower ones.
        let full = rows(&admin, "SELECT * FROM t ORDER BY x").await;
        assert_eq!(full.len(), 50_000);
        assert_eq!(cache.usage().entries, 1);
        let hits = cache.usage().hits;
        assert_eq!(rows(&admin, "SELECT * FROM t ORDER BY x").await, full);
        assert_eq!(rows(&admin, sum).await, vec!["| 50000 | 1250025000 |"]);
        assert_eq!(
            rows(
                &admin,
                "SELECT count(*) AS n FROM t WHERE p = 'odd' AND x <= 10"
            )
            .await,
            vec!["| 5 |"]
        );
        assert_eq!(cache.usage().hits, hits + 3);

        // A write is a new set of files: the next read sees it, and the
        // earlier version still reads as it was.
        admin
            .execute("INSERT INTO t VALUES (0, 'zero', 'even'); DELETE FROM t WHERE x = 1")
            .await
            .unwrap();
        assert_eq!(rows(&admin, sum).await, vec!["| 50000 | 1250024999 |"]);
        assert_eq!(
            rows(
                &admin,
                "SELECT count(*) AS n, sum(x) AS s FROM t VERSION AS OF 1"
            )
            .await,
            vec!["| 50000 | 1250025000 |"]
        );

        // Row filters and masks still apply to what comes from memory.
        admin
            .execute(
                "CREATE USER ana PASSWORD 'pw-123456'; GRANT SELECT ON TABLE t TO USER ana; \
                 CREATE POLICY small ON t USING (x < 4); \
                 ALTER TABLE t ALTER COLUMN y SET MASK ('***')",
            )
            .await
            .unwrap();
        let ana = Principal {
            name: "ana".to_string(),
            roles: vec![],
            stored: true,
        };
        let ana = engine.session(ana, Interface::FlightSql);
        let hits = cache.usage().hits;
        assert_eq!(
            rows(&ana, "SELECT x, y FROM t ORDER BY x").await,
            vec!["| 0 | *** |", "| 2 | *** |", "| 3 | *** |"]
        );
        assert!(cache.usage().hits > hits, "{:?}", cache.usage());

        // Dropping the table lets go of its scans.
        admin.execute("DROP TABLE t").await.unwrap();
        assert_eq!(cache.usage().bytes, 0, "{:?}", cache.usage());
    }

    #[tokio::test]
    async fn a_missing_table_is_not_found_by_a_look_in_the_catalog() {
        use crate::error::ErrorKind;
        let engine = Engine::open(EngineConfig::for_lake("memory://not-found-test"))
            .await
            .unwrap();
        let s = engine.session(Principal::local_admin(), Interface::Embedded);
        s.execute("CREATE TABLE t (x INT)").await.unwrap();
        let e = s.execute("SELECT * FROM nope").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
        assert_eq!(e.to_string(), "table 'lake.public.nope' not found");
        let e = s
            .execute("SELECT * FROM t JOIN lake.other.u ON true")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
        // The tables exist: a wrong column is a mistake, not a missing object.
        let e = s.execute("SELECT y FROM t").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e:?}");
        let e = s
            .execute("SELECT * FROM t VERSION AS OF 9")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
        // CTEs, table functions and information_schema resolve.
        s.execute(
            "WITH c AS (SELECT 1 AS x) SELECT * FROM c, generate_series(1, 2), \
             information_schema.tables LIMIT 1",
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn every_write_is_one_commit_stamped_with_user_statement_and_interface() {
        let engine = Engine::open(EngineConfig::for_lake("memory://stamp-test"))
            .await
            .unwrap();
        let principal = Principal {
            name: "ana".to_string(),
            roles: vec!["engineer".to_string()],
            stored: false,
        };
        let s = engine.session(principal, Interface::FlightSql);
        s.execute(
            "CREATE TABLE t (x INT, y TEXT); INSERT INTO t VALUES (1, 'a'); \
             UPDATE t SET y = 'b'; MERGE INTO t USING (SELECT 2 AS x, 'c' AS y) s ON t.x = s.x \
             WHEN NOT MATCHED THEN INSERT (x, y) VALUES (s.x, s.y); DELETE FROM t WHERE x = 1; \
             INSERT OVERWRITE t SELECT * FROM t; ALTER TABLE t ADD COLUMN z DOUBLE",
        )
        .await
        .unwrap();
        let batches = s.execute("DESCRIBE HISTORY t").await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        let stamped: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(1)
            .map(|l| {
                let cols: Vec<&str> = l.split('|').map(str::trim).collect();
                format!("{} {} {} {}", cols[1], cols[4], cols[5], cols[6])
            })
            .collect();
        assert_eq!(
            stamped,
            vec![
                "6 ana ALTER TABLE flight_sql",
                "5 ana INSERT OVERWRITE flight_sql",
                "4 ana DELETE flight_sql",
                "3 ana MERGE flight_sql",
                "2 ana UPDATE flight_sql",
                "1 ana INSERT flight_sql",
                "0 ana CREATE TABLE flight_sql",
            ]
        );
    }
}
