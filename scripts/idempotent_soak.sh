#!/usr/bin/env bash
# The exactly-once soak at full size, in release: N events (default 1 000 000) of 100 B to 4
# partitions through the fault proxy (cuts every 1-3 s, mid-frame cuts, 5 s stalls), first
# with the idempotent producer (0 lost, 0 duplicates, in order, or it fails), then with the
# plain one (prints its duplicates), then N keyed events through the buffered producer with
# idempotent partitions (each once, key order kept). Each line reports faults, seconds and
# events/s. Not part of CI.
#
#     scripts/idempotent_soak.sh [EVENTS [SECONDS]]     # defaults 1000000 150
#
# Each run spreads its events over SECONDS (0: as fast as it goes): unpaced, a million events
# take a few seconds in release and meet only a handful of faults, while 150 s meets about 70
# of them with sends in flight. Three runs of 150 s plus read-backs take about 8 minutes
# (the release build apart: about 7 minutes from scratch on 2 busy cores).
#
# The runs go one after another (--test-threads 1): each holds its events in an in-process
# emulator, and on 2 cores two at once would only slow both. The release build comes first
# and is timed apart from the runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
events="${1:-1000000}"
seconds="${2:-150}"
case "$events$seconds" in
*[!0-9]*)
    echo "usage: $0 [EVENTS [SECONDS]]   (whole numbers, defaults 1000000 150)" >&2
    exit 2
    ;;
esac
if [ -z "$events" ] || [ -z "$seconds" ]; then
    echo "usage: $0 [EVENTS [SECONDS]]" >&2
    exit 2
fi
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"

start=$(date +%s)
cargo test --release --quiet --test client_idempotent_faults --no-run
built=$(date +%s)
echo "release build: $((built - start)) s"

IDEMPOTENT_SOAK_EVENTS="$events" BUFFERED_SOAK_EVENTS="$events" IDEMPOTENT_SOAK_SECONDS="$seconds" \
    cargo test --release --quiet --test client_idempotent_faults -- --nocapture --test-threads 1
echo "soak runs: $(($(date +%s) - built)) s for $events events each, paced over $seconds s"
