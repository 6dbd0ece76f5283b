#!/bin/sh
# unpack-debs.sh ROOT PACKAGE...: extract Debian packages into ROOT the way
# distroless does: files only (no maintainer scripts run), docs and man
# pages dropped except copyright, one dpkg record per package in
# ROOT/var/lib/dpkg/status.d/ (control fields plus md5sums of kept files).
# Runs inside the builder stage, which has a shell; the runtime has none.
set -eu
root=$1
shift
work=$(mktemp -d)
chmod 755 "$work"
status="$root/var/lib/dpkg/status.d"
mkdir -p "$status"
cd "$work"
apt-get download -qq "$@"
for deb in ./*.deb; do
  pkg=$(dpkg-deb -f "$deb" Package)
  mkdir -p "x/$pkg" c
  dpkg-deb -x "$deb" "x/$pkg"
  dpkg-deb -e "$deb" "c/$pkg"
  # Docs, man pages and lintian overrides are not used at run time.
  find "x/$pkg/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
  rm -rf "x/$pkg/usr/share/man" "x/$pkg/usr/share/info" "x/$pkg/usr/share/lintian"
  # Scripts whose shell the runtime does not have.
  rm -rf "x/$pkg/etc/update-motd.d" "x/$pkg/usr/sbin/update-ca-certificates"
  find "x/$pkg" -depth -type d -empty -delete
  [ -d "x/$pkg" ] && cp -a "x/$pkg/." "$root/"
  {
    awk '/^Description:/ { skip = 1; next } skip && /^ / { next } { skip = 0 } /./' \
      "c/$pkg/control"
    echo "Status: install ok installed"
    if [ -s "c/$pkg/conffiles" ]; then
      echo "Conffiles:"
      while read -r conffile; do
        [ -f "$root$conffile" ] || continue
        printf ' %s %s\n' "$conffile" "$(md5sum <"$root$conffile" | cut -d' ' -f1)"
      done <"c/$pkg/conffiles"
    fi
  } >"$status/$pkg"
  if [ -f "c/$pkg/md5sums" ]; then
    while read -r sum path; do
      [ -e "$root/$path" ] && printf '%s  %s\n' "$sum" "$path"
    done <"c/$pkg/md5sums" >"$status/$pkg.md5sums"
  fi
done
rm -rf "$work"
