//! Observability as an operator meets it: `system.queries` filled by every
//! process on a lake and read back by others, each user seeing their own
//! statements; retention by `VACUUM system.queries`; JSON logs carrying the
//! query_id that the history and the audit log show; EXPLAIN ANALYZE on the
//! CLI and over Flight SQL, governed and audited like the query it runs;
//! jobs, `predict` and devices on `/metrics` and in `system.devices`; the
//! progress bar on a terminal and nowhere else.

use std::path::Path;
use std::time::{Duration, Instant};

use super::flight::{PASSWORD, Server, run_adbc, run_adbc_scraping};
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

/// Jobs, `predict` and the devices on `/metrics`, read with Prometheus's
/// own parser: a job's runs by status (a check that found nothing new is
/// `skipped`) and its lag behind an unconsumed input commit, the rows each
/// model version scored, and the CPU's busy and idle time; the same
/// device in `system.devices`, and the busy fraction kept with a model.
#[test]
fn jobs_models_and_devices_move_their_metrics() {
    let lake = tempfile::tempdir().unwrap();
    let server = Server::start(lake.path(), 3600);
    let out = run_adbc_scraping(
        &server,
        &format!(
            r#"
import time

admin = connect("admin", "{password}").cursor()
admin.execute("CREATE TABLE src (x DOUBLE, y DOUBLE)")
admin.execute("INSERT INTO src SELECT value, 2 * value + 1 FROM generate_series(1, 500)")
admin.execute("CREATE TABLE out (x DOUBLE)")
admin.execute("CREATE JOB copy SCHEDULE '0 3 1 1 *' AS INSERT INTO out SELECT x FROM table_changes('src')")
_, before = scrape()
time.sleep(1.2)
_, lagging = scrape()
print("lag before the first run:", value(lagging, "autolake_job_lag_seconds", job="copy") >= 1.0)
admin.execute("RUN JOB copy"); admin.fetchall()
admin.execute("RUN JOB copy"); admin.fetchall()
_, after = scrape()
def moved(name, **labels):
    return int(value(after, name, **labels) - value(before, name, **labels))
print("succeeded:", moved("autolake_job_runs_total", job="copy", status="succeeded"))
print("skipped:", moved("autolake_job_runs_total", job="copy", status="skipped"))
print("caught up:", value(after, "autolake_job_lag_seconds", job="copy"))
admin.execute("INSERT INTO src VALUES (1000, 2001)")
time.sleep(1.2)
print("behind again:", value(scrape()[1], "autolake_job_lag_seconds", job="copy") >= 1.0)

admin.execute("CREATE MODEL lin TYPE linear_regression OPTIONS (target 'y', validation_split 0) AS SELECT x, y FROM src")
admin.fetchall()
admin.execute("SELECT predict('lin', x) FROM src")
scored = len(admin.fetchall())
_, now = scrape()
print("scored:", scored, int(value(now, "autolake_predict_rows_total", model="lin", version="1", device="cpu")))
print("batches timed:", value(now, "autolake_predict_batch_seconds_count") >= 1)
busy = value(now, "autolake_device_busy_seconds_total", device="cpu")
idle = value(now, "autolake_device_idle_seconds_total", device="cpu")
print("cpu watched:", busy > 0 and idle >= 0 and busy + idle >= 1.0)
print("cpu ratio:", 0 <= value(now, "autolake_device_utilization_ratio", device="cpu") <= 1)
print("cpu memory:", value(now, "autolake_device_memory_used_bytes", device="cpu") > 0)
admin.execute("SELECT device, name, memory_total_bytes > 0, busy_seconds + idle_seconds > 0, since IS NOT NULL FROM system.devices WHERE device = 'cpu'")
print("devices:", admin.fetchall())
admin.execute("SELECT device, device_busy_ratio BETWEEN 0 AND 1 FROM system.models WHERE name = 'lin'")
print("model device:", admin.fetchall())
"#,
            password = PASSWORD
        ),
    );
    for expected in [
        "lag before the first run: True\n",
        "succeeded: 1\n",
        "skipped: 1\n",
        "caught up: 0.0\n",
        "behind again: True\n",
        "scored: 501 501\n",
        "batches timed: True\n",
        "cpu watched: True\n",
        "cpu ratio: True\n",
        "cpu memory: True\n",
        "devices: [('cpu', ",
        ", True, True, True)]\n",
        "model device: [('cpu', True)]\n",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
}

/// Long statements draw a progress bar on a terminal — rows with a rate,
/// a percentage of a known total, training epochs — and nothing at all
/// when stderr is not a terminal. The terminal is a pseudo-terminal that
/// util-linux's `script` gives the CLI.
#[test]
fn progress_shows_on_a_terminal_only() {
    let lake = tempfile::tempdir().unwrap();
    let script = lake.path().join("long.sql");
    std::fs::write(
        &script,
        "CREATE TABLE big AS SELECT value AS v, value % 2 AS odd FROM generate_series(1, 3000000);\n\
         CREATE TABLE copy AS SELECT * FROM big ORDER BY v DESC;\n\
         CREATE TABLE few AS SELECT CAST(v AS DOUBLE) / 1000 AS x, odd FROM big WHERE v <= 100000;\n\
         CREATE MODEL m TYPE logistic_regression OPTIONS (target 'odd', epochs 100) AS SELECT x, odd FROM few;\n\
         UPDATE few SET x = x + 1 WHERE odd = 1;\n\
         DELETE FROM few WHERE x > 90;\n\
         MERGE INTO few USING (SELECT * FROM few WHERE x < 5) s ON few.x = s.x \
           WHEN MATCHED THEN UPDATE SET odd = 7;\n\
         SELECT count(*) AS n, round(sum(x), 3) AS x, sum(odd) AS odd FROM few;\n",
    )
    .unwrap();
    let command = format!(
        "{} --lake {} sql --format csv -f {}",
        env!("CARGO_BIN_EXE_autolake"),
        lake.path().join("a").display(),
        script.display()
    );
    let terminal = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("AUTOLAKE_LAKE")
        .output()
        .expect("util-linux's script runs");
    let shown = String::from_utf8_lossy(&terminal.stdout);
    assert!(terminal.status.success(), "{shown}");
    // Rows and their rate.
    assert!(shown.contains("CREATE TABLE AS"), "{shown}");
    assert!(shown.contains(" rows ("), "{shown}");
    assert!(shown.contains("/s"), "{shown}");
    // A copy of a lake table knows its total from the table's statistics
    // (shown while the sort before the first row runs, however fast).
    assert!(shown.contains("/3,000,000 rows"), "{shown}");
    assert!(shown.contains("ETA"), "{shown}");
    assert!(shown.contains("/100 epochs"), "{shown}");

    let piped = autolake(
        &lake.path().join("b"),
        &["sql", "--format", "csv", "-f", script.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&piped.stderr).to_string();
    assert!(piped.status.success(), "{stderr}");
    // Counting rows changes no result: the writes end the same both ways
    // (a float sum rounded: its last digits follow the order rows add up).
    let stdout = String::from_utf8_lossy(&piped.stdout).to_string();
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains(','), "{stdout}");
    assert!(shown.contains(last), "{last} not in {shown}");
    assert!(
        !stderr.contains("rows") && !stderr.contains("ETA") && !stderr.contains("epochs"),
        "{stderr}"
    );
}
