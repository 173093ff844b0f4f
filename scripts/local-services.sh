#!/usr/bin/env bash
# Private Postgres + Redis per profile, for tests (`test`) and the quick start (`dev`).
#
#   scripts/local-services.sh start  <name>   start (or reuse) both, write .data/<name>/env
#   scripts/local-services.sh stop   <name>   stop both by process id; the data dir stays
#   scripts/local-services.sh env    <name>   print .data/<name>/env
#   scripts/local-services.sh status <name>   exit 0 if both are up and answering, 1 otherwise
#   scripts/local-services.sh stop-postgres|stop-redis <name>
#                                             stop just one (fault tests); `start` brings it back on
#                                             the same port when that port is still free
#   scripts/local-services.sh cluster-start|cluster-stop|cluster-status <name>
#   scripts/local-services.sh cluster-failover <name> <master-index> [kill|manual]
#                                             a private Redis Cluster (3 masters + 3 replicas) in the
#                                             same profile, beside or instead of the pair above; see
#                                             scripts/redis-cluster.sh. `stop` stops it too.
#
# Why private instances: tests must not depend on (or pollute) whatever Postgres/Redis the machine
# happens to run, and two clones of the repo must be able to test at the same time. So every
# profile gets its own data dir under .data/<name>/ and its own free loopback ports, picked at start.
#
# stdout carries only what a command is asked to print (the env file for `env`); every diagnostic
# goes to stderr, so callers can capture stdout safely.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf 'local-services: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  echo "usage: $0 start|stop|env|status <profile>   (profile: letters, digits, _ or -)" >&2
  echo "       $0 cluster-start|cluster-stop|cluster-status <profile>" >&2
  echo "       $0 cluster-failover <profile> <master-index 0-2> [kill|manual]" >&2
  exit 2
}

