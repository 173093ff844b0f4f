#!/usr/bin/env bash
# Prometheus tooling for local work and tests (Debian's `prometheus` package: prometheus + promtool).
#
#   scripts/prometheus-local.sh install   install prometheus/promtool with apt when either is missing
#   scripts/prometheus-local.sh check     install if needed, then `promtool check rules` and
#                                         `promtool test rules` on alerts/
#   scripts/prometheus-local.sh config OUT API_TARGET WORKER_TARGET [SCRAPE_INTERVAL]
#                                         write a prometheus.yml to OUT scraping host:port targets and
#                                         loading alerts/*.yml (used by npm start)
#
# The Debian package would start a system-wide Prometheus on :9090 (and its Recommends would add a
# node exporter on :9100). We install without recommends, keep the service from starting while
# apt runs (a temporary policy-rc.d when none exists) and stop/disable it afterwards in case it
# started anyway, so nothing squats on ports: our own servers always use private ports.
#
# stdout carries only what a command is asked to print; diagnostics go to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf 'prometheus-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

have_tools() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }

# Stops the packaged system service if the install started it. By service name only: never a
# broad kill by process name, which could hit someone else's Prometheus.
stop_system_service() {
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
  if [ -x /etc/init.d/prometheus ]; then
    service prometheus stop >/dev/null 2>&1 || /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null 2>&1 && update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
  # The init script's pid file names the daemon it started; stop exactly that one.
  local pidfile pid
  for pidfile in /run/prometheus/prometheus.pid /var/run/prometheus/prometheus.pid /run/prometheus.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && [[ $(ps -o comm= -p "$pid" 2>/dev/null) == prometheus* ]]; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
}

install_tools() {
  if have_tools; then return 0; fi
  # Parallel callers (two jest workers, a test and npm start) install once: the second waits here
  # and then finds the tools.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/task-scheduler-prometheus-install.lock"
    flock -w 600 9 || die "timed out waiting for another prometheus install"
    if have_tools; then return 0; fi
  fi
  [ "$(id -u)" -eq 0 ] || die "prometheus/promtool are missing and installing them needs root: apt-get install -y prometheus"
  command -v apt-get >/dev/null 2>&1 || die "prometheus/promtool are missing and apt-get is not available"
  log "installing Debian's prometheus package (prometheus + promtool)"
  local policy=/usr/sbin/policy-rc.d placed=0
  if [ ! -e "$policy" ]; then
    # exit 101 = "action forbidden": invoke-rc.d / deb-systemd-invoke then do not start services.
    printf '#!/bin/sh\n# temporary, placed by task-scheduler scripts/prometheus-local.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    placed=1
  fi
  local rc=0
  {
    # Another apt run (a colleague's, or a parallel test) may hold the lock: wait for it.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends prometheus
  } >&2 || rc=$?
  if [ $placed = 1 ] && grep -q 'placed by task-scheduler' "$policy" 2>/dev/null; then rm -f "$policy"; fi
  stop_system_service
  [ $rc = 0 ] || die "apt-get install prometheus failed (exit $rc)"
  have_tools || die "prometheus package installed but prometheus/promtool are still not on PATH"
  log "installed: $(prometheus --version 2>&1 | head -1)"
}

check_rules() {
  install_tools
  cd "$ROOT"
  local rules=(alerts/*.yml) tests=(alerts/tests/*.yml)
  [ -e "${rules[0]}" ] || die "no rule files in alerts/"
  promtool check rules "${rules[@]}"
  [ -e "${tests[0]}" ] || die "no rule unit tests in alerts/tests/"
  promtool test rules "${tests[@]}"
}

# Writes a Prometheus config. Targets are host:port as Prometheus should dial them.
write_config() {
  [ $# -ge 3 ] || die "usage: $0 config OUT API_TARGET WORKER_TARGET [SCRAPE_INTERVAL]"
  local out=$1 api=$2 worker=$3 interval=${4:-5s}
  cat >"$out" <<EOF
# Written by scripts/prometheus-local.sh for npm start; regenerated on every start.
global:
  scrape_interval: $interval
  evaluation_interval: $interval
rule_files:
  - $ROOT/alerts/*.yml
scrape_configs:
  - job_name: task-scheduler-api
    static_configs:
      - targets: ['$api']
  - job_name: task-scheduler-worker
    static_configs:
      - targets: ['$worker']
EOF
}

case ${1:-} in
  install) install_tools ;;
  check) check_rules ;;
  config) shift; write_config "$@" ;;
  *)
    echo "usage: $0 install | check | config OUT API_TARGET WORKER_TARGET [SCRAPE_INTERVAL]" >&2
    exit 2
    ;;
esac
