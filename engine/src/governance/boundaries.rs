//! Data boundaries in the plan: every scan of a lake table is checked for
//! `SELECT` and, where row policies or column masks apply, rewritten to
//!
//! ```text
//! Projection(c1, mask(c2) AS c2, …)      same columns, same qualifier
//!   Filter(policy1 OR policy2 …)         the rows the principal may see
//!     TableScan(t, all columns)
//! ```
//!
//! by an analyzer rule that runs first, before type coercion and long
//! before the optimizer. Because the replacement keeps the scan's output
//! schema, nothing above it changes, and every predicate, join key,
//! aggregate or projection written against the table reads the masked
//! values: pushing a filter down through the projection substitutes the
//! mask, so `WHERE ssn = '…'` compares masked values and reveals nothing.
//! Views are inlined by DataFusion's planner and subqueries are visited, so
//! both are covered; time-travel snapshots are lake tables too.
//!
//! Lake tables are recognised by [`LakeTable`], the provider every lake
//! table (current or at a version) is wrapped in; a rewritten scan is
//! marked governed so a plan analyzed twice is not masked twice.
//!
//! Policies do not change the plan's shape. The policy predicate is wrapped
//! in `row_policy(…)`, an identity function that marks it (and shows in
//! `EXPLAIN`). DataFusion cannot estimate most predicates (a Decimal
//! comparison, a function call) and guesses that a filter keeps 20% of the
//! rows; for a policy that keeps nearly every row, that guess flips join
//! sides and makes a governed query slower than the same query without
//! governance. [`PolicyEstimates`], the first physical optimizer rule,
//! splits every filter holding `row_policy` conjuncts in two: the policy,
//! estimated to keep every row, under the query's own predicates,
//! estimated exactly as they are without governance. The query therefore
//! gets the plan it gets without policies. (DataFusion's filter pushdown
//! later joins the two filters back into one, the query's predicates
//! first, so they may be evaluated on rows the policy then drops; what a
//! query returns never includes those rows, but a predicate that fails on
//! one, such as a division by zero, fails the query.)
//!
//! Before splitting, the same rule asks whether the statistics of the files
//! a scan reads prove the policy true for every row ([`super::proof`]).
//! Where they do for every file, the policy is dropped from that scan's
//! filter, and the columns only the policy read are no longer read: the
//! scan, the filter and the projection above it are rebuilt on the
//! narrower column set. The query then costs what it costs without the
//! policy. One file the proof does not cover (a row the policy excludes, a
//! null, missing statistics) keeps the policy on the whole scan.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::{DefaultTableSource, provider_as_source};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, Filter, LogicalPlan, Projection, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, TableScan, TableScanBuilder, Volatility, cast,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::utils::{collect_columns, reassign_expr_columns};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr, conjunction, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::scalar::ScalarValue;
use datafusion_datasource::file_scan_config::FileScanConfig;
use datafusion_datasource::source::DataSourceExec;

use super::{Governance, Privilege, Securable, State, denied, proof};
use crate::lake::table::LakeTable;
use crate::principal::Principal;

/// The analyzer rule applying privileges, row policies and masks.
#[derive(Debug)]
pub(crate) struct Boundaries {
    governance: Arc<Governance>,
    principal: Principal,
    /// Plans policy and mask expressions (with the session's identity
    /// functions registered); made when a governed table is first scanned,
    /// so sessions that never meet one do not pay for it.
    planner: OnceLock<SessionState>,
}

impl Boundaries {
    pub(crate) fn new(governance: Arc<Governance>, principal: Principal) -> Self {
        Self {
            governance,
            principal,
            planner: OnceLock::new(),
        }
    }

    fn planner(&self) -> &SessionState {
        self.planner.get_or_init(|| {
            let mut planner = SessionStateBuilder::new().with_default_features().build();
            for udf in identity_functions(&self.governance, &self.principal) {
                // Registering a new name cannot fail.
                let _ = planner.register_udf(Arc::new(udf));
            }
            planner
        })
    }

