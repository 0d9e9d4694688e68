//! Helpers the benchmark binaries share.

use std::path::PathBuf;

/// The allocator of the `autolake` binary, so that what is measured here
/// allocates as the product does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Python with the baseline packages: `AUTOLAKE_BENCH_PYTHON`, else
/// the venv `scripts/test.sh` creates, else `python3`.
pub(crate) fn python() -> PathBuf {
    if let Ok(p) = std::env::var("AUTOLAKE_BENCH_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// A free loopback port.
#[allow(dead_code)]
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
