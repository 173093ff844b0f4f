# shellcheck shell=bash
# A private Redis Cluster per profile: 3 masters + 3 replicas on free loopback ports, for the tests
# and benchmarks that need a real cluster. Sourced by scripts/local-services.sh (which supplies
# log/die, pid_is, free_port, env_line, redis_bind_failed, the profile lock and $DIR/$ENV_FILE); run it through there:
#
#   scripts/local-services.sh cluster-start    <name>   start (or reuse) the 6 nodes, create the cluster
#                                                       once, bring back any node that is down (a
#                                                       failed-over master rejoins as a replica); then
#                                                       add REDIS_CLUSTER_* lines to .data/<name>/env
#   scripts/local-services.sh cluster-stop     <name>   stop the 6 nodes by process id (`stop` does too)
#   scripts/local-services.sh cluster-status   <name>   exit 0 if all 6 nodes are up and the cluster is ok
#   scripts/local-services.sh cluster-failover <name> <master-index> [kill|manual]
#        fail over the master serving the <master-index>-th slot range (0, 1 or 2, in slot order):
#        `kill` (default) SIGKILLs it and waits for its replica to be elected (cluster_state:ok on
#        every live node again); `manual` runs CLUSTER FAILOVER on its replica and waits until the
#        roles have swapped. Prints OLD_MASTER_NODE, OLD_MASTER, NEW_MASTER_NODE, NEW_MASTER lines
#        (node indexes 0-5 and host:port) on stdout. `cluster-start` brings a killed node back.
#
# Nodes live in .data/<name>/cluster/node<i>/ (nodes.conf, pid file, log, and the ports they last
# used, preferred again on the next start). No persistence: the data is disposable. Each node gets
# two free ports (clients and the cluster bus, via `cluster-port`, which needs Redis 7).
#
# The nodes run with cluster-require-full-coverage no, as docs/redis-cluster.md asks of production:
# a master failing over stops only its own partitions, so the fault suites see what production does.
#
# CLUSTER_NODE_TIMEOUT_MS (default 2000) is the nodes' cluster-node-timeout: how long a master must
# be silent before its replica takes over (a failover takes about this plus 1 s). Lower is faster
# but lets a starved node (a busy CI machine) be failed over by mistake.

CL_DIR="$DIR/cluster"
CL_ENV="$CL_DIR/env"
CL_NODES=6
CL_TIMEOUT_MS=${CLUSTER_NODE_TIMEOUT_MS:-2000}

cl_node_dir() { printf '%s/node%s' "$CL_DIR" "$1"; }
# Small files read with builtins: the health checks run often, and every fork counts on a busy machine.
cl_read() { local v=''; [ -f "$1" ] && read -r v <"$1" 2>/dev/null; printf '%s' "$v"; }
cl_pid() { cl_read "$CL_DIR/node$1/redis.pid"; }
cl_port() { cl_read "$CL_DIR/node$1/port"; }
cl_bus_port() { cl_read "$CL_DIR/node$1/bus_port"; }

# pid_is "$1" redis-server, from /proc without forking ps (falls back to pid_is elsewhere), and
# running in node $2's directory (its --dir): a pid file left by a crash may name a pid since
# reused by another Redis, which must not be taken for this node (and stopped).
cl_pid_ok() {
  local pid=$1 comm='' stat=''
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ -d /proc/self ] || { cl_pid_ok "$pid"; return; }
  read -r comm <"/proc/$pid/comm" 2>/dev/null || return 1
  [[ $comm == redis-server* ]] || return 1
  read -r stat <"/proc/$pid/stat" 2>/dev/null || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ] || return 1
  [ "/proc/$pid/cwd" -ef "$CL_DIR/node$2" ]
}

