//! The deck's views and actions, each made of statements run through the
//! signed-in user's session (interface `web`), so each is governed and
//! audited as the same SQL would be. Names taken from a request are
//! checked to be plain identifiers before they are put in a statement, and
//! text is put in as an escaped literal, so no request can change what a
//! statement is.
//!
//! | route | statements |
//! |---|---|
//! | `GET overview` | the lists below, `system.job_runs` failures, `system.queries` failures, `VERIFY AUDIT LOG` (auditors) |
//! | `GET tables` | `system.tables` |
//! | `GET tables/{schema}/{table}` | `information_schema.columns`, `DESCRIBE HISTORY` |
//! | `GET tables/{schema}/{table}/preview?version=n` | `SELECT * … VERSION AS OF n LIMIT 100` |
//! | `GET sources` | `system.sources`, `system.lineage` |
//! | `GET jobs`, `GET jobs/{job}/runs` | `system.jobs` (and each job's lag), `system.job_runs` |
//! | `POST jobs/{job}/pause`, `…/resume`, `…/run` | `ALTER JOB j PAUSE`, `ALTER JOB j RESUME`, `RUN JOB j` |
//! | `GET models` | `system.models` |
//! | `POST models/{model}/stage` `{version, stage}` | `ALTER MODEL m SET STAGE 's' VERSION n` |
//! | `GET drift` | `system.monitors`, `system.drift_metrics` |
//! | `GET devices` | `system.devices`, `system.device_history` |
//! | `GET lineage` | `system.sources`, `system.tables`, `system.models`, `system.jobs`, `system.monitors`, `system.lineage` |
//! | `GET audit?user=&interface=&outcome=&kind=&text=&limit=` | `system.audit_log`, `VERIFY AUDIT LOG` |
//! | `POST sql` `{sql}` | the statements given (the last one's rows, at most 1000) |

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::json::Table;
use super::reply::{Reply, method_not_allowed};
use crate::governance::{Privilege, Securable, State};
use crate::principal::{Action, Object, Principal};
use crate::session::{Engine, Session};

/// Rows a list or the console returns at most.
const MAX_ROWS: usize = 1000;

/// Rows of a table preview.
const PREVIEW_ROWS: usize = 100;

/// Routes a request to its view or action.
pub(super) async fn route(
    engine: &Arc<Engine>,
    scheduler: bool,
    caller: &Caller,
    method: &Method,
    route: &[&str],
    query: &[(String, String)],
    body: &Value,
) -> Reply {
    let session = &caller.session;
    let result = match (method, route) {
        (&Method::GET, ["overview"]) => overview(engine, scheduler, session).await,
        (&Method::GET, ["tables"]) => tables(session).await,
        (&Method::GET, ["tables", schema, name]) => table(session, schema, name).await,
        (&Method::GET, ["tables", schema, table, "preview"]) => {
            preview(session, schema, table, param(query, "version")).await
        }
        (&Method::GET, ["sources"]) => sources(session).await,
        (&Method::GET, ["jobs"]) => jobs(engine, session).await,
        (&Method::GET, ["jobs", job, "runs"]) => runs(session, job).await,
        (&Method::POST, ["jobs", job, action]) => job_action(session, job, action).await,
        (&Method::GET, ["models"]) => models(session).await,
        (&Method::POST, ["models", model, "stage"]) => stage(session, model, body).await,
        (&Method::GET, ["drift"]) => drift(session).await,
        (&Method::GET, ["devices"]) => devices(session).await,
        (&Method::GET, ["lineage"]) => lineage(session).await,
        (&Method::GET, ["audit"]) => audit(session, query).await,
        (&Method::POST, ["sql"]) => console(session, body).await,
        (_, ["overview" | "tables" | "sources" | "jobs" | "models" | "drift" | "devices"])
        | (_, ["lineage" | "audit" | "sql"]) => return method_not_allowed(),
        _ => {
            return Reply::error(
                StatusCode::NOT_FOUND,
                format!("no such API route: /api/v1/{}", route.join("/")),
            );
        }
    };
    match result {
        Ok(body) => Reply::ok(body),
        Err(reply) => reply,
    }
}

type ApiResult = Result<Value, Reply>;

