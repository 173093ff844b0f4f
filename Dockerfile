# syntax=docker/dockerfile:1
# One multi-stage build with a target per service: api, worker, migrator.
#   docker build --target api -t task-scheduler-api:dev .
# Runtime images hold production dependencies only, run as the numeric non-root user 10001 with
# files owned by root (so a read-only root filesystem works: the app writes nothing but /tmp),
# and start under tini, which forwards SIGTERM to node and reaps zombies. Node is started through
# scripts/node-heap-entrypoint.sh, which sets V8's heap limit to 75 % of the container's memory
# limit (read from the cgroup; none found: node's default; NODE_OPTIONS may set its own).
# test/k8s/image-install.test.ts replays the runtime stage's install and COPYs in a temp dir and
# starts each target's CMD from there, so a missing runtime dependency fails CI without Docker.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- compile TypeScript ---
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.console.json ./
COPY services ./services
RUN npm run build

# --- production dependencies only ---
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- shared runtime ---
FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 # npm and corepack are not needed at run time; fewer binaries, fewer CVEs to patch.
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
# dist/services (the services) and dist/console (the web console's files, served by the api).
COPY --from=build /app/dist ./dist
# Lua scripts are read at run time from beside the adapter's source path.
COPY services/core/queue/lua ./services/core/queue/lua
COPY services/core/tenancy/lua ./services/core/tenancy/lua
COPY migrations ./migrations
COPY scripts/node-heap-entrypoint.sh ./scripts/
# Numeric, so Kubernetes can check runAsNonRoot; it owns nothing in the image.
USER 10001:10001
STOPSIGNAL SIGTERM
# sh runs the script (no exec bit needed) and it execs node, so node stays tini's child.
ENTRYPOINT ["/usr/bin/tini", "--", "/bin/sh", "/app/scripts/node-heap-entrypoint.sh"]

FROM runtime AS api
EXPOSE 8080 2112
CMD ["node", "dist/services/api/main.js"]

FROM runtime AS worker
EXPOSE 2113
# Node flags: services/worker/node-flags.ts.
CMD ["node", "--max-semi-space-size=8", "dist/services/worker/main.js"]

FROM runtime AS migrator
CMD ["node", "dist/services/migrator/main.js"]
