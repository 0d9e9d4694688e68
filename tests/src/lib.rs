//! End-to-end tests of AutoLake: `.slt` files under `slt/` run by
//! sqllogictest against AutoLake's own session (see `e2e/`).
