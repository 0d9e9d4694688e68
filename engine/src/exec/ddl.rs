//! Lake DDL: schemas and tables (`CREATE`, `CREATE … AS SELECT`, `ALTER
//! TABLE … ADD COLUMN`, `DROP`).
//!
//! Column types come from DataFusion's own SQL type mapping: the statement
//! (minus the Delta-only `PARTITIONED BY`) is planned by DataFusion and the
//! resulting Arrow schema becomes the Delta schema, so `INT`, `VARCHAR`,
//! `DECIMAL(p,s)`, `TIMESTAMP`, … mean in a lake table what they mean in a
//! query.

use std::sync::Arc;

use autolake_sql::sqlparser::ast::{self, ObjectName, SchemaName};
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::sql::parser::Statement as DFStatement;
use deltalake::protocol::SaveMode;

use super::query::{count_result, done};
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::lake::keys::Keys;
use crate::lake::write;
use crate::lake::{DEFAULT_SCHEMA, LAKE_CATALOG, TableName};
use crate::names::{ident_name, lake_schema, lake_table};

pub(super) fn schema_object_name(name: &SchemaName) -> ObjectName {
    match name {
        SchemaName::Simple(n) | SchemaName::NamedAuthorization(n, _) => n.clone(),
        SchemaName::UnnamedAuthorization(i) => ObjectName::from(vec![i.clone()]),
    }
}

pub(super) async fn create_schema(
    cx: &StatementContext,
    name: &SchemaName,
    if_not_exists: bool,
) -> Result<StatementResult> {
    let schema = lake_schema(&schema_object_name(name))?;
    let created = cx
        .engine
        .lake()
        .create_schema(&schema, &cx.principal.name)
        .await?;
    if !created && !if_not_exists {
        return Err(Error::AlreadyExists {
            kind: "schema",
            name: format!("{LAKE_CATALOG}.{schema}"),
        });
    }
    Ok(done("CREATE SCHEMA"))
}

