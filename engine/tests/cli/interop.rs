//! Tables written by AutoLake are plain Delta, and AutoLake reads and
//! writes tables other Delta writers made (Python's `deltalake`).

use super::services::run_python;
use super::{ok, sql};

#[test]
fn python_deltalake_reads_autolake_tables() {
    let lake = tempfile::tempdir().unwrap();
    ok(sql(
        lake.path(),
        "CREATE TABLE t (id BIGINT NOT NULL, name TEXT, amount DECIMAL(10,2), day DATE, at TIMESTAMP) PARTITIONED BY (day); \
         INSERT INTO t VALUES (1, 'a', 1.50, '2026-11-01', '2026-11-01 10:00:00'), (2, NULL, 2.25, '2026-11-02', NULL); \
         UPDATE t SET name = 'b' WHERE id = 2;",
    ));
    let table = lake.path().join("tables/public/t");
    let out = run_python(&format!(
        "import deltalake, json\n\
         dt = deltalake.DeltaTable('{}')\n\
         rows = sorted(dt.to_pyarrow_table().to_pylist(), key=lambda r: r['id'])\n\
         print(dt.version(), dt.metadata().partition_columns)\n\
         print(json.dumps([[r['id'], r['name'], str(r['amount']), str(r['day'])] for r in rows]))\n\
         print(dt.history(1)[0].get('userName'))",
        table.display()
    ));
    assert_eq!(
        out,
        "2 ['day']\n[[1, \"a\", \"1.50\", \"2026-11-01\"], [2, \"b\", \"2.25\", \"2026-11-02\"]]\nadmin\n"
    );
}

#[test]
fn autolake_reads_and_appends_to_tables_written_by_python_deltalake() {
    let lake = tempfile::tempdir().unwrap();
    let table = lake.path().join("tables/public/external");
    run_python(&format!(
        "import deltalake, pyarrow as pa\n\
         t = pa.table({{'id': pa.array([1, 2], pa.int64()), 'city': ['Oslo', 'Lima']}})\n\
         deltalake.write_deltalake('{}', t, partition_by=['city'])",
        table.display()
    ));
    let out = ok(sql(
        lake.path(),
        "SELECT id, city FROM external ORDER BY id",
    ));
    assert_eq!(out, "id,city\n1,Oslo\n2,Lima\n");
    ok(sql(lake.path(), "INSERT INTO external VALUES (3, 'Pune')"));
    let out = run_python(&format!(
        "import deltalake\n\
         dt = deltalake.DeltaTable('{}')\n\
         print(dt.version(), sorted(r['id'] for r in dt.to_pyarrow_table().to_pylist()))",
        table.display()
    ));
    assert_eq!(out, "1 [1, 2, 3]\n");
}

#[test]
fn tables_with_column_mapping_are_read_by_their_logical_names() {
    let lake = tempfile::tempdir().unwrap();
    let table = lake.path().join("tables/public/mapped");
    run_python(&format!(
        "import deltalake, pyarrow as pa\n\
         t = pa.table({{'id': pa.array([1, 2], pa.int64()), 'name': ['a', 'b']}})\n\
         deltalake.write_deltalake('{0}', t, configuration={{'delta.columnMapping.mode': 'name', \
         'delta.minReaderVersion': '2', 'delta.minWriterVersion': '5'}})",
        table.display()
    ));
    let out = ok(sql(lake.path(), "SELECT id, name FROM mapped ORDER BY id"));
    assert_eq!(out, "id,name\n1,a\n2,b\n");
}
