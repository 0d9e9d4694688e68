//! Bulk ingest (`DoPut` with `CommandStatementIngest`): uploaded Arrow
//! batches written into a lake table in one Delta commit, creating,
//! appending to or replacing the table as the client asks.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow_flight::sql::{TableExistsOption, TableNotExistOption};
use deltalake::protocol::SaveMode;

use crate::error::{Error, Result};
use crate::lake::TableName;
use crate::lake::write::write_plan;
use crate::principal::{Access, Action, Object};
use crate::session::Session;

/// Writes `batches` into `table`; the number of rows written.
pub(crate) async fn ingest(
    session: &Session,
    table: &TableName,
    batches: Vec<RecordBatch>,
    if_not_exist: TableNotExistOption,
    if_exists: TableExistsOption,
) -> Result<u64> {
    crate::lake::validate_name("schema", &table.schema)?;
    crate::lake::validate_name("table", &table.table)?;
    if table.schema == crate::lake::SYSTEM_SCHEMA {
        return Err(Error::ReadOnly(table.to_string()));
    }
    let lake = session.engine.lake();
    if !lake.schema_exists(&table.schema).await? {
        return Err(Error::NotFound {
            kind: "schema",
            name: table.schema.clone(),
        });
    }
    let existing = lake.load_table(table).await?;
    let (handle, mode, replace, mut actions) = match (existing, if_exists, if_not_exist) {
        (Some(_), TableExistsOption::Fail, _) => {
            return Err(Error::AlreadyExists {
                kind: "table",
                name: table.to_string(),
            });
        }
        (Some(t), TableExistsOption::Append, _) => {
            (t, SaveMode::Append, false, vec![Action::Insert])
        }
        (Some(t), TableExistsOption::Replace, _) => (
            t,
            SaveMode::Overwrite,
            true,
            vec![Action::Delete, Action::Insert],
        ),
        (None, _, TableNotExistOption::Create) => (
            lake.table_handle(table)?,
            SaveMode::Append,
            false,
            vec![Action::Create, Action::Insert],
        ),
        (None, _, TableNotExistOption::Fail) => {
            return Err(Error::NotFound {
                kind: "table",
                name: table.to_string(),
            });
        }
        (Some(_), TableExistsOption::Unspecified, _)
        | (None, _, TableNotExistOption::Unspecified) => {
            return Err(Error::invalid(
                "ingest needs table definition options: what to do when the table exists \
                 (fail, append, replace) and when it does not (create, fail)",
            ));
        }
    };
    let accesses: Vec<Access> = actions
        .drain(..)
        .map(|action| Access {
            action,
            object: Object::Table(table.clone()),
        })
        .collect();
    session.authorize(&accesses).await?;
    if replace {
        // Replacing reaches rows a bounded user cannot see.
        let state = session.engine.governance().cached();
        crate::exec::governance::bounded_predicate(
            &state,
            &session.principal,
            table,
            "INSERT OVERWRITE",
            &[],
        )?;
    }
    let Some(first) = batches.first() else {
        return Err(Error::invalid(format!(
            "nothing to ingest into {table}: the upload held no record batch"
        )));
    };
    let schema = first.schema();
    let plan = session
        .ctx
        .read_batches(batches.clone())
        .map_err(|e| {
            Error::invalid(format!(
                "the uploaded batches do not share one schema ({schema}): {e}"
            ))
        })?
        .into_unoptimized_plan();
    let stamp = session.stamp("INGEST");
    let (_, rows) = write_plan(
        handle,
        table,
        plan,
        Arc::new(session.ctx.state()),
        mode,
        None,
        replace,
        &stamp,
    )
    .await?;
    if accesses.iter().any(|a| a.action == Action::Create) {
        session
            .engine
            .governance()
            .own(
                &crate::governance::Securable::table(table),
                &session.principal.name,
            )
            .await?;
    }
    Ok(rows)
}
