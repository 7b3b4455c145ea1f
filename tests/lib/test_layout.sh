#!/usr/bin/env bash
# Every public header compiles on its own, and the dependency rules of
# DESIGN.md and docs/DAEMON.md ("Rooms") hold, by the include lines:
#   lib <- client <- worker, lib <- client <- python, lib <- daemon; libsfp includes no gRPC, libuv,
#   MPI or protobuf header; rpc/ (shared by sfpd and sfpctl) includes
#   nothing of sfp's own.
#   Inside daemon/: base <- core <- tiers, core <- edges, and only the
#   composition root (daemon.c, main.c) sees every room:
#     base/   includes no other room;
#     core/   includes base/ only, no RPC, HTTP or IPC header;
#     tiers/  includes base/ and the tier side of core/ (not the store);
#     edges/  each edge (ipc, grpc, metrics) includes base/ and core/,
#             never another edge or a tier;
#     daemon.h is included by main.c only;
#   and no two daemon modules (a .c/.h pair) include each other, however
#   indirectly.
# SFP_LAYOUT_ROOT checks another tree, SFP_LAYOUT_NO_HEADERS=1 skips the
# header compilation (both for test_layout_rules.sh, the test of this test).
set -u
src=${SFP_LAYOUT_ROOT:-${SFP_SOURCE_ROOT:?}}
cc=${CC:-cc}
fail=0
for h in $([[ -n "${SFP_LAYOUT_NO_HEADERS:-}" ]] || echo "$src"/lib/include/sfp/*.h); do
    for std in c11 c99; do
        if ! printf '#include <sfp/%s>\n' "$(basename "$h")" |
            $cc -std=$std -Wall -Wextra -Werror -fsyntax-only -I"$src/lib/include" -x c - 2>&1; then
            echo "FAIL: $h does not compile alone (-std=$std)"
            fail=1
        fi
    done
done
check() { # dir pattern message [file-glob]
    local hits
    hits=$(grep -rnE "^#[[:space:]]*include[[:space:]]*[<\"]($2)" "$src/$1" --include="${4:-*.[ch]}" 2>/dev/null)
    if [[ -n "$hits" ]]; then
        echo "FAIL: $3"
        echo "$hits"
        fail=1
    fi
}
check lib 'uv\.h|grpc/|mpi\.h|protobuf-c/|.*\.pb-c\.h|microhttpd|systemd/' "libsfp must not include I/O, RPC or MPI headers"
check lib '\.\./(daemon|client|worker)/' "libsfp must not include daemon, client or worker headers"
check client '\.\./(daemon|worker)/|daemon/|worker/|base/|core/|tiers/|edges/' "client must not include daemon or worker headers"
check daemon '\.\./worker/|worker/' "daemon must not include worker headers"
check worker '\.\./daemon/|base/|core/|tiers/|edges/' "worker must not include daemon internals"
check rpc 'sfp/|base/|core/|tiers/|edges/|\.\./' "rpc/ must not include sfp's own headers"
check python '\.\./|daemon/|worker/|base/|core/|tiers/|edges/|uv\.h|grpc/|mpi\.h|protobuf-c/|.*\.pb-c\.h' \
    "the Python extension uses only the public headers of libsfp and libsfpclient"

# rooms of daemon/
check daemon/base '(core|tiers|edges)/|daemon\.h' "daemon/base must not include another room"
check daemon/core '(tiers|edges)/|daemon\.h|rpc\.h|grpc/|.*\.pb-c\.h|microhttpd|systemd/' \
    "daemon/core must include only base/ and core/ (no RPC, HTTP or IPC)"
check daemon/tiers 'edges/|daemon\.h|core/(store|policy)\.h' "daemon/tiers must not include edges, the root or the store"
check daemon/edges/ipc 'edges/(grpc|metrics)/|tiers/|daemon\.h' "the IPC edge must not include another edge or a tier"
check daemon/edges/grpc 'edges/(ipc|metrics)/|tiers/|daemon\.h' "the gRPC edge must not include another edge or a tier"
check daemon/edges/metrics 'edges/(ipc|grpc)/|tiers/|daemon\.h|core/' "the metrics edge must not include another edge, a tier or the core"
hits=$(grep -rlE '^#[[:space:]]*include[[:space:]]*"daemon\.h"' "$src/daemon" | grep -vE '/daemon/(main|daemon)\.c$')
if [[ -n "$hits" ]]; then
    echo "FAIL: only main.c includes daemon.h (the composition root)"
    echo "$hits"
    fail=1
fi

# no circles between daemon modules (X.c + X.h), direct or indirect
if ! /usr/bin/python3 - "$src/daemon" <<'PY'
import os, re, sys
root = sys.argv[1]
inc = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
graph = {}
for d, _, files in os.walk(root):
    for f in files:
        if not f.endswith((".c", ".h")):
            continue
        path = os.path.join(d, f)
        mod = os.path.relpath(path, root)[:-2]
        for h in inc.findall(open(path, errors="replace").read()):
            if os.path.exists(os.path.join(root, h)):
                dep = h[:-2]
                if dep != mod:
                    graph.setdefault(mod, set()).add(dep)
seen, stack, bad = {}, [], []
def visit(m):
    seen[m] = 1
    stack.append(m)
    for n in sorted(graph.get(m, ())):
        if seen.get(n) == 1:
            bad.append(" -> ".join(stack[stack.index(n):] + [n]))
        elif n not in seen:
            visit(n)
    stack.pop()
    seen[m] = 2
for m in sorted(graph):
    if m not in seen:
        visit(m)
for b in bad:
    print("FAIL: daemon modules include each other: " + b)
sys.exit(1 if bad else 0)
PY
then
    fail=1
fi
[[ $fail == 0 ]] && echo "layout: headers self-contained, include direction and daemon rooms hold, no circles"
exit $fail
