#!/usr/bin/env bash
# The console's browser tests drive Debian's Chromium (playwright-core never downloads a browser).
# Installs it when /usr/bin/chromium is missing, like scripts/local-services.sh does Postgres/Redis.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
# (Debian's wrapper script prints a harmless shell warning on stderr.)
/usr/bin/chromium --version 2>/dev/null || true
