#!/bin/sh
# 3 nodes x 1 rank train the CNN on synthetic data over the cluster network,
# each rank stashing in its own node's sfpd: the replicas end identical, with
# the weights hash of the same run on one host (mpirun -np 3, in-process
# stash); every node's sfpd served its rank; the traffic went over the veth
# links; then `down` leaves nothing behind.
# usage: train.sh SFPD SFPCTL SFP_TRAIN
set -eu
sfpd=$1 sfpctl=$2 train=$3
CLUSTER_TEST=t
. "$(dirname "$0")/common.sh"

run="--synthetic=768 --model cnn --policy qmqe --gecko --batch 96 --epochs 1
     --seed 5 --no-progress --quiet --check-replicas"
ref=$(ref_run ref $run)
refg=$(ref_run refg $run --grad-container policy)
echo "single host, 3 ranks: weights hash $ref; with gradient containers $refg"

cl up --nodes 3
cl status
cl counters --json > "$tmp/c0.json"
cluster_bg clu $run --job cluster-train
wait_train
cat "$tmp/clu.txt"
[ $rc -eq 0 ] || fail "cluster run exited $rc"
cl counters --json > "$tmp/c1.json"
h=$(json_hash "$tmp/clu.json")
echo "3 nodes x 1 rank: weights hash $h"
[ -n "$h" ] && [ "$h" = "$ref" ] || fail "weights differ from the single-host run ($h vs $ref)"
grep -q "identical across 3 ranks" "$tmp/clu.txt" || fail "replicas differ"
grep -q "served the whole run" "$tmp/clu.txt" || fail "an sfpd was lost"

# every node's sfpd took its own rank's stashes
for k in 0 1 2; do
    p=$(jget $k 'int(d["counters"]["puts"])')
    echo "node$k sfpd: $p puts"
    [ "$p" -gt 0 ] || fail "node$k's sfpd saw no puts"
done

cluster_bg clug $run --job cluster-train-grad --grad-container policy
wait_train
cat "$tmp/clug.txt"
[ $rc -eq 0 ] || fail "cluster run with gradient containers exited $rc"
hg=$(json_hash "$tmp/clug.json")
echo "3 nodes x 1 rank, gradient containers: weights hash $hg"
[ "$hg" = "$refg" ] || fail "weights differ from the single-host run ($hg vs $refg)"

# the bytes on the wire, as sfp-train counted them on every node's veth0
# (SFP_WIRE_IF from scripts/cluster), next to its own accounting; and the
# counters of the whole run as scripts/cluster sees them
/usr/bin/python3 - "$tmp/c0.json" "$tmp/c1.json" "$tmp/clu.json" "$tmp/clug.json" <<'PY'
import json, sys
c0, c1, r, rg = (json.load(open(f)) for f in sys.argv[1:])
def need(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        sys.exit(1)
for name, x in (("exact", r), ("gradient containers", rg)):
    e = x["epochs"][-1]
    t, w = e["traffic"], e["traffic"]["wire"]
    need(w is not None and w["nodes"] == 3 and w["interface"] == "veth0",
         f"{name}: wire counted on veth0 of 3 nodes")
    k = w["tx_bytes_per_step"] / t["between_ranks_bytes_per_step"]
    need(1.0 <= k < 1.3, f"{name}: {w['tx_bytes_per_step']:.0f} B/step on the wire, "
         f"{t['between_ranks_bytes_per_step']:.0f} between ranks by sfp-train's count ({k:.3f}x: "
         f"headers, acknowledgements, small allreduces)")
    need(abs(w["rx_bytes_per_step"] - w["tx_bytes_per_step"]) < 0.05 * w["tx_bytes_per_step"],
         f"{name}: received = sent on the links ({w['rx_bytes_per_step']:.0f})")
steps = r["epochs"][-1]["steps"]
tx = sum(b["tx_bytes"] - a["tx_bytes"] for a, b in zip(c0["nodes"], c1["nodes"]))
need(tx >= steps * r["epochs"][-1]["traffic"]["wire"]["tx_bytes_per_step"],
     f"scripts/cluster counters: {tx} bytes sent during the exact run, steps included")
g = rg["epochs"][-1]
need(g["traffic"]["wire"]["tx_bytes_per_step"] < r["epochs"][-1]["traffic"]["wire"]["tx_bytes_per_step"] / 2,
     "gradient containers halve the bytes on the wire at least")
PY
echo "=== down"
sfpd_pids=$(cat /run/sfp-cluster/"$name"/node*/sfpd.pid)
cl down
ip netns list | grep "sfpc-$name-" && fail "namespaces left"
[ -e "/run/sfp-cluster/$name" ] && fail "state directory left"
for p in $sfpd_pids; do
    # gone, or a zombie waiting for init to reap it
    st=$(ps -o stat= -p "$p" 2> /dev/null || true)
    case $st in "" | Z*) ;; *) fail "sfpd pid $p still runs ($st)" ;; esac
done
grep -q "/run/sfp-cluster/$name" /proc/self/mountinfo && fail "mounts left"
echo ok
