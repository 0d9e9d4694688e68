//! Differential tests of federated queries: a table in the real PostgreSQL
//! and MariaDB, synced into the lake, and several hundred queries generated
//! from templates run against both the federated table and its lake copy.
//! The answers must be equal as multisets of rows: whatever the server
//! computes for a pushed-down projection, filter or limit, the result is
//! DataFusion's.
//!
//! The generator is seeded. A failure prints the seed, the query and both
//! answers; the same seed generates the same data and queries again:
//!
//! ```text
//! AUTOLAKE_DIFF_SEED=7 AUTOLAKE_DIFF_QUERIES=1000 scripts/test.sh -E 'test(/differential/)'
//! ```

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use autolake_engine::{Engine, EngineConfig, Interface, Principal, Session};

use super::services::Service;
use super::sources::{mysql, psql, unique};

/// splitmix64: small, seedable, the same on every platform. `ints_for_bools`:
/// MySQL's BOOLEAN is TINYINT(1), an Int8 in DataFusion.
struct Rng {
    state: u64,
    ints_for_bools: bool,
}

impl Rng {
    fn new(seed: u64, ints_for_bools: bool) -> Self {
        Self {
            state: seed,
            ints_for_bools,
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Big,
    Num,
    Float,
    Real,
    Text,
    Bool,
    Date,
    Ts,
    Tstz,
}

const COLUMNS: &[(&str, Kind)] = &[
    ("id", Kind::Int),
    ("i", Kind::Int),
    ("b", Kind::Big),
    ("n", Kind::Num),
    ("f", Kind::Float),
    ("r", Kind::Real),
    ("s", Kind::Text),
    ("flag", Kind::Bool),
    ("day", Kind::Date),
    ("ts", Kind::Ts),
    ("tstz", Kind::Tstz),
];

/// Mixed case, trailing blanks, the empty string and LIKE's wildcards.
const TEXTS: &[&str] = &[
    "alpha", "Alpha", "ALPHA", "alpha ", "beta", "Beta ", "gamma", "", "a%b", "a_b", "o'k", "zeta",
];

const ROWS: i64 = 60;

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A value of `kind` as a plain SQL literal both servers and DataFusion
/// read alike (timestamps in UTC, as text).
fn value(rng: &mut Rng, kind: Kind) -> String {
    match kind {
        Kind::Int => rng.range(0, 10).to_string(),
        Kind::Big => (rng.range(-3, 3) * 1_000_000_000).to_string(),
        Kind::Num => format!("{:.3}", rng.range(-800, 800) as f64 / 8.0),
        Kind::Float => format!("{}", rng.range(-20, 20) as f64 * 0.25),
        Kind::Real => format!("{}", rng.range(-10, 10) as f64 * 0.5),
        Kind::Text => quote(rng.pick::<&str>(TEXTS)),
        Kind::Bool => rng.pick(&["true", "false"]).to_string(),
        Kind::Date => format!("'2026-01-{:02}'", rng.range(1, 20)),
        Kind::Ts | Kind::Tstz => {
            let hours = rng.range(0, 200);
            format!("'2026-01-{:02} {:02}:00:00'", 1 + hours / 24, hours % 24)
        }
    }
}

/// The same value as a DataFusion literal of the column's type.
fn literal(rng: &mut Rng, kind: Kind) -> String {
    let v = value(rng, kind);
    match kind {
        Kind::Date => format!("DATE {v}"),
        Kind::Ts => format!("TIMESTAMP {v}"),
        // An RFC 3339 string, which DataFusion casts to the column's type.
        Kind::Tstz => format!("{}Z'", v.trim_end_matches('\'').replacen(' ', "T", 1)),
        _ => v,
    }
}

/// A boolean expression over the table's columns (qualified by `q`).
fn predicate(rng: &mut Rng, q: &str, depth: u32) -> String {
    if depth < 2 && rng.chance(30) {
        let left = predicate(rng, q, depth + 1);
        let right = predicate(rng, q, depth + 1);
        return match rng.below(3) {
            0 => format!("({left} AND {right})"),
            1 => format!("({left} OR {right})"),
            _ => format!("NOT ({left})"),
        };
    }
    let (name, kind) = *rng.pick(COLUMNS);
    let c = format!("{q}{name}");
    if kind == Kind::Bool && rng.ints_for_bools {
        return rng
            .pick(&[
                format!("{c} = 1"),
                format!("{c} = 0"),
                format!("{c} <> 1"),
                format!("{c} IS NULL"),
                format!("({c} IS DISTINCT FROM 1)"),
            ])
            .clone();
    }
    if kind == Kind::Bool {
        return rng
            .pick(&[
                c.clone(),
                format!("NOT {c}"),
                format!("{c} = true"),
                format!("{c} IS NULL"),
                format!("{c} IS NOT TRUE"),
            ])
            .clone();
    }
    let form = rng.below(if kind == Kind::Text { 14 } else { 9 });
    match form {
        0 => format!("{c} = {}", literal(rng, kind)),
        1 => format!("{c} <> {}", literal(rng, kind)),
        2 => format!("{c} < {}", literal(rng, kind)),
        3 => format!("{c} >= {}", literal(rng, kind)),
        4 => format!(
            "{c} BETWEEN {} AND {}",
            literal(rng, kind),
            literal(rng, kind)
        ),
        5 => format!(
            "{c} IN ({}, {}, {})",
            literal(rng, kind),
            literal(rng, kind),
            literal(rng, kind)
        ),
        6 => format!(
            "{c} NOT IN ({}, {})",
            literal(rng, kind),
            literal(rng, kind)
        ),
        7 => format!("{c} IS NULL"),
        8 => format!("{c} IS NOT NULL"),
        9 => format!(
            "{c} LIKE {}",
            quote(rng.pick::<&str>(&["al%", "%a", "A%", "a\\%b", "a_b", "%", "beta%"]))
        ),
        10 => format!(
            "{c} NOT LIKE {}",
            quote(rng.pick::<&str>(&["al%", "%A", "%e%"]))
        ),
        11 => format!(
            "lower({c}) = {}",
            quote(rng.pick::<&str>(&["alpha", "beta ", "gamma"]))
        ),
        12 => format!("length({c}) > {}", rng.range(0, 5)),
        _ => format!("{c} > {}", literal(rng, kind)),
    }
}

fn columns(rng: &mut Rng, q: &str) -> String {
    if rng.chance(15) {
        return format!("{q}*");
    }
    let mut names = Vec::new();
    for _ in 0..rng.range(1, 4) {
        let name = format!("{q}{}", rng.pick(COLUMNS).0);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(", ")
}

fn column(rng: &mut Rng) -> &'static str {
    rng.pick(COLUMNS).0
}

/// One query; `{T}` stands for the table under test.
fn query(rng: &mut Rng) -> String {
    let p = predicate(rng, "", 0);
    let tp = predicate(rng, "t.", 0);
    let c = column(rng);
    let c2 = column(rng);
    let k = rng.range(0, 12);
    let dir = *rng.pick(&["", " ASC", " DESC"]);
    let nulls = *rng.pick(&["", " NULLS FIRST", " NULLS LAST"]);
    match rng.below(18) {
        0 => format!("SELECT {} FROM {{T}}", columns(rng, "")),
        1 | 2 => format!("SELECT {} FROM {{T}} WHERE {p}", columns(rng, "")),
        3 => format!("SELECT count(*) FROM {{T}} WHERE {p}"),
        4 => format!("SELECT 1 FROM {{T}} WHERE {p}"),
        5 => format!(
            "SELECT {c}, count(*), count({c2}), min({c2}), max({c2}) FROM {{T}} WHERE {p} GROUP BY {c}"
        ),
        6 => format!(
            "SELECT sum(i), sum(b), sum(n), avg(f), max(r), count(DISTINCT s), min(day), max(ts) FROM {{T}} WHERE {p}"
        ),
        7 => format!("SELECT DISTINCT {c} FROM {{T}} WHERE {p}"),
        8 => format!("SELECT {c} FROM {{T}} ORDER BY {c}{dir}{nulls} LIMIT {k}"),
        9 => format!(
            "SELECT id AS key, {c} FROM {{T}} WHERE {p} ORDER BY {c}{dir}{nulls}, id LIMIT {k}"
        ),
        10 => format!("SELECT count(*) FROM (SELECT * FROM {{T}} WHERE {p} LIMIT {k}) x"),
        11 => format!(
            "SELECT d.label, {} FROM {{T}} t JOIN diff.dim d ON t.i = d.id WHERE {tp}",
            columns(rng, "t.")
        ),
        12 => format!(
            "SELECT d.label FROM diff.dim d WHERE EXISTS (SELECT 1 FROM {{T}} t WHERE t.i = d.id AND {tp})"
        ),
        13 => format!(
            "SELECT d.label FROM diff.dim d WHERE NOT EXISTS (SELECT 1 FROM {{T}} t WHERE t.i = d.id AND {tp})"
        ),
        14 => format!(
            "SELECT d.id FROM diff.dim d WHERE d.id {}IN (SELECT t.i FROM {{T}} t WHERE {tp})",
            rng.pick(&["", "NOT "])
        ),
        15 => format!(
            "SELECT t.id, (SELECT count(*) FROM {{T}} u WHERE u.i = t.i) FROM {{T}} t WHERE {tp}"
        ),
        16 => format!("SELECT count(*) FROM diff.dim d, {{T}} t WHERE {tp}"),
        _ => format!(
            "SELECT t.{c} FROM {{T}} t LEFT JOIN diff.dim d ON t.i = d.id AND d.label <> 'six' WHERE d.id IS NULL"
        ),
    }
}

/// The rows of an answer as text, sorted: a multiset.
fn multiset(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let cells: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let line: Vec<String> = cells.iter().map(|f| f.value(row).to_string()).collect();
            rows.push(line.join(" | "));
        }
    }
    rows.sort();
    rows
}

