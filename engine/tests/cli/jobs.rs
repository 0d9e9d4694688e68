//! Jobs run by processes: the scheduler inside `autolake serve`,
//! `autolake jobs run-due` for external schedulers, and exactly-once
//! output when the server is killed with SIGKILL at random points while
//! its job runs and another process keeps appending.

use std::time::{Duration, Instant};

use super::flight::Server;
use super::{autolake, count, ok, sql};

fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_due_and_the_server_scheduler_run_jobs_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    ok(sql(
        lake,
        "CREATE TABLE src (id INT); CREATE TABLE out (id INT); \
         CREATE JOB copy EVERY '300 ms' AS INSERT INTO out SELECT id FROM table_changes('src'); \
         CREATE JOB nightly SCHEDULE '0 3 * * *' AS INSERT INTO out SELECT id FROM table_changes('src'); \
         INSERT INTO src VALUES (1), (2)",
    ));
    // Never run and on an interval: due at once. The cron job waits for 03:00.
    let out = ok(autolake(lake, &["jobs", "run-due"]));
    assert_eq!(
        out,
        "copy run 1: succeeded (2 rows read, 2 written, 0 late)\n"
    );
    // Not due again until 300 ms after that run started.
    ok(sql(lake, "INSERT INTO src VALUES (3)"));
    std::thread::sleep(Duration::from_millis(400));
    let out = ok(autolake(lake, &["jobs", "run-due"]));
    assert_eq!(
        out,
        "copy run 2: succeeded (1 rows read, 1 written, 0 late)\n"
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        ok(autolake(lake, &["jobs", "run-due"])),
        "copy: nothing new\n"
    );

    // Paused, even across processes.
    ok(sql(
        lake,
        "ALTER JOB copy PAUSE; INSERT INTO src VALUES (4)",
    ));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(ok(autolake(lake, &["jobs", "run-due"])), "");
    let server = Server::start(lake, 3600);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(lake, "SELECT count(*) FROM out"), 3);

    // Resumed: the server's scheduler picks it up.
    ok(sql(lake, "ALTER JOB copy RESUME"));
    wait_until("the resumed job", Duration::from_secs(20), || {
        count(lake, "SELECT count(*) FROM out") == 4
    });
    ok(sql(lake, "INSERT INTO src VALUES (5)"));
    wait_until("the next run", Duration::from_secs(20), || {
        count(lake, "SELECT count(*) FROM out") == 5
    });
    // A job after it: the server runs it once copy has committed.
    ok(sql(
        lake,
        "CREATE TABLE out2 (id INT); \
         CREATE JOB after_copy AFTER copy AS INSERT INTO out2 SELECT id * 10 FROM table_changes('out'); \
         INSERT INTO src VALUES (6)",
    ));
    wait_until("the downstream job", Duration::from_secs(20), || {
        count(lake, "SELECT count(*) FROM out2") == 6
    });
    drop(server);
    assert_eq!(
        ok(sql(lake, "SELECT id FROM out2 ORDER BY id")),
        "id\n10\n20\n30\n40\n50\n60\n"
    );
    let runs = ok(sql(
        lake,
        "SELECT trigger, count(*) AS n FROM system.job_runs WHERE job = 'copy' GROUP BY trigger ORDER BY trigger",
    ));
    assert!(runs.starts_with("trigger,n\nschedule,"), "{runs}");
}

