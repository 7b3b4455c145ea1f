#!/bin/sh
# bench/cluster.sh - the exchange between nodes, measured on a cluster of
# network namespaces (scripts/cluster): 3 nodes x 1 rank train the CNN on
# Fashion-MNIST and every node counts the bytes through its veth link
# (sfp-train --wire-if, set by scripts/cluster).
#
#   bench/cluster.sh BUILD_DIR accuracy [OUT_DIR]
#       fp32 (FP32 reduce-scatter + all-gather = the bytes of an FP32 ring
#       allreduce), sfp (QM/QE + Gecko weight frames, FP32 gradients) and
#       sfp+grad (the same with the gradients in containers), seeds 1-3,
#       EPOCHS (3) full epochs each; one report per run in OUT_DIR
#       (default results/cluster); runs already there are skipped.
#   bench/cluster.sh BUILD_DIR steptime
#       the same configurations for STEPS_LIMIT (7680) images (60 steps),
#       REPS (3) times interleaved after a warm-up round, on links shaped
#       with tc tbf to each rate of RATES ("1gbit 100mbit"); medians.
#   bench/cluster.sh BUILD_DIR table [OUT_DIR]
#       the accuracy table from the reports.
#
# env: MODEL=cnn, SFP_CONFIGS="fp32 sfp sfp+grad", GRAD=policy (the
# --grad-container of sfp+grad), QM (the width-learning flags of sfp and
# sfp+grad, default "--qm-rule sgd --gamma 0.005 --weight-cost 64"), EXTRA
# (more sfp-train flags for all; with --precise-bn the table adds the
# precise-BN accuracy).
set -eu
build=$1 what=$2
root=$(cd "$(dirname "$0")/.." && pwd)
train=$(cd "$build" && pwd)/worker/sfp-train
model=${MODEL:-cnn} epochs=${EPOCHS:-3} grad=${GRAD:-policy}
qm=${QM:-"--qm-rule sgd --gamma 0.005 --weight-cost 64"}
configs=${SFP_CONFIGS:-"fp32 sfp sfp+grad"}
out=${3:-$root/results/cluster}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OPENBLAS_NUM_THREADS=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# 3 ranks on a shared 2-core machine: ranks waiting in a collective yield
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
cluster="$root/scripts/cluster -n b$$"

flags() { # CONFIG
    common="--model $model --batch 128 --lr-decay 0.85 --no-daemon --no-progress --quiet ${EXTRA:-}"
    case $1 in
    fp32) echo "$common --policy fp32" ;;
    sfp) echo "$common --policy qmqe --gecko $qm" ;;
    sfp+grad) echo "$common --policy qmqe --gecko $qm --grad-container $grad" ;;
    *) echo "unknown configuration $1" >&2; exit 2 ;;
    esac
}

table() {
    /usr/bin/python3 - "$out" "$model" "$configs" <<'PY'
import glob, json, os, statistics as st, sys
out, model, configs = sys.argv[1], sys.argv[2], sys.argv[3].split()
rows = {}
for c in configs:
    for f in sorted(glob.glob(f"{out}/{model}-{c}-s*.json")):
        rows.setdefault(c, []).append(json.load(open(f)))
if not rows:
    sys.exit(f"no reports in {out}")
base = rows.get("fp32")
def mean(xs):
    return sum(xs) / len(xs)
def sd(xs):
    return st.stdev(xs) if len(xs) > 1 else 0.0
acc0 = mean([r["final"]["test_acc"] for r in base]) if base else None
# precise-BN accuracy where every run of every configuration has it
pbn = all("test_acc_precise_bn" in r["final"] for rs in rows.values() for r in rs)
pacc0 = mean([r["final"]["test_acc_precise_bn"] for r in base]) if base and pbn else None
print("| configuration | seeds | test acc % | Δ vs FP32 (points) | "
      + ("precise BN % | Δ precise BN | " if pbn else "")
      + "weights bits | gradient bytes/step sent | "
      "weight frames/step | between ranks/step | on the wire/step (veth) | vs FP32 allreduce (wire) | ms/step |")
print("| --- | ---: | ---: | ---: | " + ("---: | ---: | " if pbn else "") + "---: | ---: | ---: | ---: | ---: | ---: | ---: |")
wire0 = None
for c in configs:
    rs = rows.get(c)
    if not rs:
        continue
    acc = [r["final"]["test_acc"] for r in rs]
    # per-step figures over every epoch of every seed
    eps = [e for r in rs for e in r["epochs"]]
    def per_step(f):
        return sum(f(e) * e["steps"] for e in eps) / sum(e["steps"] for e in eps)
    g = per_step(lambda e: e["grad_exchange"]["bytes_per_step"])
    x = per_step(lambda e: e["weight_exchange"]["bytes_per_step"])
    b = per_step(lambda e: e["traffic"]["between_ranks_bytes_per_step"])
    w = per_step(lambda e: e["traffic"]["wire"]["tx_bytes_per_step"])
    f32 = eps[0]["traffic"]["fp32_allreduce_bytes_per_step"]
    wire0 = w if c == "fp32" else wire0
    ms = st.median([e["step_ms"] for e in eps])
    wb = mean([r["final"]["weight_bits"] for r in rs])
    d = f"{mean(acc) - acc0:+.2f}" if acc0 is not None and c != "fp32" else "–"
    p = ""
    if pbn:
        pa = [r["final"]["test_acc_precise_bn"] for r in rs]
        pd = f"{mean(pa) - pacc0:+.2f}" if pacc0 is not None and c != "fp32" else "–"
        p = f"{mean(pa):.2f} ± {sd(pa):.2f} | {pd} | "
    print(f"| {c} | {len(rs)} | {mean(acc):.2f} ± {sd(acc):.2f} | {d} | {p}{wb:.2f} | {g / 1024:.1f} KiB | "
          f"{x / 1024:.1f} KiB | {b / 1024:.1f} KiB | {w / 1024:.1f} KiB | "
          f"{(wire0 / w if wire0 else f32 / w):.2f}× | {ms:.0f} |")
print(f"\nFP32 ring allreduce of the {model}'s gradients, computed: {f32 / 1024:.1f} KiB/step over all ranks.")
PY
}

