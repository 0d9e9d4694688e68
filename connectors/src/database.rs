//! PostgreSQL and MySQL sources, on the maintained
//! `datafusion-table-providers` crates.
//!
//! Each opened source is a connection pool and a catalog listing the
//! server's schemas (for MySQL: databases) and their tables and views. A
//! table comes from the server's own table factory (`PostgresTableFactory`,
//! `MySQLTableFactory`): its `scan` turns DataFusion's projection, pushed
//! filters and limit into one SQL query in the server's dialect, and the rows stream
//! back as Arrow batches, converted by the crate's type mapping. Columns of
//! a type it cannot map fail the query with the column and type named
//! (`UnsupportedTypeAction::Error`), never a silently wrong value.
//!
//! The definition's `url` is the usual libpq / MySQL URL; its password is
//! a secret. TLS: `sslmode` (in the URL's query or as an option) as libpq
//! names it for PostgreSQL (`prefer` when unset) and as MySQL does
//! (`disabled`, `preferred`, `required`; `required` unless the host is the
//! loopback interface).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::SessionState;
use datafusion_table_providers_common::UnsupportedTypeAction;
use datafusion_table_providers_common::common::DatabaseCatalogProvider;
use datafusion_table_providers_common::sql::db_connection_pool::DbConnectionPool;
use datafusion_table_providers_common::util::secrets::to_secret_map;
use datafusion_table_providers_mysql::MySQLTableFactory;
use datafusion_table_providers_mysql::pool::MySQLConnectionPool;
use datafusion_table_providers_postgres::PostgresTableFactory;
use datafusion_table_providers_postgres::pool::PostgresConnectionPool;
use url::Url;

use crate::connector::{Connector, Error, OpenedSource, OptionSpec, Result, scrub, secrets_of};

/// `TYPE postgres`: a PostgreSQL database.
#[derive(Debug, Default)]
pub struct PostgresConnector;

/// `TYPE mysql`: a MySQL or MariaDB server.
#[derive(Debug, Default)]
pub struct MysqlConnector;

const POSTGRES_OPTIONS: &[OptionSpec] = &[
    OptionSpec::url("url"),
    OptionSpec::plain("sslmode"),
    OptionSpec::plain("sslrootcert"),
    OptionSpec::plain("pool_size"),
];

const MYSQL_OPTIONS: &[OptionSpec] = &[
    OptionSpec::url("url"),
    OptionSpec::plain("sslmode"),
    OptionSpec::plain("sslrootcert"),
];

fn options_error(name: &str, message: impl Into<String>) -> Error {
    Error::Options {
        source_name: name.to_string(),
        message: message.into(),
    }
}

