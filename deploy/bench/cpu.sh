#!/usr/bin/env bash
# CPU time edgeblock spends per proxied request, for two builds side by
# side: the working tree and a base commit (git archive of BENCH_BASE).
# Both run at once in front of one Go origin; runs alternate between them.
# On a shared machine, CPU per request moves far less than requests/s do,
# so it shows a lever that the throughput ratios of compare.sh bury in
# noise.
#
#   BENCH_BASE=main bash deploy/bench/cpu.sh
#   BENCH_COMPARE=clients bash deploy/bench/cpu.sh   # origins.client: stdlib vs edgeblock
#   BENCH_COMPARE=bare bash deploy/bench/cpu.sh      # block page: bare net/http vs edgeblock
#
# Prints one line per run: build, case, requests/s, and edgeblock's user +
# system CPU (from /proc/PID/stat) divided by the requests served.
#
# Environment (defaults in brackets):
#   BENCH_COMPARE       builds: the working tree against BENCH_BASE; clients:
#                       the working tree's build twice, origins.client stdlib
#                       (printed as "stdlib") against edgeblock ("edgeb"); bare:
#                       the bare net/http server of deploy/bench/bare ("bare",
#                       serving edgeblock's block page bytes) against the
#                       working tree's build ("tree") [builds]
#   BENCH_TARGET        proxied (localhost) or blocked (the block page, for
#                       BENCH_BLOCKED_HOST) [proxied; blocked with BENCH_COMPARE=bare]
#   BENCH_BLOCKED_HOST  the blocked host, which must resolve to loopback [$(hostname)]
#   BENCH_BASE          the commit to compare with [main]
#   BENCH_DURATION      seconds per run [5]
#   BENCH_ROUNDS        runs per build and case [3]
#   BENCH_CASES         h1 (wrk), h1tls (wrk), h2 (h2load, 16 × 8 streams) [h1 h1tls h2]
#   BENCH_PERF          a directory: the first round of each build and case runs under
#                       `perf record -e cpu-clock -g` of that build's process, saved as
#                       BUILD-CASE.data there (read with perf report -i) []
#   BENCH_ORIGIN_PORT   the origin [18081]
#   BENCH_EB_HTTP_PORT, BENCH_EB_HTTPS_PORT        the working tree's build [18080, 18443]
#   BENCH_NGINX_HTTP_PORT, BENCH_NGINX_HTTPS_PORT  the base build or the bare server (nginx is not run) [18180, 18543]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
base="${BENCH_BASE:-main}" d="${BENCH_DURATION:-5}" rounds="${BENCH_ROUNDS:-3}"
compare="${BENCH_COMPARE:-builds}"
case $compare in
  builds) lb_base=base lb_tree=tree client_base="" client_tree="";;
  clients) lb_base=stdlib lb_tree=edgeb client_base=stdlib client_tree=edgeblock;;
  bare) lb_base=bare lb_tree=tree client_base="" client_tree="";;
  *) echo "BENCH_COMPARE: $compare: want builds, clients or bare"; exit 1;;
esac
target="${BENCH_TARGET:-proxied}"
[[ $compare == bare && -z "${BENCH_TARGET:-}" ]] && target=blocked
blocked="${BENCH_BLOCKED_HOST:-$(hostname)}"
case $target in
  proxied) host=localhost;;
  blocked) host=$blocked;;
  *) echo "BENCH_TARGET: $target: want proxied or blocked"; exit 1;;
esac
d=${d%s}
cases="${BENCH_CASES:-h1 h1tls h2}"
origin_port="${BENCH_ORIGIN_PORT:-18081}"
new_http="${BENCH_EB_HTTP_PORT:-18080}" new_https="${BENCH_EB_HTTPS_PORT:-18443}"
old_http="${BENCH_NGINX_HTTP_PORT:-18180}" old_https="${BENCH_NGINX_HTTPS_PORT:-18543}"
for t in wrk h2load; do command -v $t >/dev/null || { echo "$t is missing"; exit 1; }; done
for h in localhost "$blocked"; do
  [[ "$(getent hosts "$h" | awk '{print $1; exit}')" == 127.* ]] || { echo "$h does not resolve to 127.0.0.1: set BENCH_BLOCKED_HOST"; exit 1; }
