#!/usr/bin/env bash
# Installs the peer servers' runtimes/deps from the npm registry (bun ships its binary in an npm package).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$here/bun/node_modules/.bin/bun" ]; then
  npm install --prefix "$here/bun" --no-audit --no-fund bun
fi
"$here/bun/node_modules/.bin/bun" --version
if [ ! -d "$here/node/node_modules/ws" ]; then
  npm install --prefix "$here/node" --no-audit --no-fund
fi
node -e "require('$here/node/node_modules/ws'); console.log('ws ok', process.version)"
