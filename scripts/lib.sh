# Shared helpers for the project's shell scripts (host side only; the image
# has no shell). Source it; do not run it.

# log MESSAGE: one plain line on stderr, so stdout stays machine-readable.
log() {
  printf '%s [scripts] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

# debian_mirror: the first Debian mirror URI the host's apt sources name.
# Read at run time so that no registry host name is written into the repo.
debian_mirror() {
  local uri
  uri=$(grep -h -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '{print $2}' | grep -v -- '-security' | head -n 1)
  if [ -z "$uri" ]; then
    uri=$(grep -h -E '^deb ' /etc/apt/sources.list 2>/dev/null \
      | awk '{print $2}' | grep -v -- '-security' | head -n 1)
  fi
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list*; configure apt first"
  printf '%s\n' "$uri"
}

# docker_cli: a docker client that can build with BuildKit. The client
# first on PATH may lack the buildx plugin; Debian's 20.10 client builds
# with DOCKER_BUILDKIT=1. CEPHALOPROXY_DOCKER=podman (or a path to the
# podman client) selects Podman instead, whose builds then keep Docker's
# image format (BUILDAH_FORMAT below) and with it the HEALTHCHECK.
docker_cli() {
  local c
  if podman_selected; then
    c=$(command -v "$CEPHALOPROXY_DOCKER") \
      || die "$CEPHALOPROXY_DOCKER not found; run scripts/ensure-podman.sh"
    printf '%s\n' "$c"
    return 0
  fi
  for c in /usr/bin/docker "$(command -v docker 2>/dev/null)"; do
    [ -x "$c" ] || continue
    if "$c" buildx version >/dev/null 2>&1 \
      || "$c" version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.'; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  die "no docker client that can build with BuildKit; run scripts/ensure-docker.sh"
}

# podman_selected: whether CEPHALOPROXY_DOCKER names Podman's client.
podman_selected() {
  case ${CEPHALOPROXY_DOCKER:-} in podman | */podman) return 0 ;; esac
  return 1
}

# docker_builder: Docker's client even when CEPHALOPROXY_DOCKER names
# Podman, for the steps that always use Docker: the base images, the
# Docker build of the image, and copying the bases into Podman.
docker_builder() {
  CEPHALOPROXY_DOCKER='' docker_cli
}

# The local base images scripts/build-bases.sh builds (tags in Docker;
# Podman's copies are under localhost/).
BASE_BUILDER_TAG=cephaloproxy-base/debian:trixie-slim
BASE_RUNTIME_TAG=cephaloproxy-base/distroless-cc:debian13

# install_debian_packages PACKAGE...: installs what is missing (as root),
# or stops naming the apt-get command to run.
install_debian_packages() {
  [ $# -gt 0 ] || return 0
  [ "$(id -u)" = 0 ] \
    || die "missing $*; install them (as root: apt-get install $*)"
  log "installing Debian's $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# api_answers SOCKET: whether Podman's API answers on SOCKET.
api_answers() { curl -sf --unix-socket "$1" http://podman/_ping >/dev/null 2>&1; }

# ensure_api_service SOCKET LOG [COMMAND_PREFIX...]: makes sure Podman's
# Docker-compatible API answers on SOCKET, starting `podman system
# service` (prefixed, e.g. to run it as another user) when nothing does.
# Started from / and in its own session: it outlives this checkout and
# this shell.
ensure_api_service() {
  local socket=$1 service_log=$2
  shift 2
  stop_stale_api_service "$socket"
  api_answers "$socket" && return 0
  [ "$(id -u)" = 0 ] \
    || die "nothing answers on $socket and starting Podman's API service needs root"
  log "starting Podman's API service on $socket (log: $service_log)"
  "$@" mkdir -p "$(dirname "$socket")"
  (cd / && exec "$@" setsid nohup podman system service --time=0 "unix://$socket" \
    >"$service_log" 2>&1) &
  for _ in $(seq 1 60); do
    api_answers "$socket" && { log "Podman API is up on $socket"; return 0; }
    sleep 0.25
  done
  die "Podman's API service did not answer within 15 s; see $service_log"
}

# stop_stale_api_service SOCKET: stops a `podman system service` on SOCKET
# whose working directory has been deleted (say, a checkout removed since
# the service started there). conmon starts in that directory, so every
# container the service starts would fail with "write child: broken pipe".
stop_stale_api_service() {
  local socket=$1 proc cwd
  for proc in /proc/[0-9]*; do
    [ "$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline")" \
      = "podman system service --time=0 unix://$socket " ] || continue
    cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
    case $cwd in *" (deleted)") ;; *) continue ;; esac
    log "stopping Podman's API service on $socket (PID ${proc#/proc/}):" \
      "its working directory $cwd is gone"
    kill "${proc#/proc/}" 2>/dev/null || true
    for _ in $(seq 1 40); do [ -e "$proc" ] || break; sleep 0.25; done
  done
}

# podman_base_args DOCKER BUILD_ARGS...: copies each base image the build
# args name from Docker into Podman's store, unless Podman already has the
# same image ID, and prints the build args renamed to localhost/, where
# `podman load` puts Docker's images.
podman_base_args() {
  local docker=$1 arg name image id out=()
  shift
  for arg in "$@"; do
    case $arg in
      *=*)
        name=${arg%%=*} image=${arg#*=}
        id=$("$docker" image inspect -f '{{.Id}}' "$image")
        if [ "$(podman image inspect -f '{{.Id}}' "localhost/$image" 2>/dev/null)" \
          != "${id#sha256:}" ]; then
          log "copying $image from Docker to Podman"
          "$docker" save "$image" | podman load -q >&2
        fi
        out+=("$name=localhost/$image")
        ;;
      *) out+=("$arg") ;;
    esac
  done
  printf '%s\n' "${out[*]}"
}

export DOCKER_BUILDKIT=1
# Podman (and Buildah) build Docker's image format rather than OCI's, which
# has no HEALTHCHECK; Docker ignores this.
export BUILDAH_FORMAT=docker
