#!/bin/sh
# collect-squid.sh OUT BASE_STATUS_DIR: copy into OUT what Squid needs at
# run time, taken from the Debian packages installed in the build stage:
#   - squid-openssl's binary and security_file_certgen;
#   - tini, the init that reaps orphaned helper processes;
#   - every helper in /usr/lib/squid that is a compiled (ELF) program;
#     script helpers are left out, their interpreters are not in the image;
#   - data files (error pages, icons, mime.conf, errorpage.css);
#   - the shared libraries ldd finds for those binaries, except the ones
#     the runtime base already has (its packages are in BASE_STATUS_DIR);
#   - a dpkg record per package any copied file came from, listing only
#     the files copied, so scanners see exactly what is there.
# Runs in the build stage of the Dockerfile; the runtime has no shell.
set -eu
out=$1
base_status=$2
files=$(mktemp)
libs=$(mktemp)

add() { # add PATH: copy PATH (file or symlink) into OUT and note it
  mkdir -p "$out$(dirname "$1")"
  cp -a "$1" "$out$1"
  echo "$1" >>"$files"
}

is_elf() { [ "$(od -An -c -N 4 "$1" | tr -d ' ')" = '177ELF' ]; }

# Binaries.
add /usr/sbin/squid-openssl
ln -s squid-openssl "$out/usr/sbin/squid"
add /usr/bin/tini
for helper in /usr/lib/squid/*; do
  is_elf "$helper" && add "$helper"
done
mkdir -p "$out/usr/libexec"
ln -s ../lib/squid "$out/usr/libexec/squid"

# Data files; error pages live in squid-langpack behind a symlink.
find /usr/share/squid /usr/share/squid-langpack -type f -o -type l |
  while read -r path; do add "$path"; done
add /etc/squid/errorpage.css

# Shared libraries, with the soname link and the file it points at.
for bin in "$out"/usr/sbin/squid-openssl "$out"/usr/bin/tini "$out"/usr/lib/squid/*; do
  ldd "$bin" | awk '/=> \//{print $3} /^\t\/lib/{print $1}'
done | sort -u | while read -r lib; do
  real=$(readlink -f "$lib")
  link="$(readlink -f "$(dirname "$lib")")/$(basename "$lib")"
  pkg=$(dpkg -S "$real" 2>/dev/null | head -n 1 | cut -d: -f1)
  [ -n "$pkg" ] || pkg=$(dpkg -S "/lib${real#/usr/lib}" | head -n 1 | cut -d: -f1)
  [ -f "$base_status/$pkg" ] && continue
  add "$real"
  [ "$link" = "$real" ] || add "$link"
  echo "$pkg" >>"$libs"
done

# dpkg records: one per package, control fields plus md5sums of kept files.
status="$out/var/lib/dpkg/status.d"
mkdir -p "$status"
pkgs=$(sort -u "$libs"; printf '%s\n' squid-openssl squid squid-common squid-langpack tini)
for pkg in $(printf '%s\n' $pkgs | sort -u); do
  # Control fields up to Description, with Conffiles cut down to the
  # files actually copied.
  dpkg-query -s "$pkg" | awk -v list="$files" '
    BEGIN { while ((getline f < list) > 0) kept[f] = 1 }
    /^Description:/ { exit }
    /^Conffiles:/ { conf = 1; print; next }
    conf && /^ / { if ($1 in kept) print; next }
    { conf = 0; print }' >"$status/$pkg"
  md5=/var/lib/dpkg/info/$pkg.md5sums
  [ -f "$md5" ] || md5=$(ls /var/lib/dpkg/info/"$pkg":*.md5sums 2>/dev/null | head -n 1)
  while read -r sum path; do
    if grep -qx "/$path" "$files" || grep -qx "/usr/${path#usr/}" "$files"; then
      printf '%s  %s\n' "$sum" "$path"
    fi
  done <"$md5" >"$status/$pkg.md5sums"
done

# No helper runs as root: pinger is setuid root in Debian, and without the
# bit it simply gets no raw ICMP socket (pinger_enable off silences it).
find "$out" -type f -perm /6000 -exec chmod ug-s {} +

# Every copied file must be covered by a record: md5sums, or Conffiles.
missing=0
while read -r path; do
  [ -L "$path" ] && continue
  grep -q -e "  ${path#/}\$" -e "^ $path " "$status"/* \
    || { echo "no dpkg record covers $path" >&2; missing=1; }
done <"$files"
[ "$missing" = 0 ]
