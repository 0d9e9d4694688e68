#!/usr/bin/env bash
# The full test suite: unit tests, the sqllogictest files, CLI end-to-end
# tests and doc tests. Installs what it needs; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

# One persistent build folder when the caller sets one (CI does); else ./target.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! command -v cargo >/dev/null; then
  echo "cargo is required: install Rust from your package manager or rustup" >&2
  exit 1
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
cargo test --workspace --doc
