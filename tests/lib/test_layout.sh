#!/usr/bin/env bash
# Every public header compiles on its own, and the dependency direction of
# DESIGN.md holds: lib <- client <- worker, lib <- client <- python,
# lib <- daemon. libsfp includes no
# gRPC, libuv, MPI or protobuf header.
set -u
src=${SFP_SOURCE_ROOT:?}
cc=${CC:-cc}
fail=0
for h in "$src"/lib/include/sfp/*.h; do
    for std in c11 c99; do
        if ! printf '#include <sfp/%s>\n' "$(basename "$h")" |
            $cc -std=$std -Wall -Wextra -Werror -fsyntax-only -I"$src/lib/include" -x c - 2>&1; then
            echo "FAIL: $h does not compile alone (-std=$std)"
            fail=1
        fi
    done
done
check() { # dir pattern message
    local hits
    hits=$(grep -rnE "^#[[:space:]]*include[[:space:]]*[<\"]($2)" "$src/$1" --include='*.c' --include='*.h' 2>/dev/null)
    if [[ -n "$hits" ]]; then
        echo "FAIL: $3"
        echo "$hits"
        fail=1
    fi
}
check lib 'uv\.h|grpc/|mpi\.h|protobuf-c/|.*\.pb-c\.h|microhttpd|systemd/' "libsfp must not include I/O, RPC or MPI headers"
check lib '\.\./(daemon|client|worker)/' "libsfp must not include daemon, client or worker headers"
check client '\.\./(daemon|worker)/|daemon/|worker/' "client must not include daemon or worker headers"
check daemon '\.\./worker/|worker/' "daemon must not include worker headers"
check worker '\.\./daemon/' "worker must not include daemon internals"
check python '\.\./|daemon/|worker/|uv\.h|grpc/|mpi\.h|protobuf-c/|.*\.pb-c\.h' \
    "the Python extension uses only the public headers of libsfp and libsfpclient"
[[ $fail == 0 ]] && echo "layout: headers self-contained, include direction holds"
exit $fail
