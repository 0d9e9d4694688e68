#!/usr/bin/env bash
# The full test suite: unit tests, the sqllogictest files, CLI end-to-end
# tests and doc tests. Installs what it needs; safe to run repeatedly.
#
# Starts throwaway PostgreSQL, MariaDB, NATS JetStream and Mosquitto servers
# on free loopback ports for the run (scripts/test-services.sh; as root it
# installs their Debian packages when missing) and stops them at the end,
# also on failure or Ctrl-C. Arguments go to cargo nextest (a filter, say).
set -euo pipefail
cd "$(dirname "$0")/.."

# One persistent build folder when the caller sets one (CI does); else ./target.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! command -v cargo >/dev/null; then
  echo "cargo is required: install Rust from your package manager or rustup" >&2
  exit 1
fi

# Python test clients and services, in a local venv: an S3-compatible server
# (moto) for object-store lakes, the deltalake package for interop, and the
# ADBC Flight SQL driver for `autolake serve`, and Prometheus's own text parser
# for its /metrics.
VENV="$PWD/.venv"
PY_PACKAGES=("moto[server]==5.2.5" "boto3" "deltalake==1.6.6" "pyarrow" "adbc-driver-flightsql" "adbc-driver-manager" "prometheus-client")
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || {
    echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)" >&2
    exit 1
  }
fi
if ! "$VENV/bin/python" -c "import moto, boto3, deltalake, pyarrow, adbc_driver_flightsql, adbc_driver_manager, prometheus_client" >/dev/null 2>&1; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
fi
export AUTOLAKE_TEST_PYTHON="$VENV/bin/python"

# The binary's build and this one must share their dependencies' features,
# or this build recompiles the whole tree.
scripts/check-features.sh

# The modules stay in layers: no import circle in any crate.
python3 scripts/modgraph.py

# The command deck's browser tests: Debian's chromium driven by playwright-core.
scripts/test-services.sh browser

# The servers the source and stream tests talk to.
export AUTOLAKE_TEST_SERVICES="$CARGO_TARGET_DIR/test-services"
trap 'scripts/test-services.sh stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
scripts/test-services.sh start
# shellcheck disable=SC1091
source "$AUTOLAKE_TEST_SERVICES/env"

# Doc tests first, so the suite's own summary is the last thing printed.
cargo test --workspace --doc
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
