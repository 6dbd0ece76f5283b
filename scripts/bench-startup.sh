#!/usr/bin/env bash
# Startup time, measured side by side in one run:
#   cephaloproxy: `docker run` to the first 200 from /ready (validation,
#                 cache creation, health server and Squid all included);
#   bare squid:   `docker run` of the same image's Squid binary with a
#                 minimal config to the first HTTP answer on its port.
# Prints median, min and max of each and their ratio.
#   scripts/bench-startup.sh [RUNS] [IMAGE]   (defaults 7, cephaloproxy:dev)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

runs=${1:-7}
image=${2:-cephaloproxy:dev}
docker=$(docker_cli)
work=$(mktemp -d)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
printf 'http_port 3128\npid_filename none\nhttp_access allow all\n' >"$work/bare.conf"
chmod 644 "$work/bare.conf"

now() { date +%s.%N; }

# time_until_200 URL_PORT_SPEC PATH DOCKER_RUN_ARGS...: seconds from
# `docker run` to the first answer with status 200 (or any status when
# PATH is empty), then removes the container.
time_until_answer() {
  local container_port=$1 path=$2 start cid port code
  shift 2
  start=$(now)
  cid=$("$docker" run -d -p "127.0.0.1::$container_port" "$@")
  port=$("$docker" port "$cid" "$container_port/tcp" | head -n 1 | sed 's/.*://')
  while :; do
    code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$port$path" || true)
    if [ -z "$path" ] && [ "$code" != 000 ]; then break; fi
    if [ "$code" = 200 ]; then break; fi
    if (( $(echo "$(now) - $start > 60" | bc) )); then
      remove "$cid"
      die "no answer within 60 s from $image"
    fi
    sleep 0.02
  done
  echo "$(now) - $start" | bc
  remove "$cid"
}

# remove CONTAINER: kill, then remove. `podman rm -f` would first wait
# 10 s for bare Squid, which takes SIGTERM as the start of its own
# shutdown_lifetime wait.
remove() {
  "$docker" kill "$1" >/dev/null 2>&1 || true
  "$docker" rm -f "$1" >/dev/null
}

stats() { # stats VALUES...: median min max
  printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {
    m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
    printf "%.3f %.3f %.3f\n", m, v[1], v[NR]}'
}

ours=() bare=()
for i in $(seq 1 "$runs"); do
  ours+=("$(time_until_answer 8080 /ready "$image")")
  bare+=("$(time_until_answer 3128 "" -v "$work/bare.conf:/bare.conf:ro" \
    --entrypoint /usr/sbin/squid "$image" -N -f /bare.conf)")
  log "run $i/$runs: cephaloproxy ${ours[-1]} s, bare squid ${bare[-1]} s"
done

read -r om omin omax <<<"$(stats "${ours[@]}")"
read -r bm bmin bmax <<<"$(stats "${bare[@]}")"
printf '%-34s %8s %8s %8s\n' "startup (${docker##*/} run -> answer)" median min max
printf '%-34s %7ss %7ss %7ss\n' "cephaloproxy (/ready 200)" "$om" "$omin" "$omax"
printf '%-34s %7ss %7ss %7ss\n' "bare squid (port answers)" "$bm" "$bmin" "$bmax"
printf 'ratio cephaloproxy / bare squid: %.2f   target: median < 3 s (legacy ~10 s)\n' \
  "$(echo "$om / $bm" | bc -l)"
