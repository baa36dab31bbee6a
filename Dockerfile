# Petrel in a container. Build and run (README, "Run it in a container"):
#   docker build -t petrel .
#   docker run -d --name petrel --stop-timeout 45 -v petrel-data:/var/lib/petrel \
#     -v "$PWD/petrel.toml:/etc/petrel/petrel.toml:ro" -p 587:587 -p 465:465 -p 25:25 -p 8025:8025 petrel
# The image's own config listens on every interface with data in /var/lib/petrel; mount yours over
# /etc/petrel/petrel.toml (keep data_dir = "/var/lib/petrel" so the data lands in the volume).

ARG NODE_IMAGE=node:24-bookworm-slim

# Build: dev dependencies, the TypeScript compile, and better-sqlite3's native addon.
FROM ${NODE_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# A compiler for better-sqlite3 when no prebuilt binary matches this Node.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" would build before the sources are here; the addon is built next.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# Run: production dependencies and the compiled code only, as an unprivileged user.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PETREL_CONFIG=/etc/petrel/petrel.toml
RUN groupadd --system --gid 10025 petrel \
 && useradd --system --uid 10025 --gid petrel --home-dir /var/lib/petrel --shell /usr/sbin/nologin petrel \
 && mkdir -p /var/lib/petrel /etc/petrel \
 && chown petrel:petrel /var/lib/petrel \
 && chmod 0750 /var/lib/petrel \
 && printf '%s\n' \
    'data_dir = "/var/lib/petrel"' \
    'log_dir = ""' \
    '[submission]' \
    'listen = ["0.0.0.0:587"]' \
    'tls_listen = ["0.0.0.0:465"]' \
    '[inbound]' \
    'listen = ["0.0.0.0:25"]' \
    '[http]' \
    'listen = "0.0.0.0:8025"' \
    > /etc/petrel/petrel.toml
WORKDIR /opt/petrel
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY config ./config
USER petrel
VOLUME ["/var/lib/petrel"]
# 587 submission (STARTTLS), 465 submission (TLS), 25 inbound (bounces, reports), 8025 HTTP.
# Docker lets an unprivileged process bind ports below 1024 inside the container
# (net.ipv4.ip_unprivileged_port_start=0 since Docker 20.10).
EXPOSE 587 465 25 8025
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8025/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node is PID 1 and handles SIGTERM itself (drain, exit within 30 s): give `docker stop` more
# than that (--stop-timeout 45, or stop_grace_period: 45s in compose).
STOPSIGNAL SIGTERM
CMD ["node", "bin/petrel.js", "serve"]
