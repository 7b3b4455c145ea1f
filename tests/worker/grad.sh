#!/bin/sh
# Gradients in containers (--grad-container), mpirun -np 2 on synthetic data:
# (1) lossless containers (23,8) carry the reduce-scatter bit-exactly: the
#     weights hash equals the exact FP32 reduce-scatter's (with two ranks the
#     FP32 sum of two contributions does not depend on the order);
# (2) the policy's widths shrink the gradient bytes (> 2x) with error
#     feedback keeping the run on track (test accuracy within 3 points of
#     the exact run), and the report carries both figures.
# usage: grad.sh path/to/sfp-train
set -eu
exe=$1
command -v mpirun > /dev/null || { echo "mpirun not found"; exit 77; }
tmp=$(mktemp -d /tmp/sfpw-grad-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
common="--synthetic=2048 --model mlp --policy qmqe --gecko --batch 64 --epochs 1 --quiet --no-progress --seed 9 --check-replicas"
for g in off 23,8 policy; do
    timeout 50 mpirun -np 2 "$exe" $common --grad-container $g --report "$tmp/$g.json" > "$tmp/$g.txt"
    cat "$tmp/$g.txt"
done
/usr/bin/python3 - "$tmp" <<'PY'
import json, sys
r = {g: json.load(open(f"{sys.argv[1]}/{g}.json")) for g in ("off", "23,8", "policy")}
def need(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        sys.exit(1)
h = {g: x["final"]["weights_hash"] for g, x in r.items()}
need(h["off"] == h["23,8"], f"lossless containers: weights hash {h['23,8']} = exact {h['off']}")
ge = {g: x["epochs"][-1]["grad_exchange"] for g, x in r.items()}
need(ge["off"]["bytes_per_step"] == ge["off"]["fp32_bytes_per_step"] > 0,
     f"exact: {ge['off']['bytes_per_step']:.0f} gradient bytes/step sent, as FP32")
need(ge["policy"]["ratio"] > 2,
     f"policy widths: {ge['policy']['bytes_per_step']:.0f} bytes/step, {ge['policy']['ratio']:.2f}x fewer")
need(r["policy"]["settings"]["grad_container"] == "policy", "the report names the setting")
t = r["policy"]["epochs"][-1]["traffic"]
need(t["ratio"] > r["off"]["epochs"][-1]["traffic"]["ratio"],
     f"between ranks {t['between_ranks_bytes_per_step']:.0f} B/step, {t['ratio']:.2f}x below an FP32 allreduce")
a = {g: x["final"]["test_acc"] for g, x in r.items()}
need(abs(a["policy"] - a["off"]) < 3, f"test accuracy {a['policy']:.2f}% vs exact {a['off']:.2f}%")
PY
echo ok
