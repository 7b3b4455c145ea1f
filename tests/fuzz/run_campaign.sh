#!/usr/bin/env bash
# Runs a libFuzzer campaign on each fuzz target, one after the other, single
# job. Usage: tests/fuzz/run_campaign.sh BUILD_DIR SECONDS [TARGET...]
# BUILD_DIR must be configured with CC=clang -Dfuzzing=true. New corpus
# entries go to BUILD_DIR/fuzzwork/<target>/ (the checked-in seeds in
# tests/fuzz/corpus/<target>/ are read, not written); crashes go to
# BUILD_DIR/fuzzwork/artifacts-<target>/; logs to BUILD_DIR/fuzzwork/<target>.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1
secs=$2
shift 2
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(fuzz_decode fuzz_roundtrip)
work="$build/fuzzwork"
mkdir -p "$work"
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "$work/artifacts-$t"
    echo "=== $t: $secs s ($(date -u +%FT%TZ))"
    "$build/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=16384 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts-$t/" \
        "$work/$t" "$here/corpus/$t" >"$work/$t.log" 2>&1 || echo "$t: exit $?"
    tail -n 20 "$work/$t.log"
done
