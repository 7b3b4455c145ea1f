#!/usr/bin/env bash
# test_golden.sh SFP_CODEC GOLDEN_DIR - every golden frame gives exactly its
# expected result (tests/golden/README.md):
#   valid/NAME.sfp     decodes to valid/NAME.raw byte for byte, and
#                      'sfp-codec info NAME.sfp' prints valid/NAME.info
#   invalid/NAME.sfp   is rejected (exit 1) with the SFP_E* code that
#                      invalid/EXPECTED lists for it, by decode and by info
set -uo pipefail
codec=${1:?usage: test_golden.sh SFP_CODEC GOLDEN_DIR}
golden=${2:?usage: test_golden.sh SFP_CODEC GOLDEN_DIR}
golden=$(cd "$golden" && pwd) || exit 1
codec=$(cd "$(dirname "$codec")" && pwd)/$(basename "$codec")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0
ok() { checks=$((checks + 1)); }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL: $*" >&2; }

cd "$golden/valid" || exit 1
nvalid=0
for f in *.sfp; do
    name=${f%.sfp}
    nvalid=$((nvalid + 1))
    if [[ ! -f $name.raw || ! -f $name.info ]]; then
        bad "$f: missing $name.raw or $name.info"
        continue
    fi
    if "$codec" decode "$f" "$tmp/out" 2>"$tmp/err"; then
        cmp -s "$tmp/out" "$name.raw" && ok || bad "$f: decoded bytes differ from $name.raw"
    else
        bad "$f: decode failed: $(cat "$tmp/err")"
    fi
    if "$codec" info "$f" >"$tmp/info" 2>"$tmp/err"; then
        diff -u "$name.info" "$tmp/info" >"$tmp/diff" && ok ||
            bad "$f: info differs from $name.info: $(cat "$tmp/diff")"
    else
        bad "$f: info failed: $(cat "$tmp/err")"
    fi
done
[[ $nvalid -ge 10 ]] && ok || bad "only $nvalid valid golden frames"

cd "$golden/invalid" || exit 1
ninvalid=0
declare -A listed=()
while read -r file code _; do
    [[ -z $file || $file == \#* ]] && continue
    listed[$file]=1
    ninvalid=$((ninvalid + 1))
    if [[ ! -f $file ]]; then
        bad "$file listed in EXPECTED but missing"
        continue
    fi
    for cmd in decode info; do
        if [[ $cmd == decode ]]; then
            "$codec" decode "$file" "$tmp/out" >/dev/null 2>"$tmp/err"
        else
            "$codec" info "$file" >/dev/null 2>"$tmp/err"
        fi
        rc=$?
        if [[ $rc -ne 1 ]]; then
            bad "$file: $cmd exited $rc, want 1"
        elif ! grep -q -- "$file: .*$code: " "$tmp/err"; then
            bad "$file: $cmd: want $code, got: $(cat "$tmp/err")"
        else
            ok
        fi
    done
    # The code must be the only SFP_E* name in the message.
    others=$(grep -o 'SFP_E[A-Z]*' "$tmp/err" | grep -vx -- "$code" || true)
    [[ -z $others ]] && ok || bad "$file: also mentions $others"
done <EXPECTED
for f in *.sfp; do
    [[ -n ${listed[$f]:-} ]] || bad "$f is not listed in invalid/EXPECTED"
done
[[ $ninvalid -ge 10 ]] && ok || bad "only $ninvalid invalid golden frames"

echo "test_golden: $nvalid valid, $ninvalid invalid frames, $checks checks, $fails failed"
[[ $fails -eq 0 ]]
