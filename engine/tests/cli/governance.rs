//! Governance on the real interfaces: users logging in over Flight SQL
//! (arrow-rs's client and Python's ADBC driver) see only what their grants,
//! row policies and masks allow; the CLI runs as the local admin on the
//! same lake; every statement from both processes lands in one audit log
//! whose chain stays intact.

use std::time::Duration;

use super::flight::{PASSWORD, Server, has_code, rows, text};
use super::services::run_python;
use super::{ok, sql};

#[tokio::test(flavor = "multi_thread")]
async fn users_see_what_they_may_on_every_interface_and_all_of_it_is_audited() {
    let lake = tempfile::tempdir().unwrap();
    let server = Server::start(lake.path(), 3600);
    let mut admin = server.client().await;
    admin.handshake("admin", PASSWORD).await.expect("login");
    for statement in [
        "CREATE SCHEMA sales",
        "CREATE TABLE sales.orders (id INT NOT NULL, region TEXT, ssn TEXT)",
        "INSERT INTO sales.orders VALUES (1, 'EU', '111-11-1111'), (2, 'US', '222-22-2222'), \
         (3, 'EU', '333-33-3333')",
        "CREATE USER ana PASSWORD 'ana-pw' ROLE scientist",
        "CREATE USER eve PASSWORD 'eve-pw'",
        "CREATE USER audra PASSWORD 'audra-pw' ROLE auditor",
        "CREATE POLICY eu ON sales.orders TO scientist USING (region = 'EU')",
        "ALTER TABLE sales.orders ALTER COLUMN ssn SET MASK ('***' || right(ssn, 4))",
    ] {
        admin
            .execute_update(statement.into(), None)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e:?}"));
    }

    // arrow-rs client as a scientist: filtered rows, masked column.
    let mut ana = server.client().await;
    ana.handshake("ana", "ana-pw").await.expect("ana logs in");
    let info = ana
        .execute("SELECT id, ssn FROM sales.orders ORDER BY id".into(), None)
        .await
        .unwrap();
    let shown = text(&rows(&mut ana, info).await);
    assert!(shown.contains("| 1  | ***1111 |"), "{shown}");
    assert!(shown.contains("| 3  | ***3333 |"), "{shown}");
    assert!(!shown.contains("| 2 "), "{shown}");
    let err = ana
        .execute_update(
            "INSERT INTO sales.orders VALUES (9, 'EU', 'x')".into(),
            None,
        )
        .await
        .unwrap_err();
    assert!(has_code(&err, tonic::Code::PermissionDenied), "{err:?}");
    assert!(
        format!("{err:?}").contains("lacks INSERT on table sales.orders"),
        "{err:?}"
    );

    // A user with no grants reads nothing; the auditor reads the log only.
    let mut eve = server.client().await;
    eve.handshake("eve", "eve-pw").await.expect("eve logs in");
    let err = eve
        .execute("SELECT * FROM sales.orders".into(), None)
        .await
        .unwrap_err();
    assert!(has_code(&err, tonic::Code::PermissionDenied), "{err:?}");

    // Python's ADBC driver, as the same scientist.
    let out = run_python(&format!(
        r#"
import adbc_driver_flightsql.dbapi as flight_sql
conn = flight_sql.connect("grpc://127.0.0.1:{port}", db_kwargs={{"username": "ana", "password": "ana-pw"}})
cur = conn.cursor()
cur.execute("SELECT count(*) FROM sales.orders")
print("count:", cur.fetchone()[0])
cur.execute("SELECT count(*) FROM sales.orders WHERE ssn = '222-22-2222' OR region = 'US'")
print("hidden:", cur.fetchone()[0])
try:
    cur.execute("SELECT * FROM system.audit_log")
    print("audit readable")
except Exception as e:
    print("audit denied:", "PERMISSION" in str(e).upper())
conn.close()
"#,
        port = server.flight
    ));
    assert!(out.contains("count: 2"), "{out}");
    assert!(out.contains("hidden: 0"), "{out}");
    assert!(out.contains("audit denied: True"), "{out}");

    // The CLI on the same lake runs as the local admin: every row, masked.
    let csv = ok(sql(
        lake.path(),
        "SELECT id, ssn FROM sales.orders ORDER BY id",
    ));
    assert_eq!(csv, "id,ssn\n1,***1111\n2,***2222\n3,***3333\n");

    // Both processes' statements are in one chained log.
    std::thread::sleep(Duration::from_millis(1500));
    let mut audra = server.client().await;
    audra
        .handshake("audra", "audra-pw")
        .await
        .expect("audra logs in");
    let info = audra
        .execute(
            "SELECT user, interface, outcome, kind FROM system.audit_log \
             WHERE user IN ('ana', 'eve') OR interface = 'cli' ORDER BY seq"
                .into(),
            None,
        )
        .await
        .unwrap();
    let log = text(&rows(&mut audra, info).await);
    for line in [
        "| ana  | flight_sql | success | SELECT |",
        "| ana  | flight_sql | denied  | INSERT |",
        "| eve  | flight_sql | denied  | SELECT |",
        "| admin | cli        | success | SELECT |",
    ] {
        let squeezed: String = line.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            log.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == squeezed),
            "{line} missing from\n{log}"
        );
    }
    let info = audra
        .execute("VERIFY AUDIT LOG".into(), None)
        .await
        .unwrap();
    let verdict = text(&rows(&mut audra, info).await);
    assert!(verdict.contains("| true "), "{verdict}");
    let err = audra
        .execute("SELECT * FROM sales.orders".into(), None)
        .await
        .unwrap_err();
    assert!(has_code(&err, tonic::Code::PermissionDenied), "{err:?}");
    let out = ok(sql(lake.path(), "VERIFY AUDIT LOG"));
    assert!(out.contains("true,"), "{out}");
}

/// A server killed with SIGKILL right after its statements loses none of
/// their audit entries (they were still buffered): the next process to open
/// the lake takes them over from the dead server's journal, once each.
#[tokio::test(flavor = "multi_thread")]
async fn audit_entries_outlive_a_server_killed_with_sigkill() {
    let lake = tempfile::tempdir().unwrap();
    let server = Server::start(lake.path(), 3600);
    let mut admin = server.client().await;
    admin.handshake("admin", PASSWORD).await.expect("login");
    admin
        .execute_update("CREATE TABLE t (i INT)".into(), None)
        .await
        .unwrap();
    for i in 0..30 {
        admin
            .execute_update(format!("INSERT INTO t VALUES ({i})"), None)
            .await
            .unwrap();
    }
    drop(server); // SIGKILL, within the flush interval of the last inserts
    let journals = lake.path().join("governance").join("audit_journal");
    let lines: usize = std::fs::read_dir(&journals)
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert!(lines >= 31, "the server journaled {lines} entries");
    let inserts = "SELECT count(*), count(DISTINCT statement) FROM system.audit_log WHERE statement LIKE 'INSERT INTO t VALUES%'";
    let out = ok(sql(lake.path(), inserts));
    assert!(out.contains("30,30"), "{out}");
    // Taken over once: a second process finds nothing more to add.
    let out = ok(sql(lake.path(), inserts));
    assert!(out.contains("30,30"), "{out}");
    let left: Vec<_> = std::fs::read_dir(&journals)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "journals left behind: {left:?}");
    let out = ok(sql(lake.path(), "VERIFY AUDIT LOG"));
    assert!(out.contains("true,"), "{out}");
}
