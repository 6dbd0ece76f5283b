#!/usr/bin/env bash
# The image's figures in one table (and bench-results/bench-ENGINE.json): size and
# what each part adds, file count, Debian packages, startup time (median
# and spread, beside bare Squid), cold build and one-file rebuild times,
# /health latency and proxy throughput ratio (scripts/bench-health.ts), and
# resident memory of the entrypoint and Squid at idle. Targets from the
# specification are printed beside the figures they apply to. Under
# Docker by default; CEPHALOPROXY_DOCKER=podman measures Podman's build
# (Docker's image format) and runs instead, with the same bases.
#   scripts/bench.sh [RUNS]   (startup runs, default 7)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cd "$here/.."

runs=${1:-7}
mkdir -p bench-results
"$here/ensure-docker.sh"
[ -x node_modules/.bin/deno ] || npm ci --no-audit --no-fund >&2
# Assigned first: a failure inside <<<"$(...)" would not stop the script.
bases=$("$here/build-bases.sh")
read -r -a base_args <<<"$bases"

# The engine measured; the bases always come from Docker.
if podman_selected; then
  "$here/ensure-podman.sh"
  engine=podman image=localhost/cephaloproxy:bench
  bases=$(podman_base_args "$(docker_builder)" "${base_args[@]}")
  read -r -a base_args <<<"$bases"
  build_flags=(--format docker --pull=never)
else
  engine=docker image=cephaloproxy:bench build_flags=()
fi
docker=$(docker_cli)
export CEPHALOPROXY_DOCKER=$docker
log "measuring under $engine ($docker)"

# Build times: cold (bases present, no build cache) and after one
# entrypoint file changes, both from a copy of the build context.
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -r Dockerfile .dockerignore src scripts "$ctx/"
build() { # build [FLAGS...]
  "$docker" build -q "${build_flags[@]}" "${base_args[@]}" -t "$image" "$@" "$ctx" >/dev/null
}
start=$(date +%s.%N); build --no-cache
cold=$(echo "$(date +%s.%N) - $start" | bc)
echo "// rebuild probe $(date +%s%N)" >>"$ctx/src/probe.ts"
start=$(date +%s.%N); build
rebuild=$(echo "$(date +%s.%N) - $start" | bc)
log "cold build $(printf '%.1f' "$cold") s, rebuild after one file $(printf '%.1f' "$rebuild") s"

# Size and what each layer adds.
size=$("$docker" image inspect -f '{{.Size}}' "$image")
base_size=$("$docker" image inspect -f '{{.Size}}' "${base_args[3]#RUNTIME_IMAGE=}")
layers=$("$docker" history --no-trunc --format '{{.Size}}|{{.CreatedBy}}' "$image")
# layer_size DEST: human size of the newest COPY layer into DEST, as
# Docker ("COPY SRC DEST # buildkit") or Buildah ("COPY dir:ID in DEST ")
# records it.
layer_size() {
  grep -m 1 -E -- "(COPY [^ ]+ | in )$1( |\$)" <<<"$layers" | cut -d'|' -f1
}
squid_part=$(layer_size '/')
deno_part=$(layer_size '/usr/bin/deno')
src_part=$(layer_size '/opt/cephaloproxy/src/')
report=$("$here/image-report.sh" "$image")
files=$(awk '/^regular files/{print $3}' <<<"$report")
packages=$(awk '/^dpkg records/{print $3}' <<<"$report")

# Startup, beside bare Squid.
startup=$("$here/bench-startup.sh" "$runs" "$image" 2>/dev/null)

# Idle memory: read from /proc with a throwaway container in the proxy's
# PID namespace (the image itself has no tools to do it).
cid=$("$docker" run -d "$image")
for _ in $(seq 1 100); do
  "$docker" logs "$cid" 2>/dev/null | grep -q 'accepting connections' && break
  sleep 0.1
done
sleep 2
memory=$("$docker" run --rm --pid "container:$cid" "${base_args[1]#BUILDER_IMAGE=}" bash -c '
  for s in /proc/[0-9]*/status; do
    awk "/^Name:/{n=\$2} /^VmRSS:/{r=\$2} END{if (r) print n, r}" "$s"
  done' | sort)
"$docker" rm -f "$cid" >/dev/null
rss() { awk -v n="$1" '$1 == n {s += $2} END {printf "%.1f", s / 1024}' <<<"$memory"; }

# /health latency and proxy throughput ratio.
health=$(CEPHALOPROXY_IMAGE=$image node_modules/.bin/deno run --allow-run --allow-net \
  --allow-read --allow-write --allow-env scripts/bench-health.ts)

printf '\n%-44s %-22s %s\n' "figure ($engine)" "value" "target"
printf '%-44s %-22s %s\n' "image size" "$(echo "scale=1; $size/1000000" | bc) MB" \
  "SC-001: >= 40% below legacy 500 MB, i.e. <= 300 MB"
printf '%-44s %-22s\n' "  runtime base (distroless cc)" \
  "$(echo "scale=1; $base_size/1000000" | bc) MB"
printf '%-44s %-22s\n' "  Squid, helpers and libraries" "$squid_part"
printf '%-44s %-22s\n' "  Deno runtime" "$deno_part"
printf '%-44s %-22s\n' "  entrypoint sources" "$src_part"
printf '%-44s %-22s\n' "regular files" "$files"
printf '%-44s %-22s %s\n' "Debian packages recorded" "$packages" \
  "SC-002: >= 80% fewer than legacy (legacy count not available here)"
printf '%-44s %-22s %s\n' "cold build (bases present, no cache)" "$(printf '%.1f' "$cold") s" \
  "SC-008: >= 70% below the Gentoo build (not measurable here)"
printf '%-44s %-22s\n' "rebuild after one entrypoint change" "$(printf '%.1f' "$rebuild") s"
printf '%-44s %-22s\n' "idle RSS: entrypoint (deno)" "$(rss deno) MB"
printf '%-44s %-22s\n' "idle RSS: Squid and helpers" \
  "$(awk '$1 != "deno" && $1 != "tini" {s += $2} END {printf "%.1f", s / 1024}' <<<"$memory") MB"
echo
echo "$startup" | sed 's/^/  /'
echo "  SC-005: startup within 110% of legacy (~10 s), i.e. <= 11 s"
echo
echo "$health" | sed 's/^/  /'

om=$(awk '/^cephaloproxy \(/{print $4 + 0}' <<<"$startup")
cat >"bench-results/bench-$engine.json" <<JSON
{
  "engine": "$engine",
  "image_bytes": $size,
  "runtime_base_bytes": $base_size,
  "regular_files": $files,
  "debian_packages": $packages,
  "cold_build_seconds": $(printf '%.3f' "$cold"),
  "rebuild_seconds": $(printf '%.3f' "$rebuild"),
  "startup_median_seconds": ${om:-null},
  "idle_rss_entrypoint_mb": $(rss deno),
  "targets": {"SC-001_max_mb": 300, "SC-005_max_startup_seconds": 11}
}
JSON
log "wrote bench-results/bench-$engine.json"
