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
//! [`Engine`]. The funnel has four typed entries, each authorised, stamped
//! and audited here and nowhere else:
//!
//! | entry | what comes in | audited as |
//! |---|---|---|
//! | [`Session::execute_statement`] (and `execute`, `sql`) | parsed statements | the statement's kind |
//! | [`Session::plan_query`] | a query to plan, not run (prepared statements) | a refusal only; the run is audited when it runs |
//! | [`Session::ingest`] | record batches for a lake table (Flight SQL bulk ingest, a job's late rows) | `INGEST` |
//! | [`Engine::login`] | a user name and password | `LOGIN`, refused attempts too |
//!
//! Text is parsed with [`Session::parse`] (or [`Session::parse_one`] where
//! one statement is expected), so text that does not parse is audited too.
//! Statement handlers below ([`crate::exec`]) get a
//! [`StatementContext`](crate::context::StatementContext), never the
//! session, so nothing below the funnel can go around it.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use autolake_sql::ParsedStatement;
use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::delta_datafusion::planner::DeltaPlanner;

use crate::context::StatementContext;
pub use crate::context::{Engine, EngineConfig, StatementResult};
use crate::error::{Error, Result};
pub use crate::exec::ingest::{IfExists, IfMissing, Ingest};
use crate::governance::Securable;
use crate::governance::accounts::UserStore;
use crate::governance::audit::{AuditedStream, Entry, Outcome};
use crate::lake::catalog::LakeCatalog;
use crate::lake::{DEFAULT_SCHEMA, INTERNAL_CATALOG, LAKE_CATALOG, TIME_TRAVEL_SCHEMA};
use crate::principal::{Access, Action, Interface, Object, Principal};

mod pipeline;

/// One principal's conversation with the engine: the funnel every
/// interface goes through.
pub struct Session {
    pub(crate) cx: StatementContext,
}

impl Engine {
    /// A new session for `principal` arriving through `interface`.
    pub fn session(self: &Arc<Self>, principal: Principal, interface: Interface) -> Session {
        Session::new(Arc::clone(self), principal, interface)
    }

    /// The login entry of the funnel: checks `name`'s password against the
    /// lake's accounts and audits the attempt, refused ones included; a
    /// session for the user when the password is right, `None` otherwise
    /// (one answer for an unknown user and a wrong password).
    pub async fn login(
        self: &Arc<Self>,
        users: &UserStore,
        name: &str,
        password: &str,
        interface: Interface,
    ) -> Result<Option<Session>> {
        let user = users.authenticate(name, password).await;
        let claimed = Principal {
            name: name.to_string(),
            roles: Vec::new(),
            stored: true,
        };
        let roles = match &user {
            Ok(Some(u)) => u.roles.clone(),
            _ => Vec::new(),
        };
        let mut entry = Entry::new(&claimed, roles, interface);
        entry.kind = "LOGIN".to_string();
        entry.statement = format!("LOGIN {name}");
        match &user {
            Ok(Some(_)) => {}
            Ok(None) => {
                entry.outcome = Outcome::Denied;
                entry.error = Some("invalid user name or password".to_string());
            }
            Err(e) => {
                entry.outcome = Outcome::Failure;
                entry.error = Some(e.to_string());
            }
        }
        self.audit.record(entry);
        Ok(user?.map(|u| self.session(u.principal(), interface)))
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("principal", &self.cx.principal)
            .field("interface", &self.cx.interface)
            .field("lake", &self.cx.engine.lake.uri())
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
        // `autolake.cluster`: where the session's queries run (see
        // `crate::distributed`).
        let config = config
            .with_option_extension(crate::settings::AutoLakeOptions {
                cluster: engine.config.cluster.clone().unwrap_or_default(),
            })
            .with_option_extension(autolake_udfs::ml::PredictContext::default());
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
        // What each statement's executed plans read, for `system.queries`:
        // the last rule sees the plan as it runs; the pool keeps the peak.
        let probe = crate::history::Probe::new();
        physical_rules.push(Arc::new(crate::history::RecordScans(Arc::clone(&probe))));
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_pool(probe.pool())
            .build_arc()
            .expect("a runtime with default disk and cache managers builds");
        // delta-rs's planner executes the plan nodes its writes add.
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_runtime_env(runtime)
            .with_config(config)
            .with_analyzer_rules(analyzer_rules)
            .with_physical_optimizer_rules(physical_rules)
            .with_query_planner(Arc::new(crate::distributed::ClusterPlanner::new(
                DeltaPlanner::new(),
                Arc::clone(&engine.models),
                Arc::clone(&engine.lake),
            )))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let catalog = Arc::new(LakeCatalog::new(
            Arc::clone(&engine.lake),
            Arc::clone(&engine.system) as _,
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
        ctx.register_udf(crate::lake::types::exact_microseconds_udf());
        for udf in crate::governance::boundaries::identity_functions(&engine.governance, &principal)
        {
            ctx.register_udf(udf);
        }
        Self {
            cx: StatementContext {
                engine,
                principal,
                interface,
                ctx,
                catalog,
                time_travel,
                job: None,
                probe,
            },
        }
    }

    /// The same session executing a job's run: `table_changes('t')` reads
    /// the run's inputs and every commit carries the run's transaction.
    pub(crate) fn with_job(mut self, run: Arc<crate::jobs::JobRun>) -> Self {
        self.cx.job = Some(run);
        self
    }

    /// Who this session runs as.
    pub fn principal(&self) -> &Principal {
        &self.cx.principal
    }

    /// The engine behind the session.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.cx.engine
    }

    /// How far this session's running statement has got: counted while
    /// someone holds a [`crate::progress::Progress::watch`] (the CLI's
    /// progress bar on a terminal).
    pub fn progress(&self) -> &Arc<crate::progress::Progress> {
        &self.cx.probe.progress
    }

    /// The DataFusion context (for embedding programs that register their
    /// own tables or functions).
    pub fn context(&self) -> &SessionContext {
        &self.cx.ctx
    }

    /// Parses `sql` into statements without running anything. Text that
    /// does not parse is recorded in the audit log as a failed statement.
    pub fn parse(&self, sql: &str) -> Result<Vec<ParsedStatement>> {
        autolake_sql::parse(sql).map_err(|e| {
            let e = Error::from(e);
            self.audit_unparsed(sql, &e);
            e
        })
    }

    /// Parses `sql`, which must hold exactly one statement (a client's
    /// request, a job's stored statement); audited as [`Session::parse`].
    pub fn parse_one(&self, sql: &str) -> Result<ParsedStatement> {
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            let e = Error::invalid(format!(
                "expected exactly one statement, found {}",
                statements.len()
            ));
            self.audit_unparsed(sql, &e);
            return Err(e);
        }
        Ok(statements.remove(0))
    }

