#!/usr/bin/env bash
# Run every test suite: static checks, unit tests, then the integration
# tests against a freshly built image under each container engine, Docker
# and Podman, reported side by side. Does all set-up on a fresh machine
# (npm toolchain, Docker engine, Podman, base images). Ends with one plain
# line, "N passed, N failed", summing every suite.
#   scripts/test.sh [deno test filter args...]
# CEPHALOPROXY_ENGINES="docker" (or "podman") runs the integration tests
# under one engine only.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cd "$here/.."

[ -x node_modules/.bin/deno ] || npm ci --no-audit --no-fund >&2 || die "npm ci failed"
deno=$(pwd)/node_modules/.bin/deno
export NO_COLOR=1 DENO_NO_UPDATE_CHECK=1

passed=0
failed=0
ignored=0
results=$(mktemp)

# suite NAME COMMAND...: run one suite, add its counts to the totals.
suite() {
  local name=$1 out
  shift
  log "suite $name: $*"
  out=$(mktemp)
  "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  local line p f i
  line=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$out" | tail -n 1)
  p=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$line")
  i=$(grep -oE '[0-9]+ ignored' <<<"$line" | grep -oE '[0-9]+' || echo 0)
  if [ -z "$line" ]; then
    p=0 f=1 i=0   # the suite did not even report: count it as one failure
  elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    f=1           # e.g. a leak or an uncaught error after the summary
  fi
  passed=$((passed + p)) failed=$((failed + f)) ignored=$((ignored + ${i:-0}))
  printf '%-20s %4s passed, %4s failed, %4s ignored\n' "$name" "$p" "$f" "${i:-0}" >>"$results"
  rm -f "$out"
}

# static SUITE COMMAND...: a check that passes or fails as one test.
static() {
  local name=$1
  shift
  log "check $name: $*"
  if "$@" >&2; then passed=$((passed + 1)); r="1 passed, 0 failed"
  else failed=$((failed + 1)); r="0 passed, 1 failed"; fi
  printf '%-20s %s\n' "$name" "$r" >>"$results"
}

static fmt "$deno" fmt --check
static lint "$deno" lint
static check "$deno" check src/ tests/ scripts/

suite unit "$deno" test --allow-read --allow-write --allow-run --allow-env \
  --allow-net --allow-sys tests/unit/ "$@"

# integration ENGINE: build the image with ENGINE and run the integration
# tests with its client.
integration() {
  local engine=$1 build image selector client
  shift
  case $engine in
    docker) build=build-image.sh image=cephaloproxy:test selector= ;;
    podman) build=build-image-podman.sh image=localhost/cephaloproxy:test selector=podman ;;
    *) die "unknown engine \"$engine\" in CEPHALOPROXY_ENGINES; use docker, podman or both" ;;
  esac
  if ! "$here/$build" "$image"; then
    log "image build with $engine failed; its integration tests not run"
    failed=$((failed + 1))
    printf '%-20s %s\n' "integration/$engine" "image build failed" >>"$results"
    return
  fi
  client=$(CEPHALOPROXY_DOCKER=$selector docker_cli)
  CEPHALOPROXY_IMAGE=$image CEPHALOPROXY_DOCKER=$client \
    suite "integration/$engine" "$deno" test --allow-read --allow-write --allow-run \
    --allow-env --allow-net --allow-sys tests/integration/ "$@"
}

for engine in ${CEPHALOPROXY_ENGINES:-docker podman}; do
  integration "$engine" "$@"
done

echo
cat "$results"
[ "$ignored" = 0 ] || echo "($ignored ignored tests are not counted as passed)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
