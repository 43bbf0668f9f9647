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
  # benchmark peers (bench/bench.py; bench/run.sh installs the rest of make bench's tools)
  h2o
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
