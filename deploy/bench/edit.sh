#!/usr/bin/env bash
# File-mode emergency block, end to end: a real `edgeblock serve` edge on
# loopback watching a real blocklist file, and the real `edgeblock block`
# command adding one rule to it, at each list size in RULES. For each size it
# prints the command's wall time (it returns once the edge says the rule is in
# effect, or says why not) and block->page: from the command's start to the
# first block page (403) curl gets for the new name. p50 and p99 over RUNS
# edits (with fewer than 100 runs, p99 is the slowest). Then the edge's RSS and
# Go heap (admin /metrics) right after those edits and 3 s later, and the time of a block that
# changes a rule in the middle of the list and of one that changes nothing,
# and RUNS unblocks of rules in the middle of the list (command, and until
# the name is served again).
# The list is one rule a line, a tenth wildcards, a hundredth with attributes
# (99 bytes/rule at 1,000,000 rules with the default annotations).
#
#   bash deploy/bench/edit.sh
#   RULES="10 1000000" RUNS=20 bash deploy/bench/edit.sh
#
# Environment (defaults in brackets):
#   RULES             list sizes, space-separated [10 1000000]
#   RUNS              one-rule edits per size [20]
#   BENCH_HTTP_PORT   the edge's public HTTP port on 127.0.0.1 [18180]
#   BENCH_ADMIN_PORT  the edge's admin port on 127.0.0.1 [19190]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
sizes="${RULES:-10 1000000}"
runs="${RUNS:-20}"
http_port="${BENCH_HTTP_PORT:-18180}"
admin_port="${BENCH_ADMIN_PORT:-19190}"
for p in "$http_port" "$admin_port"; do
  port_free "$p" || { echo "127.0.0.1:$p is in use: set BENCH_HTTP_PORT or BENCH_ADMIN_PORT"; exit 1; }
done
command -v curl >/dev/null || { echo "curl is missing: apt-get install curl"; exit 1; }
work=$(mktemp -d)
edge=""
cleanup() { [ -n "$edge" ] && kill "$edge" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/edgeblock" ./cmd/edgeblock
cd "$work"
cat > edgeblock.yaml <<YAML
listen:
  http: 127.0.0.1:${http_port}
  admin: 127.0.0.1:${admin_port}
blocklist:
  file: blocklist.txt
routes:
  - host: app.example
    origins: ["http://127.0.0.1:9"]
YAML

now() { date +%s%N; }
ms() { echo "scale=1; $1 / 1000000" | bc; }
# pct P: the P-th percentile (nearest rank) of the numbers on stdin.
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; printf "%.0f", a[i]}'; }
status() { curl -s -o /dev/null -w '%{http_code}' -H "Host: $1" "http://127.0.0.1:${http_port}/" || true; }
metric() { curl -s "http://127.0.0.1:${admin_port}/metrics" | awk -v m="$1" '$1 == m {printf "%.0f", $2}'; }

for n in $sizes; do
  awk -v n="$n" 'BEGIN {
    print "# generated"
    for (i = 0; i < n; i++) {
      if (i % 100 == 0) printf "site%d.example reason=\"Abuse report %d\" policy=https://blog.example.com/policy-%d\n", i, i % 7, i % 5
      else if (i % 10 == 0) printf "*.pages%d.example\n", i
      else printf "site%d.example\n", i
    }
  }' > blocklist.txt
  rm -f blocklist.txt.history
  ./edgeblock serve -config edgeblock.yaml >edge.log 2>&1 & edge=$!
  for _ in $(seq 600); do [ "$(status site1.example)" = 403 ] && break; sleep 0.2; done
  [ "$(status site1.example)" = 403 ] || { echo "edge not serving after 120s"; tail edge.log; exit 1; }
  echo "== $n rules ($(du -h blocklist.txt | cut -f1)); edge RSS after load $(($(awk '/VmRSS/ {print $2}' /proc/$edge/status) / 1024)) MiB, heap in use $(($(metric go_memstats_heap_inuse_bytes) / 1048576)) MiB"
  : > cmd.txt; : > page.txt
  for i in $(seq 1 "$runs"); do
    name="new$i-$n.example"
    t0=$(now)
    ./edgeblock block -config edgeblock.yaml "$name" -comment bench >/dev/null
    t1=$(now)
    until [ "$(status "$name")" = 403 ]; do
      [ $(( $(now) - t0 )) -lt 30000000000 ] || { echo "$name not blocked after 30s"; exit 1; }
    done
    t2=$(now)
    echo $((t1 - t0)) >> cmd.txt; echo $((t2 - t0)) >> page.txt
  done
  echo "block NEW: command p50 $(ms "$(pct 50 < cmd.txt)") ms p99 $(ms "$(pct 99 < cmd.txt)") ms; block->page p50 $(ms "$(pct 50 < page.txt)") ms p99 $(ms "$(pct 99 < page.txt)") ms ($runs edits)"
  echo "edge right after $runs edits: RSS $(($(awk '/VmRSS/ {print $2}' /proc/$edge/status) / 1024)) MiB, heap in use $(($(metric go_memstats_heap_inuse_bytes) / 1048576)) MiB"
  # The edge returns the free heap to the OS a second after the applies pause.
  sleep 3
  echo "edge 3 s later: RSS $(($(awk '/VmRSS/ {print $2}' /proc/$edge/status) / 1024)) MiB, heap in use $(($(metric go_memstats_heap_inuse_bytes) / 1048576)) MiB"
  mid=$((n / 2 + 1)); while [ $((mid % 10)) = 0 ] || [ $((mid % 100)) = 0 ]; do mid=$((mid + 1)); done
  t0=$(now); ./edgeblock block -config edgeblock.yaml "site$mid.example" status=451 -comment bench >/dev/null; t1=$(now)
  echo "block EXISTING (changed mid-list): command $(ms $((t1 - t0))) ms"
  t0=$(now); ./edgeblock block -config edgeblock.yaml "site$mid.example" status=451 >/dev/null; t1=$(now)
  echo "block EXISTING (same): command $(ms $((t1 - t0))) ms"
  # unblock: the rule's line goes from mid-list and its record is appended
  # (two changed places); unblock->page: until the name is no longer blocked.
  : > cmd.txt; : > page.txt
  for i in $(seq 1 "$runs"); do
    k=$((n / 3 + 7 * i)); while [ $((k % 10)) = 0 ]; do k=$((k + 1)); done
    [ "$k" -lt "$n" ] || k=$((i % n + 1))
    [ "$(status "site$k.example")" = 403 ] || continue
    t0=$(now)
    ./edgeblock unblock -config edgeblock.yaml "site$k.example" -comment bench >/dev/null
    t1=$(now)
    until [ "$(status "site$k.example")" != 403 ]; do
      [ $(( $(now) - t0 )) -lt 30000000000 ] || { echo "site$k.example still blocked after 30s"; exit 1; }
    done
    t2=$(now)
    echo $((t1 - t0)) >> cmd.txt; echo $((t2 - t0)) >> page.txt
  done
  [ -s cmd.txt ] && echo "unblock (mid-list): command p50 $(ms "$(pct 50 < cmd.txt)") ms p99 $(ms "$(pct 99 < cmd.txt)") ms; unblock->served p50 $(ms "$(pct 50 < page.txt)") ms p99 $(ms "$(pct 99 < page.txt)") ms ($(wc -l < cmd.txt) unblocks)"
  kill "$edge"; wait "$edge" 2>/dev/null || true; edge=""
done
