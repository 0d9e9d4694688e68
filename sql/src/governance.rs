//! Governance statements: users, roles, grants, ownership, row policies,
//! column masks and the audit log.
//!
//! ```text
//! CREATE USER [IF NOT EXISTS] u PASSWORD '…' [ROLE r [, r …]]
//! ALTER USER u PASSWORD '…'            DROP USER [IF EXISTS] u
//! CREATE ROLE [IF NOT EXISTS] r        DROP ROLE [IF EXISTS] r
//! GRANT ROLE r TO [USER] u             REVOKE ROLE r FROM [USER] u
//! GRANT p [, p …] ON kind name TO ROLE r | [USER] u
//! REVOKE p [, p …] ON kind name FROM ROLE r | [USER] u
//! SHOW GRANTS [FOR [USER | ROLE] x]    SHOW USERS    SHOW ROLES
//! CREATE POLICY p ON t [TO r [, r …]] USING (predicate)
//! DROP POLICY [IF EXISTS] p ON t
//! ALTER TABLE t ALTER COLUMN c SET MASK (expr) | DROP MASK
//! ALTER TABLE t ALTER COLUMN c SET TAGS ('x', …) | UNSET TAGS ('x', …)
//! ALTER TABLE|SCHEMA|SOURCE|MODEL|JOB|MONITOR name OWNER TO [USER] u
//! VERIFY AUDIT LOG
//! ```
//!
//! Privileges are `SELECT INSERT UPDATE DELETE ALL USAGE TRAIN PREDICT
//! MANAGE` and objects `CATALOG SCHEMA TABLE SOURCE MODEL JOB`; the parser
//! checks both lists so a typo is a syntax error with its position.

use std::fmt;

use datafusion::sql::sqlparser::ast::{Expr, Ident, ObjectName};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::Result;
use crate::tokens::{
    eat_word, eat_words, expect_token, expect_word, expected, parse_object_name, parse_string,
    sql_error, word,
};

/// Privileges `GRANT` accepts.
pub const PRIVILEGES: [&str; 9] = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "ALL", "USAGE", "TRAIN", "PREDICT", "MANAGE",
];

/// Object kinds privileges are granted on.
pub const GRANT_OBJECTS: [&str; 6] = ["CATALOG", "SCHEMA", "TABLE", "SOURCE", "MODEL", "JOB"];

/// Object kinds `ALTER … OWNER TO` accepts.
pub const OWNED_OBJECTS: [&str; 6] = ["TABLE", "SCHEMA", "SOURCE", "MODEL", "JOB", "MONITOR"];

/// Who receives or loses a privilege.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// A user.
    User(Ident),
    /// A role.
    Role(Ident),
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::User(u) => write!(f, "USER {u}"),
            Grantee::Role(r) => write!(f, "ROLE {r}"),
        }
    }
}

