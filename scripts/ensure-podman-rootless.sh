#!/usr/bin/env bash
# Make sure an unprivileged user can run the image with rootless Podman on
# a host without systemd. Run it as root. It creates the user when needed,
# prepares what logind would otherwise provide, and prints only the user
# name on stdout. Then run Podman as that user, e.g.
#   u=$(scripts/ensure-podman-rootless.sh)
#   docker save cephaloproxy:test | runuser -u "$u" -- podman load
#   runuser -u "$u" -- podman run -d -p 127.0.0.1::3128 localhost/cephaloproxy:test
#
#   scripts/ensure-podman-rootless.sh [USER]     (default user: cpodman)
#
# The settings, and why (each measured with Debian 12's podman 4.3.1 and
# runc on a host with cgroup v1 hybrid mode and no systemd):
#   scripts/ensure-podman.sh  Installs Podman and writes
#                           /etc/containers/containers.conf. Rootless Podman
#                           reads that file too, and its runc, cgroupfs and
#                           file events logger are needed for the same
#                           reasons as under root. Its default_ulimits
#                           (16384 open files, 32768 processes) also fit
#                           rootless. Open files cannot go past the user's
#                           hard limit (20000 here; 20001 fails with "error
#                           setting rlimit type 7: operation not
#                           permitted"). Processes cannot go past 32768,
#                           because rootless Podman lowers its own
#                           RLIMIT_NPROC to 32768 at start ("error setting
#                           rlimit type 6" above that).
#   uidmap, slirp4netns     newuidmap/newgidmap map the user's subordinate
#                           IDs into the user namespace. slirp4netns gives
#                           rootless containers and networks their network
#                           stack.
#   the user                Its own account with a home directory for
#                           Podman's store (~/.local/share/containers).
#   /etc/subuid, subgid     2000000000 subordinate IDs each, so that every
#                           container UID and GID up to 1999999999 maps:
#                           the image's 1000 and nobody's 65534, and also
#                           OpenShift's arbitrary UIDs (1000000000 and up).
#                           With the 65536 that useradd gives,
#                           `--user=1000680000:0` fails with "unable to setup
#                           user: invalid argument". A range the user already
#                           has stays first, so the files already in its
#                           store keep their owners; the rest is added above
#                           SUB_UID_MAX, out of useradd's way. IDs are 32-bit,
#                           so one such user fits on a host. Container root
#                           is the user itself, container group 0 its group.
#   /run/user/UID           XDG_RUNTIME_DIR, owned by the user, mode 700.
#                           Without logind nothing else creates it. Podman
#                           finds it without the variable being set.
#   /dev/net/tun 0666       slirp4netns opens it as the user. Debian's udev
#                           rule sets this mode, but without udev the node
#                           stays 0600 root, and every container with a
#                           network fails with: slirp4netns failed:
#                           "open(\"/dev/net/tun\"): Permission denied".
#                           The mode is reset at boot, so this is checked
#                           at every run.
#   storage driver overlay  ~/.config/containers/storage.conf. Without it
#                           Podman 4.3 picks vfs, which copies every layer
#                           in full: the image took 783 MB and 19 s to load,
#                           against 287 MB (with the Debian base and three
#                           containers) and 4 s on native overlay (kernel
#                           5.13 or later, no fuse-overlayfs needed).
#   netns = "bridge"        ~/.config/containers/containers.conf, read over
#                           /etc/containers/containers.conf (only this key
#                           differs). Rootless Podman puts a container with
#                           no --network on slirp4netns, where it has no IP
#                           address and cannot reach another container, so
#                           the documented `docker run` of an origin and a
#                           proxy fails ("Invalid URL: 'http://:8000/...'"
#                           from an empty .NetworkSettings.IPAddress). On
#                           "bridge" it joins Podman's default network, as
#                           under root.
# The same limits as under root: healthchecks never run on their own (there
# are no systemd timers; `podman healthcheck run` works). On cgroup v1,
# rootless Podman ignores --memory, --cpus and --pids-limit ("Resource limits
# are not supported and ignored on cgroups V1 rootless systems"). The
# Podman command that starts the user's pause process (the first one after
# a boot) warns that "/" is not a shared mount; harmless here, and the
# `podman info` at the end takes that warning.
# The integration tests chown host files and unpack image layers with their
# owners, as root; as the user, run them inside its user namespace:
#   runuser -u "$u" -- env CEPHALOPROXY_DOCKER=podman CEPHALOPROXY_IMAGE=... \
#     podman unshare node_modules/.bin/deno test ... tests/integration/
# (with the repo and node_modules readable and DENO_DIR writable by it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

