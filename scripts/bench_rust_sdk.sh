#!/usr/bin/env bash
# Our client beside the official Azure SDK for Rust (azure_messaging_eventhubs 0.16.0, on
# fe2o3-amqp), side by side against ONE emulator: 100 B and 64 KiB events, sent to partition
# "0" and received from the start of a partition.
#
#     scripts/bench_rust_sdk.sh [ROUNDS]
#
# Per size and round, each in its own process:
#   eventhubs-send-xK   examples/bench_send.rs producer: create_batch + try_add + send, K batches
#                       in flight (K = 1 and BENCH_INFLIGHT)
#   sdk-send-xK         scripts/rust_sdk_bench: ProducerClient::create_batch + try_add_event_data
#                       + send_batch, K batches in flight (K = 1 and BENCH_INFLIGHT)
#   eventhubs-receive   `ehub bench receive`: EventHubConsumer::receive from the earliest event,
#                       default prefetch (300)
#   sdk-receive         scripts/rust_sdk_bench: ConsumerClient + open_receiver_on_partition +
#                       stream_events from the earliest event, the SDK's default prefetch (300)
# and prints events/s, MB/s (body bytes, 10^6), client CPU µs per event in the timed window,
# peak RSS and the emulator's CPU over the run; medians over the rounds, and the ratio
# eventhubs / SDK computed within each round (median and range).
#
# The SDK program is its own Cargo project (scripts/rust_sdk_bench/, its own workspace and
# lock file), so the SDK never enters the eventhubs crate's dependency tree; this script
# builds it (release, opt-level 3) into $CARGO_TARGET_DIR/rust-sdk-bench. What it needs to talk
# to the emulator: the connection string's key name and key (UseDevelopmentEmulator=true), a
# custom endpoint amqp://127.0.0.1:PORT (the SDK dials neither the Endpoint's port nor plain
# AMQP by itself), and a current-thread tokio runtime (on a multi-thread one it races with its
# own connection task against a fast local peer; see tests/rust_sdk/src/main.rs).
#
# Environment:
#   BENCH_SCALE      multiplies every event count (default 1; 0.1 for a quick look)
#   BENCH_INFLIGHT   the second K for the send rows (default 4)
#   BENCH_SDK_LOG    where the raw result lines go (default $CARGO_TARGET_DIR/bench_rust_sdk.log)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh

rounds=${1:-3}
scale=${BENCH_SCALE:-1}
inflight=${BENCH_INFLIGHT:-4}
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
target=$(cd "$target" && pwd)
log=${BENCH_SDK_LOG:-$target/bench_rust_sdk.log}
: >"$log"

count() { awk -v n="$1" -v s="$scale" 'BEGIN { c = int(n * s); print c < 1 ? 1 : c }'; }
sizes=(100 65536)
# A few seconds per run on an idle 2-core machine; both clients get the same events.
declare -A n_ours=([100]=1500000 [65536]=30000)
declare -A n_sdk=([100]=1500000 [65536]=30000)
# The partition each size is received from, filled once before the rounds.
declare -A recv_partition=([100]=1 [65536]=2)

echo "building ehub and examples/bench_send (release)..." >&2
cargo build --release --features cli --bin ehub --example bench_send >>"$log" 2>&1
echo "building scripts/rust_sdk_bench (release; the first build takes a few minutes)..." >&2
cargo build --release --locked --manifest-path scripts/rust_sdk_bench/Cargo.toml \
  --target-dir "$target/rust-sdk-bench" >>"$log" 2>&1
ehub=$target/release/ehub
send=$target/release/examples/bench_send
sdk=$target/rust-sdk-bench/release/eventhubs-rust-sdk-bench

start_emulator "$ehub"
emu_pid=$EMU_PID
port=$EMU_PORT
cleanup() {
  kill "$emu_pid" 2>/dev/null || true
  wait "$emu_pid" 2>/dev/null || true
}
trap cleanup EXIT
conn=$(bench_conn "$port")


# `ehub bench receive` prints a sentence; turn it into the RESULT line the others print.
ehub_result() {
  sed -n 's/^receive: \([0-9]*\) events in \([0-9.]*\) s: .*client CPU \([0-9.]*\) s, .*peak RSS \([0-9]*\) MiB.*/\1 \2 \3 \4/p' |
    awk '{ printf "RESULT impl=eventhubs-receive events=%s secs=%s cpu=%s maxrss_kib=%d\n", $1, $2, $3, $4 * 1024 }'
}

# run ROUND SIZE KIND COMMAND...: runs one client, appends "ROW round size load emulator-cpu
# key=value..." to the log. KIND: ehub (our receive, its sentence parsed), ours, sdk. An SDK
# run that fails (it gives up on a call after 30 s without an answer) is recorded as a FAIL
# line and the bench goes on; a failure of ours ends the script.
run() {
  local round=$1 size=$2 kind=$3
  shift 3
  local l c0 c1 out
  l=$(cut -d' ' -f1 /proc/loadavg)
  c0=$(emu_cpu "$emu_pid")
  if [[ $kind == ehub ]]; then
    out=$("$@" 2>>"$log" | ehub_result) || true
  else
    out=$("$@" 2>>"$log" | grep '^RESULT ') || true
  fi
  if [[ -z $out ]]; then
    if [[ $kind == sdk ]]; then
      echo "FAIL $round $size $*" >>"$log"
      echo "  failed: $* (see $log)" >&2
      return 0
    fi
    echo "failed: $* (see $log)" >&2
    exit 1
  fi
  c1=$(emu_cpu "$emu_pid")
  echo "ROW $round $size $l $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }') ${out#RESULT }" >>"$log"
  echo "  ${out#RESULT } (load $l)" >&2
}

