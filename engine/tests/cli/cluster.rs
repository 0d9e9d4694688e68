//! Scale-out on Ballista: a scheduler and two executors, each a separate
//! `autolake cluster …` process on loopback, and coordinators (the CLI,
//! and sessions of this process) that send their queries there. Results
//! must be the same as local ones, governance must hold, and a lost
//! executor or a wrong address must fail clearly.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autolake_engine::{Engine, EngineConfig, Interface, Principal};
use datafusion::datasource::MemTable;

use super::services::{Moto, free_port};
use super::{ok, sql};

#[path = "../../../benches/src/tpch_data.rs"]
#[allow(dead_code)]
mod tpch_data;

/// A scheduler and its executors, stopped on drop.
struct Cluster {
    scheduler: Child,
    executors: Vec<Child>,
    port: u16,
    logs: tempfile::TempDir,
}

/// How a process names the lake: `--lake PATH` or `--config FILE`.
type LakeArgs<'a> = [&'a str; 2];

fn lake_args(lake: &Path) -> LakeArgs<'_> {
    ["--lake", lake.to_str().expect("a UTF-8 path")]
}

impl Cluster {
    fn start(lake: LakeArgs<'_>, executors: usize) -> Self {
        let logs = tempfile::tempdir().unwrap();
        let port = free_port();
        let scheduler = spawn(
            lake,
            &[
                "cluster",
                "scheduler",
                "--bind",
                &format!("127.0.0.1:{port}"),
            ],
            &logs.path().join("scheduler.log"),
        );
        let mut cluster = Cluster {
            scheduler,
            executors: Vec::new(),
            port,
            logs,
        };
        cluster.wait(
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "the scheduler listens",
        );
        for i in 0..executors {
            let log = cluster.logs.path().join(format!("executor-{i}.log"));
            let child = spawn(
                lake,
                &[
                    "cluster",
                    "executor",
                    "--scheduler",
                    &cluster.address(),
                    "--bind",
                    "127.0.0.1:0",
                    "--slots",
                    "2",
                ],
                &log,
            );
            cluster.executors.push(child);
        }
        cluster.wait(
            || cluster.alive(lake) == executors,
            "every executor registers",
        );
        cluster
    }

    fn address(&self) -> String {
        format!("df://127.0.0.1:{}", self.port)
    }

