#!/bin/sh
# sfpd + mpirun -np 2 sfp-train + sfpctl, all real: the ranks stash their
# activations in sfpd (--stash-codec daemon: sfpd encodes; budget far below one step, so frames spill to disk and
# come back by prefetch) and sfpd encodes their weight shards. The run must
# end bit-identical to the same run with the in-process stash (same seed:
# same weights hash, same accuracy), and sfpctl must show what sfpd did.
# usage: offload.sh SFPD SFPCTL SFP_TRAIN
set -eu
sfpd=$1 sfpctl=$2 train=$3
. "$(dirname "$0")/common.sh"

run="--synthetic=1024 --model mlp --policy qmqe --gecko --batch 64 --epochs 2
     --seed 7 --no-progress --check-replicas"

# in-process reference
timeout 120 mpirun -np 2 "$train" $run --no-daemon --report "$tmp/local.json" \
    > "$tmp/local.txt" 2>&1 || { cat "$tmp/local.txt"; fail "in-process run"; }

# through sfpd: 24 KiB of DRAM for ~60 KiB of frames per step
start_sfpd 24K --prefetch-depth 2
timeout 120 mpirun -np 2 "$train" $run --daemon "$tmp/sfpd.sock" --job offload-test --stash-codec daemon \
    --report "$tmp/daemon.json" > "$tmp/daemon.txt" 2>&1 &
train_pid=$!
# sfpctl while it runs: the job is there
i=0 seen=0
while kill -0 "$train_pid" 2> /dev/null && [ $i -lt 600 ]; do
    if "$sfpctl" --addr "unix:$tmp/grpc.sock" stats --job offload-test > "$tmp/live.txt" 2>&1 &&
       grep -q "offload-test" "$tmp/live.txt"; then
        seen=1
        break
    fi
    i=$((i + 1))
    sleep 0.1
done
rc=0
wait "$train_pid" || rc=$?
train_pid=
cat "$tmp/daemon.txt"
[ $rc -eq 0 ] || fail "sfp-train through sfpd exited $rc"
[ $seen -eq 1 ] || fail "sfpctl never saw job offload-test while it ran"
echo "--- sfpctl stats during the run"
cat "$tmp/live.txt"

"$sfpctl" --addr "unix:$tmp/grpc.sock" stats > "$tmp/stats.txt"
"$sfpctl" --addr "unix:$tmp/grpc.sock" --json stats > "$tmp/stats.json"
echo "--- sfpctl stats after the run"
cat "$tmp/stats.txt"

grep -q "stash sfpd" "$tmp/daemon.txt" || fail "the run did not use sfpd"
grep -q "served the whole run" "$tmp/daemon.txt" || fail "sfpd was lost"
grep -q "identical across 2 ranks" "$tmp/daemon.txt" || fail "replicas differ"

# same weights and accuracy as in-process
hl=$(json_hash "$tmp/local.json")
hd=$(json_hash "$tmp/daemon.json")
ad=$(json_acc "$tmp/daemon.json")
al=$(json_acc "$tmp/local.json")
echo "weights hash: in-process $hl, sfpd $hd; test accuracy $al% vs $ad%"
[ -n "$hl" ] && [ "$hl" = "$hd" ] || fail "weights differ from the in-process run"
[ "$al" = "$ad" ] || fail "accuracy differs from the in-process run"

# what sfpd did, from its counters
/usr/bin/python3 - "$tmp/stats.json" "$tmp/daemon.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
r = json.load(open(sys.argv[2]))
c = {k: int(v) for k, v in s.get("counters", {}).items()}
def need(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        sys.exit(1)
ratio = c["bytes_in"] / max(1, c["bytes_stored_in"])
need(c["bytes_in"] > 0, f"stashed bytes in {c['bytes_in']}")
need(ratio > 4, f"stash compression ratio {ratio:.2f} > 4")
need(c["spills"] >= 1, f"spills {c['spills']} >= 1")
need(c["prefetch_hits"] >= 1, f"prefetch hits {c['prefetch_hits']} >= 1")
need(c["encodes"] > 0, f"weight pieces encoded by sfpd {c['encodes']}")
need(r["daemon"]["weight_pieces_encoded_by_sfpd"] > 0 and
     r["daemon"]["weight_pieces_encoded_in_process"] == 0, "every weight piece encoded by sfpd")
x = r["epochs"][-1]["weight_exchange"]
need(x["ratio"] > 2, f"weight exchange {x['bytes_per_step']:.0f} B/step vs FP32 {x['fp32_bytes_per_step']:.0f} ({x['ratio']:.2f}x)")
need(c["errors"] == 0, f"sfpd error replies {c['errors']}")
PY
stop_sfpd
echo ok