    fn rewrite(&self, state: &State, scan: &TableScan, table: &LakeTable) -> DFResult<LogicalPlan> {
        let policies = state.policies_for(&self.principal, &table.name);
        let masks = state.masks_of(&table.name);
        let governed = Arc::new(LakeTable {
            name: table.name.clone(),
            inner: Arc::clone(&table.inner),
            governed: true,
            constraints: table.constraints.clone(),
        });
        let full = TableScanBuilder::new(scan.table_name.clone(), provider_as_source(governed))
            .with_filters(scan.filters.clone())
            .build()?;
        let full_schema = Arc::clone(&full.projected_schema);
        let mut plan = LogicalPlan::TableScan(full);
        let mut predicates = Vec::new();
        for policy in &policies {
            let expr = plan_sql_expr(self.planner(), &policy.using, &full_schema).map_err(|e| {
                DataFusionError::Plan(format!(
                    "row policy {} on {} cannot be applied: {e}",
                    policy.name, table.name
                ))
            })?;
            predicates.push(expr);
        }
        if let Some(filter) = predicates.into_iter().reduce(Expr::or) {
            let marked = Expr::ScalarFunction(ScalarFunction::new_udf(row_policy(), vec![filter]));
            plan = LogicalPlan::Filter(Filter::try_new(marked, Arc::new(plan))?);
        }
        let mut exprs = Vec::new();
        for (qualifier, field) in scan.projected_schema.iter() {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            let expr = match masks.iter().find(|m| m.column == *field.name()) {
                Some(mask) => {
                    let masked =
                        plan_sql_expr(self.planner(), &mask.mask, &full_schema).map_err(|e| {
                            DataFusionError::Plan(format!(
                                "the mask of column {} of {} cannot be applied: {e}",
                                mask.column, table.name
                            ))
                        })?;
                    cast(masked, field.data_type().clone())
                        .alias_qualified(qualifier.cloned(), field.name())
                }
                None => column,
            };
            exprs.push(expr);
        }
        plan = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(plan))?);
        if let Some(fetch) = scan.fetch {
            plan = datafusion::logical_expr::LogicalPlanBuilder::from(plan)
                .limit(0, Some(fetch))?
                .build()?;
        }
        Ok(plan)
    }
}

/// Plans a policy or mask expression (SQL text) against `schema`, parsed
/// with AutoLake's dialect as statements are.
pub(crate) fn plan_sql_expr(state: &SessionState, sql: &str, schema: &DFSchema) -> DFResult<Expr> {
    let dialect = autolake_sql::AutoLakeDialect::default();
    let expr = autolake_sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| DataFusionError::SQL(Box::new(e), None))?;
    state.create_logical_expr_from_sql_expr(
        autolake_sql::sqlparser::ast::ExprWithAlias { expr, alias: None },
        schema,
    )
}

/// Whether a scan reads `system.queries`.
fn is_query_history(scan: &TableScan) -> bool {
    scan.source
        .as_ref()
        .downcast_ref::<DefaultTableSource>()
        .is_some_and(|s| {
            s.table_provider
                .as_ref()
                .downcast_ref::<crate::history::QueryHistoryTable>()
                .is_some()
        })
}

impl Boundaries {
    /// `system.queries` narrowed to the principal's own statements, unless
    /// the principal may read the whole system schema (admin, auditor).
    fn own_queries(&self, state: &State, scan: LogicalPlan) -> DFResult<Transformed<LogicalPlan>> {
        let system = Securable::Schema(crate::lake::SYSTEM_SCHEMA.to_string());
        if state.is_member(&self.principal, "auditor")
            || state.allows(&self.principal, Privilege::Select, &system)
        {
            return Ok(Transformed::no(scan));
        }
        let LogicalPlan::TableScan(table_scan) = &scan else {
            return Ok(Transformed::no(scan));
        };
        let user = Expr::Column(Column::new(Some(table_scan.table_name.clone()), "user"));
        let own = user.eq(Expr::Literal(
            ScalarValue::Utf8(Some(self.principal.name.clone())),
            None,
        ));
        Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
            own,
            Arc::new(scan),
        )?)))
    }
}

