//! Running governance statements: users, roles, grants, ownership, row
//! policies, column masks and `VERIFY AUDIT LOG` (see
//! [`crate::governance`] for the model). Who may run each is decided with
//! every other statement's accesses, in [`accesses`]; what is left here is
//! validation (objects, users and roles must exist; policies and masks
//! must plan against their table) and the change itself.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use autolake_sql::sqlparser::ast::{self, ObjectName, Visit, Visitor};
use autolake_sql::{Governance as G, Grantee};
use chrono::Utc;
use datafusion::common::DFSchema;
use datafusion::logical_expr::ExprSchemable;

use super::query::done;
use crate::context::{Engine, StatementContext, StatementResult};
use crate::error::{Error, Result};
use crate::governance::accounts::UserStore;
use crate::governance::{
    BUILTIN_ROLES, ColumnTag, Holder, Mask, Policy, Privilege, Securable, State,
};
use crate::lake::{LAKE_CATALOG, TableName};
use crate::names::{ident_name, lake_schema, lake_table, single_name};
use crate::principal::{Access, Action, Object, Principal};

/// The object a `GRANT`/`ALTER … OWNER TO` names.
pub(crate) fn securable(kind: &str, name: &ObjectName) -> Result<Securable> {
    Ok(match kind {
        "CATALOG" => {
            let n = single_name("catalog", name)?;
            if n != LAKE_CATALOG {
                return Err(Error::NotFound {
                    kind: "catalog",
                    name: format!("{n} (the lake's catalog is '{LAKE_CATALOG}')"),
                });
            }
            Securable::Catalog
        }
        "SCHEMA" => Securable::Schema(lake_schema(name)?),
        "TABLE" => Securable::table(&lake_table(name)?),
        "SOURCE" => Securable::Source(single_name("source", name)?),
        "MODEL" => Securable::Model(single_name("model", name)?),
        "JOB" => Securable::Job(single_name("job", name)?),
        "MONITOR" => Securable::Monitor(single_name("monitor", name)?),
        "TEMPLATE" => Securable::Template(single_name("template", name)?),
        "PIPELINE" => Securable::Pipeline(single_name("pipeline", name)?),
        other => return Err(Error::invalid(format!("unknown object kind {other}"))),
    })
}

fn object_of(s: &Securable) -> Object {
    match s {
        Securable::Catalog => Object::Catalog,
        Securable::Schema(n) => Object::Schema(n.clone()),
        Securable::Table(n) => {
            let (schema, table) = n.split_once('.').unwrap_or(("", n));
            Object::Table(TableName::new(schema, table))
        }
        Securable::Source(n) => Object::Source(n.clone()),
        Securable::Model(n) => Object::Model(n.clone()),
        Securable::Job(n) => Object::Job(n.clone()),
        Securable::Monitor(n) => Object::Monitor(n.clone()),
        Securable::Template(n) => Object::Template(n.clone()),
        Securable::Pipeline(n) => Object::Pipeline(n.clone()),
    }
}

/// The accesses of a governance statement.
pub(crate) fn accesses(principal: &Principal, g: &G, out: &mut Vec<Access>) -> Result<()> {
    let manage = |object: Object| Access {
        action: Action::Alter,
        object,
    };
    match g {
        G::CreateUser { .. }
        | G::DropUser { .. }
        | G::CreateRole { .. }
        | G::DropRole { .. }
        | G::RoleMembership { .. }
        | G::ShowUsers => out.push(Access {
            action: Action::Alter,
            object: Object::Account,
        }),
        G::AlterUserPassword { name, .. } => {
            if ident_name(name) != principal.name {
                out.push(manage(Object::Account));
            }
        }
        G::Privileges {
            object_kind,
            object,
            ..
        } => out.push(manage(object_of(&securable(object_kind, object)?))),
        G::ShowGrants(Some(Grantee::User(u))) if ident_name(u) == principal.name => {}
        G::ShowGrants(Some(_)) => out.push(Access {
            action: Action::Select,
            object: Object::System("grants".to_string()),
        }),
        G::ShowGrants(None) | G::ShowRoles => {}
        G::CreatePolicy { table, .. }
        | G::DropPolicy { table, .. }
        | G::Mask { table, .. }
        | G::Tags { table, .. } => {
            out.push(manage(Object::Table(lake_table(table)?)));
        }
        G::AlterOwner {
            object_kind,
            object,
            ..
        } => out.push(manage(object_of(&securable(object_kind, object)?))),
        G::VerifyAuditLog => out.push(Access {
            action: Action::Select,
            object: Object::System("audit_log".to_string()),
        }),
    }
    Ok(())
}