/// A governance statement.
#[derive(Debug, Clone)]
pub enum Governance {
    /// `CREATE USER [IF NOT EXISTS] u PASSWORD '…' [ROLE r, …]`
    CreateUser {
        /// The login name.
        name: Ident,
        /// No error when the user exists.
        if_not_exists: bool,
        /// The password (never shown in messages or the audit log).
        password: String,
        /// Roles granted at creation.
        roles: Vec<Ident>,
    },
    /// `ALTER USER u PASSWORD '…'`
    AlterUserPassword {
        /// The user.
        name: Ident,
        /// The new password.
        password: String,
    },
    /// `DROP USER [IF EXISTS] u`
    DropUser {
        /// The user.
        name: Ident,
        /// No error when absent.
        if_exists: bool,
    },
    /// `CREATE ROLE [IF NOT EXISTS] r`
    CreateRole {
        /// The role.
        name: Ident,
        /// No error when it exists.
        if_not_exists: bool,
    },
    /// `DROP ROLE [IF EXISTS] r`
    DropRole {
        /// The role.
        name: Ident,
        /// No error when absent.
        if_exists: bool,
    },
    /// `GRANT ROLE r TO [USER] u` / `REVOKE ROLE r FROM [USER] u`
    RoleMembership {
        /// `true` for GRANT.
        grant: bool,
        /// The role.
        role: Ident,
        /// The user.
        user: Ident,
    },
    /// `GRANT … ON kind name TO …` / `REVOKE … ON kind name FROM …`
    Privileges {
        /// `true` for GRANT.
        grant: bool,
        /// Upper-case privileges, from [`PRIVILEGES`].
        privileges: Vec<String>,
        /// Upper-case object kind, from [`GRANT_OBJECTS`].
        object_kind: String,
        /// The object.
        object: ObjectName,
        /// Who.
        grantee: Grantee,
    },
    /// `SHOW GRANTS [FOR …]`
    ShowGrants(Option<Grantee>),
    /// `SHOW USERS`
    ShowUsers,
    /// `SHOW ROLES`
    ShowRoles,
    /// `CREATE POLICY p ON t [TO r, …] USING (predicate)`
    CreatePolicy {
        /// The policy's name (unique per table).
        name: Ident,
        /// The table filtered.
        table: ObjectName,
        /// Roles or users it applies to; everyone when empty.
        to: Vec<Ident>,
        /// Rows visible to them.
        using: Expr,
    },
    /// `DROP POLICY [IF EXISTS] p ON t`
    DropPolicy {
        /// The policy.
        name: Ident,
        /// Its table.
        table: ObjectName,
        /// No error when absent.
        if_exists: bool,
    },
    /// `ALTER TABLE t ALTER COLUMN c SET MASK (expr)` / `DROP MASK`
    Mask {
        /// The table.
        table: ObjectName,
        /// The column masked.
        column: Ident,
        /// The mask; `None` drops it.
        mask: Option<Expr>,
    },
    /// `ALTER TABLE t ALTER COLUMN c SET TAGS ('x', …)` / `UNSET TAGS (…)`
    Tags {
        /// The table.
        table: ObjectName,
        /// The column tagged.
        column: Ident,
        /// The tags, as written.
        tags: Vec<String>,
        /// `true` for SET, `false` for UNSET.
        set: bool,
    },
    /// `ALTER kind name OWNER TO [USER] u`
    AlterOwner {
        /// Upper-case object kind, from [`OWNED_OBJECTS`].
        object_kind: String,
        /// The object.
        object: ObjectName,
        /// The new owner.
        owner: Ident,
    },
    /// `VERIFY AUDIT LOG`
    VerifyAuditLog,
}

impl Governance {
    /// The statement's kind, as recorded in commits and the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            Governance::CreateUser { .. } => "CREATE USER",
            Governance::AlterUserPassword { .. } => "ALTER USER",
            Governance::DropUser { .. } => "DROP USER",
            Governance::CreateRole { .. } => "CREATE ROLE",
            Governance::DropRole { .. } => "DROP ROLE",
            Governance::RoleMembership { grant: true, .. }
            | Governance::Privileges { grant: true, .. } => "GRANT",
            Governance::RoleMembership { grant: false, .. }
            | Governance::Privileges { grant: false, .. } => "REVOKE",
            Governance::ShowGrants(_) => "SHOW GRANTS",
            Governance::ShowUsers => "SHOW USERS",
            Governance::ShowRoles => "SHOW ROLES",
            Governance::CreatePolicy { .. } => "CREATE POLICY",
            Governance::DropPolicy { .. } => "DROP POLICY",
            Governance::Mask { .. } | Governance::Tags { .. } => "ALTER TABLE",
            Governance::AlterOwner { .. } => "ALTER OWNER",
            Governance::VerifyAuditLog => "VERIFY AUDIT LOG",
        }
    }

    /// Whether the statement carries a password (its text must be shown
    /// redacted).
    pub fn has_secret(&self) -> bool {
        matches!(
            self,
            Governance::CreateUser { .. } | Governance::AlterUserPassword { .. }
        )
    }
}