/// The lake table a scan reads, if it reads one.
pub(crate) fn lake_table_of(scan: &TableScan) -> Option<&LakeTable> {
    scan.source
        .as_ref()
        .downcast_ref::<DefaultTableSource>()?
        .table_provider
        .as_ref()
        .downcast_ref::<LakeTable>()
}

impl AnalyzerRule for Boundaries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DFResult<LogicalPlan> {
        let state = self.governance.cached();
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = &node else {
                return Ok(Transformed::no(node));
            };
            if is_query_history(scan) {
                return self.own_queries(&state, node);
            }
            let Some(table) = lake_table_of(scan) else {
                return Ok(Transformed::no(node));
            };
            if table.governed {
                return Ok(Transformed::no(node));
            }
            let securable = Securable::table(&table.name);
            if !state.allows(&self.principal, Privilege::Select, &securable) {
                return Err(denied(&self.principal, Privilege::Select.as_str(), &securable).into());
            }
            if !state.bounds(&self.principal, &table.name) {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(self.rewrite(&state, scan, table)?))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "autolake_data_boundaries"
    }
}

/// A function the data boundaries put into plans without registering it
/// by name, for the codec that decodes plans elsewhere (the cluster).
pub(crate) fn plan_function(name: &str) -> Option<Arc<ScalarUDF>> {
    (name == ROW_POLICY).then(row_policy)
}

/// The names of the functions whose result depends on who runs the
/// statement: folded into literals while planning, and never registered
/// where plans run for others (the cluster's executors).
pub(crate) const IDENTITY_FUNCTIONS: [&str; 2] = ["current_user", "is_member"];

/// The marker around a table's row-policy predicate: the identity on booleans.
fn row_policy() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    Arc::clone(UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(RowPolicy {
            signature: Signature::exact(vec![DataType::Boolean], Volatility::Immutable),
        }))
    }))
}

const ROW_POLICY: &str = "row_policy";

#[derive(Debug, PartialEq, Eq, Hash)]
struct RowPolicy {
    signature: Signature,
}

impl ScalarUDFImpl for RowPolicy {
    fn name(&self) -> &str {
        ROW_POLICY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        args.args
            .pop()
            .ok_or_else(|| DataFusionError::Internal("row_policy takes one argument".into()))
    }
}

/// The physical optimizer rule giving row-policy filters the estimate
/// "keeps every row" (see the module documentation). It runs before
/// DataFusion's own rules, so join selection sees the split filters.
#[derive(Debug, Default)]
pub(crate) struct PolicyEstimates;

/// The conjuncts of a filter's predicate: the `row_policy(…)` ones, then
/// the query's own.
type Conjuncts = (Vec<Arc<dyn PhysicalExpr>>, Vec<Arc<dyn PhysicalExpr>>);

fn policy_conjuncts(predicate: &Arc<dyn PhysicalExpr>) -> Conjuncts {
    split_conjunction(predicate)
        .into_iter()
        .cloned()
        .partition(|conjunct| {
            conjunct
                .downcast_ref::<ScalarFunctionExpr>()
                .is_some_and(|f| f.name() == ROW_POLICY)
        })
}

/// Whether every file `scan` reads has statistics proving each policy
/// conjunct (`row_policy(p)`) true for all of its rows.
fn proven_by_files(scan: &DataSourceExec, policies: &[Arc<dyn PhysicalExpr>]) -> bool {
    let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>() else {
        return false;
    };
    let output = scan.schema();
    let table = config.file_source.table_schema().table_schema();
    let files: Vec<_> = config.file_groups.iter().flat_map(|g| g.iter()).collect();
    if files.is_empty() {
        return false;
    }
    policies.iter().all(|policy| {
        let Some(predicate) = policy
            .downcast_ref::<ScalarFunctionExpr>()
            .and_then(|f| f.args().first())
        else {
            return false;
        };
        files.iter().all(|file| {
            let Some(stats) = &file.statistics else {
                return false;
            };
            let column = |c: &PhysicalColumn| {
                let field = output.fields().get(c.index())?;
                let index = table.index_of(field.name()).ok()?;
                let stats = stats.column_statistics.get(index)?;
                Some((field.data_type(), stats))
            };
            proof::holds_for_every_row(predicate, &column)
        })
    })
}

