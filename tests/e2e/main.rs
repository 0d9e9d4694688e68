//! The end-to-end test binary: one per crate, modules per area.

mod governance;
mod models;
mod slt;
