//! The provider every lake table is read through.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session as DFSession, TableProvider};
use datafusion::common::{Constraints, Statistics};
use datafusion::datasource::TableType;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::TableName;
use super::keys::Keys;

/// A lake table's provider, carrying the table's name: how governance
/// recognises lake tables in a plan (see `governance::boundaries`).
#[derive(Debug)]
pub(crate) struct LakeTable {
    pub(crate) name: TableName,
    pub(crate) inner: Arc<dyn TableProvider>,
    /// Whether privileges, row policies and masks were applied to it.
    pub(crate) governed: bool,
    /// Its informational keys, for the planner (see [`super::keys`]).
    pub(crate) constraints: Option<Constraints>,
}

impl LakeTable {
    /// Wraps the provider reading `name`; no key is declared (a change
    /// feed or a window repeats a table's keys).
    pub(crate) fn new(name: TableName, inner: Arc<dyn TableProvider>) -> Self {
        Self {
            name,
            inner,
            governed: false,
            constraints: None,
        }
    }

    /// The same table declaring `keys` to the planner.
    pub(crate) fn keyed(mut self, keys: &Keys) -> Self {
        self.constraints = keys.constraints(self.inner.schema().as_ref());
        self
    }
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.constraints.as_ref()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        self.inner.get_logical_plan()
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.inner.get_column_default(column)
    }

    async fn scan(
        &self,
        state: &dyn DFSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn insert_into(
        &self,
        state: &dyn DFSession,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.inner.insert_into(state, input, insert_op).await
    }
}
