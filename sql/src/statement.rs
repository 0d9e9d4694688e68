//! Typed values for the statements AutoLake adds to SQL, and the one
//! [`Statement`] type every interface hands to the engine.

use std::fmt;

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{self, ObjectName};

/// One parsed statement, with the text it came from.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    /// The typed statement.
    pub statement: Statement,
    /// The statement's own text, trimmed, without the closing `;`.
    pub text: String,
    /// 1-based line where the statement starts in the submitted SQL.
    pub line: u64,
}

impl ParsedStatement {
    /// The statement's text as messages may show it: `CREATE SOURCE` with
    /// its option values hidden (they hold passwords and keys).
    pub fn display_text(&self) -> String {
        match &self.statement {
            Statement::CreateSource(c) => c.to_string(),
            _ => redact(&self.text),
        }
    }
}

/// `sql` with its secrets replaced by `'***'`: the string after `PASSWORD`,
/// the values of options whose names speak of passwords, secrets, tokens
/// or keys, and the password inside a `scheme://user:password@host` URL.
/// Text that cannot be tokenized is kept only up to its first quote.
pub fn redact(sql: &str) -> String {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = crate::dialect::AutoLakeDialect::default();
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return match sql.find('\'') {
            Some(i) => format!("{}'***'", &sql[..i]),
            None => sql.to_string(),
        };
    };
    let secret_word = |w: &str| {
        let w = w.to_lowercase();
        ["password", "secret", "token", "key", "credential", "passwd"]
            .iter()
            .any(|s| w.contains(s))
    };
    let mut out = String::with_capacity(sql.len());
    let mut previous: Option<&Token> = None;
    for token in &tokens {
        let hidden = match (token, previous) {
            (Token::SingleQuotedString(_) | Token::DoubleQuotedString(_), Some(Token::Word(w)))
                if secret_word(&w.value) =>
            {
                true
            }
            (Token::SingleQuotedString(_), Some(Token::SingleQuotedString(k)))
                if secret_word(k) =>
            {
                true
            }
            _ => false,
        };
        match token {
            _ if hidden => out.push_str("'***'"),
            Token::SingleQuotedString(s) => {
                out.push('\'');
                out.push_str(&redact_url(s).replace('\'', "''"));
                out.push('\'');
            }
            other => out.push_str(&other.to_string()),
        }
        if !matches!(token, Token::Whitespace(_)) {
            previous = Some(token);
        }
    }
    out
}

/// `scheme://user:password@host…` with the password hidden.
fn redact_url(s: &str) -> String {
    if let Some(scheme) = s.find("://") {
        let rest = &s[scheme + 3..];
        if let Some(at) = rest.find('@')
            && let Some(colon) = rest[..at].find(':')
        {
            let start = scheme + 3 + colon + 1;
            return format!("{}***{}", &s[..start], &s[scheme + 3 + at..]);
        }
    }
    s.to_string()
}

impl fmt::Display for CreateSource {
    /// The statement with every option value shown as `'***'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CREATE SOURCE ")?;
        if self.if_not_exists {
            write!(f, "IF NOT EXISTS ")?;
        }
        write!(f, "{} TYPE {}", self.name, self.source_type)?;
        if !self.options.is_empty() {
            let keys: Vec<String> = self
                .options
                .iter()
                .map(|(k, _)| format!("{k} '***'"))
                .collect();
            write!(f, " OPTIONS ({})", keys.join(", "))?;
        }
        Ok(())
    }
}

