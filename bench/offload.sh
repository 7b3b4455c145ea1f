#!/bin/sh
# bench/offload.sh - step time of mpirun -np 2 sfp-train with the stash
# (a) in-process, (b) in sfpd without spill (budget above one step),
# (c) in sfpd with a budget that forces spill (b, c: --stash-codec daemon,
# sfpd encodes and decodes), (b') and (c') the same with --stash-codec rank
# (the ranks encode and decode, sfpd stores the frames), plus fp32 for
# reference; (w) is (a) with the weight pieces coded like the stashes
# (--weight-coder same) instead of the default auto; and
# the weight-exchange bytes per step against FP32 with the publish time
# (weights encoded in-process vs by sfpd).
# Every configuration runs REPS times, interleaved (a b c a b c ...) after
# one warm-up round; the table shows medians and ratios to (a).
# usage: bench/offload.sh BUILD_DIR [model]
#        env: NP=2 ranks (1: no mpirun), REPS=3, LIMIT=6400 training images (50 steps at batch 128),
#             BUDGET_SPILL=128K (512K until the cnn kept argmax codes), POLICY=qmqe, CODER=--gecko,
#             CONFIGS="f a b c B C" (B, C: (b'), (c'); also w: (a) with
#             --weight-coder same)
set -eu
build=$1; model=${2:-cnn}
sfpd=$build/daemon/sfpd train=$build/worker/sfp-train
np=${NP:-2} reps=${REPS:-3} limit=${LIMIT:-6400} policy=${POLICY:-qmqe} coder=${CODER---gecko}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OPENBLAS_NUM_THREADS=1
# ranks waiting in a collective yield the core instead of spinning, so the
# daemon (and the CPU-time column) are not distorted by busy-polling
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
tmp=$(mktemp -d /tmp/sfp-bench-offload-XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM

# sfpd_for CONFIG: (re)starts sfpd with the budget of a configuration
sfpd_for() {
    [ -n "$pid" ] && { kill -TERM "$pid"; wait "$pid" || true; pid=; }
    rm -rf "$tmp/s.sock" "$tmp/spill"
    case $1 in
    b|B) budget=1G ;;
    c|C) budget=${BUDGET_SPILL:-128K} ;;
    *) return 0 ;;
    esac
    "$sfpd" --socket "$tmp/s.sock" --spill-dir "$tmp/spill" --dram-budget "$budget" \
        --grpc-listen "" --metrics-listen "" --log-level warn 2>> "$tmp/sfpd.log" &
    pid=$!
    i=0
    while [ ! -S "$tmp/s.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$pid" 2> /dev/null || { echo "sfpd did not start"; cat "$tmp/sfpd.log"; exit 1; }
}

one() { # CONFIG ROUND
    sfpd_for "$1"
    case $1 in
    f) flags="--policy fp32 --no-daemon" ;;
    a) flags="--policy $policy $coder --no-daemon" ;;
    w) flags="--policy $policy $coder --no-daemon --weight-coder same" ;;
    b|c) flags="--policy $policy $coder --daemon $tmp/s.sock --stash-codec daemon" ;;
    *) flags="--policy $policy $coder --daemon $tmp/s.sock --stash-codec rank" ;;
    esac
    f0=0
    [ -n "$pid" ] && f0=$(awk '{ print $10 }' "/proc/$pid/stat")
    # CPU seconds of the ranks (children of mpirun, reaped) and of sfpd:
    # less sensitive to a loaded machine than wall time
    /usr/bin/python3 -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[2:]).returncode
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.3f\n" % (u.ru_utime + u.ru_stime))
sys.exit(r)' "$tmp/$1-$2.cpu" \
    $launch "$train" --model "$model" $flags --epochs 1 --train-limit "$limit" \
        --test-limit 1000 --timing --quiet --no-progress --report "$tmp/$1-$2.json" \
        > "$tmp/$1-$2.txt" 2>&1 || { cat "$tmp/$1-$2.txt"; exit 1; }
    d=0 f=0
    if [ -n "$pid" ]; then
        d=$(awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$pid/stat")
        f=$(awk -v f0="$f0" '{ print $10 - f0 }' "/proc/$pid/stat")
    fi
    echo "$d" > "$tmp/$1-$2.dcpu"
    echo "$f" > "$tmp/$1-$2.dflt"
}

