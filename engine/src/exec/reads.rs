//! What statements read, for the authorizer: the tables a DataFusion
//! statement or query names (and those whose changes it reads through
//! `table_changes`) and the models it scores with; shared by every family
//! whose statements embed a query.

use autolake_sql::sqlparser::ast;
use autolake_sql::{Family, Statement};
use datafusion::sql::parser::Statement as DFStatement;

use super::{changes, governance};
use crate::context::StatementContext;
use crate::error::{Error, Result};
use crate::names::read_object;
use crate::principal::{Access, Action, Object};

/// A statement handed to a family it is not in: a bug in the dispatch.
pub(super) fn outside(family: Family, statement: &Statement) -> Error {
    Error::internal(format!(
        "{} was handed to the {family:?} statements",
        statement.kind()
    ))
}

/// What a query reads, and the models it scores with.
pub(super) fn query_accesses(
    cx: &StatementContext,
    query: &ast::Query,
    out: &mut Vec<Access>,
) -> Result<()> {
    for model in governance::predicted_models(query) {
        let access = Access {
            action: Action::Select,
            object: Object::Model(model),
        };
        if !out.contains(&access) {
            out.push(access);
        }
    }
    let statement =
        DFStatement::Statement(Box::new(ast::Statement::Query(Box::new(query.clone()))));
    for object in reads(cx, &statement)? {
        let access = Access {
            action: Action::Select,
            object,
        };
        if !out.contains(&access) {
            out.push(access);
        }
    }
    Ok(())
}

/// The objects a statement reads: its tables, and the tables whose changes
/// it reads with `table_changes`.
pub(super) fn reads(cx: &StatementContext, df: &DFStatement) -> Result<Vec<Object>> {
    let mut objects: Vec<Object> = cx
        .ctx
        .state()
        .resolve_table_references(df)?
        .into_iter()
        .filter(|r| !changes::is_function_name(r))
        .map(|r| read_object(&r))
        .collect();
    objects.extend(
        changes::calls(df)?
            .into_iter()
            .map(|c| Object::Table(c.table)),
    );
    Ok(objects)
}
