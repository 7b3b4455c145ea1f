#!/bin/sh
# A run that stops after epoch 1 (--save) and resumes (--resume) must end
# with exactly the weights of an uninterrupted run; the report must be JSON.
# usage: resume.sh path/to/sfp-train
set -eu
exe=$1
tmp=$(mktemp -d /tmp/sfpw-resume-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
common="--synthetic=1024 --model mlp --policy qmqe --gecko --batch 64 --epochs 2 --quiet --no-progress --seed 3"
"$exe" $common --report "$tmp/a.json" > "$tmp/a.txt"
"$exe" $common --save "$tmp/ck" --stop-after 1 > "$tmp/b.txt"
test -s "$tmp/ck"
"$exe" $common --resume "$tmp/ck" > "$tmp/c.txt"
ha=$(sed -n 's/^final:.*hash \([0-9a-f]*\).*/\1/p' "$tmp/a.txt")
hc=$(sed -n 's/^final:.*hash \([0-9a-f]*\).*/\1/p' "$tmp/c.txt")
echo "uninterrupted $ha, resumed $hc"
if [ -z "$ha" ] || [ "$ha" != "$hc" ]; then
    echo "FAIL: resumed run differs"; cat "$tmp/a.txt" "$tmp/c.txt"; exit 1
fi
# epoch 2 figures match too (time excluded)
la=$(grep '^epoch 2/2' "$tmp/a.txt" | sed 's/time.*//')
lc=$(grep '^epoch 2/2' "$tmp/c.txt" | sed 's/time.*//')
if [ "$la" != "$lc" ]; then
    echo "FAIL: epoch 2 differs:"; echo "$la"; echo "$lc"; exit 1
fi
# --coder auto (stashes): each tensor's coder is chosen afresh at every
# epoch's start, so the resumed run codes (hence, through the footprint
# target, learns) as the uninterrupted one; the real data if present (its
# stashes split between Gecko and rANS)
dir=${SFP_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
data="--synthetic=1024"
[ -r "$dir/train-images-idx3-ubyte.gz" ] && data="--data $dir --train-limit 1280 --test-limit 500"
# same_resumed NAME ARGS...: uninterrupted, stopped after epoch 1 and
# resumed runs of ARGS (2 epochs) end with the same weights and epoch 2
same_resumed() {
    what=$1; shift
    "$exe" "$@" > "$tmp/ra.txt"
    "$exe" "$@" --save "$tmp/rck" --stop-after 1 > /dev/null
    "$exe" "$@" --resume "$tmp/rck" > "$tmp/rc.txt"
    la=$(grep '^epoch 2/2' "$tmp/ra.txt" | sed 's/time.*//')
    lc=$(grep '^epoch 2/2' "$tmp/rc.txt" | sed 's/time.*//')
    ha=$(sed -n 's/^final:.*hash \([0-9a-f]*\).*/\1/p' "$tmp/ra.txt")
    hc=$(sed -n 's/^final:.*hash \([0-9a-f]*\).*/\1/p' "$tmp/rc.txt")
    echo "$what: uninterrupted $ha, resumed $hc"
    if [ -z "$ha" ] || [ "$ha" != "$hc" ] || [ "$la" != "$lc" ]; then
        echo "FAIL: resumed run ($what) differs:"; echo "$la"; echo "$lc"; exit 1
    fi
}
# shellcheck disable=SC2086
same_resumed "--coder auto" $data --model mlp --policy qmqe --coder auto --batch 64 --epochs 2 \
    --quiet --no-progress --seed 3
# the weight pieces' auto coder (--weight-coder auto, the default) tries
# both coders at an epoch's last step, on width changes and every 100
# steps: over epochs of 160 steps the resumed run codes as the
# uninterrupted one
[ "$data" = "--synthetic=1024" ] || data="--data $dir --train-limit 1280 --test-limit 500"
# shellcheck disable=SC2086
same_resumed "weight pieces' auto coder, 160 steps per epoch" $data --model mlp --policy qmqe \
    --batch 8 --epochs 2 --quiet --no-progress --seed 5
# a checkpoint of another setup is refused with a clear message
if "$exe" --synthetic=1024 --model cnn --epochs 2 --resume "$tmp/ck" > "$tmp/d.txt" 2>&1; then
    echo "FAIL: resume with another model accepted"; exit 1
fi
grep -q "different setup" "$tmp/d.txt"
# gradient containers over 2 ranks: the checkpoint carries every rank's
# error-feedback residual, so the resumed run is still the uninterrupted one
if command -v mpirun > /dev/null; then
    g="$common --grad-container policy"
    mpirun -np 2 "$exe" $g > "$tmp/ga.txt" 2>&1
    mpirun -np 2 "$exe" $g --save "$tmp/gck" --stop-after 1 > /dev/null 2>&1
    mpirun -np 2 "$exe" $g --resume "$tmp/gck" > "$tmp/gc.txt" 2>&1
    ha=$(sed -n 's/^final:.*hash \([0-9a-f]*\).*/\1/p' "$tmp/ga.txt")
    hc=$(sed -n 's/^final:.*hash \([0-9a-f]*\).*/\1/p' "$tmp/gc.txt")
    echo "gradient containers, 2 ranks: uninterrupted $ha, resumed $hc"
    if [ -z "$ha" ] || [ "$ha" != "$hc" ]; then
        echo "FAIL: resumed run with gradient containers differs"; cat "$tmp/gc.txt"; exit 1
    fi
    # on 1 rank the residuals of 2 do not apply: said, and the run goes on
    "$exe" $g --resume "$tmp/gck" > "$tmp/gd.txt" 2>&1 ||
        { echo "FAIL: 1-rank resume of a 2-rank checkpoint"; cat "$tmp/gd.txt"; exit 1; }
    grep -q "gradient residuals of 2 ranks, this run has 1" "$tmp/gd.txt" ||
        { echo "FAIL: no word about the residuals"; cat "$tmp/gd.txt"; exit 1; }
fi
if command -v python3 > /dev/null; then
    python3 - "$tmp/a.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["schema"] == "sfp-train-report/1"
assert len(r["epochs"]) == 2
e = r["epochs"][-1]
assert e["footprint_ratio"] > 1 and len(e["tensors"]) == len(r["tensors"])
assert r["final"]["replicas_identical"] is True
print("report ok")
PY
fi
echo ok