/// The source's URL, checked for the expected schemes.
fn parse_url(name: &str, options: &BTreeMap<String, String>, schemes: &[&str]) -> Result<Url> {
    let raw = options
        .get("url")
        .ok_or_else(|| options_error(name, "option 'url' is required"))?;
    let url = Url::parse(raw).map_err(|e| {
        options_error(
            name,
            format!(
                "option 'url' is not a URL ({e}); expected {}://user:password@host:port/database",
                schemes[0]
            ),
        )
    })?;
    if !schemes.contains(&url.scheme()) {
        return Err(options_error(
            name,
            format!(
                "option 'url' has scheme '{}'; expected {}",
                url.scheme(),
                schemes.join(" or ")
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(options_error(name, "option 'url' names no host"));
    }
    Ok(url)
}

fn decoded(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

fn source_error(name: &str, secrets: &[String], e: impl std::fmt::Display) -> Error {
    Error::Source {
        source_name: name.to_string(),
        message: scrub(&e.to_string(), secrets),
    }
}

/// Makes the table provider of one table, in the server's SQL dialect.
type TableMaker = Arc<
    dyn Fn(
            TableReference,
        ) -> futures::future::BoxFuture<
            'static,
            std::result::Result<Arc<dyn TableProvider>, Box<dyn std::error::Error + Send + Sync>>,
        > + Send
        + Sync,
>;

/// The catalog of a connected pool: the server's schemas and tables as
/// listed by `DatabaseCatalogProvider`, each table made by the server's
/// own factory (so pushed-down SQL is in its dialect: MySQL has no
/// `NULLS LAST`, for one).
async fn catalog_of<T: 'static, P: 'static>(
    name: &str,
    secrets: &[String],
    pool: Arc<dyn DbConnectionPool<T, P> + Send + Sync>,
    make: TableMaker,
    exact_filters: bool,
) -> Result<OpenedSource> {
    let listing = DatabaseCatalogProvider::try_new(pool)
        .await
        .map_err(|e| source_error(name, secrets, format!("cannot list tables: {e}")))?;
    let catalog = MemoryCatalogProvider::new();
    for schema in listing.schema_names() {
        let Some(tables) = listing.schema(&schema) else {
            continue;
        };
        let provider = DbSchema {
            schema: schema.clone(),
            tables: tables.table_names(),
            make: Arc::clone(&make),
            exact_filters,
            source: name.to_string(),
            secrets: secrets.to_vec(),
        };
        catalog
            .register_schema(&schema, Arc::new(provider))
            .map_err(|e| source_error(name, secrets, e))?;
    }
    Ok(OpenedSource {
        catalog: Arc::new(catalog),
        stores: Vec::new(),
    })
}

/// One schema of a database source.
struct DbSchema {
    schema: String,
    tables: Vec<String>,
    make: TableMaker,
    /// Whether the server evaluates a pushed-down filter exactly as
    /// DataFusion does (see [`SourceTable`]).
    exact_filters: bool,
    source: String,
    secrets: Vec<String>,
}

impl std::fmt::Debug for DbSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSchema")
            .field("schema", &self.schema)
            .field("tables", &self.tables.len())
            .finish()
    }
}

#[async_trait]
impl SchemaProvider for DbSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.clone()
    }

    async fn table(&self, table: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if !self.table_exist(table) {
            return Ok(None);
        }
        let reference = TableReference::partial(self.schema.clone(), table.to_string());
        match (self.make)(reference).await {
            Ok(t) => Ok(Some(Arc::new(SourceTable {
                inner: t,
                exact_filters: self.exact_filters,
            }))),
            Err(e) => Err(DataFusionError::External(Box::new(source_error(
                &self.source,
                &self.secrets,
                format!("{}.{table}: {e}", self.schema),
            )))),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.iter().any(|t| t == name)
    }
}

#[async_trait]
impl Connector for PostgresConnector {
    fn type_name(&self) -> &'static str {
        "postgres"
    }

    fn options(&self) -> &'static [OptionSpec] {
        POSTGRES_OPTIONS
    }

    async fn open(
        &self,
        name: &str,
        options: &BTreeMap<String, String>,
        _state: &SessionState,
    ) -> Result<OpenedSource> {
        let secrets = secrets_of(POSTGRES_OPTIONS, options);
        let url = parse_url(name, options, &["postgres", "postgresql"])?;
        let mut params = HashMap::new();
        params.insert(
            "host".to_string(),
            url.host_str().unwrap_or_default().to_string(),
        );
        params.insert("port".to_string(), url.port().unwrap_or(5432).to_string());
        let user = if url.username().is_empty() {
            "postgres".to_string()
        } else {
            decoded(url.username())
        };
        params.insert("user".to_string(), user.clone());
        if let Some(p) = url.password() {
            params.insert("pass".to_string(), decoded(p));
        }
        let db = url.path().trim_start_matches('/');
        params.insert(
            "db".to_string(),
            if db.is_empty() { user } else { decoded(db) },
        );
        let mut sslmode = "prefer".to_string();
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "sslmode" => sslmode = v.into_owned(),
                "sslrootcert" => {
                    params.insert("sslrootcert".to_string(), v.into_owned());
                }
                "application_name" => {
                    params.insert("application_name".to_string(), v.into_owned());
                }
                other => {
                    return Err(options_error(
                        name,
                        format!(
                            "URL parameter '{other}' is not supported (expected sslmode, sslrootcert, application_name)"
                        ),
                    ));
                }
            }
        }
        if let Some(mode) = options.get("sslmode") {
            sslmode = mode.clone();
        }
        if let Some(cert) = options.get("sslrootcert") {
            params.insert("sslrootcert".to_string(), cert.clone());
        }
        if let Some(size) = options.get("pool_size") {
            size.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                options_error(name, "option 'pool_size' must be a positive integer")
            })?;
            params.insert("connection_pool_size".to_string(), size.clone());
        }
        if !matches!(
            sslmode.as_str(),
            "disable" | "prefer" | "require" | "verify-ca" | "verify-full"
        ) {
            return Err(options_error(
                name,
                format!(
                    "sslmode '{sslmode}' is not one of disable, prefer, require, verify-ca, verify-full"
                ),
            ));
        }
        params.insert("sslmode".to_string(), sslmode);
        params
            .entry("application_name".to_string())
            .or_insert_with(|| "autolake".to_string());

        let pool = PostgresConnectionPool::new(to_secret_map(params))
            .await
            .map_err(|e| source_error(name, &secrets, format!("cannot connect: {e}")))?
            .with_unsupported_type_action(UnsupportedTypeAction::Error);
        let pool = Arc::new(pool);
        let factory = Arc::new(PostgresTableFactory::new(Arc::clone(&pool)));
        let make: TableMaker = Arc::new(move |reference| {
            let factory = Arc::clone(&factory);
            Box::pin(async move { factory.table_provider(reference).await })
        });
        catalog_of(name, &secrets, pool, make, true).await
    }
}