user=${1:-cpodman}
[ "$(id -u)" = 0 ] || die "run scripts/ensure-podman-rootless.sh as root"

"$here/ensure-podman.sh"

missing=()
[ -x /usr/bin/newuidmap ] && [ -x /usr/bin/newgidmap ] || missing+=(uidmap)
command -v slirp4netns >/dev/null || missing+=(slirp4netns)
install_debian_packages "${missing[@]}"

if ! id -u "$user" >/dev/null 2>&1; then
  log "creating user $user"
  useradd --create-home --user-group --shell /bin/bash "$user" >&2
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
home=$(getent passwd "$user" | cut -d: -f6)
[ "$uid" != 0 ] || die "$user is root; rootless Podman needs an unprivileged user"
[ -d "$home" ] || die "$user has no home directory ($home)"

# subids FILE OPTION: make sure FILE gives the user $want_ids IDs in all,
# adding what is missing as one range above SUB_UID_MAX and above every
# range FILE already hands out. Returns 1 when it added one.
want_ids=2000000000
subids() {
  local file=$1 option=$2 have floor start count
  touch "$file"
  have=$(awk -F: -v u="$user" -v n="$uid" \
    '$1 == u || $1 == n { s += $3 } END { printf "%.0f\n", s }' "$file")
  [ "$have" -lt "$want_ids" ] || return 0
  floor=$(awk '$1 == "SUB_UID_MAX" { print $2 }' /etc/login.defs 2>/dev/null)
  start=$(awk -F: -v m="${floor:-600100000}" \
    '$2 + $3 > m { m = $2 + $3 } END { printf "%.0f\n", m }' "$file")
  count=$((want_ids - have))
  [ $((start + count)) -le 4294967294 ] || die "no room in $file for $count more IDs for $user"
  log "giving $user the IDs $start-$((start + count - 1)) in $file"
  usermod "$option" "$start-$((start + count - 1))" "$user" >&2
  return 1
}
migrate=0
subids /etc/subuid --add-subuids || migrate=1
subids /etc/subgid --add-subgids || migrate=1

run=/run/user/$uid
if [ "$(stat -c '%u:%g %a' "$run" 2>/dev/null)" != "$uid:$gid 700" ]; then
  log "preparing $run"
  mkdir -p "$run"
  chown "$uid:$gid" "$run"
  chmod 700 "$run"
fi

if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  log "making /dev/net/tun usable by everyone, as Debian's udev rule does"
  chmod 0666 /dev/net/tun
fi

# user_file PATH TEXT: write one of the user's config files when it differs.
user_file() {
  local path=$1 text=$2
  [ "$(cat "$path" 2>/dev/null)" != "$(printf '%s' "$text")" ] || return 0
  if [ -e "$path" ]; then
    runuser -u "$user" -- cp "$path" "$path.bak"
    log "replacing $path (old one kept as $path.bak)"
  else
    log "writing $path"
  fi
  runuser -u "$user" -- mkdir -p "$(dirname "$path")"
  printf '%s' "$text" | runuser -u "$user" -- tee "$path" >/dev/null
}
header='# Written by CephaloProxy scripts/ensure-podman-rootless.sh; see that script.'

# podman_error: Podman's first error line for `podman info` as the user,
# empty when it works.
podman_error() {
  local out
  out=$(runuser -u "$user" -- podman info 2>&1 >/dev/null) && return 0
  sed -n 's/.*level=error msg="\(.*\)"$/\1/p' <<<"$out" | grep -m 1 . || tail -n 1 <<<"$out"
}

# When every process of the user was killed (the pause process, conmon and
# the containers) but /run kept, Podman refuses every command: "invalid
# internal status, try resetting the pause process with \"podman system
# migrate\"". It names its own fix; apply it once.
error=$(podman_error)
if grep -q 'podman system migrate' <<<"$error"; then
  log "$user's Podman pause process is gone ($error);" \
    "running podman system migrate, which marks its lost containers stopped"
  runuser -u "$user" -- podman system migrate >&2
fi

