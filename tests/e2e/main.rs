//! The end-to-end test binary: one per crate, modules per area.

mod models;
mod slt;