/// A small deterministic generator for kill times.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[test]
fn kill_9_of_the_server_during_job_runs_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().to_path_buf();
    // Each row is scored by a model whose predictions are logged: the log
    // must hold each output row's prediction exactly once too.
    ok(sql(
        &lake,
        "CREATE TABLE src (id BIGINT, k INT); CREATE TABLE out (id BIGINT, k INT, p DOUBLE); \
         CREATE TABLE seed AS SELECT CAST(value AS DOUBLE) AS x, CAST(value * 2 AS DOUBLE) AS y \
           FROM range(0, 20); \
         CREATE MODEL lin TYPE linear_regression OPTIONS (target 'y', validation_split 0) \
           AS SELECT x, y FROM seed; \
         ALTER MODEL lin SET LOGGING TO lake.public.lin_log; \
         CREATE JOB copy EVERY '100 ms' AS INSERT INTO out \
         SELECT id, k, predict('lin', CAST(k AS DOUBLE)) FROM table_changes('src') \
         WHERE _change_type = 'insert'",
    ));
    // Another process keeps appending (two commits per process) while the
    // server is killed and restarted, until 50 runs have succeeded.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer_lake = lake.clone();
    let writer_stop = std::sync::Arc::clone(&stop);
    let writer = std::thread::spawn(move || {
        let mut k = 0;
        while !writer_stop.load(std::sync::atomic::Ordering::Relaxed) {
            let statements: String = (0..2)
                .map(|j| {
                    let batch = k * 2 + j;
                    format!(
                        "INSERT INTO src SELECT value + {}, {batch} FROM generate_series(0, {});",
                        batch * 1000,
                        10 + batch % 7
                    )
                })
                .collect();
            ok(sql(&writer_lake, &statements));
            std::thread::sleep(Duration::from_millis(150));
            k += 1;
        }
    });
    let mut rng = Lcg(0x5eed);
    let mut kills = 0;
    let started = Instant::now();
    loop {
        let server = Server::start(&lake, 3600);
        std::thread::sleep(Duration::from_millis(150 + rng.next(900)));
        drop(server); // SIGKILL
        kills += 1;
        if kills % 5 == 0 {
            let runs = count(
                &lake,
                "SELECT count(*) FROM system.job_runs WHERE status IN ('succeeded', 'recovered')",
            );
            if runs >= 50 || started.elapsed() > Duration::from_secs(300) {
                break;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();

    // One last, uninterrupted start drains what is left.
    let server = Server::start(&lake, 3600);
    let expected = count(&lake, "SELECT count(*) FROM src");
    wait_until("the last rows", Duration::from_secs(60), || {
        count(&lake, "SELECT count(*) FROM out") >= expected
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(server);

    let out = ok(sql(
        &lake,
        "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM out; \
         SELECT count(*) AS missing FROM (SELECT id, k FROM src EXCEPT SELECT id, k FROM out); \
         SELECT count(*) AS extra FROM (SELECT id, k FROM out EXCEPT SELECT id, k FROM src)",
    ));
    assert_eq!(
        out,
        format!("n,ids\n{expected},{expected}\nmissing\n0\nextra\n0\n"),
        "after {kills} kills"
    );
    let runs = count(
        &lake,
        "SELECT count(*) FROM system.job_runs WHERE status IN ('succeeded', 'recovered')",
    );
    assert!(runs >= 50, "only {runs} runs in {kills} kills");
    // The prediction log: one row per output row (the same multiset of
    // inputs and outputs), and each recorded run's rows under its run
    // number. (A run's record in system.job_runs can be lost to a kill
    // after its state was saved, and a recovered run's record counts no
    // rows, so only succeeded records are compared.)
    assert_eq!(count(&lake, "SELECT count(*) FROM lin_log"), expected);
    let mismatched = ok(sql(
        &lake,
        "SELECT r.run, l.c, r.rows_written \
         FROM (SELECT run, rows_written FROM system.job_runs \
               WHERE job = 'copy' AND status = 'succeeded') r \
         LEFT JOIN (SELECT job_run, count(*) AS c FROM lin_log GROUP BY job_run) l \
         ON l.job_run = r.run \
         WHERE l.c IS DISTINCT FROM CASE WHEN r.rows_written > 0 THEN r.rows_written END",
    ));
    assert_eq!(mismatched, "run,c,rows_written\n", "after {kills} kills");
    let unequal = ok(sql(
        &lake,
        "SELECT o.k, o.p, o.n, l.n AS logged FROM \
         (SELECT k, CAST(round(p) AS BIGINT) AS p, count(*) AS n FROM out GROUP BY 1, 2) o \
         FULL JOIN \
         (SELECT CAST(CAST(regexp_replace(inputs, '[^0-9.]', '', 'g') AS DOUBLE) AS INT) AS k, \
                 CAST(round(CAST(output AS DOUBLE)) AS BIGINT) AS p, count(*) AS n \
          FROM lin_log GROUP BY 1, 2) l \
         ON o.k = l.k AND o.p = l.p WHERE o.n IS DISTINCT FROM l.n",
    ));
    assert_eq!(unequal, "k,p,n,logged\n", "after {kills} kills");
}
