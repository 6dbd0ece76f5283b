#!/usr/bin/env bash
# Docker and Podman side by side in one run: startup (scripts/bench-
# startup.sh: `run` to the first 200 from /ready, beside bare Squid) and
# /health latency with proxy throughput (scripts/bench-health.ts), each
# under both engines with the image each engine built from the same
# Dockerfile and bases. Prints one table with the Podman / Docker ratios
# and writes bench-results/engines.json.
#   scripts/bench-engines.sh [RUNS] [SECONDS]   (defaults 7 startups, 10 s)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cd "$here/.."

runs=${1:-7}
seconds=${2:-10}
mkdir -p bench-results
"$here/build-image.sh" cephaloproxy:bench >&2
"$here/build-image-podman.sh" localhost/cephaloproxy:bench >&2
docker=$(docker_builder)

# measure ENGINE CLIENT IMAGE: startup and health figures of one engine,
# written to bench-results/engines-ENGINE.txt as
# "startup_median bare_median health_p50 health_p99 req_s ratio".
# Each step is its own command so that a failing bench stops the run.
measure() {
  local name=$1 client=$2 image=$3 startup start bare health figures
  log "startup under $name ($runs runs)"
  startup=$(CEPHALOPROXY_DOCKER=$client "$here/bench-startup.sh" "$runs" "$image")
  start=$(awk '/^cephaloproxy \(/{print $4+0}' <<<"$startup")
  bare=$(awk '/^bare squid \(/{print $5+0}' <<<"$startup")
  log "health and throughput under $name ($seconds s per phase)"
  CEPHALOPROXY_DOCKER=$client CEPHALOPROXY_IMAGE=$image node_modules/.bin/deno run \
    --allow-run --allow-net --allow-read --allow-write --allow-env \
    scripts/bench-health.ts --seconds "$seconds" >&2
  health=bench-results/health-$name.json
  mv bench-results/health.json "$health"
  figures=$(node_modules/.bin/deno eval --quiet '
    const r = JSON.parse(Deno.readTextFileSync(Deno.args[0]));
    console.log(r.health.p50Ms.toFixed(2), r.health.p99Ms.toFixed(2),
      r.proxy.cephaloproxy.requestsPerSecond.toFixed(1),
      r.ratio.cephaloproxy.toFixed(3));
  ' "$health")
  echo "$start $bare $figures" >"bench-results/engines-$name.txt"
}

measure docker "$docker" cephaloproxy:bench
measure podman /usr/bin/podman localhost/cephaloproxy:bench
read -r d_start d_bare d_p50 d_p99 d_rps d_ratio <bench-results/engines-docker.txt
read -r p_start p_bare p_p50 p_p99 p_rps p_ratio <bench-results/engines-podman.txt

ratio() { echo "scale=3; $2 / $1" | bc -l | sed 's/^\./0./'; }
row() { printf '%-42s %10s %10s %8s\n' "$@"; }
echo
row "figure" "docker" "podman" "ratio"
row "startup to /ready 200, median (s)" "$d_start" "$p_start" "$(ratio "$d_start" "$p_start")"
row "bare squid to its port, median (s)" "$d_bare" "$p_bare" "$(ratio "$d_bare" "$p_bare")"
row "/health p50 under proxy load (ms)" "$d_p50" "$p_p50" "$(ratio "$d_p50" "$p_p50")"
row "/health p99 under proxy load (ms)" "$d_p99" "$p_p99" "$(ratio "$d_p99" "$p_p99")"
row "proxy throughput (req/s)" "$d_rps" "$p_rps" "$(ratio "$d_rps" "$p_rps")"
row "throughput vs bare squid" "$d_ratio" "$p_ratio" ""
cat >bench-results/engines.json <<EOF
{"runs": $runs, "seconds": $seconds,
 "docker": {"startup_s": $d_start, "bare_squid_s": $d_bare, "health_p50_ms": $d_p50,
            "health_p99_ms": $d_p99, "req_per_s": $d_rps, "vs_bare": $d_ratio},
 "podman": {"startup_s": $p_start, "bare_squid_s": $p_bare, "health_p50_ms": $p_p50,
            "health_p99_ms": $p_p99, "req_per_s": $p_rps, "vs_bare": $p_ratio}}
EOF