/// Runs a governance statement (already authorized).
pub(crate) async fn run(cx: &StatementContext, g: &G) -> Result<StatementResult> {
    // Loaded for this statement by the session before it was checked.
    let state = cx.engine.governance().cached();
    match g {
        G::CreateUser {
            name,
            if_not_exists,
            password,
            roles,
        } => create_user(cx, &state, name, *if_not_exists, password, roles).await?,
        G::AlterUserPassword { name, password } => {
            accounts(cx)
                .set_password(&ident_name(name), password)
                .await?;
        }
        G::DropUser { name, if_exists } => drop_user(cx, &state, name, *if_exists).await?,
        G::CreateRole {
            name,
            if_not_exists,
        } => create_role(cx, &state, name, *if_not_exists).await?,
        G::DropRole { name, if_exists } => drop_role(cx, &state, name, *if_exists).await?,
        G::RoleMembership { grant, role, user } => {
            role_membership(cx, &state, *grant, role, user).await?
        }
        G::Privileges {
            grant,
            privileges: words,
            object_kind,
            object,
            grantee,
        } => privileges(cx, &state, *grant, words, object_kind, object, grantee).await?,
        G::ShowGrants(grantee) => return show_grants(cx, &state, grantee.as_ref()),
        G::ShowUsers => return show_users(&state),
        G::ShowRoles => return show_roles(&state),
        G::CreatePolicy {
            name,
            table,
            to,
            using,
        } => create_policy(cx, &state, name, table, to, using).await?,
        G::DropPolicy {
            name,
            table,
            if_exists,
        } => drop_policy(cx, name, table, *if_exists).await?,
        G::Mask {
            table,
            column,
            mask,
        } => set_mask(cx, table, column, mask.as_ref()).await?,
        G::Tags {
            table,
            column,
            tags,
            set,
        } => set_tags(cx, table, column, tags, *set).await?,
        G::AlterOwner {
            object_kind,
            object,
            owner,
        } => alter_owner(cx, &state, object_kind, object, owner).await?,
        G::VerifyAuditLog => return verify_audit_log(cx).await,
    }
    Ok(done(g.kind()))
}

/// The lake's accounts.
fn accounts(cx: &StatementContext) -> UserStore {
    UserStore::new(Arc::clone(cx.engine.lake()))
}

/// `CREATE USER`.
async fn create_user(
    cx: &StatementContext,
    state: &State,
    name: &ast::Ident,
    if_not_exists: bool,
    password: &str,
    roles: &[ast::Ident],
) -> Result<()> {
    let governance = cx.engine.governance();
    let users = accounts(cx);
    let name = ident_name(name);
    crate::lake::validate_name("user", &name)?;
    let roles: Vec<String> = roles.iter().map(ident_name).collect();
    for r in &roles {
        require_role(state, r)?;
    }
    if users.get(&name).await?.is_some() {
        if if_not_exists {
            return Ok(());
        }
        return Err(Error::AlreadyExists { kind: "user", name });
    }
    users.create(&name, password, roles).await?;
    governance.changed().await?;
    Ok(())
}

