#!/usr/bin/env bash
# Starts (or stops) tinyproxy on 127.0.0.1 with Basic auth, for the HTTP proxy tests
# (tests/client_http_proxy.rs). Its config, log and pid file live in DIR.
#     scripts/tinyproxy.sh start DIR PORT USER PASSWORD
#     scripts/tinyproxy.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?directory for config, log and pid}
case "$cmd" in
  start)
    port=${3:?port} user=${4:?user} pass=${5:?password}
    mkdir -p "$dir"
    if [ -f "$dir/tinyproxy.pid" ] && kill -0 "$(cat "$dir/tinyproxy.pid")" 2>/dev/null; then
      echo "tinyproxy already running on 127.0.0.1:$port"
      exit 0
    fi
    # No ConnectPort line: CONNECT to any port (the emulator's are ephemeral).
    cat >"$dir/tinyproxy.conf" <<CONF
Port $port
Listen 127.0.0.1
Timeout 600
MaxClients 100
Allow 127.0.0.1
BasicAuth $user $pass
LogLevel Info
LogFile "$dir/tinyproxy.log"
PidFile "$dir/tinyproxy.pid"
CONF
    tinyproxy -c "$dir/tinyproxy.conf"
    for _ in $(seq 50); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "tinyproxy on 127.0.0.1:$port"
        exit 0
      fi
      sleep 0.1
    done
    echo "tinyproxy did not start; see $dir/tinyproxy.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$dir/tinyproxy.pid" ]; then
      kill "$(cat "$dir/tinyproxy.pid")" 2>/dev/null || true
      rm -f "$dir/tinyproxy.pid"
    fi
    ;;
  *)
    echo "usage: $0 start DIR PORT USER PASSWORD | stop DIR" >&2
    exit 2
    ;;
esac
