# Local stand-in for the official denoland/deno "bin" image: the pinned
# binary at /deno, taken from the npm package on the host.
FROM scratch
COPY deno /deno
