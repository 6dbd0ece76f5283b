#!/usr/bin/env bash
# Run the integration tests under Podman, beside Docker: prepare Podman
# (scripts/ensure-podman.sh), build the image with `podman build --format
# docker` (scripts/build-image-podman.sh), run tests/integration/ with
# CEPHALOPROXY_DOCKER=podman, then the same under Docker unless
# --podman-only is given, and print one line per engine as scripts/test.sh
# does. Not part of scripts/test.sh or CI.
#   scripts/test-podman.sh [--podman-only] [deno test filter args...]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cd "$here/.."

engines=(podman docker)
if [ "${1:-}" = --podman-only ]; then
  engines=(podman)
  shift
fi

[ -x node_modules/.bin/deno ] || npm ci --no-audit --no-fund >&2 || die "npm ci failed"
deno=$(pwd)/node_modules/.bin/deno
export NO_COLOR=1 DENO_NO_UPDATE_CHECK=1

results=$(mktemp)
failed=0

# engine NAME CLIENT IMAGE: run the integration tests with one engine.
engine() {
  local name=$1 client=$2 image=$3 out line p f i rc
  log "integration tests under $name ($client, $image)"
  out=$(mktemp)
  CEPHALOPROXY_DOCKER=$client CEPHALOPROXY_IMAGE=$image "$deno" test \
    --allow-read --allow-write --allow-run --allow-env --allow-net --allow-sys \
    tests/integration/ "${filters[@]}" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$out" | tail -n 1)
  p=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$line")
  i=$(grep -oE '[0-9]+ ignored' <<<"$line" | grep -oE '[0-9]+' || echo 0)
  if [ -z "$line" ]; then
    p=0 f=1 i=0
  elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    f=1
  fi
  failed=$((failed + f))
  printf '%-20s %4s passed, %4s failed, %4s ignored\n' "integration/$name" "$p" "$f" "${i:-0}" >>"$results"
  rm -f "$out"
}

filters=("$@")
for e in "${engines[@]}"; do
  case $e in
    podman)
      if "$here/build-image-podman.sh" localhost/cephaloproxy:test; then
        engine podman /usr/bin/podman localhost/cephaloproxy:test
      else
        printf '%-20s %s\n' integration/podman "image build failed" >>"$results"
        failed=$((failed + 1))
      fi
      ;;
    docker)
      if "$here/build-image.sh" cephaloproxy:test; then
        engine docker "$(docker_cli)" cephaloproxy:test
      else
        printf '%-20s %s\n' integration/docker "image build failed" >>"$results"
        failed=$((failed + 1))
      fi
      ;;
  esac
done

echo
cat "$results"
rm -f "$results"
[ "$failed" = 0 ]
