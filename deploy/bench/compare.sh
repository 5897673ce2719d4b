#!/usr/bin/env bash
# The comparison rig: edgeblock beside a bare net/http server
# (deploy/bench/bare: the same block page bytes for the blocked host,
# httputil.ReverseProxy for the rest, no logging, no metrics, no checks:
# the ceiling for a server built on net/http) and Debian's nginx (1 worker,
# keep-alive upstream, `map $host` + `return 403` for the blocked host,
# access log to a file with buffer=64k flush=1s), all three in front of the
# same Go origin (deploy/bench/origin); edgeblock with its default access
# log on. Six cases, each run BENCH_ROUNDS times with the three servers
# interleaved (each round starts with the next one); the table gives the
# median requests/s and p99 of each side and the ratios edgeblock/bare and
# edgeblock/nginx.
#
#   bash deploy/bench/compare.sh                   # 10s per run, 3 rounds
#   BENCH_DURATION=3s BENCH_ROUNDS=1 bash deploy/bench/compare.sh
#
# Cases: h1 (wrk, plain HTTP/1.1), h1tls (wrk, HTTP/1.1 over TLS), h2 (h2load,
# HTTP/2 over TLS, several streams per connection), each for a proxied host
# and the blocked host. wrk resolves the URL's host itself and sends it as
# SNI, so both hosts must resolve to loopback: localhost and, by default,
# this machine's hostname when /etc/hosts maps it to 127.0.0.1.
#
# Numbers are only meaningful as ratios within one run: the machine (and
# anything else running on it) sets the absolute values.
#
# Environment (defaults in brackets):
#   BENCH_DURATION      duration of each run [10s]
#   BENCH_ROUNDS        rounds per case [3]
#   BENCH_CONNECTIONS   wrk connections (one thread) [64]
#   BENCH_H2_CLIENTS    h2load connections [16]
#   BENCH_H2_STREAMS    h2load concurrent streams per connection [8]
#   BENCH_CASES         cases to run [h1-proxied h1-blocked h1tls-proxied h1tls-blocked h2-proxied h2-blocked]
#   BENCH_PROXIED_HOST  host routed to the origin [localhost]
#   BENCH_BLOCKED_HOST  host on the blocklist [$(hostname) if it resolves to 127.0.0.1]
#   BENCH_ORIGIN_PORT   the origin [18081]
#   BENCH_EB_HTTP_PORT, BENCH_EB_HTTPS_PORT, BENCH_EB_ADMIN_PORT  edgeblock [18080, 18443, 19090]
#   BENCH_NGINX_HTTP_PORT, BENCH_NGINX_HTTPS_PORT                nginx [18180, 18543]
#   BENCH_BARE_HTTP_PORT, BENCH_BARE_HTTPS_PORT                  the bare server [18280, 18643]
#   BENCH_EB_CONFIG_EXTRA  YAML appended to edgeblock's config (to measure a lever)
#   BENCH_EB_ENV        environment for edgeblock, e.g. "GOGC=400" (to measure a lever)
#   BENCH_PROFILE       seconds of CPU profile taken from edgeblock during the first round
#                       of each case, saved as BENCH_KEEP/cpu-CASE.pprof (needs BENCH_KEEP)
#   BENCH_KEEP          a directory to copy logs and raw outputs into
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
duration="${BENCH_DURATION:-10s}"
rounds="${BENCH_ROUNDS:-3}"
conns="${BENCH_CONNECTIONS:-64}"
h2c="${BENCH_H2_CLIENTS:-16}"
h2m="${BENCH_H2_STREAMS:-8}"
cases="${BENCH_CASES:-h1-proxied h1-blocked h1tls-proxied h1tls-blocked h2-proxied h2-blocked}"
origin_port="${BENCH_ORIGIN_PORT:-18081}"
eb_http="${BENCH_EB_HTTP_PORT:-18080}" eb_https="${BENCH_EB_HTTPS_PORT:-18443}" eb_admin="${BENCH_EB_ADMIN_PORT:-19090}"
ng_http="${BENCH_NGINX_HTTP_PORT:-18180}" ng_https="${BENCH_NGINX_HTTPS_PORT:-18543}"
bare_http="${BENCH_BARE_HTTP_PORT:-18280}" bare_https="${BENCH_BARE_HTTPS_PORT:-18643}"
proxied="${BENCH_PROXIED_HOST:-localhost}"
blocked="${BENCH_BLOCKED_HOST:-$(hostname)}"

