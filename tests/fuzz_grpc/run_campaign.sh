#!/usr/bin/env bash
# libFuzzer campaigns for the gRPC request and config targets, at most two
# at a time, under nice -n 10 (the machine is shared).
# Usage: tests/fuzz_grpc/run_campaign.sh BUILD_DIR SECONDS [TARGET...]
# BUILD_DIR is configured with CC=clang -Dfuzzing=true. New corpus entries
# go to BUILD_DIR/fuzzwork/<target>/ (the checked-in seeds are read, not
# written), findings to BUILD_DIR/fuzzwork/artifacts-<target>/, logs with
# the final stats (number of executed units) to BUILD_DIR/fuzzwork/<target>.log.
# Merge new coverage back with:
#   BUILD_DIR/tests/fuzz_grpc/T -merge=1 tests/fuzz_grpc/corpus/T BUILD_DIR/fuzzwork/T
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1
secs=$2
shift 2
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(fuzz_config fuzz_grpc_get_stats fuzz_grpc_watch_stats
    fuzz_grpc_list_tensors fuzz_grpc_get_policy fuzz_grpc_set_policy fuzz_grpc_end_job)
work="$build/fuzzwork"
mkdir -p "$work"

run_one() {
    local t=$1
    mkdir -p "$work/$t" "$work/artifacts-$t"
    echo "=== $t: $secs s, started $(date -u +%FT%TZ)"
    # -close_fd_mask=2: the config target's error messages; libFuzzer and
    # the sanitizers still report on their own copy of stderr
    nice -n 10 "$build/tests/fuzz_grpc/$t" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 -close_fd_mask=2 \
        -artifact_prefix="$work/artifacts-$t/" \
        "$work/$t" "$here/corpus/$t" >"$work/$t.log" 2>&1 || echo "$t: exit $?"
    echo "=== $t: ended $(date -u +%FT%TZ): $(grep -E '^stat::number_of_executed_units' "$work/$t.log" || true)"
}

i=0
for t in "${targets[@]}"; do
    run_one "$t" &
    i=$((i + 1))
    if (( i % 2 == 0 )); then
        wait
    fi
done
wait
