//! `system.users` and `system.grants`: governance state as tables (read by
//! admins and auditors only; see [`super::PROTECTED_SYSTEM_TABLES`]).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;

use super::{Governance, Holder};
use crate::error::Result;
use crate::lake::system::SystemTable;
use crate::serve::users::UserStore;

fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn strings(values: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

/// `system.users`: name, roles, created_at (never a password hash).
#[derive(Debug)]
pub(crate) struct UsersTable {
    pub(crate) users: UserStore,
}

#[async_trait]
impl SystemTable for UsersTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("roles", DataType::Utf8, false),
            Field::new("created_at", utc_millis(), false),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let users = self.users.list().await?;
        let batch = RecordBatch::try_new(
            self.schema(),
            vec![
                strings(users.iter().map(|u| u.name.clone()).collect()),
                strings(users.iter().map(|u| u.roles.join(",")).collect()),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(
                        users.iter().map(|u| u.created_at.timestamp_millis()),
                    )
                    .with_timezone("UTC"),
                ),
            ],
        )?;
        Ok(vec![batch])
    }
}

/// grantee type, grantee, privilege, object type, object, grantor, granted at.
type GrantRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
);

/// `system.grants`: one row per granted privilege and per owned object.
#[derive(Debug)]
pub(crate) struct GrantsTable {
    pub(crate) governance: Arc<Governance>,
}

#[async_trait]
impl SystemTable for GrantsTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("grantee_type", DataType::Utf8, false),
            Field::new("grantee", DataType::Utf8, false),
            Field::new("privilege", DataType::Utf8, false),
            Field::new("object_type", DataType::Utf8, false),
            Field::new("object", DataType::Utf8, false),
            Field::new("grantor", DataType::Utf8, true),
            Field::new("granted_at", utc_millis(), true),
        ]))
    }

    async fn rows(&self) -> Result<Vec<RecordBatch>> {
        let state = self.governance.state().await?;
        let mut rows: Vec<GrantRow> = state
            .grants
            .iter()
            .map(|g| {
                let (kind, name) = match &g.holder {
                    Holder::User(u) => ("user", u.clone()),
                    Holder::Role(r) => ("role", r.clone()),
                };
                (
                    kind.to_string(),
                    name,
                    g.privilege.as_str().to_string(),
                    g.object.kind().to_string(),
                    g.object.name().to_string(),
                    Some(g.grantor.clone()),
                    Some(g.granted_at.timestamp_millis()),
                )
            })
            .collect();
        rows.extend(state.owners.iter().map(|(object, owner)| {
            (
                "user".to_string(),
                owner.clone(),
                "OWNER".to_string(),
                object.kind().to_string(),
                object.name().to_string(),
                None,
                None,
            )
        }));
        rows.sort();
        let batch = RecordBatch::try_new(
            self.schema(),
            vec![
                strings(rows.iter().map(|r| r.0.clone()).collect()),
                strings(rows.iter().map(|r| r.1.clone()).collect()),
                strings(rows.iter().map(|r| r.2.clone()).collect()),
                strings(rows.iter().map(|r| r.3.clone()).collect()),
                strings(rows.iter().map(|r| r.4.clone()).collect()),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.5.clone()).collect::<Vec<_>>(),
                )),
                Arc::new(
                    TimestampMillisecondArray::from(rows.iter().map(|r| r.6).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
            ],
        )?;
        Ok(vec![batch])
    }
}
