#!/usr/bin/env bash
# Build the CephaloProxy image with Podman (default tag
# localhost/cephaloproxy:dev), in Docker's image format so that the
# HEALTHCHECK and STOPSIGNAL stay in the image config (OCI has no field
# for a healthcheck). The three local base images are built with Docker
# by scripts/build-bases.sh, as for scripts/build-image.sh, and copied
# into Podman's store with `docker save | podman load`.
#   scripts/build-image-podman.sh [TAG]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cd "$here/.."

tag=${1:-localhost/cephaloproxy:dev}
"$here/ensure-podman.sh"
"$here/ensure-docker.sh"
[ -x node_modules/.bin/deno ] || npm ci --no-audit --no-fund >&2
docker=$(docker_builder)
# Assigned first: a failure inside <<<"$(...)" would not stop the script.
bases=$("$here/build-bases.sh")
read -r -a base_args <<<"$bases"

bases=$(podman_base_args "$docker" "${base_args[@]}")
read -r -a podman_args <<<"$bases"

log "building $tag with podman"
podman build --format docker --pull=never "${podman_args[@]}" -t "$tag" . \
  >/tmp/cephaloproxy-podman-build.log 2>&1 \
  || {
    tail -n 40 /tmp/cephaloproxy-podman-build.log >&2
    die "podman build failed; full log in /tmp/cephaloproxy-podman-build.log"
  }
log "built $tag ($(podman image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}'))"