/// The views the deck shows `principal`: a kind of object's view when it
/// may see some object of that kind (every one, as admin or auditor).
pub(super) fn views(state: &State, principal: &Principal) -> Vec<&'static str> {
    let all = state.is_admin(principal) || state.is_member(principal, "auditor");
    let roles = state.roles_of(principal);
    let has = |role: &str| roles.iter().any(|r| r == role);
    let holds_some = |kind: &str| {
        state
            .owners
            .iter()
            .any(|(object, owner)| object.kind() == kind && *owner == principal.name)
            || state.grants.iter().any(|g| {
                g.object.kind() == kind
                    && match &g.holder {
                        crate::governance::Holder::User(u) => *u == principal.name,
                        crate::governance::Holder::Role(r) => roles.contains(r),
                    }
            })
    };
    let mut views = vec!["overview", "tables"];
    if all || has("engineer") || holds_some("source") {
        views.push("sources");
    }
    if all || has("engineer") || holds_some("job") {
        views.push("jobs");
    }
    if all || has("scientist") || holds_some("model") {
        views.push("models");
    }
    views.extend(["drift", "devices", "lineage"]);
    if all
        || state.allows(
            principal,
            Privilege::Select,
            &Securable::Schema("system".into()),
        )
    {
        views.push("audit");
    }
    views.push("console");
    views
}

/// Runs one statement as the caller and keeps at most `limit` rows.
async fn query(session: &Session, sql: &str, limit: usize) -> Result<Table, Reply> {
    let parsed = session.parse_one(sql).map_err(Reply::from)?;
    run(session, &parsed, limit).await
}

/// Runs one parsed statement as the caller and keeps at most `limit` rows.
async fn run(
    session: &Session,
    parsed: &autolake_sql::ParsedStatement,
    limit: usize,
) -> Result<Table, Reply> {
    let mut result = session
        .execute_statement(parsed)
        .await
        .map_err(Reply::from)?;
    let mut table = Table::new(&result.stream.schema(), limit);
    while let Some(batch) = result.stream.next().await {
        let batch = batch.map_err(|e| Reply::from(crate::error::Error::from(e)))?;
        if table.full() {
            if batch.num_rows() > 0 {
                table.set_truncated();
                break;
            }
            continue;
        }
        table.push(&batch).map_err(Reply::from)?;
    }
    Ok(table)
}

/// Governance as it stands now.
async fn state(session: &Session) -> Result<std::sync::Arc<State>, Reply> {
    session
        .engine()
        .governance()
        .state()
        .await
        .map_err(Reply::from)
}

/// Whether `principal` may see `object` in a list: as admin or auditor
/// (who reads all of `system.*`), or holding any privilege on it.
fn sees(state: &State, principal: &Principal, object: &Securable) -> bool {
    state.is_admin(principal)
        || state.is_member(principal, "auditor")
        || Privilege::ALL
            .iter()
            .any(|p| state.allows(principal, *p, object))
}

fn text<'a>(record: &'a Map<String, Value>, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or("")
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// A name from a request, as a plain identifier for a statement.
fn ident<'a>(name: &'a str, what: &str) -> Result<&'a str, Reply> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if plain {
        Ok(name)
    } else {
        Err(Reply::error(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid {what} name {name:?}: expected letters, digits and underscores, \
                 starting with a letter or underscore"
            ),
        ))
    }
}

/// Text as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The lake tables the caller may read, as `system.tables` lists them.
async fn visible_tables(session: &Session) -> Result<Table, Reply> {
    let mut tables = query(session, "SELECT * FROM system.tables", MAX_ROWS).await?;
    tables.retain(|r| session.may_read("lake", text(r, "schema"), text(r, "name")));
    Ok(tables)
}

/// Rows of a `system` list whose `column` names an object the caller sees.
async fn visible(
    session: &Session,
    sql: &str,
    column: &str,
    object: impl Fn(String) -> Securable,
) -> Result<Table, Reply> {
    let state = state(session).await?;
    let mut table = query(session, sql, MAX_ROWS).await?;
    table.retain(|r| {
        sees(
            &state,
            session.principal(),
            &object(text(r, column).to_string()),
        )
    });
    Ok(table)
}

