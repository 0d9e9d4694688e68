//! Governance: who may do what, on which rows and columns, and the record
//! of everything that was done.
//!
//! The design follows what the anchors do, sized to one binary:
//!
//! - **State in the lake.** Roles, grants, owners, row policies and column
//!   masks are JSON documents under `<lake>/governance/<kind>/`, one per
//!   item, like the users at `<lake>/users/` (PostgreSQL keeps them in
//!   catalogs, Unity Catalog in its metastore). Every change also rewrites
//!   `<lake>/governance/generation`; each statement reads that one small
//!   object and reloads the documents only when it changed, so every
//!   process on a lake sees a grant or revoke at its next statement.
//! - **One check per statement.** The session computes the statement's
//!   accesses ([`crate::principal::Access`]) and [`State::check`] maps each
//!   to the privilege it needs (the table below) before anything runs.
//!   Lake table reads are checked a second time where the plan is built
//!   ([`boundaries`]), so views, CTEs, subqueries, model training and
//!   `predict` inputs cannot reach a table the statement's text hid.
//! - **Data boundaries in the plan.** Row policies and column masks are
//!   applied by an analyzer rule that replaces each governed table scan
//!   with `Projection(masks) ← Filter(policies) ← scan`, before type
//!   coercion and optimisation (as Databricks applies row filters and
//!   column masks, and as DataFusion's own view inlining works): every
//!   later filter, join or aggregate sees masked values only, on every
//!   interface, time travel included.
//! - **Audit** in [`audit`]: a hash-chained Delta table.
//!
//! | statement reaches | needs |
//! |---|---|
//! | read a table | SELECT on it, its schema or the catalog |
//! | insert / update / delete rows | INSERT / UPDATE / DELETE likewise |
//! | create a table | MANAGE on its schema (or owning the schema) |
//! | create a schema, source | MANAGE on the catalog |
//! | drop / alter an object | owning it, or MANAGE on it |
//! | read a source's tables, sync | USAGE (or SELECT) on the source |
//! | train a model | TRAIN on the model or the catalog |
//! | `predict`, DESCRIBE / EVALUATE MODEL | PREDICT (or TRAIN) on the model |
//! | `system.audit_log`, `system.users`, `system.grants` | SELECT on schema `system` |
//!
//! The owner of an object holds every privilege on it, and the owner of a
//! schema on everything in it. Built-in roles: `admin` may do everything;
//! `engineer` everything on tables, schemas, sources, jobs and monitors
//! but models; `scientist` reads every lake table, trains and uses models
//! and owns the schema `sandbox` in effect; `auditor` reads `system.*`
//! and changes nothing.

pub mod accounts;
pub mod audit;
pub(crate) mod boundaries;
mod proof;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::lake::docs::DocStore;
use crate::lake::{Lake, SYSTEM_SCHEMA, TableName};
use crate::principal::{Access, Action, Object, Principal};

/// The built-in roles.
pub const BUILTIN_ROLES: [&str; 4] = ["admin", "engineer", "scientist", "auditor"];

/// The schema scientists write to.
pub const SANDBOX_SCHEMA: &str = "sandbox";

/// System tables only `SELECT` on schema `system` (admin, auditor) reads.
pub const PROTECTED_SYSTEM_TABLES: [&str; 3] = ["audit_log", "users", "grants"];

/// A privilege, as `GRANT` names it (`ALL` is expanded when granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Privilege {
    /// Read rows.
    Select,
    /// Add rows.
    Insert,
    /// Change rows.
    Update,
    /// Remove rows.
    Delete,
    /// Use a source (read its tables, sync from it).
    Usage,
    /// Train a model.
    Train,
    /// Score with a model.
    Predict,
    /// Create in, drop, alter and grant on an object.
    Manage,
}

impl Privilege {
    /// Every privilege `ALL` stands for.
    pub const ALL: [Privilege; 8] = [
        Privilege::Select,
        Privilege::Insert,
        Privilege::Update,
        Privilege::Delete,
        Privilege::Usage,
        Privilege::Train,
        Privilege::Predict,
        Privilege::Manage,
    ];

    /// The privilege `GRANT` spells `word` (upper case).
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == word)
    }

    /// Upper-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
            Privilege::Usage => "USAGE",
            Privilege::Train => "TRAIN",
            Privilege::Predict => "PREDICT",
            Privilege::Manage => "MANAGE",
        }
    }
}

