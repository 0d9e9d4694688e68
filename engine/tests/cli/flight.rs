//! `autolake serve` with real Flight SQL clients: arrow-rs's
//! `FlightSqlServiceClient` here, Python's ADBC driver from the venv.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow_flight::FlightInfo;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables};
use futures::TryStreamExt;
use tonic::transport::Channel;

use super::services::{free_port, run_python};

/// Its Basic credentials need base64 padding, which ADBC leaves out.
pub(super) const PASSWORD: &str = "s3cret-admin!";

/// An `autolake serve` process on private ports, stopped on drop.
pub(super) struct Server {
    child: Child,
    pub(super) flight: u16,
    pub(super) http: u16,
    /// The server's standard error, shown when it fails.
    log: tempfile::NamedTempFile,
}

impl Server {
    pub(super) fn start(lake: &Path, token_ttl: u64) -> Self {
        Self::start_with(lake, token_ttl, &[])
    }

    pub(super) fn start_with(lake: &Path, token_ttl: u64, extra: &[&str]) -> Self {
        // A port found free can be taken by another test before the
        // server binds it: the server then exits saying so, and is
        // started again on other ports.
        for _ in 0..3 {
            let (flight, http) = (free_port(), free_port());
            let log = tempfile::NamedTempFile::new().expect("a log file");
            let child = Command::new(env!("CARGO_BIN_EXE_autolake"))
                .arg("--lake")
                .arg(lake)
                .args([
                    "serve",
                    "--flight",
                    &format!("127.0.0.1:{flight}"),
                    "--http",
                    &format!("127.0.0.1:{http}"),
                    "--token-ttl",
                    &token_ttl.to_string(),
                ])
                .args(extra)
                .env("AUTOLAKE_ADMIN_PASSWORD", PASSWORD)
                .env_remove("AUTOLAKE_LAKE")
                .stdout(Stdio::null())
                .stderr(log.reopen().expect("the log file opens"))
                .spawn()
                .expect("autolake serve starts");
            let mut server = Server {
                child,
                flight,
                http,
                log,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if server.health().as_deref() == Some("200") {
                    return server;
                }
                if let Some(status) = server.child.try_wait().expect("the child can be waited on") {
                    let log = server.log();
                    if log.contains("cannot listen") {
                        break;
                    }
                    panic!("autolake serve exited with {status}:\n{log}");
                }
                assert!(
                    Instant::now() < deadline,
                    "autolake serve did not become healthy in 30 s:\n{}",
                    server.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("autolake serve found its ports taken three times");
    }

    /// What the server has written to its standard error.
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The status code of `GET /healthz`.
    fn health(&self) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok()?;
        reply.split_whitespace().nth(1).map(str::to_string)
    }

    pub(super) async fn client(&self) -> FlightSqlServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{}", self.flight))
            .expect("a valid address")
            .connect()
            .await
            .expect("connects");
        FlightSqlServiceClient::new(channel)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) async fn rows(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Vec<arrow::array::RecordBatch> {
    let mut out = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        out.extend(stream.try_collect::<Vec<_>>().await.expect("batches"));
    }
    out
}

/// Whether a client error carries the gRPC code `code`.
pub(super) fn has_code(err: &impl std::fmt::Debug, code: tonic::Code) -> bool {
    let text = format!("{err:?}");
    text.contains(code.description()) || text.contains(&format!("{code:?}"))
}

pub(super) fn text(batches: &[arrow::array::RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .expect("printable")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn arrow_rs_flight_sql_client_runs_statements_and_metadata_calls() {
    let lake = tempfile::tempdir().unwrap();
    let server = Server::start(lake.path(), 3600);
    let mut client = server.client().await;

    // No token, bad password: Unauthenticated.
    let err = client.execute("SELECT 1".into(), None).await.unwrap_err();
    assert!(has_code(&err, tonic::Code::Unauthenticated), "{err:?}");
    let err = client.handshake("admin", "wrong").await.unwrap_err();
    assert!(has_code(&err, tonic::Code::Unauthenticated), "{err:?}");

    client.handshake("admin", PASSWORD).await.expect("login");
    assert_eq!(
        client
            .execute_update("CREATE TABLE t (id INT NOT NULL, name TEXT)".into(), None)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        client
            .execute_update(
                "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')".into(),
                None
            )
            .await
            .unwrap(),
        3
    );
    // Statements sent as queries run too (DBAPI clients do this).
    let info = client
        .execute("UPDATE t SET name = 'z' WHERE id = 3".into(), None)
        .await
        .unwrap();
    assert!(text(&rows(&mut client, info).await).contains("| 1 "));
    let info = client
        .execute("SELECT id, name FROM t ORDER BY id".into(), None)
        .await
        .unwrap();
    let batches = rows(&mut client, info).await;
    assert_eq!(
        text(&batches),
        "+----+------+\n| id | name |\n+----+------+\n| 1  | a    |\n| 2  | b    |\n| 3  | z    |\n+----+------+"
    );
    // Time travel and lake statements.
    let info = client
        .execute("SELECT count(*) AS n FROM t VERSION AS OF 1".into(), None)
        .await
        .unwrap();
    assert!(text(&rows(&mut client, info).await).contains("| 3 |"));
    let info = client
        .execute("DESCRIBE HISTORY t".into(), None)
        .await
        .unwrap();
    assert!(text(&rows(&mut client, info).await).contains("flight_sql"));

    // Models: train, predict, and a planning error naming the features.
    let info = client
        .execute(
            "CREATE MODEL fm TYPE linear_regression OPTIONS (target 'y', validation_split 0) \
             AS SELECT CAST(id AS DOUBLE) AS x, CAST(id * 2 AS DOUBLE) AS y FROM t"
                .into(),
            None,
        )
        .await
        .unwrap();
    assert!(text(&rows(&mut client, info).await).contains("linear_regression"));
    let info = client
        .execute("SELECT round(predict('fm', 10.0)) AS p".into(), None)
        .await
        .unwrap();
    assert!(text(&rows(&mut client, info).await).contains("| 20.0 |"));
    let err = client
        .execute("SELECT predict('fm', 'x')".into(), None)
        .await
        .unwrap_err();
    assert!(has_code(&err, tonic::Code::InvalidArgument), "{err:?}");
    assert!(format!("{err:?}").contains("x DOUBLE"), "{err:?}");
    let err = client
        .execute("SELECT predict('nope', 1.0)".into(), None)
        .await
        .unwrap_err();
    assert!(
        has_code(&err, tonic::Code::NotFound) || has_code(&err, tonic::Code::InvalidArgument),
        "{err:?}"
    );

    // Sources: files attached, synced, secrets hidden, unreachable is
    // Unavailable.
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("feed.csv"), "id,v\n1,a\n2,b\n").unwrap();
    for statement in [
        format!(
            "CREATE SOURCE ff TYPE files OPTIONS (location '{}/')",
            files.path().display()
        ),
        "SYNC TABLE feed FROM ff.public.feed".to_string(),
    ] {
        let info = client.execute(statement, None).await.unwrap();
        rows(&mut client, info).await;
    }
    let info = client
        .execute("SELECT count(*) AS n FROM feed".into(), None)
        .await
        .unwrap();
    assert!(text(&rows(&mut client, info).await).contains("| 2 |"));
    let err = client
        .execute(
            "CREATE SOURCE gone TYPE postgres OPTIONS (url 'postgres://u:pw-s3cret@127.0.0.1:1/x')"
                .into(),
            None,
        )
        .await
        .unwrap_err();
    assert!(has_code(&err, tonic::Code::Unavailable), "{err:?}");
    assert!(!format!("{err:?}").contains("pw-s3cret"), "{err:?}");

    // Metadata.
    let info = client.get_catalogs().await.unwrap();
    assert!(text(&rows(&mut client, info).await).contains("lake"));
    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("lake".into()),
            db_schema_filter_pattern: Some("pub%".into()),
        })
        .await
        .unwrap();
    let schemas = text(&rows(&mut client, info).await);
    assert!(
        schemas.contains("public") && !schemas.contains("system"),
        "{schemas}"
    );
    let info = client
        .get_tables(CommandGetTables {
            catalog: Some("lake".into()),
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: Some("t%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = rows(&mut client, info).await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert!(text(&batches).contains("TABLE"));
    let info = client.get_table_types().await.unwrap();
    assert!(text(&rows(&mut client, info).await).contains("VIEW"));
    let info = client
        .get_sql_info(vec![arrow_flight::sql::SqlInfo::FlightSqlServerName])
        .await
        .unwrap();
    assert!(text(&rows(&mut client, info).await).contains("AutoLake"));

    // Errors map to codes with useful messages.
    let err = client.execute("SELEC 1".into(), None).await.unwrap_err();
    assert!(has_code(&err, tonic::Code::InvalidArgument), "{err:?}");
    let err = client
        .execute("SELECT * FROM missing".into(), None)
        .await
        .unwrap_err();
    assert!(has_code(&err, tonic::Code::NotFound), "{err:?}");
    let err = client
        .execute_update("DELETE FROM system.tables".into(), None)
        .await
        .unwrap_err();
    assert!(has_code(&err, tonic::Code::PermissionDenied), "{err:?}");

    // A result larger than one batch streams in many.
    let info = client
        .execute("SELECT value FROM generate_series(1, 300000)".into(), None)
        .await
        .unwrap();
    let batches = rows(&mut client, info).await;
    assert!(batches.len() > 1);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 300_000);
    let values = batches.iter().flat_map(|b| {
        b.column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("BIGINT")
            .values()
            .to_vec()
    });
    assert!(values.eq(1..=300_000));

    // Batches over the message size are sent in several messages, each
    // under the 4 MiB this client accepts by default; nulls survive.
    let info = client
        .execute(
            "SELECT value, CASE WHEN value % 3 = 0 THEN NULL ELSE repeat('x', 200) END AS s \
             FROM generate_series(1, 100000)"
                .into(),
            None,
        )
        .await
        .unwrap();
    let batches = rows(&mut client, info).await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 100_000);
    let nulls: usize = batches.iter().map(|b| b.column(1).null_count()).sum();
    assert_eq!(nulls, 33_333);
    let x = "x".repeat(200);
    for batch in &batches {
        let s = batch
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("TEXT");
        assert!(s.iter().flatten().all(|v| v == x));
    }

    // Dictionary-encoded results arrive as their values.
    let info = client
        .execute(
            "SELECT arrow_cast('red', 'Dictionary(Int32, Utf8)') AS colour".into(),
            None,
        )
        .await
        .unwrap();
    assert!(text(&rows(&mut client, info).await).contains("red"));

    // An error half-way through a result ends the stream with the error,
    // after the rows sent before it: never a silently short result.
    let info = client
        .execute(
            "SELECT CAST(CASE WHEN value < 250000 THEN CAST(value AS TEXT) ELSE 'oops' END AS BIGINT) \
             AS n FROM generate_series(1, 300000)"
                .into(),
            None,
        )
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
    let mut stream = client.do_get(ticket).await.expect("do_get");
    let mut received = 0;
    let err = loop {
        match stream.try_next().await {
            Ok(Some(batch)) => received += batch.num_rows(),
            Ok(None) => panic!("the stream ended without the error after {received} rows"),
            Err(e) => break e,
        }
    };
    assert!(received < 300_000);
    assert!(format!("{err:?}").contains("oops"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prepared_statements_ingest_and_cancel() {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow_flight::sql::{
        CommandGetPrimaryKeys, CommandStatementIngest, TableDefinitionOptions, TableExistsOption,
        TableNotExistOption,
    };

    let lake = tempfile::tempdir().unwrap();
    let server = Server::start(lake.path(), 3600);
    let mut client = server.client().await;
    client.handshake("admin", PASSWORD).await.expect("login");
    client
        .execute_update(
            "CREATE TABLE p (id BIGINT, name TEXT, score DOUBLE)".into(),
            None,
        )
        .await
        .unwrap();

    // A prepared update, several rows of parameters at once.
    let mut insert = client
        .prepare("INSERT INTO p VALUES (?, ?, ?)".into(), None)
        .await
        .unwrap();
    assert_eq!(insert.parameter_schema().unwrap().fields().len(), 3);
    insert
        .set_parameters(
            RecordBatch::try_from_iter([
                ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
                (
                    "name",
                    Arc::new(StringArray::from(vec!["a", "it's", "c"])) as _,
                ),
                (
                    "score",
                    Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5])) as _,
                ),
            ])
            .unwrap(),
        )
        .unwrap();
    assert_eq!(insert.execute_update().await.unwrap(), 3);
    insert.close().await.unwrap();

    // A prepared query: the result schema is known before it runs.
    let mut query = client
        .prepare(
            "SELECT name, score FROM p WHERE id >= $1 ORDER BY id".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(query.dataset_schema().unwrap().fields().len(), 2);
    query
        .set_parameters(
            RecordBatch::try_from_iter([("min", Arc::new(Int64Array::from(vec![2])) as _)])
                .unwrap(),
        )
        .unwrap();
    let info = query.execute().await.unwrap();
    assert_eq!(
        text(&rows(&mut client, info).await),
        "+------+-------+\n| name | score |\n+------+-------+\n| it's | 1.5   |\n| c    | 2.5   |\n+------+-------+"
    );

    // Bulk ingest: create, then append; rows counted, one commit each.
    let batch = RecordBatch::try_from_iter([
        ("k", Arc::new(Int64Array::from_iter_values(0..10_000)) as _),
        (
            "v",
            Arc::new(Float64Array::from_iter_values(
                (0..10_000).map(|i| i as f64 / 2.0),
            )) as _,
        ),
    ])
    .unwrap();
    let ingest =
        |exists: TableExistsOption, not_exist: TableNotExistOption| CommandStatementIngest {
            table_definition_options: Some(TableDefinitionOptions {
                if_not_exist: not_exist as i32,
                if_exists: exists as i32,
            }),
            table: "bulk".into(),
            schema: Some("public".into()),
            catalog: None,
            temporary: false,
            transaction_id: None,
            options: Default::default(),
        };
    let n = client
        .execute_ingest(
            ingest(TableExistsOption::Fail, TableNotExistOption::Create),
            futures::stream::iter([Ok(batch.clone())]),
        )
        .await
        .unwrap();
    assert_eq!(n, 10_000);
    let n = client
        .execute_ingest(
            ingest(TableExistsOption::Append, TableNotExistOption::Fail),
            futures::stream::iter([Ok(batch.clone())]),
        )
        .await
        .unwrap();
    assert_eq!(n, 10_000);
    let err = client
        .execute_ingest(
            ingest(TableExistsOption::Fail, TableNotExistOption::Create),
            futures::stream::iter([Ok(batch)]),
        )
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("already exists"), "{err:?}");
    let info = client
        .execute("SELECT count(*) AS n, max(version) AS v FROM (SELECT 1 AS x) CROSS JOIN (SELECT version FROM system.tables WHERE name = 'bulk') GROUP BY x".into(), None)
        .await
        .unwrap();
    let out = text(&rows(&mut client, info).await);
    assert!(out.contains("| 1 | 1 |"), "{out}");
    let info = client
        .execute("SELECT count(*) AS n FROM bulk".into(), None)
        .await
        .unwrap();
    assert!(text(&rows(&mut client, info).await).contains("| 20000 |"));

    // A table without a declared key has none; type info lists the SQL types.
    let info = client
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: Some("lake".into()),
            db_schema: Some("public".into()),
            table: "p".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        rows(&mut client, info)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        0
    );
    // A declared key is listed column by column, in key order.
    client
        .execute_update(
            "CREATE TABLE keyed (a INT NOT NULL, b INT NOT NULL, c TEXT, PRIMARY KEY (b, a))"
                .into(),
            None,
        )
        .await
        .unwrap();
    let info = client
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "keyed".into(),
        })
        .await
        .unwrap();
    let keys = text(&rows(&mut client, info).await);
    assert!(
        keys.contains(
            "| lake         | public         | keyed      | b           | PRIMARY  | 1            |"
        ) && keys.contains("| a           | PRIMARY  | 2 "),
        "{keys}"
    );
    let info = client.get_xdbc_type_info(Default::default()).await.unwrap();
    assert!(text(&rows(&mut client, info).await).contains("VARCHAR"));

    // A result that is cancelled is gone.
    let info = client
        .execute("SELECT value FROM generate_series(1, 1000000)".into(), None)
        .await
        .unwrap();
    let cancel = arrow_flight::CancelFlightInfoRequest::new(info.clone());
    let mut request = tonic::Request::new(arrow_flight::Action {
        r#type: "CancelFlightInfo".into(),
        body: prost::Message::encode_to_vec(&cancel).into(),
    });
    let bearer = format!("Bearer {}", client.token().unwrap());
    request
        .metadata_mut()
        .insert("authorization", bearer.parse().unwrap());
    let mut results = client
        .inner_mut()
        .do_action(request)
        .await
        .expect("cancel")
        .into_inner();
    let body = results.message().await.unwrap().expect("a result").body;
    let result: arrow_flight::CancelFlightInfoResult = prost::Message::decode(body).unwrap();
    assert_eq!(result.status, arrow_flight::CancelStatus::Cancelled as i32);
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let err = match client.do_get(ticket).await {
        Ok(stream) => stream
            .try_collect::<Vec<_>>()
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("no result for this ticket"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_certificate_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (ca, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca-key.pem"));
    let csr = dir.path().join("server.csr");
    let ext = dir.path().join("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    // A test CA, and a server certificate it signs.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    assert!(cert.exists() && key.exists() && ca_key.exists() && csr.exists());
    let lake = dir.path().join("lake");
    let server = Server::start_with(
        &lake,
        3600,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read_to_string(&ca).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://127.0.0.1:{}", server.flight))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("TLS connects");
    let mut client = FlightSqlServiceClient::new(channel);
    client
        .handshake("admin", PASSWORD)
        .await
        .expect("login over TLS");
    let info = client
        .execute("SELECT 40 + 2 AS answer".into(), None)
        .await
        .unwrap();
    assert!(text(&rows(&mut client, info).await).contains("42"));
    // ADBC over TLS, trusting the test CA.
    let out = run_python(&format!(
        r#"
import adbc_driver_flightsql.dbapi as flight_sql
conn = flight_sql.connect("grpc+tls://localhost:{port}", db_kwargs={{
    "username": "admin", "password": "{password}",
    "adbc.flight.sql.client_option.tls_root_certs": open("{ca}").read()}})
cur = conn.cursor()
cur.execute("SELECT 6 * 7 AS answer")
print("tls:", cur.fetchone()[0])
"#,
        port = server.flight,
        password = PASSWORD,
        ca = ca.display()
    ));
    assert!(out.contains("tls: 42"), "{out}");
    // Plain text to a TLS port fails.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{}", server.flight))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut client = FlightSqlServiceClient::new(channel);
        assert!(client.handshake("admin", PASSWORD).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_expire() {
    let lake = tempfile::tempdir().unwrap();
    // Long enough for a loaded machine to log in and run one query.
    let server = Server::start(lake.path(), 3);
    let mut client = server.client().await;
    client.handshake("admin", PASSWORD).await.expect("login");
    client
        .execute("SELECT 1".into(), None)
        .await
        .expect("fresh token");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let err = client.execute("SELECT 1".into(), None).await.unwrap_err();
    assert!(has_code(&err, tonic::Code::Unauthenticated), "{err:?}");
    assert!(format!("{err:?}").contains("expired"), "{err:?}");
    // The same through ADBC.
    let out = run_python(&format!(
        r#"
import time
import adbc_driver_flightsql.dbapi as flight_sql
conn = flight_sql.connect("grpc://127.0.0.1:{port}", db_kwargs={{"username": "admin", "password": "{password}"}})
cur = conn.cursor()
cur.execute("SELECT 1")
cur.fetchall()
time.sleep(3.5)
try:
    cur.execute("SELECT 1")
    cur.fetchall()
    print("expired token accepted")
except Exception as e:
    print("expired:", "UNAUTHENTICATED" in str(e).upper())
"#,
        port = server.flight,
        password = PASSWORD
    ));
    assert!(out.contains("expired: True"), "{out}");
}

/// `request` with a bearer token, if any.
fn with<T>(token: Option<&str>, request: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(request);
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_the_server_does_not_implement_still_need_a_token() {
    use arrow_flight::flight_service_client::FlightServiceClient;
    use arrow_flight::{Criteria, FlightDescriptor};

    let lake = tempfile::tempdir().unwrap();
    let server = Server::start(lake.path(), 3600);
    let mut sql = server.client().await;
    let token = sql.handshake("admin", PASSWORD).await.expect("login");
    let token = String::from_utf8(token.to_vec()).expect("a text token");
    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", server.flight))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = FlightServiceClient::new(channel);
    // Without a (valid) token: Unauthenticated, whatever the call.
    for token in [None, Some("not-a-token")] {
        let err = raw
            .list_flights(with(token, Criteria::default()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
        let err = raw
            .get_schema(with(token, FlightDescriptor::new_path(vec!["t".into()])))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
        let err = raw
            .list_actions(with(token, arrow_flight::Empty {}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    }
    // With one, the unimplemented calls say so.
    let err = raw
        .list_flights(with(Some(&token), Criteria::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
    raw.list_actions(with(Some(&token), arrow_flight::Empty {}))
        .await
        .expect("actions are listed for a logged-in client");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let lake = tempfile::tempdir().unwrap();
    let mut server = Server::start(lake.path(), 3600);
    terminate(&server);
    let status = exit_status(&mut server, Instant::now() + Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
}

/// Rows of a result far larger than the buffers between the query and
/// the client, so that its query is still running while the client has
/// read only the first batch.
const LARGE_RESULT: usize = 5_000_000;

/// A `DoGet` of [`LARGE_RESULT`] rows of which the first batch has been
/// read: the client, the rest of the stream, and the rows read.
async fn large_result_started(
    server: &Server,
) -> (
    FlightSqlServiceClient<Channel>,
    arrow_flight::decode::FlightRecordBatchStream,
    usize,
) {
    let mut client = server.client().await;
    client.handshake("admin", PASSWORD).await.expect("login");
    let info = client
        .execute(
            format!("SELECT value FROM generate_series(1, {LARGE_RESULT})"),
            None,
        )
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
    let mut stream = client.do_get(ticket).await.expect("do_get");
    let first = stream.try_next().await.unwrap().expect("a first batch");
    (client, stream, first.num_rows())
}

/// Sends SIGTERM to the server.
fn terminate(server: &Server) {
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The server's exit status, once it has exited, which must be before
/// `deadline`.
fn exit_status(server: &mut Server, deadline: Instant) -> std::process::ExitStatus {
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_result_in_flight_finish() {
    let lake = tempfile::tempdir().unwrap();
    let mut server = Server::start(lake.path(), 3600);
    let (_client, mut stream, mut got) = large_result_started(&server).await;
    terminate(&server);
    // New connections are refused once the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", server.flight)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The call in flight runs to its end, every row of it.
    while let Some(batch) = stream.try_next().await.expect("the result continues") {
        got += batch.num_rows();
    }
    assert_eq!(got, LARGE_RESULT);
    let status = exit_status(&mut server, deadline);
    assert!(
        status.success(),
        "exit status {status:?}:\n{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigterm_stops_without_waiting_for_a_stalled_client() {
    let lake = tempfile::tempdir().unwrap();
    let mut server = Server::start(lake.path(), 3600);
    // The client reads one batch and then nothing: the call cannot end.
    let (_client, _stream, _) = large_result_started(&server).await;
    terminate(&server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("shutting down") {
        assert!(
            Instant::now() < deadline,
            "SIGTERM not acted on:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "serve stopped with a call in flight after one SIGTERM:\n{}",
        server.log()
    );
    terminate(&server);
    let status = exit_status(&mut server, deadline);
    assert!(!status.success(), "a forced stop exits with an error");
    assert!(server.log().contains("second signal"), "{}", server.log());
}

#[test]
fn python_adbc_client_connects_and_queries() {
    let lake = tempfile::tempdir().unwrap();
    let server = Server::start(lake.path(), 3600);
    let out = run_python(&format!(
        r#"
import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions
uri = "grpc://127.0.0.1:{port}"
try:
    flight_sql.connect(uri, db_kwargs={{"username": "admin", "password": "nope"}})
    print("bad password accepted")
except Exception as e:
    print("bad password:", "UNAUTHENTICATED" in str(e).upper())
conn = flight_sql.connect(uri, db_kwargs={{"username": "admin", "password": "{password}"}})
cur = conn.cursor()
cur.execute("CREATE TABLE readings (id BIGINT, temp DOUBLE)")
cur.execute("INSERT INTO readings VALUES (1, 20.5), (2, 21.0), (3, 35.5)")
cur.execute("SELECT id, temp FROM readings WHERE temp > 21 ORDER BY id")
print("rows:", cur.fetchall())
cur.execute("SELECT count(*) AS n FROM readings VERSION AS OF 0")
print("v0:", cur.fetchone()[0])
objects = conn.adbc_get_objects(catalog_filter="lake", db_schema_filter="public").read_all().to_pylist()
tables = [t["table_name"] for c in objects for s in c["catalog_db_schemas"] for t in (s["db_schema_tables"] or [])]
print("tables:", tables)
print("schema:", conn.adbc_get_table_schema("readings", catalog_filter="lake", db_schema_filter="public").names)
try:
    cur.execute("SELEC 1")
except Exception as e:
    print("bad sql:", "INVALID_ARGUMENT" in str(e).upper() or "INVALIDARGUMENT" in str(e).upper())
cur.execute("SELECT value FROM generate_series(1, 1000000)")
print("large:", cur.fetch_arrow_table().num_rows)
cur.execute("SELECT temp FROM readings WHERE id = ?", (2,))
print("param:", cur.fetchall())
cur.executemany("INSERT INTO readings VALUES (?, ?)", [(4, 1.0), (5, 2.0)])
cur.execute("SELECT count(*) FROM readings")
print("after executemany:", cur.fetchone()[0])
import pyarrow as pa
n = cur.adbc_ingest("ingested", pa.table({{"a": [1, 2, 3], "b": ["x", "y", "z"]}}), mode="create")
cur.execute("SELECT sum(a) FROM ingested")
print("ingested:", n, cur.fetchone()[0])
cur.close()
conn.close()
"#,
        port = server.flight,
        password = PASSWORD
    ));
    assert!(out.contains("bad password: True"), "{out}");
    assert!(out.contains("rows: [(3, 35.5)]"), "{out}");
    assert!(out.contains("v0: 0"), "{out}");
    assert!(out.contains("tables: ['readings']"), "{out}");
    assert!(out.contains("schema: ['id', 'temp']"), "{out}");
    assert!(out.contains("bad sql: True"), "{out}");
    assert!(out.contains("large: 1000000"), "{out}");
    assert!(out.contains("param: [(21.0,)]"), "{out}");
    assert!(out.contains("after executemany: 5"), "{out}");
    assert!(out.contains("ingested: 3 6"), "{out}");
}

/// Bulk ingest over Flight SQL stores every Arrow type a client sends by the
/// lake's type policy: values read back equal to what was sent (unsigned,
/// half floats, NaN, dictionaries, zoned nanosecond timestamps, nested), and
/// a batch whose nanoseconds would be cut is refused, leaving the table as it was.
#[test]
fn python_bulk_ingest_keeps_every_value() {
    let lake = tempfile::tempdir().unwrap();
    let server = Server::start(lake.path(), 3600);
    let out = run_python(&format!(
        r#"
import datetime, decimal, math
import pyarrow as pa
import adbc_driver_flightsql.dbapi as flight_sql
conn = flight_sql.connect("grpc://127.0.0.1:{port}", db_kwargs={{"username": "admin", "password": "{password}"}})
cur = conn.cursor()
nan = float("nan")
sent = pa.table({{
    "i": pa.array([0, 1, 2], pa.int32()),
    "u8": pa.array([0, 255, None], pa.uint8()),
    "u64": pa.array([0, 2**64 - 1, None], pa.uint64()),
    "f16": pa.array([-65504.0, nan, None], pa.float16()),
    "f32": pa.array([float("inf"), nan, None], pa.float32()),
    "f64": pa.array([float("-inf"), nan, None], pa.float64()),
    "dec": pa.array([decimal.Decimal("-99999.99"), decimal.Decimal("99999.99"), None], pa.decimal128(7, 2)),
    "s": pa.array(["", "über", None], pa.large_string()),
    "k": pa.array(["a", "b", None]).dictionary_encode(),
    "day": pa.array([datetime.date(1, 1, 1), datetime.date(9999, 12, 31), None], pa.date32()),
    "ts": pa.array([-1000, 9223372036854775000, None], pa.timestamp("ns")),
    "tz": pa.array([0, 1700000000123456000, None], pa.timestamp("ns", tz="Europe/Paris")),
    "l": pa.array([[1, 2], [], None], pa.list_(pa.int64())),
    "r": pa.array([{{"a": 1, "b": "x"}}, {{"a": -1, "b": None}}, None], pa.struct([("a", pa.int32()), ("b", pa.string())])),
}})
print("created:", cur.adbc_ingest("typed", sent, mode="create"))
cur.execute("SELECT * FROM typed ORDER BY i")
back = cur.fetch_arrow_table()
def same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b
for name in sent.column_names:
    want = sent.column(name).to_pylist()
    got = back.column(name).to_pylist()
    if not all(same(a, b) for a, b in zip(want, got)) or len(want) != len(got):
        print("differs:", name, want, got, back.schema.field(name).type)
print("types:", back.schema.field("u8").type, back.schema.field("u64").type, back.schema.field("tz").type)
cut = pa.table({{"i": pa.array([3], pa.int32()), "ts": pa.array([1001], pa.timestamp("ns"))}})
few = pa.table({{"u8": pa.array([7], pa.uint8()), "i": pa.array([9], pa.int32())}})
print("partial:", cur.adbc_ingest("typed", few, mode="append"))
cur.execute("SELECT i, u8, s FROM typed WHERE i = 9")
print("partial row:", cur.fetchall())
try:
    cur.adbc_ingest("typed", pa.table({{"nope": [1]}}), mode="append")
except Exception as e:
    print("unknown column:", "column nope" in str(e))
try:
    cur.adbc_ingest("typed", cut, mode="append")
    print("cut accepted")
except Exception as e:
    print("cut refused:", "column ts" in str(e), "backtrace" not in str(e))
cur.execute("SELECT count(*) FROM typed")
print("rows after:", cur.fetchone()[0])
"#,
        port = server.flight,
        password = PASSWORD
    ));
    assert!(out.contains("created: 3"), "{out}");
    assert!(!out.contains("differs:"), "{out}");
    assert!(
        out.contains("types: int16 decimal128(20, 0) timestamp[us, tz=UTC]"),
        "{out}"
    );
    assert!(out.contains("cut refused: True True"), "{out}");
    assert!(out.contains("partial: 1"), "{out}");
    assert!(out.contains("partial row: [(9, 7, None)]"), "{out}");
    assert!(out.contains("unknown column: True"), "{out}");
    assert!(out.contains("rows after: 4"), "{out}");
}

/// `GET /metrics`, read with Prometheus's own parser: statement counters
/// move by exactly what a client ran — successes, failures and denials —
/// and no statement text or data reaches a label.
/// Runs a Python script in which `connect(user, password)` opens an ADBC
/// Flight SQL connection to `server`.
pub(super) fn run_adbc(server: &Server, script: &str) -> String {
    run_python(&format!(
        "import adbc_driver_flightsql.dbapi as flight_sql\n\n\
         def connect(user, password):\n    \
         return flight_sql.connect(\"grpc://127.0.0.1:{}\", \
         db_kwargs={{\"username\": user, \"password\": password}})\n{script}",
        server.flight
    ))
}

/// Python helpers for a script reading `/metrics` with Prometheus's own
/// parser: `scrape()` returns the text and every sample keyed by name and
/// labels; `value(found, name, **labels)` one sample (0 when absent).
const SCRAPE: &str = r#"
import urllib.request
from prometheus_client.openmetrics.parser import text_string_to_metric_families

def scrape():
    text = urllib.request.urlopen(METRICS_URL).read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, found

def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0)
"#;

/// [`run_adbc`] with the [`SCRAPE`] helpers pointed at `server`.
pub(super) fn run_adbc_scraping(server: &Server, script: &str) -> String {
    run_adbc(
        server,
        &format!(
            "METRICS_URL = \"http://127.0.0.1:{}/metrics\"\n{SCRAPE}{script}",
            server.http
        ),
    )
}

#[test]
fn metrics_count_every_statement_with_bounded_labels() {
    let lake = tempfile::tempdir().unwrap();
    let server = Server::start(lake.path(), 3600);
    let out = run_adbc_scraping(
        &server,
        &format!(
            r#"
admin = connect("admin", "{password}").cursor()
admin.execute("CREATE TABLE secret_t (v TEXT)")
admin.execute("INSERT INTO secret_t VALUES ('classified-value')")
admin.execute("CREATE USER eve PASSWORD 'eve-pw'")
eve = connect("eve", "eve-pw").cursor()
_, before = scrape()
for _ in range(3):
    admin.execute("SELECT v FROM secret_t")
    admin.fetchall()
try:
    admin.execute("SELECT * FROM no_such_table")
except Exception:
    pass
try:
    eve.execute("SELECT v FROM secret_t")
    eve.fetchall()
except Exception:
    pass
text, after = scrape()
def moved(name, **labels):
    return int(value(after, name, **labels) - value(before, name, **labels))
def statements(outcome):
    return moved("autolake_statements_total", interface="flight_sql", kind="SELECT", outcome=outcome)
print("selects:", statements("success"))
print("failed:", statements("failure"))
# The driver may send a refused query twice; each request is counted, as audited.
admin.execute("SELECT count(*) FROM system.audit_log WHERE \"user\" = 'eve' AND outcome = 'denied'")
audited = admin.fetchone()[0]
print("denied as audited:", statements("denied") == audited, audited >= 1)
print("rows:", moved("autolake_rows_returned_total"))
# The first read scans the Parquet file; a server's scan cache may serve the others.
print("scanned:", 1 <= moved("autolake_rows_scanned_total") <= 3)
print("timed:", moved("autolake_statement_duration_seconds_count") >= 5)
print("private:", "classified" in text or "secret_t" in text or "no_such_table" in text or "eve" in text)
"#,
            password = PASSWORD
        ),
    );
    assert!(out.contains("selects: 3\n"), "{out}");
    assert!(out.contains("failed: 1\n"), "{out}");
    assert!(out.contains("denied as audited: True True"), "{out}");
    assert!(out.contains("rows: 3\n"), "{out}");
    assert!(out.contains("scanned: True\n"), "{out}");
    assert!(out.contains("timed: True"), "{out}");
    assert!(out.contains("private: False"), "{out}");
}
