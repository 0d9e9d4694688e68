//! Exactly-once bookkeeping, written once for every writer that needs it.
//!
//! A writer that must never apply the same unit of work twice (a source
//! sync run, a stream read, a job run, an audit journal taken over after a
//! crash) names itself with an application id and numbers its units. The
//! unit's number is committed in the same Delta commit as its data, as a
//! Delta application transaction (`txn` action, through
//! [`CommitStamp::with_transaction`](super::write::CommitStamp::with_transaction)),
//! so after any crash the table itself says which units landed:
//! [`committed`] reads it, and a writer resumes at the next unit. This is
//! how Spark Structured Streaming's Delta sink and delta-rs's own
//! `txn` support are meant to be used.
//!
//! When a writer needs more than the number (the inputs a job run consumed,
//! the rows a sync run wrote), it finds the commit that carried the unit
//! with [`find_commit`]: the log is read newest first, one commit at a time,
//! until the commit is found, so the common case (the unit is the latest
//! commit) reads one file. When the commit is no longer in the log (its file
//! removed by log retention) the answer is an error naming the unit and the
//! table, never a guess: one behaviour for every writer.

use std::collections::HashMap;

use deltalake::DeltaTable;
use deltalake::kernel::{Action, CommitInfo};
use serde_json::Value;

use crate::error::{Error, Result};

/// The application id of a source table synced into the lake.
pub(crate) fn sync_app(source: &str) -> String {
    format!("autolake.sync:{source}")
}

/// The application id of a message stream read into the lake.
pub(crate) fn stream_app(source: &str) -> String {
    format!("autolake.stream:{source}")
}

/// The application id of a job's commits (the id tells apart a job made
/// again under the same name).
pub(crate) fn job_app(name: &str, id: &str) -> String {
    format!("autolake.job:{name}:{id}")
}

/// The application id recording how much of an audit journal is committed.
pub(crate) fn journal_app(id: &str) -> String {
    format!("autolake.audit:{id}")
}

/// The last unit of `app` committed to `table`, if any.
pub(crate) async fn committed(table: &DeltaTable, app: &str) -> Result<Option<i64>> {
    Ok(table
        .snapshot()?
        .transaction_version(table.log_store().as_ref(), app)
        .await?)
}

/// The last unit of `app` committed to `table`, 0 when none (or no table).
pub(crate) async fn committed_or_zero(table: Option<&DeltaTable>, app: &str) -> Result<i64> {
    match table {
        Some(t) => Ok(committed(t, app).await?.unwrap_or(0)),
        None => Ok(0),
    }
}

/// A commit found in a table's log.
#[derive(Debug)]
pub(crate) struct FoundCommit {
    /// The table version the commit made.
    pub(crate) version: i64,
    /// Its commit info (`userName`, `operationMetrics`, `autolake.*`).
    pub(crate) info: CommitInfo,
}

impl FoundCommit {
    /// An entry of the commit info.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.info.info.get(key)
    }

    /// An operation metric of the commit, 0 when absent.
    pub(crate) fn metric(&self, key: &str) -> i64 {
        self.get("operationMetrics")
            .and_then(|m| m.get(key))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// The user who made the commit.
    pub(crate) fn user(&self) -> String {
        self.info
            .user_name
            .clone()
            .or_else(|| {
                self.get("userName")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }
}

/// Whether a commit's info holds each `(key, value)` of `marks`.
pub(crate) fn marked(info: &HashMap<String, Value>, marks: &[(&str, Value)]) -> bool {
    marks.iter().all(|(k, v)| info.get(*k) == Some(v))
}

/// The newest commit of `table` whose info carries every mark, searched
/// newest first down to version 0. `unit` names what is looked for in the
/// error when no such commit is left in the log.
pub(crate) async fn find_commit(
    table: &DeltaTable,
    unit: &str,
    marks: &[(&str, Value)],
) -> Result<FoundCommit> {
    let store = table.log_store();
    let latest = table.version().map_or(-1, |v| v as i64);
    let mut version = latest;
    while version >= 0 {
        // A missing file: the older log is gone (log retention).
        let Some(bytes) = store.read_commit_entry(version as u64).await? else {
            break;
        };
        let actions = deltalake::logstore::get_actions(version as u64, &bytes)?;
        let info = actions.into_iter().find_map(|a| match a {
            Action::CommitInfo(info) => Some(info),
            _ => None,
        });
        if let Some(info) = info
            && marked(&info.info, marks)
        {
            return Ok(FoundCommit { version, info });
        }
        version -= 1;
    }
    Err(Error::internal(format!(
        "{unit} is recorded as committed to {}, but its commit is not in the table's log (searched versions {}..={latest}); the log was cleaned up past it",
        table.table_url(),
        version + 1
    )))
}
