#!/usr/bin/env bash
# make bench: installs what the benchmark needs (Debian packages), then runs bench/bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in wrk nginx-light libnginx-mod-stream haproxy h2o valgrind strace nghttp2-client util-linux; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi
exec /usr/bin/python3 bench/bench.py "$@"
