#!/usr/bin/env bash
# Build local equivalents of the three base images the Dockerfile names,
# for machines that cannot pull them. Prints the build args that select
# them. Each image is built once and reused while it exists.
#   builder: debian:trixie-slim       <- debootstrap --variant=minbase trixie
#   runtime: gcr.io/distroless/cc-debian13 <- Debian 13 .debs, unpacked
#   deno:    denoland/deno:bin-<ver>  <- the pinned npm "deno" binary
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cd "$here/.."

docker=$(docker_builder)
deno_version=$(node -p 'require("./package.json").devDependencies.deno')
builder_tag=$BASE_BUILDER_TAG
runtime_tag=$BASE_RUNTIME_TAG
deno_tag=cephaloproxy-base/deno:bin-$deno_version

have_image() { "$docker" image inspect "$1" >/dev/null 2>&1; }

build_builder() {
  have_image "$builder_tag" && return 0
  command -v debootstrap >/dev/null \
    || die "debootstrap is missing; run scripts/ensure-docker.sh as root"
  local mirror dir
  mirror=$(debian_mirror)
  dir=$(mktemp -d /tmp/cephaloproxy-rootfs.XXXXXX)
  trap 'rm -rf "$dir"' RETURN
  log "debootstrap trixie from $mirror (about 30 s)"
  debootstrap --variant=minbase trixie "$dir" "$mirror" >/dev/null
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | "$docker" import - "$builder_tag" >/dev/null
  log "built $builder_tag"
}

build_runtime() {
  have_image "$runtime_tag" && return 0
  log "building $runtime_tag from Debian 13 packages"
  "$docker" build -q --build-arg "BUILDER_IMAGE=$builder_tag" -t "$runtime_tag" \
    -f scripts/bases/distroless-cc.Dockerfile scripts/bases >/dev/null
  log "built $runtime_tag"
}

build_deno() {
  have_image "$deno_tag" && return 0
  [ -x node_modules/.bin/deno ] || npm install --no-audit --no-fund >&2
  local ctx bin
  ctx=$(mktemp -d /tmp/cephaloproxy-deno.XXXXXX)
  trap 'rm -rf "$ctx"' RETURN
  bin=$(readlink -f node_modules/.bin/deno)
  "$bin" --version | grep -q "^deno $deno_version " \
    || die "node_modules has a Deno other than $deno_version; run npm ci"
  cp "$bin" "$ctx/deno"
  "$docker" build -q -t "$deno_tag" -f scripts/bases/deno.Dockerfile "$ctx" >/dev/null
  log "built $deno_tag"
}

build_builder
build_runtime
build_deno
printf -- '--build-arg BUILDER_IMAGE=%s --build-arg RUNTIME_IMAGE=%s --build-arg DENO_IMAGE=%s\n' \
  "$builder_tag" "$runtime_tag" "$deno_tag"
