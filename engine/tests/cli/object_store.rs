//! A lake on an S3-compatible object store (moto on loopback).

use std::process::Command;

use super::services::Moto;
use super::{failed, ok};

fn autolake_s3(config: &std::path::Path, sql: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_autolake"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "sql",
            "--format",
            "csv",
            "-e",
            sql,
        ])
        .env_remove("AUTOLAKE_LAKE")
        .output()
        .unwrap()
}

#[test]
fn a_lake_on_s3_works_end_to_end_across_processes() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().unwrap();
    let config = moto.config(dir.path(), "s3://lake/prod");
    ok(autolake_s3(
        &config,
        "CREATE SCHEMA s; CREATE TABLE s.t (id INT NOT NULL, k TEXT) PARTITIONED BY (k); \
         INSERT INTO s.t VALUES (1, 'a'), (2, 'b'); INSERT INTO s.t VALUES (3, 'a'); \
         UPDATE s.t SET id = id * 10 WHERE k = 'a'; INSERT INTO s.t VALUES (4, 'b'); OPTIMIZE s.t;",
    ));
    let out = ok(autolake_s3(
        &config,
        "SELECT id, k FROM s.t ORDER BY id; SELECT count(*) AS n FROM s.t VERSION AS OF 1; \
         SELECT name, version, location FROM system.tables",
    ));
    assert_eq!(
        out,
        "id,k\n2,b\n4,b\n10,a\n30,a\nn\n2\nname,version,location\nt,5,s3://lake/prod/tables/s/t/\n"
    );
    ok(autolake_s3(&config, "DROP SCHEMA s CASCADE"));
    let out = ok(autolake_s3(
        &config,
        "SELECT count(*) AS n FROM system.tables",
    ));
    assert_eq!(out, "n\n0\n");
}

#[test]
fn an_unreachable_object_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 (discard) on loopback.
    let config = dir.path().join("autolake.toml");
    std::fs::write(
        &config,
        "lake = \"s3://lake/x\"\n[storage_options]\nendpoint = \"http://127.0.0.1:9\"\n\
         region = \"us-east-1\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\nallow_http = \"true\"\n",
    )
    .unwrap();
    let err = failed(autolake_s3(&config, "SELECT 1"), 1);
    assert!(err.contains("cannot use the lake at s3://lake/x"), "{err}");
    assert!(!err.contains("secret_access_key = \"s\""), "{err}");

    std::fs::write(
        &config,
        "lake = \"s3://lake/x\"\n[storage_options]\nbogus = \"1\"\n",
    )
    .unwrap();
    let err = failed(autolake_s3(&config, "SELECT 1"), 1);
    assert!(err.contains("unknown S3 option 'bogus'"), "{err}");
}
