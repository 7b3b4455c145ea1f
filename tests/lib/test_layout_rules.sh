#!/usr/bin/env bash
# The test of test_layout.sh: on a copy of the tree, each deliberate
# violation of a dependency rule (one at a time) must make it fail with the
# rule's message, and the untouched copy must pass.
#   test_layout_rules.sh LAYOUT_SCRIPT
set -u
src=${SFP_SOURCE_ROOT:?}
layout=${1:?usage: test_layout_rules.sh test_layout.sh}
tmp=$(mktemp -d /tmp/sfp-layout-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0

fresh() {
    rm -rf "$tmp/tree"
    mkdir -p "$tmp/tree"
    for d in lib daemon client worker rpc; do
        [[ -d "$src/$d" ]] && cp -r "$src/$d" "$tmp/tree/$d"
    done
}

# violation FILE LINE EXPECTED-MESSAGE
violation() {
    local out
    fresh
    sed -i "0,/^#include/s||$2\n#include|" "$tmp/tree/$1"
    if out=$(SFP_LAYOUT_NO_HEADERS=1 SFP_LAYOUT_ROOT="$tmp/tree" bash "$layout" 2>&1); then
        echo "FAIL: '$2' in $1 was not caught"
        fail=1
    elif [[ "$out" != *"$3"* ]]; then
        echo "FAIL: '$2' in $1 failed without '$3':"
        echo "$out"
        fail=1
    else
        echo "caught: $1: $2"
    fi
}

fresh
if ! SFP_LAYOUT_NO_HEADERS=1 SFP_LAYOUT_ROOT="$tmp/tree" bash "$layout" >/dev/null 2>&1; then
    echo "FAIL: the untouched copy does not pass"
    fail=1
fi
violation daemon/core/store.c '#include "edges/ipc/ipc.h"' "daemon/core must include only base/ and core/"
violation daemon/core/held.c '#include <grpc/grpc.h>' "daemon/core must include only base/ and core/"
violation daemon/base/stats.c '#include "core/store.h"' "daemon/base must not include another room"
violation daemon/edges/metrics/metrics_http.c '#include "edges/grpc/grpc_server.h"' "the metrics edge must not include another edge"
violation daemon/edges/ipc/ipc_server.c '#include "edges/grpc/grpc_server.h"' "the IPC edge must not include another edge"
violation daemon/edges/grpc/grpc_server.c '#include "tiers/tiers.h"' "the gRPC edge must not include another edge or a tier"
violation daemon/tiers/tier_disk.c '#include "core/store.h"' "daemon/tiers must not include edges, the root or the store"
violation daemon/edges/grpc/grpc_server.c '#include "daemon.h"' "only main.c includes daemon.h"
violation daemon/base/stats.c '#include "base/sfpd.h"' "daemon modules include each other: base/sfpd -> base/stats -> base/sfpd"
violation daemon/core/held.c '#include "core/store.h"' "daemon modules include each other: core/held -> core/store -> core/held"
violation client/sfpctl.c '#include "core/store.h"' "client must not include daemon or worker headers"
violation rpc/rpc.c '#include <sfp/sfp.h>' "rpc/ must not include sfp's own headers"
violation lib/frame.c '#include <uv.h>' "libsfp must not include I/O, RPC or MPI headers"
[[ $fail == 0 ]] && echo "layout rules: every deliberate violation caught"
exit $fail
