# Shared by the cluster tests (sourced): a real cluster of network
# namespaces made by scripts/cluster under a name of this test's own, removed
# on exit whatever happens. Skips (exit 77) when this host cannot create
# namespaces. Expects $sfpd $sfpctl $train; sets $tmp, $name, cl().
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OPENBLAS_NUM_THREADS=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export SFPD_BIN=$sfpd SFPCTL_BIN=$sfpctl
cluster=$(cd "$(dirname "$0")/../.." && pwd)/scripts/cluster
command -v mpirun > /dev/null || { echo "SKIP: mpirun not found"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: network namespaces need root"; exit 77; }
# unique among the clusters on this host: our pid, plus the test's letter
name=c${CLUSTER_TEST:-x}$$
why=$("$cluster" -n "$name" check 2>&1) || { echo "SKIP: $why"; exit 77; }
tmp=$(mktemp -d /tmp/sfp-cluster-test-XXXXXX)
train_pid=
cleanup() {
    [ -n "$train_pid" ] && kill -9 "$train_pid" 2> /dev/null
    "$cluster" -n "$name" down > /dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

cl() { "$cluster" -n "$name" "$@"; }

fail() {
    echo "FAIL: $*"
    for f in /run/sfp-cluster/"$name"/node*/sfpd.log; do
        [ -f "$f" ] || continue
        echo "--- $f"; tail -n 15 "$f"
    done
    exit 1
}

json_hash() { sed -n 's/.*"weights_hash": "\([0-9a-f]*\)".*/\1/p' "$1"; }

# jq-like reads of sfpctl --json output: jget NODE EXPR (python, d = the reply)
jget() {
    node=$1; shift
    cl sfpctl "$node" --json --timeout 2 stats 2> /dev/null |
        /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($*)" 2> /dev/null || echo -1
}

# ref NAME FLAGS...: the same run on one host (mpirun -np 3, in-process stash)
ref_run() {
    rname=$1; shift
    timeout 120 mpirun -np 3 "$train" "$@" --no-daemon --report "$tmp/$rname.json" \
        > "$tmp/$rname.txt" 2>&1 || { cat "$tmp/$rname.txt"; fail "single-host reference run"; }
    json_hash "$tmp/$rname.json"
}

# cluster_bg NAME FLAGS...: sfp-train on the cluster (1 rank per node) in
# the background; $train_pid
cluster_bg() {
    cname=$1; shift
    timeout 180 "$cluster" -n "$name" run -- "$train" "$@" --report "$tmp/$cname.json" \
        > "$tmp/$cname.txt" 2>&1 &
    train_pid=$!
}

# wait_train: rc of the background run in $rc
wait_train() {
    rc=0
    wait "$train_pid" || rc=$?
    train_pid=
}

# wait_puts NODE N: until NODE's sfpd has completed N puts, while the job runs
wait_puts() {
    i=0
    while [ "$(jget "$1" 'int(d["counters"]["puts"])')" -lt "$2" ]; do
        i=$((i + 1))
        kill -0 "$train_pid" 2> /dev/null || { cat "$tmp"/*.txt; fail "the job ended before the fault"; }
        [ $i -lt 600 ] || fail "no progress on node$1"
        sleep 0.05
    done
}
