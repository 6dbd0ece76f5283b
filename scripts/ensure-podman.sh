#!/usr/bin/env bash
# Make sure Podman can run the image as root on a host without systemd:
# install Debian's podman, runc, aardvark-dns and netavark when missing,
# and write /etc/containers/containers.conf when it is absent or differs.
#   scripts/ensure-podman.sh
#
# The settings, and why (each measured on a Debian 12 host with cgroup v1
# hybrid mode and no systemd):
#   runtime = "runc"        crun refuses cgroup v1 hybrid mode.
#   cgroup_manager          "cgroupfs": the systemd manager needs systemd.
#   events_logger = "file"  journald is not there either.
#   default_ulimits         Podman's defaults raise RLIMIT_NOFILE/NPROC
#                           past what the runtime may set here; 16384 open
#                           files (Squid wants many) and 32768 processes
#                           fit under the host's hard limits (65536 fails).
# Healthchecks: Podman schedules them with systemd timers, so here they
# never run on their own; `podman healthcheck run CONTAINER` runs one.
# Compose: Podman 4.3 has no `podman compose`; docker-compose drives
# Podman through its Docker-compatible API socket, which this script
# starts (`podman system service`) when nothing answers on it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

conf=/etc/containers/containers.conf
want='# Written by CephaloProxy scripts/ensure-podman.sh; see that script.
[containers]
default_ulimits = [
  "nofile=16384:16384",
  "nproc=32768:32768",
]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
'

missing=()
[ -x /usr/bin/podman ] || missing+=(podman)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc)
for helper in aardvark-dns netavark; do
  [ -x "/usr/lib/podman/$helper" ] || command -v "$helper" >/dev/null || missing+=("$helper")
done
install_debian_packages "${missing[@]}"

if [ "$(cat "$conf" 2>/dev/null)" != "$(printf '%s' "$want")" ]; then
  [ "$(id -u)" = 0 ] \
    || die "$conf differs from what scripts/ensure-podman.sh writes; run it as root"
  if [ -e "$conf" ]; then
    cp "$conf" "$conf.bak"
    log "replacing $conf (old one kept as $conf.bak)"
  else
    log "writing $conf"
  fi
  mkdir -p "$(dirname "$conf")"
  printf '%s' "$want" >"$conf"
fi

podman info >/dev/null 2>&1 || die "podman info fails; see: podman info"

ensure_api_service /run/podman/podman.sock /var/log/podman-service.log