/// `DROP USER`: its grants go with it.
async fn drop_user(
    cx: &StatementContext,
    state: &State,
    name: &ast::Ident,
    if_exists: bool,
) -> Result<()> {
    let governance = cx.engine.governance();
    let users = accounts(cx);
    let name = ident_name(name);
    if name == "admin" {
        return Err(Error::invalid(
            "user admin cannot be dropped: it is the lake's first administrator",
        ));
    }
    if name == cx.principal.name {
        return Err(Error::invalid(format!("user {name} cannot drop itself")));
    }
    if !users.delete(&name).await? && !if_exists {
        return Err(Error::NotFound { kind: "user", name });
    }
    for grant in state
        .grants
        .iter()
        .filter(|g| g.holder == Holder::User(name.clone()))
    {
        governance
            .revoke(&grant.holder, grant.privilege, &grant.object)
            .await?;
    }
    governance.changed().await?;
    Ok(())
}

/// `CREATE ROLE`.
async fn create_role(
    cx: &StatementContext,
    state: &State,
    name: &ast::Ident,
    if_not_exists: bool,
) -> Result<()> {
    let governance = cx.engine.governance();
    let by = cx.principal.name.as_str();
    let name = ident_name(name);
    crate::lake::validate_name("role", &name)?;
    if BUILTIN_ROLES.contains(&name.as_str()) || state.roles.contains(&name) {
        if if_not_exists {
            return Ok(());
        }
        return Err(Error::AlreadyExists { kind: "role", name });
    }
    governance.create_role(&name, by).await?;
    Ok(())
}

/// `DROP ROLE`: its members lose it.
async fn drop_role(
    cx: &StatementContext,
    state: &State,
    name: &ast::Ident,
    if_exists: bool,
) -> Result<()> {
    let governance = cx.engine.governance();
    let users = accounts(cx);
    let name = ident_name(name);
    if BUILTIN_ROLES.contains(&name.as_str()) {
        return Err(Error::invalid(format!(
            "role {name} is built in and cannot be dropped"
        )));
    }
    if !state.roles.contains(&name) {
        if if_exists {
            return Ok(());
        }
        return Err(Error::NotFound { kind: "role", name });
    }
    for (user, roles) in &state.users {
        if roles.contains(&name) {
            let kept = roles.iter().filter(|r| **r != name).cloned().collect();
            users.set_roles(user, kept).await?;
        }
    }
    governance.drop_role(&name).await?;
    Ok(())
}

/// `GRANT ROLE r TO u` and `REVOKE ROLE r FROM u`.
async fn role_membership(
    cx: &StatementContext,
    state: &State,
    grant: bool,
    role: &ast::Ident,
    user: &ast::Ident,
) -> Result<()> {
    let governance = cx.engine.governance();
    let users = accounts(cx);
    let (role, user) = (ident_name(role), ident_name(user));
    require_role(state, &role)?;
    let mut roles = users.require(&user).await?.roles;
    if grant {
        if !roles.contains(&role) {
            roles.push(role);
        }
    } else {
        roles.retain(|r| *r != role);
    }
    users.set_roles(&user, roles).await?;
    governance.changed().await?;
    Ok(())
}

/// `GRANT` and `REVOKE` of privileges.
async fn privileges(
    cx: &StatementContext,
    state: &State,
    grant: bool,
    privileges: &[String],
    object_kind: &str,
    object: &ObjectName,
    grantee: &Grantee,
) -> Result<()> {
    let governance = cx.engine.governance();
    let by = cx.principal.name.as_str();
    let object = securable(object_kind, object)?;
    require_exists(cx, &object).await?;
    let holder = match grantee {
        Grantee::User(u) => {
            let u = ident_name(u);
            if !state.users.contains_key(&u) && u != "admin" {
                return Err(Error::NotFound {
                    kind: "user",
                    name: u,
                });
            }
            Holder::User(u)
        }
        Grantee::Role(r) => {
            let r = ident_name(r);
            require_role(state, &r)?;
            Holder::Role(r)
        }
    };
    for privilege in expand(privileges, &object)? {
        if grant {
            governance.grant(&holder, privilege, &object, by).await?;
        } else {
            governance.revoke(&holder, privilege, &object).await?;
        }
    }
    governance.changed().await?;
    Ok(())
}

