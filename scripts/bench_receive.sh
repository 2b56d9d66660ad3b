#!/usr/bin/env bash
# Receive speed: our consumer, the EventProcessor and the official Python consumer side by side,
# each reading 100 B events of partition "0" of a release emulator from the earliest position.
#
#     scripts/bench_receive.sh [ROUNDS]
#
# The emulator (`ehub emulator --no-auth`) is filled once with BENCH_EVENTS (default 2 000 000)
# events of 100 B by the low-level sender of examples/bench_send.rs. Then per round, each in its
# own process (examples/bench_recv.rs, scripts/bench_receive.py):
#   rust-consumer   EventHubConsumer::receive(300, 5 s) in a loop, default prefetch (300), on
#                   the thread that runs block_on (as `#[tokio::main]` code reading in main)
#   rust-consumer-task  the same loop in a task of the runtime (as a service's reader task)
#   rust-stream     EventHubConsumer::stream(), one event at a time
#   rust-processor  EventProcessor (greedy, in-memory store), 300 events per process_events and
#                   a background checkpoint per batch
#   python          azure-eventhub's EventHubConsumerClient.receive_batch (prefetch 300, 300 per
#                   callback), BENCH_PY_EVENTS (default 100 000) events: it is far slower
# Each prints events/s (first event to the N-th), client CPU µs per event, peak RSS; the script
# adds the emulator's CPU seconds over the run. Rows are medians over the rounds, ratios are
# computed within each round (median and range).
#
# With BENCH_BASE=DIR (a target/release directory of another checkout holding `ehub` and
# `examples/bench_recv`, e.g. main's) a second emulator from DIR is filled the same way and the
# rust rows also run with DIR's binaries against it ("base-" rows), alternating which side goes
# first from round to round: the before/after comparison in one run.
#
# Environment: EVENTHUBS_PYTHON_CLIENT (default /var/lib/eventhubs-ci/pyclient/bin/python when
# it exists; python rows are skipped without it), BENCH_EVENTS, BENCH_PY_EVENTS, BENCH_BASE,
# BENCH_RECEIVE_LOG (raw lines, default $CARGO_TARGET_DIR/bench_receive.log).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh

rounds=${1:-3}
events=${BENCH_EVENTS:-2000000}
py_events=${BENCH_PY_EVENTS:-100000}
base=${BENCH_BASE:-}
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
log=${BENCH_RECEIVE_LOG:-$target/bench_receive.log}
: >"$log"

find_python_client

echo "building ehub and examples/bench_send, bench_recv (release)..." >&2
cargo build --release --features cli --bin ehub --example bench_send --example bench_recv >>"$log" 2>&1
dirs=("$target/release")
names=(new)
if [[ -n $base ]]; then
  for f in ehub examples/bench_recv; do
    [[ -x $base/$f ]] || { echo "BENCH_BASE=$base has no $f" >&2; exit 1; }
  done
  dirs+=("$base")
  names+=(base)
fi
send=$target/release/examples/bench_send

