#!/usr/bin/env bash
# Installs a CPU WebGPU driver on Debian 12: libvulkan1 and Mesa's lavapipe from bookworm-backports
# (Debian's own Mesa 22 is rejected by Dawn). With --chromium, also Debian's chromium (the browser
# tests; it brings the SwiftShader Vulkan driver too). Needs root and apt. Safe to run twice.
set -euo pipefail
want_chromium=0
for a in "$@"; do [ "$a" = "--chromium" ] && want_chromium=1; done
if [ "$(id -u)" != 0 ]; then
  echo "setup-webgpu: needs root (apt-get); run: sudo bash scripts/setup-webgpu.sh" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-webgpu: no apt-get here; install a Vulkan driver (Mesa ≥ 23 lavapipe or a GPU driver) and libvulkan1 yourself" >&2
  exit 1
fi
apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends)
export DEBIAN_FRONTEND=noninteractive
if ! ls /etc/apt/sources.list.d/ 2>/dev/null | grep -q backports && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    # the first stanza of debian.sources with only the suite changed (priority 100: changes nothing else)
    awk 'BEGIN{RS="";ORS="\n"} NR==1' /etc/apt/sources.list.d/debian.sources \
      | sed 's/^Suites: .*/Suites: bookworm-backports/' > /etc/apt/sources.list.d/bookworm-backports.sources
  else
    echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
  fi
fi
apt-get -o DPkg::Lock::Timeout=600 update -q
"${apt[@]}" install libvulkan1
"${apt[@]}" install -t bookworm-backports mesa-vulkan-drivers
if [ "$want_chromium" = 1 ]; then "${apt[@]}" install chromium; fi
echo "setup-webgpu: done ($(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null))"
