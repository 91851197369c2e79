#!/usr/bin/env bash
# Packs what a bare NVIDIA machine (no Node, no package registry; see bench/gpu/README.md) needs to run
# bench:kernels, make-random-model, bench:unet, bench:clip, bench:vae and bench:pipeline, into
# bench/gpu/pack/ (ignored by git):
#
#   node.xz         this machine's Node binary, stripped of debug info, xz -9e
#   dawn.node.xz    the `webgpu` package's dist/linux-x64/dawn.node (Dawn for Node), stripped, xz -9e
#   app.tar.xz      the built JS: packages/*/dist (pnpm build) as node_modules/@ssd/*, the webgpu
#                   package's loader, bench/*.ts and scripts/make-random-model.ts compiled by tsc, the
#                   model configs and key lists (bench/models) and the CLIP vocabulary (fixtures/tokenizer)
#   debs/*.deb      the Vulkan loader (libvulkan1) for amd64, downloaded with apt (the recipe of
#                   /work/.library/device/README.md, lists kept in /tmp/amd64, nothing installed here)
#   MANIFEST        sizes, versions and the budget check
#
# Usage: bench/gpu/prepare.sh [--skip-debs] [--skip-build]
# The device tool carries at most 64 MiB per call, working tree included: prepare.sh prints whether
# the pack fits in one call with the tracked tree, or must go in two (node.xz first; see README).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
pack="$root/bench/gpu/pack"
stage=$(mktemp -d /tmp/ssd-gpu-stage.XXXXXX)
trap 'rm -rf "$stage"' EXIT
skip_debs=0
skip_build=0
for a in "$@"; do
  case $a in
    --skip-debs) skip_debs=1 ;;
    --skip-build) skip_build=1 ;;
    *) echo "prepare.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
mkdir -p "$pack"
cd "$root"
say() { echo "[prepare] $*"; }

# 1. Node: strip the debug info (99 → 86 MB), then xz
node_bin=$(command -v node)
if [ ! -s "$pack/node.xz" ] || [ "$node_bin" -nt "$pack/node.xz" ]; then
  say "node $(node --version) from $node_bin → node.xz (a few minutes of xz -9e)"
  strip -o "$stage/node" "$node_bin"
  xz -9e -T0 -c "$stage/node" >"$pack/node.xz.partial" && mv "$pack/node.xz.partial" "$pack/node.xz"
fi

# 2. dawn.node
dawn="$root/node_modules/webgpu/dist/linux-x64/dawn.node"
[ -f "$dawn" ] || { echo "prepare.sh: $dawn not found: run pnpm install" >&2; exit 1; }
if [ ! -s "$pack/dawn.node.xz" ] || [ "$dawn" -nt "$pack/dawn.node.xz" ]; then
  say "webgpu $(node -p "require('$root/node_modules/webgpu/package.json').version") dawn.node → dawn.node.xz"
  strip --strip-unneeded -o "$stage/dawn.node" "$dawn"
  xz -9e -T0 -c "$stage/dawn.node" >"$pack/dawn.node.xz.partial" && mv "$pack/dawn.node.xz.partial" "$pack/dawn.node.xz"
fi

# 3. the built JS and the data it reads
if [ "$skip_build" = 0 ]; then
  say "pnpm build (tsc -b)"
  pnpm -s build
fi
app="$stage/app"
mkdir -p "$app/node_modules/@ssd" "$app/node_modules/webgpu/dist/linux-x64"
echo '{ "type": "module", "private": true }' >"$app/package.json"
for p in tensor kernels clip unet vae pipeline; do
  d="$app/node_modules/@ssd/$p"
  mkdir -p "$d"
  cp "packages/$p/package.json" "$d/"
  (cd "packages/$p" && find dist -name '*.js' -print0 | tar --null -T - -cf -) | tar -C "$d" -xf -
done
cp node_modules/webgpu/package.json node_modules/webgpu/index.js "$app/node_modules/webgpu/"
say "tsc: bench/*.ts, bench/lib/*.ts, scripts/make-random-model.ts → JS"
pnpm -s exec tsc -p bench/gpu/tsconfig.pack.json --outDir "$app"
mkdir -p "$app/bench/models" "$app/fixtures/tokenizer"
cp -r bench/models/configs bench/models/keys "$app/bench/models/"
cp fixtures/tokenizer/vocab.json fixtures/tokenizer/merges.txt "$app/fixtures/tokenizer/"
tar -C "$stage" -cf - app | xz -9 -T0 >"$pack/app.tar.xz"

# 4. the Vulkan loader, for machines without libvulkan.so.1
if [ "$skip_debs" = 0 ]; then
  mkdir -p "$pack/debs" /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  if ! ls "$pack"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
    say "apt-get download libvulkan1 (amd64)"
    # shellcheck disable=SC2086
    apt-get $o update -qq
    # shellcheck disable=SC2086
    (cd "$pack/debs" && apt-get $o download libvulkan1)
  fi
fi

# 5. manifest and the budget: the device tool carries ≤ 64 MiB per call, the working tree included
tree_bytes=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
untracked_bytes=$( (git ls-files --others --exclude-standard -z | xargs -0 -r stat -c %s) 2>/dev/null | awk '{s+=$1} END {print s+0}')
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
node_xz=$(size "$pack/node.xz")
rest=$(( $(size "$pack/dawn.node.xz") + $(size "$pack/app.tar.xz") + $( (ls "$pack"/debs/*.deb 2>/dev/null | xargs -r stat -c %s) | awk '{s+=$1} END {print s+0}') ))
limit=$((64 * 1024 * 1024))
base=$((tree_bytes + untracked_bytes))
{
  echo "prepared $(date -u +%FT%TZ) on $(uname -m), node $(node --version), webgpu $(node -p "require('$root/node_modules/webgpu/package.json').version"), commit $(git rev-parse --short HEAD)"
  (cd "$pack" && find . -type f ! -name MANIFEST -printf '%s\t%p\n' | sort -k2)
  echo "pack total: $((node_xz + rest)) bytes; node.xz $node_xz, the rest $rest"
  echo "working tree that travels with every call: $base bytes (tracked $tree_bytes, untracked $untracked_bytes)"
  if [ $((base + node_xz + rest)) -le $limit ]; then
    echo "budget: one call can carry the whole pack ($((base + node_xz + rest)) ≤ $limit bytes)"
  else
    echo "budget: tree + whole pack = $((base + node_xz + rest)) > $limit bytes: carry it in two calls (README, 'Two calls')"
    [ $((base + node_xz)) -le $limit ] || echo "budget: even node.xz alone does not fit beside the tree ($((base + node_xz)) > $limit)"
    [ $((base + rest)) -le $limit ] || echo "budget: the rest alone does not fit beside the tree ($((base + rest)) > $limit)"
  fi
} >"$pack/MANIFEST"
cat "$pack/MANIFEST"