/// Parses a governance statement if the tokens ahead start one; `None`
/// leaves the parser where it was.
pub(crate) fn parse(p: &mut Parser<'_>) -> Result<Option<Governance>> {
    let w0 = word(p, 0);
    let w1 = word(p, 1);
    let statement = match (w0.as_deref(), w1.as_deref()) {
        (Some("CREATE"), Some("USER")) => {
            advance(p, 2);
            let if_not_exists = eat_words(p, &["IF", "NOT", "EXISTS"]);
            let name = ident(p, "a user name")?;
            expect_word(p, "PASSWORD")?;
            let password = parse_string(p, "a password string")?;
            let roles = if eat_word(p, "ROLE") || eat_word(p, "ROLES") {
                ident_list(p, "a role name")?
            } else {
                Vec::new()
            };
            Governance::CreateUser {
                name,
                if_not_exists,
                password,
                roles,
            }
        }
        (Some("ALTER"), Some("USER")) => {
            advance(p, 2);
            let name = ident(p, "a user name")?;
            expect_word(p, "PASSWORD")?;
            let password = parse_string(p, "a password string")?;
            Governance::AlterUserPassword { name, password }
        }
        (Some("DROP"), Some("USER")) => {
            advance(p, 2);
            let if_exists = eat_words(p, &["IF", "EXISTS"]);
            Governance::DropUser {
                name: ident(p, "a user name")?,
                if_exists,
            }
        }
        (Some("CREATE"), Some("ROLE")) => {
            advance(p, 2);
            let if_not_exists = eat_words(p, &["IF", "NOT", "EXISTS"]);
            Governance::CreateRole {
                name: ident(p, "a role name")?,
                if_not_exists,
            }
        }
        (Some("DROP"), Some("ROLE")) => {
            advance(p, 2);
            let if_exists = eat_words(p, &["IF", "EXISTS"]);
            Governance::DropRole {
                name: ident(p, "a role name")?,
                if_exists,
            }
        }
        (Some("GRANT" | "REVOKE"), Some("ROLE")) => {
            let grant = w0.as_deref() == Some("GRANT");
            advance(p, 2);
            let role = ident(p, "a role name")?;
            expect_word(p, if grant { "TO" } else { "FROM" })?;
            eat_word(p, "USER");
            let user = ident(p, "a user name")?;
            Governance::RoleMembership { grant, role, user }
        }
        (Some("GRANT" | "REVOKE"), _) => {
            let grant = w0.as_deref() == Some("GRANT");
            advance(p, 1);
            parse_privileges(p, grant)?
        }
        (Some("SHOW"), Some("GRANTS")) => {
            advance(p, 2);
            let grantee = if eat_word(p, "FOR") {
                Some(grantee(p)?)
            } else {
                None
            };
            Governance::ShowGrants(grantee)
        }
        (Some("SHOW"), Some("USERS")) => {
            advance(p, 2);
            Governance::ShowUsers
        }
        (Some("SHOW"), Some("ROLES")) => {
            advance(p, 2);
            Governance::ShowRoles
        }
        (Some("CREATE"), Some("POLICY")) => {
            advance(p, 2);
            let name = ident(p, "a policy name")?;
            expect_word(p, "ON")?;
            let table = parse_object_name(p, "a table name")?;
            let to = if eat_word(p, "TO") {
                ident_list(p, "a role or user name")?
            } else {
                Vec::new()
            };
            expect_word(p, "USING")?;
            let using = parenthesized_expr(p, "the policy's predicate")?;
            Governance::CreatePolicy {
                name,
                table,
                to,
                using,
            }
        }
        (Some("DROP"), Some("POLICY")) => {
            advance(p, 2);
            let if_exists = eat_words(p, &["IF", "EXISTS"]);
            let name = ident(p, "a policy name")?;
            expect_word(p, "ON")?;
            let table = parse_object_name(p, "a table name")?;
            Governance::DropPolicy {
                name,
                table,
                if_exists,
            }
        }
        (Some("VERIFY"), Some("AUDIT")) => {
            advance(p, 2);
            expect_word(p, "LOG")?;
            Governance::VerifyAuditLog
        }
        (Some("ALTER"), Some(kind)) if OWNED_OBJECTS.contains(&kind) => {
            return parse_alter(p, kind.to_string());
        }
        _ => return Ok(None),
    };
    Ok(Some(statement))
}

