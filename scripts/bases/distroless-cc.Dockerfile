# Local stand-in for gcr.io/distroless/cc-debian13, built from the same
# Debian 13 packages when no registry can be reached. Like distroless, every
# package gets a dpkg record in /var/lib/dpkg/status.d/ and nothing else of
# dpkg is kept.
ARG BUILDER_IMAGE=debian:trixie-slim

# Stage: download and unpack the packages distroless cc is made of.
FROM ${BUILDER_IMAGE} AS unpack
COPY unpack-debs.sh /usr/local/bin/unpack-debs.sh
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null \
 && mkdir -p /rootfs \
 && /usr/local/bin/unpack-debs.sh /rootfs \
      base-files netbase tzdata media-types ca-certificates gcc-14-base \
      libc6 libgcc-s1 libgomp1 libstdc++6 libssl3t64 \
 && install -d -m 0755 /rootfs/etc/ssl/certs \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >/rootfs/etc/passwd \
 && printf 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n' >/rootfs/etc/group \
 && install -d -m 1777 /rootfs/tmp \
 && install -d -m 0755 /rootfs/run \
 && { [ -e /rootfs/var/run ] || ln -s /run /rootfs/var/run; } \
 && install -d -m 0700 /rootfs/root \
 && install -d -m 0700 -o 65532 -g 65532 /rootfs/home/nonroot

# Stage: the runtime root, nothing but the unpacked files.
FROM scratch
COPY --from=unpack /rootfs/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
