#!/usr/bin/env bash
# Builds and runs one benchmark with every crate optimised as a release
# build is, in the test build's folder. The test build already optimises
# the data path's dependencies fully and the rest lightly (see
# [profile.dev.package] in Cargo.toml); here the rest are built at full
# optimisation too (once, kept beside the test build's), and the
# workspace's own crates are compiled again optimised.
#
#   scripts/bench.sh drift --rows 10000000
#   scripts/bench.sh ml --rows 10000000
#
# `cargo run --release -p autolake-benches --bin NAME` gives the same
# code from a separate build of everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ $# -lt 1 ]; then
  echo "usage: scripts/bench.sh tpch|drift|flight|ml|sync|jobs [ARGS…]" >&2
  exit 2
fi
bin="$1"
shift
optimised=(
  --config 'profile.dev.package."*".opt-level=3'
  --config profile.dev.opt-level=3
  --config profile.dev.debug-assertions=false
  --config profile.dev.overflow-checks=false
  --config profile.dev.incremental=false
  --config profile.dev.codegen-units=16
)
# Everything, as the test build selects it, so that every dependency is
# resolved with the same features and reused (the sync benchmark also runs
# the `autolake` binary beside its own).
cargo build "${optimised[@]}" --workspace --all-targets
if [ "$bin" = sync ]; then
  # The sync benchmark reads from the test suite's throwaway PostgreSQL.
  export AUTOLAKE_TEST_SERVICES="$CARGO_TARGET_DIR/bench-services"
  trap 'scripts/test-services.sh stop' EXIT
  trap 'exit 130' INT TERM
  scripts/test-services.sh start
  # shellcheck disable=SC1091
  source "$AUTOLAKE_TEST_SERVICES/env"
  "$CARGO_TARGET_DIR/debug/$bin" "$@"
else
  exec "$CARGO_TARGET_DIR/debug/$bin" "$@"
fi