async fn overview(engine: &Arc<Engine>, scheduler: bool, session: &Session) -> ApiResult {
    let tables = visible_tables(session).await?.records();
    let sources = visible(
        session,
        "SELECT name FROM system.sources",
        "name",
        Securable::Source,
    )
    .await?
    .records();
    let jobs = visible(
        session,
        "SELECT name, paused, last_status, next_run FROM system.jobs",
        "name",
        Securable::Job,
    )
    .await?
    .records();
    let models = visible(
        session,
        "SELECT name, version, stage FROM system.models",
        "name",
        Securable::Model,
    )
    .await?
    .records();
    let job_names: BTreeSet<&str> = jobs.iter().map(|j| text(j, "name")).collect();
    let mut failures = query(
        session,
        "SELECT job, run, \"end\", error FROM system.job_runs WHERE status = 'failed' \
         ORDER BY \"end\" DESC LIMIT 100",
        100,
    )
    .await?;
    failures.retain(|r| job_names.contains(text(r, "job")));
    let mut failures = failures.records();
    failures.truncate(5);
    // Failed and refused statements: the caller's own, or everyone's for
    // those who read all of `system.queries`.
    let statements = query(
        session,
        "SELECT started_at, \"user\", interface, kind, outcome, error FROM system.queries \
         WHERE outcome <> 'success' ORDER BY started_at DESC LIMIT 5",
        5,
    )
    .await?
    .records();
    let devices = query(
        session,
        "SELECT device, name, utilization, current_work FROM system.devices",
        MAX_ROWS,
    )
    .await?
    .records();
    let state = state(session).await?;
    let audit = if views(&state, session.principal()).contains(&"audit") {
        query(session, "VERIFY AUDIT LOG", 1)
            .await?
            .records()
            .pop()
            .map(Value::Object)
    } else {
        None
    };
    let bytes: i64 = tables
        .iter()
        .filter_map(|t| t.get("bytes").and_then(Value::as_i64))
        .sum();
    let model_names: BTreeSet<&str> = models.iter().map(|m| text(m, "name")).collect();
    let production = models
        .iter()
        .filter(|m| text(m, "stage") == "production")
        .count();
    Ok(json!({
        "counts": {
            "tables": tables.len(),
            "bytes": bytes,
            "sources": sources.len(),
            "jobs": jobs.len(),
            "jobs_paused": jobs.iter().filter(|j| j["paused"] == true).count(),
            "jobs_failing": jobs.iter().filter(|j| text(j, "last_status") == "failed").count(),
            "models": model_names.len(),
            "model_versions": models.len(),
            "models_in_production": production,
        },
        "health": {
            "lake": engine.lake().uri(),
            "scheduler": scheduler,
            "audit": audit,
        },
        "failures": failures,
        "statements": statements,
        "devices": devices,
    }))
}

/// The lake tables the caller may read, then the system tables it may
/// read (an auditor's whole list), which have no files or versions.
async fn tables(session: &Session) -> ApiResult {
    let mut tables = visible_tables(session).await?;
    let system = query(
        session,
        "SELECT table_name FROM information_schema.tables \
         WHERE table_catalog = 'lake' AND table_schema = 'system' ORDER BY table_name",
        MAX_ROWS,
    )
    .await?;
    let width = tables.width();
    for record in system.records() {
        let name = text(&record, "table_name");
        if session.may_read("lake", "system", name) {
            let mut row = vec![json!("system"), json!(name)];
            row.resize(width.max(2), Value::Null);
            tables.push_values(row);
        }
    }
    Ok(tables.into_json())
}

async fn table(session: &Session, schema: &str, table: &str) -> ApiResult {
    let (schema, table) = (ident(schema, "schema")?, ident(table, "table")?);
    let columns = query(
        session,
        &format!(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_catalog = 'lake' AND table_schema = {} AND table_name = {} \
             ORDER BY ordinal_position",
            literal(schema),
            literal(table)
        ),
        MAX_ROWS,
    )
    .await?;
    // System tables are AutoLake's views, not Delta tables with versions.
    let history = if schema == crate::lake::SYSTEM_SCHEMA {
        Value::Null
    } else {
        query(
            session,
            &format!("DESCRIBE HISTORY {schema}.{table}"),
            MAX_ROWS,
        )
        .await?
        .into_json()
    };
    Ok(json!({
        "schema": schema,
        "table": table,
        "columns": columns.into_json(),
        "history": history,
    }))
}

