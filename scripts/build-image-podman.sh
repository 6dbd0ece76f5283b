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
read -r -a base_args <<<"$("$here/build-bases.sh")"

# Copy each base into Podman unless it already has the same image ID, and
# name it under localhost/, where `podman load` puts Docker's images.
podman_args=()
for arg in "${base_args[@]}"; do
  case $arg in
    *=*)
      name=${arg%%=*} image=${arg#*=}
      id=$("$docker" image inspect -f '{{.Id}}' "$image")
      if [ "$(podman image inspect -f '{{.Id}}' "localhost/$image" 2>/dev/null)" != "${id#sha256:}" ]; then
        log "copying $image from Docker to Podman"
        "$docker" save "$image" | podman load -q >&2
      fi
      podman_args+=("$name=localhost/$image")
      ;;
    *) podman_args+=("$arg") ;;
  esac
done

log "building $tag with podman"
podman build --format docker --pull=never "${podman_args[@]}" -t "$tag" . \
  >/tmp/cephaloproxy-podman-build.log 2>&1 \
  || { tail -n 40 /tmp/cephaloproxy-podman-build.log >&2; die "podman build failed; full log in /tmp/cephaloproxy-podman-build.log"; }
log "built $tag ($(podman image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}'))"
