#!/usr/bin/env bash
# Run every test suite: static checks, unit tests, then the integration
# tests against a freshly built image under each container engine: Docker,
# Podman as root and rootless Podman, reported side by side (with the tests
# of the rootless set-up script before rootless Podman's). Does all
# set-up on a fresh machine (npm toolchain, Docker engine, Podman, a user
# for rootless Podman, base images). Ends with one plain line,
# "N passed, N failed", summing every suite.
#   scripts/test.sh [deno test filter args...]
# CEPHALOPROXY_ENGINES picks the engines (default
# "docker podman podman-rootless").
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
  printf '%-28s %4s passed, %4s failed, %4s ignored\n' "$name" "$p" "$f" "${i:-0}" >>"$results"
  rm -f "$out"
}

# static SUITE COMMAND...: a check that passes or fails as one test.
static() {
  local name=$1
  shift
  log "check $name: $*"
  if "$@" >&2; then passed=$((passed + 1)); r="1 passed, 0 failed"
  else failed=$((failed + 1)); r="0 passed, 1 failed"; fi
  printf '%-28s %s\n' "$name" "$r" >>"$results"
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
  local tests=(test --allow-read --allow-write --allow-run --allow-env --allow-net
    --allow-sys tests/integration/ "$@")
  case $engine in
    docker) build=build-image.sh image=cephaloproxy:test selector= ;;
    podman | podman-rootless)
      build=build-image-podman.sh image=localhost/cephaloproxy:test selector=podman
      ;;
    *) die "unknown engine \"$engine\" in CEPHALOPROXY_ENGINES;" \
      "use docker, podman or podman-rootless" ;;
  esac
  if ! "$here/$build" "$image" \
    || { [ "$engine" = podman-rootless ] && ! rootless_setup "$image"; }; then
    log "image build or set-up for $engine failed; its integration tests not run"
    failed=$((failed + 1))
    printf '%-28s %s\n' "integration/$engine" "image build or set-up failed" >>"$results"
    return
  fi
  client=$(CEPHALOPROXY_DOCKER=$selector docker_cli)
  if [ "$engine" = podman-rootless ]; then
    # As root: these kill the user's processes and run the set-up script
    # again, and the integration tests then run on what it repaired.
    CEPHALOPROXY_IMAGE=$image suite "scripts/$engine" "$deno" test --allow-read \
      --allow-run --allow-env tests/scripts/ "$@"
    # The tests chown fixtures and unpack image layers with their owners,
    # which the user may do only inside its own user namespace.
    suite "integration/$engine" runuser -u "$rootless_user" -- env NO_COLOR=1 \
      DENO_NO_UPDATE_CHECK=1 DENO_DIR="/tmp/cephaloproxy-deno-$rootless_user" \
      CEPHALOPROXY_IMAGE="$image" CEPHALOPROXY_DOCKER="$client" \
      podman unshare "$deno" "${tests[@]}"
  else
    CEPHALOPROXY_IMAGE=$image CEPHALOPROXY_DOCKER=$client \
      suite "integration/$engine" "$deno" "${tests[@]}"
  fi
}

# rootless_setup IMAGE: prepare a user for rootless Podman and copy the
# image and the bases the audit tests compare it with into its store.
rootless_setup() {
  rootless_user=$("$here/ensure-podman-rootless.sh") || return 1
  podman save -m "$1" "localhost/$BASE_BUILDER_TAG" "localhost/$BASE_RUNTIME_TAG" \
    | runuser -u "$rootless_user" -- podman load -q >&2
}

for engine in ${CEPHALOPROXY_ENGINES:-docker podman podman-rootless}; do
  integration "$engine" "$@"
done

echo
cat "$results"
[ "$ignored" = 0 ] || echo "($ignored ignored tests are not counted as passed)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