/// A projection of the columns `indices` of `schema`, under their names.
fn columns(schema: &Schema, indices: impl IntoIterator<Item = usize>) -> Vec<ProjectionExpr> {
    indices
        .into_iter()
        .map(|i| {
            let name = schema.field(i).name();
            ProjectionExpr {
                expr: Arc::new(PhysicalColumn::new(name, i)),
                alias: name.clone(),
            }
        })
        .collect()
}

/// `scan` reading only the columns `needed` (indices into its output);
/// `scan` itself where nothing can be left out.
fn narrowed(
    scan: &Arc<dyn ExecutionPlan>,
    needed: &BTreeSet<usize>,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let schema = scan.schema();
    let Some(source) = scan.downcast_ref::<DataSourceExec>() else {
        return Ok(Arc::clone(scan));
    };
    if needed.len() == schema.fields().len() {
        return Ok(Arc::clone(scan));
    }
    let projection =
        ProjectionExec::try_new(columns(&schema, needed.iter().copied()), Arc::clone(scan))?;
    Ok(match source.try_swapping_with_projection(&projection)? {
        Some(narrow) if narrow.schema().fields().len() == needed.len() => narrow,
        _ => Arc::clone(scan),
    })
}

impl PolicyEstimates {
    /// Drops the policies proven true by the scanned files' statistics, from
    /// a `[Projection ←] Filter ← DataSourceExec` chain, and the columns only
    /// they read. Returns the node unchanged where the proof fails.
    fn drop_proven(node: Arc<dyn ExecutionPlan>) -> DFResult<Transformed<Arc<dyn ExecutionPlan>>> {
        let (projection, filter) = if let Some(p) = node.downcast_ref::<ProjectionExec>() {
            match p.input().downcast_ref::<FilterExec>() {
                // A filter with its own projection is rewritten on its own.
                Some(f) if f.projection().is_none() => (Some(p), f),
                _ => return Ok(Transformed::no(node)),
            }
        } else if let Some(f) = node.downcast_ref::<FilterExec>() {
            (None, f)
        } else {
            return Ok(Transformed::no(node));
        };
        let Some(scan) = filter.input().downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let (policy, query) = policy_conjuncts(filter.predicate());
        if policy.is_empty() || filter.fetch().is_some() || !proven_by_files(scan, &policy) {
            return Ok(Transformed::no(node));
        }
        // The scan's columns still read: the query's predicates' and those
        // the filter passes on (its projection, the projection above it, or
        // all of them).
        let mut needed = BTreeSet::new();
        for conjunct in &query {
            needed.extend(collect_columns(conjunct).iter().map(|c| c.index()));
        }
        match (filter.projection(), projection) {
            (Some(own), _) => needed.extend(own.iter().copied()),
            (None, Some(above)) => {
                for e in above.expr() {
                    needed.extend(collect_columns(&e.expr).iter().map(|c| c.index()));
                }
            }
            (None, None) => needed.extend(0..filter.input().schema().fields().len()),
        }
        // Columns are found again by name: a scan's names are unique.
        let scan = narrowed(filter.input(), &needed)?;
        let schema = scan.schema();
        let input = filter.input().schema();
        let own: Option<Vec<usize>> = filter
            .projection()
            .as_ref()
            .map(|own| {
                own.iter()
                    .map(|&i| schema.index_of(input.field(i).name()))
                    .collect()
            })
            .transpose()?;
        let rows: Arc<dyn ExecutionPlan> = match (query.is_empty(), own) {
            (true, Some(own)) => Arc::new(ProjectionExec::try_new(columns(&schema, own), scan)?),
            (true, None) => scan,
            (false, own) => {
                let query = query
                    .into_iter()
                    .map(|q| reassign_expr_columns(q, &schema))
                    .collect::<DFResult<Vec<_>>>()?;
                Arc::new(
                    FilterExecBuilder::new(conjunction(query), scan)
                        .with_default_selectivity(filter.default_selectivity())
                        .with_batch_size(filter.batch_size())
                        .apply_projection(own)?
                        .build()?,
                )
            }
        };
        let rebuilt: Arc<dyn ExecutionPlan> = match projection {
            Some(above) => {
                let rows_schema = rows.schema();
                let exprs = above
                    .expr()
                    .iter()
                    .map(|e| {
                        Ok(ProjectionExpr {
                            expr: reassign_expr_columns(Arc::clone(&e.expr), &rows_schema)?,
                            alias: e.alias.clone(),
                        })
                    })
                    .collect::<DFResult<Vec<_>>>()?;
                Arc::new(ProjectionExec::try_new(exprs, rows)?)
            }
            None => rows,
        };
        Ok(Transformed::yes(rebuilt))
    }