/// `ALTER kind name OWNER TO u` and `ALTER TABLE t ALTER COLUMN c SET MASK
/// (…) | DROP MASK`; any other `ALTER` is rewound for DataFusion.
fn parse_alter(p: &mut Parser<'_>, kind: String) -> Result<Option<Governance>> {
    // The index of the ALTER token itself (not of whitespace before it).
    p.next_token();
    p.prev_token();
    let start = p.index();
    advance(p, 2);
    let Ok(object) = p.parse_object_name(false) else {
        rewind(p, start);
        return Ok(None);
    };
    if eat_words(p, &["OWNER", "TO"]) {
        eat_word(p, "USER");
        let owner = ident(p, "the new owner's user name")?;
        return Ok(Some(Governance::AlterOwner {
            object_kind: kind,
            object,
            owner,
        }));
    }
    if kind == "TABLE" && eat_word(p, "ALTER") {
        eat_word(p, "COLUMN");
        if let Ok(column) = p.parse_identifier() {
            if eat_words(p, &["SET", "MASK"]) {
                let mask = parenthesized_expr(p, "the mask expression")?;
                return Ok(Some(Governance::Mask {
                    table: object,
                    column,
                    mask: Some(mask),
                }));
            }
            if eat_words(p, &["DROP", "MASK"]) {
                return Ok(Some(Governance::Mask {
                    table: object,
                    column,
                    mask: None,
                }));
            }
            let set = eat_words(p, &["SET", "TAGS"]);
            if set || eat_words(p, &["UNSET", "TAGS"]) {
                return Ok(Some(Governance::Tags {
                    table: object,
                    column,
                    tags: parse_tag_list(p)?,
                    set,
                }));
            }
        }
    }
    rewind(p, start);
    Ok(None)
}