/// A statement AutoLake knows how to run.
#[derive(Debug, Clone)]
pub enum Statement {
    /// Plain SQL that DataFusion's parser understands: queries, DML, DDL,
    /// `CREATE EXTERNAL TABLE`, `EXPLAIN`, `SET`, …
    Sql(Box<DFStatement>),
    /// `DESCRIBE HISTORY t [LIMIT n]`
    DescribeHistory(DescribeHistory),
    /// `RESTORE [TABLE] t TO VERSION AS OF n | TIMESTAMP AS OF 'ts'`
    Restore(Restore),
    /// `OPTIMIZE t [ZORDER BY (c, …)]`
    Optimize(Optimize),
    /// `VACUUM t [RETAIN n HOURS] [DRY RUN]`
    Vacuum(Vacuum),
    /// `SHOW CLUSTER`: the executors of the session's cluster.
    ShowCluster,
    /// `CHECK DRIFT ON t …`
    CheckDrift(DriftCheck),
    /// `CREATE MONITOR name ON t … SCHEDULE '…'`
    CreateMonitor(CreateMonitor),
    /// `RUN MONITOR name`
    RunMonitor(ObjectName),
    /// `DROP MONITOR [IF EXISTS] name`
    DropMonitor {
        /// The monitor.
        name: ObjectName,
        /// No error when it does not exist.
        if_exists: bool,
    },
    /// `SHOW MONITORS`
    ShowMonitors,
    /// `CREATE MODEL m TYPE t [OPTIONS (…)] AS SELECT …`
    CreateModel(CreateModel),
    /// `SHOW MODELS`
    ShowModels,
    /// `DESCRIBE MODEL m [VERSION n]`
    DescribeModel {
        /// The model.
        name: ObjectName,
        /// One version; every version when absent.
        version: Option<u64>,
    },
    /// `ALTER MODEL m SET STAGE 'stage' [VERSION n]`
    AlterModelStage {
        /// The model.
        name: ObjectName,
        /// The new stage (`production`, `staging`, `archived`, `none`).
        stage: String,
        /// The version staged; the latest when absent.
        version: Option<u64>,
    },
    /// `DROP MODEL [IF EXISTS] m [VERSION n]`
    DropModel {
        /// The model.
        name: ObjectName,
        /// One version; the whole model when absent.
        version: Option<u64>,
        /// No error when it does not exist.
        if_exists: bool,
    },
    /// `EVALUATE MODEL m [VERSION n] ON (SELECT …)`
    EvaluateModel {
        /// The model.
        name: ObjectName,
        /// The version; as `predict('m')` chooses when absent.
        version: Option<u64>,
        /// Rows with the features and the target (for kmeans, features).
        query: Box<ast::Query>,
    },
    /// `CREATE SOURCE [IF NOT EXISTS] name TYPE t OPTIONS (key 'value', …)`
    CreateSource(CreateSource),
    /// `SHOW SOURCES`
    ShowSources,
    /// `DROP SOURCE [IF EXISTS] name`
    DropSource {
        /// The source.
        name: ObjectName,
        /// No error when it does not exist.
        if_exists: bool,
    },
    /// `SYNC TABLE t FROM src.schema.table [INCREMENTAL ON col] [KEY (c, …)]`
    SyncTable(SyncTable),
    /// `SYNC SOURCE src INTO SCHEMA s`
    SyncSource {
        /// The source mirrored.
        source: ObjectName,
        /// The lake schema receiving one table per source table.
        schema: ObjectName,
    },
    /// Users, roles, grants, ownership, policies, masks, the audit log.
    Governance(Box<crate::governance::Governance>),
    /// `CREATE JOB name SCHEDULE '…' | EVERY '…' [WINDOW …] AS statement`
    CreateJob(Box<CreateJob>),
    /// `ALTER JOB name PAUSE | RESUME`
    AlterJob {
        /// The job.
        name: ObjectName,
        /// `true` to pause, `false` to resume.
        pause: bool,
    },
    /// `RUN JOB name`: one run now, waiting for it.
    RunJob(ObjectName),
    /// `DROP JOB [IF EXISTS] name`
    DropJob {
        /// The job.
        name: ObjectName,
        /// No error when it does not exist.
        if_exists: bool,
    },
    /// `SHOW JOBS`
    ShowJobs,
    /// `CREATE [OR REPLACE] TEMPLATE t (p TYPE [DEFAULT v], …) AS $$ … $$`
    CreateTemplate(Box<CreateTemplate>),
    /// `DROP TEMPLATE [IF EXISTS] t`
    DropTemplate {
        /// The template.
        name: ObjectName,
        /// No error when it does not exist.
        if_exists: bool,
    },
    /// `SHOW TEMPLATES`
    ShowTemplates,
    /// `CREATE PIPELINE p FROM TEMPLATE t [VERSION n] WITH (k = v, …)`
    CreatePipeline(Box<CreatePipeline>),
    /// `DROP PIPELINE [IF EXISTS] p [PURGE]`
    DropPipeline {
        /// The pipeline.
        name: ObjectName,
        /// No error when it does not exist.
        if_exists: bool,
        /// Also drop its tables, models, sources and schemas.
        purge: bool,
    },
    /// `SHOW PIPELINES`
    ShowPipelines,
    /// `REPRODUCE MODEL m [VERSION n]`
    ReproduceModel {
        /// The model.
        name: ObjectName,
        /// The version retrained; the latest when absent.
        version: Option<u64>,
    },
    /// `ALTER MODEL m SET LOGGING TO t [SAMPLE x]` or `SET LOGGING OFF`
    AlterModelLogging {
        /// The model.
        name: ObjectName,
        /// The lake table predictions are appended to; `None` stops
        /// logging.
        table: Option<ObjectName>,
        /// The share of predictions logged, in (0, 1].
        sample: f64,
    },
}

