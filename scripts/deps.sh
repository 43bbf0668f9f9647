#!/usr/bin/env bash
# Installs every Debian package torii needs to build, test and benchmark. Idempotent: does
# nothing when all are present; runs `apt-get update` only when something is missing.
set -euo pipefail

packages=(
  # build
  g++ cmake make pkg-config
  libevent-dev libssl-dev libnghttp2-dev libtomlplusplus-dev libpcre2-dev libhiredis-dev
  doctest-dev node-llhttp libjansson-dev
  clang-14 libclang-rt-14-dev  # make fuzz: libFuzzer and the sanitizers' runtimes (t/fuzz/)
  # test clients and peers
  curl nghttp2-client python3 python3-pytest python3-h2 python3-websockets python3-grpcio
  redis-server procps
  dnsmasq-base etcd-server etcd-client  # discovery peers (t/integration/test_discovery*.py)
  nginx-light  # its combined log format, compared line for line (t/integration/test_access_log.py)
  chromium     # the dashboard's browser test (t/integration/test_dashboard.py), driven headless
  slowhttptest  # slowloris, slow body, slow read (t/integration/test_slow_peers.py)
  valgrind  # t/soak/memcheck.sh (memcheck over a short mixed run; not in CI)
  # benchmark peers (bench/bench.py; bench/run.sh installs the rest of make bench's tools)
  h2o
)

# Node.js and npm drive Chromium through playwright-core (t/browser/). A machine may have
# them from elsewhere (NodeSource's nodejs bundles npm and conflicts with Debian's npm): only
# what is not on PATH is asked of Debian.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# playwright-core from the npm registry, at the version package-lock.json pins; it drives
# Debian's /usr/bin/chromium and downloads no browser of its own.
browser_dir="$(dirname "$0")/../t/browser"
if [ ! -f "$browser_dir/node_modules/playwright-core/package.json" ]; then
  echo "deps: npm ci in t/browser (playwright-core)"
  (cd "$browser_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