case $what in
table) table; exit 0 ;;
accuracy | steptime) ;;
*) echo "usage: bench/cluster.sh BUILD_DIR accuracy|steptime|table [OUT_DIR]" >&2; exit 2 ;;
esac

trap '$cluster down > /dev/null 2>&1 || true' EXIT INT TERM
$cluster down > /dev/null 2>&1 || true
$cluster up --nodes 3 --no-sfpd

if [ "$what" = accuracy ]; then
    mkdir -p "$out"
    for seed in 1 2 3; do
        for c in $configs; do
            f=$out/$model-$c-s$seed.json
            [ -f "$f" ] && { echo "have $f"; continue; }
            echo "=== $c seed $seed ($(date +%H:%M), load $(cut -d' ' -f1-3 /proc/loadavg))"
            $cluster run -- "$train" $(flags "$c") --epochs "$epochs" --seed "$seed" \
                --report "$f.tmp" > "$out/$model-$c-s$seed.log" 2>&1 ||
                { tail -n 20 "$out/$model-$c-s$seed.log"; exit 1; }
            mv "$f.tmp" "$f"
            tail -n 4 "$out/$model-$c-s$seed.log"
        done
    done
    table
    exit 0
fi

# steptime
tmp=$(mktemp -d /tmp/sfp-bench-cluster-XXXXXX)
trap '$cluster down > /dev/null 2>&1 || true; rm -rf "$tmp"' EXIT INT TERM
reps=${REPS:-3} limit=${STEPS_LIMIT:-7680}
echo "load before: $(cat /proc/loadavg)"
for rate in ${RATES:-1gbit 100mbit}; do
    $cluster shape "$rate"
    for round in 0 $(seq 1 "$reps"); do
        for c in $configs; do
            $cluster run -- "$train" $(flags "$c") --epochs 1 --seed 1 --train-limit "$limit" \
                --test-limit 1000 --report "$tmp/$rate-$c-$round.json" > "$tmp/$rate-$c-$round.log" 2>&1 ||
                { tail -n 20 "$tmp/$rate-$c-$round.log"; exit 1; }
        done
    done
done
echo "load after: $(cat /proc/loadavg)"
/usr/bin/python3 - "$tmp" "$reps" "${RATES:-1gbit 100mbit}" "$configs" <<'PY'
import json, statistics as st, sys
tmp, reps, rates, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
print("| link | configuration | ms/step (median) | runs | comm ms/step | weights ms/step | on the wire/step (veth, all nodes) | vs fp32 |")
print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |")
for rate in rates:
    base = None
    for c in configs:
        rs = [json.load(open(f"{tmp}/{rate}-{c}-{i}.json")) for i in range(1, reps + 1)]
        ms = [r["epochs"][0]["step_ms"] for r in rs]
        m = st.median(ms)
        base = m if base is None else base
        comm = st.median([r["epochs"][0]["time_ms_per_step"]["comm"] for r in rs])
        pub = st.median([r["epochs"][0]["time_ms_per_step"]["weights"] for r in rs])
        w = st.median([r["epochs"][0]["traffic"]["wire"]["tx_bytes_per_step"] for r in rs])
        print(f"| {rate} | {c} | {m:.1f} | {', '.join(f'{x:.1f}' for x in ms)} | {comm:.1f} | {pub:.1f} | "
              f"{w / 1024:.1f} KiB | {m / base:.2f}× |")
PY