    /// Audits text that was refused before any statement in it ran.
    fn audit_unparsed(&self, sql: &str, error: &Error) {
        let mut entry = self.audit_entry();
        entry.kind = "PARSE".to_string();
        entry.statement = autolake_sql::redact(sql.trim());
        entry.outcome = Outcome::Failure;
        entry.error = Some(error.to_string());
        entry.stats = Some(crate::history::ScanStats::default());
        self.cx.engine.audit.record(entry);
    }

    /// The audit entry of a statement touching `objects`.
    fn statement_entry(&self, parsed: &ParsedStatement, objects: Vec<String>) -> Entry {
        let mut entry = self.audit_entry();
        entry.kind = parsed.statement.kind().to_string();
        entry.statement = parsed.display_text();
        entry.objects = objects;
        entry
    }

    fn audit_entry(&self) -> Entry {
        let roles = self
            .cx
            .engine
            .governance
            .cached()
            .roles_of(&self.cx.principal);
        Entry::new(&self.cx.principal, roles, self.cx.interface)
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
    /// Its audit entry is recorded when its rows have been read (or
    /// dropped); a statement returning a status is read here and recorded
    /// before it returns, and one that fails at once.
    pub async fn execute_statement(&self, parsed: &ParsedStatement) -> Result<StatementResult> {
        let started = std::time::Instant::now();
        self.cx.probe.begin(started);
        // Only a display watching reads it (the CLI starts watching first).
        if self.cx.probe.progress.watched() {
            self.cx.probe.progress.begin(parsed.statement.kind());
        }
        let query_id = uuid::Uuid::new_v4().to_string();
        // `predict` logs its rows under the statement's id.
        if let Some(c) = self
            .cx
            .ctx
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .extensions
            .get_mut::<autolake_udfs::ml::PredictContext>()
        {
            c.query_id = query_id.clone();
        }
        let span = tracing::info_span!("statement", query_id = %query_id);
        let mut objects = Vec::new();
        let result = {
            use tracing::Instrument;
            self.checked_run(parsed, &mut objects)
                .instrument(span.clone())
                .await
        };
        let mut entry = self.statement_entry(parsed, objects);
        let query_id_for_logs = query_id.clone();
        entry.query_id = query_id;
        entry.outcome = Outcome::of(&result);
        match result {
            Ok(result) => {
                let audited: datafusion::execution::SendableRecordBatchStream =
                    Box::pin(AuditedStream::new(
                        result.stream,
                        Arc::clone(&self.cx.engine.audit),
                        entry,
                        started,
                        !result.returns_rows,
                        Arc::clone(&self.cx.probe),
                        span,
                    ));
                let stream = if result.returns_rows {
                    if self.cx.engine.models.logs().any() {
                        crate::exec::log_predictions_at_end(&self.cx, audited, query_id_for_logs)
                    } else {
                        audited
                    }
                } else {
                    // A status (a count of changed rows, an acknowledgement)
                    // ends a statement whose work is done: read it now, so
                    // the statement is recorded as ended even when a client
                    // never fetches it.
                    use futures::TryStreamExt;
                    let schema = audited.schema();
                    let batches: Vec<_> = audited.try_collect().await?;
                    if let Err(e) = crate::exec::log_predictions(&self.cx, &query_id_for_logs).await
                    {
                        tracing::warn!(
                            "prediction log of query {query_id_for_logs} not written: {e}"
                        );
                    }
                    Box::pin(
                        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                            schema,
                            futures::stream::iter(batches.into_iter().map(Ok)),
                        ),
                    )
                };
                Ok(StatementResult {
                    kind: result.kind,
                    returns_rows: result.returns_rows,
                    stream,
                })
            }
            Err(e) => {
                let _in = span.enter();
                tracing::debug!(kind = %entry.kind, "statement failed: {e}");
                entry.error = Some(e.to_string());
                entry.duration_ms = started.elapsed().as_millis() as i64;
                entry.stats = Some(self.cx.probe.finish(started));
                self.cx.engine.audit.record(entry);
                Err(e)
            }
        }
    }