/// An object privileges are granted on or that has an owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Securable {
    /// The lake catalog.
    Catalog,
    /// A lake schema.
    Schema(String),
    /// A lake table, `schema.table`.
    Table(String),
    /// A source.
    Source(String),
    /// A model.
    Model(String),
    /// A job.
    Job(String),
    /// A drift monitor.
    Monitor(String),
    /// A pipeline template.
    Template(String),
    /// A pipeline stamped from a template.
    Pipeline(String),
}

impl Securable {
    /// A lake table.
    pub fn table(name: &TableName) -> Self {
        Securable::Table(format!("{}.{}", name.schema, name.table))
    }

    /// Lower-case kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Securable::Catalog => "catalog",
            Securable::Schema(_) => "schema",
            Securable::Table(_) => "table",
            Securable::Source(_) => "source",
            Securable::Model(_) => "model",
            Securable::Job(_) => "job",
            Securable::Monitor(_) => "monitor",
            Securable::Template(_) => "template",
            Securable::Pipeline(_) => "pipeline",
        }
    }

    /// The object's name (`lake` for the catalog).
    pub fn name(&self) -> &str {
        match self {
            Securable::Catalog => crate::lake::LAKE_CATALOG,
            Securable::Schema(n)
            | Securable::Table(n)
            | Securable::Source(n)
            | Securable::Model(n)
            | Securable::Job(n)
            | Securable::Monitor(n)
            | Securable::Template(n)
            | Securable::Pipeline(n) => n,
        }
    }

    /// The objects whose privileges cover this one, nearest first.
    fn parents(&self) -> Vec<Securable> {
        match self {
            Securable::Catalog => vec![],
            Securable::Table(n) => {
                let schema = n.split_once('.').map_or(n.as_str(), |(s, _)| s);
                vec![Securable::Schema(schema.to_string()), Securable::Catalog]
            }
            _ => vec![Securable::Catalog],
        }
    }

    /// The securable an access's object is.
    pub fn of(object: &Object) -> Option<Securable> {
        Some(match object {
            Object::Table(t) => Securable::table(t),
            Object::Schema(s) => Securable::Schema(s.clone()),
            Object::Monitor(m) => Securable::Monitor(m.clone()),
            Object::Model(m) => Securable::Model(m.clone()),
            Object::Source(s) => Securable::Source(s.clone()),
            Object::Job(j) => Securable::Job(j.clone()),
            Object::Template(t) => Securable::Template(t.clone()),
            Object::Pipeline(p) => Securable::Pipeline(p.clone()),
            Object::Catalog => Securable::Catalog,
            Object::Other(_) | Object::System(_) | Object::Account => return None,
        })
    }
}

impl std::fmt::Display for Securable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// Who holds a grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Holder {
    /// A user.
    User(String),
    /// A role.
    Role(String),
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::User(u) => write!(f, "user {u}"),
            Holder::Role(r) => write!(f, "role {r}"),
        }
    }
}

/// One granted privilege.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Who holds it.
    pub holder: Holder,
    /// What it allows.
    pub privilege: Privilege,
    /// On what.
    pub object: Securable,
    /// Who granted it.
    pub grantor: String,
    /// When.
    pub granted_at: DateTime<Utc>,
}

impl Grant {
    fn key(holder: &Holder, privilege: Privilege, object: &Securable) -> String {
        doc_key(&serde_json::json!([holder, privilege, object]).to_string())
    }
}

/// A custom role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Role {
    /// The role's name.
    pub name: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Who owns an object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ownership {
    /// The object.
    pub object: Securable,
    /// Its owner.
    pub owner: String,
}

/// A row policy: rows of `table` the named roles and users see.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policy {
    /// The policy's name, unique per table.
    pub name: String,
    /// `schema.table`.
    pub table: String,
    /// Roles or users it applies to; everyone when empty.
    pub to: Vec<String>,
    /// The predicate, as SQL.
    pub using: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A column mask: what everyone reads instead of the column's values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mask {
    /// `schema.table`.
    pub table: String,
    /// The column.
    pub column: String,
    /// The expression, as SQL, over the table's columns.
    pub mask: String,
    /// Who set it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A document name for any key: the key's SHA-256, so names of any