/// The type of a template parameter, which decides how its value is
/// checked and written into the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A name (`a` or `a.b.c`): checked part by part and written quoted.
    Ident,
    /// Text: written as an escaped string literal.
    Text,
    /// A whole number.
    Int,
    /// A finite number.
    Double,
    /// An interval such as `5 minutes`: written as a string literal.
    Interval,
}

impl ParamType {
    /// The type as written in `CREATE TEMPLATE`.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Ident => "IDENT",
            ParamType::Text => "TEXT",
            ParamType::Int => "INT",
            ParamType::Double => "DOUBLE",
            ParamType::Interval => "INTERVAL",
        }
    }

    /// The type named `word` (upper case), if any.
    pub fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "IDENT" => ParamType::Ident,
            "TEXT" => ParamType::Text,
            "INT" | "INTEGER" | "BIGINT" => ParamType::Int,
            "DOUBLE" => ParamType::Double,
            "INTERVAL" => ParamType::Interval,
            _ => return None,
        })
    }
}

/// One parameter of a template.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateParam {
    /// Its name, lower case, as `${name}` refers to it.
    pub name: String,
    /// How its value is checked and written.
    pub ty: ParamType,
    /// The value used when a pipeline gives none.
    pub default: Option<String>,
}

/// `CREATE [OR REPLACE] TEMPLATE t (p TYPE [DEFAULT v], …) AS $$ … $$`
#[derive(Debug, Clone)]
pub struct CreateTemplate {
    /// The template's name.
    pub name: ObjectName,
    /// Add a version to an existing template.
    pub or_replace: bool,
    /// Its parameters, in order.
    pub params: Vec<TemplateParam>,
    /// The statements between the `$$`, as written.
    pub body: String,
}

/// `CREATE PIPELINE p FROM TEMPLATE t [VERSION n] WITH (k = v, …)`
#[derive(Debug, Clone)]
pub struct CreatePipeline {
    /// The pipeline's name.
    pub name: ObjectName,
    /// The template stamped.
    pub template: ObjectName,
    /// Its version; the latest when absent.
    pub version: Option<u64>,
    /// Parameter values: lower-case name, the value's text.
    pub args: Vec<(String, String)>,
}

/// The statement kinds a template's body may hold: statements that make
/// objects, fill them and schedule their work.
pub const TEMPLATE_STATEMENTS: [&str; 19] = [
    "CREATE SCHEMA",
    "CREATE TABLE",
    "CREATE TABLE AS SELECT",
    "INSERT",
    "INSERT OVERWRITE",
    "MERGE",
    "UPDATE",
    "DELETE",
    "CREATE SOURCE",
    "SYNC TABLE",
    "SYNC SOURCE",
    "CREATE MODEL",
    "ALTER MODEL",
    "CREATE JOB",
    "RUN JOB",
    "CREATE MONITOR",
    "RUN MONITOR",
    "CHECK DRIFT",
    "GRANT",
];

/// What a monitor does when it detects drift: retrain a model, and
/// promote the new version when it passes a gate.
#[derive(Debug, Clone, PartialEq)]
pub struct OnDrift {
    /// The model retrained.
    pub model: ObjectName,
    /// `PROMOTE WHEN metric op x`: the metric, the comparison (`>=`, `>`,
    /// `<=`, `<`) and the bound; without it a new version is promoted when
    /// it is not worse than production.
    pub gate: Option<(String, String, f64)>,
}

