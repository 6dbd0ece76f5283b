#!/usr/bin/env bash
# Build the CephaloProxy image (default tag cephaloproxy:dev), preparing a
# Docker engine and local base images first when needed.
#   scripts/build-image.sh [TAG]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cd "$here/.."

tag=${1:-cephaloproxy:dev}
"$here/ensure-docker.sh"
[ -x node_modules/.bin/deno ] || npm ci --no-audit --no-fund >&2
docker=$(docker_builder)
# Assigned first: a failure inside <<<"$(...)" would not stop the script.
bases=$("$here/build-bases.sh")
read -r -a base_args <<<"$bases"
log "building $tag"
"$docker" build --progress=plain "${base_args[@]}" -t "$tag" . >/tmp/cephaloproxy-build.log 2>&1 \
  || {
    tail -n 40 /tmp/cephaloproxy-build.log >&2
    die "docker build failed; full log in /tmp/cephaloproxy-build.log"
  }
size=$("$docker" image inspect -f '{{.Size}}' "$tag")
log "built $tag ($(awk '{printf "%.1f MB", $1/1e6}' <<<"$size"))"