/// spelling map to safe file names.
fn doc_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything governance knows at one generation.
#[derive(Debug, Default)]
pub struct State {
    /// User name → roles, for every user of the lake.
    pub users: HashMap<String, Vec<String>>,
    /// Custom roles.
    pub roles: BTreeSet<String>,
    /// Every grant.
    pub grants: Vec<Grant>,
    /// Object → owner.
    pub owners: HashMap<Securable, String>,
    /// Row policies.
    pub policies: Vec<Policy>,
    /// Column masks.
    pub masks: Vec<Mask>,
    /// Tags set on columns.
    pub tags: Vec<ColumnTag>,
}

/// A tag on a column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnTag {
    /// `schema.table`.
    pub table: String,
    /// The column.
    pub column: String,
    /// The tag.
    pub tag: String,
    /// Who set it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl State {
    /// The roles `principal` acts with: the stored user's (revocations
    /// apply at once), or the principal's own for a user not stored (the
    /// local admin of an embedded lake).
    pub fn roles_of(&self, principal: &Principal) -> Vec<String> {
        match self.users.get(&principal.name) {
            Some(roles) => roles.clone(),
            None if principal.stored => Vec::new(),
            None => principal.roles.clone(),
        }
    }

    /// Whether the principal holds the role (directly by name).
    pub fn is_member(&self, principal: &Principal, role: &str) -> bool {
        principal.name == role || self.roles_of(principal).iter().any(|r| r == role)
    }

    /// Whether `principal` is an administrator.
    pub fn is_admin(&self, principal: &Principal) -> bool {
        self.roles_of(principal).iter().any(|r| r == "admin")
    }

    /// The owner of `object` (`admin` for objects made before ownership
    /// was recorded).
    pub fn owner(&self, object: &Securable) -> &str {
        self.owners.get(object).map_or("admin", String::as_str)
    }

    /// Whether `principal` holds `privilege` on `object`: as admin, as the
    /// owner of it or of its schema, through a built-in role, or by a grant
    /// to the user or one of their roles on it or an object covering it.
    pub fn allows(&self, principal: &Principal, privilege: Privilege, object: &Securable) -> bool {
        let roles = self.roles_of(principal);
        if roles.iter().any(|r| r == "admin") {
            return true;
        }
        let mut covering = vec![object.clone()];
        covering.extend(object.parents());
        // Owning an object, or the schema holding it.
        if covering
            .iter()
            .filter(|o| !matches!(o, Securable::Catalog))
            .any(|o| self.owner(o) == principal.name)
        {
            return true;
        }
        if roles.iter().any(|r| builtin_allows(r, privilege, object)) {
            return true;
        }
        self.grants.iter().any(|g| {
            g.privilege == privilege
                && covering.contains(&g.object)
                && match &g.holder {
                    Holder::User(u) => *u == principal.name,
                    Holder::Role(r) => roles.contains(r),
                }
        })
    }

    fn require(
        &self,
        principal: &Principal,
        privilege: Privilege,
        object: &Securable,
    ) -> Result<()> {
        if self.allows(principal, privilege, object) {
            Ok(())
        } else {
            Err(denied(principal, privilege.as_str(), object))
        }
    }

    /// Owning `object` or holding MANAGE on it.
    pub fn may_manage(&self, principal: &Principal, object: &Securable) -> bool {
        self.allows(principal, Privilege::Manage, object)
    }

    /// Checks every access of a statement; the first one refused is the
    /// error, naming the privilege and the object.
    pub fn check(&self, principal: &Principal, accesses: &[Access]) -> Result<()> {
        if principal.stored && !self.users.contains_key(&principal.name) {
            return Err(Error::PermissionDenied(format!(
                "user {} does not exist (any more)",
                principal.name
            )));
        }
        for access in accesses {
            self.check_one(principal, access)?;
        }
        Ok(())
    }

    fn check_one(&self, principal: &Principal, access: &Access) -> Result<()> {
        use Action as A;
        let p = principal;
        match (&access.object, access.action) {
            (Object::Account, _) => {
                if self.is_admin(p) {
                    Ok(())
                } else {
                    Err(Error::PermissionDenied(format!(
                        "user {} lacks the admin role needed to manage users, roles and role membership",
                        p.name
                    )))
                }
            }
            (Object::System(table), A::Alter) => {
                if self.is_admin(p) {
                    Ok(())
                } else {
                    Err(Error::PermissionDenied(format!(
                        "user {} lacks the admin role needed to maintain {SYSTEM_SCHEMA}.{table}",
                        p.name
                    )))
                }
            }
            (Object::System(table), _) => {
                if PROTECTED_SYSTEM_TABLES.contains(&table.as_str()) {
                    let system = Securable::Schema(SYSTEM_SCHEMA.to_string());
                    if !self.allows(p, Privilege::Select, &system) && !self.is_member(p, "auditor")
                    {
                        return Err(denied(p, "SELECT", &system));
                    }
                }
                Ok(())
            }
            (Object::Other(_), _) => Ok(()),
            (Object::Table(t), _) if t.schema == "information_schema" => Ok(()),
            (object, action) => {
                let Some(s) = Securable::of(object) else {
                    return Ok(());
                };
                match (&s, action) {
                    (Securable::Table(_), A::Select) => self.require(p, Privilege::Select, &s),
                    (Securable::Table(_), A::Insert) => self.require(p, Privilege::Insert, &s),
                    (Securable::Table(_), A::Update) => self.require(p, Privilege::Update, &s),
                    (Securable::Table(_), A::Delete) => self.require(p, Privilege::Delete, &s),
                    (Securable::Table(_), A::Create) => {
                        let schema = s.parents().remove(0);
                        self.require(p, Privilege::Manage, &schema)
                    }
                    (Securable::Source(_), A::Select) => {
                        if self.allows(p, Privilege::Usage, &s)
                            || self.allows(p, Privilege::Select, &s)
                        {
                            Ok(())
                        } else {
                            Err(denied(p, "USAGE", &s))
                        }
                    }
                    (Securable::Model(_), A::Create) => {
                        // A new model needs TRAIN on the catalog; a new
                        // version, TRAIN on the model (which covers it).
                        self.require(p, Privilege::Train, &s)
                    }
                    (Securable::Model(_), A::Select) => {
                        if self.allows(p, Privilege::Predict, &s)
                            || self.allows(p, Privilege::Train, &s)
                        {
                            Ok(())
                        } else {
                            Err(denied(p, "PREDICT", &s))
                        }
                    }
                    // Monitors are read and run by whoever may read their
                    // table (checked when the check's plan is built).
                    (Securable::Monitor(_), A::Select) => Ok(()),
                    // A template is text anyone may read and stamp, and
                    // anyone may write one: a pipeline's statements are
                    // each checked as its creator's own.
                    (Securable::Template(_), A::Select | A::Create) => Ok(()),
                    (Securable::Pipeline(_), A::Create) => Ok(()),
                    (Securable::Monitor(_) | Securable::Job(_), A::Create) => {
                        self.require(p, Privilege::Manage, &Securable::Catalog)
                    }
                    (Securable::Schema(_) | Securable::Source(_), A::Create) => {
                        self.require(p, Privilege::Manage, &Securable::Catalog)
                    }
                    (_, A::Select) => self.require(p, Privilege::Select, &s),
                    (_, A::Insert) => self.require(p, Privilege::Insert, &s),
                    (_, A::Update) => self.require(p, Privilege::Update, &s),
                    (_, A::Delete) => self.require(p, Privilege::Delete, &s),
                    (_, A::Create | A::Drop | A::Alter) => self.require(p, Privilege::Manage, &s),
                }
            }
        }
    }

    /// The row policies of `table` that apply to `principal`.
    pub fn policies_for(&self, principal: &Principal, table: &TableName) -> Vec<&Policy> {
        let key = format!("{}.{}", table.schema, table.table);
        self.policies
            .iter()
            .filter(|p| p.table == key)
            .filter(|p| p.to.is_empty() || p.to.iter().any(|r| self.is_member(principal, r)))
            .collect()
    }

    /// The column masks of `table`.
    pub fn masks_of(&self, table: &TableName) -> Vec<&Mask> {
        let key = format!("{}.{}", table.schema, table.table);
        self.masks.iter().filter(|m| m.table == key).collect()
    }

    /// Whether `table` has a policy or mask that applies to `principal`.
    pub fn bounds(&self, principal: &Principal, table: &TableName) -> bool {
        !self.policies_for(principal, table).is_empty() || !self.masks_of(table).is_empty()
    }
}