#[async_trait]
impl Connector for MysqlConnector {
    fn type_name(&self) -> &'static str {
        "mysql"
    }

    fn options(&self) -> &'static [OptionSpec] {
        MYSQL_OPTIONS
    }

    async fn open(
        &self,
        name: &str,
        options: &BTreeMap<String, String>,
        _state: &SessionState,
    ) -> Result<OpenedSource> {
        let secrets = secrets_of(MYSQL_OPTIONS, options);
        let mut url = parse_url(name, options, &["mysql", "mariadb"])?;
        if url.scheme() == "mariadb" {
            // The driver knows one scheme; the protocol is the same.
            let rest = url.as_str().trim_start_matches("mariadb");
            url = Url::parse(&format!("mysql{rest}"))
                .map_err(|e| options_error(name, format!("option 'url': {e}")))?;
        }
        let mut sslmode = None;
        let mut params = HashMap::new();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (k, v) in pairs {
            match k.as_str() {
                "sslmode" | "ssl-mode" | "ssl_mode" => sslmode = Some(v.to_lowercase()),
                _ => {}
            }
        }
        url.query_pairs_mut().clear();
        let clean = url.as_str().trim_end_matches('?').to_string();
        if let Some(mode) = options.get("sslmode") {
            sslmode = Some(mode.to_lowercase());
        }
        let host = url.host_str().unwrap_or_default();
        let sslmode = sslmode.unwrap_or_else(|| {
            if is_loopback(host) {
                "disabled".to_string()
            } else {
                "required".to_string()
            }
        });
        if !matches!(sslmode.as_str(), "disabled" | "preferred" | "required") {
            return Err(options_error(
                name,
                format!("sslmode '{sslmode}' is not one of disabled, preferred, required"),
            ));
        }
        params.insert("connection_string".to_string(), clean);
        params.insert("sslmode".to_string(), sslmode);
        if let Some(cert) = options.get("sslrootcert") {
            params.insert("sslrootcert".to_string(), cert.clone());
        }
        let pool = MySQLConnectionPool::new(to_secret_map(params))
            .await
            .map_err(|e| source_error(name, &secrets, format!("cannot connect: {e}")))?;
        let pool = Arc::new(pool);
        let factory = Arc::new(MySQLTableFactory::new(Arc::clone(&pool)));
        let make: TableMaker = Arc::new(move |reference| {
            let factory = Arc::clone(&factory);
            Box::pin(async move { factory.table_provider(reference).await })
        });
        // MySQL's default collations ignore case and trailing blanks in
        // comparisons, so the server's answer to a pushed-down filter is
        // only a first cut that DataFusion filters again.
        catalog_of(name, &secrets, pool, make, false).await
    }
}

