#!/usr/bin/env bash
# The wrk benchmark rig: edgeblock and an origin on loopback, and wrk against the
# block page, a proxied site and an unknown host, side by side in one run, with a
# 1,000-rule and a 1,000,000-rule blocklist. Loopback only; every run is bounded.
#
#   bash deploy/bench/run.sh                  # 10s per case
#   BENCH_DURATION=2s bash deploy/bench/run.sh
#
# Environment (defaults in brackets):
#   BENCH_DURATION     wrk duration per case [10s]
#   BENCH_CONNECTIONS  wrk connections [50]
#   BENCH_ACCESS_LOG   edgeblock's log.access [false]
#   BENCH_HTTP_PORT    edgeblock's public HTTP port on 127.0.0.1 [18080]
#   BENCH_ADMIN_PORT   edgeblock's admin port on 127.0.0.1 [19090]
#   BENCH_ORIGIN_PORT  the origin's port on 127.0.0.1 [18081]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration="${BENCH_DURATION:-10s}"
conns="${BENCH_CONNECTIONS:-50}"
http_port="${BENCH_HTTP_PORT:-18080}"
admin_port="${BENCH_ADMIN_PORT:-19090}"
origin_port="${BENCH_ORIGIN_PORT:-18081}"
for p in "$http_port" "$admin_port" "$origin_port"; do
  [[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || { echo "bad port $p in BENCH_*_PORT"; exit 2; }
done
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$http_port" "$admin_port" "$origin_port"; do
  port_free "$p" || { echo "127.0.0.1:$p is in use: set BENCH_HTTP_PORT, BENCH_ADMIN_PORT or BENCH_ORIGIN_PORT"; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
go build -o "$work/edgeblock" ./cmd/edgeblock
go build -o "$work/origin" ./deploy/bench/origin
"$work/origin" -addr "127.0.0.1:$origin_port" & pids+=($!)

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 not up"; exit 1; }

# Blocklist of N rules: hot.example (the popular blocked site) plus filler.
make_list() {
  { echo 'hot.example reason="Benchmark block" policy=https://blog.example.com/why'
    seq 1 $(($1 - 1)) | sed 's/^/site/; s/$/.example/'; } > "$work/blocklist.txt"
}

cat > "$work/edgeblock.yaml" <<YAML
listen:
  http: 127.0.0.1:${http_port}
  admin: 127.0.0.1:${admin_port}
blocklist:
  file: blocklist.txt
  policy: https://example.com/abuse-policy
  blocked_by: https://edge.example.com
routes:
  - host: app.example
    origins: ["http://127.0.0.1:${origin_port}"]
log:
  access: ${BENCH_ACCESS_LOG:-false}
limits:                      # wrk is one client on loopback: lift the per-client caps
  max_conns_per_client: 1000000
  max_requests_per_client: 1000000
YAML

printf '%-9s %-12s %12s %10s %10s\n' rules case requests/s p50 p99
for rules in 1000 1000000; do
  make_list "$rules"
  "$work/edgeblock" serve -config "$work/edgeblock.yaml" -state-dir "$work/state" 2>"$work/log.txt" & pids+=($!)
  wait_port "$http_port"
  for c in blocked:hot.example proxied:app.example unknown:nothing.example.net; do
    name=${c%%:*} host=${c#*:}
    out=$(wrk -t2 -c"$conns" -d"$duration" --latency -H "Host: $host" "http://127.0.0.1:$http_port/")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | tr '\n' ' ' || true)
    printf '%-9s %-12s %12s %10s %10s  %s\n' "$rules" "$name" "$rps" "$p50" "$p99" "$errs"
  done
  rss=$(awk '/VmRSS/ {print $2, $3}' "/proc/${pids[-1]}/status")
  echo "          edgeblock RSS with $rules rules: $rss"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]'
done
