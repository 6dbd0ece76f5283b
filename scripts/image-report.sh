#!/usr/bin/env bash
# Print what the image holds: size, file count, the Debian packages its
# dpkg records name, and every regular file no record covers (expected:
# the entrypoint, Deno, the default config, the SBOM, passwd/group, the CA
# bundle generated from ca-certificates, and the records themselves), and
# what the SBOM lists.
#   scripts/image-report.sh [IMAGE]   (default cephaloproxy:dev)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

image=${1:-cephaloproxy:dev}
docker=$(docker_cli)
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "${cid:-}" ] && "$docker" rm "$cid" >/dev/null' EXIT

cid=$("$docker" create "$image")
"$docker" export "$cid" >"$work/rootfs.tar"
tar -tvf "$work/rootfs.tar" >"$work/listing"
mkdir "$work/root"
tar -xf "$work/rootfs.tar" -C "$work/root" var/lib/dpkg/status.d
sbom=usr/share/cephaloproxy/sbom.spdx.json
tar -xf "$work/rootfs.tar" -C "$work/root" "$sbom" 2>/dev/null || true

size=$("$docker" image inspect -f '{{.Size}}' "$image")
files=$(grep -c '^-' "$work/listing")
printf 'image            %s\n' "$image"
printf 'size             %.1f MB (%s bytes; target <= 150 MB)\n' \
  "$(echo "$size / 1000000" | bc -l)" "$size"
printf 'regular files    %s\n' "$files"

status="$work/root/var/lib/dpkg/status.d"
records=$(find "$status" -type f ! -name '*.md5sums' | sort)
printf 'dpkg records     %s packages\n' "$(wc -l <<<"$records")"
for record in $records; do
  printf '  %-28s %s\n' "$(awk -F': ' '/^Package:/{print $2}' "$record")" \
    "$(awk -F': ' '/^Version:/{print $2}' "$record")"
done

# Regular files covered neither by md5sums nor by Conffiles.
cat "$status"/*.md5sums | awk '{print $2}' | sort -u >"$work/covered"
grep -h '^ /' "$status"/* | awk '{print substr($1, 2)}' >>"$work/covered"
sort -u -o "$work/covered" "$work/covered"
grep '^-' "$work/listing" | awk '{print $6}' | sort -u >"$work/present"
comm -23 "$work/present" "$work/covered" | grep -v '^var/lib/dpkg/status.d/' >"$work/extra" || true
printf 'files without a dpkg record: %s\n' "$(wc -l <"$work/extra")"
sed 's/^/  /' "$work/extra"

# The SBOM the build wrote (scripts/sbom.ts): one line of counts.
if [ -f "$work/root/$sbom" ]; then
  printf 'SBOM             /%s: %s packages (%s Debian), %s entrypoint files\n' "$sbom" \
    "$(grep -c '"SPDXID": "SPDXRef-Package-' "$work/root/$sbom")" \
    "$(grep -c '"referenceLocator": "pkg:deb/' "$work/root/$sbom")" \
    "$(grep -c '"fileName": ' "$work/root/$sbom")"
else
  printf 'SBOM             none at /%s\n' "$sbom"
fi
