//! Cutting a planned query into what runs on the cluster and what runs
//! here, and the node that runs a part on the cluster.

use std::fmt;
use std::sync::Arc;

use ballista_core::extension::SessionConfigExt;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion_datasource::file_groups::FileGroup;
use datafusion_datasource::file_scan_config::FileScanConfig;
use datafusion_datasource::source::DataSourceExec;
use datafusion_proto::physical_plan::AsExecutionPlan;
use datafusion_proto::protobuf::PhysicalPlanNode;
use futures::TryStreamExt;

use super::AutoLakeCodec;
use crate::lake::{Lake, TableName};
use crate::settings::{ClusterAddress, unreachable_error};

/// Nodes that only watch rows go by on this process (the scan cache's
/// filler): left out of what goes to the cluster.
const LOCAL_TAPS: [&str; 1] = ["CacheFill"];

/// delta-rs's own scan nodes, which no codec of ours carries.
const DELTA_SCANS: [&str; 3] = ["DeltaScan", "DeltaScanExec", "DeltaScanMetaExec"];

/// `plan` with its largest encodable subtrees that read lake files replaced
/// by [`RemoteExec`]s for `address` (see the module docs of
/// [`crate::distributed`]).
pub(crate) fn distribute(
    plan: Arc<dyn ExecutionPlan>,
    address: &ClusterAddress,
    lake: &Lake,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let plan = plan
        .transform_up(|node| {
            if LOCAL_TAPS.contains(&node.name()) && node.children().len() == 1 {
                return Ok(Transformed::yes(Arc::clone(node.children()[0])));
            }
            match on_lake_store(&node, lake) {
                Some(scan) => Ok(Transformed::yes(scan)),
                None => Ok(Transformed::no(node)),
            }
        })?
        .data;
    refuse_delta_scans(&plan)?;
    split(plan, address)
}

fn split(
    plan: Arc<dyn ExecutionPlan>,
    address: &ClusterAddress,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    if reads_files(&plan)
        && !reads_other_stores(&plan)
        && !has_scalar_subquery(&plan)?
        && encodable(&plan)
    {
        return Ok(Arc::new(RemoteExec::new(plan, address.clone())));
    }
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    if children.is_empty() {
        return Ok(plan);
    }
    let mut changed = false;
    let mut split_children = Vec::with_capacity(children.len());
    for child in children {
        let new = split(Arc::clone(&child), address)?;
        changed |= !Arc::ptr_eq(&new, &child);
        split_children.push(new);
    }
    if changed {
        #[allow(deprecated)]
        plan.with_new_children(split_children)
    } else {
        Ok(plan)
    }
}

/// Whether a subtree scans files (lake tables): a plan over data this
/// process holds (system tables, VALUES) stays here.
fn reads_files(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let scans = plan
        .downcast_ref::<DataSourceExec>()
        .is_some_and(|s| s.data_source().downcast_ref::<FileScanConfig>().is_some());
    scans || plan.children().iter().any(|c| reads_files(c))
}

/// A scan delta-rs made through its own store for one lake table (its
/// change-data-feed reader, behind `table_changes`), made instead through
/// the lake's store that executors have, with the same files. delta-rs
/// names a table's store `delta-rs://` and the table's URL with `/` and
/// `:` as `-` (`deltalake_core::logstore::object_store_url`); lake tables
/// live at `<root>/tables/<schema>/<table>/`, and their names are plain
/// identifiers, so the schema is what comes before the first `-`.
fn on_lake_store(node: &Arc<dyn ExecutionPlan>, lake: &Lake) -> Option<Arc<dyn ExecutionPlan>> {
    let config = node
        .downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()?;
    let url = config.object_store_url.as_str();
    let tables = lake.root_url().join("tables/").ok()?;
    let prefix = format!(
        "delta-rs://{}-{}{}",
        tables.scheme(),
        tables.host_str().unwrap_or("-"),
        tables.path().replace(['/', ':'], "-")
    );
    let rest = url.strip_prefix(&prefix)?.trim_end_matches('/');
    let (schema, table) = rest.strip_suffix('-')?.split_once('-')?;
    if schema.is_empty() || table.is_empty() || table.contains('-') {
        return None;
    }
    let root = lake.table_path(&TableName::new(schema, table));
    let mut moved = config.clone();
    moved.object_store_url = lake.store_url().clone();
    moved.file_groups = config
        .file_groups
        .iter()
        .map(|group| {
            FileGroup::new(
                group
                    .iter()
                    .map(|file| {
                        let mut file = file.clone();
                        file.object_meta.location = root
                            .parts()
                            .chain(file.object_meta.location.parts())
                            .collect();
                        file
                    })
                    .collect(),
            )
        })
        .collect();
    Some(DataSourceExec::from_data_source(moved))
}

