//! Informational keys: `PRIMARY KEY` and `UNIQUE` declared on a lake table.
//!
//! As in DataFusion itself (a `MemTable` carries its `Constraints` without
//! checking them) and in the warehouses that keep keys on open table
//! formats (Databricks, Snowflake, BigQuery), keys are declarations, not
//! checks: no write verifies them. The planner uses them as functional
//! dependencies — a correlated scalar subquery whose filter binds the whole
//! key returns at most one row, `GROUP BY` the key may select the other
//! columns — so plain DataFusion SQL that depends on them keeps working on
//! lake tables.
//!
//! They live in the Delta table's configuration under [`KEYS_PROPERTY`],
//! as JSON naming the columns (`{"primary_key":["id"],"unique":[["a","b"]]}`),
//! so they travel with the table and survive appends, merges and schema
//! evolution. A key naming a column the table no longer has is dropped
//! when the table is read: a stale key never reaches the planner.

use std::collections::HashMap;

use arrow::datatypes::Schema;
use datafusion::common::{Constraint, Constraints};
use deltalake::DeltaTable;
use serde::{Deserialize, Serialize};

use super::TableName;
use super::write::{CommitStamp, write_error};
use crate::error::Result;

/// The table property holding a table's keys.
pub const KEYS_PROPERTY: &str = "autolake.keys";

/// A table's keys, by column name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    primary_key: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unique: Vec<Vec<String>>,
}

impl Keys {
    /// The keys DataFusion planned for a new table of `schema`.
    pub fn from_constraints(constraints: &Constraints, schema: &Schema) -> Self {
        let names = |indices: &[usize]| -> Vec<String> {
            indices
                .iter()
                .filter_map(|&i| schema.fields().get(i).map(|f| f.name().clone()))
                .collect()
        };
        let mut keys = Self::default();
        for constraint in constraints.iter() {
            match constraint {
                Constraint::PrimaryKey(indices) => keys.primary_key = Some(names(indices)),
                Constraint::Unique(indices) => keys.unique.push(names(indices)),
            }
        }
        keys
    }

    /// The keys recorded on `table` as loaded (none when the property is
    /// absent or not understood).
    pub fn of_table(table: &DeltaTable) -> Self {
        let Ok(snapshot) = table.snapshot() else {
            return Self::default();
        };
        snapshot
            .metadata()
            .configuration()
            .get(KEYS_PROPERTY)
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default()
    }

    /// Whether no key is declared.
    pub fn is_empty(&self) -> bool {
        self.primary_key.is_none() && self.unique.is_empty()
    }

    /// The table configuration recording these keys.
    pub fn property(&self) -> (String, String) {
        let json = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string());
        (KEYS_PROPERTY.to_string(), json)
    }

    /// The constraints the planner sees for a table of `schema`: each key
    /// whose columns all still exist, by index.
    pub fn constraints(&self, schema: &Schema) -> Option<Constraints> {
        let indices = |names: &[String]| -> Option<Vec<usize>> {
            if names.is_empty() {
                return None;
            }
            names.iter().map(|n| schema.index_of(n).ok()).collect()
        };
        let mut out = Vec::new();
        if let Some(pk) = self.primary_key.as_deref().and_then(indices) {
            out.push(Constraint::PrimaryKey(pk));
        }
        out.extend(
            self.unique
                .iter()
                .filter_map(|u| indices(u))
                .map(Constraint::Unique),
        );
        (!out.is_empty()).then(|| Constraints::new_unverified(out))
    }

    /// Records these keys on `table` in a commit of their own (an empty set
    /// clears them).
    pub async fn record(
        &self,
        table: DeltaTable,
        name: &TableName,
        stamp: &CommitStamp,
    ) -> Result<DeltaTable> {
        let (key, value) = self.property();
        table
            .set_tbl_properties()
            .with_properties(HashMap::from([(key, value)]))
            // Our own property: delta-rs refuses keys it does not know unless told.
            .with_raise_if_not_exists(false)
            .with_commit_properties(stamp.properties())
            .await
            .map_err(|e| write_error(name, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};

    fn schema(names: &[&str]) -> Schema {
        Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Int32, true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn keys_follow_columns_by_name() {
        let created = schema(&["id", "a", "b"]);
        let planned = Constraints::new_unverified(vec![
            Constraint::PrimaryKey(vec![0]),
            Constraint::Unique(vec![1, 2]),
        ]);
        let keys = Keys::from_constraints(&planned, &created);
        let (_, json) = keys.property();
        assert_eq!(json, r#"{"primary_key":["id"],"unique":[["a","b"]]}"#);
        let back: Keys = serde_json::from_str(&json).unwrap();
        assert_eq!(back, keys);

        // Reordered columns: the same keys, by the new indices.
        let evolved = schema(&["b", "id", "a", "extra"]);
        let c = back.constraints(&evolved).unwrap();
        assert_eq!(
            c.iter().cloned().collect::<Vec<_>>(),
            vec![
                Constraint::PrimaryKey(vec![1]),
                Constraint::Unique(vec![2, 0])
            ]
        );
        // A key over a column that is gone is dropped, not half-kept.
        let dropped = schema(&["id", "a"]);
        let c = back.constraints(&dropped).unwrap();
        assert_eq!(
            c.iter().cloned().collect::<Vec<_>>(),
            vec![Constraint::PrimaryKey(vec![0])]
        );
        assert!(Keys::default().constraints(&created).is_none());
        assert!(Keys::default().is_empty());
    }
}