/// The statement kinds a job may run.
pub const JOB_STATEMENTS: [&str; 8] = [
    "INSERT",
    "INSERT OVERWRITE",
    "MERGE",
    "SYNC TABLE",
    "SYNC SOURCE",
    "CHECK DRIFT",
    "CREATE MODEL",
    "RUN MONITOR",
];

/// When a job runs.
#[derive(Debug, Clone, PartialEq)]
pub enum JobSchedule {
    /// `SCHEDULE 'cron'`: a five-field cron expression or an alias
    /// (`@hourly`, …).
    Cron(String),
    /// `EVERY 'interval'` (`'1 second'`, `'5 minutes'`).
    Every(String),
}

impl fmt::Display for JobSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobSchedule::Cron(c) => write!(f, "SCHEDULE '{}'", c.replace('\'', "''")),
            JobSchedule::Every(i) => write!(f, "EVERY '{}'", i.replace('\'', "''")),
        }
    }
}

/// An event-time window over a job's `table_changes` input.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    /// The event-time column (a timestamp).
    pub column: ast::Ident,
    /// Window length (an interval such as `'1 minute'`).
    pub size: String,
    /// For hopping windows, how far apart windows start; `None` for
    /// tumbling windows.
    pub slide: Option<String>,
}

/// `CREATE JOB [IF NOT EXISTS] name SCHEDULE '…' | EVERY '…'
/// [WINDOW TUMBLE (col, 'size') | HOP (col, 'slide', 'size')]
/// [WATERMARK 'lateness'] [LATE INTO table] AS statement`
#[derive(Debug, Clone)]
pub struct CreateJob {
    /// The job's name.
    pub name: ObjectName,
    /// No error when it exists already.
    pub if_not_exists: bool,
    /// When it runs; `None` for a job that runs after its upstreams.
    pub schedule: Option<JobSchedule>,
    /// `AFTER a, b`: the jobs whose committed runs start this one.
    pub after: Vec<ObjectName>,
    /// Event-time windows over its input.
    pub window: Option<WindowSpec>,
    /// How late an event may arrive before its window closes (the
    /// watermark trails the newest event time by this); zero when absent.
    pub watermark: Option<String>,
    /// Where rows arriving after their window closed go.
    pub late_into: Option<ObjectName>,
    /// The statement each run executes, with its own text.
    pub body: Box<ParsedStatement>,
    /// Where the body starts in the submitted SQL (for its text).
    pub body_start: (u64, u64),
}

/// The source types `CREATE SOURCE … TYPE` accepts.
pub const SOURCE_TYPES: [&str; 5] = ["postgres", "mysql", "files", "nats", "mqtt"];

/// `CREATE SOURCE [IF NOT EXISTS] name TYPE t OPTIONS (key 'value', …)`
#[derive(Debug, Clone)]
pub struct CreateSource {
    /// The source's name (a catalog name).
    pub name: ObjectName,
    /// No error when it exists already.
    pub if_not_exists: bool,
    /// One of [`SOURCE_TYPES`].
    pub source_type: String,
    /// Options in the order written: lower-case key, value as written.
    pub options: Vec<(String, String)>,
}

/// `SYNC TABLE t FROM src.schema.table [INCREMENTAL ON col] [KEY (c, …)]`
#[derive(Debug, Clone)]
pub struct SyncTable {
    /// The lake table written.
    pub target: ObjectName,
    /// The source table read, `source.schema.table`.
    pub from: ObjectName,
    /// The cursor column: later runs copy only rows above the last value.
    pub incremental_on: Option<ast::Ident>,
    /// Key columns: rows are merged on them instead of appended.
    pub key: Vec<ast::Ident>,
}

/// The model types `CREATE MODEL … TYPE` accepts.
pub const MODEL_TYPES: [&str; 5] = [
    "linear_regression",
    "logistic_regression",
    "mlp_classifier",
    "mlp_regressor",
    "kmeans",
];

/// `CREATE MODEL m TYPE t [OPTIONS (key value, …)] AS SELECT …`
#[derive(Debug, Clone)]
pub struct CreateModel {
    /// The model's name.
    pub name: ObjectName,
    /// One of [`MODEL_TYPES`].
    pub model_type: String,
    /// Options in the order written: lower-case key, value as written (a
    /// string's contents or a number's text).
    pub options: Vec<(String, String)>,
    /// The training rows.
    pub query: Box<ast::Query>,
}

