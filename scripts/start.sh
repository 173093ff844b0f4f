#!/usr/bin/env bash
# `npm start`: the one-command quick start. Builds, finds Postgres and Redis (the ones named by
# POSTGRES_URL / REDIS_ADDR, or else a private `dev` pair via scripts/local-services.sh), migrates,
# then runs the API and one worker in the foreground until Ctrl-C. When a `prometheus` binary is
# installed (`bash scripts/prometheus-local.sh install`; never installed from here), a private
# Prometheus on 127.0.0.1 scrapes both and loads the alert rules in alerts/ (data under
# .data/dev/prometheus).
#
# Overrides: POSTGRES_URL, REDIS_ADDR, API_ADDR (:8080), API_METRICS_ADDR (METRICS_ADDR or :2112),
# WORKER_METRICS_ADDR (:2113), PROMETHEUS_PORT (9091, or a free port when taken). Every other
# setting is passed through to the services as-is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'start: %s\n' "$*" >&2; }
# Hide the password of a postgres:// URL before printing it.
masked() { printf '%s' "$1" | sed -E 's#://([^:/@]+):[^@]*@#://\1:***@#'; }

[ -d node_modules ] || npm ci
npm run build

POSTGRES_URL=${POSTGRES_URL:-postgres://app:app@localhost:5432/app?sslmode=disable}
REDIS_ADDR=${REDIS_ADDR:-localhost:6379}
# With REDIS_CLUSTER_NODES the services use the cluster and not REDIS_ADDR: ask its first seed node.
REDIS_AT=${REDIS_CLUSTER_NODES:-$REDIS_ADDR}

pg_answers() {
  if command -v psql >/dev/null 2>&1; then
    [ "$(PGCONNECT_TIMEOUT=3 psql "$1" -XAtc 'select 1' 2>/dev/null)" = 1 ]
  else
    node -e '
      const { Client } = require("pg");
      const c = new Client({ connectionString: process.argv[1], connectionTimeoutMillis: 3000 });
      c.connect().then(() => c.query("select 1")).then(() => process.exit(0), () => process.exit(1));
    ' "$1"
  fi
}

# As the services log in: REDIS_PASS, as the ACL user REDIS_USERNAME when that is set, over TLS
# (verified against REDIS_TLS_CA_FILE when given) when REDIS_TLS is true.
redis_answers() {
  local host=${1%:*} port=${1##*:} tls=()
  if command -v redis-cli >/dev/null 2>&1; then
    [ "${REDIS_TLS:-}" != true ] || tls=(--tls --sni "$host" ${REDIS_TLS_CA_FILE:+--cacert "$REDIS_TLS_CA_FILE"})
    # REDISCLI_AUTH only when a password is configured: an empty AUTH would fail on its own.
    [ "$(${REDIS_PASS:+env REDISCLI_AUTH="$REDIS_PASS"} timeout 3 redis-cli -h "$host" -p "$port" ${REDIS_USERNAME:+--user "$REDIS_USERNAME"} "${tls[@]}" ping 2>/dev/null)" = PONG ]
  else
    node -e '
      const [host, port, user, pass, tls, caFile] = process.argv.slice(1);
      const s = tls === "true"
        ? require("tls").connect({ host, port: Number(port), ca: caFile ? require("fs").readFileSync(caFile) : undefined, servername: require("net").isIP(host) ? undefined : host })
        : require("net").connect(Number(port), host);
      s.setTimeout(3000, () => process.exit(1));
      s.on("error", () => process.exit(1));
      s.on(tls === "true" ? "secureConnect" : "connect", () => s.write(pass ? `AUTH ${user ? `${user} ` : ""}${pass}\r\nPING\r\n` : "PING\r\n"));
      s.on("data", (d) => process.exit(d.toString().includes("+PONG") ? 0 : 1));
    ' "$host" "$port" "${REDIS_USERNAME:-}" "${REDIS_PASS:-}" "${REDIS_TLS:-}" "${REDIS_TLS_CA_FILE:-}"
  fi
}

# Only stop the private services on exit if this script started them; a `dev` pair that was
# already running belongs to whoever started it.
STARTED_PRIVATE=0
API_PID=
WORKER_PID=
PROM_PID=
CLEANED=0
HURRY=0

# Idempotent: reached from the signal trap, from a child's death and from the EXIT trap.
cleanup() {
  [ $CLEANED = 0 ] || return 0
  CLEANED=1
  # A second Ctrl-C (or TERM) while this runs ends the wait for the services (they are killed) but
  # not the cleanup: the private services are still stopped.
  trap 'HURRY=1' INT TERM
  local pid i grace_ms=25000
  for pid in $API_PID $WORKER_PID $PROM_PID; do kill -TERM "$pid" 2>/dev/null || true; done
  # The services drain in-flight work on SIGTERM for up to SHUTDOWN_GRACE_MS (their default: 25 s),
  # then hand the rest back, record outcomes and close pools: wait that long plus 15 s, as the
  # manifests' grace periods do, before killing them.
  [[ ${SHUTDOWN_GRACE_MS:-} =~ ^[0-9]{1,7}$ ]] && grace_ms=$SHUTDOWN_GRACE_MS
  for pid in $API_PID $WORKER_PID $PROM_PID; do
    for i in $(seq 1 $(((grace_ms / 1000 + 15) * 10))); do [ $HURRY = 0 ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ $STARTED_PRIVATE = 1 ]; then (trap '' INT && bash scripts/local-services.sh stop dev) || true; fi
}
# Set before the private services start: a signal while they start (bash runs the trap once
# local-services.sh returns) must stop them too, not leave them running with nobody to stop them.
trap cleanup EXIT
trap 'say "stopping"; cleanup; exit 0' INT TERM

PRIVATE=0
if pg_answers "$POSTGRES_URL" && redis_answers "${REDIS_AT%%,*}"; then
  say "using Postgres at $(masked "$POSTGRES_URL") and Redis at $REDIS_AT"
else
  say "no answer from Postgres at $(masked "$POSTGRES_URL") and/or Redis at ${REDIS_AT%%,*}; using the private 'dev' services"
  bash scripts/local-services.sh status dev 2>/dev/null || STARTED_PRIVATE=1
  bash scripts/local-services.sh start dev
  # Read just the two URLs; the rest of the env file is for the scripts, not the services.
  POSTGRES_URL=$(. .data/dev/env && echo "$POSTGRES_URL")
  REDIS_ADDR=$(. .data/dev/env && echo "$REDIS_ADDR")
  REDIS_AT=$REDIS_ADDR
  # The private Redis is one instance, without password, ACL users or TLS.
  unset REDIS_PASS REDIS_USERNAME REDIS_TLS REDIS_TLS_CA_FILE REDIS_CLUSTER_NODES
  PRIVATE=1
fi
export POSTGRES_URL REDIS_ADDR
export API_ADDR=${API_ADDR:-:8080}
API_METRICS_ADDR=${API_METRICS_ADDR:-${METRICS_ADDR:-:2112}}
WORKER_METRICS_ADDR=${WORKER_METRICS_ADDR:-:2113}

# Migrate first: neither service should ever see an older schema than its code expects.
node dist/services/migrator/main.js

# A development key (tenant `default`, every scope), kept in .data/ so restarts reuse it; printed in
# the banner. AUTH_MODE=off needs none. A stored key that no longer works is replaced after start.
DEV_KEY_FILE=.data/dev-api-key
DEV_KEY=
new_dev_key() {
  mkdir -p .data
  DEV_KEY=$(node dist/services/cli/main.js keys create --tenant default --scopes tasks:write,tasks:read,admin \
    --description 'npm start development key' 2>/dev/null)
  (umask 077 && printf '%s\n' "$DEV_KEY" >"$DEV_KEY_FILE")
}
if [ "${AUTH_MODE:-keys}" = keys ]; then
  if [ -s "$DEV_KEY_FILE" ]; then DEV_KEY=$(head -n1 "$DEV_KEY_FILE"); else new_dev_key; fi
fi

METRICS_ADDR=$API_METRICS_ADDR node dist/services/api/main.js &
API_PID=$!
# Node flags: services/worker/node-flags.ts.
METRICS_ADDR=$WORKER_METRICS_ADDR node --max-semi-space-size=8 dist/services/worker/main.js &
WORKER_PID=$!

# ":8080" and "0.0.0.0:8080" both mean "reachable on localhost".
http_url() {
  local host=${1%:*}
  case $host in "" | 0.0.0.0 | "[::]" | "::") host=localhost ;; esac
  echo "http://$host:${1##*:}"
}
API_URL=$(http_url "$API_ADDR")

# Whichever child exits first ends the session: stop the other and report failure.
finish() {
  local rc who
  set +e
  # wait -n does not return for a child that had already exited and was reaped: wait for that one.
  if ! kill -0 "$API_PID" 2>/dev/null; then
    who=api
    wait "$API_PID"
  elif ! kill -0 "$WORKER_PID" 2>/dev/null; then
    who=worker
    wait "$WORKER_PID"
  else
    wait -n "$API_PID" "$WORKER_PID"
  fi
  rc=$?
  set -e
  [ -n "${who:-}" ] || { kill -0 "$API_PID" 2>/dev/null && who=worker || who=api; }
  say "$who exited (status $rc); stopping"
  cleanup
  exit $((rc == 0 ? 1 : rc))
}

# Print the banner once the API answers, so the curl example works when it is shown. Each ask is
# bounded: whatever else holds the port may accept and never answer.
for _ in $(seq 1 100); do
  node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$API_URL/healthz" && break
  kill -0 "$API_PID" 2>/dev/null && kill -0 "$WORKER_PID" 2>/dev/null || break
  sleep 0.2
done
# One that did not come up (its port taken, a bad setting) ends the session here: no banner saying
# the system runs, no Prometheus started for it.
kill -0 "$API_PID" 2>/dev/null && kill -0 "$WORKER_PID" 2>/dev/null || finish

# The stored key may belong to another database (POSTGRES_URL changed) or have been revoked.
if [ -n "$DEV_KEY" ] && ! node -e '
  fetch(process.argv[1] + "/tasks/00000000-0000-0000-0000-000000000000", { headers: { authorization: "Bearer " + process.argv[2] }, signal: AbortSignal.timeout(5000) })
    .then((r) => process.exit(r.status === 401 ? 1 : 0), () => process.exit(0))' "$API_URL" "$DEV_KEY"; then
  say "the stored development key is not valid here; creating a new one"
  new_dev_key
fi

# Observability: a private Prometheus, only when the binary is installed.
# host:port that a local Prometheus dials for a service bound to $1 (":2112" → 127.0.0.1:2112).
scrape_target() {
  local host=${1%:*}
  case $host in "" | 0.0.0.0 | "[::]" | "::" | localhost) host=127.0.0.1 ;; esac
  echo "$host:${1##*:}"
}
# Prints the preferred port if it can be bound on 127.0.0.1 now, else one the kernel picks.
prometheus_port() {
  node -e '
    const net = require("net");
    const tryListen = (port, fallback) => {
      const s = net.createServer();
      s.once("error", () => (fallback ? tryListen(0, false) : process.exit(1)));
      s.listen(port, "127.0.0.1", () => { const p = s.address().port; s.close(() => console.log(p)); });
    };
    tryListen(Number(process.argv[1]), true);
  ' "$1"
}
PROM_URL=
PROM_DIR=.data/dev/prometheus
start_prometheus() {
  local port
  mkdir -p "$PROM_DIR/data"
  port=$(prometheus_port "${PROMETHEUS_PORT:-9091}") || { say "no free port for prometheus; running without it"; return 0; }
  bash scripts/prometheus-local.sh config "$PROM_DIR/prometheus.yml" \
    "$(scrape_target "$API_METRICS_ADDR")" "$(scrape_target "$WORKER_METRICS_ADDR")" 5s || { say "could not write the prometheus config; running without it"; return 0; }
  prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
    --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$port" >"$PROM_DIR/prometheus.log" 2>&1 &
  PROM_PID=$!
  for _ in $(seq 1 50); do
    if ! kill -0 "$PROM_PID" 2>/dev/null; then
      say "prometheus exited at start; see $PROM_DIR/prometheus.log"
      wait "$PROM_PID" 2>/dev/null || true
      PROM_PID=
      return 0
    fi
    node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "http://127.0.0.1:$port/-/ready" && break
    sleep 0.2
  done
  PROM_URL="http://127.0.0.1:$port"
}
if command -v prometheus >/dev/null 2>&1; then
  start_prometheus
