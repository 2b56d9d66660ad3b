#!/usr/bin/env bash
# The reliability soak: continuous send + receive through a fault proxy that cuts every
# connection every 1-5 s, the emulator (--data-dir on) killed with SIGKILL every 3 minutes and
# restarted, then a full read-back. Reports sent / acknowledged / stored / read / lost /
# duplicates and RSS over time (tests/soak.rs has the details). Not part of CI.
#
#     scripts/soak.sh [MINUTES]            # default 30
#
# Environment: SOAK_KILL_EVERY_S (180), SOAK_CUT_MS (1000-5000), SOAK_RATE (2000 events/s),
# SOAK_REPORT (a file for the final JSON line).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export SOAK_MINUTES=${1:-${SOAK_MINUTES:-30}}
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
exec cargo test --release --quiet --test soak -- --ignored --nocapture --test-threads 1