/// `SHOW USERS`.
fn show_users(state: &State) -> Result<StatementResult> {
    let mut rows: Vec<(String, String)> = state
        .users
        .iter()
        .map(|(u, r)| (u.clone(), r.join(",")))
        .collect();
    rows.sort();
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("roles", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            strings(rows.iter().map(|r| r.0.as_str())),
            strings(rows.iter().map(|r| r.1.as_str())),
        ],
    )?;
    Ok(StatementResult::batches("SHOW USERS", schema, vec![batch]))
}

/// `SHOW ROLES`.
fn show_roles(state: &State) -> Result<StatementResult> {
    let mut rows: Vec<(String, bool)> = BUILTIN_ROLES
        .iter()
        .map(|r| (r.to_string(), true))
        .chain(state.roles.iter().map(|r| (r.clone(), false)))
        .collect();
    rows.sort();
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("builtin", DataType::Boolean, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            strings(rows.iter().map(|r| r.0.as_str())),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.1)))),
        ],
    )?;
    Ok(StatementResult::batches("SHOW ROLES", schema, vec![batch]))
}

/// `CREATE POLICY`: its predicate must plan, as a boolean, against its
/// table.
async fn create_policy(
    cx: &StatementContext,
    state: &State,
    name: &ast::Ident,
    table: &ObjectName,
    to: &[ast::Ident],
    using: &ast::Expr,
) -> Result<()> {
    let governance = cx.engine.governance();
    let by = cx.principal.name.as_str();
    let name = ident_name(name);
    crate::lake::validate_name("policy", &name)?;
    let table = lake_table(table)?;
    let to: Vec<String> = to.iter().map(ident_name).collect();
    for r in &to {
        if !state.users.contains_key(r) && require_role(state, r).is_err() {
            return Err(Error::NotFound {
                kind: "role or user",
                name: r.clone(),
            });
        }
    }
    let using = using.to_string();
    let schema = table_schema(cx, &table).await?;
    let expr = plan_expr(cx, &using, &schema)
        .map_err(|e| Error::invalid(format!("policy {name} on {table}: {e}")))?;
    let data_type = expr.to_field(&schema)?.1.data_type().clone();
    if data_type != DataType::Boolean {
        return Err(Error::invalid(format!(
            "policy {name} on {table}: USING needs a boolean predicate, got {data_type}"
        )));
    }
    let policy = Policy {
        name: name.clone(),
        table: key(&table),
        to,
        using,
        created_by: by.to_string(),
        created_at: Utc::now(),
    };
    if !governance.create_policy(&policy).await? {
        return Err(Error::AlreadyExists {
            kind: "policy",
            name: format!("{name} on {table}"),
        });
    }
    Ok(())
}

/// `DROP POLICY`.
async fn drop_policy(
    cx: &StatementContext,
    name: &ast::Ident,
    table: &ObjectName,
    if_exists: bool,
) -> Result<()> {
    let governance = cx.engine.governance();
    let name = ident_name(name);
    let table = lake_table(table)?;
    if !governance.drop_policy(&key(&table), &name).await? && !if_exists {
        return Err(Error::NotFound {
            kind: "policy",
            name: format!("{name} on {table}"),
        });
    }
    Ok(())
}