else
  say "prometheus is not installed, so no local Prometheus (bash scripts/prometheus-local.sh install adds it)"
fi
if [ -n "$PROM_URL" ]; then
  PROM_LINE="$PROM_URL  (targets: $PROM_URL/targets, alerts: $PROM_URL/alerts)"
else
  PROM_LINE="not running"
fi

# The private dev password is no secret (app/app); anyone else's is.
SHOWN_PG_URL=$POSTGRES_URL
[ $PRIVATE = 1 ] || SHOWN_PG_URL=$(masked "$POSTGRES_URL")

if [ -n "$DEV_KEY" ]; then
  KEY_LINES="    API key         $DEV_KEY
                    (development key of tenant 'default' with every scope, kept in $DEV_KEY_FILE;
                     more keys: npm run -s cli -- keys create --tenant NAME --scopes tasks:write,tasks:read)
"
  AUTH_ARG="-H \"authorization: Bearer $DEV_KEY\" "
else
  KEY_LINES="    API key         none needed (AUTH_MODE=$AUTH_MODE)
"
  AUTH_ARG=
fi

cat <<EOF

  task-scheduler is running (Ctrl-C to stop)
    API             $API_URL
    API metrics     $(http_url "$API_METRICS_ADDR")/metrics
    worker metrics  $(http_url "$WORKER_METRICS_ADDR")/metrics
    Prometheus      $PROM_LINE
    Postgres        $SHOWN_PG_URL
    Redis           $REDIS_AT

$KEY_LINES
  Try:
    curl -s -X POST $API_URL/tasks $AUTH_ARG-H 'content-type: application/json' -d '{"type":"noop","priority":"high"}'
    curl -s $AUTH_ARG$API_URL/tasks/<id from the response>

EOF

finish
