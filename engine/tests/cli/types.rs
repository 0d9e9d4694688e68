//! The lake never changes a value: every type a statement produces is
//! stored exactly or refused before anything is written.

use super::{failed, ok, sql};

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