/// `ALTER TABLE … ALTER COLUMN … SET MASK` and `DROP MASK`: a mask must
/// plan against its table and keep the column's type.
async fn set_mask(
    cx: &StatementContext,
    table: &ObjectName,
    column: &ast::Ident,
    mask: Option<&ast::Expr>,
) -> Result<()> {
    let governance = cx.engine.governance();
    let by = cx.principal.name.as_str();
    let table = lake_table(table)?;
    let schema = table_schema(cx, &table).await?;
    let column = ident_name(column);
    let Some((_, field)) = schema
        .iter()
        .find(|(_, f)| f.name().eq_ignore_ascii_case(&column))
    else {
        return Err(Error::NotFound {
            kind: "column",
            name: format!(
                "{column} of {table} (its columns: {})",
                crate::names::column_names(schema.fields())
            ),
        });
    };
    let column = field.name().clone();
    match mask {
        None => {
            if !governance.drop_mask(&key(&table), &column).await? {
                return Err(Error::NotFound {
                    kind: "mask",
                    name: format!("on column {column} of {table}"),
                });
            }
        }
        Some(mask) => {
            let text = mask.to_string();
            let expr = plan_expr(cx, &text, &schema)
                .map_err(|e| Error::invalid(format!("mask of {table}.{column}: {e}")))?;
            let data_type = expr.to_field(&schema)?.1.data_type().clone();
            check_mask_type(&table, &column, field.data_type(), &data_type)?;
            governance
                .set_mask(&Mask {
                    table: key(&table),
                    column,
                    mask: text,
                    created_by: by.to_string(),
                    created_at: Utc::now(),
                })
                .await?;
        }
    }
    Ok(())
}

/// `ALTER TABLE t ALTER COLUMN c SET TAGS (…)` / `UNSET TAGS (…)`.
async fn set_tags(
    cx: &StatementContext,
    table: &ObjectName,
    column: &ast::Ident,
    tags: &[String],
    set: bool,
) -> Result<()> {
    let governance = cx.engine.governance();
    let table = lake_table(table)?;
    let schema = table_schema(cx, &table).await?;
    let shown = key(&table);
    let wanted = ident_name(column);
    let Some((_, field)) = schema
        .iter()
        .find(|(_, f)| f.name().eq_ignore_ascii_case(&wanted))
    else {
        return Err(Error::NotFound {
            kind: "column",
            name: format!(
                "{wanted} of {shown} (its columns: {})",
                crate::names::column_names(schema.fields())
            ),
        });
    };
    let column = field.name().clone();
    for tag in tags {
        let ok = !tag.is_empty()
            && tag.len() <= 64
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'));
        if !ok {
            return Err(Error::invalid(format!(
                "tag '{tag}' on {shown}.{column}: a tag is 1 to 64 letters, digits, '_', '-', ':' or '.'"
            )));
        }
    }
    let tags: Vec<String> = tags.iter().map(|t| t.to_lowercase()).collect();
    if set {
        let now = Utc::now();
        let records: Vec<ColumnTag> = tags
            .iter()
            .map(|tag| ColumnTag {
                table: key(&table),
                column: column.clone(),
                tag: tag.clone(),
                created_by: cx.principal.name.clone(),
                created_at: now,
            })
            .collect();
        governance.set_tags(&records).await
    } else {
        let state = governance.state().await?;
        let absent: Vec<&String> = tags
            .iter()
            .filter(|t| {
                !state
                    .tags
                    .iter()
                    .any(|c| c.table == key(&table) && c.column == column && &c.tag == *t)
            })
            .collect();
        if let Some(tag) = absent.first() {
            return Err(Error::NotFound {
                kind: "tag",
                name: format!("'{tag}' on column {column} of {shown}"),
            });
        }
        for tag in &tags {
            governance.unset_tag(&key(&table), &column, tag).await?;
        }
        Ok(())
    }
}

/// `ALTER … OWNER TO`.
async fn alter_owner(
    cx: &StatementContext,
    state: &State,
    object_kind: &str,
    object: &ObjectName,
    owner: &ast::Ident,
) -> Result<()> {
    let governance = cx.engine.governance();
    let object = securable(object_kind, object)?;
    require_exists(cx, &object).await?;
    let owner = ident_name(owner);
    if !state.users.contains_key(&owner) && owner != "admin" {
        return Err(Error::NotFound {
            kind: "user",
            name: owner,
        });
    }
    governance.set_owner(&object, &owner).await?;
    Ok(())
}

