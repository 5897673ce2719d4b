#!/usr/bin/env bash
# The release build: a static binary with the version stamped in. The
# Dockerfile runs exactly this script, and CI runs it outside Docker.
# Usage: deploy/build.sh [OUTDIR]
# OUTDIR (default dist) is taken relative to the directory the script is
# called from, like any other command's path argument; the build itself
# runs in the repository root.
set -euo pipefail
out="${1:-dist}"
case "$out" in
  /*) ;;
  *) out="$PWD/$out" ;;
esac
cd "$(dirname "$0")/.."
version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}"
revision="${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
mkdir -p "$out"
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X github.com/edgeblock/edgeblock/proxy.BuildVersion=${version} -X github.com/edgeblock/edgeblock/proxy.BuildRevision=${revision}" \
  -o "$out/edgeblock" ./cmd/edgeblock
echo "built $out/edgeblock ($version, $revision)"
