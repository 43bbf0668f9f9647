#!/usr/bin/env bash
# Runs every libFuzzer target of build-fuzz/ (make fuzz) for FUZZ_SECONDS seconds each,
# FUZZ_JOBS targets at a time. The seed corpus (t/fuzz/corpus/<target>/) and the regression
# inputs (t/fuzz/regressions/<target>/) are read, never written: new inputs go to a scratch
# corpus in build-fuzz/corpus/<target>/. Fails when a target crashes, leaks or times out,
# and says where its reproducer is. FUZZ_TARGETS="jwt config" runs only those.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${FUZZ_BUILD:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
targets=${FUZZ_TARGETS:-$(ls t/fuzz/*_fuzz.cc | sed 's|.*/||; s|_fuzz\.cc$||')}

run_one() {
    local target=$1 bin=$build/${1}_fuzz
    local scratch=$build/corpus/$target artifacts=$build/artifacts/$target log=$build/logs/$target.log
    mkdir -p "$scratch" "$artifacts" "$(dirname "$log")"
    local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                -artifact_prefix="$artifacts/")
    [ -f "t/fuzz/$target.dict" ] && args+=(-dict="t/fuzz/$target.dict")
    local dirs=("$scratch" "t/fuzz/corpus/$target")
    [ -d "t/fuzz/regressions/$target" ] && dirs+=("t/fuzz/regressions/$target")
    # The scratch corpus comes first: libFuzzer writes new inputs only to the first folder.
    if ASAN_OPTIONS=detect_leaks=1 "$bin" "${args[@]}" "${dirs[@]}" >"$log" 2>&1; then
        local done_line
        done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
        echo "fuzz $target: ok, ${seconds}s: ${done_line:-no summary (see $log)}"
    else
        echo "fuzz $target: FAILED (log $log)"
        grep -E 'ERROR: |fuzz invariant broken|SUMMARY: ' "$log" | head -5 | sed 's/^/  /'
        grep -oE 'Test unit written to .*' "$log" | sed 's/^Test unit written to /  reproducer: /' | head -1
        echo "  replay it: $bin FILE (TORII_FUZZ_VERBOSE=1 for what it did); keep it in t/fuzz/regressions/$target/ with the fix"
        return 1
    fi
}

status=0
running=0
pids=()
for t in $targets; do
    if [ ! -x "$build/${t}_fuzz" ]; then
        echo "fuzz $t: $build/${t}_fuzz is missing (make fuzz builds it)"
        status=1
        continue
    fi
    run_one "$t" &
    pids+=($!)
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
        running=$((running - 1))
    fi
done
for p in "${pids[@]}"; do
    wait "$p" || status=1
done
exit $status