/// A point in a table's history.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeTravel {
    /// `VERSION AS OF n`
    Version(i64),
    /// `TIMESTAMP AS OF 'rfc3339 or date-time'`
    Timestamp(String),
}

impl fmt::Display for TimeTravel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeTravel::Version(v) => write!(f, "VERSION AS OF {v}"),
            TimeTravel::Timestamp(ts) => write!(f, "TIMESTAMP AS OF '{ts}'"),
        }
    }
}

/// `DESCRIBE HISTORY t [LIMIT n]`
#[derive(Debug, Clone)]
pub struct DescribeHistory {
    /// The table whose commits are listed.
    pub table: ObjectName,
    /// Only the newest `n` commits.
    pub limit: Option<usize>,
}

/// `RESTORE TABLE t TO …`
#[derive(Debug, Clone)]
pub struct Restore {
    /// The table to restore.
    pub table: ObjectName,
    /// The version or time to restore it to.
    pub to: TimeTravel,
}

/// `OPTIMIZE t [ZORDER BY (c, …)]`
#[derive(Debug, Clone)]
pub struct Optimize {
    /// The table to compact.
    pub table: ObjectName,
    /// Columns to Z-order the data by; empty for plain compaction.
    pub zorder_by: Vec<String>,
}

/// `VACUUM t [RETAIN n HOURS] [DRY RUN]`
#[derive(Debug, Clone)]
pub struct Vacuum {
    /// The table to clean.
    pub table: ObjectName,
    /// Keep files removed less than this many hours ago; the table's
    /// configured retention (7 days by default) when absent.
    pub retain_hours: Option<f64>,
    /// List what would be deleted without deleting it.
    pub dry_run: bool,
}

/// The drift tests `CHECK DRIFT … USING` names.
pub const DRIFT_TESTS: [&str; 6] = ["auto", "psi", "ks", "wasserstein", "js", "chi2"];

/// The reference sample of a drift check.
#[derive(Debug, Clone)]
pub enum DriftReference {
    /// The checked table at an earlier version or time.
    At(TimeTravel),
    /// Any query.
    Query(Box<ast::Query>),
}

/// `CHECK DRIFT ON t [COLUMNS (a, …)] REFERENCE (VERSION AS OF n | SELECT …)
/// [CURRENT (SELECT …)] [USING test] [THRESHOLD x]`
#[derive(Debug, Clone)]
pub struct DriftCheck {
    /// The table checked; its current rows are the current sample unless
    /// `current` says otherwise.
    pub table: ObjectName,
    /// Columns to test; every testable column when empty.
    pub columns: Vec<ast::Ident>,
    /// The reference sample.
    pub reference: DriftReference,
    /// The current sample, when not the table as it is now.
    pub current: Option<Box<ast::Query>>,
    /// One of [`DRIFT_TESTS`]; `auto` when absent.
    pub test: Option<String>,
    /// Overrides each test's default threshold.
    pub threshold: Option<f64>,
}

impl fmt::Display for DriftCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CHECK DRIFT ON {}", self.table)?;
        if !self.columns.is_empty() {
            let columns: Vec<String> = self.columns.iter().map(|c| c.to_string()).collect();
            write!(f, " COLUMNS ({})", columns.join(", "))?;
        }
        match &self.reference {
            DriftReference::At(at) => write!(f, " REFERENCE ({at})")?,
            DriftReference::Query(q) => write!(f, " REFERENCE ({q})")?,
        }
        if let Some(q) = &self.current {
            write!(f, " CURRENT ({q})")?;
        }
        if let Some(test) = &self.test {
            write!(f, " USING {test}")?;
        }
        if let Some(t) = self.threshold {
            write!(f, " THRESHOLD {t}")?;
        }
        Ok(())
    }
}

