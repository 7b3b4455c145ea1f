#!/bin/sh
# A node whose sfpd has a DRAM budget far below one step's stashes spills its
# frames into the other nodes' sfpd over the Peer service (TLS, peer token):
# while the job runs, sfpctl on node0 shows frames placed on its peers and
# sfpctl on a peer shows them held for node0; afterwards the bytes node0 sent
# are the bytes its peers received, nothing is held any more, and the job
# ends with the weights of the single-host run.
# usage: spill.sh SFPD SFPCTL SFP_TRAIN
set -eu
sfpd=$1 sfpctl=$2 train=$3
CLUSTER_TEST=s
. "$(dirname "$0")/common.sh"

run="--synthetic=3072 --model cnn --policy qmqe --gecko --batch 96 --epochs 1
     --seed 7 --no-progress --quiet --check-replicas"
ref=$(ref_run ref $run)
echo "single host, 3 ranks: weights hash $ref"

# node0: 32 KiB of DRAM for ~170 KiB of frames per step, and no prefetch: its
# frames stay on the peers until backward reads them
cl up --nodes 3 --node-set 0:dram_budget=32K --node-set 0:prefetch_depth=0
cluster_bg clu $run --job cluster-spill
# sfpctl watch on every node while the job runs: one JSON snapshot per line
watch_pids=
for k in 0 1 2; do
    cl sfpctl $k --json watch --interval 0.05 --count 1200 > "$tmp/w$k.jsonl" 2> /dev/null &
    watch_pids="$watch_pids $!"
done
wait_train
kill $watch_pids 2> /dev/null || true
wait $watch_pids 2> /dev/null || true
cat "$tmp/clu.txt"
[ $rc -eq 0 ] || fail "cluster run exited $rc"
/usr/bin/python3 - "$tmp" <<'PY' || fail "sfpctl never showed node0's frames placed and held while the job ran"
import json, sys
def snaps(k):
    for line in open(f"{sys.argv[1]}/w{k}.jsonl"):
        try:
            yield json.loads(line)
        except ValueError:
            pass  # the last line may be cut by the kill
placed = max(((sum(int(p.get("held_bytes", 0)) for p in d.get("peers", [])), d.get("peers"))
              for d in snaps(0)), key=lambda t: t[0], default=(0, None))
held = {k: max((sum(int(c.get("held_bytes", 0)) for c in d.get("peer_clients", [])
                    if c.get("node") == "node0") for d in snaps(k)), default=0) for k in (1, 2)}
print(f"while running, sfpctl on node0: at most {placed[0]} bytes placed on peers")
for p in placed[1] or []:
    print(f"  peer {p['address']}: {p.get('held_bytes', 0)} bytes, {p.get('held_frames', 0)} frames")
for k, h in held.items():
    print(f"while running, sfpctl on node{k}: at most {h} bytes held for node0")
sys.exit(0 if placed[0] > 0 and any(h > 0 for h in held.values()) else 1)
PY
h=$(json_hash "$tmp/clu.json")
[ "$h" = "$ref" ] || fail "weights differ from the single-host run ($h vs $ref)"
grep -q "served the whole run" "$tmp/clu.txt" || fail "an sfpd was lost"

for k in 0 1 2; do
    cl sfpctl $k --json stats > "$tmp/s$k.json"
done
/usr/bin/python3 - "$tmp"/s0.json "$tmp"/s1.json "$tmp"/s2.json <<'PY'
import json, sys
s = [json.load(open(f)) for f in sys.argv[1:]]
def need(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        sys.exit(1)
sent = sum(int(p.get("bytes_sent", 0)) for p in s[0].get("peers", []))
got = sum(int(c.get("bytes_received", 0)) for d in s[1:] for c in d.get("peer_clients", [])
          if c["node"] == "node0")
need(sent > 0, f"node0 placed {sent} frame bytes on its peers")
need(sent == got, f"node1 + node2 received {got} bytes from node0")
back = sum(int(p.get("bytes_received", 0)) for p in s[0].get("peers", []))
need(back > 0, f"node0 fetched {back} bytes back")
left = sum(int(c.get("held_bytes", 0)) for d in s[1:] for c in d.get("peer_clients", []))
need(left == 0, f"held for node0 after the job: {left} bytes")
need(all(int(d["counters"].get("errors", 0)) == 0 for d in s), "no sfpd error replies")
for k in (1, 2):
    need(sum(int(p.get("bytes_sent", 0)) for p in s[k].get("peers", [])) == 0,
         f"node{k} (1 GiB budget) placed nothing on peers")
PY
echo ok