    /// The funnel's policy steps before a statement runs or is planned:
    /// fresh catalog names, models and governance state, the statement's
    /// accesses (reading a source's table is using the source), and the
    /// privilege check. `objects` gets what the audit entry lists, also when
    /// the check fails.
    async fn admit(
        &self,
        parsed: &ParsedStatement,
        objects: &mut Vec<String>,
    ) -> Result<Vec<Access>> {
        self.cx
            .catalog
            .refresh(&self.cx.ctx.copied_config())
            .await?;
        self.cx.engine.models.refresh().await?;
        let state = self.cx.engine.governance.state().await?;
        let mut accesses = crate::exec::accesses(&self.cx, &parsed.statement)?;
        crate::exec::sources::attach(&self.cx, &parsed.statement, &accesses).await?;
        self.source_reads(&mut accesses).await?;
        *objects = describe(&accesses);
        state.check(&self.cx.principal, &accesses)?;
        Ok(accesses)
    }

    async fn checked_run(
        &self,
        parsed: &ParsedStatement,
        objects: &mut Vec<String>,
    ) -> Result<StatementResult> {
        let accesses = self.admit(parsed, objects).await?;
        if accesses
            .iter()
            .any(|a| matches!(&a.object, Object::System(t) if t == "audit_log" || t == "queries"))
        {
            // A reader sees every statement made before its own.
            self.cx.engine.audit.flush().await?;
        }
        // Pipelines run their statements back through this funnel.
        let result = match &parsed.statement {
            autolake_sql::Statement::CreatePipeline(create) => self.create_pipeline(create).await?,
            autolake_sql::Statement::DropPipeline {
                name,
                if_exists,
                purge,
            } => {
                let name = crate::names::single_name("pipeline", name)?;
                self.drop_pipeline(&name, *if_exists, *purge).await?
            }
            statement => crate::exec::run(&self.cx, statement, &parsed.text).await?,
        };
        self.after(Some(&parsed.statement), &accesses).await?;
        Ok(result)
    }

    /// The bulk-ingest entry of the funnel: the upload's accesses checked
    /// as a statement's are, the rows written in one stamped commit,
    /// ownership of a table it created recorded, one audit entry with the
    /// rows written or the error.
    pub async fn ingest(&self, request: Ingest) -> Result<u64> {
        let started = std::time::Instant::now();
        self.cx.probe.begin(started);
        let mut entry = self.audit_entry();
        entry.kind = "INGEST".to_string();
        entry.statement = format!("INGEST INTO {}", request.table);
        entry.objects = vec![format!(
            "table {}.{}",
            request.table.schema, request.table.table
        )];
        let result = self.admitted_ingest(request).await;
        entry.outcome = Outcome::of(&result);
        entry.error = result.as_ref().err().map(|e| e.to_string());
        entry.rows = result.as_ref().ok().map(|r| *r as i64);
        entry.duration_ms = started.elapsed().as_millis() as i64;
        entry.stats = Some(self.cx.probe.finish(started));
        self.cx.engine.audit.record(entry);
        result
    }

