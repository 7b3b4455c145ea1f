#!/bin/sh
# sfpctl policy set steers a running mpirun -np 2 sfp-train through sfpd:
# a policy set before the job starts applies from its first step, one set
# mid-run from the next step after a put reports it, on every rank at the
# same step (the ranks' weights stay identical).
# usage: policy.sh SFPD SFPCTL SFP_TRAIN
set -eu
sfpd=$1 sfpctl=$2 train=$3
. "$(dirname "$0")/common.sh"
ctl() { "$sfpctl" --addr "unix:$tmp/grpc.sock" --timeout 5 "$@"; }

start_sfpd 64M
ctl policy set --job pol-test --pin 3,4 --coder plain > /dev/null
timeout 120 mpirun -np 2 "$train" --synthetic=16384 --model mlp --policy qmqe --gecko \
    --batch 64 --epochs 1 --seed 2 --no-progress --quiet --check-replicas \
    --daemon "$tmp/sfpd.sock" --job pol-test --report "$tmp/r.json" > "$tmp/out.txt" 2>&1 &
train_pid=$!
i=0
while [ "$(sfpd_puts)" -lt 20 ]; do
    i=$((i + 1))
    kill -0 "$train_pid" 2> /dev/null || { cat "$tmp/out.txt"; fail "run ended early"; }
    [ $i -lt 600 ] || fail "no puts"
    sleep 0.05
done
ctl policy set --job pol-test --pin 2,3 --freeze
ctl policy get --job pol-test
rc=0
wait "$train_pid" || rc=$?
train_pid=
cat "$tmp/out.txt"
[ $rc -eq 0 ] || fail "run exited $rc"
grep -q "sfpd policy generation 1 from step 1: widths pinned at k=3 e=4, coder plain" "$tmp/out.txt" ||
    fail "generation 1 not applied from step 1"
grep -q "sfpd policy generation 2 from step [0-9]*: widths pinned at k=2 e=3, coder as configured, widths frozen" \
    "$tmp/out.txt" || fail "generation 2 not applied"
/usr/bin/python3 - "$tmp/r.json" "$tmp/out.txt" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
out = open(sys.argv[2]).read()
s2 = int(re.search(r"generation 2 from step (\d+)", out).group(1))
ep = r["epochs"][-1]
steps = ep["steps"]
assert ep["sfpd_policy_generation"] == 2, ep["sfpd_policy_generation"]
for t in ep["tensors"]:
    # step 0: learned widths; steps 1..s2-1: 3/4; steps s2..: 2/3
    k = (t["k_mean"] * steps - 3 * (s2 - 1) - 2 * (steps - s2))
    e = (t["e_mean"] * steps - 4 * (s2 - 1) - 3 * (steps - s2))
    print(f"{t['name']}: k_mean {t['k_mean']:.4f} e_mean {t['e_mean']:.4f} -> step-0 widths k {k:.2f} e {e:.2f}")
    # k_mean has 4 decimals: x steps that is within 0.03 of an integer
    assert abs(k - round(k)) < 0.05 and round(k) >= 2, "k widths do not follow the policy"
    assert abs(e - round(e)) < 0.05 and round(e) >= 3, "e widths do not follow the policy"
assert r["final"]["replicas_identical"]
print(f"ok: generation 1 from step 1, generation 2 from step {s2} of {steps}")
PY
stop_sfpd
echo ok
