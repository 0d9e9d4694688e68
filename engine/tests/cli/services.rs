//! Test services and clients outside the binary: an S3-compatible server
//! (moto) and Python's `deltalake`, both from the venv `scripts/test.sh`
//! installs. A missing venv fails the test with instructions; it never
//! skips.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
