#!/bin/sh
# `scripts/cluster down` removes everything `up` made, also after crashes:
# (1) `up` killed with SIGKILL halfway through its set-up; (2) a job with 2
# ranks per node whose mpirun is killed with SIGKILL, leaving orteds, ranks
# and every node's sfpd behind; (3) a host process still writing into the
# state directory, as a killed `up`'s make_pki. After each `down`: no
# namespace, no process
# that ran in them, no state file, no mount, no OpenMPI file in /tmp or
# /dev/shm; and while the cluster was up, the host's own interfaces,
# addresses and routes never changed.
# usage: down.sh SFPD SFPCTL SFP_TRAIN
set -eu
sfpd=$1 sfpctl=$2 train=$3
CLUSTER_TEST=d
. "$(dirname "$0")/common.sh"

host_net() {
    ip -o link show | awk '{print $2}' | sort
    ip -o addr show | awk '{print $2, $4}' | sort
    ip route show table all | sort
}
host_net > "$tmp/host0.txt"
state=/run/sfp-cluster/$name

# check_clean PIDS: everything is gone
check_clean() {
    ip netns list 2> /dev/null | grep "sfpc-$name-" && fail "namespaces left"
    [ ! -e "$state" ] || { find "$state" | head; fail "state directory left"; }
    grep -q "$state" /proc/self/mountinfo && fail "mounts left"
    for p in $1; do
        st=$(ps -o stat= -p "$p" 2> /dev/null || true)
        case $st in "" | Z*) ;; *) ps -o pid,cmd -p "$p"; fail "pid $p still runs" ;; esac
    done
    ls /dev/shm | grep -q "vader_segment.node" && fail "OpenMPI shared memory left in /dev/shm"
    ls -d /tmp/ompi.node* 2> /dev/null && fail "OpenMPI session directories left in /tmp"
    host_net > "$tmp/host1.txt"
    diff "$tmp/host0.txt" "$tmp/host1.txt" || fail "the host's network changed"
    return 0
}

ns_pids() {
    for ns in $(ip netns list 2> /dev/null | awk -v p="sfpc-$name-" 'index($1, p) == 1 {print $1}'); do
        ip netns pids "$ns"
    done
}

echo "=== 1: up killed halfway"
# scripts/cluster itself in the background, not through cl(): $! of a
# backgrounded function is the subshell that runs it, and killing that left
# the real `up` running; it failed later and its clean-up trap removed the
# next cluster of the same name (seen once: "the job ended early")
"$cluster" -n "$name" up --nodes 3 > "$tmp/up1.txt" 2>&1 &
up_pid=$!
# once the first namespace exists, let it go on a moment and kill it
i=0
while ! ip netns list 2> /dev/null | grep -q "sfpc-$name-node1" && [ $i -lt 100 ]; do
    i=$((i + 1)); sleep 0.02
done
sleep 0.3
kill -9 $up_pid 2> /dev/null || true
wait $up_pid 2> /dev/null || true
echo "up killed; left behind: $(ip netns list 2> /dev/null | grep -c "sfpc-$name-") namespaces, $(ns_pids | wc -w) processes"
pids=$(ns_pids)
cl down
check_clean "$pids"
echo "ok: nothing left"

echo "=== 2: a job's mpirun killed, orteds, ranks and daemons left behind"
cl up --nodes 3
host_net > "$tmp/host-up.txt"
diff "$tmp/host0.txt" "$tmp/host-up.txt" || fail "up changed the host's network"
"$cluster" -n "$name" run --ranks-per-node 2 -- "$train" --synthetic=6144 --model cnn --batch 96 \
    --epochs 1 --no-progress --quiet > "$tmp/job.txt" 2>&1 &
run_pid=$!
i=0
while [ "$(jget 2 'int(d["counters"]["puts"])')" -lt 12 ]; do
    i=$((i + 1))
    kill -0 $run_pid 2> /dev/null || { cat "$tmp/job.txt"; fail "the job ended early"; }
    [ $i -lt 600 ] || fail "no progress on node2"
    sleep 0.05
done
pids=$(ns_pids)
echo "processes in the cluster: $(echo $pids | wc -w)"
kill -9 $run_pid     # scripts/cluster run execs mpirun: this is mpirun
wait $run_pid 2> /dev/null || true
cl down
check_clean "$pids"
echo "ok: nothing left"

echo "=== 3: a process left writing into the state directory"
# what a killed `up` leaves when it dies in make_pki: its subshell and
# openssl go on creating files in pki/ (seen once: down's rm failed with
# "Directory not empty"); this one writes until it is killed, also once its
# directory is gone (`true`, not `:`, whose failed redirection ends sh)
cl up --nodes 2
sh -c 'cd "$1/pki" && i=0 && while :; do i=$((i + 1)); true 2> /dev/null > "w$i"; done' \
    sh "$state" &
writer=$!
sleep 0.2
cl down
check_clean "$writer"
wait $writer 2> /dev/null || true
echo "ok: the writer killed, nothing left"
echo ok
