//! The lake never changes a value: every type a statement produces is
//! stored exactly or refused before anything is written.

use super::{autolake, failed, ok, sql};

/// Unsigned integers, half floats, view strings and dictionaries round-trip
/// by value through CTAS, CREATE TABLE + INSERT and CTAS … AS VALUES.
#[test]
fn values_round_trip_in_wider_types() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    ok(sql(
        lake,
        "CREATE TABLE u AS SELECT arrow_cast(255, 'UInt8') AS a, arrow_cast(65535, 'UInt16') AS b, \
         arrow_cast(4294967295, 'UInt32') AS c, arrow_cast(18446744073709551615, 'UInt64') AS d, \
         arrow_cast(1.5, 'Float16') AS h, arrow_cast('x', 'Utf8View') AS v, \
         arrow_cast('y', 'Dictionary(Int32, Utf8)') AS k, arrow_cast(arrow_cast(12, 'Int64'), 'Time64(Microsecond)') AS t",
    ));
    let out = ok(sql(lake, "SELECT a, b, c, d, h, v, k, t FROM u"));
    assert_eq!(
        out.lines().nth(1),
        Some("255,65535,4294967295,18446744073709551615,1.5,x,y,00:00:00.000012"),
        "{out}"
    );
    let out = ok(sql(
        lake,
        "SELECT arrow_typeof(a), arrow_typeof(d), arrow_typeof(h) FROM u",
    ));
    assert!(
        out.contains("Int16") && out.contains("Decimal128(20, 0)") && out.contains("Float32"),
        "{out}"
    );

    ok(sql(
        lake,
        "CREATE TABLE t (x TINYINT UNSIGNED, y BIGINT UNSIGNED)",
    ));
    ok(sql(
        lake,
        "INSERT INTO t VALUES (255, 18446744073709551615)",
    ));
    let out = ok(sql(lake, "SELECT x, y FROM t"));
    assert_eq!(
        out.lines().nth(1),
        Some("255,18446744073709551615"),
        "{out}"
    );
}

/// Nanoseconds are kept only where they are whole microseconds; a value
/// that would change fails the statement, names the column and the value,
/// and leaves nothing behind.
#[test]
fn nanoseconds_are_never_cut() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let err = failed(
        sql(
            lake,
            "CREATE TABLE ns AS SELECT arrow_cast(column1, 'Timestamp(Nanosecond, None)') AS at \
             FROM (VALUES (1000), (1001), (2000))",
        ),
        1,
    );
    assert!(
        err.contains("column at") && err.contains("1970-01-01T00:00:00.000001001"),
        "{err}"
    );
    assert!(err.contains("date_trunc('microsecond', at)"), "{err}");
    assert!(!err.contains("backtrace") && !err.contains("::"), "{err}");
    let err = failed(sql(lake, "SELECT count(*) FROM ns"), 1);
    assert!(
        err.contains("not found") || err.contains("does not exist"),
        "{err}"
    );

    // Whole microseconds, with and without a zone: kept, and distinct.
    ok(sql(
        lake,
        "CREATE TABLE ns AS SELECT arrow_cast(column1, 'Timestamp(Nanosecond, None)') AS at, \
         arrow_cast(column1, 'Timestamp(Nanosecond, Some(\"+00:00\"))') AS tz \
         FROM (VALUES (1000), (3000), (2000))",
    ));
    let out = ok(sql(
        lake,
        "SELECT count(*) FROM ns a JOIN ns b ON a.at = b.at",
    ));
    assert_eq!(out.lines().nth(1), Some("3"), "{out}");
    let out = ok(sql(
        lake,
        "SELECT arrow_typeof(at), arrow_typeof(tz) FROM ns LIMIT 1",
    ));
    assert!(
        out.contains("Timestamp(µs)") || out.contains("Timestamp(Microsecond, None)"),
        "{out}"
    );
    // INSERT into a table's microseconds: the same check, not a cut.
    ok(sql(lake, "CREATE TABLE stamps (at TIMESTAMP, n INT)"));
    let err = failed(
        sql(
            lake,
            "INSERT INTO stamps SELECT arrow_cast(v, 'Timestamp(Nanosecond, None)'), 1 \
             FROM (SELECT 1000 AS v UNION ALL SELECT 1001)",
        ),
        1,
    );
    assert!(
        err.contains("column at") && err.contains("1970-01-01T00:00:00.000001001"),
        "{err}"
    );
    ok(sql(
        lake,
        "INSERT INTO stamps SELECT arrow_cast(v, 'Timestamp(Nanosecond, None)'), 1 \
         FROM (SELECT 1000 AS v UNION ALL SELECT 2000)",
    ));
    let out = ok(sql(lake, "SELECT count(DISTINCT at) FROM stamps"));
    assert_eq!(out.lines().nth(1), Some("2"), "{out}");

    // UPDATE and MERGE assignments: checked as well, the table unchanged.
    for statement in [
        "UPDATE stamps SET at = TIMESTAMP '2024-01-01 00:00:00.123456789'",
        "MERGE INTO stamps USING (SELECT 1 AS n) AS s ON stamps.n = s.n \
         WHEN MATCHED THEN UPDATE SET at = TIMESTAMP '2024-01-01 00:00:00.000000001'",
        "MERGE INTO stamps USING (SELECT 5 AS n) AS s ON stamps.n = s.n \
         WHEN NOT MATCHED THEN INSERT (at, n) VALUES (TIMESTAMP '2024-01-01 00:00:00.000000001', s.n)",
    ] {
        let err = failed(sql(lake, statement), 1);
        assert!(
            err.contains("column at") && err.contains("has nanoseconds"),
            "{statement}: {err}"
        );
    }
    ok(sql(
        lake,
        "UPDATE stamps SET at = TIMESTAMP '2024-01-01 00:00:00.123456' WHERE n = 1",
    ));
    let out = ok(sql(lake, "SELECT DISTINCT at FROM stamps"));
    assert_eq!(
        out.lines().skip(1).collect::<Vec<_>>(),
        ["2024-01-01T00:00:00.123456"],
        "{out}"
    );

    // now() has nanoseconds; rounded explicitly it is written.
    ok(sql(
        lake,
        "CREATE TABLE stamped AS SELECT date_trunc('microsecond', now()) AS at",
    ));
}

