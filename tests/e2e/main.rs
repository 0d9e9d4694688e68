//! The end-to-end test binary: one per crate, modules per area.

mod governance;
mod jobs;
mod models;
mod slt;
mod util;
