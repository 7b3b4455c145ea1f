#!/bin/sh
# --step-timeout: a rank that stops answering (SIGSTOP, as a hung node or a
# dead link looks from the others) leaves the other rank blocked in a
# collective; its watchdog ends it with exit status 4 and a line saying what
# it waited in, and mpirun ends the job, within a bounded time. Then a run
# that does progress is not ended by a short timeout.
# usage: watchdog.sh path/to/sfp-train
set -eu
exe=$1
command -v mpirun > /dev/null || { echo "mpirun not found"; exit 77; }
tmp=$(mktemp -d /tmp/sfpw-watchdog-XXXXXX)
mpid=
cleanup() {
    # only what this test started: the stopped rank (by pid) and mpirun
    [ -n "${stopped:-}" ] && kill -CONT "$stopped" 2> /dev/null && kill -9 "$stopped" 2> /dev/null
    [ -n "$mpid" ] && kill -9 "$mpid" 2> /dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; cat "$tmp/out.txt" 2> /dev/null | tail -20; exit 1; }

timeout 120 mpirun -np 2 "$exe" --model cnn --synthetic=4096 --batch 32 --epochs 50 \
    --step-timeout 3 --no-progress > "$tmp/out.txt" 2>&1 &
mpid=$!
# wait for the training to run (the data line), then stop one rank
i=0
while ! grep -q "^data:" "$tmp/out.txt" 2> /dev/null; do
    i=$((i + 1)); [ $i -lt 600 ] || fail "the run did not start"; sleep 0.1
done
sleep 1
# $mpid is timeout's; its child is mpirun, whose children are the ranks
runner=$(pgrep -P "$mpid" | head -n 1)
stopped=$(pgrep -P "$runner" -x sfp-train | tail -n 1)
[ -n "$stopped" ] || fail "no rank found under mpirun $runner"
kill -STOP "$stopped"
t0=$(date +%s)
echo "stopped rank pid $stopped"
rc=0
wait "$mpid" || rc=$?
mpid=
t1=$(date +%s)
tail -n 12 "$tmp/out.txt"
echo "the job ended $((t1 - t0)) s after the rank stopped, exit status $rc"
[ $rc -ne 0 ] || fail "the job exited 0 with a rank stopped"
[ $rc -ne 124 ] || fail "the job was still running after 120 s"
[ $((t1 - t0)) -le 30 ] || fail "the watchdog took $((t1 - t0)) s (timeout 3 s)"
grep -q "no progress for [0-9]* s in .*(--step-timeout 3)" "$tmp/out.txt" ||
    fail "no watchdog line"

# progress keeps it quiet: a run several times as long as its 4 s timeout
# (steps of milliseconds; 4 s, not 2: on a loaded CI machine under ASan one
# phase between two beats may take a second or two)
t0=$(date +%s)
timeout 120 mpirun -np 2 "$exe" --model cnn --synthetic=1024 --batch 32 --epochs 8 \
    --step-timeout 4 --no-progress --quiet > "$tmp/out.txt" 2>&1 || fail "a healthy run was ended"
echo "healthy run: $(($(date +%s) - t0)) s with --step-timeout 4"
grep -q "no progress" "$tmp/out.txt" && fail "watchdog fired on a healthy run"
echo ok
