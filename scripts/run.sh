#!/usr/bin/env bash
# Build the image and run the proxy with the built-in default config:
# proxy on 127.0.0.1:3128, health on 127.0.0.1:8080. Does all set-up on a
# fresh machine (npm toolchain, Docker engine, base images). With
# CEPHALOPROXY_DOCKER=podman it builds and runs with Podman instead.
#   scripts/run.sh [extra docker run args...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

if podman_selected; then
  image=localhost/cephaloproxy:dev
  "$here/build-image-podman.sh" "$image"
else
  image=cephaloproxy:dev
  "$here/build-image.sh" "$image"
fi
docker=$(docker_cli)
"$docker" rm -f cephaloproxy >/dev/null 2>&1 || true
"$docker" run -d --name cephaloproxy --stop-timeout 30 \
  -p 127.0.0.1:3128:3128 -p 127.0.0.1:8080:8080 "$@" "$image" >/dev/null

for _ in $(seq 1 150); do
  if curl -sf -o /dev/null http://127.0.0.1:8080/ready; then
    log "CephaloProxy is ready: proxy http://127.0.0.1:3128, health http://127.0.0.1:8080/health"
    log "logs: $docker logs -f cephaloproxy    stop: $docker stop cephaloproxy"
    exit 0
  fi
  sleep 0.2
done
"$docker" logs cephaloproxy >&2 || true
die "the proxy did not become ready within 30 s; its logs are above"
