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

# settings reach the run: the report echoes them
"$exe" --synthetic=256 --epochs 1 --batch 64 --optimizer sgd --lr-decay 0.5 \
    --policy qm --gamma 0.125 --sample 100 --qm-grad first --no-progress --quiet \
    --report "$tmp/r.json" > /dev/null || fail "run failed"
for kv in '"optimizer": "sgd"' '"lr": 0.025' '"lr_decay": 0.5' '"policy": "qm"' \
          '"gamma": 0.125' '"sample": 100' '"qm_grad": "first"' '"weight_decay": 0.0005' \
          '"data": "synthetic"' '"coder": "plain"'; do
    grep -q "$kv" "$tmp/r.json" || { cat "$tmp/r.json" | head -8; fail "report lacks $kv"; }
done
# --daemon and --no-daemon: the last one wins
"$exe" --synthetic=64 --epochs 1 --batch 64 --quiet --no-progress --daemon /nonexistent \
    --no-daemon --report "$tmp/d.json" > /dev/null 2>&1 || fail "--no-daemon after --daemon"
grep -q '"used": false' "$tmp/d.json" || fail "--no-daemon ignored"
echo ok