# redis-cli against one node; no output (and a failure) when it does not answer.
cl_cli() {
  local port=$1
  shift
  timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

# The node is ours (its pid is a redis-server) and answers.
cl_alive() {
  local port
  port=$(cl_port "$1")
  cl_pid_ok "$(cl_pid "$1")" "$1" && [ -n "$port" ] && [ "$(cl_cli "$port" ping)" = PONG ]
}

# The node index listening on a port (empty if none of ours).
cl_index_of_port() {
  local i
  for i in $(seq 0 $((CL_NODES - 1))); do
    [ "$(cl_port "$i")" = "$1" ] && { echo "$i"; return; }
  done
}

# What every node says, in one stream: a line `@node <i> <port> <pid alive 0|1>`, then (for a live
# node) its replies to PING, CLUSTER INFO, CLUSTER NODES and INFO replication.
cl_snapshot() {
  local i port alive
  for i in $(seq 0 $((CL_NODES - 1))); do
    port=$(cl_port "$i")
    alive=0
    cl_pid_ok "$(cl_pid "$i")" "$i" && [ -n "$port" ] && alive=1
    echo "@node $i ${port:-0} $alive"
    [ $alive = 1 ] && printf 'PING\nCLUSTER INFO\nCLUSTER NODES\nINFO replication\n' | cl_cli "$port" || true
  done
}

# Judges a snapshot (stdin); exit 0 when healthy. Variables:
#   mode=all        every node alive, ok, knows all six, sees nobody failing or in handshake
#   mode=live-only  the same for the live nodes, which may see dead ones as failed
#   skip=<i>        leave node i out (the master just killed)
#   new=<port>      every node checked sees this node as a master ...
#   old=<port> oldflag=fail|slave   ... and this one as failed / as a replica
# Always: 3 masters serve slots in every node's view, and a replica's link to its master is up (so
# a write acknowledged by WAIT survives a failover). With mode=all, every node also sees 3 replicas.
CL_JUDGE='
  function has(node, port, re,   k) { for (k = 1; k <= nl[node]; k++) if (index(addr[node, k], ":" port "@") && flags[node, k] ~ re) return 1; return 0 }
  { sub(/\r$/, "") }
  /^@node / { cur = $2; alive[cur] = $4; next }
  $0 == "PONG" { pong[cur] = 1; next }
  /^cluster_state:/ { state[cur] = substr($0, 15); next }
  /^cluster_known_nodes:/ { known[cur] = substr($0, 21) + 0; next }
  /^master_link_status:/ { link[cur] = substr($0, 20); next }
  length($1) == 40 && $1 ~ /^[0-9a-f]+$/ && NF >= 8 {
    k = ++nl[cur]; addr[cur, k] = $2; flags[cur, k] = $3
    if ($3 ~ /myself/ && $3 ~ /slave/) replica[cur] = 1
    if ($3 ~ /fail|handshake|noaddr/) bad[cur] = 1
    if ($3 ~ /master/ && $3 !~ /fail/ && NF > 8) masters[cur]++
    if ($3 ~ /slave/ && $3 !~ /fail/) replicas[cur]++
  }
  END {
    for (i = 0; i < n; i++) {
      if (skip != "" && i == skip + 0) continue
      if (!alive[i] || !pong[i]) { if (mode == "live-only") continue; exit 1 }
      if (state[i] != "ok" || known[i] != n || masters[i] != 3) exit 1
      if (mode == "all" && bad[i]) exit 1
      # Each node also sees every replica as one (gossip spreads that after the slots).
      if (mode == "all" && replicas[i] != n / 2) exit 1
      if (replica[i] && link[i] != "up") exit 1
      if (new != "" && !has(i, new, "master") ) exit 1
      if (new != "" && has(i, new, "fail")) exit 1
      if (old != "" && oldflag == "fail" && !has(i, old, "fail([^?]|$)")) exit 1
      if (old != "" && oldflag == "slave" && !has(i, old, "slave")) exit 1
    }
    exit 0
  }'

# One check of the whole cluster; arguments are CL_JUDGE variables (default mode=all).
cl_ready_once() {
  cl_snapshot | awk -v n="$CL_NODES" -v mode=all -v skip= -v new= -v old= -v oldflag= "${@/#/-v}" "$CL_JUDGE"
}

cl_wait_ready() {
  local timeout_s=$1 deadline
  shift
  deadline=$((SECONDS + timeout_s))
  while :; do
    cl_ready_once "$@" && return 0
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

cl_ensure_binaries() {
  local version major
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server redis-server
  command -v redis-cli >/dev/null 2>&1 || apt_install redis-cli redis-tools
  command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) is missing"
  version=$(redis-server --version | sed -nE 's/.* v=([0-9]+(\.[0-9]+)*).*/\1/p')
  major=${version%%.*}
  [ -n "$major" ] && [ "$major" -ge 7 ] ||
    die "the cluster profile needs redis-server >= 7 (cluster-port); found '${version:-unknown}'"
}

# Prints n distinct free loopback ports, one a line: each preferred one (args) if it can be bound
# now, else one the kernel picks. All are held open together, so they never repeat.
free_ports() {
  node -e '
    const net = require("net");
    const [n, ...pref] = process.argv.slice(1).map(Number);
    const held = [];
    const listen = (port) => new Promise((resolve) => {
      const s = net.createServer();
      s.once("error", () => resolve(null));
      s.listen(port, "127.0.0.1", () => resolve(s));
    });
    (async () => {
      for (let i = 0; i < n; i++) {
        let s = pref[i] ? await listen(pref[i]) : null;
        s ??= await listen(0);
        if (!s) process.exit(1);
        held.push(s);
      }
      process.stdout.write(held.map((s) => s.address().port).join("\n") + "\n");
      held.forEach((s) => s.close());
    })();
  ' "$@"
}

declare -A CL_LOG_START=()

# Launches node i on the ports in its port/bus_port files (does not wait).
cl_spawn() {
  local i=$1 nd
  nd=$(cl_node_dir "$i")
  mkdir -p "$nd"
  rm -f "$nd/redis.pid"
  CL_LOG_START[$i]=$(($(stat -c %s "$nd/redis.log" 2>/dev/null || echo 0) + 1))
  log "starting cluster node $i on 127.0.0.1:$(cl_port "$i") (bus $(cl_bus_port "$i"), log $nd/redis.log)"
  # 9>&- : the server must not inherit the profile lock; </dev/null and the log: no caller waits
  # on the daemon's output.
  redis-server --port "$(cl_port "$i")" --cluster-port "$(cl_bus_port "$i")" --bind 127.0.0.1 \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout "$CL_TIMEOUT_MS" \
    --cluster-replica-validity-factor 0 --cluster-require-full-coverage no --save '' --appendonly no --repl-diskless-sync-delay 0 \
    --daemonize yes --pidfile "$nd/redis.pid" --logfile "$nd/redis.log" --dir "$nd" \
    </dev/null >>"$nd/redis.log" 2>&1 9>&- || true
}

# Waits (15 s at most) until node i answers PING; on failure kills what is left of it.
cl_await() {
  local i=$1 nd pid port k
  nd=$(cl_node_dir "$i")
  port=$(cl_port "$i")
  for k in $(seq 1 60); do
    pid=$(cl_pid "$i")
    if [ -n "$pid" ] && [ "$(cl_cli "$port" ping)" = PONG ]; then return 0; fi
    if [ -n "$pid" ] && ! pid_alive "$pid"; then break; fi
    if redis_bind_failed "$nd/redis.log" "${CL_LOG_START[$i]:-1}"; then break; fi
    sleep 0.25
  done
  log "cluster node $i did not answer on 127.0.0.1:$port; last log lines:"
  tail_log "$nd/redis.log"
  pid=$(cl_pid "$i")
  cl_pid_ok "$pid" "$i" && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$nd/redis.pid"
  return 1
}

# Starts the given nodes together, each on the ports it used last when they are free (a node
# keeps its identity in nodes.conf; peers learn a changed address from its gossip); a node that
# does not come up is retried alone on new ports.
cl_start_nodes() {
  local i k attempt pref=() ports=()
  for i in "$@"; do pref+=("$(cl_port "$i")" "$(cl_bus_port "$i")"); done
  mapfile -t ports < <(free_ports $(($# * 2)) "${pref[@]}")
  [ ${#ports[@]} = $(($# * 2)) ] || die "could not find $(($# * 2)) free loopback ports"
  k=0
  for i in "$@"; do
    mkdir -p "$(cl_node_dir "$i")"
    echo "${ports[k]}" >"$(cl_node_dir "$i")/port"
    echo "${ports[k + 1]}" >"$(cl_node_dir "$i")/bus_port"
    k=$((k + 2))
    cl_spawn "$i"
  done
  for i in "$@"; do
    cl_await "$i" && continue
    for attempt in 2 3; do
      mapfile -t ports < <(free_ports 2)
      echo "${ports[0]}" >"$(cl_node_dir "$i")/port"
      echo "${ports[1]}" >"$(cl_node_dir "$i")/bus_port"
      cl_spawn "$i"
      cl_await "$i" && continue 2
    done
    die "cluster node $i did not start; see $(cl_node_dir "$i")/redis.log"
  done
}

cl_stop_node() {
  local i=$1 pid k
  pid=$(cl_pid "$i")
  if cl_pid_ok "$pid" "$i"; then
    log "stopping cluster node $i (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for k in $(seq 1 100); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then log "node $i ignored SIGTERM; killing pid $pid"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$(cl_node_dir "$i")/redis.pid"
}

# Creates the cluster from scratch: fresh nodes (ports preferred as before), then
# `redis-cli --cluster create` with one replica per master.
cl_create() {
  local i addrs=()
  for i in $(seq 0 $((CL_NODES - 1))); do
    cl_stop_node "$i"
    # Keep the port files (preferred again); drop the cluster identity and the old log.
    rm -f "$(cl_node_dir "$i")/nodes.conf" "$(cl_node_dir "$i")/redis.log"
  done
  rm -f "$CL_DIR/create.log"
  cl_start_nodes $(seq 0 $((CL_NODES - 1)))
  for i in $(seq 0 $((CL_NODES - 1))); do addrs+=("127.0.0.1:$(cl_port "$i")"); done
  log "creating the cluster (3 masters, 1 replica each): ${addrs[*]}"
  timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
    </dev/null >"$CL_DIR/create.log" 2>&1 9>&- ||
    { tail_log "$CL_DIR/create.log"; die "redis-cli --cluster create failed; see $CL_DIR/create.log"; }
}

cl_write_env() {
  local i nodes=() pids=() tmp
  for i in $(seq 0 $((CL_NODES - 1))); do
    nodes+=("127.0.0.1:$(cl_port "$i")")
    if cl_pid_ok "$(cl_pid "$i")" "$i"; then pids+=("$(cl_pid "$i")"); else pids+=(""); fi
  done
  {
    env_line REDIS_CLUSTER_NODES "$(IFS=,; echo "${nodes[*]}")"
    env_line REDIS_CLUSTER_PIDS "$(IFS=,; echo "${pids[*]}")"
    env_line REDIS_CLUSTER_DIR "$CL_DIR"
  } >"$CL_ENV"
  # The profile's env file: its other lines as they are (Postgres and Redis of `start`), then ours.
  tmp="$ENV_FILE.tmp.$$"
  {
    if [ -f "$ENV_FILE" ]; then
      grep -vE '^REDIS_CLUSTER_[A-Z_]*=' "$ENV_FILE" || true
    else
      echo "# Written by scripts/local-services.sh cluster-start $NAME; load with: set -a; . $ENV_FILE; set +a"
    fi
    cat "$CL_ENV"
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

cmd_cluster-start() {
  local i created=0 down=()
  cl_ensure_binaries
  mkdir -p "$CL_DIR"
  if cl_ready_once; then
    cl_write_env
    log "cluster of profile '$NAME' already running: $(env_get "$CL_ENV" REDIS_CLUSTER_NODES)"
    return
  fi
  for i in $(seq 0 $((CL_NODES - 1))); do
    [ -f "$(cl_node_dir "$i")/nodes.conf" ] || { created=1; break; }
  done
  if [ $created = 0 ]; then
    # The cluster exists: bring back the nodes that are down from their nodes.conf. A master that
    # was failed over learns that its slots moved to a newer epoch and rejoins as a replica.
    for i in $(seq 0 $((CL_NODES - 1))); do
      cl_alive "$i" && continue
      cl_stop_node "$i"
      down+=("$i")
    done
    if [ ${#down[@]} -gt 0 ]; then
      cl_start_nodes "${down[@]}"
      log "brought back cluster node(s) ${down[*]}; waiting for the cluster"
    fi
    if ! cl_wait_ready 30; then
      log "the existing cluster did not become healthy within 30 s; creating it again"
      created=1
    fi
  fi
  if [ $created = 1 ]; then
    cl_create
    cl_wait_ready 60 || die "the cluster did not become healthy within 60 s; see $CL_DIR/node*/redis.log"
  fi
  cl_write_env
  log "cluster of profile '$NAME' ready: $(env_get "$CL_ENV" REDIS_CLUSTER_NODES); env in $ENV_FILE"
}

cmd_cluster-stop() {
  local i
  [ -d "$CL_DIR" ] || return 0
  for i in $(seq 0 $((CL_NODES - 1))); do cl_stop_node "$i"; done
  log "cluster of profile '$NAME' stopped"
}

cmd_cluster-status() {
  [ -d "$CL_DIR" ] && cl_ready_once
}

# Fields of the `cluster nodes` line of the master serving the k-th slot range, in slot order:
# "<id> <port>".
cl_master_by_index() {
  local port=$1 k=$2
  cl_cli "$port" cluster nodes |
    awk '$3 ~ /master/ && $3 !~ /fail/ && NF > 8 { split($9, r, "-"); split($2, a, "[:@]"); print r[1], $1, a[2] }' |
    sort -n | awk -v k="$k" 'NR == k + 1 { print $2, $3 }'
}

cmd_cluster-failover() {
  local k=$1 mode=$2 i any="" master id mport mi rport ri pid
  [[ $k =~ ^[0-2]$ ]] || die "master index must be 0, 1 or 2"
  [[ $mode =~ ^(kill|manual)$ ]] || die "failover mode must be kill or manual"
  cl_ready_once || die "the cluster of profile '$NAME' is not healthy; run: $0 cluster-start $NAME"
  for i in $(seq 0 $((CL_NODES - 1))); do any=$(cl_port "$i") && [ -n "$any" ] && break; done
  master=$(cl_master_by_index "$any" "$k")
  id=${master% *}
  mport=${master#* }
  mi=$(cl_index_of_port "$mport")
  [ -n "$mi" ] || die "no node of ours serves master range $k"
  rport=$(cl_cli "$mport" cluster nodes | awk -v id="$id" '$3 ~ /slave/ && $3 !~ /fail/ && $4 == id { split($2, a, "[:@]"); print a[2]; exit }')
  ri=$(cl_index_of_port "$rport")
  [ -n "$ri" ] || die "master $k (node $mi) has no healthy replica"
  if [ "$mode" = kill ]; then
    pid=$(cl_pid "$mi")
    log "failover: killing master $k (node $mi, 127.0.0.1:$mport, pid $pid); replica node $ri (127.0.0.1:$rport) takes over"
    cl_pid_ok "$pid" "$mi" && kill -KILL "$pid"
    for i in $(seq 1 100); do pid_alive "$pid" || break; sleep 0.05; done
    rm -f "$(cl_node_dir "$mi")/redis.pid"
  else
    log "failover: CLUSTER FAILOVER on replica node $ri (127.0.0.1:$rport) of master $k (node $mi, 127.0.0.1:$mport)"
    [ "$(cl_cli "$rport" cluster failover)" = OK ] || die "CLUSTER FAILOVER refused by node $ri"
  fi
  # Done when every live node sees the replica as a master and the old master as failed (kill)
  # or as a replica (manual), and the cluster is ok everywhere again.
  if [ "$mode" = kill ]; then
    cl_wait_ready 30 mode=live-only "skip=$mi" "new=$rport" "old=$mport" oldflag=fail ||
      die "the cluster did not recover within 30 s after master $k (node $mi) was killed"
  else
    cl_wait_ready 30 "new=$rport" "old=$mport" oldflag=slave ||
      die "the roles did not swap within 30 s after CLUSTER FAILOVER on node $ri"
  fi
  cl_write_env
  log "failover done: master $k is now node $ri (127.0.0.1:$rport)"
  printf 'OLD_MASTER_NODE=%s\nOLD_MASTER=127.0.0.1:%s\nNEW_MASTER_NODE=%s\nNEW_MASTER=127.0.0.1:%s\n' "$mi" "$mport" "$ri" "$rport"
}
