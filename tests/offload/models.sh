#!/bin/sh
# resnet and vit through sfpd end with the same weights as in-process:
# mpirun -np 2, qmqe + gecko, a DRAM budget far below one step (frames
# spill and come back). vit keeps the step's buffers in the shared memory
# (puts and gets copy nothing); resnet gets a small --daemon-shm, so its
# stashed tensors are copied into the put ring and leave the rank's memory.
# usage: models.sh SFPD SFPCTL SFP_TRAIN
set -eu
sfpd=$1 sfpctl=$2 train=$3
. "$(dirname "$0")/common.sh"

start_sfpd 256K --prefetch-depth 4
for m in vit resnet; do
    run="--model $m --synthetic=96 --policy qmqe --gecko --batch 16 --epochs 1 --seed 3
         --no-progress --check-replicas"
    extra=
    [ $m = resnet ] && extra="--daemon-shm 4"
    timeout 200 mpirun -np 2 "$train" $run --no-daemon --report "$tmp/$m-local.json" \
        > "$tmp/$m-local.txt" 2>&1 || { cat "$tmp/$m-local.txt"; fail "$m in-process"; }
    timeout 200 mpirun -np 2 "$train" $run --daemon "$tmp/sfpd.sock" --job "models-$m" $extra \
        --report "$tmp/$m-daemon.json" > "$tmp/$m-daemon.txt" 2>&1 ||
        { cat "$tmp/$m-daemon.txt"; fail "$m through sfpd"; }
    grep -q "served the whole run" "$tmp/$m-daemon.txt" || fail "$m: sfpd was lost"
    grep -q "identical across 2 ranks" "$tmp/$m-daemon.txt" || fail "$m: replicas differ"
    if [ $m = resnet ]; then
        grep -q "do not fit the shared memory" "$tmp/$m-daemon.txt" || fail "resnet: not copied"
    else
        if grep -q "do not fit the shared memory" "$tmp/$m-daemon.txt"; then
            fail "vit: not in the shared memory"
        fi
    fi
    hl=$(json_hash "$tmp/$m-local.json")
    hd=$(json_hash "$tmp/$m-daemon.json")
    echo "$m: weights hash in-process $hl, through sfpd $hd"
    grep "^epoch\|^memory" "$tmp/$m-daemon.txt"
    [ -n "$hl" ] && [ "$hl" = "$hd" ] || fail "$m: weights differ from the in-process run"
done
"$sfpctl" --addr "unix:$tmp/grpc.sock" stats | head -20
stop_sfpd
echo ok
