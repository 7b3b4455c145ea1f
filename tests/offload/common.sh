# Shared by the offload tests: a real sfpd on temp paths, started and
# stopped by pid. Sourced; expects $sfpd and sets $tmp, $sfpd_pid.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OPENBLAS_NUM_THREADS=1
export OMPI_MCA_rmaps_base_oversubscribe=1
command -v mpirun > /dev/null || { echo "mpirun not found"; exit 77; }
tmp=$(mktemp -d /tmp/sfp-offload-XXXXXX)
sfpd_pid=
cleanup() {
    [ -n "$sfpd_pid" ] && kill -9 "$sfpd_pid" 2> /dev/null
    [ -n "${train_pid:-}" ] && kill -9 "$train_pid" 2> /dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# start_sfpd DRAM_BUDGET [extra flags]: waits (bounded) for the socket
start_sfpd() {
    budget=$1; shift
    "$sfpd" --socket "$tmp/sfpd.sock" --spill-dir "$tmp/spill" \
        --dram-budget "$budget" --grpc-listen "unix:$tmp/grpc.sock" \
        --metrics-listen "" --grace-period 5 "$@" >> "$tmp/sfpd.log" 2>&1 &
    sfpd_pid=$!
    i=0
    while [ ! -S "$tmp/sfpd.sock" ] || [ ! -S "$tmp/grpc.sock" ]; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 "$sfpd_pid" 2> /dev/null; then
            echo "sfpd did not start"; cat "$tmp/sfpd.log"; exit 1
        fi
        sleep 0.1
    done
}

stop_sfpd() {
    kill -TERM "$sfpd_pid"
    wait "$sfpd_pid" || { echo "sfpd exited with $?"; cat "$tmp/sfpd.log"; exit 1; }
    sfpd_pid=
    rm -f "$tmp/sfpd.sock" "$tmp/grpc.sock"
}

# sfpd_puts: Put requests sfpd has completed so far, from sfpctl's counters
# (0 while it does not answer); needs $sfpctl
sfpd_puts() {
    "$sfpctl" --addr "unix:$tmp/grpc.sock" --json --timeout 2 stats 2> /dev/null |
        /usr/bin/python3 -c 'import json,sys; print(int(json.load(sys.stdin)["counters"]["puts"]))' \
        2> /dev/null || echo 0
}

# the final weights hash and test accuracy of an sfp-train report
json_hash() {
    sed -n 's/.*"weights_hash": "\([0-9a-f]*\)".*/\1/p' "$1"
}
json_acc() {
    sed -n 's/.*"final": {.*"test_acc": \([0-9.]*\).*/\1/p' "$1"
}


fail() { echo "FAIL: $*"; echo "--- sfpd log"; tail -n 30 "$tmp/sfpd.log"; exit 1; }
