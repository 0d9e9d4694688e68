//! Governance through the session funnel every interface uses: the
//! role × statement matrix, attempts to get around row policies and column
//! masks, audit completeness and tamper detection. The interfaces
//! themselves (Flight SQL as several users, the CLI as local admin) are
//! tested in the engine's CLI tests.

use std::sync::Arc;

use crate::util::{one, rows};
use autolake_engine::{Engine, EngineConfig, Error, Interface, Principal, Session};

struct Lake {
    engine: Arc<Engine>,
    admin: Session,
    dir: tempfile::TempDir,
}

async fn lake() -> Lake {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::for_lake(dir.path().to_str().unwrap()))
        .await
        .unwrap();
    let admin = engine.session(Principal::local_admin(), Interface::Cli);
    Lake { engine, admin, dir }
}

fn user(engine: &Arc<Engine>, name: &str) -> Session {
    let principal = Principal {
        name: name.to_string(),
        roles: Vec::new(),
        stored: true,
    };
    engine.session(principal, Interface::FlightSql)
}

fn denied(result: Result<Vec<arrow::array::RecordBatch>, Error>) -> String {
    match result {
        Err(e @ (Error::PermissionDenied(_) | Error::ReadOnly(_))) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const SETUP: &str = "
    CREATE SCHEMA sales;
    CREATE SCHEMA sandbox;
    CREATE TABLE sales.orders (id INT NOT NULL, region TEXT, amount DOUBLE, ssn TEXT);
    INSERT INTO sales.orders VALUES
        (1, 'EU', 10.0, '111-11-1111'), (2, 'US', 20.0, '222-22-2222'),
        (3, 'EU', 30.0, '333-33-3333'), (4, 'APAC', 40.0, '444-44-4444');
    CREATE USER eng PASSWORD 'pw-eng' ROLE engineer;
    CREATE USER sci PASSWORD 'pw-sci' ROLE scientist;
    CREATE USER aud PASSWORD 'pw-aud' ROLE auditor;
    CREATE USER nob PASSWORD 'pw-nob';
    CREATE MODEL spend TYPE linear_regression OPTIONS (target 'amount', validation_split 0)
        AS SELECT id, amount FROM sales.orders;
";

#[tokio::test(flavor = "multi_thread")]
async fn every_built_in_role_against_every_statement_kind() {
    let lake = lake().await;
    lake.admin.execute(SETUP).await.unwrap();
    let roles = ["eng", "sci", "aud", "nob"];
    for r in roles {
        lake.admin
            .execute(&format!(
                "CREATE TABLE sales.drop_{r} (x INT); CREATE TABLE sales.alter_{r} (x INT)"
            ))
            .await
            .unwrap();
    }
    // (statement with {u} for the user, who may run it)
    let matrix: &[(&str, &[&str])] = &[
        ("SELECT count(*) FROM sales.orders", &["eng", "sci"]),
        (
            "SELECT count(*) FROM sales.orders VERSION AS OF 0",
            &["eng", "sci"],
        ),
        ("DESCRIBE HISTORY sales.orders", &["eng", "sci"]),
        (
            "INSERT INTO sales.orders VALUES (9, 'EU', 1.0, '999')",
            &["eng"],
        ),
        (
            "UPDATE sales.orders SET amount = amount WHERE id = 9",
            &["eng"],
        ),
        ("DELETE FROM sales.orders WHERE id = 9", &["eng"]),
        ("CREATE TABLE sales.new_{u} (x INT)", &["eng"]),
        (
            "CREATE TABLE sandbox.new_{u} AS SELECT 1 AS x",
            &["eng", "sci"],
        ),
        ("CREATE SCHEMA schema_{u}", &["eng"]),
        ("ALTER TABLE sales.alter_{u} ADD COLUMN y INT", &["eng"]),
        ("OPTIMIZE sales.orders", &["eng"]),
        ("DROP TABLE sales.drop_{u}", &["eng"]),
        (
            "CHECK DRIFT ON sales.orders COLUMNS (amount) REFERENCE (VERSION AS OF 1)",
            &["eng", "sci"],
        ),
        (
            "CREATE MODEL m_{u} TYPE linear_regression OPTIONS (target 'amount', validation_split 0) \
             AS SELECT id, amount FROM sales.orders",
            &["sci"],
        ),
        (
            "SELECT predict('spend', id) FROM sales.orders LIMIT 1",
            &["sci"],
        ),
        ("DESCRIBE MODEL spend", &["sci"]),
        (
            "SELECT count(*) FROM system.tables",
            &["eng", "sci", "aud", "nob"],
        ),
        ("SELECT count(*) FROM system.audit_log", &["aud"]),
        ("SELECT count(*) FROM system.users", &["aud"]),
        ("SELECT count(*) FROM system.grants", &["aud"]),
        ("VERIFY AUDIT LOG", &["aud"]),
        ("CREATE USER x_{u} PASSWORD 'p'", &[]),
        ("CREATE ROLE r_{u}", &[]),
        ("GRANT ROLE admin TO {u}", &[]),
        ("DROP MODEL spend", &[]),
        ("CREATE POLICY p_{u} ON sales.orders USING (true)", &["eng"]),
        ("SHOW GRANTS", &["eng", "sci", "aud", "nob"]),
        ("SHOW GRANTS FOR eng", &["eng", "aud"]),
        // Last: it changes what nob may do.
        ("GRANT SELECT ON TABLE sales.orders TO USER nob", &["eng"]),
    ];
    for (template, allowed) in matrix {
        for u in roles {
            let sql = template.replace("{u}", u);
            let session = user(&lake.engine, u);
            let result = session.execute(&sql).await;
            if allowed.contains(&u) {
                assert!(result.is_ok(), "{u} should run `{sql}`: {result:?}");
            } else {
                let message = denied(result);
                assert!(
                    message.contains(&format!("user {u} ")),
                    "{u} `{sql}`: {message}"
                );
            }
        }
        // Policies made by the matrix must not change later rows.
        lake.admin
            .execute("DROP POLICY IF EXISTS p_eng ON sales.orders")
            .await
            .unwrap();
    }
    // Refusals name the privilege and the object, and change nothing.
    let nob = user(&lake.engine, "nob");
    let message = denied(nob.execute("DELETE FROM sales.orders").await);
    assert_eq!(
        message,
        "permission denied: user nob lacks DELETE on table sales.orders"
    );
    assert_eq!(
        one(&lake.admin, "SELECT count(*) FROM sales.orders").await,
        "4"
    );
    // No one, admin included, writes the system schema.
    for sql in [
        "DELETE FROM system.audit_log",
        "INSERT INTO system.audit_log SELECT * FROM system.audit_log",
        "DROP TABLE system.audit_log",
        "UPDATE system.grants SET grantee = 'x'",
        "VACUUM system.audit_log",
    ] {
        assert!(lake.admin.execute(sql).await.is_err(), "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn row_policies_and_masks_hold_on_every_path() {
    let lake = lake().await;
    lake.admin.execute(SETUP).await.unwrap();
    lake.admin
        .execute(
            "CREATE POLICY eu_only ON sales.orders TO scientist USING (region = 'EU');
             CREATE POLICY us_only ON sales.orders TO engineer USING (region = 'US');
             ALTER TABLE sales.orders ALTER COLUMN ssn SET MASK ('***-**-' || right(ssn, 4))",
        )
        .await
        .unwrap();
    let sci = user(&lake.engine, "sci");
    assert_eq!(
        rows(&sci, "SELECT id, ssn FROM sales.orders ORDER BY id").await,
        vec!["1|***-**-1111", "3|***-**-3333"]
    );
    // Filters compare masked values: the real number finds nothing.
    assert!(
        rows(
            &sci,
            "SELECT id FROM sales.orders WHERE ssn = '111-11-1111'"
        )
        .await
        .is_empty()
    );
    for sql in [
        "SELECT count(*) FROM (SELECT * FROM sales.orders) t",
        "WITH o AS (SELECT * FROM sales.orders) SELECT count(*) FROM o",
        "SELECT count(*) FROM sales.orders a JOIN sales.orders b ON a.id = b.id",
        "SELECT count(*) FROM sales.orders WHERE id IN (SELECT id FROM sales.orders)",
        // Before the policy existed, too.
        "SELECT count(*) FROM sales.orders VERSION AS OF 1",
    ] {
        assert_eq!(one(&sci, sql).await, "2", "{sql}");
    }
    sci.execute("CREATE VIEW v AS SELECT * FROM sales.orders")
        .await
        .unwrap();
    assert_eq!(
        rows(&sci, "SELECT id, ssn FROM v ORDER BY id").await,
        vec!["1|***-**-1111", "3|***-**-3333"]
    );
    // A copy holds only what its maker could see.
    sci.execute("CREATE TABLE sandbox.copy AS SELECT * FROM sales.orders")
        .await
        .unwrap();
    assert_eq!(
        rows(&lake.admin, "SELECT id, ssn FROM sandbox.copy ORDER BY id").await,
        vec!["1|***-**-1111", "3|***-**-3333"]
    );
    // So does a model trained on it.
    sci.execute(
        "CREATE MODEL eu_spend TYPE linear_regression OPTIONS (target 'amount', validation_split 0) \
         AS SELECT id, amount FROM sales.orders",
    )
    .await
    .unwrap();
    assert_eq!(
        one(
            &lake.admin,
            "SELECT training_rows FROM system.models WHERE name = 'eu_spend'"
        )
        .await,
        "2"
    );
    // The mask applies to everyone, the policies to their roles only.
    assert_eq!(
        rows(&lake.admin, "SELECT ssn FROM sales.orders ORDER BY id").await[1],
        "***-**-2222"
    );
    assert_eq!(
        one(&lake.admin, "SELECT count(*) FROM sales.orders").await,
        "4"
    );

    // Writes see only the writer's rows and never read masked columns.
    let eng = user(&lake.engine, "eng");
    assert_eq!(rows(&eng, "SELECT id FROM sales.orders").await, vec!["2"]);
    eng.execute("UPDATE sales.orders SET amount = 0")
        .await
        .unwrap();
    eng.execute("DELETE FROM sales.orders WHERE amount = 0")
        .await
        .unwrap();
    assert_eq!(
        rows(
            &lake.admin,
            "SELECT id, amount FROM sales.orders ORDER BY id"
        )
        .await,
        vec!["1|10.0", "3|30.0", "4|40.0"]
    );
    for sql in [
        "UPDATE sales.orders SET region = ssn",
        "DELETE FROM sales.orders WHERE ssn LIKE '1%'",
        "MERGE INTO sales.orders t USING (SELECT 1 AS id) s ON t.id = s.id \
         WHEN MATCHED THEN DELETE",
        "INSERT OVERWRITE sales.orders SELECT * FROM sales.orders",
    ] {
        let message = denied(eng.execute(sql).await);
        assert!(message.contains("sales.orders"), "{sql}: {message}");
    }
    assert_eq!(
        one(&lake.admin, "SELECT count(*) FROM sales.orders").await,
        "3"
    );

    // predict needs SELECT on what it scores, not only PREDICT.
    lake.admin
        .execute("CREATE USER pred PASSWORD 'p'; GRANT PREDICT ON MODEL spend TO USER pred")
        .await
        .unwrap();
    let pred = user(&lake.engine, "pred");
    let message = denied(
        pred.execute("SELECT predict('spend', id) FROM sales.orders")
            .await,
    );
    assert!(
        message.contains("SELECT on table sales.orders"),
        "{message}"
    );

    // A revoked role takes effect at the next statement.
    lake.admin
        .execute("REVOKE ROLE scientist FROM sci")
        .await
        .unwrap();
    denied(sci.execute("SELECT count(*) FROM sales.orders").await);
    // So does a dropped user.
    lake.admin.execute("DROP USER pred").await.unwrap();
    denied(pred.execute("SELECT 1").await);

    // Names and options are data, never SQL.
    lake.admin
        .execute("CREATE USER \"x'); DROP TABLE sales.orders; --\" PASSWORD 'p'")
        .await
        .unwrap();
    assert_eq!(
        one(&lake.admin, "SELECT count(*) FROM sales.orders").await,
        "3"
    );
    assert!(
        lake.admin
            .execute("GRANT SELECT ON TABLE \"sales.orders; DROP TABLE sales.orders\" TO USER eng")
            .await
            .is_err()
    );
    assert_eq!(
        one(&lake.admin, "SELECT count(*) FROM sales.orders").await,
        "3"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_statement_is_audited_once_and_tampering_is_found() {
    let lake = lake().await;
    lake.admin.execute(SETUP).await.unwrap();
    let nob = user(&lake.engine, "nob");
    for i in 0..20 {
        let sql = format!("SELECT {i} AS marker_{i}");
        lake.admin.execute(&sql).await.unwrap();
    }
    assert!(
        nob.execute("SELECT 'denied-marker' FROM sales.orders")
            .await
            .is_err()
    );
    assert!(
        lake.admin
            .execute("SELECT 'failed-marker' FROM nowhere")
            .await
            .is_err()
    );
    assert!(lake.admin.execute("SELEC 'parse-marker'").await.is_err());
    lake.admin
        .execute("CREATE USER secretive PASSWORD 'hunter2'")
        .await
        .unwrap();
    lake.engine.close().await.unwrap();

    let log = rows(
        &lake.admin,
        "SELECT user, outcome, statement, rows FROM system.audit_log ORDER BY seq",
    )
    .await;
    for i in 0..20 {
        let needle = format!("SELECT {i} AS marker_{i}");
        let found: Vec<_> = log.iter().filter(|l| l.contains(&needle)).collect();
        assert_eq!(found.len(), 1, "{needle}: {found:?}");
        assert_eq!(found[0], &format!("admin|success|{needle}|1"));
    }
    let outcome = |marker: &str| {
        log.iter()
            .find(|l| l.contains(marker))
            .map(|l| l.split('|').take(2).collect::<Vec<_>>().join("|"))
    };
    assert_eq!(outcome("denied-marker").as_deref(), Some("nob|denied"));
    assert_eq!(outcome("failed-marker").as_deref(), Some("admin|failure"));
    assert_eq!(outcome("parse-marker").as_deref(), Some("admin|failure"));
    assert!(log.iter().all(|l| !l.contains("hunter2")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("PASSWORD '***'")));

    assert!(
        one(&lake.admin, "VERIFY AUDIT LOG")
            .await
            .starts_with("true|")
    );
    let verify = || async {
        let engine = Engine::open(EngineConfig::for_lake(lake.dir.path().to_str().unwrap()))
            .await
            .unwrap();
        let admin = engine.session(Principal::local_admin(), Interface::Cli);
        let r = one(&admin, "VERIFY AUDIT LOG").await;
        engine.close().await.unwrap();
        r
    };
    assert!(verify().await.starts_with("true|"));

    // Tampering outside SQL, as someone with the files would.
    let table_path = lake.dir.path().join("tables/system/audit_log");
    let table = || async {
        deltalake::open_table(url::Url::from_directory_path(&table_path).unwrap())
            .await
            .unwrap()
    };
    let (_, _) = table()
        .await
        .update()
        .with_predicate("seq = 3")
        .with_update("user", "'mallory'")
        .await
        .unwrap();
    let report = verify().await;
    assert!(report.starts_with("false|"), "{report}");
    assert!(report.contains("|3|entry 3 was altered"), "{report}");
}

/// The join operators of a plan, in order: which side is built, on what.
async fn joins(session: &Session, sql: &str) -> Vec<String> {
    rows(session, &format!("EXPLAIN {sql}"))
        .await
        .iter()
        .filter(|row| row.starts_with("physical_plan"))
        .flat_map(|row| {
            row.lines()
                .map(str::trim)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|line| line.contains("JoinExec"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_policy_leaves_the_plan_as_it_is_without_it() {
    let lake = lake().await;
    lake.admin
        .execute(
            "CREATE TABLE orders (k BIGINT, total DECIMAL(12,2));
             INSERT INTO orders SELECT value, CAST(value AS DECIMAL(12,2)) + 1 FROM generate_series(1, 1500);
             CREATE TABLE items (k BIGINT, mode TEXT);
             INSERT INTO items SELECT value % 1500 + 1, CASE WHEN value % 7 = 0 THEN 'AIR' ELSE 'MAIL' END
                 FROM generate_series(1, 6000);
             CREATE ROLE analysts;
             CREATE USER ana PASSWORD 'pw-ana' ROLE analysts;
             GRANT SELECT ON TABLE orders TO ROLE analysts;
             GRANT SELECT ON TABLE items TO ROLE analysts;
             CREATE POLICY positive ON orders TO analysts USING (total > 0)",
        )
        .await
        .unwrap();
    let analyst = user(&lake.engine, "ana");
    // `items` filtered is guessed at 20% of 6000 rows (1200); `orders` under
    // the same guess would be 300 rows and swap the join's build side.
    let sql = "SELECT o.k, count(*) FROM orders o JOIN items i ON o.k = i.k \
               WHERE i.mode LIKE 'A%' GROUP BY o.k ORDER BY o.k LIMIT 3";
    let plan = rows(&analyst, &format!("EXPLAIN {sql}")).await.join("\n");
    assert!(plan.contains("row_policy("), "{plan}");
    let (governed, plain) = (joins(&analyst, sql).await, joins(&lake.admin, sql).await);
    assert!(!plain.is_empty(), "no join in the plan");
    assert_eq!(governed, plain);
    assert_eq!(rows(&analyst, sql).await, rows(&lake.admin, sql).await);
    // The policy still filters: a row it excludes stays out, also when the
    // query's own predicate is on the same table.
    lake.admin
        .execute("INSERT INTO orders VALUES (7, -5.00)")
        .await
        .unwrap();
    let count = "SELECT count(*) FROM orders WHERE k = 7";
    assert_eq!(one(&lake.admin, count).await, "2");
    assert_eq!(one(&analyst, count).await, "1");
    assert_eq!(
        one(&analyst, "SELECT count(*) FROM orders WHERE total < 0").await,
        "0"
    );
}

/// The physical plan of `sql` as `session` would run it.
async fn physical_plan(session: &Session, sql: &str) -> String {
    rows(session, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .filter(|row| row.starts_with("physical_plan"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_the_files_prove_true_costs_nothing_and_one_file_brings_it_back() {
    let lake = lake().await;
    lake.admin
        .execute(
            "CREATE TABLE pay (k BIGINT, amount DECIMAL(12,2), paid DATE, note TEXT);
             INSERT INTO pay SELECT value AS k, CAST(value AS DECIMAL(12,2)) AS amount,
                 DATE '2024-01-01' + CAST(value % 300 AS INT) AS paid, 'n' AS note
                 FROM generate_series(1, 2000);
             CREATE ROLE clerks;
             CREATE USER cleo PASSWORD 'pw-cleo' ROLE clerks;
             GRANT SELECT ON TABLE pay TO ROLE clerks;
             CREATE POLICY positive ON pay TO clerks
                 USING (amount > 0 AND paid >= DATE '2024-01-01' OR current_user = 'nobody')",
        )
        .await
        .unwrap();
    let cleo = user(&lake.engine, "cleo");
    let sql = "SELECT k, note FROM pay WHERE k < 5";
    // Every file's statistics prove the policy: the scan reads neither
    // `amount` nor `paid`, exactly as the admin's does.
    let plan = physical_plan(&cleo, sql).await;
    assert!(!plan.contains("row_policy"), "{plan}");
    assert!(!plan.contains("amount") && !plan.contains("paid"), "{plan}");
    assert_eq!(plan, physical_plan(&lake.admin, sql).await);
    assert_eq!(rows(&cleo, sql).await, rows(&lake.admin, sql).await);
    // Only the policy: no filter left at all.
    let plan = physical_plan(&cleo, "SELECT k FROM pay").await;
    assert!(!plan.contains("FilterExec"), "{plan}");
    assert_eq!(one(&cleo, "SELECT count(*) FROM pay").await, "2000");
    // Aggregates and joins over the table see the same rows.
    let sum = "SELECT sum(a.amount) FROM pay a JOIN pay b ON a.k = b.k WHERE b.note = 'n'";
    assert_eq!(one(&cleo, sum).await, one(&lake.admin, sum).await);

    // A file holding a null: the policy is back on the whole scan, and it
    // excludes the null row.
    lake.admin
        .execute("INSERT INTO pay VALUES (5000, NULL, DATE '2024-02-01', 'n')")
        .await
        .unwrap();
    let plan = physical_plan(&cleo, sql).await;
    assert!(plan.contains("row_policy"), "{plan}");
    assert_eq!(one(&cleo, "SELECT count(*) FROM pay").await, "2000");
    assert_eq!(one(&lake.admin, "SELECT count(*) FROM pay").await, "2001");
    lake.admin
        .execute("DELETE FROM pay WHERE k = 5000")
        .await
        .unwrap();
    assert!(!physical_plan(&cleo, sql).await.contains("row_policy"));
    // A file whose range crosses the policy: back again, and the row the
    // policy excludes stays out, also for the query's own predicates.
    lake.admin
        .execute("INSERT INTO pay VALUES (6000, -1.00, DATE '2024-02-01', 'n')")
        .await
        .unwrap();
    assert!(physical_plan(&cleo, sql).await.contains("row_policy"));
    assert_eq!(
        one(&cleo, "SELECT count(*) FROM pay WHERE k >= 6000").await,
        "0"
    );
    assert_eq!(one(&cleo, "SELECT count(*) FROM pay").await, "2000");
    // Time travel to a version every file of which proves the policy.
    let old = "SELECT count(*) FROM pay VERSION AS OF 1";
    assert_eq!(one(&cleo, old).await, "2000");
}

/// Every entry of the funnel (a statement, a plan only, a bulk ingest, a
/// login) refuses what its user may not do, changes nothing, and leaves
/// exactly one audit entry saying so.
#[tokio::test(flavor = "multi_thread")]
async fn every_funnel_entry_refuses_once_and_changes_nothing() {
    use autolake_engine::governance::accounts::UserStore;
    use autolake_engine::lake::TableName;
    use autolake_engine::session::{IfExists, IfMissing, Ingest};

    let lake = lake().await;
    lake.admin.execute(SETUP).await.unwrap();
    let nob = user(&lake.engine, "nob");
    let audited = |statement: &'static str| {
        let admin = &lake.admin;
        async move {
            rows(
                admin,
                &format!(
                    "SELECT kind, outcome FROM system.audit_log \
                     WHERE user = 'nob' AND statement LIKE '{statement}%' ORDER BY seq"
                ),
            )
            .await
        }
    };

    // A statement.
    denied(
        nob.execute("INSERT INTO sales.orders VALUES (9, 'EU', 1.0, 'x')")
            .await,
    );
    assert_eq!(
        one(&lake.admin, "SELECT count(*) FROM sales.orders").await,
        "4"
    );
    assert_eq!(audited("INSERT INTO sales.orders").await, ["INSERT|denied"]);

    // A plan only (a prepared statement's schema): no schema for a query
    // its user may not run.
    let parsed = nob
        .parse_one("SELECT ssn FROM sales.orders WHERE id = $1")
        .unwrap();
    assert!(nob.plan_query(&parsed).await.is_none());
    assert_eq!(
        audited("SELECT ssn FROM sales.orders").await,
        ["SELECT|denied"]
    );

    // A bulk ingest, into a table that exists and into a new one.
    let batch = arrow::array::RecordBatch::try_from_iter([(
        "id",
        std::sync::Arc::new(arrow::array::Int32Array::from(vec![7])) as _,
    )])
    .unwrap();
    for (table, if_exists) in [("orders", IfExists::Append), ("copied", IfExists::Fail)] {
        let result = nob
            .ingest(Ingest {
                table: TableName::new("sales", table),
                batches: vec![batch.clone()],
                if_exists: Some(if_exists),
                if_missing: Some(IfMissing::Create),
            })
            .await;
        assert!(
            matches!(result, Err(Error::PermissionDenied(_))),
            "{table}: {result:?}"
        );
        assert_eq!(
            audited(if table == "orders" {
                "INGEST INTO lake.sales.orders"
            } else {
                "INGEST INTO lake.sales.copied"
            })
            .await,
            ["INGEST|denied"]
        );
    }
    assert_eq!(
        one(&lake.admin, "SELECT count(*) FROM sales.orders").await,
        "4"
    );
    assert!(
        lake.admin
            .execute("SELECT * FROM sales.copied")
            .await
            .is_err()
    );

    // A login: a wrong password gets no session; the right one does.
    let users = UserStore::new(Arc::clone(lake.engine.lake()));
    let refused = lake
        .engine
        .login(&users, "nob", "wrong", Interface::FlightSql)
        .await
        .unwrap();
    assert!(refused.is_none());
    let signed_in = lake
        .engine
        .login(&users, "nob", "pw-nob", Interface::FlightSql)
        .await
        .unwrap()
        .expect("the right password signs in");
    assert_eq!(signed_in.principal().name, "nob");
    assert_eq!(
        audited("LOGIN nob").await,
        ["LOGIN|denied", "LOGIN|success"]
    );
}
