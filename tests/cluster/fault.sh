#!/bin/sh
# A fault in the middle of a 3-node job (sfp-train, CNN, each rank stashing in
# its node's sfpd, node0 spilling into the other nodes' sfpd):
#
# kill: kill -9 of node1's sfpd while it holds frames of node0 (caught with
#   node0's sfpd stopped for a moment). node1's rank
#   falls back to its in-process stash and runs the interrupted step again;
#   node0's rank, when a Get finds its frame gone with node1 (E_LOST), runs
#   that step again through its own sfpd, which it keeps using. The job ends
#   with the weights of the single-host run; node0's and node2's sfpd keep
#   serving.
# link: node2's link down for 2 s (its switch port, like a pulled cable). The
#   job completes with the weights of the single-host run or fails with a
#   clear error, within a bounded time; never with wrong weights.
#
# usage: fault.sh kill|link SFPD SFPCTL SFP_TRAIN
set -eu
mode=$1 sfpd=$2 sfpctl=$3 train=$4
CLUSTER_TEST=$(echo "$mode" | cut -c1)
. "$(dirname "$0")/common.sh"

# 64 steps: on a fast host (an AMD EPYC with AVX-512 ran 16 steps in 6 s)
# the job could end before node1 was caught holding node0's frames, and the
# kill then came after the last step; 32 steps still did, once in four
# clean-clone runs there
run="--synthetic=6144 --model cnn --policy qmqe --gecko --batch 96 --epochs 1
     --seed 11 --no-progress --quiet --check-replicas"
ref=$(ref_run ref $run)
echo "single host, 3 ranks: weights hash $ref"

# node0: 64 KiB of DRAM for ~300 KiB of frames per step, and no prefetch:
# its frames stay on the peers until backward reads them; its Puts wait for
# their spill writes (spill_write_behind 0), so that node0's sfpd works
# through a step's batch slowly enough to be caught with frames on node1
# before the job's last steps (with the default window, under ASan, the
# moment came at the last step, after node1's rank had used its sfpd for
# the last time, and no rank noticed the kill)
cl up --nodes 3 --node-set 0:dram_budget=64K --node-set 0:prefetch_depth=0 \
    --node-set 0:spill_write_behind=0
cluster_bg clu $run --job "cluster-$mode"
# mid-run: the node has taken 5 steps' stashes (6 puts a step)
case $mode in
kill)
    wait_puts 1 30
    # ... at a moment when node1 holds frames of node0 that node0's rank
    # will ask for. The rank sends a step's frames and their gets together
    # at backward, so node1 holds them while node0's sfpd works through
    # that batch: stop node0's sfpd (SIGSTOP), look, and go on (SIGCONT)
    # until node1 holds two or more (node0's sfpd reads them back one at a
    # time: at most one can be on its way), then kill node1's sfpd before
    # node0's resumes. Looking stops after 4 s (it takes 1-2 s when it
    # works) and the kill comes then anyway, while the job still has steps
    # to run (node0's rank then may not lose a frame: noted below)
    pid1=$(cat "/run/sfp-cluster/$name/node1/sfpd.pid")
    pid0=$(cat "/run/sfp-cluster/$name/node0/sfpd.pid")
    i=0 held=0 until=$(($(date +%s) + 4))
    while [ $i -lt 200 ] && [ "$(date +%s)" -lt $until ] && kill -0 "$train_pid" 2> /dev/null; do
        kill -STOP "$pid0"
        sleep 0.02
        held=$(jget 1 'sum(int(c.get("held_frames", 0)) for c in d.get("peer_clients", []) if c["node"] == "node0")')
        [ "$held" -ge 2 ] && break
        kill -CONT "$pid0"
        i=$((i + 1))
        sleep 0.01
    done
    kill -0 "$train_pid" 2> /dev/null ||
        { kill -CONT "$pid0"; cat "$tmp"/*.txt; fail "the job ended before node1's sfpd was killed"; }
    kill -9 "$pid1"
    kill -CONT "$pid0"
    echo "killed node1's sfpd (pid $pid1) with SIGKILL; it held $held frames of node0 just before"
    ;;
link)
    wait_puts 2 30
    cl link 2 down
    echo "node2's link down"
    sleep 2
    cl link 2 up
    echo "node2's link up again"
    ;;
*) fail "unknown mode $mode" ;;
esac
t0=$(date +%s)
wait_train
t1=$(date +%s)
cat "$tmp/clu.txt"
echo "the job ended $((t1 - t0)) s after the fault was over, exit code $rc"
h=$(json_hash "$tmp/clu.json" 2> /dev/null || true)
case $mode in
kill)
    [ $rc -eq 0 ] || fail "cluster run exited $rc after node1's sfpd died"
    grep -q "sfpd lost" "$tmp/clu.txt" || fail "no log line about the lost daemon"
    grep -q '"lost": true' "$tmp/clu.json" || fail "the report does not say a daemon was lost"
    [ "$h" = "$ref" ] || fail "weights after the fallback ($h) differ from the single-host run ($ref)"
    echo "ok: same weights as the single-host run ($h)"
    grep -q "sfp-train\[1\]: sfpd lost" "$tmp/clu.txt" || fail "node1's rank did not fall back"
    if [ "$held" -ge 2 ]; then
        grep -q "sfp-train\[0\]: sfpd could not return" "$tmp/clu.txt" ||
            fail "node0's rank did not report the frames lost with node1"
        grep -q "sfp-train\[0\]: sfpd lost" "$tmp/clu.txt" &&
            fail "node0's rank gave up its own sfpd for a frame lost on a peer"
        echo "ok: node0's rank ran the step again through its own sfpd"
    else
        echo "note: node1 never held two frames of node0 when looked at"
    fi
    for k in 0 2; do
        cl sfpctl $k health > /dev/null || fail "node$k's sfpd stopped serving"
    done
    echo "node0 and node2 sfpd still serving"
    cl sfpctl 0 stats | sed -n '/^PEER/,/^$/p'
    ;;
link)
    # bound: TCP retransmits within ~4 s of a 2 s outage; an sfpd call to
    # the unreachable peer gives up after peer_timeout (5 s)
    [ $((t1 - t0)) -le 60 ] || fail "the job took $((t1 - t0)) s to end after the outage"
    if [ $rc -eq 0 ]; then
        [ "$h" = "$ref" ] || fail "WRONG WEIGHTS after the outage ($h vs $ref)"
        echo "ok: completed with the weights of the single-host run ($h)"
    else
        grep -qi "error\|lost\|fail\|abort" "$tmp/clu.txt" || fail "exited $rc without a clear error"
        echo "ok: failed clearly (exit $rc)"
    fi
    ;;
esac
echo ok
