#!/usr/bin/env bash
# The exactly-once soak at full size: 1 000 000 events of 100 B to 4 partitions through the
# fault proxy, idempotent and then plain (which prints its duplicate count).
# Usage: scripts/idempotent_soak.sh [events]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
IDEMPOTENT_SOAK_EVENTS="${1:-1000000}" cargo test --release --test client_idempotent_faults -- --nocapture
