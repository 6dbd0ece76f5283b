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
  case ${CEPHALOPROXY_DOCKER:-} in
    podman | */podman)
      c=$(command -v "$CEPHALOPROXY_DOCKER") \
        || die "$CEPHALOPROXY_DOCKER not found; run scripts/ensure-podman.sh"
      printf '%s\n' "$c"
      return 0
      ;;
  esac
  for c in /usr/bin/docker "$(command -v docker 2>/dev/null)"; do
    [ -x "$c" ] || continue
    if "$c" buildx version >/dev/null 2>&1 || "$c" version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.'; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  die "no docker client that can build with BuildKit; run scripts/ensure-docker.sh"
}

# docker_builder: Docker's client even when CEPHALOPROXY_DOCKER names
# Podman, for the steps that always use Docker: the base images, the
# Docker build of the image, and copying the bases into Podman.
docker_builder() {
  CEPHALOPROXY_DOCKER='' docker_cli
}

export DOCKER_BUILDKIT=1
# Podman (and Buildah) build Docker's image format rather than OCI's, which
# has no HEALTHCHECK; Docker ignores this.
export BUILDAH_FORMAT=docker