for p in "$origin_port" "$eb_http" "$eb_https" "$eb_admin" "$ng_http" "$ng_https" "$bare_http" "$bare_https"; do
  [[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || { echo "bad port $p in BENCH_*_PORT"; exit 2; }
  port_free "$p" || { echo "127.0.0.1:$p is in use: set the BENCH_*_PORT variables"; exit 1; }
done
for h in "$proxied" "$blocked"; do
  [[ "$(getent hosts "$h" | awk '{print $1; exit}')" == 127.* ]] ||
    { echo "$h does not resolve to 127.0.0.1 (wrk resolves the URL's host): set BENCH_PROXIED_HOST/BENCH_BLOCKED_HOST"; exit 1; }
done
[[ "$proxied" != "$blocked" ]] || { echo "BENCH_PROXIED_HOST and BENCH_BLOCKED_HOST must differ"; exit 1; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
for t in wrk h2load openssl "$nginx"; do
  command -v "$t" >/dev/null || { echo "$t is missing: apt-get install wrk nghttp2-client openssl nginx-light"; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n "${BENCH_KEEP:-}" ]]; then mkdir -p "$BENCH_KEEP" && cp -r "$work"/*.log "$work"/raw "$BENCH_KEEP"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/raw"
go build -o "$work/edgeblock" ./cmd/edgeblock
go build -o "$work/origin" ./deploy/bench/origin
go build -o "$work/bare" ./deploy/bench/bare
"$work/origin" -addr "127.0.0.1:$origin_port" & pids+=($!)

# edgeblock: internal CA for TLS, the default access log to a file.
{ echo "$blocked reason=\"Benchmark block\" policy=https://blog.example.com/why"
  seq 1 999 | sed 's/^/site/; s/$/.example/'; } > "$work/blocklist.txt"
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
  policy: https://example.com/abuse-policy
  blocked_by: https://edge.example.com
routes:
  - host: ${proxied}
    origins: ["http://127.0.0.1:${origin_port}"]
limits:                      # the load generator is one client on loopback: lift the per-client caps
  max_conns_per_client: 1000000
  max_requests_per_client: 1000000
${BENCH_EB_CONFIG_EXTRA:-}
YAML
[[ -n "${BENCH_PROFILE:-}" ]] && printf 'admin:\n  pprof: true\n' >> "$work/edgeblock.yaml"
env ${BENCH_EB_ENV:-} "$work/edgeblock" serve -config "$work/edgeblock.yaml" -state-dir off 2>"$work/edgeblock.log" & pids+=($!)
eb_pid=$!
wait_port "$eb_https"

# nginx answers the blocked host with a body as long as edgeblock's page.
fetch_first "$work/edgeblock.log" -D "$work/page.hdr" -o "$work/page.html" "https://$blocked:$eb_https/"
page_len=$(wc -c < "$work/page.html")
((page_len > 100)) || { echo "edgeblock's block page is $page_len bytes: not serving?"; exit 1; }
pad=$(head -c "$page_len" < /dev/zero | tr '\0' x)
body="<!DOCTYPE html><title>blocked</title><p>${pad}"
body=${body:0:page_len}
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$proxied" \
  -addext "subjectAltName=DNS:$proxied,DNS:$blocked" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log $work/nginx-access.log combined buffer=64k flush=1s;
  client_body_temp_path $work/ngx-body;
  proxy_temp_path $work/ngx-proxy;
  fastcgi_temp_path $work/ngx-fcgi;
  uwsgi_temp_path $work/ngx-uwsgi;
  scgi_temp_path $work/ngx-scgi;
  keepalive_requests 100000000;
  default_type text/html;
  map \$host \$blocked { default 0; $blocked 1; }
  upstream origin { server 127.0.0.1:$origin_port; keepalive 128; keepalive_requests 100000000; }
  ssl_certificate $work/cert.pem;
  ssl_certificate_key $work/key.pem;
  server {
    listen 127.0.0.1:$ng_http;
    listen 127.0.0.1:$ng_https ssl http2;
    location / {
      if (\$blocked) { return 403 "$body"; }
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
NGINX
"$nginx" -p "$work" -c "$work/nginx.conf" -e "$work/nginx-error.log" -g 'daemon off;' & pids+=($!)
wait_port "$ng_https"
# The bare server answers the blocked host with edgeblock's page: the same
# body and header lines.
"$work/bare" -http "127.0.0.1:$bare_http" -https "127.0.0.1:$bare_https" -origin "http://127.0.0.1:$origin_port" \
  -blocked "$blocked" -names "$proxied" -page "$work/page.html" -headers "$work/page.hdr" 2>"$work/bare.log" & pids+=($!)
wait_port "$bare_https"

# to_ms converts wrk's latency (e.g. 812.00us, 1.20ms, 1.01s) to milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'; }

# run SERVER CASE DURATION: one measurement; prints "rps p99ms errors".
run() {
  local server=$1 case=$2 d=$3 http=$eb_http https=$eb_https host
  [[ $server == nginx ]] && http=$ng_http https=$ng_https
  [[ $server == bare ]] && http=$bare_http https=$bare_https
  host=$proxied
  [[ $case == *-blocked ]] && host=$blocked
  local raw="$work/raw/$server-$case-$RANDOM" out
  case $case in
    h1-*|h1tls-*)
      local url="http://$host:$http/"
      [[ $case == h1tls-* ]] && url="https://$host:$https/"
      out=$(wrk -t1 -c"$conns" -d"$d" --latency "$url")
      echo "$out" > "$raw"
      local rps p99 errs
      rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
      p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
      errs=$(awk '/Socket errors/ {e += $4+$6+$8+$10} END {print e+0}' <<<"$out")
      echo "$rps $p99 $errs"
      ;;
    h2-*)
      local secs=${d%s}
      out=$(h2load -c"$h2c" -m"$h2m" -t1 -D"$secs" --warm-up-time=1 --log-file="$raw.log" "https://$host:$https/")
      echo "$out" > "$raw"
      local rps p99 errs
      rps=$(awk '/^finished in/ {gsub(",", "", $4); printf "%d", $4}' <<<"$out")
      p99=$(awk -F'\t' '{print $3}' "$raw.log" | sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.2f", a[i]/1000}')
      errs=$(awk '/^requests:/ {print $12+$14}' <<<"$out")
      rm -f "$raw.log"
      echo "$rps $p99 $errs"
      ;;
  esac
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }

# Warm up every side (connections, certificates, upstream pools).
servers=(edgeblock bare nginx)
for c in $cases; do for s in "${servers[@]}"; do run "$s" "$c" 1s >/dev/null; done; done

printf '%-14s %9s %10s %9s %7s %7s %8s %8s %8s %7s\n' case eb_req/s bare_req/s ngx_req/s eb/bare eb/ngx eb_p99ms bare_p99 ngx_p99 p99/bare
for c in $cases; do
  declare -A rps=() p99=()
  warn=""
  for ((i = 0; i < rounds; i++)); do
    for ((j = 0; j < 3; j++)); do
      s=${servers[(i + j) % 3]} prof=""
      if [[ $s == edgeblock && -n "${BENCH_PROFILE:-}" && -n "${BENCH_KEEP:-}" && $i == 0 ]]; then
        mkdir -p "$BENCH_KEEP"
        (sleep 1; curl -s -o "$BENCH_KEEP/cpu-$c.pprof" "http://127.0.0.1:$eb_admin/debug/pprof/profile?seconds=$BENCH_PROFILE") &
        prof=$!
      fi
      read -r r p e < <(run "$s" "$c" "$duration")
      rps[$s]+=" $r" p99[$s]+=" $p"
      ((e == 0)) || warn+=" $s-errors=$e"
      [[ -z "$prof" ]] || wait "$prof" || true
    done
  done
  er=$(echo "${rps[edgeblock]}" | median) br=$(echo "${rps[bare]}" | median) nr=$(echo "${rps[nginx]}" | median)
  ep=$(echo "${p99[edgeblock]}" | median) bp=$(echo "${p99[bare]}" | median) np=$(echo "${p99[nginx]}" | median)
  printf '%-14s %9s %10s %9s %6sx %6sx %8s %8s %8s %6sx  rounds eb=[%s] bare=[%s] ngx=[%s]%s\n' "$c" "$er" "$br" "$nr" \
    "$(ratio "$er" "$br")" "$(ratio "$er" "$nr")" "$ep" "$bp" "$np" "$(ratio "$ep" "$bp")" \
    "${rps[edgeblock]# }" "${rps[bare]# }" "${rps[nginx]# }" "$warn"
  unset rps p99
done
eb_lines=$(grep -c '"msg":"request"' "$work/edgeblock.log" || true)
ng_lines=$(wc -l < "$work/nginx-access.log")
echo "access log lines: edgeblock $eb_lines, nginx $ng_lines; edgeblock RSS $(awk '/VmRSS/ {print $2, $3}' "/proc/$eb_pid/status"); $(uptime | sed 's/.*load/load/')"
