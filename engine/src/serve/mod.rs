//! `autolake serve`: the engine on the network.
//!
//! One process serves Arrow Flight SQL ([`flight`]: tonic's generated
//! service, on connections [`http2`] accepts) and HTTP ([`deck`]: the
//! command deck's pages and API, `/healthz`, `/metrics`), both over the
//! same [`Engine`]. While it
//! serves, the machine's devices are sampled every second (busy and idle
//! time, `system.devices`), and each scrape of `/metrics` takes a fresh
//! device reading and every job's lag first. Users and
//! their argon2 password hashes live in the lake ([`users`]); the first
//! start creates `admin`. TLS (rustls) is on when a certificate and key
//! are given. SIGTERM or Ctrl-C stops accepting work and lets in-flight
//! calls finish; a second one stops at once. Every lake write is a single
//! Delta commit, so neither can leave half a commit behind.
//!
//! Connections are served on a runtime of their own, a quarter of the
//! cores (one on a small machine), while every call — planning, execution,
//! the task producing a result's batches — runs on the engine's runtime, as
//! InfluxDB 3 keeps its network I/O apart from its query executor. Sending
//! a large result is mostly HTTP/2 framing and socket writes, each a wake-up
//! between hyper's connection task and the response body; on the same
//! runtime as the query those wake-ups hop between all its threads and take
//! cores from the query and, on one machine, from the client. On 2 cores
//! (client and server together), 10 M rows (0.6 GB) read by the
//! `pyarrow.flight` client, the two builds read in turn: 0.215 and 0.224 s
//! best of 10 this way against 0.267 and 0.233 s on one shared runtime
//! (medians 0.28 against 0.27-0.35 s); the Flight benchmark's first read,
//! which decodes the Parquet files, 0.94 s against 2.0 s.

mod deck;
mod doget;
pub mod flight;
mod http2;
mod params;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::governance::accounts::UserStore;
use crate::session::Engine;

/// Applies the query history's retention once an hour while serving,
/// through the funnel (audited as any `VACUUM system.queries`).
async fn keep_query_history(engine: Arc<Engine>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let session = engine.session(
            crate::principal::Principal::local_admin(),
            crate::principal::Interface::Embedded,
        );
        if let Err(e) = session.execute("VACUUM system.queries").await {
            tracing::warn!("query history retention not applied: {e}");
        }
    }
}

/// How a server is started.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Flight SQL address.
    pub flight: SocketAddr,
    /// HTTP address (the command deck, `/healthz`, `/metrics`).
    pub http: SocketAddr,
    /// PEM certificate and key for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Lifetime of a bearer token.
    pub token_ttl: Duration,
    /// Run scheduled jobs and monitors in this process.
    pub scheduler: bool,
    /// Bytes of decoded table scans kept in memory (0: none); see
    /// [`crate::lake::cache`].
    pub scan_cache: u64,
}

