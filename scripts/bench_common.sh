# Helpers shared by the bench scripts (sourced, not run): the emulator they measure against,
# its CPU, the machine's load, the official Python client, and the awk statistics.

# Clock ticks per second, for the CPU times in /proc/PID/stat.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
export CLK_TCK

# The 1, 5 and 15 minute load averages.
load() { cut -d' ' -f1-3 /proc/loadavg; }

# emu_cpu PID: user + system CPU seconds PID has used so far.
emu_cpu() { awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"; }

# bench_conn PORT: the connection string of an `ehub emulator` on PORT.
bench_conn() {
  echo "Endpoint=sb://localhost:$1;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
}

# start_emulator EHUB: starts `EHUB emulator --port 0 --no-auth` in the background and sets
# EMU_PID and EMU_PORT; exits the script with the emulator's output if it does not listen
# within 10 s. The caller kills EMU_PID when done.
start_emulator() {
  local out
  out=$(mktemp)
  "$1" emulator --port 0 --no-auth >"$out" 2>&1 &
  EMU_PID=$!
  EMU_PORT=
  for _ in $(seq 100); do
    EMU_PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$out")
    [[ -n $EMU_PORT ]] && break
    sleep 0.1
  done
  if [[ -z $EMU_PORT ]]; then
    echo "the emulator ($1) did not start:" >&2
    cat "$out" >&2
    rm -f "$out"
    exit 1
  fi
  rm -f "$out"
}

# find_python_client: sets python (the interpreter with azure-eventhub, empty when there is
# none: EVENTHUBS_PYTHON_CLIENT, else the one .ci/run installs) and pyversion.
find_python_client() {
  python=${EVENTHUBS_PYTHON_CLIENT:-}
  if [[ -z $python && -x /var/lib/eventhubs-ci/pyclient/bin/python ]]; then
    python=/var/lib/eventhubs-ci/pyclient/bin/python
  fi
  pyversion=
  if [[ -z $python ]]; then
    echo "python rows skipped: no Python client (set EVENTHUBS_PYTHON_CLIENT to a python with azure-eventhub)" >&2
  elif ! pyversion=$("$python" -c 'import azure.eventhub as e; print(e.__version__)' 2>/dev/null); then
    echo "python rows skipped: $python cannot import azure.eventhub" >&2
    python=
  fi
}

# awk functions for a summary program: median and range ("lo-hi") of a space-separated list.
# Use as: awk "$BENCH_AWK_STATS"' $1 == "ROW" { ... }' FILE
BENCH_AWK_STATS='
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function range(list,   a, n, i, lo, hi) {
    n = split(list, a, " ")
    lo = hi = a[1]
    for (i = 2; i <= n; i++) { if (a[i] + 0 < lo + 0) lo = a[i]; if (a[i] + 0 > hi + 0) hi = a[i] }
    return sprintf("%.2f-%.2f", lo, hi)
  }
'
