//! `system.grants`: one row per granted privilege and per owned object; read
//! by admins and auditors only.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;

use super::table::{SystemTable, strings, utc_millis};
use crate::error::Result;
use crate::governance::{Governance, Holder};

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
