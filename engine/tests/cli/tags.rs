//! Column tags: set and unset by those who manage the table, audited,
//! listed in `system.column_tags`, forgotten with the table.

use autolake_engine::{Engine, EngineConfig, Interface};

use super::{count, failed, ok, sql};

#[tokio::test(flavor = "multi_thread")]
async fn column_tags_are_set_governed_audited_and_listed() {
    let lake = tempfile::tempdir().unwrap();
    let path = lake.path();
    ok(sql(
        path,
        "CREATE SCHEMA crm; CREATE TABLE crm.people (id INT, ssn TEXT, email TEXT); \
         ALTER TABLE crm.people ALTER COLUMN ssn SET TAGS ('pii', 'GDPR:art9'); \
         ALTER TABLE crm.people ALTER COLUMN email SET TAGS ('pii'); \
         ALTER TABLE crm.people ALTER COLUMN ssn SET TAGS ('pii')",
    ));
    assert_eq!(
        ok(sql(
            path,
            "SELECT schema, \"table\", \"column\", tag, origin, derived_from, set_by \
             FROM system.column_tags"
        )),
        "schema,table,column,tag,origin,derived_from,set_by\n\
         crm,people,email,pii,set,,admin\n\
         crm,people,ssn,gdpr:art9,set,,admin\n\
         crm,people,ssn,pii,set,,admin\n"
    );
    ok(sql(
        path,
        "ALTER TABLE crm.people ALTER COLUMN ssn UNSET TAGS ('gdpr:art9')",
    ));
    assert_eq!(
        count(
            path,
            "SELECT count(*) FROM system.column_tags WHERE \"column\" = 'ssn'"
        ),
        1
    );
    for (statement, message) in [
        (
            "ALTER TABLE crm.people ALTER COLUMN ssn UNSET TAGS ('gdpr:art9')",
            "tag 'gdpr:art9' on column ssn of crm.people does not exist",
        ),
        (
            "ALTER TABLE crm.people ALTER COLUMN ssn SET TAGS ('a b')",
            "a tag is 1 to 64 letters",
        ),
        (
            "ALTER TABLE crm.people ALTER COLUMN phone SET TAGS ('pii')",
            "column phone of crm.people (its columns: id, ssn, email) does not exist",
        ),
        (
            "ALTER TABLE crm.nobody ALTER COLUMN x SET TAGS ('pii')",
            "crm.nobody",
        ),
    ] {
        let e = failed(sql(path, statement), 1);
        assert!(e.contains(message), "{statement}: {e}");
    }

    // Only who manages the table may tag it; refusals are audited.
    let engine = Engine::open(EngineConfig::for_lake(path.to_string_lossy()))
        .await
        .unwrap();
    let scientist = super::scientist();
    let e = engine
        .session(scientist, Interface::Cli)
        .execute("ALTER TABLE crm.people ALTER COLUMN email UNSET TAGS ('pii')")
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        autolake_engine::error::ErrorKind::PermissionDenied,
        "{e}"
    );
    engine.close().await.unwrap();
    assert_eq!(
        ok(sql(
            path,
            "SELECT user, outcome, count(*) AS n FROM system.audit_log \
             WHERE statement LIKE '%TAGS%' GROUP BY user, outcome ORDER BY user, outcome"
        )),
        "user,outcome,n\nadmin,failure,4\nadmin,success,4\nsam,denied,1\n"
    );

    // Dropping the table forgets its tags.
    ok(sql(path, "DROP TABLE crm.people"));
    assert_eq!(count(path, "SELECT count(*) FROM system.column_tags"), 0);
}