/// `VERIFY AUDIT LOG`: walks the hash chain.
async fn verify_audit_log(cx: &StatementContext) -> Result<StatementResult> {
    let (intact, entries, first_bad, detail) = cx.engine.audit().verify().await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("intact", DataType::Boolean, false),
        Field::new("entries", DataType::Int64, false),
        Field::new("first_bad_seq", DataType::Int64, true),
        Field::new("detail", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(BooleanArray::from(vec![intact])),
            Arc::new(Int64Array::from(vec![entries])),
            Arc::new(Int64Array::from(vec![first_bad])),
            strings([detail.as_str()].into_iter()),
        ],
    )?;
    Ok(StatementResult::batches(
        "VERIFY AUDIT LOG",
        schema,
        vec![batch],
    ))
}

fn key(table: &TableName) -> String {
    format!("{}.{}", table.schema, table.table)
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn require_role(state: &State, role: &str) -> Result<()> {
    if BUILTIN_ROLES.contains(&role) || state.roles.contains(role) {
        Ok(())
    } else {
        Err(Error::NotFound {
            kind: "role",
            name: role.to_string(),
        })
    }
}

/// `ALL` expanded to what applies to the object; a privilege that does not
/// apply is an error naming where it does.
fn expand(words: &[String], object: &Securable) -> Result<Vec<Privilege>> {
    use Privilege as P;
    let applicable: &[Privilege] = match object {
        Securable::Catalog | Securable::Schema(_) => &Privilege::ALL,
        Securable::Table(_) => &[P::Select, P::Insert, P::Update, P::Delete, P::Manage],
        Securable::Source(_) => &[P::Usage, P::Select, P::Manage],
        Securable::Model(_) => &[P::Train, P::Predict, P::Manage],
        Securable::Job(_)
        | Securable::Monitor(_)
        | Securable::Template(_)
        | Securable::Pipeline(_) => &[P::Manage],
    };
    let mut out = Vec::new();
    for w in words {
        if w == "ALL" {
            out.extend_from_slice(applicable);
            continue;
        }
        let p =
            Privilege::parse(w).ok_or_else(|| Error::invalid(format!("unknown privilege {w}")))?;
        if !applicable.contains(&p) {
            return Err(Error::invalid(format!(
                "{w} does not apply to a {}: it takes {}",
                object.kind(),
                applicable
                    .iter()
                    .map(Privilege::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        out.push(p);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

async fn require_exists(cx: &StatementContext, object: &Securable) -> Result<()> {
    if exists(&cx.engine, object).await? {
        Ok(())
    } else {
        Err(Error::NotFound {
            kind: object.kind(),
            name: object.name().to_string(),
        })
    }
}

/// Whether `object` exists in the lake now.
pub(crate) async fn exists(engine: &Engine, object: &Securable) -> Result<bool> {
    Ok(match object {
        Securable::Catalog => true,
        Securable::Schema(s) => engine.lake().schema_exists(s).await?,
        Securable::Table(n) => {
            let (schema, table) = n.split_once('.').unwrap_or(("", n));
            engine
                .lake()
                .load_table(&TableName::new(schema, table))
                .await?
                .is_some()
        }
        Securable::Source(s) => engine.sources().get(s).await?.is_some(),
        Securable::Model(m) => !engine.models().versions(m).is_empty(),
        Securable::Monitor(m) => crate::monitor::MonitorStore::new(Arc::clone(engine.lake()))
            .get(m)
            .await?
            .is_some(),
        Securable::Job(j) => engine.jobs().get(j).await?.is_some(),
        Securable::Template(t) => engine.pipelines().template(t).await?.is_some(),
        Securable::Pipeline(p) => engine.pipelines().get(p).await?.is_some(),
    })
}

async fn table_schema(cx: &StatementContext, table: &TableName) -> Result<DFSchema> {
    let delta = cx.engine.lake().require_table(table).await?;
    let arrow = delta.snapshot()?.snapshot().arrow_schema();
    Ok(DFSchema::try_from(arrow.as_ref().clone())?)
}

fn plan_expr(
    cx: &StatementContext,
    sql: &str,
    schema: &DFSchema,
) -> Result<datafusion::logical_expr::Expr> {
    Ok(crate::governance::boundaries::plan_sql_expr(
        &cx.ctx.state(),
        sql,
        schema,
    )?)
}

/// A mask must read as the column's type: the same type, NULL, or another
/// type of the same family (numbers to numbers, text to text).
fn check_mask_type(
    table: &TableName,
    column: &str,
    column_type: &DataType,
    mask_type: &DataType,
) -> Result<()> {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let ok = mask_type == column_type
        || *mask_type == DataType::Null
        || (column_type.is_numeric() && mask_type.is_numeric())
        || (text(column_type) && text(mask_type))
        || (column_type.is_temporal() && mask_type.is_temporal());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "the mask of {table}.{column} must produce {column_type} (the column's type), not {mask_type}"
        )))
    }
}

fn show_grants(
    cx: &StatementContext,
    state: &State,
    grantee: Option<&Grantee>,
) -> Result<StatementResult> {
    let (holder_user, holder_role) = match grantee {
        None => (Some(cx.principal.name.clone()), None),
        Some(Grantee::User(u)) => (Some(ident_name(u)), None),
        Some(Grantee::Role(r)) => (None, Some(ident_name(r))),
    };
    let roles: Vec<String> = match &holder_user {
        Some(u) if *u == cx.principal.name => state.roles_of(&cx.principal),
        Some(u) => state.users.get(u).cloned().unwrap_or_default(),
        None => holder_role.iter().cloned().collect(),
    };
    // (grantee, privilege, object kind, object, via, grantor)
    let mut rows: Vec<[String; 6]> = Vec::new();
    for g in &state.grants {
        let via = match (&g.holder, &holder_user) {
            (Holder::User(u), Some(me)) if u == me => "direct".to_string(),
            (Holder::Role(r), _) if roles.contains(r) => format!("role {r}"),
            _ => continue,
        };
        let grantee = match &g.holder {
            Holder::User(u) => u.clone(),
            Holder::Role(r) => r.clone(),
        };
        rows.push([
            grantee,
            g.privilege.as_str().to_string(),
            g.object.kind().to_string(),
            g.object.name().to_string(),
            via,
            g.grantor.clone(),
        ]);
    }
    if let Some(u) = &holder_user {
        for (object, owner) in &state.owners {
            if owner == u {
                rows.push([
                    u.clone(),
                    "OWNER".to_string(),
                    object.kind().to_string(),
                    object.name().to_string(),
                    "owner".to_string(),
                    String::new(),
                ]);
            }
        }
    }
    for r in &roles {
        if BUILTIN_ROLES.contains(&r.as_str()) {
            rows.push([
                holder_user.clone().unwrap_or_else(|| r.clone()),
                builtin_summary(r).to_string(),
                "catalog".to_string(),
                LAKE_CATALOG.to_string(),
                format!("role {r}"),
                "built-in".to_string(),
            ]);
        }
    }
    rows.sort();
    let names = [
        "grantee",
        "privilege",
        "object_type",
        "object",
        "via",
        "grantor",
    ];
    let schema: SchemaRef = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|i| strings(rows.iter().map(|r| r[i].as_str())))
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(StatementResult::batches("SHOW GRANTS", schema, vec![batch]))
}

fn builtin_summary(role: &str) -> &'static str {
    match role {
        "admin" => "ALL",
        "engineer" => "ALL except TRAIN, PREDICT (tables, schemas, sources, jobs)",
        "scientist" => "SELECT, TRAIN, PREDICT; ALL on schema sandbox",
        "auditor" => "SELECT on schema system",
        _ => "",
    }
}

/// The models a statement scores with: `predict('m', …)` and
/// `predict_proba('m@2', …)` calls with a literal model name.
pub(crate) fn predicted_models<V: Visit>(node: &V) -> Vec<String> {
    struct Calls(Vec<String>);
    impl Visitor for Calls {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &ast::Expr) -> std::ops::ControlFlow<()> {
            if let ast::Expr::Function(f) = expr
                && let Some(name) = f.name.0.last().and_then(|p| p.as_ident())
                && matches!(
                    name.value.to_lowercase().as_str(),
                    "predict" | "predict_proba"
                )
                && let ast::FunctionArguments::List(list) = &f.args
                && let Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(
                    ast::Expr::Value(v),
                ))) = list.args.first()
                && let ast::Value::SingleQuotedString(s) = &v.value
            {
                let model = s.split('@').next().unwrap_or(s).to_string();
                if !self.0.contains(&model) {
                    self.0.push(model);
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut calls = Calls(Vec::new());
    let _ = node.visit(&mut calls);
    calls.0
}

/// Writes by a principal whose view of the table is bounded: UPDATE and
/// DELETE see only the rows their policies allow (the policies are added
/// to the predicate) and may not read masked columns; MERGE and INSERT
/// OVERWRITE, which reach every row, are refused.
pub(crate) fn bounded_predicate(
    state: &State,
    principal: &Principal,
    table: &TableName,
    kind: &str,
    read: &[&ast::Expr],
) -> Result<Option<ast::Expr>> {
    let masked: Vec<String> = state
        .masks_of(table)
        .iter()
        .map(|m| m.column.to_lowercase())
        .collect();
    let policies = state.policies_for(principal, table);
    if policies.is_empty() && masked.is_empty() {
        return Ok(None);
    }
    if matches!(kind, "MERGE" | "INSERT OVERWRITE") {
        return Err(Error::PermissionDenied(format!(
            "{kind} into {table} reaches rows or columns hidden from user {} by row policies or column masks; use INSERT, UPDATE or DELETE",
            principal.name
        )));
    }
    for expr in read {
        if let Some(column) = referenced(expr)
            .into_iter()
            .find(|c| masked.contains(&c.to_lowercase()))
        {
            return Err(Error::PermissionDenied(format!(
                "column {column} of {table} is masked for user {}; {kind} may not read it",
                principal.name
            )));
        }
    }
    let mut combined: Option<ast::Expr> = None;
    for p in policies {
        let dialect = autolake_sql::AutoLakeDialect::default();
        let expr = autolake_sql::sqlparser::parser::Parser::new(&dialect)
            .try_with_sql(&p.using)
            .and_then(|mut parser| parser.parse_expr())
            .map_err(|e| {
                Error::invalid(format!(
                    "row policy {} on {table} is unreadable: {e}",
                    p.name
                ))
            })?;
        let expr = ast::Expr::Nested(Box::new(expr));
        combined = Some(match combined {
            None => expr,
            Some(left) => ast::Expr::BinaryOp {
                left: Box::new(left),
                op: ast::BinaryOperator::Or,
                right: Box::new(expr),
            },
        });
    }
    Ok(combined.map(|e| ast::Expr::Nested(Box::new(e))))
}

fn referenced(expr: &ast::Expr) -> Vec<String> {
    struct Idents(Vec<String>);
    impl Visitor for Idents {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &ast::Expr) -> std::ops::ControlFlow<()> {
            match expr {
                ast::Expr::Identifier(i) => self.0.push(ident_name(i)),
                ast::Expr::CompoundIdentifier(parts) => {
                    if let Some(last) = parts.last() {
                        self.0.push(ident_name(last));
                    }
                }
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut idents = Idents(Vec::new());
    let _ = expr.visit(&mut idents);
    idents.0
}
