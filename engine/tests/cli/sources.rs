//! Sources and sync against real servers: PostgreSQL (trust auth, database
//! `test`) and MariaDB (root without a password, database `test`) that the
//! test harness runs on free loopback ports (see `services`), files on disk
//! and on an S3-compatible server (moto).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::services::{Moto, Service, run_python};
use super::{autolake, failed, ok, sql};

/// A name no other test (or earlier run) uses.
pub(super) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Runs SQL in PostgreSQL's `test` database.
pub(super) fn psql(sql: &str) -> String {
    let port = Service::Postgres.port().to_string();
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "test",
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql failed: {}\n{sql}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs SQL in MariaDB's `test` database.
pub(super) fn mysql(sql: &str) -> String {
    let port = Service::MariaDb.port().to_string();
    let args = [
        "--no-defaults",
        "-h",
        "127.0.0.1",
        "-P",
        &port,
        "-u",
        "root",
        "-N",
        "-B",
        "test",
        "-e",
        sql,
    ];
    // Debian's MariaDB ships the client as `mariadb`; older ones as `mysql`.
    let out = Command::new("mariadb")
        .args(args)
        .output()
        .or_else(|_| Command::new("mysql").args(args).output())
        .expect("the mariadb client runs");
    assert!(
        out.status.success(),
        "mariadb failed: {}\n{sql}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The test PostgreSQL with a password in the URL (trust auth ignores it),
/// so tests can check it never shows.
fn pg_url() -> String {
    Service::Postgres
        .url()
        .replacen("postgres@", "postgres:sup3r-s3cret@", 1)
}

/// The test MariaDB's URL for database `db`.
fn mysql_url(db: &str) -> String {
    format!("mysql://root@{}/{db}", Service::MariaDb.address())
}

#[test]
fn postgres_tables_are_queried_in_place_with_pushdown_and_every_common_type() {
    let lake = tempfile::tempdir().unwrap();
    let t = unique("types");
    psql(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, s smallint, b bigint, n numeric(10,2), r real, \
         d double precision, txt text, v varchar(20), flag boolean, day date, ts timestamp, \
         tstz timestamptz, j json, u uuid, bin bytea); \
         INSERT INTO {t} VALUES (1, 7, 9000000000, 12.50, 1.5, 2.25, 'hello', 'vc', true, '2026-01-02', \
         '2026-01-02 03:04:05', '2026-01-02 03:04:05+00', '{{\"a\": 1}}', \
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x0102'), \
         (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
    ));
    ok(sql(
        lake.path(),
        &format!(
            "CREATE SOURCE crm TYPE postgres OPTIONS (url '{}')",
            pg_url()
        ),
    ));
    let out = ok(sql(
        lake.path(),
        &format!(
            "SELECT id, s, b, n, r, d, txt, v, flag, day, ts, tstz, u FROM crm.public.{t} ORDER BY id"
        ),
    ));
    assert_eq!(
        out,
        "id,s,b,n,r,d,txt,v,flag,day,ts,tstz,u\n\
         1,7,9000000000,12.50,1.5,2.25,hello,vc,true,2026-01-02,2026-01-02T03:04:05,2026-01-02T03:04:05Z,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\n\
         2,,,,,,,,,,,,\n"
    );
    let json = ok(autolake(
        lake.path(),
        &[
            "sql",
            "--format",
            "ndjson",
            "-e",
            &format!("SELECT j, bin FROM crm.public.{t} WHERE id = 1"),
        ],
    ));
    assert!(json.contains(r#"{\"a\": 1}"#), "{json}");
    assert!(json.contains("0102"), "{json}");

    // Projection, filter and limit reach PostgreSQL.
    let plan = ok(sql(
        lake.path(),
        &format!("EXPLAIN SELECT txt FROM crm.public.{t} WHERE id > 0 LIMIT 1"),
    ));
    let pushed = plan
        .lines()
        .find(|l| l.to_lowercase().contains("sqlexec sql="))
        .unwrap_or_else(|| panic!("no SqlExec in {plan}"));
    assert!(pushed.contains("WHERE"), "{pushed}");
    assert!(pushed.contains("LIMIT 1"), "{pushed}");
    assert!(!pushed.contains("tstz"), "projection not pushed: {pushed}");

    // Joins with lake tables.
    ok(sql(
        lake.path(),
        "CREATE TABLE labels (id INT, label TEXT); INSERT INTO labels VALUES (1, 'first'), (2, 'second')",
    ));
    let out = ok(sql(
        lake.path(),
        &format!(
            "SELECT l.label, p.txt FROM labels l JOIN crm.public.{t} p ON l.id = p.id ORDER BY l.id"
        ),
    ));
    assert_eq!(out, "label,txt\nfirst,hello\nsecond,\n");
    no_column_scans(lake.path(), &format!("crm.public.{t}"));

    // A type with no mapping is an error naming the column and the type,
    // never a value.
    let odd = unique("odd");
    psql(&format!(
        "CREATE TABLE {odd} (id int, doc jsonb); INSERT INTO {odd} VALUES (1, '{{}}')"
    ));
    let err = failed(
        sql(lake.path(), &format!("SELECT id FROM crm.public.{odd}")),
        1,
    );
    assert!(err.contains("'doc'") && err.contains("jsonb"), "{err}");
    psql(&format!("DROP TABLE {t}; DROP TABLE {odd}"));
}

#[test]
fn source_secrets_never_show_and_definitions_persist() {
    let lake = tempfile::tempdir().unwrap();
    ok(sql(
        lake.path(),
        &format!(
            "CREATE SOURCE crm TYPE postgres OPTIONS (url '{}')",
            pg_url()
        ),
    ));
    // A new process sees it; listings hide the password.
    let shown = ok(sql(
        lake.path(),
        "SHOW SOURCES; SELECT name, type, options, owner FROM system.sources",
    ));
    assert!(shown.contains("crm,postgres"), "{shown}");
    assert!(shown.contains("postgres:***@127.0.0.1"), "{shown}");
    assert!(!shown.contains("sup3r-s3cret"), "{shown}");
    let err = failed(
        sql(
            lake.path(),
            &format!(
                "CREATE SOURCE crm TYPE postgres OPTIONS (url '{}')",
                pg_url()
            ),
        ),
        1,
    );
    assert!(err.contains("source crm already exists"), "{err}");
    ok(sql(
        lake.path(),
        &format!(
            "CREATE SOURCE IF NOT EXISTS crm TYPE postgres OPTIONS (url '{}')",
            pg_url()
        ),
    ));

    // A source that cannot be reached: the error says so, without secrets.
    let err = failed(
        sql(
            lake.path(),
            "CREATE SOURCE down TYPE postgres OPTIONS (url 'postgres://ana:hunter2-pw@127.0.0.1:1/x')",
        ),
        1,
    );
    assert!(err.contains("source down"), "{err}");
    assert!(!err.contains("hunter2-pw"), "{err}");
    let err = failed(
        sql(
            lake.path(),
            &format!(
                "CREATE SOURCE m TYPE mysql OPTIONS (url 'mysql://root:topsecret-9@{}/no_such_db_here')",
                Service::MariaDb.address()
            ),
        ),
        1,
    );
    assert!(!err.contains("topsecret-9"), "{err}");
    let err = failed(
        sql(
            lake.path(),
            "CREATE SOURCE f TYPE files OPTIONS (path '/tmp')",
        ),
        1,
    );
    assert!(err.contains("unknown option 'path'"), "{err}");
    let listed = ok(sql(lake.path(), "SELECT name FROM system.sources"));
    assert_eq!(listed, "name\ncrm\n");

    ok(sql(
        lake.path(),
        "DROP SOURCE crm; DROP SOURCE IF EXISTS crm",
    ));
    let err = failed(sql(lake.path(), "DROP SOURCE crm"), 1);
    assert!(err.contains("source crm does not exist"), "{err}");
    assert_eq!(
        ok(sql(lake.path(), "SHOW SOURCES")),
        "name,type,options,owner\n"
    );
}

#[test]
fn postgres_sync_is_incremental_merges_on_key_and_evolves_the_schema() {
    let lake = tempfile::tempdir().unwrap();
    let t = unique("orders");
    psql(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamp); \
         INSERT INTO {t} SELECT g, g * 1.5, '2026-01-01'::timestamp + g * interval '1 minute' \
         FROM generate_series(1, 1000) g;"
    ));
    ok(sql(
        lake.path(),
        &format!(
            "CREATE SOURCE crm TYPE postgres OPTIONS (url '{}'); CREATE SCHEMA raw",
            pg_url()
        ),
    ));
    let sync_append =
        format!("SYNC TABLE raw.orders FROM crm.public.{t} INCREMENTAL ON updated_at");
    let first = ok(sql(lake.path(), &sync_append));
    assert!(first.contains(",copy,1000,0,0,"), "{first}");
    // Nothing new: nothing written, cursor unchanged.
    let again = ok(sql(lake.path(), &sync_append));
    assert!(again.contains(",append,0,0,"), "{again}");
    psql(&format!(
        "INSERT INTO {t} SELECT g, g * 1.5, '2026-02-01'::timestamp + g * interval '1 minute' \
         FROM generate_series(1001, 1100) g;"
    ));
    let third = ok(sql(lake.path(), &sync_append));
    assert!(third.contains(",append,100,0,"), "{third}");
    let counts = ok(sql(
        lake.path(),
        "SELECT count(*) AS n, count(DISTINCT id) AS ids, sum(amount) AS total FROM raw.orders",
    ));
    assert_eq!(counts, "n,ids,total\n1100,1100,908325.00\n");

    // Merge on key: updates change rows, inserts add them.
    let keyed = format!(
        "SYNC TABLE raw.orders_by_id FROM crm.public.{t} INCREMENTAL ON updated_at KEY (id)"
    );
    ok(sql(lake.path(), &keyed));
    psql(&format!(
        "UPDATE {t} SET amount = 0, updated_at = '2026-03-01' WHERE id <= 10; \
         INSERT INTO {t} VALUES (5000, 1, '2026-03-02');"
    ));
    let merged = ok(sql(lake.path(), &keyed));
    assert!(merged.contains(",merge,11,0,"), "{merged}");
    let out = ok(sql(
        lake.path(),
        "SELECT count(*) AS n, sum(CASE WHEN amount = 0 THEN 1 ELSE 0 END) AS zeroed FROM raw.orders_by_id",
    ));
    assert_eq!(out, "n,zeroed\n1101,10\n");

    // The source gains a column: the next run adds it.
    psql(&format!(
        "ALTER TABLE {t} ADD COLUMN channel text; \
         INSERT INTO {t} VALUES (6000, 2, '2026-04-01', 'web');"
    ));
    let evolved = ok(sql(lake.path(), &sync_append));
    assert!(evolved.contains(",append,"), "{evolved}");
    let out = ok(sql(
        lake.path(),
        "SELECT id, channel FROM raw.orders WHERE channel IS NOT NULL",
    ));
    assert_eq!(out, "id,channel\n6000,web\n");

    // One lineage row per run, with the cursor and the Delta version.
    let lineage = ok(sql(
        lake.path(),
        "SELECT target, run, mode, rows, version, cursor, \"user\" FROM system.lineage \
         WHERE target = 'lake.raw.orders' ORDER BY run",
    ));
    let lines: Vec<&str> = lineage.lines().collect();
    assert_eq!(lines.len(), 5, "{lineage}");
    assert!(
        lines[1].starts_with("lake.raw.orders,1,copy,1000,0,2026-01-01T16:40:00,admin"),
        "{lineage}"
    );
    assert!(
        lines[3].starts_with("lake.raw.orders,3,append,100,1,"),
        "{lineage}"
    );
    assert!(lines[4].contains("2026-04-01T00:00:00"), "{lineage}");

    // Without a cursor, each run refreshes the table.
    let mirror = format!("SYNC TABLE raw.mirror FROM crm.public.{t}");
    ok(sql(lake.path(), &mirror));
    ok(sql(lake.path(), &mirror));
    assert_eq!(
        ok(sql(lake.path(), "SELECT count(*) AS n FROM raw.mirror")),
        "n\n1102\n"
    );
    let err = failed(
        sql(
            lake.path(),
            &format!("SYNC TABLE raw.x FROM crm.public.{t} INCREMENTAL ON nope"),
        ),
        1,
    );
    assert!(err.contains("column nope"), "{err}");
    let err = failed(
        sql(
            lake.path(),
            "SYNC TABLE raw.x FROM crm.public.no_such_table",
        ),
        1,
    );
    assert!(err.contains("no_such_table does not exist"), "{err}");
    psql(&format!("DROP TABLE {t}"));
}

#[test]
fn a_sync_killed_at_any_point_and_rerun_has_exactly_the_source_rows() {
    let lake = tempfile::tempdir().unwrap();
    let t = unique("big");
    psql(&format!(
        "CREATE TABLE {t} (id bigint PRIMARY KEY, payload text, seq bigint); \
         INSERT INTO {t} SELECT g, repeat('x', 50), g FROM generate_series(1, 200000) g;"
    ));
    ok(sql(
        lake.path(),
        &format!(
            "CREATE SOURCE crm TYPE postgres OPTIONS (url '{}')",
            pg_url()
        ),
    ));
    let sync = format!("SYNC TABLE big FROM crm.public.{t} INCREMENTAL ON seq");
    let mut next = 200_000;
    for (round, delay_ms) in [30u64, 150, 400, 900, 1500, 2500].into_iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_autolake"))
            .arg("--lake")
            .arg(lake.path())
            .args(["sql", "-e", &sync])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // New rows arrive between runs.
        psql(&format!(
            "INSERT INTO {t} SELECT g, 'y', g FROM generate_series({}, {}) g;",
            next + 1,
            next + 1000
        ));
        next += 1000;
        if round % 2 == 1 {
            ok(sql(lake.path(), &sync));
        }
    }
    ok(sql(lake.path(), &sync));
    let out = ok(sql(
        lake.path(),
        "SELECT count(*) AS n, count(DISTINCT id) AS ids, min(id) AS lo, max(id) AS hi FROM big",
    ));
    assert_eq!(out, format!("n,ids,lo,hi\n{next},{next},1,{next}\n"));
    // Every committed run has its lineage row, even one killed before
    // recording it.
    let runs = ok(sql(
        lake.path(),
        "SELECT count(*) AS runs, count(DISTINCT run) AS distinct_runs, sum(rows) AS rows FROM system.lineage",
    ));
    let fields: Vec<&str> = runs.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(fields[0], fields[1], "{runs}");
    assert_eq!(fields[2], next.to_string(), "{runs}");
    psql(&format!("DROP TABLE {t}"));
}

/// Queries whose scan of the source table `t` (two rows, ids 1 and 2)
/// needs no column, with lake table `labels` (ids 1 and 2): the filter
/// still reaches the server.
fn no_column_scans(lake: &Path, t: &str) {
    for (query, expected) in [
        (format!("SELECT count(*) AS n FROM {t}"), "n\n2\n"),
        (
            format!("SELECT count(*) AS n FROM {t} WHERE id > 1"),
            "n\n1\n",
        ),
        (format!("SELECT 1 AS one FROM {t} WHERE id = 1"), "one\n1\n"),
        (
            format!(
                "SELECT count(*) AS n FROM labels l WHERE EXISTS (SELECT 1 FROM {t} p WHERE p.id = l.id)"
            ),
            "n\n2\n",
        ),
        (format!("SELECT count(*) AS n FROM labels, {t}"), "n\n4\n"),
    ] {
        assert_eq!(ok(sql(lake, &query)), expected, "{query}");
    }
    let plan = ok(sql(
        lake,
        &format!("EXPLAIN SELECT count(*) FROM {t} WHERE id > 1"),
    ));
    assert!(
        plan.lines()
            .any(|l| l.to_lowercase().contains("sqlexec sql=") && l.contains("WHERE")),
        "the filter of a count is pushed down: {plan}"
    );
}

#[test]
fn mysql_tables_are_queried_and_synced() {
    let lake = tempfile::tempdir().unwrap();
    let t = unique("items");
    mysql(&format!(
        "CREATE TABLE {t} (id INT PRIMARY KEY, tiny TINYINT, big BIGINT, uns INT UNSIGNED, \
         price DECIMAL(10,2), f FLOAT, d DOUBLE, name VARCHAR(20), note TEXT, ok BOOLEAN, \
         day DATE, at DATETIME, stamp TIMESTAMP NULL, doc JSON, raw BLOB); \
         INSERT INTO {t} VALUES (1, 3, 9000000000, 4000000000, 12.50, 1.5, 2.25, 'widget', 'n', TRUE, \
         '2026-01-02', '2026-01-02 03:04:05', '2026-01-02 03:04:05', '{{\"a\": 1}}', X'0102'), \
         (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
    ));
    ok(sql(
        lake.path(),
        &format!(
            "CREATE SOURCE shop TYPE mysql OPTIONS (url '{}')",
            mysql_url("test")
        ),
    ));
    let out = ok(sql(
        lake.path(),
        &format!(
            "SELECT id, tiny, big, uns, price, d, name, note, day, at FROM shop.test.{t} ORDER BY id"
        ),
    ));
    assert_eq!(
        out,
        "id,tiny,big,uns,price,d,name,note,day,at\n\
         1,3,9000000000,4000000000,12.50,2.25,widget,n,2026-01-02,2026-01-02T03:04:05\n\
         2,,,,,,,,,\n"
    );
    let plan = ok(sql(
        lake.path(),
        &format!("EXPLAIN SELECT name FROM shop.test.{t} WHERE id = 1"),
    ));
    assert!(
        plan.lines()
            .any(|l| l.to_lowercase().contains("sqlexec sql=") && l.contains("WHERE")),
        "{plan}"
    );
    ok(sql(
        lake.path(),
        "CREATE TABLE labels (id INT, label TEXT); INSERT INTO labels VALUES (1, 'first'), (2, 'second')",
    ));
    no_column_scans(lake.path(), &format!("shop.test.{t}"));
    // MariaDB compares text ignoring case and trailing blanks; a filter
    // still means what it means in DataFusion.
    let words = unique("words");
    mysql(&format!(
        "CREATE TABLE {words} (id INT PRIMARY KEY, s VARCHAR(10)); \
         INSERT INTO {words} VALUES (1, 'alpha'), (2, 'Alpha'), (3, 'ALPHA'), (4, 'alpha '), (5, NULL);"
    ));
    assert_eq!(
        ok(sql(
            lake.path(),
            &format!("SELECT id FROM shop.test.{words} WHERE s = 'alpha' ORDER BY id"),
        )),
        "id\n1\n"
    );
    assert_eq!(
        ok(sql(
            lake.path(),
            &format!("SELECT count(*) AS n FROM shop.test.{words} WHERE s IN ('ALPHA', 'beta')"),
        )),
        "n\n1\n"
    );
    mysql(&format!("DROP TABLE {words}"));
    let synced = ok(sql(
        lake.path(),
        &format!("SYNC TABLE items FROM shop.test.{t} KEY (id)"),
    ));
    assert!(synced.contains(",copy,2,0,0,"), "{synced}");
    mysql(&format!("UPDATE {t} SET name = 'gadget' WHERE id = 1"));
    ok(sql(
        lake.path(),
        &format!("SYNC TABLE items FROM shop.test.{t} KEY (id)"),
    ));
    let out = ok(sql(
        lake.path(),
        "SELECT id, name, uns FROM items ORDER BY id",
    ));
    assert_eq!(out, "id,name,uns\n1,gadget,4000000000\n2,,\n");
    mysql(&format!("DROP TABLE {t}"));

    // A source on its own database, mirrored whole.
    let db = unique("mirror_db");
    mysql(&format!(
        "CREATE DATABASE {db}; CREATE TABLE {db}.a (id INT PRIMARY KEY, v TEXT); \
         CREATE TABLE {db}.b (id INT PRIMARY KEY); INSERT INTO {db}.a VALUES (1, 'x'), (2, 'y'); \
         INSERT INTO {db}.b VALUES (7);"
    ));
    ok(sql(
        lake.path(),
        &format!(
            "CREATE SOURCE own TYPE mysql OPTIONS (url '{}')",
            mysql_url(&db)
        ),
    ));
    let mirrored = ok(sql(lake.path(), "SYNC SOURCE own INTO SCHEMA mirror"));
    assert!(mirrored.contains(",lake.mirror.a,copy,2,"), "{mirrored}");
    assert!(mirrored.contains(",lake.mirror.b,copy,1,"), "{mirrored}");
    assert_eq!(mirrored.lines().count(), 3, "{mirrored}");
    mysql(&format!("INSERT INTO {db}.b VALUES (8)"));
    let again = ok(sql(lake.path(), "SYNC SOURCE own INTO SCHEMA mirror"));
    assert!(again.contains(",lake.mirror.b,refresh,2,"), "{again}");
    assert_eq!(
        ok(sql(lake.path(), "SELECT count(*) AS n FROM mirror.b")),
        "n\n2\n"
    );
    mysql(&format!("DROP DATABASE {db}"));
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn files_sources_read_csv_ndjson_and_parquet_and_quarantine_bad_rows() {
    let lake = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    write(
        files.path(),
        "customers.csv",
        "id,name,score\n1,ada,0.5\n2,ben,x\n3,cy\n4,dee,2.5\n",
    );
    write(
        files.path(),
        "events.ndjson",
        "{\"id\": 1, \"kind\": \"click\"}\n{\"id\": 2, \"kind\": \"view\"}\n",
    );
    std::fs::create_dir(files.path().join("daily")).unwrap();
    write(
        files.path().join("daily").as_path(),
        "a.csv",
        "id,n\n1,10\n",
    );
    write(
        files.path().join("daily").as_path(),
        "b.csv",
        "id,n\n2,20\n",
    );
    let loc = files.path().display().to_string();
    // A Parquet file, written by DataFusion's COPY through autolake.
    ok(sql(
        lake.path(),
        &format!(
            "COPY (SELECT CAST(1 AS BIGINT) AS id, 'north' AS region UNION ALL \
                   SELECT CAST(2 AS BIGINT), 'south') TO '{loc}/regions.parquet' STORED AS PARQUET"
        ),
    ));
    ok(sql(
        lake.path(),
        &format!(
            "CREATE SOURCE lz TYPE files OPTIONS (location '{loc}/', on_error 'quarantine'); \
             CREATE SOURCE strict TYPE files OPTIONS (location '{loc}/*.csv')"
        ),
    ));
    let tables = ok(sql(
        lake.path(),
        "SELECT table_catalog, table_name FROM information_schema.tables \
         WHERE table_catalog IN ('lz', 'strict') AND table_schema = 'public' ORDER BY 1, 2",
    ));
    assert_eq!(
        tables,
        "table_catalog,table_name\nlz,customers\nlz,daily\nlz,events\nlz,regions\nstrict,customers\n"
    );
    let synced = ok(sql(
        lake.path(),
        "SYNC TABLE regions FROM lz.public.regions INCREMENTAL ON id; \
         SELECT id, region FROM regions ORDER BY id",
    ));
    assert!(
        synced.ends_with("id,region\n1,north\n2,south\n"),
        "{synced}"
    );
    let plan = ok(sql(
        lake.path(),
        "EXPLAIN SELECT region FROM lz.public.regions WHERE id > 1",
    ));
    assert!(
        plan.contains("predicate=id@0 > 1") || plan.contains("id@0 > 1"),
        "{plan}"
    );
    assert_eq!(
        ok(sql(lake.path(), "SELECT sum(n) AS n FROM lz.public.daily")),
        "n\n30\n"
    );
    assert_eq!(
        ok(sql(
            lake.path(),
            "SELECT kind FROM lz.public.events ORDER BY id"
        )),
        "kind\nclick\nview\n"
    );

    // Fail: nothing lands, the error names file, line and reason.
    let err = failed(
        sql(
            lake.path(),
            "SYNC TABLE customers FROM strict.public.customers",
        ),
        1,
    );
    assert!(err.contains("customers.csv, line 3"), "{err}");
    assert!(
        err.contains("column score: 'x' is not a valid Float64"),
        "{err}"
    );
    let err = failed(sql(lake.path(), "SELECT * FROM customers"), 1);
    assert!(err.contains("customers"), "{err}");

    // Quarantine: good rows land, bad rows are kept with why and where.
    let out = ok(sql(
        lake.path(),
        "SYNC TABLE customers FROM lz.public.customers",
    ));
    assert!(out.contains(",copy,2,2,0,"), "{out}");
    assert_eq!(
        ok(sql(
            lake.path(),
            "SELECT id, name FROM customers ORDER BY id"
        )),
        "id,name\n1,ada\n4,dee\n"
    );
    let rejected = ok(sql(
        lake.path(),
        "SELECT id, name, score, _line, _error, _source FROM customers__rejected ORDER BY _line",
    ));
    let lines: Vec<&str> = rejected.lines().collect();
    assert_eq!(lines.len(), 3, "{rejected}");
    assert!(lines[1].starts_with("2,ben,x,3,column score"), "{rejected}");
    assert!(
        lines[2].starts_with("3,cy,,4,\"expected 3 fields"),
        "{rejected}"
    );
    assert!(lines[1].ends_with("customers.csv"), "{rejected}");
}

#[test]
fn files_sources_on_s3_round_trip() {
    let lake = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    moto.create_bucket("raw");
    run_python(&format!(
        "import boto3; s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
         aws_access_key_id='testing', aws_secret_access_key='testing'); \
         s3.put_object(Bucket='raw', Key='landing/orders.csv', Body=b'id,amount\\n1,2.5\\n2,4.0\\n')",
        moto.endpoint
    ));
    ok(sql(
        lake.path(),
        &format!(
            "CREATE SOURCE landing TYPE files OPTIONS (location 's3://raw/landing/', \
             endpoint '{}', region 'us-east-1', access_key_id 'testing', \
             secret_access_key 'moto-secret-key', allow_http 'true')",
            moto.endpoint
        ),
    ));
    let out = ok(sql(
        lake.path(),
        "SELECT sum(amount) AS total FROM landing.public.orders",
    ));
    assert_eq!(out, "total\n6.5\n");
    let synced = ok(sql(
        lake.path(),
        "SYNC TABLE orders FROM landing.public.orders; SELECT count(*) AS n FROM orders",
    ));
    assert!(synced.ends_with("n\n2\n"), "{synced}");
    let shown = ok(sql(lake.path(), "SELECT options FROM system.sources"));
    assert!(!shown.contains("moto-secret-key"), "{shown}");
    assert!(shown.contains("***"), "{shown}");
}