/// What the built-in roles may do without grants.
fn builtin_allows(role: &str, privilege: Privilege, object: &Securable) -> bool {
    use Privilege as P;
    match role {
        "admin" => true,
        "engineer" => {
            !matches!(object, Securable::Model(_))
                && !matches!(privilege, P::Train | P::Predict)
                && !is_system(object)
        }
        "scientist" => match object {
            Securable::Model(_) | Securable::Catalog
                if matches!(privilege, P::Train | P::Predict) =>
            {
                true
            }
            Securable::Table(_) | Securable::Schema(_) if in_sandbox(object) => true,
            Securable::Table(_) if privilege == P::Select => !is_system(object),
            _ => false,
        },
        "auditor" => privilege == P::Select && is_system(object),
        _ => false,
    }
}

fn in_sandbox(object: &Securable) -> bool {
    match object {
        Securable::Schema(s) => s == SANDBOX_SCHEMA,
        Securable::Table(t) => t.split_once('.').is_some_and(|(s, _)| s == SANDBOX_SCHEMA),
        _ => false,
    }
}

fn is_system(object: &Securable) -> bool {
    match object {
        Securable::Schema(s) => s == SYSTEM_SCHEMA,
        Securable::Table(t) => t.split_once('.').is_some_and(|(s, _)| s == SYSTEM_SCHEMA),
        _ => false,
    }
}

