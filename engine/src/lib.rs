//! The AutoLake engine: a DataFusion session over a lake of Delta tables.
//!
//! ```text
//!  CLI / Flight SQL / jobs / demo
//!            │  Session::execute_statement (principal, interface)
//!            ▼
//!  session ── parse (autolake-sql) ─ authorize ─ exec ─┬─ lake::write (Delta commits)
//!                                                      └─ DataFusion (queries, streamed)
//!  lake ── object store root, catalog `lake` → schemas → Delta tables, `system` views
//!  sources ── PostgreSQL, MySQL, files: one catalog each, attached when named
//! ```
//!
//! ```no_run
//! # async fn example() -> autolake_engine::Result<()> {
//! use autolake_engine::{Engine, EngineConfig, Interface, Principal};
//! let engine = Engine::open(EngineConfig::for_lake("memory://doc")).await?;
//! let session = engine.session(Principal::local_admin(), Interface::Embedded);
//! session.execute("CREATE TABLE t (id INT NOT NULL, name TEXT)").await?;
//! session.execute("INSERT INTO t VALUES (1, 'a')").await?;
//! let rows = session.execute("SELECT * FROM t VERSION AS OF 1").await?;
//! # Ok(()) }
//! ```

pub mod cli;
pub mod cluster;
mod context;
pub mod demo;
pub mod devices;
mod distributed;
pub mod error;
mod exec;
pub mod governance;
pub mod history;
pub mod inference_log;
pub mod jobs;
pub mod lake;
pub mod metrics;
pub mod models;
pub mod monitor;
mod names;
mod open;
pub mod pipelines;
pub mod principal;
pub mod progress;
pub mod scheduler;
pub mod serve;
pub mod session;
pub mod settings;
pub mod sources;
pub mod system;
mod table_name;

pub use error::{Error, Result};
pub use principal::{Interface, Principal};
pub use session::{Engine, EngineConfig, Session, StatementResult};