/// `('tag', …)`: at least one quoted tag.
fn parse_tag_list(p: &mut Parser<'_>) -> Result<Vec<String>> {
    crate::tokens::expect_token(p, &Token::LParen, "'(' and the tags")?;
    let mut tags = Vec::new();
    loop {
        if p.peek_token().token == Token::RParen {
            return Err(expected(p, "a tag in quotes such as 'pii'"));
        }
        tags.push(crate::tokens::parse_string(
            p,
            "a tag in quotes such as 'pii'",
        )?);
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    crate::tokens::expect_token(p, &Token::RParen, "')' after the tags")?;
    Ok(tags)
}

/// `p, … ON kind name TO|FROM grantee`, after GRANT or REVOKE.
fn parse_privileges(p: &mut Parser<'_>, grant: bool) -> Result<Governance> {
    let mut privileges = Vec::new();
    loop {
        let Some(w) = word(p, 0).filter(|w| PRIVILEGES.contains(&w.as_str())) else {
            return Err(expected(
                p,
                &format!("a privilege ({})", PRIVILEGES.join(", ")),
            ));
        };
        p.next_token();
        if w == "ALL" {
            eat_word(p, "PRIVILEGES");
        }
        if !privileges.contains(&w) {
            privileges.push(w);
        }
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    expect_word(p, "ON")?;
    let Some(object_kind) = word(p, 0).filter(|w| GRANT_OBJECTS.contains(&w.as_str())) else {
        return Err(expected(
            p,
            &format!("an object kind ({})", GRANT_OBJECTS.join(", ")),
        ));
    };
    p.next_token();
    let object = parse_object_name(p, &format!("a {} name", object_kind.to_lowercase()))?;
    expect_word(p, if grant { "TO" } else { "FROM" })?;
    let grantee = grantee(p)?;
    Ok(Governance::Privileges {
        grant,
        privileges,
        object_kind,
        object,
        grantee,
    })
}

/// `ROLE r` or `[USER] u`.
fn grantee(p: &mut Parser<'_>) -> Result<Grantee> {
    if eat_word(p, "ROLE") {
        return Ok(Grantee::Role(ident(p, "a role name")?));
    }
    eat_word(p, "USER");
    Ok(Grantee::User(ident(p, "a user name")?))
}

fn parenthesized_expr(p: &mut Parser<'_>, what: &str) -> Result<Expr> {
    expect_token(p, &Token::LParen, &format!("'(' before {what}"))?;
    let expr = p.parse_expr().map_err(|e| sql_error(p, e))?;
    expect_token(p, &Token::RParen, &format!("')' after {what}"))?;
    Ok(expr)
}

fn ident(p: &mut Parser<'_>, what: &str) -> Result<Ident> {
    if !matches!(p.peek_token().token, Token::Word(_)) {
        return Err(expected(p, what));
    }
    p.parse_identifier().map_err(|e| sql_error(p, e))
}

fn ident_list(p: &mut Parser<'_>, what: &str) -> Result<Vec<Ident>> {
    let mut out = vec![ident(p, what)?];
    while p.consume_token(&Token::Comma) {
        out.push(ident(p, what)?);
    }
    Ok(out)
}

fn advance(p: &mut Parser<'_>, n: usize) {
    for _ in 0..n {
        p.next_token();
    }
}

fn rewind(p: &mut Parser<'_>, to: usize) {
    while p.index() > to {
        p.prev_token();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Statement, parse};

    fn gov(sql: &str) -> Governance {
        let mut v = parse(sql).unwrap();
        assert_eq!(v.len(), 1, "{sql}");
        match v.remove(0).statement {
            Statement::Governance(g) => *g,
            other => panic!("{sql}: not governance: {other:?}"),
        }
    }

    #[test]
    fn users_roles_and_grants() {
        let Governance::CreateUser {
            name,
            password,
            roles,
            if_not_exists,
        } = gov("CREATE USER ana PASSWORD 's3cret' ROLE scientist, auditor")
        else {
            panic!()
        };
        assert_eq!(
            (name.value.as_str(), password.as_str(), if_not_exists),
            ("ana", "s3cret", false)
        );
        assert_eq!(roles.len(), 2);
        let Governance::Privileges {
            grant,
            privileges,
            object_kind,
            object,
            grantee,
        } = gov("GRANT select, INSERT ON TABLE lake.s.t TO ROLE analyst")
        else {
            panic!()
        };
        assert!(grant);
        assert_eq!(privileges, vec!["SELECT", "INSERT"]);
        assert_eq!(object_kind, "TABLE");
        assert_eq!(object.to_string(), "lake.s.t");
        assert_eq!(grantee, Grantee::Role(Ident::new("analyst")));
        let Governance::Privileges { grant, grantee, .. } =
            gov("REVOKE ALL PRIVILEGES ON SCHEMA s FROM bob")
        else {
            panic!()
        };
        assert!(!grant);
        assert_eq!(grantee, Grantee::User(Ident::new("bob")));
        assert!(matches!(
            gov("GRANT ROLE engineer TO USER bob"),
            Governance::RoleMembership { grant: true, .. }
        ));
        assert!(matches!(
            gov("SHOW GRANTS FOR ROLE r"),
            Governance::ShowGrants(Some(Grantee::Role(_)))
        ));
        assert!(matches!(gov("SHOW GRANTS"), Governance::ShowGrants(None)));
        assert!(matches!(
            gov("VERIFY AUDIT LOG"),
            Governance::VerifyAuditLog
        ));
    }

    #[test]
    fn column_tags() {
        let Governance::Tags {
            column, tags, set, ..
        } = gov("ALTER TABLE s.t ALTER COLUMN ssn SET TAGS ('pii', 'gdpr:art9')")
        else {
            panic!()
        };
        assert_eq!((column.value.as_str(), set), ("ssn", true));
        assert_eq!(tags, vec!["pii".to_string(), "gdpr:art9".to_string()]);
        assert!(matches!(
            gov("ALTER TABLE t ALTER COLUMN ssn UNSET TAGS ('pii')"),
            Governance::Tags { set: false, .. }
        ));
        let e = crate::parse("ALTER TABLE t ALTER COLUMN ssn SET TAGS ()").unwrap_err();
        assert!(e.to_string().contains("a tag in quotes"), "{e}");
    }

    #[test]
    fn policies_masks_and_owners() {
        let Governance::CreatePolicy { to, using, .. } =
            gov("CREATE POLICY eu ON sales.orders TO scientist USING (region = 'EU')")
        else {
            panic!()
        };
        assert_eq!(to.len(), 1);
        assert_eq!(using.to_string(), "region = 'EU'");
        let Governance::Mask { column, mask, .. } =
            gov("ALTER TABLE t ALTER COLUMN ssn SET MASK ('***' || right(ssn, 4))")
        else {
            panic!()
        };
        assert_eq!(column.value, "ssn");
        assert!(mask.is_some());
        assert!(matches!(
            gov("ALTER TABLE t ALTER COLUMN ssn DROP MASK"),
            Governance::Mask { mask: None, .. }
        ));
        assert!(matches!(
            gov("ALTER MODEL churn OWNER TO ana"),
            Governance::AlterOwner { .. }
        ));
        // Other ALTER TABLE forms still reach DataFusion.
        assert!(matches!(
            parse("ALTER TABLE t ADD COLUMN z INT").unwrap()[0].statement,
            Statement::Sql(_)
        ));
        assert!(matches!(
            parse("ALTER MODEL m SET STAGE 'production'").unwrap()[0].statement,
            Statement::AlterModelStage { .. }
        ));
        let v =
            parse("SELECT 1; ALTER TABLE t ADD COLUMN z DOUBLE; ALTER TABLE t OWNER TO x").unwrap();
        assert!(matches!(v[1].statement, Statement::Sql(_)));
        assert!(matches!(
            &v[2].statement,
            Statement::Governance(g) if matches!(**g, Governance::AlterOwner { .. })
        ));
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            crate::redact("CREATE USER ana PASSWORD 'p@ss' ROLE r"),
            "CREATE USER ana PASSWORD '***' ROLE r"
        );
        assert_eq!(
            crate::redact(
                "CREATE SOURCE s TYPE postgres OPTIONS (url 'postgres://u:pw@h/db', password 'x', host 'h')"
            ),
            "CREATE SOURCE s TYPE postgres OPTIONS (url 'postgres://u:***@h/db', password '***', host 'h')"
        );
        assert_eq!(crate::redact("SELECT 'it''s'"), "SELECT 'it''s'");
        assert_eq!(crate::redact("SELECT 'unterminated"), "SELECT '***'");
    }

    #[test]
    fn errors_name_what_was_expected() {
        let e = parse("GRANT FLY ON TABLE t TO bob").unwrap_err();
        assert!(e.message.contains("a privilege (SELECT"), "{e}");
        assert_eq!(e.column, 7);
        let e = parse("GRANT SELECT ON VIEW t TO bob").unwrap_err();
        assert!(e.message.contains("an object kind"), "{e}");
        let e = parse("CREATE USER bob").unwrap_err();
        assert!(e.message.contains("PASSWORD"), "{e}");
        let e = parse("CREATE POLICY p ON t USING region = 'EU'").unwrap_err();
        assert!(
            e.message.contains("'(' before the policy's predicate"),
            "{e}"
        );
    }
}