[ $# -ge 2 ] || usage
CMD=$1
NAME=$2
[[ $NAME =~ ^[A-Za-z0-9_-]+$ ]] || usage
# Only cluster-failover takes more: the master's index and the mode.
if [ "$CMD" = cluster-failover ]; then
  [ $# -ge 3 ] && [ $# -le 4 ] || usage
  FAILOVER_INDEX=$3
  FAILOVER_MODE=${4:-kill}
else
  [ $# -eq 2 ] || usage
fi

DIR="$ROOT/.data/$NAME"
ENV_FILE="$DIR/env"
REDIS_DIR="$DIR/redis"
REDIS_PIDFILE="$REDIS_DIR/redis.pid"
REDIS_LOG="$DIR/redis.log"
# The cluster profile's functions (cmd_cluster-*); they use the helpers below.
# shellcheck source=scripts/redis-cluster.sh
. "$ROOT/scripts/redis-cluster.sh"

# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

is_root() { [ "$(id -u)" -eq 0 ]; }

# Postgres refuses to run as root, so as root every server-side command runs as `postgres`.
as_pg() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A zombie still answers kill -0; count it as dead (pid 1 in a container may be slow to reap).
pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  [[ $(ps -o stat= -p "$1" 2>/dev/null) != Z* ]]
}

# True if the pid is alive and its command name starts with $2 (guards against pid reuse).
pid_is() {
  local comm
  pid_alive "$1" || return 1
  comm=$(ps -o comm= -p "$1" 2>/dev/null || true)
  [[ $comm == "$2"* ]]
}

# True if the pid is one of this profile's servers: pid_is "$1" "$2", and it runs in directory $3
# (Postgres chdirs to its data dir, Redis to its --dir). A pid file left by a crash or a container
# restart may name a pid since reused by another server, which the name alone would take for ours
# (and stop).
pid_is_ours() {
  local cwd
  pid_is "$1" "$2" || return 1
  cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1
  [ "$cwd" = "$(cd "$3" 2>/dev/null && pwd -P)" ]
}

# Read KEY from an env file written by this script (values may be single-quoted).
env_get() {
  local file=$1 key=$2 line
  [ -f "$file" ] || return 0
  line=$(grep -E "^$key=" "$file" | tail -1 || true)
  line=${line#*=}
  line=${line#\'}
  printf '%s' "${line%\'}"
}

# Print a free loopback port: the preferred one if it can be bound right now, else one the kernel
# picks. Node is always present (the project needs it), so no dependency on ss/netstat/python.
free_port() {
  node -e '
    const net = require("net");
    const tryListen = (port, fallback) => {
      const s = net.createServer();
      s.once("error", () => (fallback ? tryListen(0, false) : process.exit(1)));
      s.listen(port, "127.0.0.1", () => {
        const p = s.address().port;
        s.close(() => process.stdout.write(String(p)));
      });
    };
    const preferred = Number(process.argv[1]) || 0;
    tryListen(preferred, preferred !== 0);
  ' "${1:-0}"
}

# `redis-cli ping`, or the same over a raw socket when redis-cli is not installed.
redis_ping() {
  local port=$1
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]
  else
    node -e '
      const s = require("net").connect(Number(process.argv[1]), "127.0.0.1");
      s.setTimeout(2000, () => process.exit(1));
      s.on("error", () => process.exit(1));
      s.on("connect", () => s.write("PING\r\n"));
      s.on("data", (d) => process.exit(d.toString().startsWith("+PONG") ? 0 : 1));
    ' "$port"
  fi
}

tail_log() { [ -f "$1" ] && tail -n 20 "$1" | sed 's/^/    | /' >&2 || true; }
# Whether a Redis log, from byte $2 on, says the server could not bind its port (it exits then,
# often before writing its pid file: stop waiting for it).
redis_bind_failed() { tail -c +"$2" "$1" 2>/dev/null | grep -qE 'Address already in use|Failed listening|Could not create server'; }

# ---------------------------------------------------------------------------------------------
# Binaries (installed on demand, only when missing)
# ---------------------------------------------------------------------------------------------

apt_install() {
  is_root && command -v apt-get >/dev/null 2>&1 ||
    die "$1 is missing; install it (Debian/Ubuntu: apt-get install -y $2)"
  log "$1 not found; installing $2 with apt-get"
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "$2"; } >&2
}

find_pg_bin() {
  # Debian keeps server binaries (initdb, pg_ctl) off PATH, under /usr/lib/postgresql/<ver>/bin.
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
}

ensure_binaries() {
  PG_BIN=$(find_pg_bin)
  if [ -z "$PG_BIN" ]; then
    apt_install "Postgres (initdb)" postgresql
    PG_BIN=$(find_pg_bin)
    [ -n "$PG_BIN" ] || die "Postgres installed but initdb still not found"
  fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server redis-server
  if is_root; then
    id postgres >/dev/null 2>&1 ||
      die "running as root needs a 'postgres' system user to own the Postgres data dir"
  fi
}

# ---------------------------------------------------------------------------------------------
# Where Postgres keeps its files
# ---------------------------------------------------------------------------------------------

# Normally .data/<name>/pg. As root, the data dir must belong to `postgres`, which also needs to
# traverse every parent directory; a clone under a private home (e.g. /root) does not allow that,
# so fall back to a per-clone directory under /var/tmp instead of failing.
pg_paths() {
  PG_HOME="$DIR"
  if is_root && ! runuser -u postgres -- test -x "$DIR" 2>/dev/null; then
    PG_HOME="/var/tmp/local-services-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)/$NAME"
  fi
  PG_DATA="$PG_HOME/pg"
  PG_LOG="$PG_HOME/postgres.log"
  # A unix socket path must fit in ~107 bytes; a deep checkout would overflow it. The socket is
  # named after our unique port, so /tmp is a safe fallback (no clash with the system server's).
  PG_SOCKET_DIR="$PG_DATA"
  if [ ${#PG_SOCKET_DIR} -gt 80 ]; then PG_SOCKET_DIR=/tmp; fi
}

# postmaster.pid: line 1 = pid, line 4 = port (Postgres' own record of the running server).
pg_running_pid() { [ -f "$PG_DATA/postmaster.pid" ] && sed -n 1p "$PG_DATA/postmaster.pid" || true; }
pg_running_port() { [ -f "$PG_DATA/postmaster.pid" ] && sed -n 4p "$PG_DATA/postmaster.pid" || true; }

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -t 2 >/dev/null 2>&1; }

pg_init() {
  # umask 022: `postgres` must be able to traverse every directory we create on the way.
  (umask 022 && mkdir -p "$PG_HOME")
  if [ -f "$PG_DATA/PG_VERSION" ]; then return; fi
  log "initdb $PG_DATA"
  rm -rf "$PG_DATA"
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  is_root && chown postgres: "$PG_DATA"
  # trust auth is fine: the server only listens on 127.0.0.1 and its own socket dir.
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C \
    >"$PG_HOME/initdb.log" 2>&1 || { tail_log "$PG_HOME/initdb.log"; die "initdb failed (log: $PG_HOME/initdb.log)"; }
  # Settings for tests/dev. The port is not here: it is chosen per start and passed to pg_ctl.
  # synchronous_commit=off trades crash durability of the last few ms for much faster tests.
  cat >>"$PG_DATA/postgresql.conf" <<EOF

# --- added by scripts/local-services.sh ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 300
synchronous_commit = off
EOF
}

pg_start() {
  local port attempt
  pg_init
  # A leftover postmaster.pid whose process is gone (or is now something else) would make the
  # new postmaster refuse to start.
  if [ -f "$PG_DATA/postmaster.pid" ] && ! pid_is_ours "$(pg_running_pid)" postgres "$PG_DATA"; then
    log "removing stale $PG_DATA/postmaster.pid"
    rm -f "$PG_DATA/postmaster.pid"
  fi
  touch "$PG_LOG"
  is_root && chown postgres: "$PG_LOG"
  for attempt in 1 2 3; do
    # Prefer the previous port (stable URLs for dev) if it is still free.
    port=$(free_port "$(env_get "$ENV_FILE" PG_PORT)")
    log "starting Postgres on 127.0.0.1:$port (data $PG_DATA, log $PG_LOG)"
    # 9>&- : the server must not inherit our lock fd, or it would hold the profile lock forever.
    # </dev/null and the log redirect: a caller capturing our output must not wait on a daemon.
    if as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t 30 -o "-p $port" \
        </dev/null >>"$PG_LOG" 2>&1 9>&-; then
      PG_PORT=$port
      return
    fi
    # Most likely another process grabbed the port between the probe and the bind; retry.
    log "Postgres did not start on port $port (attempt $attempt); last log lines:"
    tail_log "$PG_LOG"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate </dev/null >/dev/null 2>&1 9>&- || true
  done
  die "Postgres did not start within 30 s; see $PG_LOG"
}

# The app connects as `app`/`app` to database `app`, like it would in production.
pg_bootstrap() {
  "$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres >/dev/null <<'SQL'
SELECT 'CREATE ROLE app LOGIN SUPERUSER PASSWORD ''app'''
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app') \gexec
SELECT 'CREATE DATABASE app OWNER app'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'app') \gexec
SQL
}

pg_stop() {
  local pid
  pid=$(pg_running_pid)
  if pid_is_ours "$pid" postgres "$PG_DATA"; then
    log "stopping Postgres (pid $pid)"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 30 </dev/null >/dev/null 2>&1 9>&- ||
      { log "fast stop timed out; killing pid $pid"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
}

# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------

redis_pid() { [ -f "$REDIS_PIDFILE" ] && cat "$REDIS_PIDFILE" || true; }

redis_start() {
  local port attempt pid i log_start
  mkdir -p "$REDIS_DIR"
  rm -f "$REDIS_PIDFILE"
  for attempt in 1 2 3; do
    port=$(free_port "$(env_get "$ENV_FILE" REDIS_PORT)")
    log_start=$(($(stat -c %s "$REDIS_LOG" 2>/dev/null || echo 0) + 1))
    log "starting Redis on 127.0.0.1:$port (log $REDIS_LOG)"
    # No persistence: test/dev data is disposable, and snapshots would only cost time.
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" --dir "$REDIS_DIR" \
      </dev/null >>"$REDIS_LOG" 2>&1 9>&- || true
    for i in $(seq 1 60); do
      pid=$(redis_pid)
      if [ -n "$pid" ] && redis_ping "$port"; then
        REDIS_PORT=$port
        REDIS_PID=$pid
        return
      fi
      # A failed bind ends the daemon before it writes its pidfile; its log says why. Stop
      # waiting then instead of running into the timeout.
      if [ -n "$pid" ] && ! pid_alive "$pid"; then break; fi
      if redis_bind_failed "$REDIS_LOG" "$log_start"; then break; fi
      sleep 0.5
    done
    log "Redis did not answer on port $port (attempt $attempt); last log lines:"
    tail_log "$REDIS_LOG"
    pid=$(redis_pid)
    pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$REDIS_PIDFILE"
  done
  die "Redis did not answer PING within 30 s; see $REDIS_LOG"
}

redis_stop() {
  local pid i
  pid=$(redis_pid)
  if pid_is_ours "$pid" redis-server "$REDIS_DIR"; then
    log "stopping Redis (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then log "Redis ignored SIGTERM; killing pid $pid"; kill -KILL "$pid" || true; fi
  fi
  rm -f "$REDIS_PIDFILE"
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

# Both servers alive, ours, and answering. Sets PG_PORT/PG_PID/REDIS_PORT/REDIS_PID as it goes.
pg_up() {
  PG_PID=$(pg_running_pid)
  PG_PORT=$(pg_running_port)
  pid_is_ours "$PG_PID" postgres "$PG_DATA" && [ -n "$PG_PORT" ] && pg_ready "$PG_PORT"
}
redis_up() {
  REDIS_PID=$(redis_pid)
  REDIS_PORT=$(env_get "$ENV_FILE" REDIS_PORT)
  pid_is_ours "$REDIS_PID" redis-server "$REDIS_DIR" && [ -n "$REDIS_PORT" ] && redis_ping "$REDIS_PORT"
}

# Quote a value only when it needs it, so the file stays readable and works as a dotenv file.
env_line() {
  if [[ $2 =~ ^[A-Za-z0-9_./:@?=%+,-]*$ ]]; then printf '%s=%s\n' "$1" "$2"
  else printf "%s='%s'\n" "$1" "${2//\'/\'\\\'\'}"; fi
}

write_env() {
  local tmp="$ENV_FILE.tmp.$$"
  {
    echo "# Written by scripts/local-services.sh start $NAME; load with: set -a; . $ENV_FILE; set +a"
    env_line POSTGRES_URL "postgres://app:app@127.0.0.1:$PG_PORT/app?sslmode=disable"
    env_line PG_ADMIN_URL "postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    env_line REDIS_ADDR "127.0.0.1:$REDIS_PORT"
    env_line PG_PID "$PG_PID"
    env_line REDIS_PID "$REDIS_PID"
    env_line PG_PORT "$PG_PORT"
    env_line REDIS_PORT "$REDIS_PORT"
    env_line PG_DATA "$PG_DATA"
    env_line PG_BIN "$PG_BIN"
    env_line PG_LOG "$PG_LOG"
    env_line REDIS_LOG "$REDIS_LOG"
    # A cluster of this profile (cluster-start) keeps its lines.
    if [ -f "$CL_ENV" ]; then cat "$CL_ENV"; fi
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"   # atomic: a concurrent reader never sees half a file
}

cmd_start() {
  ensure_binaries
  pg_paths
  local pg_reused=1 redis_reused=1
  if ! pg_up; then pg_reused=0; pg_stop; pg_start; PG_PID=$(pg_running_pid); fi
  pg_bootstrap
  if ! redis_up; then redis_reused=0; redis_stop; redis_start; fi
  write_env
  if [ $pg_reused = 1 ] && [ $redis_reused = 1 ]; then
    log "profile '$NAME' already running: Postgres 127.0.0.1:$PG_PORT (pid $PG_PID), Redis 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"
  else
    log "profile '$NAME' ready: Postgres 127.0.0.1:$PG_PORT (pid $PG_PID), Redis 127.0.0.1:$REDIS_PORT (pid $REDIS_PID); env in $ENV_FILE"
  fi
}

cmd_stop() {
  PG_BIN=$(env_get "$ENV_FILE" PG_BIN)
  [ -n "$PG_BIN" ] || PG_BIN=$(find_pg_bin)
  pg_paths
  [ -n "$PG_BIN" ] && pg_stop
  redis_stop
  cmd_cluster-stop
  # Postgres's files outside the clone (the root fallback under /var/tmp) would outlive it, one set
  # per clone: a throwaway profile's go with it. `dev` keeps its database between starts.
  if [ "$PG_HOME" != "$DIR" ] && [ "$NAME" != dev ] && [ -z "$(pg_running_pid)" ]; then
    rm -rf "$PG_HOME"
    rmdir "$(dirname "$PG_HOME")" 2>/dev/null || true
    log "profile '$NAME' stopped (data kept in $DIR; its Postgres files under $PG_HOME removed)"
    return
  fi
  log "profile '$NAME' stopped (data kept in $DIR)"
}

cmd_stop-postgres() {
  PG_BIN=$(env_get "$ENV_FILE" PG_BIN)
  [ -n "$PG_BIN" ] || PG_BIN=$(find_pg_bin)
  pg_paths
  pg_stop
}

cmd_stop-redis() {
  redis_stop
}

cmd_status() {
  PG_BIN=$(env_get "$ENV_FILE" PG_BIN)
  [ -n "$PG_BIN" ] || return 1
  pg_paths
  pg_up && redis_up
}

case $CMD in
  start | stop | stop-postgres | stop-redis | cluster-start | cluster-stop | cluster-failover)
    mkdir -p "$DIR"
    chmod 755 "$ROOT/.data" "$DIR"
    # One start/stop per profile at a time: two test runs starting `test` together must not both
    # initdb or both pick ports. (Servers are launched with 9>&- so they never hold this lock.)
    exec 9>"$DIR/.lock"
    flock -w 120 9 || die "timed out waiting for the lock on $DIR/.lock"
    if [ "$CMD" = cluster-failover ]; then
      cmd_cluster-failover "$FAILOVER_INDEX" "$FAILOVER_MODE"
    else
      "cmd_$CMD"
    fi
    ;;
  env)
    [ -f "$ENV_FILE" ] || die "no env for profile '$NAME'; run: $0 start $NAME"
    cat "$ENV_FILE"
    ;;
  status)
    cmd_status
    ;;
  cluster-status)
    cmd_cluster-status
    ;;
  *) usage ;;
esac
