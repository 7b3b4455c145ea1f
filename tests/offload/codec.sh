#!/bin/sh
# --stash-codec (issue 18 item 4): mpirun -np 2 sfp-train stashes through a
# real sfpd with the ranks encoding and decoding (rank: PutFrame/GetFrame)
# and with sfpd doing it (daemon: Put/Get). The frames are byte-identical to
# the in-process stash's, so both runs must end with the in-process run's
# weights hash. The DRAM budget is far below one step: frames spill to disk
# and come back by prefetch. auto must pick rank (on one rank with a core
# to spare too); the report records the choice.
# usage: codec.sh SFPD SFPCTL SFP_TRAIN
set -eu
sfpd=$1 sfpctl=$2 train=$3
. "$(dirname "$0")/common.sh"

run="--synthetic=1024 --model cnn --policy qmqe --gecko --batch 64 --epochs 2
     --seed 5 --no-progress --check-replicas"

timeout 120 mpirun -np 2 "$train" $run --no-daemon --report "$tmp/local.json" \
    > "$tmp/local.txt" 2>&1 || { cat "$tmp/local.txt"; fail "in-process run"; }
ref=$(json_hash "$tmp/local.json")
echo "in-process: weights hash $ref"

start_sfpd 96K --prefetch-depth 2
for codec in rank daemon auto; do
    before=$("$sfpctl" --addr "unix:$tmp/grpc.sock" --json stats)
    timeout 120 mpirun -np 2 "$train" $run --daemon "$tmp/sfpd.sock" --job "codec-$codec" \
        --stash-codec $codec --report "$tmp/$codec.json" > "$tmp/$codec.txt" 2>&1 ||
        { cat "$tmp/$codec.txt"; fail "--stash-codec $codec run"; }
    after=$("$sfpctl" --addr "unix:$tmp/grpc.sock" --json stats)
    grep "stash codec" "$tmp/$codec.txt"
    grep -q "served the whole run" "$tmp/$codec.txt" || { cat "$tmp/$codec.txt"; fail "sfpd was lost"; }
    h=$(json_hash "$tmp/$codec.json")
    echo "--stash-codec $codec: weights hash $h"
    [ "$h" = "$ref" ] || fail "--stash-codec $codec: weights $h differ from in-process $ref"
    /usr/bin/python3 - "$codec" "$tmp/$codec.json" "$before" "$after" "$(getconf _NPROCESSORS_ONLN)" <<'PY'
import json, sys
codec, report, before, after, cores = sys.argv[1], json.load(open(sys.argv[2])), \
    json.loads(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
c = {k: int(after["counters"][k]) - int(before["counters"].get(k, 0)) for k in after["counters"]}
s = report["settings"]
def need(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        sys.exit(1)
want = codec if codec != "auto" else "rank"
need(s["stash_codec"] == want and s["stash_codec_option"] == codec,
     f"report: stash_codec {s['stash_codec']} (option {s['stash_codec_option']}, "
     f"{s['node_ranks']} ranks, {s['node_cores']} cores), want {want}")
need(s["node_ranks"] == 2 and s["node_cores"] == cores, "node ranks and cores recorded")
if want == "rank":
    need(c["frames_put"] > 0 and c["frames_put"] == c["puts"],
         f"every stash a frame the ranks encoded: frames_put {c['frames_put']} of puts {c['puts']}")
    need(c["encodes"] == 0, f"weight pieces encoded in the ranks (sfpd encodes {c['encodes']})")
else:
    need(c["frames_put"] == 0 and c["puts"] > 0, f"sfpd encoded: puts {c['puts']}, frames_put {c['frames_put']}")
need(c["spills"] >= 1 and c["prefetch_hits"] >= 1,
     f"spills {c['spills']}, prefetch hits {c['prefetch_hits']}")
need(c["errors"] == 0 and c["frames_refused"] == 0, f"errors {c['errors']}, refused {c['frames_refused']}")
PY
done
# --weight-coder auto (each weight piece the smaller of a Gecko and a rANS
# frame): sfpd's Encode makes the same frames as the ranks' libsfp
timeout 120 mpirun -np 2 "$train" $run --weight-coder auto --no-daemon \
    --report "$tmp/wauto-local.json" > "$tmp/wauto-local.txt" 2>&1 ||
    { cat "$tmp/wauto-local.txt"; fail "in-process --weight-coder auto run"; }
before=$("$sfpctl" --addr "unix:$tmp/grpc.sock" --json stats)
timeout 120 mpirun -np 2 "$train" $run --weight-coder auto --daemon "$tmp/sfpd.sock" \
    --job codec-wauto --stash-codec daemon --report "$tmp/wauto.json" > "$tmp/wauto.txt" 2>&1 ||
    { cat "$tmp/wauto.txt"; fail "--weight-coder auto through sfpd"; }
after=$("$sfpctl" --addr "unix:$tmp/grpc.sock" --json stats)
grep -q '"weight_coder": "auto"' "$tmp/wauto.json" || fail "report: weight_coder not auto"
h1=$(json_hash "$tmp/wauto-local.json") h2=$(json_hash "$tmp/wauto.json")
echo "--weight-coder auto: in-process $h1, sfpd encodes $h2"
[ "$h1" = "$h2" ] || fail "--weight-coder auto: sfpd's weights $h2 differ from in-process $h1"
/usr/bin/python3 - "$before" "$after" <<'PY'
import json, sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
enc = int(a["counters"]["encodes"]) - int(b["counters"].get("encodes", 0))
print(("ok   " if enc > 0 else "FAIL ") + f"sfpd encoded the weight pieces ({enc} encodes)")
sys.exit(0 if enc > 0 else 1)
PY

# one rank on this node, a core to spare: auto still codes in the rank
# (cheaper than sfpd's threads there too, docs/BENCHMARKS.md "Who encodes")
if [ "$(getconf _NPROCESSORS_ONLN)" -gt 1 ]; then
    timeout 120 "$train" $run --daemon "$tmp/sfpd.sock" --job codec-one \
        --report "$tmp/one.json" > "$tmp/one.txt" 2>&1 || { cat "$tmp/one.txt"; fail "one-rank run"; }
    grep "stash codec" "$tmp/one.txt"
    grep -q '"stash_codec": "rank", "stash_codec_option": "auto", "node_ranks": 1' "$tmp/one.json" ||
        fail "auto with one rank on $(getconf _NPROCESSORS_ONLN) cores did not pick rank"
fi
stop_sfpd
echo ok
