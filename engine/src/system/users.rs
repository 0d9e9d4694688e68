//! `system.users`: name, roles, created_at (never a password hash); read by
//! admins and auditors only.

use std::sync::Arc;

use arrow::array::{RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::table::{SystemTable, strings, utc_millis};
use crate::error::Result;
use crate::governance::accounts::UserStore;

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
