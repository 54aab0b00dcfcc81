#!/usr/bin/env bash
# Run every test: formatting, lints, unit tests, the static build, and the end-to-end suite against
# real registries on loopback. Run as root on a fresh machine (installs and starts what it needs);
# as an ordinary user it works when the fixtures are already up.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "fixtures (registries on 127.0.0.1, images built from Debian packages)"
if [ "$(id -u)" = 0 ]; then
  scripts/fixtures.sh up
else
  echo "not root: assuming scripts/fixtures.sh up was run already"
fi

step "HPC fixtures (single-node Slurm cluster on 127.0.0.1, OpenMPI image; tests/tests/hpc.rs)"
if [ "$(id -u)" = 0 ]; then
  scripts/hpc.sh up
else
  echo "not root: assuming scripts/hpc.sh up was run already"
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --locked
UDOCKER_STATIC_BIN=$(scripts/build-static.sh)
export UDOCKER_STATIC_BIN
# The tests drive the binary as an unprivileged account, which may not be able to enter this
# checkout (CI clones under root's home): give them a world-readable copy.
bindir=$(mktemp -d /tmp/udocker-rs-bin.XXXXXX)
trap 'rm -rf "$bindir"' EXIT
install -m 0755 target/debug/udocker "$bindir/udocker"
chmod 0755 "$bindir"
export UDOCKER_TEST_BIN="$bindir/udocker"

step "tests"
cargo test --workspace --locked --no-fail-fast
