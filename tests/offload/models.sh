#!/bin/sh
# resnet and vit through sfpd end with the same weights as in-process:
# mpirun -np 2, qmqe + gecko, a DRAM budget far below one step (frames
# spill and come back). vit keeps the step's buffers in the shared memory
# (puts and gets copy nothing); resnet gets a small --daemon-shm, so its
# stashed tensors are copied into the put ring and leave the rank's memory
# (--stash-codec daemon, sfpd encodes); resnet then runs again with the
# ranks encoding (--stash-codec rank: frames through the same small ring).
# Then sfpd is killed (SIGKILL) in the middle of a resnet run: the ranks go
# on in-process, run the step again and end with the same weights.
# usage: models.sh SFPD SFPCTL SFP_TRAIN
set -eu
sfpd=$1 sfpctl=$2 train=$3
. "$(dirname "$0")/common.sh"

start_sfpd 256K --prefetch-depth 4
for mc in vit:daemon resnet:daemon resnet:rank; do
    m=${mc%:*} codec=${mc#*:}
    run="--model $m --synthetic=96 --policy qmqe --gecko --batch 16 --epochs 1 --seed 3
         --no-progress --check-replicas"
    extra="--stash-codec $codec"
    [ $m = resnet ] && extra="$extra --daemon-shm 4"
    [ -f "$tmp/$m-local.json" ] ||
    timeout 200 mpirun -np 2 "$train" $run --no-daemon --report "$tmp/$m-local.json" \
        > "$tmp/$m-local.txt" 2>&1 || { cat "$tmp/$m-local.txt"; fail "$m in-process"; }
    timeout 200 mpirun -np 2 "$train" $run --daemon "$tmp/sfpd.sock" --job "models-$m-$codec" $extra \
        --report "$tmp/$m-daemon.json" > "$tmp/$m-daemon.txt" 2>&1 ||
        { cat "$tmp/$m-daemon.txt"; fail "$m through sfpd ($codec)"; }
    grep -q "served the whole run" "$tmp/$m-daemon.txt" || fail "$m: sfpd was lost"
    grep -q "identical across 2 ranks" "$tmp/$m-daemon.txt" || fail "$m: replicas differ"
    if [ $codec = rank ]; then
        grep -q "stash codec: rank" "$tmp/$m-daemon.txt" || fail "$m: not the rank codec"
    elif [ $m = resnet ]; then
        grep -q "do not fit the shared memory" "$tmp/$m-daemon.txt" || fail "resnet: not copied"
    else
        if grep -q "do not fit the shared memory" "$tmp/$m-daemon.txt"; then
            fail "vit: not in the shared memory"
        fi
    fi
    hl=$(json_hash "$tmp/$m-local.json")
    hd=$(json_hash "$tmp/$m-daemon.json")
    echo "$m: weights hash in-process $hl, through sfpd ($codec codec) $hd"
    grep "^epoch\|^memory" "$tmp/$m-daemon.txt"
    [ -n "$hl" ] && [ "$hl" = "$hd" ] || fail "$m: weights differ from the in-process run"
done
"$sfpctl" --addr "unix:$tmp/grpc.sock" stats | head -20
stop_sfpd

# daemon loss in release mode: kill -9 after some puts of the second run
start_sfpd 256K
run="--model resnet --synthetic=96 --policy qmqe --gecko --batch 16 --epochs 1 --seed 3
     --no-progress --check-replicas --daemon-shm 4 --stash-codec daemon"
timeout 200 mpirun -np 2 "$train" $run --daemon "$tmp/sfpd.sock" --job models-loss \
    --report "$tmp/loss.json" > "$tmp/loss.txt" 2>&1 &
train_pid=$!
i=0
while [ "$(sfpd_puts)" -lt 300 ]; do
    i=$((i + 1))
    kill -0 "$train_pid" 2> /dev/null || { cat "$tmp/loss.txt"; fail "resnet ended before the kill"; }
    [ $i -lt 1200 ] || fail "no progress in sfpd"
    sleep 0.1
done
kill -9 "$sfpd_pid"
sfpd_pid=
rc=0
wait "$train_pid" || rc=$?
train_pid=
grep "^epoch\|sfpd\|final" "$tmp/loss.txt"
[ $rc -eq 0 ] || { cat "$tmp/loss.txt"; fail "resnet after the daemon loss exited $rc"; }
grep -q "LOST during the run" "$tmp/loss.txt" || fail "the loss was not noticed"
hl=$(json_hash "$tmp/resnet-local.json")
hd=$(json_hash "$tmp/loss.json")
echo "resnet after sfpd was killed: $hd, in-process $hl"
[ "$hl" = "$hd" ] || fail "weights after the daemon loss differ from the in-process run"
echo ok
