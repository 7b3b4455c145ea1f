#!/bin/sh
# sfp-train's option table: --help and --print-options list every option,
# bad values and unknown options are usage errors (exit 2) with a message
# naming the option, and settings reach the run (seen in its report).
# usage: options.sh path/to/sfp-train
set -u
exe=$1
tmp=$(mktemp -d /tmp/sfpw-opts-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() { echo "FAIL: $*"; exit 1; }
unset SFP_SOCKET

"$exe" --help > "$tmp/help" || fail "--help exit $?"
"$exe" --print-options > "$tmp/opts" || fail "--print-options exit $?"
n=$(wc -l < "$tmp/opts")
[ "$n" -gt 40 ] || fail "only $n options printed"
cut -f1 "$tmp/opts" | while read -r flag rest; do
    grep -qF -- "  $flag" "$tmp/help" || { echo "FAIL: $flag missing from --help"; exit 1; }
done || exit 1
# the width policy's defaults come from libsfp
grep -q -- "^--gamma F	[0-9.e-]*	" "$tmp/opts" || fail "--gamma has no library default"

expect_usage() {
    msg=$1; shift
    "$exe" "$@" > "$tmp/out" 2>&1
    rc=$?
    [ $rc -eq 2 ] || fail "$* exited $rc, expected 2"
    grep -q -- "$msg" "$tmp/out" || { cat "$tmp/out"; fail "$*: no '$msg'"; }
}
expect_usage "bad value '0' for --epochs" --epochs 0
expect_usage "bad value 'x' for --lr" --lr x
expect_usage "bad value '70000' for --batch" --batch 70000
expect_usage "unknown --coder 'zstd'" --coder zstd
expect_usage "unknown --policy 'q'" --policy q
expect_usage "unrecognized option" --no-such-option
expect_usage "--job: 1 to 128 bytes" --job ""
expect_usage "unexpected argument 'extra'" --synthetic=64 extra
expect_usage "unknown --qm-rule 'adam'" --qm-rule adam
# each QM/QE rule has its own knobs
expect_usage "--gamma belongs to --qm-rule sgd" --gamma 0.1
expect_usage "--bit-cost belongs to --qm-rule adaptive" --qm-rule sgd --bit-cost 2

# settings reach the run: the report echoes them
"$exe" --synthetic=256 --epochs 1 --batch 64 --optimizer sgd --lr-decay 0.5 \
    --policy qm --qm-rule sgd --gamma 0.125 --sample 100 --qm-grad first --no-progress --quiet \
    --report "$tmp/r.json" > /dev/null || fail "run failed"
for kv in '"optimizer": "sgd"' '"lr": 0.025' '"lr_decay": 0.5' '"policy": "qm"' \
          '"gamma": 0.125' '"sample": 100' '"qm_grad": "first"' '"weight_decay": 0.0005' \
          '"data": "synthetic"' '"coder": "auto"' '"qm_rule": "sgd"'; do
    grep -q "$kv" "$tmp/r.json" || { cat "$tmp/r.json" | head -8; fail "report lacks $kv"; }
done
"$exe" --synthetic=256 --epochs 1 --batch 64 --policy qmqe --bit-cost 3.5 --e-min 2.5 \
    --e-min-act 4 --warmup 3 --no-progress --report "$tmp/q.json" > "$tmp/q.out" \
    || fail "qmqe run failed"
# a bit cost given alone is fixed: no footprint target
for kv in '"qm_rule": "adaptive"' '"target_bits": 0' '"bit_cost": 3.5' '"e_min": 2.5' '"e_min_act": 4'; do
    grep -q "$kv" "$tmp/q.json" || { cat "$tmp/q.json" | head -8; fail "report lacks $kv"; }
done
"$exe" --synthetic=256 --epochs 1 --batch 64 --policy qmqe --target-bits 2.5 --warmup 3 \
    --no-progress --quiet --report "$tmp/t.json" > /dev/null || fail "target run failed"
grep -q '"target_bits": 2.5' "$tmp/t.json" || fail "report lacks the target"
grep -q '"bit_cost": [0-9]' "$tmp/t.json" || fail "report lacks the bit cost in force"
# the calibration ends after --warmup steps and starts every width at or
# above its floor
grep -q "^calibrated widths after 3 steps" "$tmp/q.out" || fail "no calibration line"
/usr/bin/python3 - "$tmp/q.json" <<'PY' || fail "widths below their floors"
import json, sys
r = json.load(open(sys.argv[1]))
kind = {t["name"]: t["kind"] for t in r["tensors"]}
for t in r["epochs"][-1]["tensors"]:
    floor = 4 if kind[t["name"]] == "activation" else 2.5
    assert t["e"] >= floor - 1e-9 and t["e_mean"] >= floor - 1e-9, t
PY
# norm scales, class token and positions keep --n-min-param mantissa bits
# while a strong bit cost takes the other weights below it
# (and activations --n-min-act)
"$exe" --model vit --synthetic=256 --batch 32 --epochs 2 --policy qmqe --warmup 2 \
    --bit-cost 40 --n-min-act 3 --n-min-act-linear 1 --n-min-bias 5 --no-progress --quiet \
    --report "$tmp/p.json" > /dev/null || fail "vit floor run failed"
/usr/bin/python3 - "$tmp/p.json" <<'PY' || fail "a norm scale or activation went below its floor"
import json, sys
r = json.load(open(sys.argv[1]))
s = r["settings"]
assert s["n_min_param"] == 7 and s["n_min_act"] == 3 and s["n_min_act_linear"] == 1, s
assert s["n_min_bias"] == 5, s
kind = {t["name"]: t["kind"] for t in r["tensors"]}
role = {t["name"]: t["role"] for t in r["tensors"]}
linear = {"input", "post-relu", "pooled", "linear", "norm-output", "gelu-output",
          "attention-output"}
ts = r["epochs"][-1]["tensors"]
params = [t for t in ts if kind[t["name"]] == "param"]
weights = [t for t in ts if kind[t["name"]] == "weight"]
biases = [t for t in ts if kind[t["name"]] == "bias"]
assert biases and all(t["n"] >= 5 - 1e-9 and t["k_mean"] >= 5 - 1e-9 for t in biases), biases
acts = [t for t in ts if kind[t["name"]] == "activation" and t["n"] < 23]
lin = [t for t in acts if role[t["name"]] in linear]
other = [t for t in acts if role[t["name"]] not in linear]
assert params and all(t["n"] >= 7 - 1e-9 and t["k_mean"] >= 7 - 1e-9 for t in params), params
assert other and all(t["n"] >= 3 - 1e-9 and t["k_mean"] >= 3 - 1e-9 for t in other), other
assert lin and all(t["n"] >= 1 - 1e-9 and t["k_mean"] >= 1 - 1e-9 for t in lin), lin
assert min(t["n"] for t in lin) < 3, "no pressure on the activations linear layers read"
assert min(t["n"] for t in weights) < 2, "no pressure on the weights"
PY
# without --n-min-act, activations keep 3 mantissa bits (or --n-min if higher)
for nm in 0 3.5; do
    "$exe" --model mlp --synthetic=256 --batch 32 --epochs 1 --policy qmqe --warmup 2 \
        --bit-cost 40 --n-min "$nm" --no-progress --quiet --report "$tmp/d.json" > /dev/null ||
        fail "default floor run failed"
    /usr/bin/python3 - "$tmp/d.json" "$nm" <<'PY' || fail "activations' default mantissa floor"
import json, sys
r = json.load(open(sys.argv[1]))
want = max(3.0, float(sys.argv[2]))
assert r["settings"]["n_min_act"] == want, r["settings"]
assert r["settings"]["n_min_act_linear"] == want, r["settings"]
kind = {t["name"]: t["kind"] for t in r["tensors"]}
ts = r["epochs"][-1]["tensors"]
acts = [t for t in ts if kind[t["name"]] == "activation" and t["n"] < 23]
assert acts and all(t["n"] >= want - 1e-9 for t in acts), acts
PY
done
# BitWave: activations keep 3 mantissa bits (or --bw-m-min if higher, or
# --bw-m-min-act) while the weights follow the controller's width
for c in "2 - 2 3" "2 5 2 5" "4 - 4 4"; do
    set -- $c
    x=
    [ "$2" = - ] || x="--bw-m-min-act $2"
    "$exe" --model mlp --synthetic=256 --batch 32 --epochs 1 --policy bitwave --bw-m-init "$1" \
        --bw-m-min "$3" $x --bw-min-share 0 --no-progress --quiet --report "$tmp/bw.json" \
        > /dev/null || fail "bitwave floor run ($c) failed"
    /usr/bin/python3 - "$tmp/bw.json" "$3" "$4" <<'PY' || fail "BitWave's activation floor ($c)"
import json, sys
r = json.load(open(sys.argv[1]))
w, a = int(sys.argv[2]), int(sys.argv[3])
s = r["settings"]
assert (s["bw_m_min"], s["bw_m_min_act"]) == (w, a), s
kind = {t["name"]: t["kind"] for t in r["tensors"]}
ts = r["epochs"][-1]["tensors"]
acts = [t for t in ts if kind[t["name"]] == "activation"]
weights = [t for t in ts if kind[t["name"]] == "weight"]
assert acts and all(t["n"] == a and t["k_mean"] == a for t in acts), acts
assert weights and all(t["n"] == w and t["k_mean"] == w for t in weights), weights
PY
done
# --n-min-bias: BitWave's biases keep it under the network's width
"$exe" --model mlp --synthetic=256 --batch 32 --epochs 1 --policy bitwave --bw-m-init 2 \
    --bw-m-min 2 --n-min-bias 5.5 --bw-min-share 0 --no-progress --quiet --report "$tmp/bw.json" \
    > /dev/null || fail "bitwave bias floor run failed"
/usr/bin/python3 - "$tmp/bw.json" <<'PY' || fail "BitWave's bias floor"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["settings"]["n_min_bias"] == 5.5, r["settings"]
kind = {t["name"]: t["kind"] for t in r["tensors"]}
ts = r["epochs"][-1]["tensors"]
biases = [t for t in ts if kind[t["name"]] == "bias"]
weights = [t for t in ts if kind[t["name"]] == "weight"]
assert biases and all(t["n"] == 6 and t["k_mean"] == 6 for t in biases), biases
assert weights and all(t["n"] == 2 for t in weights), weights
PY
# --bw-min-share: under BitWave the weights and biases that hold less than
# this share of a step's stored values keep the activations' floor (mlp at
# batch 32: fc1.w 69 %, fc2.w 22 %, fc3.w 0.4 %, biases < 0.1 %)
for c in "- 2 2 3 3" "0.5 2 3 3 3" "0 2 2 2 2"; do
    set -- $c
    x=
    [ "$1" = - ] || x="--bw-min-share $1"
    "$exe" --model mlp --synthetic=256 --batch 32 --epochs 1 --policy bitwave --bw-m-init 2 \
        --bw-m-min 2 $x --no-progress --quiet --report "$tmp/bw.json" > /dev/null ||
        fail "bitwave share run ($c) failed"
    /usr/bin/python3 - "$tmp/bw.json" "$@" <<'PY' || fail "BitWave's small-tensor floor ($c)"
import json, sys
r = json.load(open(sys.argv[1]))
share = 0.01 if sys.argv[2] == "-" else float(sys.argv[2])
want = dict(zip(("fc1.w", "fc2.w", "fc3.w", "bias"), map(int, sys.argv[3:])))
assert r["settings"]["bw_min_share"] == share, r["settings"]
kind = {t["name"]: t["kind"] for t in r["tensors"]}
for t in r["epochs"][-1]["tensors"]:
    k = want["bias"] if kind[t["name"]] == "bias" else want.get(t["name"])
    assert k is None or (t["n"] == k and t["k_mean"] == k), (t, k)
assert sum(kind[t["name"]] == "bias" for t in r["epochs"][-1]["tensors"]) == 3
PY
done
if "$exe" --policy bitwave --bw-m-min-act 2.5 --synthetic=64 --epochs 1 > "$tmp/bw.out" 2>&1; then
    fail "--bw-m-min-act 2.5 accepted"
fi
grep -q 'whole number' "$tmp/bw.out" || fail "no message for a fractional --bw-m-min-act"
# --calib-target: accepted with the adaptive rule, recorded, refused with sgd
"$exe" --model cnn --synthetic=256 --batch 32 --epochs 1 --warmup 4 --target-bits 6 \
    --calib-target on --no-progress --quiet --report "$tmp/ct.json" > /dev/null ||
    fail "--calib-target run failed"
/usr/bin/python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["settings"]["calib_target"] is True' \
    "$tmp/ct.json" || fail "calib_target not in the report"
if "$exe" --qm-rule sgd --calib-target on --synthetic=64 --epochs 1 > "$tmp/ct.out" 2>&1; then
    fail "--calib-target accepted with the sgd rule"
fi
grep -q 'calib-target' "$tmp/ct.out" || fail "no message naming --calib-target"
# steady state allocates nothing: once the stash's buffers have grown
# (first epoch), a step faults in no fresh pages (at most a stray 2 over the
# last epoch's steady steps); the report carries the counts
"$exe" --model cnn --synthetic=512 --epochs 3 --batch 64 --policy qmqe --gecko --no-progress \
    --quiet --report "$tmp/f.json" > /dev/null || fail "faults run failed"
/usr/bin/python3 - "$tmp/f.json" <<'PY' || fail "steady-state steps fault in fresh pages"
import json, sys
ep = json.load(open(sys.argv[1]))["epochs"]
first, last = ep[0], ep[-1]
assert first["minor_faults_per_step"] > 0, first  # the counter counts
steady = last["steady_minor_faults_per_step"] * (last["steps"] - 2)
assert steady <= 2, "epoch %d: %.0f minor faults in its steady steps" % (last["epoch"], steady)
PY
# vit's stashed tensors have many sizes: each gets its own buffer back
# every step, so the second epoch faults in a few pages at most (frames
# still growing with their widths) and the stash holds what its frames
# take (handing out the largest free buffer grew every buffer towards the
# largest tensor's: ~1600 faults in epoch 2's steady steps, 1.29x the FP32
# activations held against 0.47x)
"$exe" --model vit --synthetic=384 --epochs 2 --batch 64 --policy qmqe --gecko --no-progress \
    --quiet --report "$tmp/fv.json" > /dev/null || fail "vit faults run failed"
/usr/bin/python3 - "$tmp/fv.json" <<'PY' || fail "vit: the stash's buffers do not settle"
import json, sys
r = json.load(open(sys.argv[1]))
last = r["epochs"][-1]
steady = last["steady_minor_faults_per_step"] * (last["steps"] - 2)
assert steady <= 16, "epoch 2: %.0f minor faults in its steady steps" % steady
m = r["memory"]
held = m["ranks"][0]["stash_bytes"] / m["activation_fp32_bytes_per_step"]
assert held < 0.75, "the stash holds %.2fx the FP32 activations of a step" % held
PY
# --daemon and --no-daemon: the last one wins
"$exe" --synthetic=64 --epochs 1 --batch 64 --quiet --no-progress --daemon /nonexistent \
    --no-daemon --report "$tmp/d.json" > /dev/null 2>&1 || fail "--no-daemon after --daemon"
grep -q '"used": false' "$tmp/d.json" || fail "--no-daemon ignored"
echo ok