    async fn admitted_ingest(&self, request: Ingest) -> Result<u64> {
        let (target, accesses) = crate::exec::ingest::plan(&self.cx, &request).await?;
        let state = self.cx.engine.governance.state().await?;
        state.check(&self.cx.principal, &accesses)?;
        let rows = crate::exec::ingest::run(&self.cx, request, target).await?;
        self.after(None, &accesses).await?;
        Ok(rows)
    }

    /// Whether this session's principal may read `catalog.schema.table`
    /// (metadata listings show only such tables).
    pub fn may_read(&self, catalog: &str, schema: &str, table: &str) -> bool {
        let object = crate::names::read_object(&datafusion::common::TableReference::full(
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
        self.cx
            .engine
            .governance
            .cached()
            .check(&self.cx.principal, std::slice::from_ref(&access))
            .is_ok()
    }

    /// Whether the funnel's privilege check would admit `sql` for this
    /// session's principal now, without running or auditing it: what a
    /// user interface asks before offering an action (the statement is
    /// still checked, and audited, when it runs). Unparsable SQL is not
    /// admitted.
    pub async fn permits(&self, sql: &str) -> bool {
        let Ok(accesses) = self.accesses_of(sql) else {
            return false;
        };
        let Ok(state) = self.cx.engine.governance.state().await else {
            return false;
        };
        state.check(&self.cx.principal, &accesses).is_ok()
    }

    /// What one statement would read, write, create or alter (a job's
    /// statement: what each of its runs does), as the funnel checks it.
    pub(crate) fn accesses_of(&self, sql: &str) -> Result<Vec<Access>> {
        let parsed = self.parse_one(sql)?;
        crate::exec::accesses(&self.cx, &parsed.statement)
    }

    /// Reading a source's table (`src.schema.table`) is using the source.
    async fn source_reads(&self, accesses: &mut Vec<Access>) -> Result<()> {
        let mut more = Vec::new();
        for access in accesses.iter() {
            if let Object::Other(text) = &access.object
                && let [catalog, _, _] = text.splitn(3, '.').collect::<Vec<_>>().as_slice()
                && self.cx.engine.sources.get(catalog).await?.is_some()
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

    /// Ownership follows a statement (or an ingest) that created or
    /// dropped objects.
    async fn after(
        &self,
        statement: Option<&autolake_sql::Statement>,
        accesses: &[Access],
    ) -> Result<()> {
        let governance = &self.cx.engine.governance;
        for access in accesses {
            let Some(object) = Securable::of(&access.object) else {
                continue;
            };
            // A job's statement creates its objects when it runs, not now.
            if matches!(statement, Some(autolake_sql::Statement::CreateJob(_)))
                && !matches!(object, Securable::Job(_))
            {
                continue;
            }
            match access.action {
                Action::Create => governance.own(&object, &self.cx.principal.name).await?,
                Action::Drop => {
                    let one_version = matches!(
                        statement,
                        Some(autolake_sql::Statement::DropModel {
                            version: Some(_),
                            ..
                        })
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

    /// The plan-only entry of the funnel: the result schema of a query,
    /// admitted as if it ran and planned without running it (for prepared
    /// statements); `None` for other statements or when it cannot be
    /// planned before its parameters are bound. A refused plan is audited
    /// once; a planned one is audited when it runs.
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
        let mut objects = Vec::new();
        match self.admit(parsed, &mut objects).await {
            Ok(_) => {}
            Err(e) => {
                let error = e.to_string();
                if matches!(Outcome::of::<()>(&Err(e)), Outcome::Denied) {
                    let mut entry = self.statement_entry(parsed, objects);
                    entry.outcome = Outcome::Denied;
                    entry.error = Some(error);
                    entry.stats = Some(crate::history::ScanStats::default());
                    self.cx.engine.audit.record(entry);
                }
                return None;
            }
        }
        let plan = crate::exec::query::plan(&self.cx, df.as_ref().clone())
            .await
            .ok()?;
        Some(Arc::new(plan.schema().as_arrow().clone()))
    }

    /// Re-reads the lake's schema and table names and attaches the sources
    /// that can be reached (statements do this themselves; metadata
    /// listings call it first).
    pub async fn refresh_catalog(&self) -> Result<()> {
        self.cx
            .catalog
            .refresh(&self.cx.ctx.copied_config())
            .await?;
        crate::exec::sources::attach_all(&self.cx).await;
        Ok(())
    }

    /// Shorthand: parse and run exactly one statement.
    pub async fn sql(&self, sql: &str) -> Result<StatementResult> {
        let parsed = self.parse_one(sql)?;
        self.execute_statement(&parsed).await
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
