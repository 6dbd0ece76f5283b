#!/usr/bin/env bash
# Make sure a Docker engine answers: use a running one, or install Debian's
# docker.io and start dockerd in the background (needs root).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

engine_answers() {
  local c
  for c in /usr/bin/docker docker; do
    command -v "$c" >/dev/null 2>&1 && "$c" info >/dev/null 2>&1 && return 0
  done
  return 1
}

# Debian packages the scripts and tests use: the engine and its client,
# debootstrap for the base images, docker-compose for the compose test.
missing=()
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker-compose >/dev/null || missing+=(docker-compose)
install_debian_packages "${missing[@]}"

if engine_answers; then
  exit 0
fi

[ "$(id -u)" = 0 ] \
  || die "no Docker engine answers and starting one needs root; start dockerd yourself"

log "starting dockerd in the background (log: /var/log/dockerd.log)"
nohup /usr/sbin/dockerd >/var/log/dockerd.log 2>&1 &

for _ in $(seq 1 60); do
  engine_answers && { log "Docker engine is up"; exit 0; }
  sleep 0.5
done
die "dockerd did not answer within 30 s; see /var/log/dockerd.log"
