#!/usr/bin/env bash
# Runs the @ssd benchmarks on a bare machine from the pack that bench/gpu/prepare.sh made (see
# bench/gpu/README.md): unpacks Node, Dawn (dawn.node), the built JS and, when the machine has no
# libvulkan.so.1, the Vulkan loader; then bench:kernels, make-random-model (SSD-1B and Vega, fp16),
# bench:unet and bench:pipeline at 1024² with 25 steps, bench:clip and bench:vae. Results are named
# with the GPU's name (nvidia-smi) and collected in $SSD_GPU_HOME/results, and in $OUT when set.
#
#   bench/gpu/run.sh [phase…]      phases: unpack kernels models unet pipeline clip vae collect | all (default)
#                                  smoke: unpack into a temp dir and run bench:kernels --only groupNorm
# Environment: SSD_GPU_HOME (default /tmp/ssd-gpu), SIZE (1024), STEPS (25), ARCHS ("ssd-1b vega"),
#              SSD_ADAPTER (default "nvidia" when nvidia-smi exists), OUT (the device tool's output folder).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pack="$here/pack"
H=${SSD_GPU_HOME:-/tmp/ssd-gpu}
SIZE=${SIZE:-1024}
STEPS=${STEPS:-25}
ARCHS=${ARCHS:-"ssd-1b vega"}
say() { echo "[run $(date -u +%T)] $*"; }

gpu_name() {
  if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1; fi
}
slug() { tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9]+/-/g; s/^-|-$//g' | cut -c1-48; }

