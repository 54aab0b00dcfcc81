#!/usr/bin/env bash
# Build the release artifact: ONE statically linked udocker binary.
# musl when its target is installed (rustup target add x86_64-unknown-linux-musl), else static-pie
# glibc (-C target-feature=+crt-static), which is what this project's machines can build.
# Prints the path of the binary on stdout; everything else goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$(uname -m)
musl="${arch}-unknown-linux-musl"
gnu="${arch}-unknown-linux-gnu"
if rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  target=$musl
  flags="-C target-feature=+crt-static"
else
  target=$gnu
  # static-pie: a static binary that is still position independent (ASLR keeps working).
  flags="-C target-feature=+crt-static -C relocation-model=pie"
fi
echo "building udocker for $target (static)" >&2
RUSTFLAGS="${RUSTFLAGS:-} $flags" cargo build --release --locked -p udocker --target "$target" >&2
bin="target/$target/release/udocker"
mkdir -p dist
cp "$bin" dist/udocker
# A static(-pie) ELF has no PT_INTERP and no DT_NEEDED entries.
if readelf -lW dist/udocker | grep -q 'Requesting program interpreter' || readelf -dW dist/udocker | grep -q '(NEEDED)'; then
  echo "error: dist/udocker is dynamically linked" >&2
  exit 1
fi
echo "$(pwd)/dist/udocker"
