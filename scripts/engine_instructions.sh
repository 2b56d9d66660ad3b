#!/usr/bin/env bash
# Counts the instructions the sans-IO engine spends per message (valgrind callgrind, so the
# figure does not move with the machine's load), for HEAD and for a base revision side by
# side, with examples/engine_pair.rs (an in-memory client/server pair; it uses only the public
# engine API, so the same file is built against the base):
#
#     scripts/engine_instructions.sh [BASE_REV]      # default BASE_REV: HEAD~1
#
# Prints, per case, instructions per message for base and HEAD and their ratio.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
base=${1:-HEAD~1}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/base" "$base"
cp examples/engine_pair.rs "$tmp/base/examples/engine_pair.rs"
target=${CARGO_TARGET_DIR:-$PWD/target}
echo "building HEAD and $base (release)..." >&2
cargo build -q --release --example engine_pair
cp "$target/release/examples/engine_pair" "$tmp/head"
(cd "$tmp/base" && CARGO_TARGET_DIR="$target/engine-base" cargo build -q --release --example engine_pair)
cp "$target/engine-base/release/examples/engine_pair" "$tmp/base-bin"
count() { # binary n size window -> instructions
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 \
    | awk '/Collected/ {print $4}'
}
printf '%-28s %14s %14s %8s\n' case "base Ir/msg" "HEAD Ir/msg" ratio
for spec in "20000 100 1000" "2000 1024 1000" "1000 65536 100" "200 1048576 20"; do
  read -r n size window <<<"$spec"
  b=$(count "$tmp/base-bin" $spec)
  h=$(count "$tmp/head" $spec)
  awk -v c="$size B, window $window" -v n="$n" -v b="$b" -v h="$h" \
    'BEGIN { printf "%-28s %14.0f %14.0f %8.3f\n", c, b / n, h / n, h / b }'
done
echo "base $(git rev-parse --short "$base"), HEAD $(git rev-parse --short HEAD); instructions include start-up, the same for both"
