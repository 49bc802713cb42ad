# syntax=docker/dockerfile:1
# Production image: release build with PostgreSQL support, run as a non-root user.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs rustfmt.toml openapi.yaml ./
COPY src src
COPY migrations migrations
COPY fixtures fixtures
RUN cargo build --release --locked --features postgres

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/threadcart threadcart
COPY --from=build /src/target/release/threadcart /usr/local/bin/threadcart
USER threadcart
WORKDIR /var/lib/threadcart
ENV THREADCART_ADDR=0.0.0.0:8080 \
    THREADCART_LOG_FORMAT=json \
    THREADCART_DEMO=false \
    DATABASE_URL=sqlite:///var/lib/threadcart/threadcart.db
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz >/dev/null || exit 1
ENTRYPOINT ["threadcart"]
CMD ["serve"]
