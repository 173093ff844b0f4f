#!/usr/bin/env bash
# `npm test`: type check, build, then jest. Arguments go to jest (e.g. `npm test -- test/unit`).
# Jest's globalSetup starts the private Postgres/Redis itself (scripts/local-services.sh), so
# nothing else has to be running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A fresh clone can run `npm test` directly.
if [ ! -d node_modules ]; then npm ci; fi

# Jest runs ts-jest in transpile-only mode, so type errors would otherwise go unnoticed. End-to-end
# tests start the compiled entrypoints under dist/, which must match the sources. The type check and
# the build are independent: they run side by side (each is mostly one core's work).
npx tsc -p tsconfig.json --noEmit &
typecheck=$!
build_ok=0
npm run build || build_ok=$?
typecheck_ok=0
wait "$typecheck" || typecheck_ok=$?
if [ "$typecheck_ok" -ne 0 ] || [ "$build_ok" -ne 0 ]; then
  echo "test.sh: the type check (exit $typecheck_ok) or the build (exit $build_ok) failed" >&2
  exit 1
fi

# The web console's browser tests drive Debian's Chromium; installed here (once) rather than inside a
# test's time limit. A no-op when /usr/bin/chromium is there.
bash scripts/ensure-chromium.sh

# exec: jest's exit code is the script's exit code.
exec npx jest "$@"