declare -a emu_pids ports
cleanup() {
  for p in "${emu_pids[@]:-}"; do
    [[ -n $p ]] && kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
for i in "${!dirs[@]}"; do
  start_emulator "${dirs[$i]}/ehub"
  emu_pids[i]=$EMU_PID
  port=$EMU_PORT
  ports[i]=$port
  echo "${names[$i]} emulator on port $port: filling partition 0 with $events events of 100 B" >&2
  "$send" lowlevel --port "$port" --size 100 --count "$events" --inflight 4 >>"$log" 2>&1
done

# run ROUND INDEX PREFIX COMMAND...: one receiver against emulator INDEX; appends "ROW round
# load emulator-cpu key=value..." to the log, the impl prefixed with PREFIX.
run() {
  local round=$1 i=$2 prefix=$3
  shift 3
  local l c0 c1 out
  l=$(cut -d' ' -f1 /proc/loadavg)
  c0=$(emu_cpu "${emu_pids[$i]}")
  if ! out=$("$@" 2>>"$log" | grep '^RESULT '); then
    echo "failed: $* (see $log)" >&2
    exit 1
  fi
  c1=$(emu_cpu "${emu_pids[$i]}")
  out=${out#RESULT }
  out=${out/impl=/impl=$prefix}
  echo "ROW $round $l $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }') $out" >>"$log"
  echo "  $out (load $l)" >&2
}

load_before=$(load)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for r in $(seq "$rounds"); do
  echo "round $r/$rounds (load $(load))" >&2
  order=("${!dirs[@]}")
  if (( r % 2 == 0 && ${#dirs[@]} > 1 )); then order=(1 0); fi
  for i in "${order[@]}"; do
    prefix=
    [[ ${names[$i]} == base ]] && prefix=base-
    c=$(bench_conn "${ports[$i]}")
    for mode in consumer consumer-task stream processor; do
      run "$r" "$i" "$prefix" "${dirs[$i]}/examples/bench_recv" "$mode" --conn "$c" --count "$events"
    done
  done
  if [[ -n $python ]]; then
    run "$r" 0 "" "$python" scripts/bench_receive.py --conn "$(bench_conn "${ports[0]}")" --count "$py_events"
  fi
done
load_after=$(load)

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
echo
echo "eventhubs receive benchmark, $started"
echo "machine: $(uname -m), $(nproc) CPUs, ${cpu:-unknown CPU}; rustc $(rustc --version | cut -d' ' -f2)"
if [[ -n $python ]]; then
  echo "python client: azure-eventhub $pyversion ($python)"
else
  echo "python client: skipped (see the message above)"
fi
echo "load average (1/5/15 min): before $load_before, after $load_after"
echo "events: $events (python $py_events) of 100 B; rounds: $rounds; raw: $log"
echo

awk "$BENCH_AWK_STATS"'
  $1 == "ROW" {
    round = $2; load = $3; emu = $4
    for (i = 5; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    k = f["impl"]
    if (!(k in rate)) order[++n] = k
    r = f["events"] / f["secs"]
    rate[k] = rate[k] " " r
    us[k] = us[k] " " (f["cpu"] / f["events"] * 1e6)
    rss[k] = rss[k] " " (f["maxrss_kib"] / 1024)
    ecpu[k] = ecpu[k] " " (emu / f["events"] * 1e6)
    loads[k] = loads[k] " " load
    per[round, k] = r
    perus[round, k] = f["cpu"] / f["events"] * 1e6
    rounds[round] = 1
  }
  function ratios(num, den, what, target,   rr, list, m) {
    list = ""
    for (rr in rounds) if ((rr, num) in per && (rr, den) in per && per[rr, den] > 0) list = list " " per[rr, num] / per[rr, den]
    if (list == "") return
    m = median(list)
    printf "  %-44s %7.2fx (per round %s)%s\n", what, m, range(list), (target == "" ? "" : (m >= target ? "  target >= " target "x: MET" : "  target >= " target "x: NOT MET"))
  }
  function cpuratio(num, den, what,   rr, list) {
    list = ""
    for (rr in rounds) if ((rr, num) in perus && (rr, den) in perus && perus[rr, den] > 0) list = list " " perus[rr, num] / perus[rr, den]
    if (list == "") return
    printf "  %-44s %7.1fx (per round %s)\n", what, median(list), range(list)
  }
  END {
    if (!n) { print "no results (see the log)"; exit 1 }
    printf "%-20s %10s %10s %8s %11s %5s\n", "client", "events/s", "CPU us/ev", "RSS MiB", "emu us/ev", "load"
    for (i = 1; i <= n; i++) {
      k = order[i]
      printf "%-20s %10.0f %10.3f %8.1f %11.3f %5s\n", k, median(rate[k]), median(us[k]), median(rss[k]), median(ecpu[k]), median(loads[k])
    }
    print ""
    m = median(rate["rust-consumer"])
    printf "one consumer, 100 B, default prefetch: %.0f events/s (median)  target >= 1000000: %s\n", m, (m >= 1000000 ? "MET" : "NOT MET")
    m = median(rate["rust-consumer-task"])
    printf "the same in a runtime task (rust-consumer-task): %.0f events/s (median)  target >= 1000000: %s\n", m, (m >= 1000000 ? "MET" : "NOT MET")
    print "ratios (events/s, within each round):"
    ratios("rust-processor", "rust-consumer", "rust-processor / rust-consumer", 0.9)
    ratios("rust-processor", "rust-consumer-task", "rust-processor / rust-consumer-task", 0.9)
    ratios("rust-consumer-task", "base-rust-consumer-task", "rust-consumer-task / base-rust-consumer-task", "")
    ratios("rust-stream", "rust-consumer", "rust-stream / rust-consumer", "")
    ratios("rust-consumer", "python", "rust-consumer / python", "")
    ratios("rust-consumer", "base-rust-consumer", "rust-consumer / base-rust-consumer", "")
    ratios("rust-stream", "base-rust-stream", "rust-stream / base-rust-stream", "")
    ratios("rust-processor", "base-rust-processor", "rust-processor / base-rust-processor", "")
    ratios("base-rust-processor", "base-rust-consumer", "base-rust-processor / base-rust-consumer", "")
    print "client CPU per event:"
    cpuratio("python", "rust-consumer", "python / rust-consumer")
    cpuratio("base-rust-consumer", "rust-consumer", "base-rust-consumer / rust-consumer")
  }' "$log"
