#!/bin/sh
# Peak resident memory of one sfp-train rank (docs/BENCHMARKS.md "Memory"):
# resnet (or $MODEL) at batch $BATCH, one rank, a few steps on synthetic data,
#   A: FP32, stashed tensors kept in the rank as FP32 (no stash: what any
#      framework does);
#   B: qmqe + Gecko through sfpd with a small DRAM budget ($BUDGET; frames
#      spill to a temp directory) and a small shared-memory ring
#      ($SHM MiB, so the step's buffers stay private and every stashed
#      tensor leaves the rank's memory between its put and its get).
# Prints both VmHWM, the FP32 bytes of one step's stashed tensors, and the
# fall as a share of them (the bar: >= 70 %).
# usage: bench/memory.sh SFPD SFP_TRAIN
set -eu
sfpd=$1 train=$2
MODEL=${MODEL:-resnet} BATCH=${BATCH:-256} IMAGES=${IMAGES:-1024}
BUDGET=${BUDGET:-16M} SHM=${SHM:-32}
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d /tmp/sfp-memory-XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2> /dev/null; rm -rf "$tmp"' EXIT INT TERM
run="--model $MODEL --batch $BATCH --synthetic=$IMAGES --epochs 1 --no-progress --quiet --seed 1"

"$train" $run --policy fp32 --no-daemon --report "$tmp/a.json" > "$tmp/a.txt"

"$sfpd" --socket "$tmp/sfpd.sock" --spill-dir "$tmp/spill" --dram-budget "$BUDGET" \
    --grpc-listen "" --metrics-listen "" > "$tmp/sfpd.log" 2>&1 &
pid=$!
i=0
while [ ! -S "$tmp/sfpd.sock" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat "$tmp/sfpd.log"; exit 1; }; sleep 0.1
done
"$train" $run --policy qmqe --gecko --daemon "$tmp/sfpd.sock" --daemon-shm "$SHM" \
    --report "$tmp/b.json" > "$tmp/b.txt"
kill "$pid"; wait "$pid" 2> /dev/null || true; pid=

/usr/bin/python3 - "$tmp/a.json" "$tmp/b.json" "$MODEL" "$BATCH" "$BUDGET" "$SHM" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
model, batch, budget, shm = sys.argv[3:]
def mem(r):
    q = r["memory"]["ranks"][0]
    return q["vmhwm_bytes"], q["arena_bytes"], q["stash_bytes"]
ha, aa, _ = mem(a)
hb, ab, sb = mem(b)
act = a["memory"]["activation_fp32_bytes_per_step"]
MiB = 1 << 20
fall = ha - hb
e = b["epochs"][-1]
print(f"{model}, batch {batch}, one rank; FP32 bytes of one step's stashed tensors: "
      f"{act / MiB:.1f} MiB ({len([t for t in a['tensors'] if t['kind'] in ('activation', 'stats')])} tensors)")
print()
print("| run | peak RSS (VmHWM) | step buffers (arena) | stash in the rank | footprint |")
print("| --- | --- | --- | --- | --- |")
print(f"| FP32, in-process (no stash) | {ha / MiB:.1f} MiB | {aa / MiB:.1f} MiB | - | 1.00x |")
print(f"| qmqe + Gecko through sfpd (DRAM budget {budget}, --daemon-shm {shm}) | "
      f"{hb / MiB:.1f} MiB | {ab / MiB:.1f} MiB | {sb / MiB:.1f} MiB (shared memory) | "
      f"{e['footprint_ratio']:.2f}x |")
print()
print(f"peak RSS falls by {fall / MiB:.1f} MiB = {100 * fall / act:.0f} % of one step's "
      f"FP32 stashed bytes (bar: >= 70 %): {'met' if fall >= 0.7 * act else 'NOT met'}")
PY
