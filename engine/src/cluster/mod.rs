//! `autolake cluster scheduler` and `autolake cluster executor`, and
//! `SHOW CLUSTER`: the processes of a Ballista cluster with AutoLake's
//! functions, and the statement that lists them. How a session's plans
//! are cut for a cluster is in [`crate::distributed`].

mod processes;
mod show;

pub use processes::{ExecutorOptions, run_executor, run_scheduler};
pub(crate) use show::show;

pub use crate::settings::{AutoLakeOptions, ClusterAddress, check_reachable};
pub(crate) use crate::settings::{session_cluster, unreachable_error};
