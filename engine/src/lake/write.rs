//! The one place lake writes are committed.
//!
//! Every write statement becomes exactly one Delta commit made by one
//! delta-rs operation builder. [`CommitStamp`] is applied to each, so the
//! commit info names the user (`userName`), the statement kind and the
//! interface; delta-rs adds its own operation and operation metrics. Data
//! files are written before the commit, so a statement that fails midway
//! leaves the table at its previous version (orphaned files are removed by
//! `VACUUM`). Concurrent writers are resolved by Delta's optimistic
//! concurrency: delta-rs retries non-conflicting commits (appends) and a
//! real conflict surfaces as [`Error::Conflict`].
//!
//! Tables are created with the change data feed on
//! (`delta.enableChangeDataFeed`), so `table_changes` and jobs see updates
//! and deletes as such, not as rewritten files.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use datafusion::catalog::Session as DFSession;
use datafusion::logical_expr::LogicalPlan;
use deltalake::TableProperty;
use deltalake::kernel::StructField;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use serde_json::{Value, json};

use super::TableName;
use crate::error::{Error, Result};
use crate::principal::{Interface, Principal};

/// Who is writing and why: stamped on every commit.
#[derive(Debug, Clone)]
pub struct CommitStamp {
    /// The user (Delta `userName`).
    pub user: String,
    /// The statement kind (`INSERT`, `MERGE`, …).
    pub statement: String,
    /// The interface the statement came through.
    pub interface: Interface,
    /// Delta application transactions (app id, version) committed with
    /// the data: what makes a sync or job run exactly-once.
    pub transactions: Vec<(String, i64)>,
    /// More commit-info entries (`autolake.sync.*`, …).
    pub extra: Vec<(String, Value)>,
}