/// A database table as DataFusion sees it, with two corrections to what
/// `datafusion-table-providers` does, so a federated query answers as the
/// same query over a lake copy would:
/// - Scans asking for no column at all (`count(*)`, `SELECT 1 FROM t`,
///   `EXISTS`, a join side that contributes no column) get every column
///   from the providers, which DataFusion's physical planner rejects (the
///   schema must match the logical one, zero columns). Here the server is
///   asked for the first column (filters and limit still pushed down) and
///   the column is dropped, keeping the row count.
/// - Filters that order text ([`orders_text`]) stay local: servers order
///   text by their collation, DataFusion by bytes.
/// - Where the server's comparisons differ from DataFusion's
///   (`exact_filters` off: MySQL's collations), a filter goes to the server
///   only where its answer is a superset of DataFusion's
///   ([`narrows_only`]), and as inexact: DataFusion applies it again.
///   Other filters are evaluated locally only.
/// - No filter reaches the server after planning ([`FiltersStayLocal`]).
#[derive(Debug)]
struct SourceTable {
    inner: Arc<dyn TableProvider>,
    exact_filters: bool,
}

#[async_trait]
impl TableProvider for SourceTable {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::logical_expr::Expr],
    ) -> DFResult<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        use datafusion::logical_expr::TableProviderFilterPushDown as Pushdown;
        let pushed = self.inner.supports_filters_pushdown(filters)?;
        let schema = self.inner.schema();
        Ok(pushed
            .into_iter()
            .zip(filters)
            .map(|(p, filter)| match p {
                Pushdown::Exact if orders_text(filter, &schema) => Pushdown::Unsupported,
                Pushdown::Exact if self.exact_filters => Pushdown::Exact,
                Pushdown::Exact if narrows_only(filter, &schema) => Pushdown::Inexact,
                Pushdown::Exact => Pushdown::Unsupported,
                other => other,
            })
            .collect())
    }

    fn statistics(&self) -> Option<datafusion::common::Statistics> {
        self.inner.statistics()
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let plan: Arc<dyn datafusion::physical_plan::ExecutionPlan> = match projection {
            Some(columns) if columns.is_empty() && !self.inner.schema().fields().is_empty() => {
                let first = self
                    .inner
                    .scan(state, Some(&vec![0]), filters, limit)
                    .await?;
                let none: Vec<datafusion::physical_plan::projection::ProjectionExpr> = Vec::new();
                Arc::new(
                    datafusion::physical_plan::projection::ProjectionExec::try_new(none, first)?,
                )
            }
            _ => self.inner.scan(state, projection, filters, limit).await?,
        };
        Ok(Arc::new(FiltersStayLocal(plan)))
    }
}

