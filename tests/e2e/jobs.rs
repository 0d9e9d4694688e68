//! Jobs through the embedded engine: `table_changes`, incremental runs,
//! recovery of a run that committed but was not recorded, event-time
//! windows against a batch GROUP BY, late rows, and jobs under governance.
//! The scheduler inside `autolake serve`, `autolake jobs run-due` and
//! kill -9 of the server are tested in the engine's CLI tests.

use std::sync::Arc;

use crate::util::{one, rows};
use autolake_engine::{Engine, EngineConfig, Error, Interface, Principal, Session};

async fn lake() -> (Arc<Engine>, Session, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::for_lake(dir.path().to_str().unwrap()))
        .await
        .unwrap();
    let admin = engine.session(Principal::local_admin(), Interface::Cli);
    (engine, admin, dir)
}

async fn error(session: &Session, sql: &str) -> String {
    match session.execute(sql).await {
        Ok(rows) => panic!("{sql}: expected an error, got {rows:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn table_changes_reads_the_commits_between_two_versions() {
    let (_engine, admin, _dir) = lake().await;
    admin
        .execute(
            "CREATE TABLE src (id INT, v TEXT); \
             INSERT INTO src VALUES (1, 'a'), (2, 'b'); \
             INSERT INTO src VALUES (3, 'c'); \
             UPDATE src SET v = 'z' WHERE id = 1; \
             OPTIMIZE src; \
             DELETE FROM src WHERE id = 2",
        )
        .await
        .unwrap();
    assert_eq!(
        rows(
            &admin,
            "SELECT id, v, _change_type, _commit_version FROM table_changes('src', 1, 2) ORDER BY id"
        )
        .await,
        vec!["1|a|insert|1", "2|b|insert|1", "3|c|insert|2"]
    );
    // Updates and deletes as such (the change data feed); OPTIMIZE (version
    // 4) changes no data.
    assert_eq!(
        rows(
            &admin,
            "SELECT id, v, _change_type, _commit_version FROM table_changes('src', 3) \
             ORDER BY _commit_version, id, _change_type"
        )
        .await,
        vec![
            "1|z|update_postimage|3",
            "1|a|update_preimage|3",
            "2|b|delete|5"
        ]
    );
    // The change columns are types a Delta table stores.
    admin
        .execute("CREATE TABLE history AS SELECT * FROM table_changes('public.src', 0)")
        .await
        .unwrap();
    assert_eq!(one(&admin, "SELECT count(*) FROM history").await, "6");

    for (sql, message) in [
        (
            "SELECT * FROM table_changes('src')",
            "works only inside a job",
        ),
        (
            "SELECT * FROM table_changes('src', 9)",
            "latest version is 5",
        ),
        (
            "SELECT * FROM table_changes('src', 3, 1)",
            "first version is after the last",
        ),
        ("SELECT * FROM table_changes('nope', 0)", "nope"),
        (
            "SELECT * FROM table_changes('src', -1)",
            "non-negative integers",
        ),
        ("SELECT * FROM table_changes(src, 1)", "name as a string"),
        (
            "SELECT * FROM table_changes('system.audit_log', 0)",
            "not a lake table",
        ),
    ] {
        let e = error(&admin, sql).await;
        assert!(e.contains(message), "{sql}: {e}");
    }
}

#[tokio::test]
async fn an_incremental_job_copies_every_row_exactly_once() {
    let (_engine, admin, _dir) = lake().await;
    admin
        .execute(
            "CREATE TABLE src (id BIGINT, round INT); CREATE TABLE out (id BIGINT, round INT); \
             CREATE JOB copy EVERY '1 hour' AS INSERT INTO out \
             SELECT id, round FROM table_changes('src') WHERE _change_type = 'insert'",
        )
        .await
        .unwrap();
    let mut next = 0;
    let mut runs = 0;
    let mut total = 0;
    for round in 0..30 {
        for append in 0..round % 3 {
            let n = (round * 7 + append * 3) % 11 + 1;
            let values: Vec<String> = (0..n).map(|i| format!("({}, {round})", next + i)).collect();
            next += n;
            total += n;
            admin
                .execute(&format!("INSERT INTO src VALUES {}", values.join(", ")))
                .await
                .unwrap();
        }
        let run = rows(&admin, "RUN JOB copy").await;
        let status = run[0].split('|').nth(2).unwrap().to_string();
        // The first run reads the table's creation; later ones only what
        // was appended since.
        if round % 3 == 0 && round > 0 {
            assert_eq!(status, "skipped", "round {round}: {run:?}");
        } else {
            runs += 1;
            assert_eq!(status, "succeeded", "round {round}: {run:?}");
        }
        assert_eq!(
            one(&admin, "SELECT count(*) FROM out").await,
            one(&admin, "SELECT count(*) FROM src").await,
            "round {round}"
        );
    }
    assert_eq!(
        one(
            &admin,
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM out"
        )
        .await,
        format!("{total}|{total}|0|{}", total - 1)
    );
    assert_eq!(
        rows(
            &admin,
            "SELECT id, round FROM src EXCEPT SELECT id, round FROM out"
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        one(
            &admin,
            "SELECT count(*), sum(rows_read), sum(rows_written), max(run) FROM system.job_runs \
             WHERE job = 'copy' AND status = 'succeeded'"
        )
        .await,
        format!("{runs}|{total}|{total}|{runs}")
    );
    let version = one(
        &admin,
        "SELECT version FROM system.tables WHERE name = 'src'",
    )
    .await;
    assert_eq!(
        one(
            &admin,
            "SELECT last_run, last_status, input_versions, paused FROM system.jobs"
        )
        .await,
        format!("{runs}|succeeded|{{\"lake.public.src\":{version}}}|false")
    );
}

#[tokio::test]
async fn a_run_committed_but_not_recorded_is_recovered_not_repeated() {
    let (_engine, admin, dir) = lake().await;
    admin
        .execute(
            "CREATE TABLE src (id INT); CREATE TABLE out (id INT); \
             CREATE JOB copy EVERY '1 hour' AS INSERT INTO out SELECT id FROM table_changes('src'); \
             INSERT INTO src VALUES (1), (2), (3); RUN JOB copy",
        )
        .await
        .unwrap();
    let state_file = dir.path().join("job_state/copy.json");
    let after_first = std::fs::read(&state_file).unwrap();
    admin
        .execute("INSERT INTO src VALUES (4), (5); RUN JOB copy")
        .await
        .unwrap();
    // As if the process had died right after run 2's output commit.
    std::fs::write(&state_file, &after_first).unwrap();
    admin.execute("INSERT INTO src VALUES (6)").await.unwrap();
    let run = one(&admin, "RUN JOB copy").await;
    assert!(run.starts_with("copy|3|succeeded|1|1|"), "{run}");
    assert_eq!(
        rows(&admin, "SELECT id FROM out ORDER BY id").await,
        vec!["1", "2", "3", "4", "5", "6"]
    );
    assert_eq!(
        rows(
            &admin,
            "SELECT run, status FROM system.job_runs ORDER BY start, run, status"
        )
        .await,
        vec!["1|succeeded", "2|succeeded", "2|recovered", "3|succeeded"]
    );
}

/// Seconds since the epoch of the windows a job emitted.
async fn emitted(admin: &Session, table: &str) -> Vec<String> {
    rows(
        admin,
        &format!(
            "SELECT to_unixtime(window_start), to_unixtime(window_end), page, n, total \
             FROM {table} ORDER BY 1, 3"
        ),
    )
    .await
}

#[tokio::test]
async fn windows_close_with_the_watermark_and_match_a_batch_group_by() {
    let (_engine, admin, _dir) = lake().await;
    admin
        .execute(
            "CREATE TABLE clicks (ts TIMESTAMP, page TEXT, ms INT); \
             CREATE TABLE per_minute (window_start TIMESTAMP, window_end TIMESTAMP, page TEXT, n BIGINT, total BIGINT); \
             CREATE TABLE rolling (window_start TIMESTAMP, window_end TIMESTAMP, page TEXT, n BIGINT, total BIGINT); \
             CREATE JOB pm EVERY '1 hour' WINDOW TUMBLE (ts, '1 minute') WATERMARK '30 seconds' \
               AS INSERT INTO per_minute SELECT window_start, window_end, page, count(*), sum(ms) \
               FROM table_changes('clicks') GROUP BY window_start, window_end, page; \
             CREATE JOB roll EVERY '1 hour' WINDOW HOP (ts, '1 minute', '3 minutes') WATERMARK '30 seconds' \
               LATE INTO rolling_late \
               AS INSERT INTO rolling SELECT window_start, window_end, page, count(*), sum(ms) \
               FROM table_changes('clicks') GROUP BY window_start, window_end, page",
        )
        .await
        .unwrap();
    // Ten batches 20 s apart, each with events up to 15 s out of order.
    let base = 1_790_000_000i64 - 1_790_000_000 % 60;
    for b in 0..10i64 {
        let mut values = Vec::new();
        for i in 0..6i64 {
            let t = base + b * 20 + (i * 7) % 15 - 5;
            let page = if i % 2 == 0 { "a" } else { "b" };
            values.push(format!("(to_timestamp({t}), '{page}', {})", b * 10 + i));
        }
        if b == 3 {
            // No event time: late at once.
            values.push("(NULL, 'a', 1000)".to_string());
        }
        admin
            .execute(&format!("INSERT INTO clicks VALUES {}", values.join(", ")))
            .await
            .unwrap();
        for job in ["pm", "roll"] {
            let run = one(&admin, &format!("RUN JOB {job}")).await;
            assert!(run.contains("|succeeded|"), "{run}");
        }
    }
    // An event for the first minute, long closed.
    admin
        .execute(&format!(
            "INSERT INTO clicks VALUES (to_timestamp({base}), 'a', -1)"
        ))
        .await
        .unwrap();
    for job in ["pm", "roll"] {
        let run = one(&admin, &format!("RUN JOB {job}")).await;
        let cells: Vec<&str> = run.split('|').collect();
        assert_eq!(cells[5], "1", "{job}: {run}");
    }
    assert_eq!(
        rows(&admin, "SELECT ms FROM pm_late ORDER BY ms").await,
        vec!["-1", "1000"]
    );
    assert_eq!(
        rows(&admin, "SELECT ms FROM rolling_late ORDER BY ms").await,
        vec!["-1", "1000"]
    );
    assert_eq!(
        one(
            &admin,
            "SELECT sum(late_rows) FROM system.job_runs WHERE job = 'pm'"
        )
        .await,
        "2"
    );

    let watermark: i64 = one(
        &admin,
        "SELECT to_unixtime(watermark) FROM system.jobs WHERE name = 'pm'",
    )
    .await
    .parse()
    .unwrap();
    let newest: i64 = one(&admin, "SELECT max(to_unixtime(ts)) FROM clicks")
        .await
        .parse()
        .unwrap();
    assert_eq!(watermark, newest - 30);

    // Tumbling: each closed minute once, as GROUP BY computes it.
    let expected = rows(
        &admin,
        &format!(
            "SELECT w, w + 60, page, count(*), sum(ms) FROM \
               (SELECT to_unixtime(ts) / 60 * 60 AS w, page, ms FROM clicks WHERE ms >= 0 AND ms < 1000) \
             WHERE w + 60 <= {watermark} GROUP BY w, page ORDER BY 1, 3"
        ),
    )
    .await;
    assert!(expected.len() >= 4, "{expected:?}");
    assert_eq!(emitted(&admin, "per_minute").await, expected);

    // Hopping: every row in the three windows that contain it.
    let expected = rows(
        &admin,
        &format!(
            "SELECT w, w + 180, page, count(*), sum(ms) FROM \
               (SELECT to_unixtime(ts) / 60 * 60 - k * 60 AS w, page, ms \
                FROM clicks CROSS JOIN (VALUES (0), (1), (2)) AS ks(k) WHERE ms >= 0 AND ms < 1000) \
             WHERE w + 180 <= {watermark} GROUP BY w, page ORDER BY 1, 3"
        ),
    )
    .await;
    assert_eq!(emitted(&admin, "rolling").await, expected);

    // Windows are emitted once.
    assert_eq!(
        one(
            &admin,
            "SELECT count(*) FROM (SELECT window_start, page FROM per_minute GROUP BY 1, 2 HAVING count(*) > 1)"
        )
        .await,
        "0"
    );
}

#[tokio::test]
async fn job_definitions_are_checked_when_created() {
    let (_engine, admin, _dir) = lake().await;
    admin
        .execute("CREATE TABLE t (ts TIMESTAMP, n INT); CREATE TABLE o (n INT)")
        .await
        .unwrap();
    for (sql, message) in [
        (
            "CREATE JOB j SCHEDULE 'every day' AS INSERT INTO o SELECT n FROM t",
            "invalid cron schedule",
        ),
        (
            "CREATE JOB j EVERY 'soon' AS INSERT INTO o SELECT n FROM t",
            "invalid interval",
        ),
        (
            "CREATE JOB j EVERY '1 minute' AS INSERT INTO o SELECT n FROM table_changes('missing')",
            "missing",
        ),
        (
            "CREATE JOB j EVERY '1 minute' WINDOW TUMBLE (n, '1 minute') AS INSERT INTO o SELECT n FROM table_changes('t')",
            "expected a timestamp",
        ),
        (
            "CREATE JOB j EVERY '1 minute' WINDOW TUMBLE (ts, '1 minute') AS INSERT INTO o SELECT n FROM t",
            "exactly one table_changes",
        ),
        (
            "CREATE JOB j EVERY '1 minute' WINDOW HOP (ts, '5 minutes', '1 minute') AS INSERT INTO o SELECT n FROM table_changes('t')",
            "longer than the window size",
        ),
        ("RUN JOB nothing", "nothing"),
        ("ALTER JOB nothing PAUSE", "nothing"),
        ("DROP JOB nothing", "nothing"),
    ] {
        let e = error(&admin, sql).await;
        assert!(e.contains(message), "{sql}: {e}");
    }
    admin
        .execute(
            "CREATE JOB j SCHEDULE '@daily' AS INSERT INTO o SELECT n FROM t; \
             CREATE JOB IF NOT EXISTS j EVERY '1 minute' AS INSERT INTO o SELECT n FROM t",
        )
        .await
        .unwrap();
    let e = error(
        &admin,
        "CREATE JOB j EVERY '1 minute' AS INSERT INTO o SELECT n FROM t",
    )
    .await;
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(
        rows(&admin, "SHOW JOBS").await[0]
            .split('|')
            .take(4)
            .collect::<Vec<_>>(),
        vec!["j", "SCHEDULE '@daily'", "INSERT", "false"]
    );
    admin
        .execute("DROP JOB j; DROP JOB IF EXISTS j")
        .await
        .unwrap();
    assert!(rows(&admin, "SHOW JOBS").await.is_empty());
}

#[tokio::test]
async fn a_job_runs_as_its_owner_with_the_owners_boundaries() {
    let (engine, admin, _dir) = lake().await;
    admin
        .execute(
            "CREATE SCHEMA s; \
             CREATE TABLE s.src (id INT, region TEXT); CREATE TABLE s.out (id INT, region TEXT); \
             CREATE USER ana PASSWORD 'pw-ana'; CREATE USER bob PASSWORD 'pw-bob'; \
             CREATE ROLE etl; GRANT ROLE etl TO ana; \
             GRANT SELECT ON TABLE s.src TO ROLE etl; GRANT INSERT ON TABLE s.out TO ROLE etl; \
             GRANT MANAGE ON CATALOG lake TO ROLE etl; \
             CREATE POLICY eu_only ON s.src TO etl USING (region = 'eu')",
        )
        .await
        .unwrap();
    let session = |name: &str| {
        engine.session(
            Principal {
                name: name.to_string(),
                roles: Vec::new(),
                stored: true,
            },
            Interface::FlightSql,
        )
    };
    let (ana, bob) = (session("ana"), session("bob"));
    ana.execute(
        "CREATE JOB copy EVERY '1 hour' AS INSERT INTO s.out SELECT id, region FROM table_changes('s.src')",
    )
    .await
    .unwrap();
    // bob may neither create a job doing the same nor run ana's.
    for sql in [
        "CREATE JOB other EVERY '1 hour' AS INSERT INTO s.out SELECT id, region FROM table_changes('s.src')",
        "RUN JOB copy",
        "ALTER JOB copy PAUSE",
        "DROP JOB copy",
    ] {
        match bob.execute(sql).await {
            Err(Error::PermissionDenied(m)) => assert!(m.contains("bob"), "{m}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
    admin
        .execute("INSERT INTO s.src VALUES (1, 'eu'), (2, 'us'), (3, 'eu')")
        .await
        .unwrap();
    // Run by the admin, as ana: her row policy applies.
    let run = one(&admin, "RUN JOB copy").await;
    assert!(run.starts_with("copy|1|succeeded|3|2|"), "{run}");
    assert_eq!(
        rows(&admin, "SELECT id FROM s.out ORDER BY id").await,
        vec!["1", "3"]
    );
    let last_commit = one(&admin, "DESCRIBE HISTORY s.out LIMIT 1").await;
    assert_eq!(last_commit.split('|').nth(3), Some("ana"), "{last_commit}");

    // ana loses SELECT: the next run fails, is recorded, changes nothing.
    admin
        .execute("REVOKE SELECT ON TABLE s.src FROM ROLE etl; INSERT INTO s.src VALUES (4, 'eu')")
        .await
        .unwrap();
    match admin.execute("RUN JOB copy").await {
        Err(Error::PermissionDenied(m)) => {
            assert!(m.contains("ana lacks SELECT on table s.src"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(one(&admin, "SELECT count(*) FROM s.out").await, "2");
    assert_eq!(
        one(
            &admin,
            "SELECT status, error LIKE '%ana lacks SELECT%' FROM system.job_runs ORDER BY start DESC LIMIT 1"
        )
        .await,
        "failed|true"
    );
    // The audit log names the job's runs under the owner, interface job.
    assert_eq!(
        one(
            &admin,
            "SELECT count(*) > 0 FROM system.audit_log WHERE \"user\" = 'ana' AND interface = 'job'"
        )
        .await,
        "true"
    );

    // Granted again, the run picks up where the last success left off.
    admin
        .execute("GRANT SELECT ON TABLE s.src TO ROLE etl; ALTER JOB copy PAUSE")
        .await
        .unwrap();
    assert_eq!(
        one(&admin, "SELECT paused, next_run IS NULL FROM system.jobs").await,
        "true|true"
    );
    ana.execute("ALTER JOB copy RESUME").await.unwrap();
    let run = one(&admin, "RUN JOB copy").await;
    assert!(run.starts_with("copy|2|succeeded|1|1|"), "{run}");
    assert_eq!(
        rows(&admin, "SELECT id FROM s.out ORDER BY id").await,
        vec!["1", "3", "4"]
    );

    // A new owner: the job runs as bob, who lacks the privileges.
    admin
        .execute("ALTER JOB copy OWNER TO bob; INSERT INTO s.src VALUES (5, 'eu')")
        .await
        .unwrap();
    match admin.execute("RUN JOB copy").await {
        Err(Error::PermissionDenied(m)) => assert!(m.contains("bob"), "{m}"),
        other => panic!("{other:?}"),
    }
    admin.execute("DROP JOB copy").await.unwrap();
    assert_eq!(
        one(
            &admin,
            "SELECT count(*) FROM system.job_runs WHERE job = 'copy'"
        )
        .await,
        "4"
    );
}

#[tokio::test]
async fn a_drift_check_job_records_its_results() {
    let (_engine, admin, _dir) = lake().await;
    admin
        .execute(
            "CREATE TABLE f (x DOUBLE); \
             INSERT INTO f SELECT CAST(value AS DOUBLE) FROM generate_series(1, 100); \
             INSERT INTO f SELECT CAST(value AS DOUBLE) + 50 FROM generate_series(1, 100); \
             CREATE JOB drift EVERY '1 day' AS CHECK DRIFT ON f REFERENCE (VERSION AS OF 1) USING ks",
        )
        .await
        .unwrap();
    let run = one(&admin, "RUN JOB drift").await;
    assert!(run.starts_with("drift|1|succeeded|"), "{run}");
    assert_eq!(
        one(
            &admin,
            "SELECT monitor, \"table\", \"column\", test, drift_detected FROM system.drift_metrics"
        )
        .await,
        "drift|lake.public.f|x|ks|true"
    );
}