/// A type Delta has no place for is refused before anything is written,
/// with what to cast it to, and no backtrace.
#[test]
fn unstorable_types_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    for (expr, hint) in [
        ("arrow_cast(1, 'Duration(Second)')", "BIGINT"),
        ("arrow_cast(1, 'Date64')", "DATE"),
    ] {
        let err = failed(
            sql(lake, &format!("CREATE TABLE bad AS SELECT {expr} AS c")),
            1,
        );
        assert!(
            err.contains("column c of lake.public.bad") && err.contains(hint),
            "{expr}: {err}"
        );
        assert!(
            !err.contains("backtrace") && !err.contains("buoyant"),
            "{err}"
        );
    }
    let err = failed(sql(lake, "SELECT * FROM bad"), 1);
    assert!(
        err.contains("not found") || err.contains("does not exist"),
        "{err}"
    );
}

/// PRIMARY KEY and UNIQUE are informational keys the planner relies on, as
/// in DataFusion: a correlated scalar subquery on the key is answered (the
/// example of DataFusion's own subquery tests), the keys survive appends,
/// and replacing the table without them withdraws them.
#[test]
fn keys_let_the_planner_answer_scalar_subqueries() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    ok(sql(
        lake,
        "CREATE TABLE t1 (t1_id INT, t1_name TEXT, t1_int INT) AS VALUES \
         (11, 'a', 1), (22, 'b', 2), (33, 'c', 3), (44, 'd', 4)",
    ));
    ok(sql(
        lake,
        "CREATE TABLE t3 (t3_id INT PRIMARY KEY, t3_name TEXT, t3_int INT) AS VALUES \
         (11, 'e', 3), (22, 'f', 1), (44, 'g', 3), (55, 'h', 3)",
    ));
    let query = "SELECT t1_id, (SELECT t3_int FROM t3 WHERE t3.t3_id = t1.t1_id) AS t3_int \
                 FROM t1 ORDER BY t1_id";
    let out = ok(sql(lake, query));
    assert_eq!(
        out.lines().skip(1).collect::<Vec<_>>(),
        ["11,3", "22,1", "33,", "44,3"],
        "{out}"
    );
    // Keys stay through an append, and hold for a plain CREATE TABLE too.
    ok(sql(lake, "INSERT INTO t3 VALUES (66, 'i', 6)"));
    ok(sql(
        lake,
        "CREATE TABLE k (id INT NOT NULL, code TEXT, v INT, PRIMARY KEY (id), UNIQUE (code))",
    ));
    ok(sql(lake, "INSERT INTO k VALUES (1, 'x', 10), (2, 'y', 20)"));
    let out = ok(sql(
        lake,
        "SELECT t1_id, (SELECT t3_int FROM t3 WHERE t3.t3_id = t1.t1_id) AS a, \
         (SELECT v FROM k WHERE k.id = t1.t1_int) AS b FROM t1 ORDER BY t1_id",
    ));
    assert_eq!(out.lines().nth(1), Some("11,3,10"), "{out}");
    assert_eq!(out.lines().nth(3), Some("33,,"), "{out}");
    // GROUP BY the key selects the other columns, as DataFusion allows.
    let out = ok(sql(
        lake,
        "SELECT id, code, v FROM k GROUP BY id ORDER BY id",
    ));
    assert_eq!(out.lines().nth(2), Some("2,y,20"), "{out}");

    // Replaced without a key: the planner no longer assumes one row.
    ok(sql(
        lake,
        "CREATE OR REPLACE TABLE t3 (t3_id INT, t3_name TEXT, t3_int INT) AS VALUES \
         (11, 'e', 3), (11, 'f', 1)",
    ));
    let err = failed(sql(lake, query), 1);
    assert!(err.contains("Correlated scalar subquery"), "{err}");
}

