#!/usr/bin/env bash
# The flood rig: 10,000 keep-alive connections from 100 loopback source
# addresses (127.1.0.1-100) ask edgeblock for one blocked name in a loop,
# over HTTP/1.1 and then HTTP/2, while one visitor of a proxied name
# measures its latency (deploy/bench/flood): first paced at BENCH_RATE
# requests/s in all, then as fast as they can. edgeblock runs with its
# default limits (per-client caps on) and its default access log.
# Prints, per protocol, the flood's requests/s and p99, the visitor's p99
# idle and during the flood, and edgeblock's peak RSS.
#
#   bash deploy/bench/flood.sh
#   BENCH_CONNS=2000 BENCH_DURATION=5s bash deploy/bench/flood.sh
#
# Environment (defaults in brackets):
#   BENCH_CONNS         flood connections [10000]
#   BENCH_SOURCES       source addresses they are spread over [100]
#   BENCH_DURATION      duration of each flood [10s]
#   BENCH_RATE          requests/s of the paced flood, over all connections [2000]
#   BENCH_PROTOS        h1 (plain HTTP/1.1), h1tls, h2 [h1 h2]
#   BENCH_BLOCKED_HOST  the flooded name, which must resolve to loopback [$(hostname)]
#   BENCH_ORIGIN_PORT, BENCH_EB_HTTP_PORT, BENCH_EB_HTTPS_PORT, BENCH_EB_ADMIN_PORT [18081, 18080, 18443, 19090]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
conns="${BENCH_CONNS:-10000}" sources="${BENCH_SOURCES:-100}" d="${BENCH_DURATION:-10s}" rate="${BENCH_RATE:-2000}"
protos="${BENCH_PROTOS:-h1 h2}"
blocked="${BENCH_BLOCKED_HOST:-$(hostname)}"
origin_port="${BENCH_ORIGIN_PORT:-18081}" eb_http="${BENCH_EB_HTTP_PORT:-18080}" eb_https="${BENCH_EB_HTTPS_PORT:-18443}"
eb_admin="${BENCH_EB_ADMIN_PORT:-19090}"
for p in "$origin_port" "$eb_http" "$eb_https" "$eb_admin"; do
  [[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || { echo "bad port $p in BENCH_*_PORT"; exit 2; }
  port_free "$p" || { echo "127.0.0.1:$p is in use: set the BENCH_*_PORT variables"; exit 1; }
done
[[ "$(getent hosts "$blocked" | awk '{print $1; exit}')" == 127.* && $blocked != localhost ]] ||
  { echo "$blocked must resolve to 127.0.0.1 and not be localhost: set BENCH_BLOCKED_HOST"; exit 1; }
need=$((conns + 1000))
(($(ulimit -n) >= need)) || ulimit -n "$need" 2>/dev/null || { echo "ulimit -n is $(ulimit -n): $need descriptors needed"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/edgeblock" ./cmd/edgeblock
go build -o "$work/origin" ./deploy/bench/origin
go build -o "$work/flood" ./deploy/bench/flood
"$work/origin" -addr "127.0.0.1:$origin_port" & pids+=($!)
echo "$blocked reason=\"Benchmark block\" policy=https://blog.example.com/why" > "$work/blocklist.txt"
cat > "$work/edgeblock.yaml" <<YAML
listen:
  http: 127.0.0.1:${eb_http}
  https: 127.0.0.1:${eb_https}
  admin: 127.0.0.1:${eb_admin}
tls:
  mode: internal
  storage: ${work}/certs
  redirect_http: false
blocklist:
  file: blocklist.txt
routes:
  - host: localhost
    origins: ["http://127.0.0.1:${origin_port}"]
YAML
"$work/edgeblock" serve -config "$work/edgeblock.yaml" -state-dir off 2>"$work/edgeblock.log" & pids+=($!)
eb_pid=$!
wait_port "$eb_https"
fetch_first "$work/edgeblock.log" -o /dev/null "https://$blocked:$eb_https/" # the certificates, before the flood
fetch_first "$work/edgeblock.log" -o /dev/null "https://localhost:$eb_https/"
echo "edgeblock RSS at start: $(awk '/VmRSS/ {print $2, $3}' "/proc/$eb_pid/status"); $(uptime | sed 's/.*load/load/')"
for p in $protos; do
  case $p in
    h1) args=(-addr "127.0.0.1:$eb_http");;
    h1tls) args=(-addr "127.0.0.1:$eb_https" -tls);;
    h2) args=(-addr "127.0.0.1:$eb_https" -tls -h2);;
    *) echo "BENCH_PROTOS: $p: want h1, h1tls or h2"; exit 1;;
  esac
  echo "== $p"
  "$work/flood" "${args[@]}" -name "$blocked" -visit localhost -conns "$conns" -sources "$sources" -d "$d" -rate "$rate" -pid "$eb_pid"
done
echo "refused by the per-client caps (connections, requests): $(curl -s "http://127.0.0.1:$eb_admin/metrics" |
  awk '/^edgeblock_(connections|requests)_refused_total/ {printf "%s ", $0}')"
echo "$(uptime | sed 's/.*load/load/')"
