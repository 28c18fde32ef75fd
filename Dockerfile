# syntax=docker/dockerfile:1
# dce-operator: a static (musl) release build, run from a distroless image as a non-root user.
# Nothing is written to the filesystem at run time, so the root filesystem can be read-only. TLS
# is rustls (no OpenSSL); the CA bundle for AWS comes from the base image.
#
#   make image                      # docker build -t dce-operator:<version> .

FROM docker.io/library/rust:1.95-alpine AS build
# A C toolchain for the crates that build C or assembly (ring, psm).
RUN apk add --no-cache musl-dev gcc g++ make
WORKDIR /src
# The whole workspace: Cargo resolves every member even when building one binary.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY e2e e2e
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p dce-operator --bin dce-operator \
    && cp target/release/dce-operator /dce-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /dce-operator /usr/local/bin/dce-operator
# distroless' nonroot user, numeric so runAsNonRoot can verify it.
USER 65532:65532
# REST API, and health + metrics.
EXPOSE 8000 8080
ENTRYPOINT ["/usr/local/bin/dce-operator"]