load_before=$(load)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "emulator on port $port" >&2

# Fill the receive partitions once: enough for the larger of the two reads.
for size in "${sizes[@]}"; do
  p=${recv_partition[$size]}
  n=$(count "${n_ours[$size]}")
  echo "filling partition $p with $n events of $size B..." >&2
  "$ehub" bench send --connection-string "$conn" -p "$p" --size "$size" --count "$n" >>"$log" 2>&1
done

for r in $(seq "$rounds"); do
  echo "round $r/$rounds (load $(load))" >&2
  for size in "${sizes[@]}"; do
    no=$(count "${n_ours[$size]}")
    ns=$(count "${n_sdk[$size]}")
    p=${recv_partition[$size]}
    # Alternate which client goes first, so neither always meets a warmer machine.
    if ((r % 2)); then order="ours sdk"; else order="sdk ours"; fi
    for who in $order; do
      for k in 1 "$inflight"; do
        if [[ $who == ours ]]; then
          run "$r" "$size" ours "$send" producer --conn "$conn" --size "$size" --count "$no" --inflight "$k"
        else
          run "$r" "$size" sdk "$sdk" send --address "127.0.0.1:$port" --size "$size" --count "$ns" --inflight "$k"
        fi
      done
    done
    for who in $order; do
      if [[ $who == ours ]]; then
        run "$r" "$size" ehub "$ehub" bench receive --connection-string "$conn" -p "$p" --count "$no"
      else
        run "$r" "$size" sdk "$sdk" receive --address "127.0.0.1:$port" --partition "$p" --size "$size" --count "$ns"
      fi
    done
  done
done
load_after=$(load)

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
echo
echo "eventhubs beside the official Rust SDK (azure_messaging_eventhubs 0.16.0), $started"
echo "machine: $(uname -m), $(nproc) CPUs, ${cpu:-unknown CPU}; rustc $(rustc --version | cut -d' ' -f2)"
echo "load average (1/5/15 min): before $load_before, after $load_after"
echo "rounds: $rounds (figures: median over rounds; ratios: median of per-round ratios, range); raw: $log"
if grep -q '^FAIL ' "$log"; then
  echo "SDK runs that failed (not in the figures):"
  grep '^FAIL ' "$log" | sed 's/^FAIL /  round /'
  grep 'eventhubs-rust-sdk-bench: ' "$log" | sed 's/^/  /'
fi
echo

awk -v K="$inflight" "$BENCH_AWK_STATS"'
  function label(s) { return s == 100 ? "100 B" : s == 65536 ? "64 KiB" : s " B" }
  $1 == "ROW" {
    round = $2; size = $3; load = $4; emu = $5
    delete f
    for (i = 6; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    impl = f["impl"]
    if (impl ~ /^rust-producer-x/) { sub(/^rust-producer/, "eventhubs-send", impl) }
    k = size SUBSEP impl
    if (!(k in rate)) order[++n] = k
    r = f["events"] / f["secs"]
    rate[k] = rate[k] " " r
    mbs[k] = mbs[k] " " (f["events"] * size / 1e6 / f["secs"])
    us[k] = us[k] " " (f["cpu"] / f["events"] * 1e6)
    rss[k] = rss[k] " " (f["maxrss_kib"] / 1024)
    ecpu[k] = ecpu[k] " " (emu / f["events"] * 1e6)
    per[round, k] = r
    perus[round, k] = f["cpu"] / f["events"] * 1e6
    rounds[round] = 1
  }
  function ratio(num, den, what,   rr, list, clist) {
    list = ""; clist = ""
    for (rr in rounds) if ((rr, num) in per && (rr, den) in per && per[rr, den] > 0) {
      list = list " " per[rr, num] / per[rr, den]
      if (perus[rr, num] > 0) clist = clist " " perus[rr, den] / perus[rr, num]
    }
    if (list == "") return
    printf "%-8s %-34s %6.1fx events/s (%s)", label(size_of[num]), what, median(list), range(list)
    if (clist != "") printf ", %5.1fx less CPU per event (%s)", median(clist), range(clist)
    printf "\n"
  }
  END {
    printf "%-8s %-20s %12s %9s %13s %10s %16s\n", "size", "client", "events/s", "MB/s", "CPU us/event", "RSS MiB", "emulator us/ev"
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, p, SUBSEP)
      printf "%-8s %-20s %12.0f %9.1f %13.3f %10.1f %16.3f\n", label(p[1]), p[2], median(rate[k]), median(mbs[k]), median(us[k]), median(rss[k]), median(ecpu[k])
    }
    print ""
    print "eventhubs / SDK, per round:"
    split("100 65536", S, " ")
    for (j = 1; j <= 2; j++) {
      s = S[j]
      for (x = 1; x <= 2; x++) {
        kk = x == 1 ? 1 : K
        a = s SUBSEP "eventhubs-send-x" kk; b = s SUBSEP "sdk-send-x" kk
        size_of[a] = s
        ratio(a, b, "send, " kk " in flight")
      }
      a = s SUBSEP "eventhubs-receive"; b = s SUBSEP "sdk-receive"
      size_of[a] = s
      ratio(a, b, "receive")
    }
  }
' "$log"
