//! Observability as an operator meets it: `system.queries` filled by every
//! process on a lake and read back by others, each user seeing their own
//! statements; retention by `VACUUM system.queries`; JSON logs carrying the
//! query_id that the history and the audit log show; EXPLAIN ANALYZE on the
//! CLI and over Flight SQL, governed and audited like the query it runs.

use std::path::Path;
use std::time::{Duration, Instant};

use super::flight::{PASSWORD, Server, run_adbc};
use super::{autolake, count, failed, ok, sql};

/// Waits until `query` (a count) reaches at least `want` on `lake`, as
/// another process's buffered history is committed within a second.
fn eventually(lake: &Path, query: &str, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = count(lake, query);
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn query_history_spans_processes_and_each_user_sees_their_own() {
    let lake = tempfile::tempdir().unwrap();
    ok(sql(
        lake.path(),
        "CREATE TABLE t AS SELECT * FROM (VALUES (1), (2), (3)) v(x); \
         SELECT sum(x) FROM t;",
    ));
    failed(sql(lake.path(), "SELECT * FROM no_such_table"), 1);
    let server = Server::start(lake.path(), 3600);
    let out = run_adbc(
        &server,
        &format!(
            r#"
admin = connect("admin", "{password}").cursor()
admin.execute("CREATE USER eve PASSWORD 'eve-secret-pw'")
admin.execute("CREATE USER audra PASSWORD 'audra-pw' ROLE auditor")
admin.execute("GRANT SELECT ON TABLE t TO USER eve")
eve = connect("eve", "eve-secret-pw").cursor()
eve.execute("SELECT x FROM t WHERE x > 1")
print("eve rows:", len(eve.fetchall()))
eve.execute('SELECT DISTINCT "user" FROM system.queries ORDER BY 1')
print("eve sees:", [r[0] for r in eve.fetchall()])
try:
    eve.execute("VACUUM system.queries")
    print("eve vacuumed")
except Exception as e:
    print("eve refused:", "admin" in str(e))
audra = connect("audra", "audra-pw").cursor()
audra.execute('SELECT DISTINCT "user" FROM system.queries ORDER BY 1')
print("audra sees:", [r[0] for r in audra.fetchall()])
audra.execute("SELECT interface, rows_scanned, bytes_scanned > 0, files_scanned FROM system.queries WHERE statement = 'SELECT sum(x) FROM t'")
print("cli scan:", audra.fetchall())
admin.execute("SELECT count(*) FROM system.queries WHERE statement LIKE '%eve-secret-pw%'")
print("secrets:", admin.fetchone()[0])
admin.execute("INSERT INTO t VALUES (4)")
admin.execute("SELECT count(*) FROM system.queries WHERE \"user\" = 'audra'")
print("admin sees audra:", admin.fetchone()[0] >= 1)
"#,
            password = PASSWORD
        ),
    );
    assert!(out.contains("eve rows: 2\n"), "{out}");
    assert!(out.contains("eve sees: ['eve']\n"), "{out}");
    assert!(out.contains("eve refused: True\n"), "{out}");
    // The auditor's first statement is the one running: it is recorded
    // when it ends.
    assert!(out.contains("audra sees: ['admin', 'eve']\n"), "{out}");
    assert!(out.contains("cli scan: [('cli', 3, True, 1)]\n"), "{out}");
    assert!(out.contains("secrets: 0\n"), "{out}");
    assert!(out.contains("admin sees audra: True\n"), "{out}");

    // Another process reads what the server ran, with its scan figures.
    let eve_scan = "SELECT count(*) FROM system.queries WHERE \"user\" = 'eve' \
         AND interface = 'flight_sql' AND statement = 'SELECT x FROM t WHERE x > 1' \
         AND kind = 'SELECT' AND outcome = 'success' AND rows = 2 AND rows_scanned >= 2 \
         AND bytes_scanned > 0 AND files_scanned = 1 AND ended_at >= started_at \
         AND planning_seconds > 0 AND execution_seconds >= 0";
    assert_eq!(eventually(lake.path(), eve_scan, 1), 1);
    let failure = ok(sql(
        lake.path(),
        "SELECT outcome, error FROM system.queries WHERE statement = 'SELECT * FROM no_such_table'",
    ));
    assert_eq!(
        failure,
        "outcome,error\nfailure,table 'lake.public.no_such_table' not found\n"
    );
    let denied = "SELECT count(*) FROM system.queries WHERE \"user\" = 'eve' \
         AND statement = 'VACUUM system.queries' AND outcome = 'denied'";
    assert!(eventually(lake.path(), denied, 1) >= 1);
    // A change is recorded when it is done, whether or not the client
    // fetches its count.
    let insert = "SELECT count(*) FROM system.queries WHERE statement = 'INSERT INTO t VALUES (4)' \
         AND outcome = 'success' AND rows = 1 AND execution_seconds < 60";
    assert_eq!(eventually(lake.path(), insert, 1), 1);
    // One query_id names a statement in both the history and the audit log.
    let unmatched = "SELECT count(*) FROM system.queries q LEFT JOIN system.audit_log a \
         ON q.query_id = a.query_id WHERE a.query_id IS NULL \
         OR a.statement <> q.statement OR a.\"user\" <> q.\"user\"";
    assert_eq!(count(lake.path(), unmatched), 0);
    let ids = "SELECT count(DISTINCT query_id) - count(*) FROM system.queries";
    assert_eq!(count(lake.path(), ids), 0);
}

#[test]
fn retention_removes_old_history_and_json_logs_carry_the_query_id() {
    let lake = tempfile::tempdir().unwrap();
    ok(sql(lake.path(), "SELECT 1 AS one; SELECT 2 AS two"));
    assert_eq!(count(lake.path(), "SELECT count(*) FROM system.queries"), 2);

    // The default keeps 30 days: nothing is old enough yet.
    let kept = ok(sql(lake.path(), "VACUUM system.queries"));
    assert!(kept.contains("rows_deleted,0\n"), "{kept}");
    assert!(count(lake.path(), "SELECT count(*) FROM system.queries") >= 3);
    let out = ok(autolake(
        lake.path(),
        &[
            "--query-history-days",
            "0",
            "sql",
            "--format",
            "csv",
            "-e",
            "VACUUM system.queries",
        ],
    ));
    assert!(!out.contains("rows_deleted,0\n"), "{out}");
    assert_eq!(
        count(
            lake.path(),
            "SELECT count(*) FROM system.queries WHERE statement LIKE 'SELECT 1%'"
        ),
        0
    );
    // The audit log keeps everything.
    assert_eq!(
        count(
            lake.path(),
            "SELECT count(*) FROM system.audit_log WHERE statement LIKE 'SELECT 1%'"
        ),
        1
    );
    let err = failed(
        autolake(
            lake.path(),
            &["--query-history-days", "many", "sql", "-e", "SELECT 1"],
        ),
        2,
    );
    assert!(err.contains("--query-history-days"), "{err}");

    let out = autolake(
        lake.path(),
        &[
            "-v",
            "--log-format",
            "json",
            "sql",
            "-e",
            "SELECT 42 AS answer",
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{log}");
    let mut ids = Vec::new();
    for line in log.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        if value["fields"]["message"] == "statement ended" {
            ids.push(value["fields"]["query_id"].as_str().unwrap().to_string());
            assert_eq!(value["span"]["query_id"], value["fields"]["query_id"]);
        }
    }
    assert_eq!(ids.len(), 1, "{log}");
    let found = ok(sql(
        lake.path(),
        &format!(
            "SELECT q.statement, a.outcome FROM system.queries q JOIN system.audit_log a \
             USING (query_id) WHERE q.query_id = '{}'",
            ids[0]
        ),
    ));
    assert_eq!(found, "statement,outcome\nSELECT 42 AS answer,success\n");
}

#[test]
fn explain_analyze_reports_operator_metrics_and_is_governed() {
    let lake = tempfile::tempdir().unwrap();
    ok(sql(
        lake.path(),
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c')) v(x, s)",
    ));
    let plan = ok(sql(
        lake.path(),
        "EXPLAIN ANALYZE SELECT s, sum(x) FROM t GROUP BY s ORDER BY s",
    ));
    for metric in [
        "output_rows=3",
        "elapsed_compute=",
        "bytes_scanned=",
        "spill_count=",
    ] {
        assert!(plan.contains(metric), "{metric} in {plan}");
    }

    let server = Server::start(lake.path(), 3600);
    let out = run_adbc(
        &server,
        &format!(
            r#"
admin = connect("admin", "{password}").cursor()
admin.execute("CREATE USER ana PASSWORD 'ana-pw' ROLE scientist")
admin.execute("CREATE USER eve PASSWORD 'eve-pw'")
admin.execute("GRANT SELECT ON TABLE t TO ROLE scientist")
admin.execute("CREATE POLICY small ON t TO scientist USING (x < 3)")
ana = connect("ana", "ana-pw").cursor()
ana.execute("EXPLAIN ANALYZE SELECT count(*) FROM t")
plan = "\n".join(str(r[1]) for r in ana.fetchall())
print("metrics:", "output_rows=" in plan and "elapsed_compute=" in plan)
print("policy applied:", "x@0 < 3" in plan or "x < 3" in plan)
eve = connect("eve", "eve-pw").cursor()
try:
    eve.execute("EXPLAIN ANALYZE SELECT * FROM t")
    eve.fetchall()
    print("eve ran it")
except Exception as e:
    print("eve refused:", "lacks SELECT on table public.t" in str(e))
"#,
            password = PASSWORD
        ),
    );
    assert!(out.contains("metrics: True\n"), "{out}");
    assert!(out.contains("policy applied: True\n"), "{out}");
    assert!(out.contains("eve refused: True\n"), "{out}");
    let audited = "SELECT count(*) FROM system.audit_log WHERE \"user\" = 'eve' \
         AND statement = 'EXPLAIN ANALYZE SELECT * FROM t' AND outcome = 'denied'";
    assert!(eventually(lake.path(), audited, 1) >= 1);
    let ran = "SELECT count(*) FROM system.audit_log WHERE \"user\" = 'ana' \
         AND statement = 'EXPLAIN ANALYZE SELECT count(*) FROM t' AND outcome = 'success'";
    assert!(eventually(lake.path(), ran, 1) >= 1);
}
