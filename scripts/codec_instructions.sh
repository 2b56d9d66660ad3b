#!/usr/bin/env bash
# Counts the instructions the codec spends per event message (valgrind callgrind, so the
# figure does not move with the machine's load), for HEAD and a base revision side by side,
# with examples/codec_ops.rs (public codec API only, so the same file builds against the base):
#
#     scripts/codec_instructions.sh [BASE_REV]      # default BASE_REV: HEAD~1
#
# Per operation: (instructions for N runs - instructions for 0 runs) / N, so start-up cancels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
base=${1:-HEAD~1}
n=${CODEC_OPS_N:-20000}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/base" "$base"
cp examples/codec_ops.rs "$tmp/base/examples/codec_ops.rs"
target=${CARGO_TARGET_DIR:-$PWD/target}
echo "building HEAD and $base (release)..." >&2
cargo build -q --release --example codec_ops
cp "$target/release/examples/codec_ops" "$tmp/head"
(cd "$tmp/base" && CARGO_TARGET_DIR="$target/codec-base" cargo build -q --release --example codec_ops)
cp "$target/codec-base/release/examples/codec_ops" "$tmp/base-bin"
count() { # binary op n -> instructions
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 \
    | awk '/Collected/ {print $4}'
}
printf '%-14s %12s %12s %8s\n' op "base Ir/msg" "HEAD Ir/msg" ratio
for op in encode decode decode-read-all encode-frame decode-frame; do
  b=$(( $(count "$tmp/base-bin" "$op" "$n") - $(count "$tmp/base-bin" "$op" 0) ))
  h=$(( $(count "$tmp/head" "$op" "$n") - $(count "$tmp/head" "$op" 0) ))
  awk -v op="$op" -v n="$n" -v b="$b" -v h="$h" \
    'BEGIN { printf "%-14s %12.0f %12.0f %8.3f\n", op, b / n, h / n, h / b }'
done
echo "base $(git rev-parse --short "$base"), HEAD $(git rev-parse --short HEAD), N=$n"
# serde_amqp (fe2o3-amqp's types) on the same message: the other side of benches/codec.rs,
# in instructions (examples/codec_ops_serde.rs; it does not depend on our revision).
cargo build -q --release --example codec_ops_serde
printf '\n%-14s %12s %12s %10s\n' op "serde Ir/msg" "HEAD Ir/msg" "serde/HEAD"
for op in encode decode decode-frame; do
  s=$(( $(count "$target/release/examples/codec_ops_serde" "$op" "$n") \
      - $(count "$target/release/examples/codec_ops_serde" "$op" 0) ))
  h=$(( $(count "$tmp/head" "$op" "$n") - $(count "$tmp/head" "$op" 0) ))
  awk -v op="$op" -v n="$n" -v s="$s" -v h="$h" \
    'BEGIN { printf "%-14s %12.0f %12.0f %10.2f\n", op, s / n, h / n, s / h }'
done
