# CephaloProxy: Squid 6 (OpenSSL build, SSL-bump capable) on a distroless
# runtime, started and supervised by a TypeScript entrypoint run by Deno.
#
# The three bases are build args so that machines without registry access
# can pass local equivalents (scripts/build-bases.sh builds them).
ARG BUILDER_IMAGE=debian:trixie-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian13
ARG DENO_IMAGE=denoland/deno:bin-2.9.6

# Stage: the Deno runtime binary, from the official "bin" image.
FROM ${DENO_IMAGE} AS deno

# Stage: the runtime base, named so the squid stage can read its records.
FROM ${RUNTIME_IMAGE} AS runtime-base

# Stage: install Debian's Squid and collect only what it needs to run.
FROM ${BUILDER_IMAGE} AS squid
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends squid-openssl tini >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY --from=runtime-base /var/lib/dpkg/status.d /base-status.d
COPY --from=runtime-base /etc/passwd /etc/group /base-etc/
COPY scripts/collect-squid.sh /usr/local/bin/collect-squid.sh
# State directories are 1000:0 and group-writable. /run has no squid/:
# the entrypoint creates it (group 0 may write /run), so that a tmpfs on
# /var/run/squid keeps mode 1777 under Podman as under Docker.
RUN collect-squid.sh /out /base-status.d \
 && mkdir -p /out/etc \
 && cp /base-etc/passwd /base-etc/group /out/etc/ \
 && echo 'squid:x:1000:0:CephaloProxy:/var/lib/squid:/sbin/nologin' >>/out/etc/passwd \
 && for dir in spool/squid lib/squid log/squid cache/squid; do \
      install -d -m 0775 -o 1000 -g 0 "/out/var/$dir"; \
    done \
 && install -d -m 0775 -o 0 -g 0 /out/run \
 && install -d -m 0755 /out/etc/squid/conf.d /out/etc/squid/ssl_cert

# Stage: the SBOM (SPDX 2.3), written from what the runtime stage copies
# in: the dpkg records of the base and of the squid stage, Deno and src/.
FROM ${BUILDER_IMAGE} AS sbom
COPY --from=deno /deno /usr/local/bin/deno
COPY --from=runtime-base /var/lib/dpkg/status.d /in/status.d/base
COPY --from=squid /out/var/lib/dpkg/status.d /in/status.d/squid
COPY scripts/sbom.ts /in/sbom.ts
COPY src/ /in/src/
# Fixes the SBOM's "created" time when passed; unset, it is the epoch.
ARG SOURCE_DATE_EPOCH
RUN version=$(deno --version | awk 'NR == 1 {print $2}') \
 && DENO_NO_UPDATE_CHECK=1 deno run --no-config --no-lock --no-remote --no-npm \
      --allow-read=/in,/usr/local/bin/deno --allow-env=SOURCE_DATE_EPOCH \
      /in/sbom.ts --status-dir /in/status.d/base --status-dir /in/status.d/squid \
      --deno-version "$version" --deno-binary /usr/local/bin/deno --src /in/src \
      >/sbom.spdx.json

# Stage: the runtime. No shell, no package manager; USER 1000 in group 0
# with group-writable state directories, so OpenShift's arbitrary UIDs work.
FROM runtime-base
COPY --from=squid /out/ /
COPY --from=deno /deno /usr/bin/deno
COPY src/default-squid.conf /usr/share/cephaloproxy/squid.conf
COPY src/ /opt/cephaloproxy/src/
COPY --from=sbom /sbom.spdx.json /usr/share/cephaloproxy/sbom.spdx.json

ENV HEALTH_PORT=8080 \
    SQUID_PORT=3128 \
    LOG_LEVEL=1 \
    DENO_NO_UPDATE_CHECK=1 \
    DENO_NO_PROMPT=1 \
    NO_COLOR=1 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    DENO_DIR=/tmp/deno
USER 1000:0
WORKDIR /var/lib/squid
EXPOSE 3128 8080
STOPSIGNAL SIGTERM

# The permissions below are the entrypoint's whole reach; docs/security.md
# explains each one. To run a `deno compile` binary instead, replace the
# ENTRYPOINT with ["/usr/bin/tini", "--", "/usr/bin/cephaloproxy"].
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/bin/deno", "run", "--no-config", "--no-lock", "--no-remote", "--no-npm", \
  "--allow-read=/etc/squid,/usr/share/cephaloproxy,/var,/run,/tmp,/srv,/mnt,/cache,/data", \
  "--allow-write=/var,/run,/tmp,/srv,/mnt,/cache,/data", \
  "--allow-run=/usr/sbin/squid,/usr/lib/squid/security_file_certgen", \
  "--allow-net=0.0.0.0,127.0.0.1,localhost", \
  "--allow-env=HEALTH_PORT,SQUID_PORT,LOG_LEVEL,CEPHALOPROXY_*", \
  "--allow-sys=uid,gid,statfs,hostname", \
  "/opt/cephaloproxy/src/main.ts"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/bin/deno", "run", "--no-config", "--no-lock", "--no-remote", "--no-npm", \
  "--allow-net=127.0.0.1", "--allow-env=HEALTH_PORT", \
  "/opt/cephaloproxy/src/probe.ts"]
