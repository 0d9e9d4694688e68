#!/usr/bin/env bash
# Checks that the `autolake` binary's build (`cargo run --bin autolake`) and
# the test build (`cargo test --workspace`) resolve every shared dependency
# with the same features. When they differ, cargo builds that crate and
# everything above it twice: with DataFusion on top, half an hour on two
# cores. The fix is a feature pin in engine/Cargo.toml (see its comment).
set -euo pipefail
cd "$(dirname "$0")/.."

resolve() {
  cargo tree --offline "$@" --format '{p} {f}' --prefix none 2>/dev/null ||
    cargo tree "$@" --format '{p} {f}' --prefix none
}

# The two resolutions go through files: together they outgrow an argument list.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
resolve -p autolake-engine -e no-dev >"$tmp/binary"
resolve --workspace >"$tmp/workspace"

python3 - "$tmp/binary" "$tmp/workspace" <<'EOF'
import sys

def parse(text):
    seen = {}
    for line in text.splitlines():
        line = line.replace(" (*)", "").strip()
        if not line or "(/" in line:  # the workspace's own crates
            continue
        name, version, *rest = line.split(" ")
        host = "(proc-macro)" in rest
        features = [f for f in rest if f != "(proc-macro)"]
        key = (name, version, host)
        seen.setdefault(key, set()).add(",".join(features))
    return seen

def read(path):
    with open(path) as f:
        return f.read()

binary, workspace = parse(read(sys.argv[1])), parse(read(sys.argv[2]))
drift = [
    (key, binary[key], workspace[key])
    for key in sorted(binary)
    if key in workspace and binary[key] != workspace[key]
]
for (name, version, _), b, w in drift:
    print(f"{name} {version}: binary build {sorted(b)}, test build {sorted(w)}", file=sys.stderr)
if drift:
    print(
        "check-features: the test build would rebuild the crates above with other features; "
        "pin the test build's features in engine/Cargo.toml",
        file=sys.stderr,
    )
    sys.exit(1)
print(f"check-features: {len(binary)} shared dependencies resolve alike for the binary and the tests")
EOF
