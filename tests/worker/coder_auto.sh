#!/bin/sh
# --coder auto on the stashes (each stashed tensor coded with the coder,
# Gecko or rANS, whose frame was smaller at its last check): over one epoch
# of the mlp on real data, the activations' bits per value from the run's
# own frames must not exceed what --measure-coders finds for Gecko or for
# rANS alone on the same values (a pick at most 100 steps old may be off by
# a little: 0.5 % allowed), and on the mlp, whose stashes split between the
# two, it must be below both. The weight pieces' auto coder (tried every
# 100 publishes) likewise. Skipped without the data.
# usage: coder_auto.sh path/to/sfp-train
set -eu
exe=$1
dir=${SFP_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
[ -r "$dir/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST in $dir"; exit 77; }
tmp=$(mktemp -d /tmp/sfp-coder-auto-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
OPENBLAS_NUM_THREADS=1 "$exe" --data "$dir" --model mlp --policy qmqe --coder auto \
    --epochs 1 --train-limit 6400 --test-limit 1000 --measure-coders --quiet --no-progress \
    --report "$tmp/r.json"
/usr/bin/python3 - "$tmp/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["settings"]["coder"] == "auto", r["settings"]["coder"]
e = r["epochs"][-1]
auto, g, ra = e["act_bits"], e["coders"]["gecko"]["act_bits"], e["coders"]["rans"]["act_bits"]
print("activation bits/value: auto %.4f, gecko %.4f, rans %.4f" % (auto, g, ra))
if auto > min(g, ra) * 1.005:
    sys.exit("FAIL: auto is larger than the better single coder")
if not (auto < g and auto < ra):
    sys.exit("FAIL: auto is not below both coders on the mlp")
# the weight pieces (--weight-coder auto by default): each in the coder that
# won when both were last tried (every 100 publishes, on a width change)
wa, wg, wr = e["weight_bits"], e["coders"]["gecko"]["weight_bits"], e["coders"]["rans"]["weight_bits"]
print("weight bits/value: auto %.4f, gecko %.4f, rans %.4f" % (wa, wg, wr))
if wa > min(wg, wr) * 1.005:
    sys.exit("FAIL: the weight pieces' auto coder is larger than the better single coder")
print("ok")
PY
