#!/usr/bin/env bash
# The TypeScript client's checks, as scripts/test runs them (its "typescript"
# stage); run it alone from anywhere:
#
#   clients/typescript/check.sh
#
#   1. generated   the envelope types in src/generated/ and the codec samples in
#                  test/types/ are what the Rust codecs render now (cargo test
#                  codec::typescript; MENO_WRITE_TS=1 rewrites them)
#   2. deps        npm ci (typescript only; the package has no runtime deps)
#   3. build       tsc, and dist/client.js (checked in: the bridge serves it as
#                  /meno-client.js) must be what tsc writes from src/
#   4. types       tsc --noEmit over test/types: examples that must compile,
#                  @ts-expect-error examples that must not, and every codec sample
#                  against its dialect's union
#   5. unit        node --test test/*.test.mjs
#   6. pack        npm pack --dry-run lists the built files
#
# Needs: cargo, node >= 20 with npm. Respects CARGO_TARGET_DIR.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
die() { printf 'clients/typescript: %s\n' "$*" >&2; exit 1; }
command -v node >/dev/null 2>&1 || die "node is not on PATH (Debian: apt-get install -y nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not on PATH (Debian: apt-get install -y npm)"

cargo test -p meno-bridge --lib codec::typescript \
  || die "generated TypeScript is stale: run MENO_WRITE_TS=1 cargo test -p meno-bridge --lib codec::typescript"

npm ci --no-audit --no-fund

BUILD_DIR="$(mktemp -d)"
trap 'rm -rf "$BUILD_DIR"' EXIT
npx tsc -p tsconfig.json --outDir "$BUILD_DIR"
cmp -s "$BUILD_DIR/client.js" dist/client.js \
  || die "dist/client.js is stale: run npm run build here and commit it (the bridge embeds it)"
npm run build

npx tsc -p test/types/tsconfig.json

node --test test/*.test.mjs

PACKED="$(npm pack --dry-run 2>&1)"
for file in dist/index.js dist/index.d.ts dist/client.js dist/generated/seed000.d.ts; do
  grep -q "$file" <<<"$PACKED" || die "npm pack leaves out $file:\n$PACKED"
done
echo "clients/typescript: all checks passed"