fn seed() -> u64 {
    std::env::var("AUTOLAKE_DIFF_SEED")
        .ok()
        .map(|s| s.parse().expect("AUTOLAKE_DIFF_SEED is a number"))
        .unwrap_or(28)
}

fn query_count() -> usize {
    std::env::var("AUTOLAKE_DIFF_QUERIES")
        .ok()
        .map(|s| s.parse().expect("AUTOLAKE_DIFF_QUERIES is a number"))
        .unwrap_or(300)
}

/// The generated rows, as SQL literals in column order; `tstz` is UTC.
fn rows(rng: &mut Rng) -> Vec<Vec<String>> {
    (0..ROWS)
        .map(|id| {
            COLUMNS
                .iter()
                .map(|&(name, kind)| {
                    if name == "id" {
                        id.to_string()
                    } else if rng.chance(if kind == Kind::Text { 15 } else { 10 }) {
                        "NULL".to_string()
                    } else {
                        value(rng, kind)
                    }
                })
                .collect()
        })
        .collect()
}

fn insert(table: &str, rows: &[Vec<String>], tstz_suffix: &str) -> String {
    let tstz = COLUMNS.iter().position(|c| c.1 == Kind::Tstz).unwrap();
    let mut sql = format!("INSERT INTO {table} VALUES ");
    for (n, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if i == tstz && v != "NULL" {
                    format!("{}{tstz_suffix}'", v.trim_end_matches('\''))
                } else {
                    v.clone()
                }
            })
            .collect();
        let _ = write!(
            sql,
            "{}({})",
            if n == 0 { "" } else { ", " },
            cells.join(", ")
        );
    }
    sql
}

