#!/usr/bin/env bash
# How long `edgeblock block` takes on a 1,000,000-rule blocklist: the real
# binary, a generated list (one rule a line, a tenth wildcards, a hundredth
# with attributes), RUNS edits (default 5) of each kind, and the median wall
# time of each: adding a rule, changing a rule's attributes in the middle
# of the file, and a block that changes nothing. Files only; no network.
#
#   bash deploy/bench/edit.sh
#   RULES=100000 RUNS=9 bash deploy/bench/edit.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
rules="${RULES:-1000000}"
runs="${RUNS:-5}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/edgeblock" ./cmd/edgeblock
awk -v n="$rules" 'BEGIN {
  print "# generated"
  for (i = 0; i < n; i++) {
    if (i % 100 == 0) printf "site%d.example reason=\"Abuse report %d\" policy=https://blog.example.com/policy-%d\n", i, i % 7, i % 5
    else if (i % 10 == 0) printf "*.pages%d.example\n", i
    else printf "site%d.example\n", i
  }
}' > "$work/blocklist.txt"
cat > "$work/edgeblock.yaml" <<YAML
listen:
  http: 127.0.0.1:0
blocklist:
  file: blocklist.txt
routes:
  - host: app.example
    origins: ["http://127.0.0.1:9"]
YAML
echo "list: $rules rules, $(du -h "$work/blocklist.txt" | cut -f1)"

# median RUNS times: runs the command with ${i} set and prints the median seconds.
median() {
  local times=()
  for i in $(seq 1 "$runs"); do
    local t0 t1
    t0=$(date +%s.%N)
    eval "$1" >/dev/null
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc)")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %.3f s (min %.3f, max %.3f, %d runs)\n", a[int((NR+1)/2)], a[1], a[NR], NR}'
}
cd "$work"
mid=$((rules / 2 + 1))
while [ $((mid % 10)) = 0 ]; do mid=$((mid + 1)); done
echo "block NEW (added):        $(median './edgeblock block -config edgeblock.yaml new${i}.example -comment bench')"
echo "block EXISTING (changed): $(median './edgeblock block -config edgeblock.yaml site'"$mid"'.example reason=run${i} -comment bench')"
echo "block EXISTING (same):    $(median './edgeblock block -config edgeblock.yaml site'"$mid"'.example reason=run'"$runs"'')"
./edgeblock check -config edgeblock.yaml