launch="mpirun -np $np"
[ "$np" -eq 1 ] && launch=
configs=${CONFIGS:-f a b c B C}
for c in $configs; do one "$c" 0; done  # warm-up
for r in $(seq 1 "$reps"); do
    for c in $configs; do one "$c" "$r"; done
done
sfpd_for none

/usr/bin/python3 - "$tmp" "$reps" "$model" "$policy $coder" "$np" "$configs" <<'PY'
import json, statistics, sys
tmp, reps, model, pol, np_ = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
cfgs = sys.argv[6].split()
names = {"f": "fp32 (no stash)", "a": "(a) in-process stash",
         "w": "(a) with --weight-coder same",
         "b": "(b) sfpd, no spill", "c": "(c) sfpd, spill",
         "B": "(b') sfpd rank codec, no spill", "C": "(c') sfpd rank codec, spill"}
keys = ["compute", "quantize", "stash", "comm", "optimizer", "weights"]
rows = {}
for c in cfgs:
    runs = [json.load(open(f"{tmp}/{c}-{r}.json")) for r in range(1, reps + 1)]
    ep = [r["epochs"][-1] for r in runs]
    rows[c] = {
        "step": statistics.median(e["step_ms"] for e in ep),
        "parts": {k: statistics.median(e["time_ms_per_step"][k] for e in ep) for k in keys},
        "x": ep[0]["weight_exchange"],
        "acc": statistics.median(e["test_acc"] for e in ep),
        "remote": runs[0]["daemon"]["weight_pieces_encoded_by_sfpd"],
        "all": [round(e["step_ms"], 1) for e in ep],
        "cpu": statistics.median(
            1e3 * (float(open(f"{tmp}/{c}-{r}.cpu").read()) + float(open(f"{tmp}/{c}-{r}.dcpu").read()))
            / (e["steps"] * 1.0) for r, e in zip(range(1, reps + 1), ep)),
        "faults": statistics.median(e["minor_faults_per_step"] for e in ep),
        "steady": statistics.median(e["steady_minor_faults_per_step"] for e in ep),
        "dflt": statistics.median(
            float(open(f"{tmp}/{c}-{r}.dflt").read()) / e["steps"]
            for r, e in zip(range(1, reps + 1), ep)),
        "dcpu": statistics.median(
            1e3 * float(open(f"{tmp}/{c}-{r}.dcpu").read()) / e["steps"]
            for r, e in zip(range(1, reps + 1), ep)),
    }
a = rows["a"]["step"]
ac = rows["a"]["cpu"]
print(f"model {model}, policy {pol}, {'mpirun -np ' + np_ if np_ != '1' else 'one rank, no mpirun'}, "
      f"median of {reps} interleaved runs after a warm-up")
print("(wall ms/step from rank 0; CPU ms/step = CPU time of both ranks and of sfpd, whole process")
print(" lifetimes including start-up and the 1000-image evaluation, divided by the training steps)")
print(f"| configuration | ms/step | vs (a) | CPU ms/step | vs (a) | of it sfpd | compute | quantize | stash | comm | optimizer | weights | runs |")
print(f"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for c in cfgs:
    r = rows[c]
    p = r["parts"]
    print(f"| {names[c]} | {r['step']:.1f} | {100 * (r['step'] / a - 1):+.1f}% | {r['cpu']:.1f} | "
          f"{100 * (r['cpu'] / ac - 1):+.1f}% | {r['dcpu']:.1f} | " +
          " | ".join(f"{p[k]:.2f}" for k in keys) + f" | {r['all']} |")
print()
print("Minor page faults per step: of each rank during the steps (all; after the epoch's first 2),")
print("and of sfpd over its whole run (job start-up, steps and evaluation) divided by the steps")
print("| configuration | rank, all steps | rank, steady | sfpd |")
print("| --- | ---: | ---: | ---: |")
for c in cfgs:
    r = rows[c]
    print(f"| {names[c]} | {r['faults']:.1f} | {r['steady']:.2f} | {r['dflt']:.1f} |")
print()
print("| weights | bytes/step all-gathered | FP32 bytes/step | fewer bytes | publish ms/step | pieces encoded by sfpd |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for c in [c for c in cfgs if c not in "cC"]:
    r = rows[c]
    x = r["x"]
    print(f"| {names[c]} | {x['bytes_per_step']:.0f} | {x['fp32_bytes_per_step']:.0f} | "
          f"{x['ratio']:.2f}x | {r['parts']['weights']:.2f} | {r['remote']:.0f} |")
PY
