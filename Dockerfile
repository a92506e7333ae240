# syntax=docker/dockerfile:1
# Canopy's container image: the release binary alone on distroless (glibc, CA certificates, no
# shell, no package manager), running as the non-root user 65532.
#
#   docker build -t canopy:0.1.0 .
#   docker run --rm -v "$PWD/my-config:/etc/canopy:ro" -p 6443:6443 -p 6444:6444 canopy:0.1.0
#
# The config file's server.listen / server.adminListen must bind 0.0.0.0 inside a container
# (the defaults are loopback). The Helm chart (charts/canopy) does this for you.

# Build and runtime bases share Debian 12's glibc; bump them together.
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Line tables are for local debugging; the image ships the symbol table only.
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    CARGO_TERM_COLOR=never
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml declares the end-to-end test targets by path; the manifest must find them even
# though only the binary is built.
COPY integration-tests/tests ./integration-tests/tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin canopy \
    && install -m 0755 target/release/canopy /canopy

FROM ${RUNTIME_IMAGE}
COPY --from=build /canopy /canopy
USER 65532:65532
# 6443: tenant-facing TLS (server.listen); 6444: /livez /readyz /metrics (server.adminListen).
EXPOSE 6443 6444
ENTRYPOINT ["/canopy", "serve"]
CMD ["--config", "/etc/canopy/config.yaml"]
