//! DataFusion's statements: which of them are lake writes (DDL through
//! [`super::ddl`], DML through [`super::dml`]) and which DataFusion runs
//! itself (queries, `EXPLAIN`, `SET`, `SHOW`, external tables and views,
//! after the time-travel rewrite), with the accesses of each.

use autolake_sql::sqlparser::ast::{self, ObjectName};
use datafusion::sql::parser::Statement as DFStatement;

use super::query::{datafusion_statement, parse_one_df};
use super::{ddl, dml, governance};
use crate::context::{StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::lake::{DEFAULT_SCHEMA, LAKE_CATALOG, TableName};
use crate::names::{lake_schema, lake_table, name_parts, write_target};
use crate::principal::{Access, Action, Object};

/// What a DataFusion statement touches: the table it writes and how, and
/// everything it reads.
pub(super) fn accesses(
    cx: &StatementContext,
    df: &DFStatement,
    out: &mut Vec<Access>,
) -> Result<()> {
    use ast::Statement as S;
    let table = |action, name: &ObjectName| -> Result<Access> {
        Ok(Access {
            action,
            object: Object::Table(lake_table(name)?),
        })
    };
    if matches!(
        df,
        DFStatement::CopyTo(_) | DFStatement::CreateExternalTable(_)
    ) {
        // Reading or writing files of the server's machine.
        out.push(Access {
            action: Action::Create,
            object: Object::Catalog,
        });
    }
    if let DFStatement::Statement(s) = df {
        for model in governance::predicted_models(s.as_ref()) {
            out.push(Access {
                action: Action::Select,
                object: Object::Model(model),
            });
        }
        match s.as_ref() {
            S::Insert(i) => {
                if let Some(t) = insert_target(cx, i)? {
                    if i.overwrite {
                        out.push(Access {
                            action: Action::Delete,
                            object: Object::Table(t.clone()),
                        });
                    }
                    out.push(Access {
                        action: Action::Insert,
                        object: Object::Table(t),
                    });
                }
            }
            S::Update(u) => out.push(table(Action::Update, &write_target(&u.table.relation)?)?),
            S::Delete(d) => out.push(table(Action::Delete, &dml::delete_target(d)?)?),
            S::Merge(m) => {
                let target = write_target(&m.table)?;
                for action in [Action::Insert, Action::Update, Action::Delete] {
                    out.push(table(action, &target)?);
                }
            }
            S::CreateTable(c) => out.push(table(Action::Create, &c.name)?),
            S::CreateSchema { schema_name, .. } => out.push(Access {
                action: Action::Create,
                object: Object::Schema(lake_schema(&ddl::schema_object_name(schema_name))?),
            }),
            S::Drop {
                object_type: ast::ObjectType::Table,
                names,
                ..
            } => {
                for n in names {
                    if !is_session_table(cx, n) {
                        out.push(table(Action::Drop, n)?);
                    }
                }
            }
            S::Drop {
                object_type: ast::ObjectType::Schema,
                names,
                ..
            } => {
                for n in names {
                    out.push(Access {
                        action: Action::Drop,
                        object: Object::Schema(lake_schema(n)?),
                    });
                }
            }
            S::AlterTable(a) => out.push(table(Action::Alter, &a.name)?),
            _ => {}
        }
    }
    // Everything the statement reads: tables, and the tables whose
    // changes it reads.
    let written: Vec<Object> = out.iter().map(|a| a.object.clone()).collect();
    for object in super::reads::reads(cx, df)? {
        if !written.contains(&object) {
            out.push(Access {
                action: Action::Select,
                object,
            });
        }
    }
    Ok(())
}

/// Runs a DataFusion statement: lake tables' DDL and DML here, the rest
/// planned by DataFusion.
pub(super) async fn run(
    cx: &StatementContext,
    df: &DFStatement,
    kind: &'static str,
) -> Result<StatementResult> {
    use ast::Statement as S;
    let DFStatement::Statement(s) = df else {
        return datafusion_statement(cx, df.clone(), kind).await;
    };
    match s.as_ref() {
        S::Insert(insert) => match insert_target(cx, insert)? {
            Some(target) => dml::insert(cx, df, target, kind).await,
            None => datafusion_statement(cx, df.clone(), kind).await,
        },
        S::Update(update) => dml::update(cx, update, kind).await,
        S::Delete(delete) => dml::delete(cx, delete, kind).await,
        S::Merge(merge) => dml::merge(cx, merge, kind).await,
        S::CreateTable(create) => ddl::create_table(cx, create, kind).await,
        S::CreateSchema {
            schema_name,
            if_not_exists,
            ..
        } => ddl::create_schema(cx, schema_name, *if_not_exists).await,
        S::Drop {
            object_type: ast::ObjectType::Table,
            names,
            if_exists,
            ..
        } if !names.iter().any(|n| is_session_table(cx, n)) => {
            ddl::drop_tables(cx, names, *if_exists).await
        }
        S::Drop {
            object_type: ast::ObjectType::Schema,
            names,
            if_exists,
            cascade,
            ..
        } => ddl::drop_schemas(cx, names, *if_exists, *cascade).await,
        S::AlterTable(alter) => ddl::alter_table(cx, alter, kind).await,
        S::ShowSchemas { .. } => {
            datafusion_statement(
                cx,
                parse_one_df(
                    "SELECT schema_name FROM information_schema.schemata \
                     WHERE catalog_name = 'lake' ORDER BY schema_name",
                )?,
                kind,
            )
            .await
        }
        _ => datafusion_statement(cx, df.clone(), kind).await,
    }
}

/// Whether a name refers to a table DataFusion registered in this session
/// (an external table or a view) rather than a lake table.
fn is_session_table(cx: &StatementContext, name: &ObjectName) -> bool {
    let Ok(parts) = name_parts(name) else {
        return false;
    };
    let (schema, table) = match parts.as_slice() {
        [t] => (DEFAULT_SCHEMA, t.as_str()),
        [s, t] => (s.as_str(), t.as_str()),
        [c, s, t] if c == LAKE_CATALOG => (s.as_str(), t.as_str()),
        _ => return true,
    };
    cx.catalog
        .session_schema(schema)
        .is_some_and(|s| s.is_session_table(table))
}

fn insert_target(cx: &StatementContext, insert: &ast::Insert) -> Result<Option<TableName>> {
    match &insert.table {
        ast::TableObject::TableName(name) if !is_session_table(cx, name) => {
            Ok(Some(lake_table(name)?))
        }
        ast::TableObject::TableName(_) => Ok(None),
        other => Err(Error::invalid(format!(
            "INSERT into {other} is not supported: insert into a table by name"
        ))),
    }
}