    /// Executors `SHOW CLUSTER` lists as alive.
    fn alive(&self, lake: LakeArgs<'_>) -> usize {
        let out = on_cluster(lake, &self.address(), "SHOW CLUSTER");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(",alive,"))
            .count()
    }

    fn wait(&self, mut ready: impl FnMut() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "{what}: not within 60 s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.logs.path()).unwrap().flatten() {
            out.push_str(&format!(
                "--- {}\n{}\n",
                entry.file_name().to_string_lossy(),
                std::fs::read_to_string(entry.path()).unwrap_or_default()
            ));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(lake: LakeArgs<'_>, args: &[&str], log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_autolake"))
        .args(lake)
        .args(args)
        .env_remove("AUTOLAKE_LAKE")
        .env_remove("AUTOLAKE_CLUSTER")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("autolake starts")
}

/// The CLI, its queries sent to `cluster`.
fn on_cluster(lake: LakeArgs<'_>, cluster: &str, query: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autolake"))
        .args(lake)
        .args(["--cluster", cluster, "sql", "--format", "csv", "-e", query])
        .env_remove("AUTOLAKE_LAKE")
        .output()
        .expect("autolake runs")
}

/// TPC-H at `scale` into lake tables, through this process's engine.
async fn load_tpch(lake: &Path, scale: f64) {
    let engine = Engine::open(EngineConfig::for_lake(lake.to_string_lossy()))
        .await
        .unwrap();
    let session = engine.session(Principal::local_admin(), Interface::Embedded);
    for t in tpch_data::generate(scale).unwrap() {
        let mem = MemTable::try_new(Arc::clone(&t.schema), vec![t.batches.clone()]).unwrap();
        session
            .context()
            .register_table(format!("mem_{}", t.name), Arc::new(mem))
            .unwrap();
        session
            .execute(&format!(
                "CREATE TABLE {0} AS SELECT * FROM mem_{0}",
                t.name
            ))
            .await
            .unwrap();
    }
    engine.close().await.unwrap();
}

/// A page of the scheduler's REST API.
fn scheduler_body(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

/// Jobs the scheduler has run.
fn scheduler_jobs(port: u16) -> usize {
    scheduler_body(port, "/api/jobs")
        .matches("\"job_id\"")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_answers_as_this_process_does() {
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path();
    load_tpch(lake, 0.1).await;
    let cluster = Cluster::start(lake_args(lake), 2);
    let address = cluster.address();

    // SHOW CLUSTER: both executors, their slots and heartbeats.
    let shown = ok(on_cluster(lake_args(lake), &address, "SHOW CLUSTER"));
    assert!(
        shown.starts_with("id,address,slots,state,last_seen\n"),
        "{shown}"
    );
    assert_eq!(shown.matches(",2,alive,").count(), 2, "{shown}");

    // The 22 TPC-H queries, locally and on the cluster.
    let before = scheduler_jobs(cluster.port);
    for (i, query) in tpch_data::QUERIES.iter().enumerate() {
        let local = ok(sql(lake, query));
        let remote = on_cluster(lake_args(lake), &address, query);
        assert!(
            remote.status.success(),
            "q{:02} failed on the cluster: {}\n{}",
            i + 1,
            String::from_utf8_lossy(&remote.stderr),
            cluster.logs()
        );
        assert_eq!(
            String::from_utf8_lossy(&remote.stdout),
            local,
            "q{:02} differs on the cluster",
            i + 1
        );
    }
    assert!(
        scheduler_jobs(cluster.port) >= before + 22,
        "the queries ran on the cluster\n{}",
        cluster.logs()
    );

    // A CTAS runs its query there and commits here, once.
    ok(on_cluster(
        lake_args(lake),
        &address,
        "CREATE TABLE big_orders AS SELECT o_orderkey, o_totalprice FROM orders \
         WHERE o_totalprice > 300000",
    ));
    assert_eq!(
        ok(sql(lake, "SELECT count(*) AS n FROM big_orders")),
        ok(sql(
            lake,
            "SELECT count(*) AS n FROM orders WHERE o_totalprice > 300000"
        ))
    );
    let history = ok(sql(lake, "DESCRIBE HISTORY big_orders"));
    assert_eq!(history.lines().count(), 2, "one commit: {history}");

    // A table only delta-rs's own scan reads is refused, by name and reason.
    super::services::run_python(&format!(
        "import deltalake, pyarrow as pa\n\
         t = pa.table({{'id': pa.array([1, 2], pa.int64()), 'name': ['a', 'b']}})\n\
         deltalake.write_deltalake('{0}', t, configuration={{'delta.columnMapping.mode': 'name', \
         'delta.minReaderVersion': '2', 'delta.minWriterVersion': '5'}})",
        lake.join("tables/public/mapped").display()
    ));
    let refused = on_cluster(lake_args(lake), &address, "SELECT id, name FROM mapped");
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("needs delta-rs's own scan") && err.contains("column mapping"),
        "{err}"
    );
    assert_eq!(
        ok(sql(lake, "SELECT id, name FROM mapped ORDER BY id")),
        "id,name\n1,a\n2,b\n"
    );

    // SET autolake.cluster sends a session's next queries there, and '' back.
    let jobs = scheduler_jobs(cluster.port);
    let set = format!(
        "SET autolake.cluster = '{address}'; SELECT count(*) AS n FROM nation WHERE n_regionkey > 0; \
         SET autolake.cluster = ''; SELECT count(*) AS n FROM region WHERE r_regionkey > 0"
    );
    assert_eq!(ok(sql(lake, &set)), "n\n20\nn\n4\n");
    assert_eq!(scheduler_jobs(cluster.port), jobs + 1);

    // A job's run: its query (table_changes included) on the cluster, its
    // commit here, exactly once.
    let jobs = scheduler_jobs(cluster.port);
    ok(on_cluster(
        lake_args(lake),
        &address,
        "CREATE TABLE urgent (o_orderkey BIGINT, o_totalprice DECIMAL(15,2)); \
         CREATE JOB copy_urgent EVERY '1 hour' AS INSERT INTO urgent \
           SELECT o_orderkey, o_totalprice FROM table_changes('lake.public.orders') \
           WHERE o_orderpriority = '1-URGENT'; \
         RUN JOB copy_urgent",
    ));
    assert_eq!(
        ok(sql(lake, "SELECT count(*) AS n FROM urgent")),
        ok(sql(
            lake,
            "SELECT count(*) AS n FROM orders WHERE o_orderpriority = '1-URGENT'"
        ))
    );
    assert_eq!(
        ok(sql(
            lake,
            "SELECT status, rows_written > 0 AS wrote FROM system.job_runs WHERE job = 'copy_urgent'"
        )),
        "status,wrote\nsucceeded,true\n"
    );
    assert_eq!(
        scheduler_jobs(cluster.port),
        jobs + 1,
        "the run's query ran on the cluster\n{}",
        cluster.logs()
    );
    // The next run reads only what was committed since, once.
    ok(on_cluster(
        lake_args(lake),
        &address,
        "INSERT INTO orders SELECT * FROM orders WHERE o_orderkey < 1000; RUN JOB copy_urgent",
    ));
    assert_eq!(
        ok(sql(lake, "SELECT count(*) AS n FROM urgent")),
        ok(sql(
            lake,
            "SELECT count(*) AS n FROM orders WHERE o_orderpriority = '1-URGENT'"
        ))
    );

    // Governance: a user's row policy and mask hold on the cluster.
    ok(sql(
        lake,
        "CREATE USER analyst PASSWORD 'pw-analyst' ROLE scientist; \
         CREATE POLICY building ON customer TO scientist USING (c_mktsegment = 'BUILDING'); \
         ALTER TABLE customer ALTER COLUMN c_phone SET MASK ('***')",
    ));
    let query = "SELECT count(*) AS n, count(DISTINCT c_mktsegment) AS segments, \
                 max(c_phone) AS phone FROM customer";
    let mut answers = Vec::new();
    for cluster_address in [None, Some(address.clone())] {
        let mut config = EngineConfig::for_lake(lake.to_string_lossy());
        config.cluster = cluster_address;
        let engine = Engine::open(config).await.unwrap();
        let analyst = Principal {
            name: "analyst".to_string(),
            roles: vec!["scientist".to_string()],
            stored: true,
        };
        let session = engine.session(analyst, Interface::Embedded);
        let batches = session.execute(query).await.unwrap();
        answers.push(
            arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string(),
        );
        engine.close().await.unwrap();
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[1].contains("| 1        | ***"), "{}", answers[1]);

    // Drift aggregates merge their partial states across executors.
    let drift = "SELECT l_returnflag, drift_ks(l_quantity, l_shipdate > DATE '1995-06-01')['statistic'] AS ks, \
                 round(drift_psi(l_extendedprice, l_shipdate > DATE '1995-06-01'), 9) AS psi \
                 FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag";
    assert_eq!(
        ok(on_cluster(lake_args(lake), &address, drift)),
        ok(sql(lake, drift))
    );

    // `predict` loads the model from the lake on each executor.
    ok(sql(
        lake,
        "CREATE MODEL price TYPE linear_regression OPTIONS (target 'l_extendedprice', seed 1) \
         AS SELECT CAST(l_quantity AS DOUBLE) AS q, CAST(l_discount AS DOUBLE) AS d, \
         CAST(l_extendedprice AS DOUBLE) AS l_extendedprice FROM lineitem LIMIT 5000",
    ));
    let scored = "SELECT l_linestatus, round(sum(predict('price', CAST(l_quantity AS DOUBLE), \
                  CAST(l_discount AS DOUBLE))), 3) AS predicted FROM lineitem \
                  GROUP BY l_linestatus ORDER BY l_linestatus";
    assert_eq!(
        ok(on_cluster(lake_args(lake), &address, scored)),
        ok(sql(lake, scored))
    );

    // `serve --cluster`: a Flight SQL client's query runs on the cluster.
    let server = super::flight::Server::start_with(lake, 3600, &["--cluster", &address]);
    let mut client = server.client().await;
    client
        .handshake("admin", super::flight::PASSWORD)
        .await
        .expect("login");
    let jobs = scheduler_jobs(cluster.port);
    let q06 = tpch_data::QUERIES[5];
    let info = client
        .execute(q06.to_string(), None)
        .await
        .expect("a query");
    let batches = super::flight::rows(&mut client, info).await;
    let revenue = arrow::util::display::array_value_to_string(batches[0].column(0), 0).unwrap();
    assert_eq!(ok(sql(lake, q06)), format!("revenue\n{revenue}\n"));
    assert_eq!(scheduler_jobs(cluster.port), jobs + 1, "{}", cluster.logs());
}

#[test]
fn a_wrong_scheduler_address_fails_at_once() {
    let lake = tempfile::tempdir().unwrap();
    let port = free_port();
    let started = Instant::now();
    let out = on_cluster(
        lake_args(lake.path()),
        &format!("df://127.0.0.1:{port}"),
        "SELECT 1",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot reach the Ballista scheduler at df://127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let out = on_cluster(lake_args(lake.path()), "http://127.0.0.1:1", "SELECT 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected df://HOST:PORT"), "{err}");
    // Without a cluster, SHOW CLUSTER says how to name one.
    let err = String::from_utf8_lossy(&sql(lake.path(), "SHOW CLUSTER").stderr).to_string();
    assert!(err.contains("SET autolake.cluster"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_executor_fails_its_query_clearly_or_is_retried() {
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path();
    load_tpch(lake, 0.1).await;
    let mut cluster = Cluster::start(lake_args(lake), 2);
    let address = cluster.address();
    // Long enough to be running when an executor dies.
    let long = "SELECT l1.l_returnflag, count(*) AS n, sum(l2.l_quantity) AS q FROM lineitem l1 \
                JOIN lineitem l2 ON l1.l_suppkey = l2.l_suppkey \
                GROUP BY l1.l_returnflag ORDER BY l1.l_returnflag";
    let expected = ok(sql(lake, long));
    let running = Command::new(env!("CARGO_BIN_EXE_autolake"))
        .arg("--lake")
        .arg(lake)
        .args(["--cluster", &address, "sql", "--format", "csv", "-e", long])
        .env_remove("AUTOLAKE_LAKE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the scheduler runs it, and a moment more.
    cluster.wait(
        || scheduler_body(cluster.port, "/api/jobs").contains("\"status\":\"Running\""),
        "the query runs on the cluster",
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut running = running;
    assert!(
        running.try_wait().unwrap().is_none(),
        "the query must still be running when the executor dies"
    );
    let mut victim = cluster.executors.remove(0);
    victim.kill().unwrap();
    victim.wait().unwrap();
    let finished = running.wait_with_output().unwrap();
    if finished.status.success() {
        // Ballista ran the lost tasks again on the other executor.
        eprintln!("the query was retried on the executor left");
        assert_eq!(String::from_utf8_lossy(&finished.stdout), expected);
    } else {
        eprintln!(
            "the query failed: {}",
            String::from_utf8_lossy(&finished.stderr)
        );
        let err = String::from_utf8_lossy(&finished.stderr);
        assert!(
            err.contains(&format!("on the cluster at {address}")),
            "a clear error: {err}\n{}",
            cluster.logs()
        );
    }
    // The next query runs on the executor left.
    let q06 = tpch_data::QUERIES[5];
    let after = on_cluster(lake_args(lake), &address, q06);
    assert!(
        after.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&after.stderr),
        cluster.logs()
    );
    assert_eq!(String::from_utf8_lossy(&after.stdout), ok(sql(lake, q06)));
}

#[test]
fn executors_read_a_lake_on_s3_with_their_own_credentials() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().unwrap();
    let config = moto.config(dir.path(), "s3://lake/cluster");
    let lake = ["--config", config.to_str().unwrap()];
    let local = |query: &str| {
        Command::new(env!("CARGO_BIN_EXE_autolake"))
            .args(lake)
            .args(["sql", "--format", "csv", "-e", query])
            .env_remove("AUTOLAKE_LAKE")
            .output()
            .unwrap()
    };
    ok(local(
        "CREATE TABLE readings AS SELECT value AS id, value % 7 AS sensor, \
         CAST(value AS DOUBLE) / 3 AS reading FROM generate_series(1, 20000)",
    ));
    let cluster = Cluster::start(lake, 2);
    let before = scheduler_jobs(cluster.port);
    let query = "SELECT sensor, count(*) AS n, round(sum(reading), 3) AS total FROM readings \
                 GROUP BY sensor ORDER BY sensor";
    let remote = on_cluster(lake, &cluster.address(), query);
    assert!(
        remote.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&remote.stderr),
        cluster.logs()
    );
    assert_eq!(String::from_utf8_lossy(&remote.stdout), ok(local(query)));
    assert_eq!(
        scheduler_jobs(cluster.port),
        before + 1,
        "it ran on the cluster"
    );
    // The credentials stayed with each process: none is in a log.
    assert!(!cluster.logs().contains("secret_access_key"));
    // SIGTERM stops each process cleanly.
    let mut cluster = cluster;
    let mut processes: Vec<Child> = cluster.executors.drain(..).collect();
    processes.push(std::mem::replace(
        &mut cluster.scheduler,
        Command::new("true").spawn().unwrap(),
    ));
    for mut process in processes {
        let stopped = Command::new("kill")
            .args(["-TERM", &process.id().to_string()])
            .status()
            .unwrap();
        assert!(stopped.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = process.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "not stopped in 30 s\n{}",
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "{status}\n{}", cluster.logs());
    }
}