/// `CREATE MONITOR [IF NOT EXISTS] name ON t … SCHEDULE '…'`
#[derive(Debug, Clone)]
pub struct CreateMonitor {
    /// The monitor's name.
    pub name: ObjectName,
    /// No error when it exists already.
    pub if_not_exists: bool,
    /// The check it runs.
    pub check: DriftCheck,
    /// When it runs: a cron expression or an interval.
    pub schedule: String,
    /// `ON DRIFT RETRAIN MODEL m [PROMOTE WHEN …]`
    pub on_drift: Option<OnDrift>,
}

impl Statement {
    /// A short upper-case name of the statement's kind, as recorded in Delta
    /// commit info and the audit log (`INSERT`, `CREATE TABLE`, `OPTIMIZE`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Statement::Sql(s) => df_kind(s),
            Statement::DescribeHistory(_) => "DESCRIBE HISTORY",
            Statement::Restore(_) => "RESTORE",
            Statement::Optimize(_) => "OPTIMIZE",
            Statement::Vacuum(_) => "VACUUM",
            Statement::ShowCluster => "SHOW CLUSTER",
            Statement::CheckDrift(_) => "CHECK DRIFT",
            Statement::CreateMonitor(_) => "CREATE MONITOR",
            Statement::RunMonitor(_) => "RUN MONITOR",
            Statement::DropMonitor { .. } => "DROP MONITOR",
            Statement::ShowMonitors => "SHOW MONITORS",
            Statement::CreateModel(_) => "CREATE MODEL",
            Statement::ShowModels => "SHOW MODELS",
            Statement::DescribeModel { .. } => "DESCRIBE MODEL",
            Statement::AlterModelStage { .. } => "ALTER MODEL",
            Statement::DropModel { .. } => "DROP MODEL",
            Statement::EvaluateModel { .. } => "EVALUATE MODEL",
            Statement::CreateSource(_) => "CREATE SOURCE",
            Statement::ShowSources => "SHOW SOURCES",
            Statement::DropSource { .. } => "DROP SOURCE",
            Statement::SyncTable(_) => "SYNC TABLE",
            Statement::SyncSource { .. } => "SYNC SOURCE",
            Statement::Governance(g) => g.kind(),
            Statement::CreateJob(_) => "CREATE JOB",
            Statement::AlterJob { .. } => "ALTER JOB",
            Statement::RunJob(_) => "RUN JOB",
            Statement::DropJob { .. } => "DROP JOB",
            Statement::ShowJobs => "SHOW JOBS",
            Statement::CreateTemplate(_) => "CREATE TEMPLATE",
            Statement::DropTemplate { .. } => "DROP TEMPLATE",
            Statement::ShowTemplates => "SHOW TEMPLATES",
            Statement::CreatePipeline(_) => "CREATE PIPELINE",
            Statement::DropPipeline { .. } => "DROP PIPELINE",
            Statement::ShowPipelines => "SHOW PIPELINES",
            Statement::ReproduceModel { .. } => "REPRODUCE MODEL",
            Statement::AlterModelLogging { .. } => "ALTER MODEL",
        }
    }
}

/// The families AutoLake's statements come in. Each family has its parser
/// in a file of this crate (`maintenance.rs`, `drift.rs`, `models.rs`,
/// `sources.rs`, `jobs.rs`, `governance.rs`, `pipelines.rs`; DataFusion's parser for
/// [`Family::Sql`]) and its accesses and handlers side by side in one file
/// of the engine, so a new statement is a variant here and code in its
/// family's two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// DataFusion's SQL: queries, DML, DDL, `EXPLAIN`, `SET`, …
    Sql,
    /// `DESCRIBE HISTORY`, `RESTORE`, `OPTIMIZE`, `VACUUM`, `SHOW CLUSTER`.
    Maintenance,
    /// `CHECK DRIFT` and monitors.
    Drift,
    /// The model registry: `CREATE`, `DESCRIBE`, `ALTER`, `DROP`,
    /// `EVALUATE MODEL`, `SHOW MODELS`.
    Models,
    /// Sources and sync: `CREATE`/`DROP SOURCE`, `SHOW SOURCES`, `SYNC`.
    Sources,
    /// Users, roles, grants, ownership, policies, masks, the audit log.
    Governance,
    /// `CREATE`/`ALTER`/`DROP`/`RUN JOB`, `SHOW JOBS`.
    Jobs,
    /// Templates and the pipelines stamped from them.
    Pipelines,
}

