//! Names written in SQL, resolved with identifier semantics: the one place
//! that decides what `t`, `s.t` and `lake.s.t` name, for statements, jobs
//! and monitors alike.

use autolake_sql::sqlparser::ast::{Ident, ObjectName, ObjectNamePart, TableFactor};
use datafusion::common::TableReference;

use crate::error::{Error, Result};
use crate::lake::{DEFAULT_SCHEMA, LAKE_CATALOG, SYSTEM_SCHEMA, TableName};
use crate::principal::Object;

/// A table's column names, for messages (`a, b, c`).
pub(crate) fn column_names(fields: &arrow::datatypes::Fields) -> String {
    fields
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQL identifier semantics: unquoted names are case-insensitive (folded to
/// lower case, as DataFusion does), quoted names are exact.
pub(crate) fn ident_name(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// One part of a dotted name, with identifier semantics.
pub(crate) fn ident_name_part(part: &ObjectNamePart) -> Result<String> {
    match part {
        ObjectNamePart::Identifier(ident) => Ok(ident_name(ident)),
        other => Err(Error::invalid(format!("unsupported name part {other}"))),
    }
}

/// The name of an object named by one identifier (a monitor, a model).
pub(crate) fn single_name(kind: &str, name: &ObjectName) -> Result<String> {
    let [part] = name.0.as_slice() else {
        return Err(Error::invalid(format!(
            "invalid {kind} name {name}: expected a single name"
        )));
    };
    let name = ident_name_part(part)?;
    crate::lake::validate_name(kind, &name)?;
    Ok(name)
}

pub(crate) fn name_parts(name: &ObjectName) -> Result<Vec<String>> {
    name.0.iter().map(ident_name_part).collect()
}

/// Resolves a table name written in SQL to a lake table, refusing the
/// read-only system schema and other catalogs.
pub(crate) fn lake_table(name: &ObjectName) -> Result<TableName> {
    let parts = name_parts(name)?;
    let (schema, table) = match parts.as_slice() {
        [t] => (DEFAULT_SCHEMA.to_string(), t.clone()),
        [s, t] => (s.clone(), t.clone()),
        [c, s, t] if c == LAKE_CATALOG => (s.clone(), t.clone()),
        [c, _, _] => {
            return Err(Error::invalid(format!(
                "{name} is not a lake table: catalog '{c}' is not the lake (expected '{LAKE_CATALOG}')"
            )));
        }
        _ => {
            return Err(Error::invalid(format!(
                "invalid table name {name}: expected table, schema.table or lake.schema.table"
            )));
        }
    };
    if schema == SYSTEM_SCHEMA {
        return Err(Error::ReadOnly(format!("{SYSTEM_SCHEMA}.{table}")));
    }
    crate::lake::validate_name("table", &table)?;
    Ok(TableName::new(schema, table))
}

/// Resolves a schema name written in SQL (`s` or `lake.s`).
pub(crate) fn lake_schema(name: &ObjectName) -> Result<String> {
    let parts = name_parts(name)?;
    let schema = match parts.as_slice() {
        [s] => s.clone(),
        [c, s] if c == LAKE_CATALOG => s.clone(),
        _ => {
            return Err(Error::invalid(format!(
                "invalid schema name {name}: expected schema or lake.schema"
            )));
        }
    };
    if schema == SYSTEM_SCHEMA {
        return Err(Error::ReadOnly(SYSTEM_SCHEMA.to_string()));
    }
    crate::lake::validate_name("schema", &schema)?;
    Ok(schema)
}

/// The object a table reference names: a lake table, a system table or
/// something outside the lake.
pub(crate) fn read_object(r: &TableReference) -> Object {
    let resolved = r.clone().resolve(LAKE_CATALOG, DEFAULT_SCHEMA);
    if resolved.catalog.as_ref() == LAKE_CATALOG && resolved.schema.as_ref() == SYSTEM_SCHEMA {
        Object::System(resolved.table.to_string())
    } else if resolved.catalog.as_ref() == LAKE_CATALOG {
        Object::Table(TableName::new(
            resolved.schema.as_ref(),
            resolved.table.as_ref(),
        ))
    } else {
        Object::Other(resolved.to_string())
    }
}

/// The single table a statement targets.
pub(crate) fn write_target(factor: &TableFactor) -> Result<ObjectName> {
    match factor {
        TableFactor::Table {
            name,
            version: None,
            args: None,
            ..
        } => Ok(name.clone()),
        TableFactor::Table { name, .. } => Err(Error::invalid(format!(
            "{name}: cannot write to a past version or a table function"
        ))),
        other => Err(Error::invalid(format!(
            "cannot write to {other}: name a lake table"
        ))),
    }
}