/// The default scan cache: an eighth of the machine's memory.
pub fn default_scan_cache() -> u64 {
    crate::context::machine_memory() / 8
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn serve(engine: Arc<Engine>, options: ServeOptions) -> Result<()> {
    engine.scan_cache().set_budget(options.scan_cache);
    let users = UserStore::new(Arc::clone(engine.lake()));
    let admin_password = std::env::var("AUTOLAKE_ADMIN_PASSWORD").ok();
    if let Some(generated) = users.ensure_admin(admin_password.as_deref()).await? {
        eprintln!(
            "created user admin with password {generated}\n\
             (shown once; set AUTOLAKE_ADMIN_PASSWORD before the first start to choose it)"
        );
        engine.governance().changed().await?;
    }
    // The schema scientists write to.
    engine
        .lake()
        .create_schema(crate::governance::SANDBOX_SCHEMA, "admin")
        .await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let flight_listener = TcpListener::bind(options.flight).await.map_err(|e| {
        Error::Unavailable(format!(
            "cannot listen for Flight SQL on {}: {e}",
            options.flight
        ))
    })?;
    let http_listener = TcpListener::bind(options.http).await.map_err(|e| {
        Error::Unavailable(format!("cannot listen for HTTP on {}: {e}", options.http))
    })?;
    let flight_addr = flight_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;

    let tls = match &options.tls {
        None => None,
        Some((cert, key)) => {
            let read = |p: &PathBuf, what: &str| {
                std::fs::read(p).map_err(|e| {
                    Error::invalid(format!("cannot read the TLS {what} {}: {e}", p.display()))
                })
            };
            Some(http2::tls_config(
                &read(cert, "certificate")?,
                &read(key, "key")?,
            )?)
        }
    };
    let service = flight::AutoLakeFlightSql::new(Arc::clone(&engine), options.token_ttl);
    let deck = deck::Deck::new(
        Arc::clone(&engine),
        options.token_ttl,
        service.logins(),
        options.scheduler,
    );
    let flight_listener = flight_listener.into_std()?;
    let network = network_runtime()?;
    let flight = {
        // The listener's sockets belong to the network runtime's reactor.
        let _network = network.enter();
        let listener = TcpListener::from_std(flight_listener)?;
        network.spawn(http2::serve(
            listener,
            tls,
            service.into_server(),
            stop_rx.clone(),
        ))
    };
    let http = deck.serve(http_listener, stop_rx.clone());
    let sampler = engine.devices().spawn_sampler(Duration::from_secs(1));

    eprintln!(
        "autolake serving lake {}: Flight SQL on {}{flight_addr}, command deck on http://{http_addr}/",
        engine.lake().uri(),
        if options.tls.is_some() {
            "grpc+tls://"
        } else {
            "grpc://"
        }
    );
    // Due work is looked for five times a second, so a job every second
    // starts within 200 ms of being due.
    let scheduler = options.scheduler.then(|| {
        crate::scheduler::Scheduler::new(Arc::clone(&engine)).spawn(Duration::from_millis(200))
    });
    let retention = tokio::spawn(keep_query_history(Arc::clone(&engine)));
    let signals = async move {
        shutdown_signal().await;
        retention.abort();
        sampler.abort();
        if let Some(s) = &scheduler {
            s.abort();
        }
        eprintln!("shutting down: finishing in-flight calls (signal again to stop now)");
        let _ = stop_tx.send(true);
    };
    let served = async {
        let (flight, _, _) = tokio::join!(flight, http, signals);
        flight.map_err(|e| Error::invalid(format!("Flight SQL server failed: {e}")))
    };
    // A second signal while calls are still finishing (a client reading a
    // large result slowly, say) stops at once: calls in flight end with
    // their connections, and no lake write is ever half committed.
    let mut stopping = stop_rx.clone();
    let forced = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        shutdown_signal().await;
    };
    let outcome = tokio::select! {
        outcome = served => outcome,
        _ = forced => Err(Error::Unavailable(
            "stopped by a second signal before the calls in flight finished".to_string(),
        )),
    };
    drop(network);
    outcome
}

/// The runtime that serves Flight SQL connections: a quarter of the cores,
/// at least one. Calls themselves run on the engine's runtime (see the
/// module docs).
fn network_runtime() -> Result<NetworkRuntime> {
    let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 4).max(1));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("autolake-net")
        .enable_all()
        .build()
        .map(|runtime| NetworkRuntime(Some(runtime)))
        .map_err(|e| Error::invalid(format!("cannot start the network runtime: {e}")))
}

/// A runtime owned by async code: shut down without waiting when dropped
/// (dropping a runtime the usual way blocks, which an async context must
/// not), on every way out of `serve`, cancellation included.
struct NetworkRuntime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for NetworkRuntime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for NetworkRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The metrics, after a fresh device reading and every job's lag.
async fn scrape(engine: &Arc<Engine>) -> String {
    if !engine.config().unobserved {
        let devices = Arc::clone(engine.devices());
        let _ = tokio::task::spawn_blocking(move || devices.sample()).await;
        match crate::scheduler::job_lags(engine).await {
            Ok(lags) => engine.metrics().job_lags(&lags),
            Err(e) => tracing::warn!("job lags not measured: {e}"),
        }
    }
    engine.metrics().render()
}