/// The error for a refused privilege.
pub fn denied(principal: &Principal, privilege: &str, object: &Securable) -> Error {
    Error::PermissionDenied(format!(
        "user {} lacks {privilege} on {object}",
        principal.name
    ))
}

/// The lake's governance documents, with a cached [`State`].
#[derive(Debug)]
pub struct Governance {
    lake: Arc<Lake>,
    roles: DocStore<Role>,
    grants: DocStore<Grant>,
    owners: DocStore<Ownership>,
    policies: DocStore<Policy>,
    masks: DocStore<Mask>,
    tags: DocStore<ColumnTag>,
    cached: RwLock<(Option<String>, Arc<State>)>,
}

impl Governance {
    /// The governance of `lake`.
    pub fn new(lake: Arc<Lake>) -> Self {
        Self {
            roles: DocStore::new(Arc::clone(&lake), "governance/roles", "role"),
            grants: DocStore::new(Arc::clone(&lake), "governance/grants", "grant"),
            owners: DocStore::new(Arc::clone(&lake), "governance/owners", "owner"),
            policies: DocStore::new(Arc::clone(&lake), "governance/policies", "policy"),
            masks: DocStore::new(Arc::clone(&lake), "governance/masks", "mask"),
            tags: DocStore::new(Arc::clone(&lake), "governance/tags", "column tag"),
            lake,
            cached: RwLock::new((None, Arc::default())),
        }
    }

    fn generation_path(&self) -> object_store::path::Path {
        self.lake.path("governance").join("generation")
    }

