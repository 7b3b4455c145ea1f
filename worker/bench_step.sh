#!/bin/sh
# bench_step.sh - training step time with containers vs FP32.
# Runs 100 training steps (--train-limit 12800, batch 128) per configuration,
# REPS times interleaved, and prints the median ms/step and its breakdown.
# usage: worker/bench_step.sh path/to/sfp-train [model...]
#        (env: REPS=3 repetitions, LIMIT=12800 training images = 100 steps)
set -eu
exe=$1; shift
models=${*:-mlp cnn}
reps=${REPS:-3}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
tmp=$(mktemp -d /tmp/sfpw-bench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
configs="fp32 qm qmqe qmqe+gecko bitwave bitwave+gecko"
for m in $models; do
  for r in $(seq 1 "$reps"); do
    for c in $configs; do
      pol=${c%+gecko}; g=""; [ "$pol" != "$c" ] && g=--gecko
      "$exe" --model "$m" --policy "$pol" $g --epochs 1 --train-limit "${LIMIT:-12800}" \
        --test-limit 1000 --timing --quiet --no-progress > "$tmp/$m-$c-$r.txt"
    done
  done
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%-5s %-14s %9s %7s | %8s %8s %8s %8s %8s %8s\n' model config "ms/step" "vs fp32" compute quantize stash comm optim weights
for m in $models; do
  base=""
  for c in $configs; do
    step=$(for r in $(seq 1 "$reps"); do sed -n 's/.*(\([0-9.]*\) ms\/step).*/\1/p' "$tmp/$m-$c-$r.txt"; done | median)
    [ -z "$base" ] && base=$step
    parts=""
    for k in 3 5 7 9 11 13; do
      v=$(for r in $(seq 1 "$reps"); do awk -v k=$k '/ms\/step:/ { print $k }' "$tmp/$m-$c-$r.txt"; done | median)
      parts="$parts $(printf '%8.3f' "$v")"
    done
    printf '%-5s %-14s %9.2f %6.1f%% |%s\n' "$m" "$c" "$step" \
      "$(awk -v a="$step" -v b="$base" 'BEGIN { print 100 * (a / b - 1) }')" "$parts"
  done
done
