# syntax=docker/dockerfile:1
# One multi-stage build with a target per service: api, worker, migrator.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY services ./services
RUN npm run build

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
# Lua scripts are read at run time from beside the adapter's source path.
COPY services/core/queue/lua ./services/core/queue/lua
COPY migrations ./migrations
# Numeric non-root user so Kubernetes can verify runAsNonRoot.
USER 10001:10001
# tini as PID 1 forwards SIGTERM to node and reaps zombies.
ENTRYPOINT ["/usr/bin/tini", "--"]

FROM runtime AS api
EXPOSE 8080 2112
CMD ["node", "dist/services/api/main.js"]

FROM runtime AS worker
EXPOSE 2113
CMD ["node", "dist/services/worker/main.js"]

FROM runtime AS migrator
CMD ["node", "dist/services/migrator/main.js"]