    async fn generation(&self) -> Result<Option<String>> {
        match self.lake.store().get(&self.generation_path()).await {
            Ok(found) => Ok(Some(
                String::from_utf8_lossy(&found.bytes().await?).into_owned(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Marks a change, so every process reloads at its next statement.
    pub async fn changed(&self) -> Result<()> {
        let token = crate::governance::accounts::random_token(16);
        self.lake
            .store()
            .put(
                &self.generation_path(),
                PutPayload::from(token.into_bytes()),
            )
            .await?;
        self.cached.write().unwrap_or_else(|e| e.into_inner()).0 = None;
        Ok(())
    }

    /// The current state, reloaded when another statement or process
    /// changed it.
    pub async fn state(&self) -> Result<Arc<State>> {
        let generation = self.generation().await?.unwrap_or_default();
        {
            let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
            if cached.0.as_deref() == Some(generation.as_str()) {
                return Ok(Arc::clone(&cached.1));
            }
        }
        let state = Arc::new(self.load().await?);
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) =
            (Some(generation), Arc::clone(&state));
        Ok(state)
    }

    /// The last state loaded, without touching the store (for the plan
    /// rule, which runs inside a statement that loaded it).
    pub fn cached(&self) -> Arc<State> {
        Arc::clone(&self.cached.read().unwrap_or_else(|e| e.into_inner()).1)
    }

    async fn load(&self) -> Result<State> {
        let users = crate::governance::accounts::UserStore::new(Arc::clone(&self.lake))
            .list()
            .await?
            .into_iter()
            .map(|u| (u.name, u.roles))
            .collect();
        Ok(State {
            users,
            roles: self
                .roles
                .list()
                .await?
                .into_iter()
                .map(|r| r.name)
                .collect(),
            grants: self.grants.list().await?,
            owners: self
                .owners
                .list()
                .await?
                .into_iter()
                .map(|o| (o.object, o.owner))
                .collect(),
            policies: self.policies.list().await?,
            masks: self.masks.list().await?,
            tags: self.tags.list().await?,
        })
    }

    /// Creates a role; `false` when it exists.
    pub async fn create_role(&self, name: &str, by: &str) -> Result<bool> {
        let created = self
            .roles
            .create(
                &doc_key(name),
                &Role {
                    name: name.to_string(),
                    created_by: by.to_string(),
                    created_at: Utc::now(),
                },
            )
            .await?;
        self.changed().await?;
        Ok(created)
    }

    /// Drops a role and its grants; `false` when there was none.
    pub async fn drop_role(&self, name: &str) -> Result<bool> {
        let dropped = self.roles.delete(&doc_key(name)).await?;
        let state = self.load().await?;
        for g in &state.grants {
            if g.holder == Holder::Role(name.to_string()) {
                self.grants
                    .delete(&Grant::key(&g.holder, g.privilege, &g.object))
                    .await?;
            }
        }
        self.changed().await?;
        Ok(dropped)
    }

    /// Grants `privilege` on `object` to `holder` (idempotent).
    pub async fn grant(
        &self,
        holder: &Holder,
        privilege: Privilege,
        object: &Securable,
        grantor: &str,
    ) -> Result<()> {
        let grant = Grant {
            holder: holder.clone(),
            privilege,
            object: object.clone(),
            grantor: grantor.to_string(),
            granted_at: Utc::now(),
        };
        self.grants
            .create(&Grant::key(holder, privilege, object), &grant)
            .await?;
        Ok(())
    }

    /// Revokes a grant; `false` when it was not held.
    pub async fn revoke(
        &self,
        holder: &Holder,
        privilege: Privilege,
        object: &Securable,
    ) -> Result<bool> {
        self.grants
            .delete(&Grant::key(holder, privilege, object))
            .await
    }

    /// Records the owner of a new object (kept when one is recorded).
    pub async fn own(&self, object: &Securable, owner: &str) -> Result<()> {
        let doc = Ownership {
            object: object.clone(),
            owner: owner.to_string(),
        };
        if self.owners.create(&owner_key(object), &doc).await? {
            self.changed().await?;
        }
        Ok(())
    }

    /// Gives an object a new owner.
    pub async fn set_owner(&self, object: &Securable, owner: &str) -> Result<()> {
        let doc = Ownership {
            object: object.clone(),
            owner: owner.to_string(),
        };
        self.owners.put(&owner_key(object), &doc).await?;
        self.changed().await
    }

    /// Forgets a dropped object: its owner, grants, policies and masks.
    pub async fn forget(&self, object: &Securable) -> Result<()> {
        let state = self.load().await?;
        let mut touched = self.owners.delete(&owner_key(object)).await?;
        for g in state.grants.iter().filter(|g| g.object == *object) {
            touched |= self
                .grants
                .delete(&Grant::key(&g.holder, g.privilege, &g.object))
                .await?;
        }
        // A table's boundaries; for a schema, those of every table in it.
        let covers = |table: &str| match object {
            Securable::Table(t) => table == t,
            Securable::Schema(s) => table.split_once('.').is_some_and(|(ts, _)| ts == s),
            _ => false,
        };
        for p in state.policies.iter().filter(|p| covers(&p.table)) {
            touched |= self.policies.delete(&policy_key(&p.table, &p.name)).await?;
        }
        for m in state.masks.iter().filter(|m| covers(&m.table)) {
            touched |= self.masks.delete(&mask_key(&m.table, &m.column)).await?;
        }
        for t in state.tags.iter().filter(|t| covers(&t.table)) {
            touched |= self
                .tags
                .delete(&tag_key(&t.table, &t.column, &t.tag))
                .await?;
        }
        for g in state
            .grants
            .iter()
            .filter(|g| matches!(&g.object, Securable::Table(t) if covers(t)))
        {
            touched |= self
                .grants
                .delete(&Grant::key(&g.holder, g.privilege, &g.object))
                .await?;
        }
        for o in state
            .owners
            .keys()
            .filter(|o| matches!(o, Securable::Table(t) if covers(t)))
        {
            touched |= self.owners.delete(&owner_key(o)).await?;
        }
        if touched {
            self.changed().await?;
        }
        Ok(())
    }

    /// Adds a row policy; `false` when the table has one of that name.
    pub async fn create_policy(&self, policy: &Policy) -> Result<bool> {
        let created = self
            .policies
            .create(&policy_key(&policy.table, &policy.name), policy)
            .await?;
        self.changed().await?;
        Ok(created)
    }

    /// Drops a row policy; `false` when there was none.
    pub async fn drop_policy(&self, table: &str, name: &str) -> Result<bool> {
        let dropped = self.policies.delete(&policy_key(table, name)).await?;
        self.changed().await?;
        Ok(dropped)
    }

    /// Sets (or replaces) a column mask.
    pub async fn set_mask(&self, mask: &Mask) -> Result<()> {
        self.masks
            .put(&mask_key(&mask.table, &mask.column), mask)
            .await?;
        self.changed().await
    }

    /// Sets tags on a column (a tag set already stays as it was).
    pub async fn set_tags(&self, tags: &[ColumnTag]) -> Result<()> {
        for t in tags {
            self.tags
                .create(&tag_key(&t.table, &t.column, &t.tag), t)
                .await?;
        }
        self.changed().await
    }

    /// Removes a tag from a column; `false` when it was not set.
    pub async fn unset_tag(&self, table: &str, column: &str, tag: &str) -> Result<bool> {
        let removed = self.tags.delete(&tag_key(table, column, tag)).await?;
        self.changed().await?;
        Ok(removed)
    }

    /// Drops a column mask; `false` when there was none.
    pub async fn drop_mask(&self, table: &str, column: &str) -> Result<bool> {
        let dropped = self.masks.delete(&mask_key(table, column)).await?;
        self.changed().await?;
        Ok(dropped)
    }
}

fn owner_key(object: &Securable) -> String {
    doc_key(&serde_json::json!(object).to_string())
}

fn tag_key(table: &str, column: &str, tag: &str) -> String {
    doc_key(&format!("{table}\u{0}{column}\u{0}{tag}"))
}

fn policy_key(table: &str, name: &str) -> String {
    doc_key(&format!("{table}\u{0}{name}"))
}

fn mask_key(table: &str, column: &str) -> String {
    doc_key(&format!("{table}\u{0}{column}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, roles: &[&str]) -> Principal {
        Principal {
            name: name.to_string(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            stored: true,
        }
    }

    #[test]
    fn built_in_roles_and_grants() {
        let mut state = State::default();
        for (u, r) in [
            ("eng", "engineer"),
            ("sci", "scientist"),
            ("aud", "auditor"),
            ("nob", "analyst"),
        ] {
            state.users.insert(u.to_string(), vec![r.to_string()]);
        }
        let t = Securable::Table("sales.orders".into());
        let sand = Securable::Table("sandbox.scores".into());
        let model = Securable::Model("churn".into());
        let sys = Securable::Schema("system".into());
        let p = |n: &str| user(n, &[]);
        assert!(state.allows(&p("eng"), Privilege::Insert, &t));
        assert!(!state.allows(&p("eng"), Privilege::Train, &model));
        assert!(state.allows(&p("sci"), Privilege::Select, &t));
        assert!(!state.allows(&p("sci"), Privilege::Insert, &t));
        assert!(state.allows(&p("sci"), Privilege::Insert, &sand));
        assert!(state.allows(&p("sci"), Privilege::Predict, &model));
        assert!(!state.allows(&p("aud"), Privilege::Select, &t));
        assert!(state.allows(&p("aud"), Privilege::Select, &sys));
        assert!(!state.allows(&p("nob"), Privilege::Select, &t));
        state.grants.push(Grant {
            holder: Holder::Role("analyst".into()),
            privilege: Privilege::Select,
            object: Securable::Schema("sales".into()),
            grantor: "admin".into(),
            granted_at: Utc::now(),
        });
        assert!(state.allows(&p("nob"), Privilege::Select, &t));
        assert!(!state.allows(&p("nob"), Privilege::Delete, &t));
        state.owners.insert(t.clone(), "nob".into());
        assert!(state.allows(&p("nob"), Privilege::Delete, &t));
        let err = state
            .check(
                &p("aud"),
                &[Access {
                    action: Action::Select,
                    object: Object::Table(TableName::new("sales", "orders")),
                }],
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "permission denied: user aud lacks SELECT on table sales.orders"
        );
        // A user removed from the lake loses access at once.
        assert!(state.check(&p("gone"), &[]).is_err());
        assert!(state.check(&Principal::local_admin(), &[]).is_ok());
    }
}