impl Statement {
    /// The family the statement belongs to.
    pub fn family(&self) -> Family {
        match self {
            Statement::Sql(_) => Family::Sql,
            Statement::DescribeHistory(_)
            | Statement::Restore(_)
            | Statement::Optimize(_)
            | Statement::Vacuum(_)
            | Statement::ShowCluster => Family::Maintenance,
            Statement::CheckDrift(_)
            | Statement::CreateMonitor(_)
            | Statement::RunMonitor(_)
            | Statement::DropMonitor { .. }
            | Statement::ShowMonitors => Family::Drift,
            Statement::CreateModel(_)
            | Statement::ShowModels
            | Statement::DescribeModel { .. }
            | Statement::AlterModelStage { .. }
            | Statement::DropModel { .. }
            | Statement::EvaluateModel { .. }
            | Statement::ReproduceModel { .. }
            | Statement::AlterModelLogging { .. } => Family::Models,
            Statement::CreateSource(_)
            | Statement::ShowSources
            | Statement::DropSource { .. }
            | Statement::SyncTable(_)
            | Statement::SyncSource { .. } => Family::Sources,
            Statement::Governance(_) => Family::Governance,
            Statement::CreateJob(_)
            | Statement::AlterJob { .. }
            | Statement::RunJob(_)
            | Statement::DropJob { .. }
            | Statement::ShowJobs => Family::Jobs,
            Statement::CreateTemplate(_)
            | Statement::DropTemplate { .. }
            | Statement::ShowTemplates
            | Statement::CreatePipeline(_)
            | Statement::DropPipeline { .. }
            | Statement::ShowPipelines => Family::Pipelines,
        }
    }

    /// Whether the statement rewrites data, copies a source or trains, so
    /// that an interactive client shows progress while it runs.
    pub fn is_long_running(&self) -> bool {
        use ast::Statement as S;
        match self {
            Statement::Optimize(_)
            | Statement::Vacuum(_)
            | Statement::Restore(_)
            | Statement::SyncTable(_)
            | Statement::SyncSource { .. }
            | Statement::CreateModel(_)
            | Statement::ReproduceModel { .. }
            | Statement::EvaluateModel { .. } => true,
            Statement::Sql(s) => match s.as_ref() {
                DFStatement::Statement(s) => match s.as_ref() {
                    S::Insert(_) | S::Update(_) | S::Delete(_) | S::Merge(_) => true,
                    S::CreateTable(c) => c.query.is_some(),
                    _ => false,
                },
                _ => false,
            },
            _ => false,
        }
    }
}

fn df_kind(statement: &DFStatement) -> &'static str {
    use ast::Statement as S;
    match statement {
        DFStatement::Statement(s) => match s.as_ref() {
            S::Query(_) => "SELECT",
            S::Insert(i) if i.overwrite => "INSERT OVERWRITE",
            S::Insert(_) => "INSERT",
            S::Update(_) => "UPDATE",
            S::Delete(_) => "DELETE",
            S::Merge(_) => "MERGE",
            S::CreateTable(c) if c.query.is_some() => "CREATE TABLE AS SELECT",
            S::CreateTable(_) => "CREATE TABLE",
            S::CreateSchema { .. } => "CREATE SCHEMA",
            S::CreateView(_) => "CREATE VIEW",
            S::AlterTable(_) => "ALTER TABLE",
            S::Drop {
                object_type: ast::ObjectType::Table,
                ..
            } => "DROP TABLE",
            S::Drop {
                object_type: ast::ObjectType::Schema,
                ..
            } => "DROP SCHEMA",
            S::Drop { .. } => "DROP",
            S::ShowTables { .. } => "SHOW TABLES",
            S::ShowSchemas { .. } => "SHOW SCHEMAS",
            S::ShowColumns { .. } => "SHOW COLUMNS",
            S::ExplainTable { .. } => "DESCRIBE",
            S::Explain { .. } => "EXPLAIN",
            S::Set(_) => "SET",
            S::ShowVariable { .. } => "SHOW",
            _ => "STATEMENT",
        },
        DFStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE",
        DFStatement::CopyTo(_) => "COPY",
        DFStatement::Explain(_) => "EXPLAIN",
        DFStatement::Reset(_) => "RESET",
    }
}