async fn preview(session: &Session, schema: &str, table: &str, version: Option<&str>) -> ApiResult {
    let (schema, table) = (ident(schema, "schema")?, ident(table, "table")?);
    let travel = match version {
        None => String::new(),
        Some(v) => {
            let v: u64 = v.parse().map_err(|_| {
                Reply::error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid version {v:?}: expected a table version number"),
                )
            })?;
            format!(" VERSION AS OF {v}")
        }
    };
    let rows = query(
        session,
        &format!("SELECT * FROM {schema}.{table}{travel} LIMIT {PREVIEW_ROWS}"),
        PREVIEW_ROWS,
    )
    .await?;
    Ok(rows.into_json())
}

async fn sources(session: &Session) -> ApiResult {
    let sources = visible(
        session,
        "SELECT * FROM system.sources",
        "name",
        Securable::Source,
    )
    .await?;
    let syncs = visible(
        session,
        "SELECT * FROM system.lineage ORDER BY synced_at DESC LIMIT 200",
        "source",
        source_of,
    )
    .await?;
    Ok(json!({"sources": sources.into_json(), "syncs": syncs.into_json()}))
}

async fn jobs(engine: &Arc<Engine>, session: &Session) -> ApiResult {
    let jobs = visible(session, "SELECT * FROM system.jobs", "name", Securable::Job).await?;
    let lags: BTreeMap<String, f64> = crate::scheduler::job_lags(engine)
        .await
        .map_err(Reply::from)?
        .into_iter()
        .collect();
    let mut extra = Map::new();
    for record in jobs.records() {
        let name = text(&record, "name");
        if ident(name, "job").is_err() {
            continue;
        }
        extra.insert(
            name.to_string(),
            json!({
                "lag_seconds": lags.get(name),
                "can_pause": session.permits(&format!("ALTER JOB {name} PAUSE")).await,
                "can_resume": session.permits(&format!("ALTER JOB {name} RESUME")).await,
                "can_run": session.permits(&format!("RUN JOB {name}")).await,
            }),
        );
    }
    Ok(json!({"jobs": jobs.into_json(), "actions": extra}))
}

async fn runs(session: &Session, job: &str) -> ApiResult {
    let job = ident(job, "job")?;
    let state = state(session).await?;
    if !sees(
        &state,
        session.principal(),
        &Securable::Job(job.to_string()),
    ) {
        return Err(Reply::error(
            StatusCode::NOT_FOUND,
            format!("job {job} does not exist or is not yours to see"),
        ));
    }
    let runs = query(
        session,
        &format!(
            "SELECT * FROM system.job_runs WHERE job = {} ORDER BY run DESC LIMIT 200",
            literal(job)
        ),
        200,
    )
    .await?;
    Ok(runs.into_json())
}

async fn job_action(session: &Session, job: &str, action: &str) -> ApiResult {
    let job = ident(job, "job")?;
    let sql = match action {
        "pause" => format!("ALTER JOB {job} PAUSE"),
        "resume" => format!("ALTER JOB {job} RESUME"),
        "run" => format!("RUN JOB {job}"),
        other => {
            return Err(Reply::error(
                StatusCode::NOT_FOUND,
                format!("no job action {other:?}: expected pause, resume or run"),
            ));
        }
    };
    let result = query(session, &sql, MAX_ROWS).await?;
    Ok(json!({"statement": sql, "result": result.into_json()}))
}

async fn models(session: &Session) -> ApiResult {
    let models = visible(
        session,
        "SELECT * FROM system.models ORDER BY name, version DESC",
        "name",
        Securable::Model,
    )
    .await?;
    let names: BTreeSet<String> = models
        .records()
        .iter()
        .map(|m| text(m, "name").to_string())
        .collect();
    let mut actions = Map::new();
    for name in names {
        if ident(&name, "model").is_err() {
            continue;
        }
        let can = session
            .permits(&format!(
                "ALTER MODEL {name} SET STAGE 'production' VERSION 1"
            ))
            .await;
        actions.insert(name, json!({"can_stage": can}));
    }
    Ok(json!({"models": models.into_json(), "actions": actions}))
}