done
[[ $blocked != localhost ]] || { echo "BENCH_BLOCKED_HOST must not be localhost (the proxied host)"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/eb-tree" ./cmd/edgeblock
if [[ $compare == clients ]]; then
  cp "$work/eb-tree" "$work/eb-base"
elif [[ $compare == bare ]]; then
  go build -o "$work/bare" ./deploy/bench/bare
else
  mkdir -p "$work/base"
  git archive "$base" | tar -x -C "$work/base"
  (cd "$work/base" && go build -o "$work/eb-base" ./cmd/edgeblock)
fi
go build -o "$work/origin" ./deploy/bench/origin
"$work/origin" -addr "127.0.0.1:$origin_port" & pids+=($!)
echo "$blocked reason=\"Benchmark block\" policy=https://blog.example.com/why" > "$work/blocklist.txt"
# config NAME HTTP HTTPS [ORIGINS_CLIENT]
config() {
  local origins=""
  [[ -n "${4:-}" ]] && origins=$'origins:\n  client: '"$4"
  cat > "$work/$1.yaml" <<YAML
listen:
  http: 127.0.0.1:$2
  https: 127.0.0.1:$3
  admin: "off"
tls:
  mode: internal
  storage: $work/certs-$1
  redirect_http: false
blocklist:
  file: blocklist.txt
routes:
  - host: localhost
    origins: ["http://127.0.0.1:$origin_port"]
limits:
  max_conns_per_client: 1000000
  max_requests_per_client: 1000000
$origins
YAML
}
config base "$old_http" "$old_https" "$client_base"
config tree "$new_http" "$new_https" "$client_tree"
"$work/eb-tree" serve -config "$work/tree.yaml" -state-dir off 2>"$work/tree.log" & pids+=($!); pid_tree=$!
if [[ $compare == bare ]]; then
  # The bare server answers the blocked host with edgeblock's block page:
  # the same body and header lines.
  wait_port "$new_https"
  fetch_first "$work/tree.log" -D "$work/page.hdr" -o "$work/page.html" "https://$blocked:$new_https/"
  "$work/bare" -http "127.0.0.1:$old_http" -https "127.0.0.1:$old_https" -origin "http://127.0.0.1:$origin_port" \
    -blocked "$blocked" -names localhost -page "$work/page.html" -headers "$work/page.hdr" 2>"$work/base.log" & pids+=($!); pid_base=$!
else
  "$work/eb-base" serve -config "$work/base.yaml" -state-dir off 2>"$work/base.log" & pids+=($!); pid_base=$!
fi
wait_port "$old_https"; wait_port "$new_https"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# one BUILD PID CASE HTTP HTTPS
one() {
  local t0 t1 out rps n
  local perfpid=""
  if [[ -n "${BENCH_PERF:-}" && -n "${first:-}" ]]; then
    mkdir -p "$BENCH_PERF"
    perf record -q -e cpu-clock -F 4000 -g -p "$2" -o "$BENCH_PERF/$1-$3.data" 2>/dev/null & perfpid=$!
    sleep 0.2
  fi
  t0=$(ticks "$2")
  case $3 in
    h1|h1tls)
      local url="http://$host:$4/"
      [[ $3 == h1tls ]] && url="https://$host:$5/"
      out=$(wrk -t1 -c64 -d"${d}s" "$url")
      rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
      n=$(awk '/requests in/ {print $1}' <<<"$out");;
    h2)
      out=$(h2load -c16 -m8 -t1 -D"$d" "https://$host:$5/")
      rps=$(awk '/^finished in/ {gsub(",", "", $4); printf "%d", $4}' <<<"$out")
      n=$(awk '/^requests:/ {print $6}' <<<"$out");; # done (a 403 does not count as succeeded)
  esac
  t1=$(ticks "$2")
  if [[ -n $perfpid ]]; then kill -INT "$perfpid"; wait "$perfpid" || true; fi
  awk -v b="$1" -v c="$3" -v r="$rps" -v n="$n" -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%-5s %-6s req/s %7d  cpu µs/req %6.1f\n", b, c, r, n ? t * 1e6 / hz / n : 0 }'
}
if [[ $compare == clients ]]; then
  echo "working tree, origins.client stdlib vs edgeblock; $(uptime)"
elif [[ $compare == bare ]]; then
  echo "bare net/http vs working tree, $target; $(uptime)"
else
  echo "base $base ($(git rev-parse --short "$base")) vs working tree; $(uptime)"
fi
for c in $cases; do
  first=""
  d=1 one "$lb_base" "$pid_base" "$c" "$old_http" "$old_https" >/dev/null # warm-up
  d=1 one "$lb_tree" "$pid_tree" "$c" "$new_http" "$new_https" >/dev/null
  for ((i = 0; i < rounds; i++)); do
    first=""; [[ $i == 0 ]] && first=1
    first=$first one "$lb_base" "$pid_base" "$c" "$old_http" "$old_https"
    first=$first one "$lb_tree" "$pid_tree" "$c" "$new_http" "$new_https"
  done
done | tee "$work/runs"
# Medians per case and the ratio of CPU per request, second build / first.
awk -v a="$lb_base" -v b="$lb_tree" '
  function med(s,   n, v, i, j, t) { n = split(s, v, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }; return v[int((n + 1) / 2)] }
  { cpu[$1, $2] = cpu[$1, $2] " " $7; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
  END { for (i = 1; i <= n; i++) { c = order[i]; x = med(cpu[a, c]); y = med(cpu[b, c])
          printf "median %-6s cpu µs/req %s %.1f, %s %.1f: %s/%s %.2f\n", c, a, x, b, y, b, a, (x > 0 ? y / x : 0) } }' "$work/runs"
echo "$(uptime)"
