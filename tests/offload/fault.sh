#!/bin/sh
# sfpd dies (kill -9) or stops answering (SIGSTOP) while mpirun -np 2
# sfp-train stashes in it. With --on-daemon-loss=fallback the run goes on
# in-process, runs the interrupted step again and ends with exactly the
# weights of an in-process run (no acknowledged stash silently wrong); with
# =fail it exits non-zero within 10 s of the kill.
# usage: fault.sh SFPD SFPCTL SFP_TRAIN
set -eu
sfpd=$1 sfpctl=$2 train=$3
. "$(dirname "$0")/common.sh"

run="--synthetic=1024 --model cnn --policy qmqe --gecko --batch 64 --epochs 2
     --seed 3 --no-progress --quiet --check-replicas"

# start_run NAME FLAGS...: sfp-train through sfpd in the background
start_run() {
    name=$1; shift
    timeout 120 mpirun -np 2 "$train" $run --daemon "$tmp/sfpd.sock" \
        --report "$tmp/$name.json" "$@" > "$tmp/$name.txt" 2>&1 &
    train_pid=$!
}

# wait_puts N: until sfpd has acknowledged N puts (bounded)
wait_puts() {
    i=0
    while [ "$(sfpd_puts)" -lt "$1" ]; do
        i=$((i + 1))
        kill -0 "$train_pid" 2> /dev/null || { cat "$tmp/$name.txt"; fail "$name ended before the fault"; }
        [ $i -lt 600 ] || fail "$name: no progress in sfpd"
        sleep 0.1
    done
}

finish_run() {
    rc=0
    wait "$train_pid" || rc=$?
    train_pid=
    cat "$tmp/$name.txt"
    return 0
}

timeout 120 mpirun -np 2 "$train" $run --no-daemon --report "$tmp/ref.json" \
    > "$tmp/ref.txt" 2>&1 || { cat "$tmp/ref.txt"; fail "in-process run"; }
ref=$(json_hash "$tmp/ref.json")
echo "in-process reference: weights hash $ref, test accuracy $(json_acc "$tmp/ref.json")%"

for codec in daemon rank; do
echo "=== kill -9 sfpd mid-run, --on-daemon-loss=fallback, --stash-codec $codec"
rm -f "$tmp/sfpd.sock" "$tmp/grpc.sock"
start_sfpd 256K
start_run kill-$codec --stash-codec $codec
wait_puts 40
kill -9 "$sfpd_pid"
wait "$sfpd_pid" 2> /dev/null || true
sfpd_pid=
finish_run
[ $rc -eq 0 ] || fail "run exited $rc after the daemon died (fallback, $codec)"
grep -q "\"stash_codec\": \"$codec\"" "$tmp/kill-$codec.json" || fail "the run did not use --stash-codec $codec"
grep -q "sfpd lost" "$tmp/kill-$codec.txt" || fail "no clear log line about the lost daemon"
grep -q '"lost": true' "$tmp/kill-$codec.json" || fail "report does not say the daemon was lost"
h=$(json_hash "$tmp/kill-$codec.json")
[ "$h" = "$ref" ] || fail "weights after fallback ($h, $codec) differ from in-process ($ref)"
echo "ok: finished in-process, same weights as the reference ($h)"
done

echo "=== SIGSTOP sfpd mid-run (stops answering), --daemon-timeout 1000"
rm -f "$tmp/sfpd.sock" "$tmp/grpc.sock"
start_sfpd 256K
start_run stop --daemon-timeout 1000
wait_puts 40
kill -STOP "$sfpd_pid"
t0=$(date +%s)
finish_run
t1=$(date +%s)
kill -9 "$sfpd_pid"; kill -CONT "$sfpd_pid" 2> /dev/null || true
wait "$sfpd_pid" 2> /dev/null || true
sfpd_pid=
[ $rc -eq 0 ] || fail "run exited $rc after the daemon stopped answering"
grep -q "did not answer in time" "$tmp/stop.txt" || fail "no timeout reported"
h=$(json_hash "$tmp/stop.json")
[ "$h" = "$ref" ] || fail "weights after timeout fallback ($h) differ from in-process ($ref)"
echo "ok: $((t1 - t0)) s from SIGSTOP to the end of the run, same weights"

echo "=== kill -9 sfpd mid-run, --on-daemon-loss=fail"
rm -f "$tmp/sfpd.sock" "$tmp/grpc.sock"
start_sfpd 256K
start_run failmode --on-daemon-loss=fail
wait_puts 40
kill -9 "$sfpd_pid"
t0=$(date +%s)
wait "$sfpd_pid" 2> /dev/null || true
sfpd_pid=
finish_run
t1=$(date +%s)
[ $rc -ne 0 ] || fail "--on-daemon-loss=fail exited 0"
[ $((t1 - t0)) -le 10 ] || fail "took $((t1 - t0)) s to stop (> 10 s)"
grep -q "sfpd lost" "$tmp/failmode.txt" || fail "no clear log line about the lost daemon"
echo "ok: exited $rc, $((t1 - t0)) s after the kill"
echo ok
