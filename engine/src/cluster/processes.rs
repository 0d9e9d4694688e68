//! `autolake cluster scheduler` and `autolake cluster executor`: Ballista's
//! processes with AutoLake's functions, codec and the lake's object store.
//!
//! Both open the lake as any AutoLake process does (`--lake`, the
//! configuration file and the environment give its location and
//! credentials), and take the function registry and the object store from
//! an engine session on it. The functions whose result depends on who runs
//! a statement (`current_user`, `is_member`) are taken out: the
//! coordinator folds them while planning, and an executor must never
//! answer them as itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_server::SessionBuilder;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;

use crate::distributed::AutoLakeCodec;
use crate::error::{Error, Result};
use crate::governance::boundaries::IDENTITY_FUNCTIONS;
use crate::principal::{Interface, Principal};
use crate::session::Engine;
use crate::settings::{AutoLakeOptions, ClusterAddress};

/// Seconds between an executor's heartbeats, and after which the
/// scheduler gives up on a silent one: a killed executor's tasks go to
/// the others within the timeout.
const HEARTBEAT_SECONDS: u64 = 5;
pub(crate) const EXECUTOR_TIMEOUT_SECONDS: u64 = 20;

/// The session state plans are decoded and run with: AutoLake's
/// functions (less the identity functions) and the lake's object store.
fn cluster_state(engine: &Arc<Engine>) -> Result<SessionState> {
    let session = engine.session(Principal::local_admin(), Interface::Embedded);
    let mut state = session.context().state();
    for name in IDENTITY_FUNCTIONS {
        state.deregister_udf(name)?;
    }
    Ok(state)
}

/// The settings every session of the cluster starts from: Ballista's and
/// AutoLake's own, so a coordinator's `autolake.*` settings are understood.
fn config_producer() -> ConfigProducer {
    Arc::new(|| {
        SessionConfig::new_with_ballista()
            .with_option_extension(AutoLakeOptions::default())
            .with_option_extension(autolake_udfs::ml::PredictContext::default())
    })
}

/// Runs a scheduler on `bind` until SIGTERM or Ctrl-C.
pub async fn run_scheduler(engine: Arc<Engine>, bind: SocketAddr) -> Result<()> {
    let base = cluster_state(&engine)?;
    let builder: SessionBuilder = Arc::new(move |config: SessionConfig| {
        Ok(SessionStateBuilder::new_from_existing(base.clone())
            .with_config(config)
            .build())
    });
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        external_host: bind.ip().to_string(),
        bind_port: bind.port(),
        override_session_builder: Some(builder),
        override_config_producer: Some(config_producer()),
        override_physical_codec: Some(Arc::new(AutoLakeCodec::default())),
        executor_timeout_seconds: EXECUTOR_TIMEOUT_SECONDS,
        expire_dead_executor_interval_seconds: HEARTBEAT_SECONDS,
        ..Default::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot start the scheduler: {e}")))?;
    // The port is taken (or not) before anything is announced.
    let probe = std::net::TcpListener::bind(bind)
        .map_err(|e| Error::Unavailable(format!("cannot listen on {bind}: {e}")))?;
    drop(probe);
    eprintln!(
        "autolake cluster scheduler on df://{bind} for lake {}",
        engine.lake().uri()
    );
    let server =
        ballista_scheduler::scheduler_process::start_server(cluster, bind, Arc::new(config));
    tokio::select! {
        outcome = server => outcome.map_err(|e| Error::Unavailable(format!("the scheduler stopped: {e}"))),
        () = crate::serve::shutdown_signal() => {
            eprintln!("scheduler stopping");
            Ok(())
        }
    }
}

/// How an executor is started.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler to register with.
    pub scheduler: ClusterAddress,
    /// Where it serves its results (Flight); its task port is the next one.
    pub bind: SocketAddr,
    /// Tasks it runs at once.
    pub slots: usize,
    /// Where shuffle files go (a temporary folder when `None`).
    pub work_dir: Option<PathBuf>,
}

/// Runs an executor until SIGTERM or Ctrl-C (it finishes its running
/// tasks and tells the scheduler it is going).
pub async fn run_executor(engine: Arc<Engine>, options: ExecutorOptions) -> Result<()> {
    let state = cluster_state(&engine)?;
    let registry = BallistaFunctionRegistry::from(&state);
    let store_url = engine.lake().store_url().clone();
    let store = Arc::clone(engine.lake().store());
    let runtime: RuntimeProducer = Arc::new(move |_config: &SessionConfig| {
        let runtime = RuntimeEnvBuilder::new().build_arc()?;
        runtime.register_object_store(store_url.as_ref(), Arc::clone(&store));
        Ok(runtime)
    });
    // Shuffle files: the given folder, or a fresh one removed at the end.
    let (work_dir, scratch) = match &options.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("autolake-executor-{}", uuid::Uuid::new_v4())),
            true,
        ),
    };
    std::fs::create_dir_all(&work_dir).map_err(|e| {
        Error::invalid(format!(
            "cannot create the work folder {}: {e}",
            work_dir.display()
        ))
    })?;
    // Port 0: two free ports, since the scheduler is told both.
    let (port, grpc_port) = match options.bind.port() {
        0 => (free_port(options.bind)?, free_port(options.bind)?),
        port => (
            port,
            port.checked_add(1).ok_or_else(|| {
                Error::invalid("the executor's port must leave room for its task port (port + 1)")
            })?,
        ),
    };
    let host = options.bind.ip();
    let config = ExecutorProcessConfig {
        bind_host: host.to_string(),
        external_host: (!host.is_unspecified()).then(|| host.to_string()),
        port,
        grpc_port,
        scheduler_host: options.scheduler.host.clone(),
        scheduler_port: options.scheduler.port,
        scheduler_connect_timeout_seconds: 10,
        vcores: options.slots.max(1),
        work_dir: Some(work_dir.display().to_string()),
        print_thread_info: false,
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        override_function_registry: Some(Arc::new(registry)),
        override_runtime_producer: Some(runtime),
        override_config_producer: Some(config_producer()),
        override_physical_codec: Some(Arc::new(AutoLakeCodec::default())),
        ..Default::default()
    };
    eprintln!(
        "autolake cluster executor on {host}:{port} (tasks on {grpc_port}, {} slots) for \
         scheduler {} and lake {}",
        options.slots,
        options.scheduler,
        engine.lake().uri()
    );
    let outcome = start_executor_process(Arc::new(config))
        .await
        .map_err(|e| Error::Unavailable(format!("the executor stopped: {e}")));
    if scratch {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    outcome
}

/// A port free on `bind`'s address now.
fn free_port(bind: SocketAddr) -> Result<u16> {
    let listener = std::net::TcpListener::bind((bind.ip(), 0))
        .map_err(|e| Error::Unavailable(format!("cannot listen on {}: {e}", bind.ip())))?;
    Ok(listener.local_addr()?.port())
}
