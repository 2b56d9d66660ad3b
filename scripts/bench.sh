#!/usr/bin/env bash
# Runs the benchmarks and prints a compact summary with the machine and its load.
#
#     scripts/bench.sh [RUNS]
#
# RUNS (default 3) runs of each bench; the summary shows the median over the runs of each
# figure and of each ratio (ratios are computed within a run, so they are the robust numbers
# on a shared or busy machine). Full bench output goes to $BENCH_LOG (default
# target/bench.log, or under $CARGO_TARGET_DIR). BENCH_ROUNDS and BENCH_SECS are passed on to
# the pipeline bench (see benches/amqp_pipeline.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=${1:-3}
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
log=${BENCH_LOG:-$target/bench.log}
: >"$log"

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
load() { cut -d' ' -f1-3 /proc/loadavg; }
load_before=$(load)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

echo "building benches (release)..." >&2
cargo bench --no-run --bench codec --bench amqp_pipeline >>"$log" 2>&1

for i in $(seq "$runs"); do
  echo "run $i/$runs: codec (load $(load))" >&2
  cargo bench --bench codec -- --noplot >>"$log" 2>&1
  echo "run $i/$runs: amqp_pipeline (load $(load))" >&2
  cargo bench --bench amqp_pipeline >>"$log" 2>&1
done
load_after=$(load)

echo
echo "eventhubs benchmarks, $started"
echo "machine: $(uname -m), $(nproc) CPUs, ${cpu:-unknown CPU}; rustc $(rustc --version | cut -d' ' -f2)"
echo "load average (1/5/15 min): before $load_before, after $load_after"
echo "runs: $runs; each figure is the median over the runs; full output: $log"
echo

# CODEC <case> <other> <eventhubs ns> <other ns> <ratio>
awk '
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  $1 == "CODEC" {
    k = $2 " " $3
    if (!(k in ours)) order[++n] = k
    ours[k] = ours[k] " " $4; other[k] = other[k] " " $5; ratio[k] = ratio[k] " " $6
  }
  END {
    if (!n) { print "codec: no results (see the log)"; exit }
    print "codec (criterion median ns/message; ratio = other/eventhubs; issue 15 targets vs serde_amqp: encode >= 8x, decode >= 5x, frame decode >= 4x)"
    printf "  %-15s %-26s %10s %10s %7s\n", "case", "other", "eventhubs", "other", "ratio"
    for (i = 1; i <= n; i++) {
      split(order[i], p, " ")
      printf "  %-15s %-26s %10.0f %10.0f %6.2fx\n", p[1], p[2], median(ours[order[i]]), median(other[order[i]]), median(ratio[order[i]])
    }
  }' "$log"
echo

# PIPE <size> <mode> <msgs/s> msgs/s <MB/s> MB/s window <w> rounds [...]
# PIPE-RATIO <size> pipelined/send-and-wait <ratio>x
# PIPE-TCP <size> <mode> <share> % of raw TCP bytes/s (...)
# PIPE-INFLIGHT <size> 4-in-flight/1-in-flight <ratio>x
awk '
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  $1 == "PIPE" {
    k = $2 " " $3
    if (!(k in rate)) order[++n] = k
    rate[k] = rate[k] " " $4; mb[k] = mb[k] " " $6; win[k] = $9
  }
  $1 == "PIPE-RATIO" {
    if (!($2 in ratio)) rorder[++m] = $2
    r = $4; sub(/x$/, "", r); ratio[$2] = ratio[$2] " " r
  }
  $1 == "PIPE-TCP" {
    k = $2 " " $3
    if (!(k in tcp)) torder[++t] = k
    tcp[k] = tcp[k] " " $4
  }
  $1 == "PIPE-INFLIGHT" {
    r = $4; sub(/x$/, "", r); inflight[$2] = inflight[$2] " " r
  }
  END {
    if (!n) { print "amqp_pipeline: no results (see the log)"; exit }
    print "amqp_pipeline (our sender -> our listener, loopback TCP, unsettled, listener accepts each)"
    printf "  %-8s %-14s %12s %10s %7s\n", "body", "mode", "msgs/s", "MB/s", "window"
    for (i = 1; i <= n; i++) {
      split(order[i], p, " ")
      printf "  %-8s %-14s %12.0f %10.1f %7s\n", p[1], p[2], median(rate[order[i]]), median(mb[order[i]]), win[order[i]]
    }
    for (i = 1; i <= m; i++)
      printf "  %-8s pipelined / send-and-wait: %.1fx%s\n", rorder[i], median(ratio[rorder[i]]), rorder[i] == "100B" ? " (target >= 10x)" : ""
    for (i = 1; i <= t; i++) {
      split(torder[i], p, " ")
      printf "  %-8s %-14s %.1f %% of raw loopback TCP bytes/s in the same round (target >= 50 %%)\n", p[1], p[2], median(tcp[torder[i]])
    }
    for (k in inflight)
      printf "  %-8s 4 sends in flight / 1: %.2fx (target >= 1)\n", k, median(inflight[k])
  }' "$log"
