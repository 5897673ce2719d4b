#!/usr/bin/env bash
# HTTP/3 against HTTP/2 on one edgeblock (nginx's HTTP/3 is not in Debian's
# nginx): deploy/bench/h3load, one Go load generator on quic-go's client and
# on Go's HTTP/2 client, drives the proxied host and the blocked host over
# each protocol, the runs interleaved; each line gives requests/s, p50/p99
# and edgeblock's CPU time per request (/proc/PID/stat), the figure that
# the machine's other load disturbs least. Then the handshake flood: for
# each rate in BENCH_FLOOD_RATES, that many new QUIC connections per second
# (full handshake and one request each; then first flights only, the
# handshakes abandoned) with edgeblock's CPU share, memory, the Retries
# it sent (above 200 new connections a second every further
# one must prove its address first), the attempts it refused and the
# peak of handshakes under way (limits.quic_pending_handshakes).
#
#   bash deploy/bench/h3.sh
#   BENCH_DURATION=3s BENCH_ROUNDS=1 BENCH_FLOOD_RATES=100 bash deploy/bench/h3.sh
#
# Environment (defaults in brackets):
#   BENCH_DURATION      duration of each run [5s]
#   BENCH_ROUNDS        rounds per case [3]
#   BENCH_H3_CLIENTS    connections [16]
#   BENCH_H3_STREAMS    requests in flight per connection [8]
#   BENCH_FLOOD_RATES   new QUIC connections per second, one run each ["100 400 1000"]
#   BENCH_ORIGIN_PORT   the origin [18081]
#   BENCH_EB_HTTPS_PORT edgeblock's HTTPS (TCP) and QUIC (UDP) port [18443]
#   BENCH_EB_ADMIN_PORT edgeblock's admin listener [19090]
#   BENCH_KEEP          a directory to copy edgeblock's log into
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
duration="${BENCH_DURATION:-5s}" rounds="${BENCH_ROUNDS:-3}"
h3c="${BENCH_H3_CLIENTS:-16}" h3m="${BENCH_H3_STREAMS:-8}"
rates="${BENCH_FLOOD_RATES:-100 400 1000}"
origin_port="${BENCH_ORIGIN_PORT:-18081}" eb_https="${BENCH_EB_HTTPS_PORT:-18443}" eb_admin="${BENCH_EB_ADMIN_PORT:-19090}"
for p in "$origin_port" "$eb_https" "$eb_admin"; do
  [[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || { echo "bad port $p in BENCH_*_PORT"; exit 2; }
  port_free "$p" || { echo "127.0.0.1:$p is in use: set the BENCH_*_PORT variables"; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n "${BENCH_KEEP:-}" ]]; then mkdir -p "$BENCH_KEEP" && cp "$work"/*.log "$BENCH_KEEP"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/edgeblock" ./cmd/edgeblock
go build -o "$work/origin" ./deploy/bench/origin
go build -o "$work/h3load" ./deploy/bench/h3load
"$work/origin" -addr "127.0.0.1:$origin_port" & pids+=($!)
{ echo "blocked.bench reason=\"Benchmark block\" policy=https://blog.example.com/why"
  seq 1 999 | sed 's/^/site/; s/$/.example/'; } > "$work/blocklist.txt"
cat > "$work/edgeblock.yaml" <<YAML
listen:
  https: 127.0.0.1:${eb_https}
  quic: 127.0.0.1:${eb_https}
  admin: 127.0.0.1:${eb_admin}
tls:
  mode: internal
  storage: ${work}/certs
blocklist:
  file: blocklist.txt
  policy: https://example.com/abuse-policy
  blocked_by: https://edge.example.com
routes:
  - host: proxied.bench
    origins: ["http://127.0.0.1:${origin_port}"]
limits:                      # the load generator is one client on loopback: lift the per-client caps
  max_conns_per_client: 1000000
  max_requests_per_client: 1000000
YAML
"$work/edgeblock" serve -config "$work/edgeblock.yaml" -state-dir "$work/state" 2>"$work/edgeblock.log" & pids+=($!)
eb_pid=$!
wait_port "$eb_https"
for _ in $(seq 200); do grep -q '"msg":"HTTP/3 listener"' "$work/edgeblock.log" && break; sleep 0.1; done
grep -o '"msg":"HTTP/3 listener".*' "$work/edgeblock.log" || { echo "edgeblock logged no HTTP/3 listener line"; cat "$work/edgeblock.log"; exit 1; }

run() { # PROTO HOST DURATION
  "$work/h3load" -proto "$1" -addr "127.0.0.1:$eb_https" -host "$2" -c "$h3c" -m "$h3m" -d "$3" -pid "$eb_pid"
}
for h in proxied.bench blocked.bench; do for p in h2 h3; do run "$p" "$h" 1s >/dev/null; done; done # warm up
for h in proxied.bench blocked.bench; do
  for ((i = 0; i < rounds; i++)); do
    for p in h2 h3; do
      [[ $((i % 2)) == 1 ]] && { [[ $p == h2 ]] && p=h3 || p=h2; }
      echo "$h $(run "$p" "$h" "$duration")"
    done
  done
done
for r in $rates; do
  for mode in -abandon=false -abandon=true; do
    "$work/h3load" -flood "$r" $mode -addr "127.0.0.1:$eb_https" -host blocked.bench -d "$duration" -pid "$eb_pid" \
      -metrics "http://127.0.0.1:$eb_admin/metrics"
  done
done
echo "edgeblock RSS $(awk '/VmRSS/ {print $2, $3}' "/proc/$eb_pid/status"), peak $(awk '/VmHWM/ {print $2, $3}' "/proc/$eb_pid/status"); $(uptime | sed 's/.*load/load/')"