async fn stage(session: &Session, model: &str, body: &Value) -> ApiResult {
    let model = ident(model, "model")?;
    let stage = body["stage"].as_str().ok_or_else(|| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            "expected a JSON body {\"version\": n, \"stage\": \"production\"}",
        )
    })?;
    let version = match &body["version"] {
        Value::Null => String::new(),
        Value::Number(n) if n.as_u64().is_some() => format!(" VERSION {n}"),
        other => {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                format!("invalid model version {other}: expected a version number"),
            ));
        }
    };
    let sql = format!("ALTER MODEL {model} SET STAGE {}{version}", literal(stage));
    let result = query(session, &sql, MAX_ROWS).await?;
    Ok(json!({"statement": sql, "result": result.into_json()}))
}

async fn drift(session: &Session) -> ApiResult {
    let state = state(session).await?;
    let principal = session.principal();
    let mut monitors = query(session, "SELECT * FROM system.monitors", MAX_ROWS).await?;
    monitors.retain(|r| {
        sees(
            &state,
            principal,
            &Securable::Monitor(text(r, "name").into()),
        )
    });
    let mut metrics = query(
        session,
        "SELECT monitor, run_at, \"table\", table_version, \"column\", test, statistic, \
         p_value, threshold, drift_detected FROM system.drift_metrics ORDER BY run_at DESC \
         LIMIT 5000",
        5000,
    )
    .await?;
    // A check's figures describe its table's rows: shown to who may read it.
    metrics.retain(|r| {
        let table = text(r, "table");
        let mut parts = table.rsplitn(3, '.');
        let (name, schema) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        state.is_member(principal, "auditor") || session.may_read("lake", schema, name)
    });
    Ok(json!({"monitors": monitors.into_json(), "metrics": metrics.into_json()}))
}

async fn devices(session: &Session) -> ApiResult {
    let now = query(session, "SELECT * FROM system.devices", MAX_ROWS).await?;
    let history = query(
        session,
        "SELECT device, at, utilization, memory_used_bytes, busy_seconds, idle_seconds \
         FROM system.device_history ORDER BY at",
        20_000,
    )
    .await?;
    Ok(json!({"devices": now.into_json(), "history": history.into_json()}))
}

/// The lineage graph: sources → tables (syncs), tables → models (training
/// reads), sources, tables and models → jobs → tables (what each job's
/// statement reads and writes), tables → monitors. Only objects the caller
/// sees are nodes; an edge needs both its ends.
async fn lineage(session: &Session) -> ApiResult {
    let mut graph = Graph::default();
    for s in visible(
        session,
        "SELECT name, type FROM system.sources",
        "name",
        Securable::Source,
    )
    .await?
    .records()
    {
        graph.node("source", text(&s, "name"), text(&s, "type"));
    }
    for t in visible_tables(session).await?.records() {
        let name = format!("{}.{}", text(&t, "schema"), text(&t, "name"));
        if !name.starts_with("system.") {
            graph.node("table", &name, &format!("v{}", t["version"]));
        }
    }
    for m in visible(
        session,
        "SELECT name, version, stage, lineage FROM system.models",
        "name",
        Securable::Model,
    )
    .await?
    .records()
    {
        let name = text(&m, "name");
        graph.node("model", name, text(&m, "stage"));
        for read in text(&m, "lineage").split(',') {
            let table = read.trim().split('@').next().unwrap_or("");
            if !table.is_empty() {
                graph.edge(("table", table), ("model", name));
            }
        }
    }
    for j in visible(
        session,
        "SELECT name, statement, kind FROM system.jobs",
        "name",
        Securable::Job,
    )
    .await?
    .records()
    {
        let name = text(&j, "name");
        graph.node("job", name, text(&j, "kind"));
        let Ok(accesses) = session.accesses_of(text(&j, "statement")) else {
            continue;
        };
        for access in accesses {
            let (kind, object) = match &access.object {
                Object::Table(t) => ("table", format!("{}.{}", t.schema, t.table)),
                Object::Source(s) => ("source", s.clone()),
                Object::Model(m) => ("model", m.clone()),
                _ => continue,
            };
            match (kind, access.action) {
                ("table", Action::Insert | Action::Update | Action::Delete | Action::Create) => {
                    graph.edge(("job", name), ("table", &object));
                }
                (_, Action::Select) | ("model", _) | ("source", _) => {
                    graph.edge((kind, &object), ("job", name));
                }
                _ => {}
            }
        }
    }
    for m in visible(
        session,
        "SELECT name, \"table\" FROM system.monitors",
        "name",
        Securable::Monitor,
    )
    .await?
    .records()
    {
        let name = text(&m, "name");
        graph.node("monitor", name, "");
        let table = text(&m, "table").trim_start_matches("lake.");
        graph.edge(("table", table), ("monitor", name));
    }
    for sync in visible(
        session,
        "SELECT DISTINCT source, target FROM system.lineage",
        "source",
        source_of,
    )
    .await?
    .records()
    {
        let target = text(&sync, "target").trim_start_matches("lake.");
        let source = text(&sync, "source").split('.').next().unwrap_or("");
        graph.edge(("source", source), ("table", target));
    }
    Ok(graph.into_json())
}