/// Whether a subtree scans files through an object store other than the
/// lake's (delta-rs registers one per table for its own reads, as
/// `table_changes` uses): executors know the lake's store only, so such a
/// scan stays here.
fn reads_other_stores(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let foreign = plan
        .downcast_ref::<DataSourceExec>()
        .and_then(|s| s.data_source().downcast_ref::<FileScanConfig>())
        .is_some_and(|config| config.object_store_url.as_str().split("://").next() != Some("lake"));
    foreign || plan.children().iter().any(|c| reads_other_stores(c))
}

/// Whether a subtree holds a scalar subquery or a use of one: Ballista
/// would cut it into stages apart from the node that computes the value,
/// which no executor can decode. Such a part runs here, its inputs there.
fn has_scalar_subquery(plan: &Arc<dyn ExecutionPlan>) -> DFResult<bool> {
    use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
    if plan.name() == "ScalarSubqueryExec" {
        return Ok(true);
    }
    let mut found = false;
    plan.apply_expressions(&mut |expr| {
        expr.apply(|e| {
            if e.is::<ScalarSubqueryExpr>() {
                found = true;
                Ok(TreeNodeRecursion::Stop)
            } else {
                Ok(TreeNodeRecursion::Continue)
            }
        })
    })?;
    if found {
        return Ok(true);
    }
    for child in plan.children() {
        if has_scalar_subquery(child)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether datafusion-proto (with our codec) can carry a subtree.
fn encodable(plan: &Arc<dyn ExecutionPlan>) -> bool {
    PhysicalPlanNode::try_from_physical_plan(Arc::clone(plan), &AutoLakeCodec::default()).is_ok()
}

/// A table read with delta-rs's own scan cannot run on the cluster.
fn refuse_delta_scans(plan: &Arc<dyn ExecutionPlan>) -> DFResult<()> {
    if DELTA_SCANS.contains(&plan.name()) {
        let shown = datafusion::physical_plan::displayable(plan.as_ref())
            .one_line()
            .to_string();
        return Err(DataFusionError::Plan(format!(
            "a table in this query needs delta-rs's own scan (it uses deletion vectors or \
             column mapping), which cannot run on the cluster: {}; run it without \
             autolake.cluster (SET autolake.cluster = '')",
            shown.trim()
        )));
    }
    plan.children().into_iter().try_for_each(refuse_delta_scans)
}

/// A part of a plan run on the cluster: submitted to the scheduler when
/// executed, its result read back as one stream.
#[derive(Debug)]
pub(crate) struct RemoteExec {
    plan: Arc<dyn ExecutionPlan>,
    address: ClusterAddress,
    properties: Arc<PlanProperties>,
}

impl RemoteExec {
    pub(crate) fn new(plan: Arc<dyn ExecutionPlan>, address: ClusterAddress) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(plan.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            plan,
            address,
            properties,
        }
    }
}

impl DisplayAs for RemoteExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "RemoteExec: cluster={}, plan=[{}]",
            self.address,
            datafusion::physical_plan::displayable(self.plan.as_ref()).one_line()
        )
    }
}

/// A leaf of the local plan: the part it runs is planned already and is
/// not this process's to optimise or run.
impl ExecutionPlan for RemoteExec {
    fn name(&self) -> &str {
        "RemoteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "RemoteExec has no inputs".to_string(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "RemoteExec has one partition, asked for {partition}"
            )));
        }
        let plan = Arc::clone(&self.plan);
        let address = self.address.clone();
        let config = context.session_config().clone().upgrade_for_ballista();
        let session_id = context.session_id();
        let schema = plan.schema();
        let results = futures::stream::once(async move {
            let ballista = config.ballista_config();
            let codec = AutoLakeCodec::default();
            ballista_core::execution_plans::execute_physical_plan::<PhysicalPlanNode>(
                address.url(),
                &ballista,
                plan,
                &codec,
                session_id,
                config,
            )
            .await
            .map_err(|e| cluster_error(&address, e))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, results)))
    }
}

/// A cluster's failure, saying which cluster.
fn cluster_error(address: &ClusterAddress, e: DataFusionError) -> DataFusionError {
    let text = e.to_string();
    if text.contains("transport error") || text.contains("Connection refused") {
        DataFusionError::External(Box::new(unreachable_error(address, "connection refused")))
    } else {
        DataFusionError::Execution(format!("on the cluster at {address}: {text}"))
    }
}