pub(super) async fn drop_schemas(
    cx: &StatementContext,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> Result<StatementResult> {
    let lake = cx.engine.lake();
    for name in names {
        let schema = lake_schema(name)?;
        if schema == DEFAULT_SCHEMA {
            return Err(Error::invalid(format!(
                "schema {LAKE_CATALOG}.{DEFAULT_SCHEMA} is the default schema and cannot be dropped"
            )));
        }
        if !lake.schema_exists(&schema).await? {
            if if_exists {
                continue;
            }
            return Err(Error::NotFound {
                kind: "schema",
                name: format!("{LAKE_CATALOG}.{schema}"),
            });
        }
        lake.drop_schema(&schema, cascade).await?;
    }
    Ok(done("DROP SCHEMA"))
}

pub(super) async fn drop_tables(
    cx: &StatementContext,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<StatementResult> {
    let lake = cx.engine.lake();
    for name in names {
        let table = lake_table(name)?;
        if lake.load_table(&table).await?.is_none() {
            if if_exists {
                continue;
            }
            return Err(Error::NotFound {
                kind: "table",
                name: table.to_string(),
            });
        }
        lake.drop_table(&table).await?;
        cx.engine
            .scan_cache()
            .forget_under(&lake.table_path(&table));
    }
    Ok(done("DROP TABLE"))
}

pub(super) async fn create_table(
    cx: &StatementContext,
    create: &ast::CreateTable,
    kind: &'static str,
) -> Result<StatementResult> {
    let name = lake_table(&create.name)?;
    let lake = cx.engine.lake();
    if !lake.schema_exists(&name.schema).await? {
        return Err(Error::NotFound {
            kind: "schema",
            name: format!("{LAKE_CATALOG}.{}", name.schema),
        });
    }
    let partition_by = match &create.hive_distribution {
        ast::HiveDistributionStyle::PARTITIONED { columns } => {
            columns.iter().map(|c| ident_name(&c.name)).collect()
        }
        ast::HiveDistributionStyle::NONE => Vec::new(),
        other => {
            return Err(Error::invalid(format!(
                "unsupported table distribution {other:?}: use PARTITIONED BY (column, …)"
            )));
        }
    };
    let existing = lake.load_table(&name).await?;
    let exists = existing.is_some();
    if exists && create.if_not_exists {
        return Ok(done(kind));
    }
    if exists && !create.or_replace {
        return Err(Error::AlreadyExists {
            kind: "table",
            name: name.to_string(),
        });
    }

    // Let DataFusion map the column types (and plan the query of a CTAS).
    let mut for_datafusion = create.clone();
    for_datafusion.hive_distribution = ast::HiveDistributionStyle::NONE;
    for_datafusion.if_not_exists = false;
    for_datafusion.or_replace = false;
    let plan = super::query::plan(
        cx,
        DFStatement::Statement(Box::new(ast::Statement::CreateTable(for_datafusion))),
    )
    .await?;
    let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(cmt)) = plan else {
        return Err(Error::invalid(format!(
            "CREATE TABLE {name}: unsupported form of CREATE TABLE"
        )));
    };
    let schema = cmt.input.schema().as_arrow().clone();
    check_partition_columns(&name, &schema, &partition_by)?;
    let stamp = cx.stamp(kind);
    // PRIMARY KEY and UNIQUE are kept as informational keys (see `keys`).
    let keys = Keys::from_constraints(&cmt.constraints, &schema);
    // Replacing writes against the loaded table, so its files are removed
    // in the same commit.
    let mut handle = match existing {
        Some(table) => table,
        None => lake.table_handle(&name)?,
    };

    if create.query.is_some() {
        // A replaced table's keys would otherwise stay on the new rows: they
        // are cleared before the rows are written, set after.
        if exists && !Keys::of_table(&handle).is_empty() {
            handle = Keys::default().record(handle, &name, &stamp).await?;
        }
        let (table, rows) = write::write_plan(
            handle,
            &name,
            Arc::unwrap_or_clone(cmt.input),
            Arc::new(cx.ctx.state()),
            if exists {
                SaveMode::Overwrite
            } else {
                SaveMode::ErrorIfExists
            },
            Some(partition_by),
            exists,
            &stamp,
        )
        .await?;
        if !keys.is_empty() {
            keys.record(table, &name, &stamp).await?;
        }
        count_result(kind, rows)
    } else {
        let properties = if keys.is_empty() {
            Vec::new()
        } else {
            vec![keys.property()]
        };
        write::create_table(
            handle,
            &name,
            &schema,
            partition_by,
            exists,
            properties,
            &stamp,
        )
        .await?;
        Ok(done(kind))
    }
}

fn check_partition_columns(
    name: &TableName,
    schema: &arrow::datatypes::Schema,
    partition_by: &[String],
) -> Result<()> {
    for col in partition_by {
        if schema.field_with_name(col).is_err() {
            return Err(Error::invalid(format!(
                "PARTITIONED BY column {col} is not a column of {name} (columns: {})",
                crate::names::column_names(schema.fields())
            )));
        }
    }
    if !partition_by.is_empty() && partition_by.len() == schema.fields().len() {
        return Err(Error::invalid(format!(
            "{name} cannot be partitioned by all of its columns"
        )));
    }
    Ok(())
}

pub(super) async fn alter_table(
    cx: &StatementContext,
    alter: &ast::AlterTable,
    kind: &'static str,
) -> Result<StatementResult> {
    let name = lake_table(&alter.name)?;
    let lake = cx.engine.lake();
    let Some(table) = lake.load_table(&name).await? else {
        if alter.if_exists {
            return Ok(done(kind));
        }
        return Err(Error::NotFound {
            kind: "table",
            name: name.to_string(),
        });
    };
    let existing = table.snapshot()?.schema();
    let mut new_columns = Vec::new();
    for op in &alter.operations {
        match op {
            ast::AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                ..
            } => {
                let col = ident_name(&column_def.name);
                if existing.field(&col).is_some() {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(Error::AlreadyExists {
                        kind: "column",
                        name: format!("{col} of {name}"),
                    });
                }
                new_columns.push(column_def.clone());
            }
            other => {
                return Err(Error::invalid(format!(
                    "unsupported ALTER TABLE operation `{other}` on {name}: supported is ADD COLUMN"
                )));
            }
        }
    }
    if new_columns.is_empty() {
        return Ok(done(kind));
    }
    // DataFusion maps the new columns' types, as for CREATE TABLE.
    let columns_sql = new_columns
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let probe = super::query::parse_one_df(&format!(
        "CREATE TABLE __autolake_new_columns ({columns_sql})"
    ))?;
    let plan = super::query::plan(cx, probe).await?;
    let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(cmt)) = plan else {
        return Err(Error::invalid("could not plan the new columns"));
    };
    let schema = cmt.input.schema().as_arrow().clone();
    if let Some(f) = schema.fields().iter().find(|f| !f.is_nullable()) {
        return Err(Error::invalid(format!(
            "cannot add NOT NULL column {} to {name}: existing rows have no value for it; add it as nullable",
            f.name()
        )));
    }
    let fields = write::delta_fields(&name, &schema)?;
    let stamp = cx.stamp(kind);
    table
        .add_columns()
        .with_fields(fields)
        .with_commit_properties(stamp.properties())
        .await
        .map_err(|e| write::write_error(&name, e))?;
    Ok(done(kind))
}
