#!/usr/bin/env bash
# A short mixed run of torii under valgrind memcheck (not part of CI; docs/testing.md).
#
#   bash t/soak/memcheck.sh [MINUTES] [BUILD_DIR]     defaults: 1 minute, build/
#
# soak.py --valgrind: torii (master, 2 workers, the fleet process) runs under
# `valgrind --tool=memcheck --leak-check=full --trace-children=yes`, with the same mixed
# traffic as the soak (HTTP/1, h2c, h2 over TLS, WebSocket, TCP) at a twentieth of its rate,
# and a reload every 10 s. Each process writes its own log (vg.PID.log in the printed
# directory); the summary lists the errors and the definitely / indirectly lost bytes of
# each, and the exit code is non-zero when any has one. Use the release build: memcheck
# does not run ASan binaries.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes="${1:-1}"
build="${2:-build}"
command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed" >&2; exit 2; }
logs="$(mktemp -d /tmp/torii-memcheck-XXXXXX)"
echo "memcheck: logs in $logs"
exec /usr/bin/python3 t/soak/soak.py --minutes "$minutes" --reload-every 10 \
    --sample-every 10 --build-dir "$build" --valgrind "$logs"
