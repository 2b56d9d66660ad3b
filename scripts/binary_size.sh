#!/usr/bin/env bash
# Builds the minimal TLS sender (examples/send, blocking API) with the size-optimised
# `minsize` profile and the lean feature set, and prints the stripped binary's size:
#
#     scripts/binary_size.sh            # the target is < 3 MiB
#
# Exits non-zero when the binary is 3 MiB or more.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=${CARGO_TARGET_DIR:-target}
limit=$((3 * 1024 * 1024))
echo "building examples/send (profile minsize, features: tls only)..." >&2
cargo build -q --profile minsize --no-default-features --features tls --example send
bin="$target/minsize/examples/send"
size=$(stat -c %s "$bin")
awk -v s="$size" -v l="$limit" -v b="$bin" \
  'BEGIN { printf "%s: %d bytes (%.2f MiB), limit %.0f MiB\n", b, s, s / 1048576, l / 1048576 }'
[ "$size" -lt "$limit" ]
