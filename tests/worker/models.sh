#!/bin/sh
# The new architectures through sfp-train: mpirun -np 2 on synthetic data
# for resnet and vit (identical replicas, --check-replicas), a model file
# with a residual add, save/resume of resnet (running statistics in the
# checkpoint), and a bad model file refused with its line number.
# usage: models.sh path/to/sfp-train
set -eu
exe=$1
command -v mpirun > /dev/null || { echo "mpirun not found"; exit 77; }
tmp=$(mktemp -d /tmp/sfpw-models-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() { echo "FAIL: $*"; exit 1; }

# (--precise-bn: recomputed statistics averaged over the ranks, then the
# training statistics restored on every rank: replicas stay identical)
for m in resnet vit; do
    timeout 200 mpirun -np 2 "$exe" --model $m --synthetic=64 --epochs 1 --batch 16 \
        --policy qmqe --gecko --no-progress --check-replicas --report "$tmp/$m.json" \
        --precise-bn 32 \
        > "$tmp/$m.txt" 2>&1 || { cat "$tmp/$m.txt"; fail "$m -np 2"; }
    grep -q "identical across 2 ranks" "$tmp/$m.txt" || fail "$m: replicas differ"
    grep "^epoch\|^memory" "$tmp/$m.txt"
done
/usr/bin/python3 - "$tmp/resnet.json" "$tmp/vit.json" <<'PY'
import json, sys
for path in sys.argv[1:]:
    r = json.load(open(path))
    roles = {t["role"] for t in r["tensors"]}
    mem = r["memory"]
    assert len(mem["ranks"]) == 2 and all(q["vmhwm_bytes"] > 0 for q in mem["ranks"]), mem
    assert mem["activation_fp32_bytes_per_step"] > 0
    e = r["epochs"][-1]
    # BatchNorm (resnet): a second accuracy with recomputed statistics
    assert ("test_acc_precise_bn" in e) == ("resnet" in path), e.keys()
    stashed = [t for t in e["tensors"] if t["bits_per_value"] > 0]
    assert e["footprint_ratio"] > 1
    print(path.split("/")[-1], sorted(roles))
PY

# a model file of our own with a residual add, order-free
cat > "$tmp/res.model" <<'M'
input img 1x28x28
conv  c0  img out=8 k=3 stride=2 pad=1 act=relu
conv  c1  c0  out=8 k=3 pad=1 bias=no
batchnorm n1 c1
add   s   n1 c0 act=relu   # residual
avgpool p s
dense fc  p out=10
M
timeout 100 mpirun -np 2 "$exe" --model-file "$tmp/res.model" --synthetic=256 --epochs 1 \
    --batch 32 --no-progress --check-replicas > "$tmp/res.txt" 2>&1 ||
    { cat "$tmp/res.txt"; fail "--model-file"; }
grep -q "model res: " "$tmp/res.txt" || fail "model name from the file name"
grep -q "identical across 2 ranks" "$tmp/res.txt" || fail "--model-file: replicas differ"

# a bad file: exit 2, the line and the reason
printf 'input x 1x28x28\nconv c x out=8 k=3\nadd s c x\ndense o s out=10\n' > "$tmp/bad.model"
rc=0
"$exe" --model-file "$tmp/bad.model" --synthetic=64 > "$tmp/bad.txt" 2>&1 || rc=$?
cat "$tmp/bad.txt"
[ $rc -eq 2 ] || fail "bad model file exited $rc"
grep -q "bad.model: line 3: add 's': inputs of different shapes 8x26x26 and 1x28x28" \
    "$tmp/bad.txt" || fail "no line number"

# resnet: stop after epoch 1 and resume = uninterrupted (running statistics too)
common="--model resnet --synthetic=64 --batch 32 --epochs 2 --policy qmqe --no-progress --quiet --seed 4"
timeout 120 "$exe" $common > "$tmp/a.txt"
timeout 120 "$exe" $common --save "$tmp/ck" --stop-after 1 > /dev/null
timeout 120 "$exe" $common --resume "$tmp/ck" > "$tmp/c.txt"
ha=$(sed -n 's/^final:.*hash \([0-9a-f]*\).*/\1/p' "$tmp/a.txt")
hc=$(sed -n 's/^final:.*hash \([0-9a-f]*\).*/\1/p' "$tmp/c.txt")
la=$(grep '^epoch 2/2' "$tmp/a.txt" | sed 's/time.*//')
lc=$(grep '^epoch 2/2' "$tmp/c.txt" | sed 's/time.*//')
echo "resnet uninterrupted $ha, resumed $hc"
[ -n "$ha" ] && [ "$ha" = "$hc" ] && [ "$la" = "$lc" ] || fail "resumed resnet differs: $la / $lc"
# a checkpoint of another architecture is refused
if "$exe" --model vit --synthetic=64 --batch 32 --epochs 2 --resume "$tmp/ck" > "$tmp/d.txt" 2>&1; then
    fail "resume with another model accepted"
fi
grep -q "different setup" "$tmp/d.txt" || fail "no 'different setup'"
echo ok