async fn run(session: &Session, sql: &str) -> Result<Vec<String>, String> {
    session
        .execute(sql)
        .await
        .map(|b| multiset(&b))
        .map_err(|e| e.to_string())
}

/// Creates the lake side (`diff.dim` for joins), syncs `source` into
/// `diff.copy` and compares the generated queries on both.
fn compare(source_sql: &str, federated: &str, rng: &mut Rng) {
    let lake = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine: Arc<Engine> =
            Engine::open(EngineConfig::for_lake(lake.path().to_str().unwrap()))
                .await
                .unwrap();
        let session = engine.session(Principal::local_admin(), Interface::Cli);
        let setup = format!(
            "CREATE SCHEMA diff; \
             CREATE TABLE diff.dim (id INT, label TEXT); \
             INSERT INTO diff.dim VALUES (0, 'zero'), (1, 'one'), (2, 'two'), (3, 'three'), \
             (4, 'four'), (5, 'five'), (6, 'six'), (7, 'seven'), (12, 'twelve'), (NULL, 'none'); \
             {source_sql}; \
             SYNC TABLE diff.copy FROM {federated}"
        );
        session
            .execute(&setup)
            .await
            .unwrap_or_else(|e| panic!("{setup}: {e}"));
        let seed = seed();
        let total = query_count();
        let mut failures = Vec::new();
        let mut non_empty = 0;
        for n in 0..total {
            let template = query(rng);
            let fed = template.replace("{T}", federated);
            let copy = template.replace("{T}", "diff.copy");
            let (a, b) = (run(&session, &fed).await, run(&session, &copy).await);
            if matches!(&b, Ok(rows) if !rows.is_empty()) {
                non_empty += 1;
            }
            let same = matches!((&a, &b), (Ok(x), Ok(y)) if x == y);
            if !same {
                failures.push(format!(
                    "query {n} of seed {seed}:\n  {fed}\n  federated: {a:?}\n  lake copy: {b:?}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {total} queries answered differently (AUTOLAKE_DIFF_SEED={seed}):\n{}",
            failures.len(),
            failures
                .iter()
                .take(12)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            non_empty * 2 > total,
            "the generator must mostly ask questions with answers: {non_empty} of {total}"
        );
    });
}

#[test]
fn differential_postgres_federated_answers_equal_the_lake_copy() {
    let mut rng = Rng::new(seed(), false);
    let t = unique("diff");
    // Text in a linguistic collation, as most databases have, not the test
    // server's C: its ordering differs from DataFusion's byte order.
    psql(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, i int, b bigint, n numeric(12,3), \
         f double precision, r real, s text COLLATE \"en-US-x-icu\", flag boolean, day date, ts timestamp, \
         tstz timestamptz); {}",
        insert(&t, &rows(&mut rng), "+00")
    ));
    let source = format!(
        "CREATE SOURCE pgd TYPE postgres OPTIONS (url '{}')",
        Service::Postgres.url()
    );
    compare(&source, &format!("pgd.public.{t}"), &mut rng);
}

#[test]
fn differential_mariadb_federated_answers_equal_the_lake_copy() {
    let mut rng = Rng::new(seed(), true);
    let t = unique("diff");
    mysql(&format!(
        "SET time_zone = '+00:00'; \
         CREATE TABLE {t} (id INT PRIMARY KEY, i INT, b BIGINT, n DECIMAL(12,3), f DOUBLE, \
         r FLOAT, s VARCHAR(20), flag BOOLEAN, day DATE, ts DATETIME, tstz TIMESTAMP NULL); {}",
        insert(&t, &rows(&mut rng), "")
    ));
    let source = format!(
        "CREATE SOURCE myd TYPE mysql OPTIONS (url 'mysql://root@{}/test')",
        Service::MariaDb.address()
    );
    compare(&source, &format!("myd.test.{t}"), &mut rng);
}
