# sidecar-proxy image: the compiled binary alone on distroless (SPEC §6 Delivery, issue #6).
#
#   docker build -t sidecar-proxy:0.1.0 .     (package.json's version: what `inject` writes by default)
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/sidecar-proxy:TAG --push .
#
# NOT BUILT HERE: the development machine has no Docker engine. What this image relies on is
# proven by tests/distroless.e2e.test.ts instead: the binary runs and proxies real requests in a
# chroot holding only itself, the libraries `ldd` lists (glibc: libc, libm, libpthread, libdl,
# ld-linux — all in distroless/base) and /proc, with no /etc/hosts and no shell.
#
# Pin both base images by digest for production builds.

# --- build: the same toolchain as CI (.ci/run). The lockfile is npm's package-lock.json, so
# `npm ci` in a Node image installs exactly the locked Bun (the `bun` devDependency, 1.4.4);
# oven/bun + `bun install --frozen-lockfile` would need a bun.lock this repository does not keep.
# The build stage runs on the builder's own platform and cross-compiles for the target one
# (Bun fetches the target runtime from the npm registry), so multi-arch builds need no emulation.
FROM --platform=$BUILDPLATFORM node:20-bookworm-slim AS build
ARG TARGETARCH
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json build.ts proxy.ts ./
COPY lib ./lib
RUN case "${TARGETARCH:-amd64}" in \
      amd64) target=linux-x64 ;; \
      arm64) target=linux-arm64 ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && node_modules/.bin/bun build.ts "$target" \
 && cp "dist/sidecar-proxy-$target" /sidecar-proxy

# --- run: glibc and CA certificates, nothing else (no shell, no package manager). `base`, not
# `cc`: the binary needs no libstdc++/libgcc_s (ldd). /tmp exists for --ready-file.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /sidecar-proxy /sidecar-proxy
# nonroot (65532), numeric so Kubernetes can verify runAsNonRoot; every default port is > 1024.
USER 65532:65532
# 4143 reverse (inbound), 4140 forward (binds loopback by default: only the pod's own containers
# use it), 4100 admin (binds 127.0.0.1 by default; deploy/example.yaml sets --admin-bind 0.0.0.0
# for kubelet probes).
EXPOSE 4143 4140 4100
# No HEALTHCHECK: there is no shell or HTTP client in the image; orchestrators probe /healthz and
# /readyz on the admin port (deploy/example.yaml).
ENTRYPOINT ["/sidecar-proxy"]