/// The source a synced table (`src.schema.table`) belongs to.
fn source_of(table: String) -> Securable {
    Securable::Source(table.split('.').next().unwrap_or("").to_string())
}

/// Nodes and edges, edges kept only between nodes present.
#[derive(Default)]
struct Graph {
    nodes: BTreeMap<String, Value>,
    edges: BTreeSet<(String, String)>,
}

impl Graph {
    fn id(kind: &str, name: &str) -> String {
        format!("{kind}:{name}")
    }

    fn node(&mut self, kind: &str, name: &str, detail: &str) {
        self.nodes.insert(
            Self::id(kind, name),
            json!({"id": Self::id(kind, name), "kind": kind, "name": name, "detail": detail}),
        );
    }

    fn edge(&mut self, from: (&str, &str), to: (&str, &str)) {
        self.edges
            .insert((Self::id(from.0, from.1), Self::id(to.0, to.1)));
    }

    fn into_json(self) -> Value {
        let edges: Vec<Value> = self
            .edges
            .iter()
            .filter(|(a, b)| a != b && self.nodes.contains_key(a) && self.nodes.contains_key(b))
            .map(|(a, b)| json!({"from": a, "to": b}))
            .collect();
        json!({"nodes": self.nodes.into_values().collect::<Vec<_>>(), "edges": edges})
    }
}

async fn audit(session: &Session, filters: &[(String, String)]) -> ApiResult {
    let mut conditions = Vec::new();
    for column in ["user", "interface", "outcome", "kind"] {
        if let Some(value) = param(filters, column) {
            conditions.push(format!("\"{column}\" = {}", literal(value)));
        }
    }
    if let Some(text) = param(filters, "text") {
        let pattern = literal(&format!("%{}%", text.to_lowercase()));
        conditions.push(format!(
            "(lower(statement) LIKE {pattern} OR lower(objects) LIKE {pattern} \
             OR lower(coalesce(error, '')) LIKE {pattern})"
        ));
    }
    let limit: usize = param(filters, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(200)
        .clamp(1, MAX_ROWS);
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let entries = query(
        session,
        &format!(
            "SELECT seq, time, \"user\", roles, interface, kind, statement, objects, outcome, \
             error, \"rows\", duration_ms, query_id FROM system.audit_log{filter} \
             ORDER BY seq DESC LIMIT {limit}"
        ),
        limit,
    )
    .await?;
    let verify = query(session, "VERIFY AUDIT LOG", 1).await?.records().pop();
    Ok(json!({"entries": entries.into_json(), "verify": verify}))
}

/// The SQL console: every statement of the text in order, the last one's
/// rows (at most [`MAX_ROWS`]); an error names the statement it stopped at.
async fn console(session: &Session, body: &Value) -> ApiResult {
    let sql = body["sql"].as_str().ok_or_else(|| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            "expected a JSON body {\"sql\": \"…\"}",
        )
    })?;
    let started = std::time::Instant::now();
    let statements = session.parse(sql).map_err(Reply::from)?;
    if statements.is_empty() {
        return Err(Reply::error(StatusCode::BAD_REQUEST, "no statement to run"));
    }
    let mut last = None;
    for (index, statement) in statements.iter().enumerate() {
        match run(session, statement, MAX_ROWS).await {
            Ok(table) => last = Some((statement.statement.kind(), table)),
            Err(mut reply) => {
                reply.body["error"]["statement"] = json!(index + 1);
                return Err(reply);
            }
        }
    }
    let (kind, table) = last.expect("at least one statement ran");
    Ok(json!({
        "kind": kind,
        "statements": statements.len(),
        "result": table.into_json(),
        "seconds": started.elapsed().as_secs_f64(),
    }))
}
