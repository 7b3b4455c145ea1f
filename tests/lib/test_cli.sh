#!/usr/bin/env bash
# test_cli.sh SFP_CODEC - end-to-end tests of the sfp-codec command line:
# round trips, info output, pipes, and the exit status and message of every
# kind of error.
set -uo pipefail
codec=${1:?usage: test_cli.sh PATH/TO/sfp-codec}
command -v python3 >/dev/null || { echo "python3 missing: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0

ok() { checks=$((checks + 1)); }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL: $*" >&2; }

# expect_exit CODE PATTERN CMD... : runs CMD, checks exit status and that
# stderr matches the extended regex PATTERN (empty: no check).
expect_exit() {
    local want=$1 pat=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local got=$?
    if [[ $got -ne $want ]]; then
        bad "'$*' exited $got, want $want; stderr: $(cat "$tmp/err")"
    elif [[ -n $pat ]] && ! grep -Eq -- "$pat" "$tmp/err"; then
        bad "'$*': stderr does not match /$pat/: $(cat "$tmp/err")"
    else
        ok
    fi
}

# Tensors: arbitrary finite f32 bit patterns (subnormals, +-0, extremes),
# post-ReLU Gaussian activations, bf16 patterns, and a NaN.
python3 - "$tmp" <<'PY'
import random, struct, sys
d = sys.argv[1]
r = random.Random(7)
edge = [0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00800000,
        0x7f7fffff, 0xff7fffff, 0x3f800000, 0x00400000, 0x80800000]
def finite32():
    while True:
        u = r.getrandbits(32)
        if (u >> 23) & 0xff != 0xff:
            return u
vals = edge + [finite32() for _ in range(20000 - len(edge))]
open(d + "/any.f32", "wb").write(struct.pack("<%dI" % len(vals), *vals))
act = [max(0.0, r.gauss(0, 1)) for _ in range(30000)]
open(d + "/relu.f32", "wb").write(struct.pack("<%df" % len(act), *act))
# zeros in runs (an image's background): the Huffman zero map pays
runs = [abs(r.gauss(0, 1)) + 1e-3 if (i // 50) % 3 else 0.0 for i in range(30000)]
open(d + "/runs.f32", "wb").write(struct.pack("<%df" % len(runs), *runs))
b16 = [x >> 16 for x in edge] + [finite32() >> 16 for _ in range(5000)]
open(d + "/any.bf16", "wb").write(struct.pack("<%dH" % len(b16), *b16))
open(d + "/nan.f32", "wb").write(struct.pack("<3I", 0x3f800000, 0x7fc00000, 0))
open(d + "/odd.f32", "wb").write(b"\0" * 4001)
PY
[[ -s $tmp/any.f32 ]] || { echo "tensor generation failed"; exit 1; }

# --- lossless round trips, bit for bit
for opts in "" "--gecko" "--gecko --group 64" "--group 8" "--rans" "--coder rans" \
            "--coder gecko" "--mantissa 23 --exponent 8 --rounding trunc"; do
    # shellcheck disable=SC2086
    expect_exit 0 "" "$codec" encode --dtype f32 $opts "$tmp/any.f32" "$tmp/any.sfp"
    expect_exit 0 "" "$codec" decode "$tmp/any.sfp" "$tmp/any.out"
    cmp -s "$tmp/any.f32" "$tmp/any.out" && ok || bad "k23e8 $opts round trip not bit exact"
done
expect_exit 0 "" "$codec" encode --dtype bf16 --mantissa 7 --exponent 8 --gecko "$tmp/any.bf16" "$tmp/b.sfp"
expect_exit 0 "" "$codec" decode "$tmp/b.sfp" "$tmp/b.out"
cmp -s "$tmp/any.bf16" "$tmp/b.out" && ok || bad "bf16 k7e8 round trip not bit exact"

# --- pipes: "-" for stdin and stdout
"$codec" encode - - <"$tmp/any.f32" | "$codec" decode - - >"$tmp/pipe.out"
[[ ${PIPESTATUS[0]} -eq 0 ]] && cmp -s "$tmp/any.f32" "$tmp/pipe.out" && ok || bad "pipe round trip"

# --- lossy: decoded values are on the grid, so a second pass is exact
expect_exit 0 "" "$codec" encode -k 2 -e 4 --gecko "$tmp/relu.f32" "$tmp/r.sfp"
expect_exit 0 "" "$codec" decode "$tmp/r.sfp" "$tmp/r.q"
[[ $(stat -c %s "$tmp/r.q") -eq 120000 ]] && ok || bad "k2e4 decoded size"
expect_exit 0 "" "$codec" encode -k 2 -e 4 --gecko "$tmp/r.q" "$tmp/r2.sfp"
expect_exit 0 "" "$codec" decode "$tmp/r2.sfp" "$tmp/r2.q"
cmp -s "$tmp/r.q" "$tmp/r2.q" && ok || bad "k2e4 re-encode of on-grid values not exact"
# --- the Huffman zero map: smaller on zeros in runs, the same values
expect_exit 0 "" "$codec" encode -k 2 -e 4 --gecko "$tmp/runs.f32" "$tmp/zb.sfp"
expect_exit 0 "" "$codec" encode -k 2 -e 4 --gecko --zmap huffman "$tmp/runs.f32" "$tmp/zh.sfp"
zinfo=$("$codec" info "$tmp/zh.sfp")
[[ $zinfo == *"(ZMAP ZHUF ZH2)"* ]] && ok || bad "info does not name ZHUF ZH2"
[[ $(stat -c %s "$tmp/zh.sfp") -lt $(stat -c %s "$tmp/zb.sfp") ]] && ok || bad "Huffman zero map not smaller"
expect_exit 0 "" "$codec" decode "$tmp/zb.sfp" "$tmp/zb.q"
expect_exit 0 "" "$codec" decode "$tmp/zh.sfp" "$tmp/zh.q"
cmp -s "$tmp/zb.q" "$tmp/zh.q" && ok || bad "Huffman zero map decodes differently"
expect_exit 2 "zmap" "$codec" encode --zmap rle "$tmp/runs.f32" "$tmp/x"
expect_exit 0 "" "$codec" encode -k 3 -e 5 -r stochastic -s 99 "$tmp/relu.f32" "$tmp/s1.sfp"
expect_exit 0 "" "$codec" encode -k 3 -e 5 -r stochastic -s 99 "$tmp/relu.f32" "$tmp/s2.sfp"
cmp -s "$tmp/s1.sfp" "$tmp/s2.sfp" && ok || bad "stochastic rounding not reproducible for a seed"
expect_exit 0 "ratio" "$codec" encode -v -k 2 -e 4 "$tmp/relu.f32" "$tmp/v.sfp"
expect_exit 0 "" "$codec" encode -k 2 -e 4 --rans "$tmp/relu.f32" "$tmp/rans.sfp"
expect_exit 0 "" "$codec" decode "$tmp/rans.sfp" "$tmp/rans.q"
cmp -s "$tmp/r.q" "$tmp/rans.q" && ok || bad "k2e4 rans and gecko decode to different values"
expect_exit 0 "" "$codec" info "$tmp/rans.sfp"
grep -Eq "^coder: +(rans|plain)$" "$tmp/out" && ok || bad "info coder of a rans frame"

# --- --rans is never larger than the default layout (issue 15, item 4)
python3 -c 'import struct,sys; sys.stdout.buffer.write(struct.pack("<100I", *[0x80000000]*100))' >"$tmp/negz.f32"
expect_exit 0 "" "$codec" encode -k 23 -e 8 "$tmp/negz.f32" "$tmp/nz_plain.sfp"
expect_exit 0 "" "$codec" encode -k 23 -e 8 --rans "$tmp/negz.f32" "$tmp/nz_rans.sfp"
[[ $(stat -c %s "$tmp/nz_rans.sfp") -le $(stat -c %s "$tmp/nz_plain.sfp") ]] && ok ||
    bad "--rans of 100 x -0.0: $(stat -c %s "$tmp/nz_rans.sfp") bytes > default $(stat -c %s "$tmp/nz_plain.sfp")"
expect_exit 0 "" "$codec" decode "$tmp/nz_rans.sfp" "$tmp/nz.out"
cmp -s "$tmp/negz.f32" "$tmp/nz.out" && ok || bad "--rans -0.0 round trip"

# --- info: every field, text and JSON
expect_exit 0 "" "$codec" info "$tmp/r.sfp"
for f in "file:" "version: +1" "dtype: +f32" "mantissa bits: +2" "exponent bits: +4" \
         "anchor: +[0-9]+" "coder: +gecko \\(group 16\\)" "flags: +0x0[0-7]" \
         "count: +30000" "nonzero: +[0-9]+" "zeros: +[0-9]+" "sign bytes: +0" \
         "mantissa bytes:" "zero map bytes:" "exponent bytes:" "frame bytes:" \
         "raw bytes: +120000" "bits/value: +[0-9.]+" "ratio: +[0-9.]+" \
         "checksum: +[0-9a-f]{16} OK"; do
    grep -Eq "^$f" "$tmp/out" && ok || bad "info lacks /$f/"
done
expect_exit 0 "" "$codec" info --json "$tmp/r.sfp"
python3 - "$tmp/out" "$(stat -c %s "$tmp/r.sfp")" <<'PY' && ok || bad "info --json"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["dtype"] == "f32" and j["mantissa_bits"] == 2 and j["exponent_bits"] == 4
assert j["coder"] == "gecko" and j["gecko_group"] == 16 and j["count"] == 30000
assert j["frame_bytes"] == int(sys.argv[2]) and j["checksum_ok"] is True
assert j["nonzero"] + j["zeros"] == 30000
assert abs(j["ratio"] - 120000 / j["frame_bytes"]) < 1e-3
assert abs(j["bits_per_value"] - 8 * j["frame_bytes"] / 30000) < 1e-3
assert j["sign_bytes"] + j["mantissa_bytes"] + j["zero_map_bytes"] + \
       j["exponent_bytes"] + 72 == j["frame_bytes"]
PY

# --- help and version
expect_exit 0 "" "$codec" --help
grep -q "^SYNOPSIS" "$tmp/out" && grep -q "^EXIT STATUS" "$tmp/out" && ok || bad "--help"
expect_exit 0 "" "$codec" encode --help
expect_exit 0 "" "$codec" --version
grep -q "sfp-codec" "$tmp/out" && ok || bad "--version"

# --- usage errors: exit 2
expect_exit 2 "missing command" "$codec"
expect_exit 2 "unknown command" "$codec" frobnicate
expect_exit 2 "unknown option" "$codec" encode --bogus "$tmp/any.f32" "$tmp/x"
expect_exit 2 "mantissa" "$codec" encode --mantissa 24 "$tmp/any.f32" "$tmp/x"
expect_exit 2 "mantissa" "$codec" encode --mantissa -1 "$tmp/any.f32" "$tmp/x"
expect_exit 2 "mantissa" "$codec" encode --dtype bf16 --mantissa 8 "$tmp/any.bf16" "$tmp/x"
expect_exit 2 "exponent" "$codec" encode --exponent 0 "$tmp/any.f32" "$tmp/x"
expect_exit 2 "exponent" "$codec" encode --exponent 9x "$tmp/any.f32" "$tmp/x"
expect_exit 2 "group" "$codec" encode --group 12 "$tmp/any.f32" "$tmp/x"
expect_exit 2 "rounding" "$codec" encode --rounding up "$tmp/any.f32" "$tmp/x"
expect_exit 2 "coder" "$codec" encode --coder zstd "$tmp/any.f32" "$tmp/x"
expect_exit 2 "anchor" "$codec" encode --anchor 255 "$tmp/any.f32" "$tmp/x"
expect_exit 2 "anchor 0 needs" "$codec" encode --anchor 0 --mantissa 0 "$tmp/any.f32" "$tmp/x"
expect_exit 2 "Gecko coder only" "$codec" encode --rans --group 32 "$tmp/any.f32" "$tmp/x"
expect_exit 2 "dtype" "$codec" encode --dtype f16 "$tmp/any.f32" "$tmp/x"
expect_exit 2 "needs a value" "$codec" encode "$tmp/any.f32" "$tmp/x" --mantissa
expect_exit 2 "expected IN and OUT" "$codec" encode "$tmp/any.f32"
expect_exit 2 "expected IN and OUT" "$codec" decode "$tmp/any.sfp"
expect_exit 2 "expected one FILE" "$codec" info
expect_exit 2 "unknown option" "$codec" info --xml "$tmp/r.sfp"
[[ ! -e $tmp/x ]] && ok || bad "usage error created an output file"

# --- data errors: exit 1, message names the file (and the SFP_E* code)
expect_exit 1 "nonexistent.f32.*No such file" "$codec" encode "$tmp/nonexistent.f32" "$tmp/x"
expect_exit 1 "nonexistent.sfp" "$codec" decode "$tmp/nonexistent.sfp" "$tmp/x"
expect_exit 1 "nonexistent.sfp" "$codec" info "$tmp/nonexistent.sfp"
expect_exit 1 "odd.f32.*not a multiple of 4" "$codec" encode "$tmp/odd.f32" "$tmp/x"
expect_exit 1 "odd.f32.*not a multiple of 2" "$codec" encode -t bf16 -k 3 "$tmp/odd.f32" "$tmp/x"
expect_exit 1 "nan.f32.*SFP_ENONFINITE" "$codec" encode "$tmp/nan.f32" "$tmp/x"
expect_exit 1 "cannot create" "$codec" encode "$tmp/any.f32" "$tmp/no/such/dir/x"
expect_exit 1 "any.f32.*SFP_EMAGIC" "$codec" decode "$tmp/any.f32" "$tmp/x"
if [[ -c /dev/full && -w /dev/full ]]; then
    expect_exit 1 "/dev/full: write error" "$codec" encode "$tmp/any.f32" /dev/full
    [[ -c /dev/full ]] && ok || bad "a failed write removed a device node"
fi
[[ ! -e $tmp/x ]] && ok || bad "failed command left an output file"

# Corrupt frame: one payload bit flipped -> checksum mismatch.
cp "$tmp/r.sfp" "$tmp/c.sfp"
printf '\x55' | dd of="$tmp/c.sfp" bs=1 seek=200 conv=notrunc status=none
expect_exit 1 "c.sfp.*SFP_ECHECKSUM.*checksum mismatch" "$codec" decode "$tmp/c.sfp" "$tmp/x"
[[ ! -e $tmp/x ]] && ok || bad "corrupt frame left an output file"
expect_exit 1 "SFP_ECHECKSUM" "$codec" info "$tmp/c.sfp"
grep -Eq "^checksum: +[0-9a-f]{16} bad" "$tmp/out" && ok || bad "info does not say the checksum is bad"
expect_exit 1 "SFP_ECHECKSUM" "$codec" decode - "$tmp/x" <"$tmp/c.sfp"
# Truncated frame and trailing garbage.
head -c 1000 "$tmp/r.sfp" >"$tmp/t.sfp"
expect_exit 1 "t.sfp.*SFP_ETRUNC" "$codec" decode "$tmp/t.sfp" "$tmp/x"
expect_exit 1 "t.sfp.*SFP_ETRUNC" "$codec" info "$tmp/t.sfp"
printf 'junk' | cat "$tmp/r.sfp" - >"$tmp/junk.sfp"
expect_exit 1 "junk.sfp: frame 2 at byte [0-9]+: invalid frame: SFP_EMAGIC" "$codec" decode "$tmp/junk.sfp" "$tmp/x"
expect_exit 1 "junk.sfp: frame 2 at byte [0-9]+: invalid frame: SFP_EMAGIC" "$codec" info "$tmp/junk.sfp"
grep -q "^payload: *OK" "$tmp/out" && ok || bad "info of a frame + junk: first frame not shown"
: >"$tmp/empty.sfp"
expect_exit 1 "empty.sfp.*SFP_ETRUNC" "$codec" decode "$tmp/empty.sfp" "$tmp/x"

# --- streams: one frame per chunk, files of several frames
cat "$tmp/r.sfp" "$tmp/r.sfp" >"$tmp/two.sfp"
expect_exit 0 "" "$codec" decode "$tmp/two.sfp" "$tmp/two.out"
cat "$tmp/r.q" "$tmp/r.q" | cmp -s - "$tmp/two.out" && ok || bad "two concatenated frames"
expect_exit 0 "" "$codec" encode --chunk 16K "$tmp/any.f32" "$tmp/ch.sfp"
expect_exit 0 "" "$codec" decode "$tmp/ch.sfp" "$tmp/ch.out"
cmp -s "$tmp/any.f32" "$tmp/ch.out" && ok || bad "lossless chunked round trip"
expect_exit 0 "" "$codec" info "$tmp/ch.sfp"
grep -Eq "^frames: +5$" "$tmp/out" && grep -Eq "^count: +20000$" "$tmp/out" &&
    grep -Eq "^verdict: +every frame OK$" "$tmp/out" && [[ $(grep -c "^frame [0-9]" "$tmp/out") -eq 5 ]] &&
    ok || bad "info of 5 frames: $(cat "$tmp/out")"
expect_exit 0 "" "$codec" info --json "$tmp/ch.sfp"
cp "$tmp/out" "$tmp/ch.json"
python3 - "$tmp/out" <<'PY' && ok || bad "info --json of 5 frames"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["frames"] == 5 and len(j["frame_list"]) == 5 and j["all_ok"] is True
assert j["count"] == 20000 == sum(f["count"] for f in j["frame_list"])
assert [f["count"] for f in j["frame_list"]] == [4096] * 4 + [3616]
assert all(f["checksum_ok"] and f["payload_ok"] for f in j["frame_list"])
PY
"$codec" encode --chunk 4000 - - <"$tmp/any.f32" | "$codec" decode - - >"$tmp/pipe2.out"
cmp -s "$tmp/any.f32" "$tmp/pipe2.out" && ok || bad "chunked pipe round trip"
# stochastic rounding: chunks draw the bits of the whole tensor
expect_exit 0 "" "$codec" encode -k 3 -e 8 -r stochastic -s 5 --anchor 130 --chunk 0 "$tmp/relu.f32" "$tmp/st0.sfp"
expect_exit 0 "" "$codec" encode -k 3 -e 8 -r stochastic -s 5 --anchor 130 --chunk 1000 "$tmp/relu.f32" "$tmp/st1.sfp"
"$codec" decode "$tmp/st0.sfp" "$tmp/st0.q" && "$codec" decode "$tmp/st1.sfp" "$tmp/st1.q"
cmp -s "$tmp/st0.q" "$tmp/st1.q" && ok || bad "stochastic rounding differs between chunked and whole"
# a damaged frame in the middle: named by number and offset, output removed
cp "$tmp/ch.sfp" "$tmp/mid.sfp"
off3=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["frame_list"][2]["offset"])' "$tmp/ch.json")
printf '\x55' | dd of="$tmp/mid.sfp" bs=1 seek=$((off3 + 100)) conv=notrunc status=none
expect_exit 1 "mid.sfp: frame 3 at byte $off3: decode: SFP_ECHECKSUM" "$codec" decode "$tmp/mid.sfp" "$tmp/x"
[[ ! -e $tmp/x ]] && ok || bad "a bad third frame left an output file"
expect_exit 1 "mid.sfp: frame 3 at byte $off3: checksum.*SFP_ECHECKSUM" "$codec" info "$tmp/mid.sfp"
grep -Eq "^verdict: +bad$" "$tmp/out" && [[ $(grep -c "^frame [0-9]" "$tmp/out") -eq 5 ]] && ok ||
    bad "info goes on after a bad checksum: $(cat "$tmp/out")"
head -c $((off3 + 70)) "$tmp/ch.sfp" >"$tmp/cut.sfp"
expect_exit 1 "cut.sfp: frame 3 at byte $off3: invalid frame: SFP_ETRUNC" "$codec" decode "$tmp/cut.sfp" "$tmp/x"
# every frame of a file has one dtype
cat "$tmp/r.sfp" "$tmp/b.sfp" >"$tmp/mixed.sfp"
expect_exit 1 "mixed.sfp: frame 2 at byte [0-9]+: dtype bf16 differs.*SFP_EHEADER" "$codec" decode "$tmp/mixed.sfp" "$tmp/x"
expect_exit 2 "chunk" "$codec" encode --chunk 3 "$tmp/any.f32" "$tmp/x"
expect_exit 2 "chunk" "$codec" encode --chunk 12Q "$tmp/any.f32" "$tmp/x"
expect_exit 1 "odd.f32.*not a multiple of 4" "$codec" encode --chunk 1K "$tmp/odd.f32" "$tmp/x"
[[ ! -e $tmp/x ]] && ok || bad "failed chunked encode left an output file"

# info never vouches for a payload it could not check: a valid frame of 16M
# zeros (64 MiB decoded) under a 48 MiB address-space limit (not under ASan,
# whose shadow memory needs far more address space than that)
head -c 64M /dev/zero | "$codec" encode -k 0 -e 1 --chunk 0 - "$tmp/z.sfp"
# (ldd's output into a string first: with pipefail, `ldd | grep -q` fails
# when grep exits before ldd has written everything, SIGPIPE)
if [[ $(ldd "$codec" 2>/dev/null) == *libasan* ]]; then
    echo "memory-limit checks skipped: sfp-codec is built with AddressSanitizer"
else
    ( ulimit -v 49152; exec "$codec" info "$tmp/z.sfp" ) >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [[ $rc -eq 1 ]] && grep -q "SFP_ENOMEM" "$tmp/err" && grep -Eq "^payload: +not checked \(SFP_ENOMEM\)" "$tmp/out" &&
        ok || bad "info under a memory limit: exit $rc, $(cat "$tmp/err") $(grep payload "$tmp/out")"
    ( ulimit -v 49152; exec "$codec" decode "$tmp/z.sfp" "$tmp/x" ) 2>"$tmp/err"
    rc=$?
    [[ $rc -eq 1 ]] && grep -q "z.sfp: decode: SFP_ENOMEM" "$tmp/err" && ok || bad "decode under a memory limit: exit $rc, $(cat "$tmp/err")"
fi
expect_exit 0 "" "$codec" info "$tmp/z.sfp"

echo "test_cli: $checks checks, $fails failed"
[[ $fails -eq 0 ]]