/// The lake's rows as text, and DataFusion's for the same query in memory.
fn same_answer(lake: &std::path::Path, query: &str, table: &str, memory: &str) {
    let on_lake = ok(sql(lake, &query.replace("{t}", table)));
    let in_memory = ok(sql(lake, &query.replace("{t}", memory)));
    assert_eq!(on_lake, in_memory, "{query}");
}

/// Aggregates over floats holding NaN, ±inf and nulls answer on the lake as
/// DataFusion answers over the same rows in memory, whatever files the rows
/// landed in (a file whose float column holds one number besides NaN reads
/// as that number if its statistics are believed).
#[test]
fn aggregates_over_nan_match_datafusion() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let d = |v: &str| match v {
        "NULL" => "CAST(NULL AS DOUBLE)".to_string(),
        v => format!("CAST('{v}' AS DOUBLE)"),
    };
    let files: [&[(i32, &str, &str)]; 3] = [
        &[(1, "1.1", "1.5"), (1, "NaN", "-inf"), (1, "NULL", "NULL")],
        &[(2, "NaN", "NULL"), (2, "1.1", "2.5"), (2, "NaN", "inf")],
        &[(3, "NULL", "NaN"), (3, "NaN", "0"), (3, "1.1", "NaN")],
    ];
    let rows = |file: &[(i32, &str, &str)]| {
        file.iter()
            .map(|(g, x, y)| format!("({g}, {}, {})", d(x), d(y)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let select = |values: String| {
        format!(
            "SELECT column1 AS g, column2 AS x, arrow_cast(column3, 'Float32') AS y \
             FROM (VALUES {values})"
        )
    };
    ok(sql(
        lake,
        &format!("CREATE TABLE m AS {}", select(rows(files[0]))),
    ));
    for file in &files[1..] {
        ok(sql(lake, &format!("INSERT INTO m {}", select(rows(file)))));
    }
    let all = files.iter().map(|f| rows(f)).collect::<Vec<_>>().join(", ");
    let memory = format!("({}) AS t", select(all));
    for query in [
        "SELECT median(x), median(y), approx_median(x), approx_median(y), \
         percentile_cont(0.5) WITHIN GROUP (ORDER BY x), \
         approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY y), \
         sum(x), min(x), max(x), count(x), avg(y), median(DISTINCT x) FROM {t}",
        "SELECT g, median(x), median(y), approx_median(y), \
         percentile_cont(0.25) WITHIN GROUP (ORDER BY y), min(y), max(y) \
         FROM {t} GROUP BY g ORDER BY g",
        "SELECT count(*) FROM {t} WHERE x > 5",
        "SELECT count(*) FROM {t} WHERE x = CAST('NaN' AS DOUBLE)",
        "SELECT count(*) FROM {t} WHERE y < 0 OR y > 2",
        "SELECT g, x FROM {t} ORDER BY x DESC NULLS LAST, g LIMIT 3",
        "SELECT x, count(*) FROM {t} GROUP BY x ORDER BY x",
    ] {
        same_answer(lake, query, "m AS t", &memory);
    }
}

/// Every kind of value DataFusion produces, with nulls and extremes, reads
/// back from the lake as DataFusion computed it, whether it was written by
/// CREATE TABLE … AS, INSERT … SELECT, MERGE, SYNC from a Parquet file or a
/// job, or rewritten by UPDATE.
#[test]
fn type_matrix_round_trips_on_every_write_path() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let columns: &[(&str, &str, &str)] = &[
        ("u8", "arrow_cast(0, 'UInt8')", "arrow_cast(255, 'UInt8')"),
        (
            "u16",
            "arrow_cast(0, 'UInt16')",
            "arrow_cast(65535, 'UInt16')",
        ),
        (
            "u32",
            "arrow_cast(0, 'UInt32')",
            "arrow_cast(4294967295, 'UInt32')",
        ),
        (
            "u64",
            "arrow_cast(0, 'UInt64')",
            "arrow_cast(18446744073709551615, 'UInt64')",
        ),
        ("i8", "arrow_cast(-128, 'Int8')", "arrow_cast(127, 'Int8')"),
        ("i64", "-9223372036854775807 - 1", "9223372036854775807"),
        (
            "f16",
            "arrow_cast(-65504.0, 'Float16')",
            "arrow_cast(CAST('NaN' AS DOUBLE), 'Float16')",
        ),
        (
            "f32",
            "arrow_cast(CAST('-inf' AS DOUBLE), 'Float32')",
            "arrow_cast(CAST('NaN' AS DOUBLE), 'Float32')",
        ),
        ("f64", "CAST('inf' AS DOUBLE)", "CAST('NaN' AS DOUBLE)"),
        (
            "dec",
            "CAST(-99999.99 AS DECIMAL(7, 2))",
            "CAST(99999.99 AS DECIMAL(7, 2))",
        ),
        (
            "d38",
            "CAST(-1 AS DECIMAL(38, 10))",
            "CAST(9999999999999999999999999999.9999999999 AS DECIMAL(38, 10))",
        ),
        ("b", "false", "true"),
        ("s", "''", "'über ✓'"),
        (
            "sv",
            "arrow_cast('', 'Utf8View')",
            "arrow_cast('long text, longer than twelve bytes', 'Utf8View')",
        ),
        (
            "sl",
            "arrow_cast('a', 'LargeUtf8')",
            "arrow_cast('z', 'LargeUtf8')",
        ),
        (
            "dict",
            "arrow_cast('a', 'Dictionary(Int32, Utf8)')",
            "arrow_cast('b', 'Dictionary(Int32, Utf8)')",
        ),
        ("bin", "X''", "X'00FF'"),
        ("day", "DATE '0001-01-01'", "DATE '9999-12-31'"),
        (
            "ts",
            "arrow_cast(-1000, 'Timestamp(Nanosecond, None)')",
            "arrow_cast(9223372036854775000, 'Timestamp(Nanosecond, None)')",
        ),
        (
            "tz",
            "arrow_cast(0, 'Timestamp(Second, Some(\"UTC\"))')",
            "arrow_cast(1700000000123, 'Timestamp(Millisecond, Some(\"UTC\"))')",
        ),
        (
            "tod",
            "arrow_cast(arrow_cast(0, 'Int64'), 'Time64(Microsecond)')",
            "arrow_cast(arrow_cast(86399999999, 'Int64'), 'Time64(Microsecond)')",
        ),
        ("list", "make_array(1, 2)", "make_array(CAST(NULL AS INT))"),
        (
            "rec",
            "named_struct('a', 1, 'b', 'x')",
            "named_struct('a', -1, 'b', CAST(NULL AS TEXT))",
        ),
    ];
    let exprs = columns
        .iter()
        .map(|(name, low, high)| {
            format!("CASE i WHEN 0 THEN {low} WHEN 1 THEN {high} END AS {name}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let names = columns.iter().map(|c| c.0).collect::<Vec<_>>();
    let source = format!(
        "SELECT i, {exprs} FROM (SELECT 0 AS i UNION ALL SELECT 1 UNION ALL SELECT 2) AS r"
    );
    // The aligned text table: CSV has no lists or structs.
    let table = |query: &str| ok(autolake(lake, &["sql", "--format", "table", "-e", query]));
    // Half floats print without a fraction, their exact Float32 with one.
    let shown = names
        .iter()
        .map(|n| match *n {
            "f16" => "arrow_cast(f16, 'Float32') AS f16".to_string(),
            n => n.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let expected = table(&format!("SELECT i, {shown} FROM ({source}) ORDER BY i"));
    let read = |name: &str| {
        table(&format!(
            "SELECT i, {} FROM {name} ORDER BY i",
            names.join(", ")
        ))
    };

    ok(sql(lake, &format!("CREATE TABLE by_ctas AS {source}")));
    assert_eq!(read("by_ctas"), expected, "CREATE TABLE … AS");

    ok(sql(
        lake,
        &format!("CREATE TABLE by_insert AS {source} WHERE false"),
    ));
    ok(sql(lake, &format!("INSERT INTO by_insert {source}")));
    assert_eq!(read("by_insert"), expected, "INSERT … SELECT");

    ok(sql(
        lake,
        &format!("CREATE TABLE by_merge AS {source} WHERE false"),
    ));
    let inserted = names
        .iter()
        .map(|n| format!("s.{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    ok(sql(
        lake,
        &format!(
            "MERGE INTO by_merge USING ({source}) AS s ON by_merge.i = s.i \
             WHEN NOT MATCHED THEN INSERT (i, {}) VALUES (s.i, {inserted})",
            names.join(", ")
        ),
    ));
    assert_eq!(read("by_merge"), expected, "MERGE");

    ok(sql(lake, &format!("CREATE TABLE by_update AS {source}")));
    ok(sql(lake, "UPDATE by_update SET i = i WHERE i >= 0"));
    assert_eq!(read("by_update"), expected, "UPDATE");

    // SYNC from a Parquet file holding the same Arrow types.
    let files = tempfile::tempdir().unwrap();
    let loc = files.path().display();
    ok(sql(
        lake,
        &format!("COPY ({source}) TO '{loc}/typed.parquet' STORED AS PARQUET"),
    ));
    ok(sql(
        lake,
        &format!(
            "CREATE SOURCE landing TYPE files OPTIONS (location '{loc}/'); \
             SYNC TABLE by_sync FROM landing.public.typed"
        ),
    ));
    assert_eq!(read("by_sync"), expected, "SYNC");

    // A job's INSERT, run on demand.
    ok(sql(
        lake,
        &format!("CREATE TABLE by_job AS {source} WHERE false"),
    ));
    ok(sql(
        lake,
        &format!("CREATE JOB fill EVERY '1 hour' AS INSERT INTO by_job {source}; RUN JOB fill"),
    ));
    assert_eq!(read("by_job"), expected, "job");

    // A refused write leaves the table at its version.
    let err = failed(
        sql(
            lake,
            "INSERT INTO by_insert (i, ts) SELECT 9, arrow_cast(1, 'Timestamp(Nanosecond, None)')",
        ),
        1,
    );
    assert!(err.contains("column ts"), "{err}");
    let err = failed(
        sql(
            lake,
            "MERGE INTO by_merge USING (SELECT 9 AS i, arrow_cast(1, 'Timestamp(Nanosecond, None)') AS ts) AS s \
             ON by_merge.i = s.i WHEN NOT MATCHED THEN INSERT (i, ts) VALUES (s.i, s.ts)",
        ),
        1,
    );
    assert!(err.contains("column ts"), "{err}");
    assert_eq!(read("by_insert"), expected);
    assert_eq!(read("by_merge"), expected);
}