    fn split(node: Arc<dyn ExecutionPlan>) -> DFResult<Transformed<Arc<dyn ExecutionPlan>>> {
        let Some(filter) = node.downcast_ref::<FilterExec>() else {
            return Ok(Transformed::no(node));
        };
        let (policy, query) = policy_conjuncts(filter.predicate());
        if policy.is_empty() || (query.is_empty() && filter.default_selectivity() == 100) {
            return Ok(Transformed::no(node));
        }
        let policy_filter = FilterExecBuilder::new(conjunction(policy), Arc::clone(filter.input()))
            .with_default_selectivity(100)
            .with_batch_size(filter.batch_size());
        let split = if query.is_empty() {
            // Keeps the filter's projection and fetch.
            FilterExecBuilder::from(filter)
                .with_default_selectivity(100)
                .build()?
        } else {
            FilterExecBuilder::from(filter)
                .with_input(Arc::new(policy_filter.build()?))
                .with_predicate(conjunction(query))
                .build()?
        };
        Ok(Transformed::yes(Arc::new(split)))
    }
}

impl PhysicalOptimizerRule for PolicyEstimates {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        // Top down, so a projection is met before the filter under it.
        plan.transform_down(|node| {
            let dropped = Self::drop_proven(node)?;
            if dropped.transformed {
                return Ok(dropped);
            }
            Self::split(dropped.data)
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "autolake_policy_estimates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `current_user` (SQL's niladic form, no parentheses) and `is_member('role')` for this principal: what row
/// policies and masks test.
pub(crate) fn identity_functions(
    governance: &Arc<Governance>,
    principal: &Principal,
) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(CurrentUser {
            name: principal.name.clone(),
            signature: Signature::nullary(Volatility::Stable),
        }),
        ScalarUDF::new_from_impl(IsMember {
            governance: Arc::clone(governance),
            principal: principal.clone(),
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Stable),
        }),
    ]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentUser {
    name: String,
    signature: Signature,
}

impl ScalarUDFImpl for CurrentUser {
    fn name(&self) -> &str {
        "current_user"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            self.name.clone(),
        ))))
    }
}

#[derive(Debug)]
struct IsMember {
    governance: Arc<Governance>,
    principal: Principal,
    signature: Signature,
}

impl PartialEq for IsMember {
    fn eq(&self, other: &Self) -> bool {
        self.principal == other.principal
    }
}

impl Eq for IsMember {}

impl std::hash::Hash for IsMember {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.principal.name.hash(state);
    }
}

impl ScalarUDFImpl for IsMember {
    fn name(&self) -> &str {
        "is_member"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let state = self.governance.cached();
        let test = |role: Option<&str>| role.map(|r| state.is_member(&self.principal, r));
        match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Utf8(role)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Boolean(test(role.as_deref())),
            )),
            ColumnarValue::Array(array) => {
                let roles = array
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| {
                        DataFusionError::Plan("is_member takes a role name string".to_string())
                    })?;
                let out: BooleanArray = roles.iter().map(test).collect();
                Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
            }
            other => Err(DataFusionError::Plan(format!(
                "is_member takes a role name string, got {}",
                other.data_type()
            ))),
        }
    }
}