impl CommitStamp {
    /// A stamp for `principal` running a statement of `kind`.
    pub fn new(principal: &Principal, kind: &str, interface: Interface) -> Self {
        Self {
            user: principal.name.clone(),
            statement: kind.to_string(),
            interface,
            transactions: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// The same stamp carrying one more application transaction.
    pub fn with_transaction(mut self, app_id: impl Into<String>, version: i64) -> Self {
        self.transactions.push((app_id.into(), version));
        self
    }

    /// The same stamp with one more commit-info entry.
    pub fn with_info(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.push((key.into(), value));
        self
    }

    /// Commit properties carrying the stamp.
    pub fn properties(&self) -> CommitProperties {
        let mut metadata = vec![
            ("userName".to_string(), json!(self.user)),
            ("autolake.statement".to_string(), json!(self.statement)),
            (
                "autolake.interface".to_string(),
                json!(self.interface.as_str()),
            ),
        ];
        metadata.extend(self.extra.iter().cloned());
        let now = chrono::Utc::now().timestamp_millis();
        self.transactions.iter().fold(
            CommitProperties::default().with_metadata(metadata),
            |properties, (app, version)| {
                properties.with_application_transaction(
                    deltalake::kernel::Transaction::new_with_last_update(app, *version, Some(now)),
                )
            },
        )
    }
}

/// Converts an Arrow schema into Delta columns, with a clear error for
/// types Delta cannot store.
pub fn delta_fields(table: &TableName, schema: &Schema) -> Result<Vec<StructField>> {
    let stored = super::types::storage_schema(table, schema)?;
    stored
        .fields()
        .iter()
        .map(|f| {
            f.as_ref().try_into_kernel().map_err(|e| {
                Error::invalid(format!(
                    "column {} of {table} has type {}, which a Delta table cannot store ({e})",
                    f.name(),
                    f.data_type()
                ))
            })
        })
        .collect()
}

/// Creates an empty table (version 0) with `properties` in its
/// configuration; replacing a table replaces its configuration too.
pub async fn create_table(
    handle: DeltaTable,
    name: &TableName,
    schema: &Schema,
    partition_by: Vec<String>,
    replace: bool,
    properties: Vec<(String, String)>,
    stamp: &CommitStamp,
) -> Result<DeltaTable> {
    let fields = delta_fields(name, schema)?;
    let builder = handle
        .create()
        .with_table_name(&name.table)
        .with_columns(fields)
        .with_partition_columns(partition_by)
        .with_configuration_property(TableProperty::EnableChangeDataFeed, Some("true"))
        .with_configuration(properties.into_iter().map(|(k, v)| (k, Some(v))))
        // `autolake.*` properties are ours: delta-rs refuses keys it does
        // not know unless told.
        .with_raise_if_key_not_exists(false)
        .with_save_mode(if replace {
            SaveMode::Overwrite
        } else {
            SaveMode::ErrorIfExists
        })
        .with_commit_properties(stamp.properties());
    builder.await.map_err(|e| write_error(name, e))
}

/// Writes the rows of `plan` into a table in one commit; when `handle` is
/// not loaded (a new table) the same commit creates it. An existing table
/// must be passed loaded.
#[allow(clippy::too_many_arguments)]
pub async fn write_plan(
    handle: DeltaTable,
    name: &TableName,
    plan: LogicalPlan,
    state: Arc<dyn DFSession>,
    mode: SaveMode,
    partition_by: Option<Vec<String>>,
    replace_schema: bool,
    stamp: &CommitStamp,
) -> Result<(DeltaTable, u64)> {
    let is_new = handle.version().is_none();
    // Columns in the types the lake stores them as (see `types`).
    let plan = super::types::conform(name, plan)?;
    let mut properties = stamp.properties();
    if is_new {
        // Creating: a concurrent creator winning version 0 is a conflict to
        // report, never a commit to retry on top of the other table.
        properties = properties.with_max_retries(0);
    }
    let mut builder = handle
        .write(Vec::new())
        .with_input_plan(plan)
        .with_session_state(state)
        .with_save_mode(mode)
        .with_commit_properties(properties);
    if is_new {
        builder = builder
            .with_table_name(&name.table)
            .with_configuration([(TableProperty::EnableChangeDataFeed.as_ref(), Some("true"))]);
    }
    if let Some(cols) = partition_by {
        builder = builder.with_partition_columns(cols);
    }
    if replace_schema {
        builder = builder.with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite);
    } else if !is_new && !stamp.transactions.is_empty() {
        // Syncs and jobs follow their source: columns it gained are added.
        builder = builder.with_schema_mode(deltalake::operations::write::SchemaMode::Merge);
    }
    let table = builder.await.map_err(|e| write_error(name, e))?;
    let rows = last_metric(&table, "num_added_rows").await?;
    Ok((table, rows))
}

/// Appends `batch` to a small service table (a `system` table, a table of
/// rejected messages) in one commit, creating the table with its first rows.
pub async fn append_system(
    lake: &super::Lake,
    ctx: &datafusion::prelude::SessionContext,
    name: &TableName,
    batch: RecordBatch,
    stamp: &CommitStamp,
) -> Result<()> {
    for attempt in 0..2 {
        let handle = match lake.load_table(name).await? {
            Some(t) => t,
            None => lake.table_handle(name)?,
        };
        let plan = ctx.read_batch(batch.clone())?.into_unoptimized_plan();
        match write_plan(
            handle,
            name,
            plan,
            Arc::new(ctx.state()),
            SaveMode::Append,
            None,
            false,
            stamp,
        )
        .await
        {
            Ok(_) => return Ok(()),
            // Another process created the table first: append to it.
            Err(Error::Conflict { .. }) | Err(Error::AlreadyExists { .. }) if attempt == 0 => {}
            Err(e) => return Err(e),
        }
    }
    Err(Error::internal(format!("{name} could not be written")))
}

/// Reads an operation metric of the table's latest commit.
pub async fn last_metric(table: &DeltaTable, metric: &str) -> Result<u64> {
    let infos: Vec<_> = table.history(Some(1)).try_collect().await?;
    Ok(infos
        .first()
        .and_then(|i| i.info.get("operationMetrics"))
        .and_then(|m| m.get(metric))
        .and_then(Value::as_u64)
        .unwrap_or(0))
}

/// Turns delta-rs write failures into messages that name the table.
pub fn write_error(name: &TableName, e: DeltaTableError) -> Error {
    match e {
        DeltaTableError::Transaction { source } => Error::Conflict {
            table: name.to_string(),
            reason: source.to_string(),
        },
        DeltaTableError::SchemaMismatch { msg } => {
            Error::invalid(format!("rows do not match the schema of {name}: {msg}"))
        }
        DeltaTableError::VersionAlreadyExists(0) => Error::AlreadyExists {
            kind: "table",
            name: name.to_string(),
        },
        other => {
            let err = Error::from(other);
            let msg = crate::error::strip_backtrace(&err.to_string());
            // delta-rs's "a table already exists at that location" is a
            // private type, seen only through its message.
            if msg.contains("already exists") {
                Error::AlreadyExists {
                    kind: "table",
                    name: name.to_string(),
                }
            } else {
                Error::invalid(format!("writing {name} failed: {msg}"))
            }
        }
    }
}