/// Whether `filter` orders text (`<`, `<=`, `>`, `>=`, `BETWEEN`): the
/// server orders text by its collation (`en_US`, ICU: 'a_b' < 'ALPHA'),
/// DataFusion by bytes, so such a filter is never the server's to decide.
fn orders_text(filter: &datafusion::logical_expr::Expr, schema: &arrow::datatypes::Schema) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
    let mut found = false;
    let _ = filter.apply(|e| {
        found = match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq,
                right,
            }) => has_text(left, schema) || has_text(right, schema),
            Expr::Between(Between { expr, .. }) => has_text(expr, schema),
            _ => false,
        };
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Whether a server whose string comparisons ignore case and trailing
/// blanks (MySQL's default collations) keeps at least every row DataFusion
/// keeps for `filter`, so the filter can go to the server as a first cut.
///
/// Such a server's `=`, `IN` and `LIKE` on text are broader than
/// DataFusion's, never narrower: 'Alpha' = 'alpha' there. Anything else
/// that compares text is not: under `NOT`, `<>`, `NOT IN` or an ordering
/// (`s < 'beta'` drops 'Beta ', which sorts before it byte-wise), the server
/// would drop rows DataFusion keeps. Such filters stay local.
fn narrows_only(
    filter: &datafusion::logical_expr::Expr,
    schema: &arrow::datatypes::Schema,
) -> bool {
    use datafusion::logical_expr::{BinaryExpr, Expr, Like, Operator, expr::InList};
    let plain = |e: &Expr| matches!(e, Expr::Column(_) | Expr::Literal(..)) || !has_text(e, schema);
    match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And | Operator::Or,
            right,
        }) => narrows_only(left, schema) && narrows_only(right, schema),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => plain(left) && plain(right),
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => plain(expr) && list.iter().all(plain),
        Expr::Like(Like {
            negated: false,
            case_insensitive: false,
            expr,
            pattern,
            ..
        }) => plain(expr) && plain(pattern),
        Expr::IsNull(e) | Expr::IsNotNull(e) if matches!(e.as_ref(), Expr::Column(_)) => true,
        other => !has_text(other, schema),
    }
}

/// Whether `expr` holds a text column or a text literal anywhere.
fn has_text(expr: &datafusion::logical_expr::Expr, schema: &arrow::datatypes::Schema) -> bool {
    use arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::Expr;
    fn text(t: &DataType) -> bool {
        match t {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
            DataType::Dictionary(_, value) => text(value),
            _ => false,
        }
    }
    let mut found = false;
    let _ = expr.apply(|e| {
        found = match e {
            Expr::Column(c) => schema
                .field_with_name(&c.name)
                .map(|f| text(f.data_type()))
                // A column this table does not know: keep the filter local.
                .unwrap_or(true),
            Expr::Literal(
                ScalarValue::Utf8(_) | ScalarValue::LargeUtf8(_) | ScalarValue::Utf8View(_),
                _,
            ) => true,
            Expr::Literal(ScalarValue::Dictionary(_, value), _) => text(&value.data_type()),
            _ => false,
        };
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Keeps DataFusion's own filters above the scan of a server: without it,
/// the physical optimizer would move them into the server's query again,
/// the filters [`SourceTable`] kept local and the dynamic filters of a
/// `ORDER BY … LIMIT` (TopK) among them, where the server's collation
/// would decide which rows come first.
#[derive(Debug)]
struct FiltersStayLocal(Arc<dyn datafusion::physical_plan::ExecutionPlan>);

impl datafusion::physical_plan::DisplayAs for FiltersStayLocal {
    fn fmt_as(
        &self,
        _: datafusion::physical_plan::DisplayFormatType,
        f: &mut std::fmt::Formatter<'_>,
    ) -> std::fmt::Result {
        write!(f, "FiltersStayLocal")
    }
}

impl datafusion::physical_plan::ExecutionPlan for FiltersStayLocal {
    fn name(&self) -> &str {
        "FiltersStayLocal"
    }

    fn properties(&self) -> &Arc<datafusion::physical_plan::PlanProperties> {
        self.0.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        vec![&self.0]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_plan::PhysicalExpr>,
        ) -> DFResult<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> DFResult<datafusion::common::tree_node::TreeNodeRecursion> {
        // No expressions of its own.
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
    ) -> DFResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([child]) => Ok(Arc::new(Self(child))),
            Err(_) => Err(DataFusionError::Internal(
                "FiltersStayLocal has exactly one child".to_string(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<datafusion::execution::TaskContext>,
    ) -> DFResult<datafusion::execution::SendableRecordBatchStream> {
        self.0.execute(partition, context)
    }
}
