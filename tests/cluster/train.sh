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
echo "single host, 3 ranks: weights hash $ref"

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

# the exchange crossed the links: every node sent at least its share of the
# all-gathered weight frames
/usr/bin/python3 - "$tmp/c0.json" "$tmp/c1.json" "$tmp/clu.json" <<'PY'
import json, sys
a, b, r = (json.load(open(f)) for f in sys.argv[1:])
x = r["epochs"][-1]["weight_exchange"]
steps = r["epochs"][-1]["steps"]
for n0, n1 in zip(a["nodes"], b["nodes"]):
    tx = n1["tx_bytes"] - n0["tx_bytes"]
    # a ring all-gather sends 2/3 of the frames from every node
    need = steps * x["bytes_per_step"] * 2 / 3
    print(f'{n1["node"]}: {tx} bytes sent over veth0 ({tx / steps:.0f}/step), '
          f'weights alone need > {need / steps:.0f}/step')
    if tx < need:
        sys.exit(f'FAIL: {n1["node"]} sent too little over its link')
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
