#!/bin/sh
# Slow suite: the quickstart's main job on the real data set, bounded:
# sfpd with a 128 KiB DRAM budget, mpirun -np 2 sfp-train --model cnn --policy
# qmqe --gecko on the first 12800 Fashion-MNIST training images (one
# epoch, 100 steps); the run must spill, hit prefetches, finish through sfpd
# with identical replicas and a test accuracy above 70 %.
# usage: fashion.sh SFPD SFPCTL SFP_TRAIN
set -eu
sfpd=$1 sfpctl=$2 train=$3
. "$(dirname "$0")/common.sh"
data=${SFP_DATA:-/usr/share/datasets/fashion-mnist}
[ -r "$data/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST at $data"; exit 77; }
start_sfpd 128K
timeout 600 mpirun -np 2 "$train" --model cnn --policy qmqe --gecko --epochs 1 \
    --train-limit 12800 --data "$data" --daemon "$tmp/sfpd.sock" --job fashion \
    --no-progress --timing --check-replicas --report "$tmp/r.json" > "$tmp/out.txt" 2>&1 ||
    { cat "$tmp/out.txt"; fail "training through sfpd failed"; }
cat "$tmp/out.txt"
"$sfpctl" --addr "unix:$tmp/grpc.sock" --json stats > "$tmp/stats.json"
"$sfpctl" --addr "unix:$tmp/grpc.sock" stats
/usr/bin/python3 - "$tmp/stats.json" "$tmp/r.json" <<'PY'
import json, sys
c = {k: int(v) for k, v in json.load(open(sys.argv[1]))["counters"].items()}
r = json.load(open(sys.argv[2]))
e = r["epochs"][-1]
checks = [
    (e["test_acc"] > 70, f"test accuracy {e['test_acc']:.2f}% > 70"),
    (c["spills"] > 0, f"spills {c['spills']}"),
    (c["prefetch_hits"] > 0, f"prefetch hits {c['prefetch_hits']}"),
    (c["bytes_in"] / max(1, c["bytes_stored_in"]) > 4, f"stash ratio {c['bytes_in'] / max(1, c['bytes_stored_in']):.2f} > 4"),
    (not r["daemon"]["lost"], "sfpd served the whole run"),
    (r["final"]["replicas_identical"], "replicas identical"),
]
for ok, what in checks:
    print(("ok   " if ok else "FAIL ") + what)
sys.exit(0 if all(ok for ok, _ in checks) else 1)
PY
stop_sfpd
echo ok
