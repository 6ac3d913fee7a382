#!/usr/bin/env bash
# Runs the browser tests in headless Chromium: the demo page (demo.test.mjs)
# and the TypeScript client resuming across a bridge kill (client-resume.test.mjs).
#
#   tests/browser/run.sh
#
# Needs: node >= 20 with npm, Debian's chromium at /usr/bin/chromium (or
# CHROMIUM=/path), and a built bridge: cargo build --bin meno-bridge (the test
# uses $MENO_BRIDGE_BIN, else $CARGO_TARGET_DIR/debug/meno-bridge, else
# target/debug/meno-bridge). The bridge embeds ws-bridge/src/demo.html, so
# rebuild it after editing the page; the test refuses a stale binary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

die() { printf 'tests/browser: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node is not on PATH (Debian: apt-get install -y nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not on PATH (Debian: apt-get install -y npm)"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
  die "Chromium not found at $CHROMIUM; install it with: apt-get install -y chromium (or set CHROMIUM=/path/to/chromium)"
fi
export CHROMIUM

if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi

exec node --test demo.test.mjs client-resume.test.mjs