unpack() {
  mkdir -p "$H/bin" "$H/logs" "$H/results"
  if [ -f "$pack/node.xz" ] && [ ! -x "$H/bin/node" ]; then
    say "unpacking node"
    xz -dc "$pack/node.xz" >"$H/bin/node.partial" && chmod +x "$H/bin/node.partial" && mv "$H/bin/node.partial" "$H/bin/node"
  fi
  if [ -f "$pack/app.tar.xz" ]; then
    say "unpacking the app (built JS, configs, key lists, tokenizer)"
    tar -C "$H" -xJf "$pack/app.tar.xz"
  fi
  local dawn="$H/app/node_modules/webgpu/dist/linux-x64/dawn.node"
  if [ -f "$pack/dawn.node.xz" ] && [ -d "$H/app" ] && [ ! -f "$dawn" ]; then
    say "unpacking dawn.node"
    mkdir -p "$(dirname "$dawn")"
    xz -dc "$pack/dawn.node.xz" >"$dawn"
  fi
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    if ls "$pack"/debs/*.deb >/dev/null 2>&1; then
      say "no libvulkan.so.1: unpacking the Vulkan loader debs into /"
      for f in "$pack"/debs/*.deb; do dpkg -x "$f" /; done
      ldconfig
    else
      say "warning: no libvulkan.so.1 and no debs in the pack: Dawn will find no adapter"
    fi
  fi
  say "unpacked in $H: node $([ -x "$H/bin/node" ] && "$H/bin/node" --version || echo missing), app $([ -d "$H/app" ] && echo yes || echo missing), dawn.node $([ -f "$dawn" ] && echo yes || echo missing)"
}

setup_env() {
  [ -x "$H/bin/node" ] || { echo "run.sh: $H/bin/node is missing: carry bench/gpu/pack/node.xz and run 'run.sh unpack' (a fresh machine lost it)" >&2; exit 1; }
  [ -f "$H/app/node_modules/webgpu/dist/linux-x64/dawn.node" ] || { echo "run.sh: the app or dawn.node is missing: carry bench/gpu/pack/app.tar.xz and dawn.node.xz and run 'run.sh unpack'" >&2; exit 1; }
  # the NVIDIA Vulkan driver's ICD, where the loader does not find it by itself (device README)
  if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* >/dev/null 2>&1; then
    local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd; fi
  fi
  local name
  name=$(gpu_name || true)
  if [ -n "$name" ]; then
    export SSD_ADAPTER=${SSD_ADAPTER:-nvidia}
    export SSD_RESULT_SLUG=${SSD_RESULT_SLUG:-$(echo "$name" | slug)}
  fi
  export PATH="$H/bin:$PATH"
  say "GPU: ${name:-none found by nvidia-smi}; SSD_ADAPTER=${SSD_ADAPTER:-} results named ${SSD_RESULT_SLUG:-by adapter}"
}

# runs `node <script> args…` in the app tree, output in $H/logs/<name>.log
bench() {
  local name=$1
  shift
  say "$name: node $*"
  (cd "$H/app" && node "$@") 2>&1 | tee "$H/logs/$name.log"
  return "${PIPESTATUS[0]}"
}

kernels() {
  bench kernels bench/kernels.js --no-peer
  # bench:kernels names its file by the adapter's description; rename it with the GPU's name
  local f
  for f in "$H"/app/bench/results/kernels-*.json; do
    [ -f "$f" ] && [ -n "${SSD_RESULT_SLUG:-}" ] && [ "$f" != "$H/app/bench/results/kernels-$SSD_RESULT_SLUG.json" ] && mv "$f" "$H/app/bench/results/kernels-$SSD_RESULT_SLUG.json"
  done
  return 0
}

models() {
  local pids=() a
  for a in $ARCHS; do
    bench "make-$a" scripts/make-random-model.js --arch "$a" --out "$H/models/$a-f16" --dtype f16 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

unet() {
  local a
  for a in $ARCHS; do
    if [ -f "$H/models/$a-f16/model_index.json" ]; then
      bench "unet-$a" bench/unet.js --model "$a" --size "$SIZE" --from "$H/models/$a-f16"
    else
      bench "unet-$a" bench/unet.js --model "$a" --size "$SIZE"
    fi
  done
}

pipeline() {
  local a
  for a in $ARCHS; do
    bench "pipeline-$a" bench/pipeline.js --arch "$a" --size "$SIZE" --steps "$STEPS" --models-dir "$H/models"
    bench "pipeline-$a-low-memory" bench/pipeline.js --arch "$a" --size "$SIZE" --steps "$STEPS" --models-dir "$H/models" --low-memory
  done
}

clip() { bench clip bench/clip.js; }
vae() { bench vae bench/vae.js --size "$SIZE" --keys bench/models/keys/vae_keys_sdxl.txt; }

collect() {
  cp "$H"/app/bench/results/*.json "$H/results/" 2>/dev/null || true
  local tarball="$H/gpu-results-${SSD_RESULT_SLUG:-adapter}.tar.gz"
  tar -C "$H" -czf "$tarball" results logs
  say "results: $(ls "$H/results" | tr '\n' ' ')"
  if [ -n "${OUT:-}" ]; then
    cp "$tarball" "$OUT/"
    say "copied $(basename "$tarball") to \$OUT"
  fi
}

smoke() {
  # the pack unpacked into a temp dir, bench:kernels --only groupNorm on whatever adapter is here
  H=$(mktemp -d /tmp/ssd-gpu-smoke.XXXXXX)
  unpack
  export PATH="$H/bin:$PATH"
  bench smoke bench/kernels.js --only groupNorm --no-peer --runs 2
  say "smoke ok in $H ($(du -sh "$H" | cut -f1) unpacked)"
}

phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(all)
for ph in "${phases[@]}"; do
  case $ph in
    smoke) smoke ;;
    unpack) unpack ;;
    kernels | models | unet | pipeline | clip | vae) setup_env && "$ph" ;;
    collect) setup_env && collect ;;
    all)
      unpack
      setup_env
      status=0
      for p in kernels models unet pipeline clip vae; do "$p" || { status=$?; say "$p failed (exit $status)"; }; done
      collect
      exit "$status"
      ;;
    *) echo "run.sh: unknown phase $ph (unpack kernels models unet pipeline clip vae collect all smoke)" >&2; exit 2 ;;
  esac
done
