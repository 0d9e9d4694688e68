//! Test services and clients outside the binary.
//!
//! - PostgreSQL, MariaDB, NATS JetStream and Mosquitto: throwaway servers on
//!   free loopback ports that `scripts/test-services.sh` starts for the
//!   suite (`scripts/test.sh` calls it) and announces in `AUTOLAKE_TEST_*`
//!   variables. A test asks for one with [`Service::url`]; when the variable
//!   is missing, the test fails saying how to start them. No test reaches a
//!   server on a standard port.
//! - An S3-compatible server (moto) and Python's `deltalake`, from the venv
//!   `scripts/test.sh` installs. A missing venv fails the test with
//!   instructions; it never skips.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server the test harness runs for the suite.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Service {
    Postgres,
    MariaDb,
    Nats,
    Mosquitto,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::MariaDb => "MariaDB",
            Self::Nats => "NATS JetStream",
            Self::Mosquitto => "Mosquitto",
        }
    }

    fn variable(self) -> &'static str {
        match self {
            Self::Postgres => "AUTOLAKE_TEST_POSTGRES_URL",
            Self::MariaDb => "AUTOLAKE_TEST_MYSQL_URL",
            Self::Nats => "AUTOLAKE_TEST_NATS_URL",
            Self::Mosquitto => "AUTOLAKE_TEST_MQTT_URL",
        }
    }

    /// The name `scripts/test-services.sh` knows it by.
    fn script_name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::MariaDb => "mariadb",
            Self::Nats => "nats",
            Self::Mosquitto => "mosquitto",
        }
    }

    /// The server's URL, without credentials beyond the user name:
    /// `postgres://postgres@127.0.0.1:PORT/test`, `mysql://root@…/test`,
    /// `nats://127.0.0.1:PORT`, `mqtt://127.0.0.1:PORT`. Fails the test
    /// when the harness did not start the server.
    pub(crate) fn url(self) -> String {
        match std::env::var(self.variable()) {
            Ok(url) if !url.is_empty() => url,
            _ => panic!(
                "this test needs a {name} server and {var} is not set: run the suite with \
                 scripts/test.sh, which starts throwaway PostgreSQL, MariaDB, NATS and Mosquitto \
                 servers on free loopback ports (or run `scripts/test-services.sh start` and \
                 `source target/test-services/env` before cargo)",
                name = self.name(),
                var = self.variable()
            ),
        }
    }

    /// `127.0.0.1:PORT` of the server.
    pub(crate) fn address(self) -> String {
        let url = self.url();
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let host = rest.split('/').next().unwrap_or(rest);
        host.rsplit_once('@').map_or(host, |(_, h)| h).to_string()
    }

    /// The server's port.
    pub(crate) fn port(self) -> u16 {
        let address = self.address();
        address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {} = {address}", self.variable()))
    }

    /// Stops the server and starts it again on the same port with the same
    /// data, as a broker restart in production would.
    pub(crate) fn restart(self) {
        self.url();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-services.sh");
        let out = Command::new("bash")
            .arg(&script)
            .args(["restart", self.script_name()])
            .stdin(Stdio::null())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "restarting {} failed: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits until the server accepts connections again.
    pub(crate) fn wait_up(self) {
        let address = self.address();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} at {address} did not come back",
                self.name()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The Python with the test packages.
pub(crate) fn python() -> PathBuf {
    let path = std::env::var_os("AUTOLAKE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(".venv/bin/python")
        });
    assert!(
        path.exists(),
        "{} not found: run scripts/test.sh, which installs the Python test packages (moto, deltalake) into .venv",
        path.display()
    );
    path
}

/// Runs a Python snippet, returning its stdout.
pub(crate) fn run_python(code: &str) -> String {
    // Python's deltalake can abort in interpreter teardown after its work
    // is done ("terminate called without an active exception"); leave
    // without teardown once the snippet has finished.
    let code = format!("{code}\nimport os, sys\nsys.stdout.flush()\nos._exit(0)\n");
    let out = Command::new(python())
        .args(["-c", &code])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed:\n{code}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A moto S3 server on a private loopback port, stopped on drop.
pub(crate) struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub(crate) endpoint: String,
}

impl Moto {
    pub(crate) fn start() -> Self {
        let port = free_port();
        let child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    pub(crate) fn create_bucket(&self, bucket: &str) {
        run_python(&format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='testing', aws_secret_access_key='testing').create_bucket(Bucket='{bucket}')",
            self.endpoint
        ));
    }

    /// An autolake config file for `s3://bucket/prefix` on this server.
    pub(crate) fn config(&self, dir: &std::path::Path, lake: &str) -> PathBuf {
        let path = dir.join("autolake.toml");
        std::fs::write(
            &path,
            format!(
                "lake = \"{lake}\"\n[storage_options]\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
                 access_key_id = \"testing\"\nsecret_access_key = \"testing\"\nallow_http = \"true\"\n",
                self.endpoint
            ),
        )
        .unwrap();
        path
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
