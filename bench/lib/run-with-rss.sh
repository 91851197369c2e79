#!/usr/bin/env bash
# Runs a command with its output in <prefix>.log and samples its resident set size (the process and its
# descendants together: `ssd generate` runs its work in a child that filters Dawn's notes) once a second into
# <prefix>.rss ("seconds rss_kib | the last log line"), so memory can be read against what the command
# was doing (e.g. RSS while `ssd generate` loads the UNet). At the end <prefix>.rss gets a summary:
# wall time, exit status, peak RSS, and the peak RSS while the log's last line mentioned "unet".
#
#   bench/lib/run-with-rss.sh /tmp/ssd1b-1024 node packages/pipeline/dist/cli.js generate --model … --report …
set -u
# VmRSS of a process plus its descendants, in KiB
tree_rss() {
  local total=0 r c
  r=$(awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null)
  total=$((total + ${r:-0}))
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    total=$((total + $(tree_rss "$c")))
  done
  echo "$total"
}
prefix=$1
shift
: >"$prefix.rss"
start=$(date +%s.%N)
"$@" >"$prefix.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  rss=$(tree_rss "$pid")
  [ "$rss" = 0 ] && rss=
  last=$(tail -c 400 "$prefix.log" 2>/dev/null | tr '\r' '\n' | grep -v '^\s*$' | tail -n 1)
  now=$(date +%s.%N)
  [ -n "$rss" ] && printf '%.1f %s | %s\n' "$(echo "$now - $start" | bc)" "$rss" "$last" >>"$prefix.rss"
  sleep 1
done
wait "$pid"
status=$?
end=$(date +%s.%N)
peak=$(awk '{ if ($2 > m) m = $2 } END { print m + 0 }' "$prefix.rss")
peak_unet=$(awk 'tolower($0) ~ /unet/ { if ($2 > m) m = $2 } END { print m + 0 }' "$prefix.rss")
{
  echo "# wall_s $(echo "$end - $start" | bc) exit $status"
  echo "# peak_rss_kib $peak"
  echo "# peak_rss_kib_while_loading_unet $peak_unet"
} >>"$prefix.rss"
tail -n 3 "$prefix.rss"
exit "$status"
