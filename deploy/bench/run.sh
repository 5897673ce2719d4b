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
#   BENCH_ROUTES       route counts, comma-separated, e.g. 10,10000,100000: measure
#                      growth with routes instead of rules (see below) [unset]
#
#   BENCH_ROUTES=10,10000,100000 bash deploy/bench/run.sh
#
# With BENCH_ROUTES, each count gets a config of that many routes (every tenth a
# wildcard; among them app.example and *.wild.example, routed to the origin) and
# a 1,000-rule list, and the table gives requests/s and latency for an exact
# route (app.example), a wildcard route (a.wild.example) and no route, then the
# exact route again while the config is changed and reloaded (SIGHUP) a second
# after each reload applied. The last column gives the reload time (SIGHUP to
# the new config's hash on the admin /blocklist; median of 3 without load, and
# under load) and the process RSS.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
duration="${BENCH_DURATION:-10s}"
conns="${BENCH_CONNECTIONS:-50}"
http_port="${BENCH_HTTP_PORT:-18080}"
admin_port="${BENCH_ADMIN_PORT:-19090}"
origin_port="${BENCH_ORIGIN_PORT:-18081}"
for p in "$http_port" "$admin_port" "$origin_port"; do
  [[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || { echo "bad port $p in BENCH_*_PORT"; exit 2; }
done
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

run_wrk() { # name host: one wrk run, printed as a table row
  local out rps p50 p99 errs
  out=$(wrk -t2 -c"$conns" -d"$duration" --latency -H "Host: $2" "http://127.0.0.1:$http_port/")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | tr '\n' ' ' || true)
  printf '%-16s %12s %10s %10s  %s' "$1" "$rps" "$p50" "$p99" "$errs"
}

if [[ -n "${BENCH_ROUTES:-}" ]]; then
  make_list 1000
  # Config of N routes; VERSION changes one filler route's origin, so that
  # two versions differ and a reload rebuilds that route.
  make_routes() {
    sed -n '1,/^routes:/p' "$work/edgeblock.yaml" | sed 's/^  file: blocklist.txt/&\n  watch: false/'
    awk -v n="$1" -v v="$2" -v o="http://127.0.0.1:${origin_port}" 'BEGIN {
      print "  - host: app.example\n    origins: [\"" o "\"]"
      print "  - host: \"*.wild.example\"\n    origins: [\"" o "\"]"
      for (i = 2; i < n; i++) {
        port = (i == 2) ? 60001 + v : 1 + i % 60000
        if (i % 10 == 9) printf "  - host: \"*.wild%d.example\"\n    origins: [\"http://127.0.0.1:%d\"]\n", i, port
        else printf "  - host: site%d.example\n    origins: [\"http://127.0.0.1:%d\"]\n", i, port
      }
    }'
    sed -n '/^log:/,$p' "$work/edgeblock.yaml"
  }
  config_sha() { curl -s "http://127.0.0.1:$admin_port/blocklist" | tr -d ' \n' | grep -o '"config":{[^}]*' | grep -o '"sha256":"[0-9a-f]*"' | cut -d'"' -f4; }
  reload_to() { # file: swap it in, SIGHUP, wait for its hash; prints seconds
    local want start
    want=$(sha256sum "$1" | cut -d' ' -f1)
    cp "$1" "$work/routes.yaml.tmp" && mv "$work/routes.yaml.tmp" "$work/routes.yaml"
    start=$(date +%s.%N)
    kill -HUP "$eb"
    for _ in $(seq 3000); do [[ "$(config_sha)" == "$want" ]] && break; sleep 0.01; done
    [[ "$(config_sha)" == "$want" ]] || { echo "config $1 not applied within 30 s" >&2; exit 1; }
    echo "$(date +%s.%N) - $start" | bc -l
  }
  reload_other() { # reload the version not in effect
    if [[ "$(config_sha)" == "$(sha256sum < "$work/routes-0.yaml" | cut -d' ' -f1)" ]]; then
      reload_to "$work/routes-1.yaml"
    else
      reload_to "$work/routes-0.yaml"
    fi
  }
  printf '%-9s %-16s %12s %10s %10s  %s\n' routes case requests/s p50 p99 "(reload s, median; RSS)"
  IFS=, read -ra counts <<<"$BENCH_ROUTES"
  for n in "${counts[@]}"; do
    [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 2)) || { echo "bad route count $n in BENCH_ROUTES (at least 2)"; exit 2; }
    make_routes "$n" 0 > "$work/routes-0.yaml"
    make_routes "$n" 1 > "$work/routes-1.yaml"
    cp "$work/routes-0.yaml" "$work/routes.yaml"
    "$work/edgeblock" serve -config "$work/routes.yaml" -state-dir "$work/state" 2>"$work/log.txt" & pids+=($!)
    eb=$!
    wait_port "$http_port"
    for c in exact:app.example wildcard:a.wild.example none:nothing.example.net; do
      printf '%-9s ' "$n"; run_wrk "${c%%:*}" "${c#*:}"; echo
    done
    # The exact route again, reloading meanwhile (a second between reloads).
    ( sleep 0.5; while :; do reload_other; sleep 1; done ) > "$work/reloads.txt" & reloader=$!
    printf '%-9s ' "$n"; row=$(run_wrk exact+reloads app.example)
    kill "$reloader"; wait "$reloader" 2>/dev/null || true
    # Let a reload the loop started finish: the file's version in effect.
    for _ in $(seq 3000); do [[ "$(config_sha)" == "$(sha256sum < "$work/routes.yaml" | cut -d' ' -f1)" ]] && break; sleep 0.01; done
    # Reload times alone, without load.
    for _ in 1 2 3; do reload_other; done >> "$work/reloads-idle.txt"
    med=$(sort -n "$work/reloads-idle.txt" | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}')
    loaded=$(sort -n "$work/reloads.txt" | awk '{a[NR]=$1} END {if (NR) printf "%.3f under load (%d)", a[int((NR+1)/2)], NR; else print "none under load"}')
    rss=$(awk '/VmRSS/ {print $2, $3}' "/proc/$eb/status")
    echo "$row (reload $med s alone, $loaded; RSS $rss)"
    rm -f "$work/reloads-idle.txt" "$work/reloads.txt"
    kill "$eb"; wait "$eb" 2>/dev/null || true
    unset 'pids[-1]'
  done
  exit 0
fi

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
