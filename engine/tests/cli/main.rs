//! Tests of the `autolake` binary as a user runs it: separate processes on
//! one lake, concurrent writers, exit codes, formats and error messages.

mod cluster;
mod deck;
mod differential;
mod flight;
mod governance;
mod interop;
mod jobs;
mod lifecycle;
mod object_store;
mod observability;
mod pipelines;
mod services;
mod sources;
mod streams;
mod tags;
mod types;

use std::path::Path;
use std::process::{Command, Output};

fn autolake(lake: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autolake"))
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env_remove("AUTOLAKE_LAKE")
        .output()
        .expect("the autolake binary runs")
}

fn sql(lake: &Path, sql: &str) -> Output {
    autolake(lake, &["sql", "--format", "csv", "-e", sql])
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The single number a one-row, one-column query returns (0 for none).
fn count(lake: &Path, query: &str) -> i64 {
    let out = ok(sql(lake, query));
    out.lines()
        .nth(1)
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// A principal with the scientist role that is not a stored user, for
/// sessions opened on the library.
fn scientist() -> autolake_engine::Principal {
    autolake_engine::Principal {
        name: "sam".into(),
        roles: vec!["scientist".into()],
        stored: false,
    }
}

fn failed(out: Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).expect("utf-8 output")
}

#[test]
fn a_second_process_sees_the_first_ones_tables_and_versions() {
    let lake = tempfile::tempdir().unwrap();
    ok(sql(
        lake.path(),
        "CREATE SCHEMA crm; CREATE TABLE crm.people (id INT NOT NULL, name TEXT); \
         INSERT INTO crm.people VALUES (1, 'ada'); INSERT INTO crm.people VALUES (2, 'ben');",
    ));
    // The same lake named by a file:// URL.
    let url = format!("file://{}", lake.path().display());
    let out = ok(autolake(
        Path::new(&url),
        &[
            "sql",
            "--format",
            "csv",
            "-e",
            "SELECT schema, name, version FROM system.tables; \
             SELECT count(*) AS n FROM crm.people VERSION AS OF 1;",
        ],
    ));
    assert_eq!(out, "schema,name,version\ncrm,people,2\nn\n1\n");
    let schemas = ok(sql(lake.path(), "SHOW SCHEMAS"));
    assert!(schemas.contains("crm"), "{schemas}");
}

#[test]
fn concurrent_writers_lose_nothing_and_versions_are_contiguous() {
    let lake = tempfile::tempdir().unwrap();
    ok(sql(lake.path(), "CREATE TABLE events (writer INT, n INT)"));
    let per_writer = 15;
    let script = |w: usize| {
        (0..per_writer)
            .map(|i| format!("INSERT INTO events VALUES ({w}, {i});"))
            .collect::<String>()
    };
    let writers: Vec<_> = (0..2)
        .map(|w| {
            Command::new(env!("CARGO_BIN_EXE_autolake"))
                .arg("--lake")
                .arg(lake.path())
                .args(["sql", "-e", &script(w)])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in writers {
        assert!(w.wait().unwrap().success());
    }
    let out = ok(sql(
        lake.path(),
        "SELECT writer, count(*) AS rows, count(DISTINCT n) AS distinct_n FROM events GROUP BY writer ORDER BY writer",
    ));
    assert_eq!(out, "writer,rows,distinct_n\n0,15,15\n1,15,15\n");
    let history = ok(sql(lake.path(), "DESCRIBE HISTORY events"));
    let versions: Vec<i64> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    let expected: Vec<i64> = (0..=2 * per_writer as i64).rev().collect();
    assert_eq!(versions, expected);
}

#[test]
fn a_failing_statement_leaves_the_table_at_its_previous_version() {
    let lake = tempfile::tempdir().unwrap();
    ok(sql(
        lake.path(),
        "CREATE TABLE nums (n INT NOT NULL); INSERT INTO nums VALUES (1), (2), (3);",
    ));
    // The cast fails on the third row, after the first rows were read.
    let err = failed(
        sql(
            lake.path(),
            "INSERT INTO nums SELECT CAST(s AS INT) FROM (VALUES ('4'), ('5'), ('x')) AS v(s)",
        ),
        1,
    );
    assert!(err.contains("in statement `INSERT INTO nums"), "{err}");
    let err = failed(
        sql(
            lake.path(),
            "INSERT INTO nums SELECT NULL FROM (VALUES (1))",
        ),
        1,
    );
    assert!(err.to_lowercase().contains("null"), "{err}");
    let out = ok(sql(
        lake.path(),
        "SELECT version FROM system.tables; SELECT count(*) AS n FROM nums",
    ));
    assert_eq!(out, "version\n1\nn\n3\n");
}

#[test]
fn describe_history_names_user_statement_and_metrics() {
    let lake = tempfile::tempdir().unwrap();
    ok(sql(
        lake.path(),
        "CREATE TABLE h (a INT); INSERT INTO h VALUES (1), (2); UPDATE h SET a = 3 WHERE a = 1;",
    ));
    let out = ok(autolake(
        lake.path(),
        &["sql", "--format", "ndjson", "-e", "DESCRIBE HISTORY h"],
    ));
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    let ops: Vec<(&str, &str, &str, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap(),
                r["user"].as_str().unwrap(),
                r["statement"].as_str().unwrap(),
                r["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            ("UPDATE", "admin", "UPDATE", 2),
            ("WRITE", "admin", "INSERT", 1),
            ("CREATE TABLE", "admin", "CREATE TABLE", 0)
        ]
    );
    let metrics: serde_json::Value =
        serde_json::from_str(rows[1]["operation_metrics"].as_str().unwrap()).unwrap();
    assert_eq!(metrics["num_added_rows"], 2);
    assert!(rows[0]["timestamp"].as_str().unwrap().starts_with("20"));
}

#[test]
fn output_formats() {
    let lake = tempfile::tempdir().unwrap();
    let q = "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, NULL ORDER BY a";
    let table = ok(autolake(lake.path(), &["sql", "-e", q]));
    assert!(table.contains("| a | b |"), "{table}");
    let csv = ok(autolake(lake.path(), &["sql", "--format", "csv", "-e", q]));
    assert_eq!(csv, "a,b\n1,x\n2,\n");
    let json = ok(autolake(lake.path(), &["sql", "--format", "json", "-e", q]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v, serde_json::json!([{"a": 1, "b": "x"}, {"a": 2}]));
    let ndjson = ok(autolake(
        lake.path(),
        &["sql", "--format", "ndjson", "-e", q],
    ));
    assert_eq!(ndjson, "{\"a\":1,\"b\":\"x\"}\n{\"a\":2}\n");
    let empty = ok(autolake(
        lake.path(),
        &["sql", "--format", "json", "-e", "SELECT 1 AS a WHERE false"],
    ));
    assert_eq!(empty.trim(), "[]");
}

#[test]
fn files_and_stdin() {
    let lake = tempfile::tempdir().unwrap();
    let file = lake.path().join("script.sql");
    std::fs::write(
        &file,
        "CREATE TABLE f (a INT);\n-- a comment\nINSERT INTO f\n  VALUES (7);\nSELECT a FROM f;\n",
    )
    .unwrap();
    let out = ok(autolake(
        lake.path(),
        &["sql", "--format", "csv", "-f", file.to_str().unwrap()],
    ));
    assert!(out.ends_with("a\n7\n"), "{out}");

    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_autolake"))
        .arg("--lake")
        .arg(lake.path())
        .args(["sql", "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT a * 2 AS b FROM f;")
        .unwrap();
    let out = ok(child.wait_with_output().unwrap());
    assert_eq!(out, "b\n14\n");
}

#[test]
fn exit_codes_and_error_messages() {
    let lake = tempfile::tempdir().unwrap();
    // A syntax error anywhere runs nothing and names line and column.
    let err = failed(
        sql(lake.path(), "CREATE TABLE x (a INT);\nSELECT * FORM x;"),
        1,
    );
    assert!(err.contains("line 2, column"), "{err}");
    let out = ok(sql(lake.path(), "SELECT count(*) AS n FROM system.tables"));
    assert_eq!(out, "n\n0\n");

    // The failing statement is named; earlier statements took effect.
    let err = failed(
        sql(lake.path(), "CREATE TABLE y (a INT); SELECT nope FROM y;"),
        1,
    );
    assert!(
        err.contains("in statement `SELECT nope FROM y` (line 1)"),
        "{err}"
    );
    assert!(err.contains("nope"), "{err}");
    assert_eq!(err.lines().count(), 1, "one-line error: {err}");
    let err = failed(sql(lake.path(), "SELECT * FROM missing"), 1);
    assert!(err.contains("missing"), "{err}");

    // Usage errors exit 2.
    failed(
        autolake(lake.path(), &["sql", "--format", "xml", "-e", "SELECT 1"]),
        2,
    );
    failed(autolake(lake.path(), &["frobnicate"]), 2);

    // A lake that cannot be used is a clear error.
    let file = lake.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = failed(
        Command::new(env!("CARGO_BIN_EXE_autolake"))
            .args(["--lake", file.to_str().unwrap(), "sql", "-e", "SELECT 1"])
            .output()
            .unwrap(),
        1,
    );
    assert!(err.contains("cannot use the lake at"), "{err}");
    let err = failed(
        Command::new(env!("CARGO_BIN_EXE_autolake"))
            .args(["--lake", "ftp://host/x", "sql", "-e", "SELECT 1"])
            .output()
            .unwrap(),
        1,
    );
    assert!(err.contains("unsupported lake scheme 'ftp'"), "{err}");
}

#[test]
fn monitors_live_in_the_lake_and_runs_append_metrics() {
    let lake = tempfile::tempdir().unwrap();
    ok(sql(
        lake.path(),
        "CREATE TABLE obs AS SELECT CAST(value AS DOUBLE) AS x FROM generate_series(1, 200); \
         UPDATE obs SET x = x * 3 WHERE x > 100; \
         CREATE MONITOR obs_x ON obs COLUMNS (x) REFERENCE (VERSION AS OF 0) \
           SCHEDULE '*/10 * * * *'",
    ));
    // Another process sees the monitor and runs it.
    assert_eq!(
        ok(sql(lake.path(), "SHOW MONITORS")),
        "name,table,schedule,owner\nobs_x,lake.public.obs,*/10 * * * *,admin\n"
    );
    let run = ok(sql(lake.path(), "RUN MONITOR obs_x"));
    assert!(run.contains("obs_x"), "{run}");
    ok(sql(lake.path(), "RUN MONITOR obs_x"));
    // Two runs, one commit each, readable by a third process and by Delta
    // tools at the table's location.
    assert_eq!(
        ok(sql(
            lake.path(),
            "SELECT count(*) AS runs, min(test) AS test, bool_and(drift_detected) AS drift \
             FROM system.drift_metrics"
        )),
        "runs,test,drift\n2,ks,true\n"
    );
    assert!(
        lake.path()
            .join("tables/system/drift_metrics/_delta_log/00000000000000000001.json")
            .exists()
    );
    // The system schema is listed once, and its tables are not user tables.
    let schemas = ok(sql(lake.path(), "SHOW SCHEMAS"));
    assert_eq!(schemas.matches("system").count(), 1, "{schemas}");
    let err = failed(sql(lake.path(), "DROP TABLE system.drift_metrics"), 1);
    assert!(err.contains("read-only"), "{err}");
}

/// `autolake demo` with its PostgreSQL step pointed at `postgres`.
fn demo(lake: &Path, postgres: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autolake"))
        .arg("--lake")
        .arg(lake)
        .arg("demo")
        .env_remove("AUTOLAKE_LAKE")
        .env("AUTOLAKE_DEMO_POSTGRES", postgres)
        .output()
        .expect("the autolake binary runs")
}

#[test]
fn demo_runs_and_is_idempotent() {
    let lake = tempfile::tempdir().unwrap();
    let postgres = services::Service::Postgres.url();
    let first = ok(demo(lake.path(), &postgres));
    assert!(
        first.contains("demo_crm.public.autolake_demo_segments: PostgreSQL table at"),
        "{first}"
    );
    assert!(first.contains("Revenue by region"), "{first}");
    assert!(first.contains("version 0 (as loaded)"), "{first}");
    assert!(first.contains("drift_detected"), "{first}");
    assert!(first.contains("demo_large_orders"), "{first}");
    assert!(first.contains("accuracy"), "{first}");
    let second = ok(demo(lake.path(), &postgres));
    // Same tables and versions the second time.
    let tables = |s: &str| {
        s.lines()
            .skip_while(|l| !l.starts_with("== 2."))
            .take_while(|l| !l.starts_with("== 3."))
            .map(str::to_string)
            .filter(|l| !l.contains("| bytes") && !l.trim().is_empty())
            .map(|l| l.split('|').take(5).collect::<Vec<_>>().join("|"))
            .collect::<Vec<_>>()
    };
    assert_eq!(tables(&first), tables(&second));
    let out = ok(sql(
        lake.path(),
        "SELECT count(*) AS orders FROM demo.orders; SELECT count(*) AS customers FROM demo.customers",
    ));
    assert_eq!(out, "orders\n120\ncustomers\n24\n");
    // Re-running trained the model again from scratch: one version. The
    // scores: every order, and the four new ones the demo's job scored.
    let out = ok(sql(
        lake.path(),
        "SELECT name, version FROM system.models; SELECT count(*) AS scored FROM demo.order_scores; \
         SELECT name, last_run FROM system.jobs ORDER BY name",
    ));
    assert_eq!(
        out,
        "name,version\ndemo_large_orders,1\nscored\n124\nname,last_run\ndemo_alert_large,1\n\
         demo_price_drift,1\ndemo_score_incoming,2\n"
    );
}

#[test]
fn the_demo_runs_without_postgresql_and_says_why() {
    let lake = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let out = ok(demo(
        lake.path(),
        "postgres://postgres:pw-s3cret@127.0.0.1:1/test",
    ));
    assert!(
        out.contains(
            "PostgreSQL: not used (none reachable at postgres://postgres:***@127.0.0.1:1/test)"
        ),
        "{out}"
    );
    assert!(!out.contains("pw-s3cret"), "{out}");
    assert!(out.contains("Revenue by region"), "{out}");
    let out = ok(demo(lake.path(), "not a url"));
    assert!(
        out.contains("PostgreSQL: not used (AUTOLAKE_DEMO_POSTGRES is not a PostgreSQL URL"),
        "{out}"
    );
}

/// CSV has no nested values: lists, structs and maps print as JSON text,
/// quoted by CSV's rules, NULL as an empty field.
#[test]
fn csv_prints_nested_values_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(sql(
        dir.path(),
        "SELECT g, array_agg(v ORDER BY v) AS vs, named_struct('n', g, 's', 'x') AS rec, \
         map(['k'], [g]) AS m, CAST(NULL AS INT[]) AS none \
         FROM (VALUES (1, 10), (1, 20), (2, 30)) AS t(g, v) GROUP BY g ORDER BY g",
    ));
    assert_eq!(
        out,
        "g,vs,rec,m,none\n\
         1,\"[10,20]\",\"{\"\"n\"\":1,\"\"s\"\":\"\"x\"\"}\",\"{\"\"k\"\":1}\",\n\
         2,[30],\"{\"\"n\"\":2,\"\"s\"\":\"\"x\"\"}\",\"{\"\"k\"\":2}\",\n",
        "{out}"
    );
}