storage=$home/.config/containers/storage.conf
if ! grep -qx 'driver = "overlay"' "$storage" 2>/dev/null; then
  # A store made with another driver keeps it, and Podman then refuses
  # the new one; empty it first (it holds only what was loaded into it).
  driver=$(runuser -u "$user" -- podman info --format '{{.Store.GraphDriverName}}' 2>/dev/null \
    || true)
  if [ -n "$driver" ] && [ "$driver" != overlay ]; then
    log "resetting $user's Podman store (driver $driver)"
    runuser -u "$user" -- podman system reset --force >&2
  fi
fi
user_file "$storage" "$header
[storage]
driver = \"overlay\"
"
user_file "$home/.config/containers/containers.conf" "$header
[containers]
netns = \"bridge\"
"

# The pause process keeps the ID mapping it started with.
if [ "$migrate" = 1 ]; then
  log "restarting $user's Podman pause process for the new IDs (stops its containers)"
  runuser -u "$user" -- podman system migrate >/dev/null 2>&1 || true
fi

nofile=$(runuser -u "$user" -- sh -c 'ulimit -Hn')
[ "$nofile" = unlimited ] || [ "$nofile" -ge 16384 ] \
  || die "$user may open only $nofile files; the containers get 16384" \
    "(raise it in /etc/security/limits.conf)"

error=$(podman_error)
[ -z "$error" ] \
  || die "podman info fails for $user ($error); see: runuser -u $user -- podman info"
mode=$(runuser -u "$user" -- podman info \
  --format '{{.Host.Security.Rootless}} {{.Store.GraphDriverName}}' 2>/dev/null)
[ "$mode" = "true overlay" ] \
  || die "$user's Podman is not rootless on overlay; see: runuser -u $user -- podman info"
# Every container ID up to want_ids - 1 must map (the uid_map's sizes).
mapped=$(runuser -u "$user" -- podman unshare cat /proc/self/uid_map 2>/dev/null \
  | awk '{ s += $3 } END { printf "%.0f\n", s }')
[ "$mapped" -ge "$want_ids" ] \
  || die "$user's containers map only $mapped IDs; see /etc/subuid and:" \
    "runuser -u $user -- podman system migrate"

# drop_lost_dns_entries: removes from aardvark-dns's records the containers
# that are no longer up. Containers lost with their conmon (killed, or
# running at a reboot: this store's run root is under /tmp) are never torn
# down, so their records stay. Those keep aardvark-dns running after the
# last container leaves, inside the rootless network namespace Podman then
# deletes; the next namespace gets no DNS, and names on user-defined
# networks stop resolving (Squid: ERR_DNS_FAIL). Without records it stops,
# and Podman starts it afresh in the right namespace.
drop_lost_dns_entries() {
  local dir up file kept pid
  dir=$(runuser -u "$user" -- podman info --format '{{.Store.RunRoot}}')/networks/aardvark-dns
  [ -d "$dir" ] || return 0
  up=$(runuser -u "$user" -- podman ps -a -q --no-trunc --filter status=running \
    --filter status=paused --filter status=created | tr '\n' ' ')

  # A record file: the network's gateways, then one line per container,
  # starting with its full ID.
  for file in "$dir"/*; do
    [ -f "$file" ] && [ "${file##*/}" != aardvark.pid ] || continue
    kept=$(awk -v up="$up" 'BEGIN { split(up, ids, " "); for (i in ids) live[ids[i]] }
      NR == 1 || ($1 in live)' "$file")
    [ "$kept" != "$(cat "$file")" ] || continue
    log "dropping the DNS records of $user's lost containers from $file"
    if [ "$(wc -l <<<"$kept")" -gt 1 ]; then
      printf '%s\n' "$kept" | runuser -u "$user" -- tee "$file" >/dev/null
    else
      rm -f "$file"
    fi
  done

  [ -z "$(find "$dir" -maxdepth 1 -type f ! -name aardvark.pid)" ] || return 0
  pid=$(cat "$dir/aardvark.pid" 2>/dev/null) || return 0
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = aardvark-dns ]; then
    log "stopping $user's aardvark-dns (PID $pid): no container needs it"
    kill "$pid"
  fi
  rm -f "$dir/aardvark.pid"
}
drop_lost_dns_entries

# Compose reaches rootless Podman through the user's own API socket.
ensure_api_service "$run/podman/podman.sock" "/var/log/podman-service-$user.log" \
  runuser -u "$user" -- env XDG_RUNTIME_DIR="$run"
printf '%s\n' "$user"
