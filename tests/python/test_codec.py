"""sfp.encode / decode / info against sfp-codec and the golden frames.

- frames from sfp.encode equal sfp-codec's byte for byte (f32 and bf16,
  every coder, several widths, rounding modes, group sizes, a fixed anchor),
  and sfp.decode gives the bytes sfp-codec decode writes;
- the golden valid frames decode to their .raw files, the golden invalid
  frames raise sfp.Error with the code tests/golden/invalid/EXPECTED names;
- bad arguments raise sfp.Error (a ValueError) with libsfp's message;
- any object with the buffer protocol is accepted (non-contiguous copied);
- the GIL is released while libsfp runs.
"""
import array
import os
import subprocess
import sys
import threading
import time

import sfptest
from sfptest import check

np = sfptest.need_numpy()

import sfp  # noqa: E402

codec = os.environ.get("SFP_CODEC_BIN")
golden = os.path.join(os.environ.get("SFP_SOURCE_ROOT", "."), "tests", "golden")
if not codec:
    sfptest.skip("SFP_CODEC_BIN not set")
tmp = sfptest.tmpdir()
rng = np.random.default_rng(7)


def run_codec(*args):
    r = subprocess.run([codec] + list(args), capture_output=True, timeout=60)
    if r.returncode:
        raise RuntimeError("sfp-codec %s: %s" % (" ".join(args), r.stderr.decode()))


def codec_frame(raw, dtype, k, e, coder, rounding="rne", seed=0, group=0, anchor=-1):
    src, dst = os.path.join(tmp, "in.raw"), os.path.join(tmp, "out.sfp")
    open(src, "wb").write(raw)
    args = ["encode", "--dtype", "bf16" if dtype == "bfloat16" else "f32", "--mantissa", str(k),
            "--exponent", str(e), "--coder", coder, "--rounding", rounding, "--seed", str(seed)]
    if group:
        args += ["--group", str(group), "--coder", coder]
    if anchor >= 0:
        args += ["--anchor", str(anchor)]
    run_codec(*(args + [src, dst]))
    return open(dst, "rb").read()


def codec_decode(frame):
    src, dst = os.path.join(tmp, "f.sfp"), os.path.join(tmp, "f.raw")
    open(src, "wb").write(frame)
    run_codec("decode", src, dst)
    return open(dst, "rb").read()


# ------------------------------------------------ the Huffman-coded zero map
runs = np.where((np.arange(30000) // 50) % 3 > 0,
                np.abs(rng.standard_normal(30000)) + 1e-3, 0).astype(np.float32)
fb = sfp.encode(runs, 2, 4, "gecko")
fh = sfp.encode(runs, 2, 4, "gecko", zmap="huffman")
check(len(fh) < len(fb), "Huffman zero map smaller (%d < %d bytes)" % (len(fh), len(fb)))
check(sfp.decode(fh).tobytes() == sfp.decode(fb).tobytes(), "Huffman zero map: same values")
zsrc, zdst = os.path.join(tmp, "runs.f32"), os.path.join(tmp, "runs.sfp")
open(zsrc, "wb").write(runs.tobytes())
run_codec("encode", "-k", "2", "-e", "4", "--gecko", "--zmap", "huffman", zsrc, zdst)
check(open(zdst, "rb").read() == fh, "Huffman zero map: the same frame as sfp-codec --zmap huffman")
try:
    sfp.encode(runs, 2, 4, "gecko", zmap="rle")
    check(False, "zmap='rle' refused")
except sfp.Error:
    check(True, "zmap='rle' refused")

# ------------------------------------------------ byte for byte vs sfp-codec
gauss = (rng.standard_normal(5000) * 0.05).astype(np.float32)
relu = np.maximum(rng.standard_normal(4096), 0).astype(np.float32)
edge = np.array([0.0, -0.0, 1e-45, -1e-40, 1.17549435e-38, 3.4028235e38, -3.4028235e38, 1.0,
                 2.5, -7.75e-3], dtype=np.float32)
tensors = {"gauss": gauss, "relu": relu, "edge": edge}
cases = [(23, 8, "plain"), (23, 8, "gecko"), (23, 8, "rans"), (7, 8, "gecko"), (2, 4, "gecko"),
         (2, 4, "rans"), (0, 1, "plain"), (10, 7, "plain"), (2, 4, "auto"), (23, 8, "auto")]
# "auto": the smaller of the Gecko and the rANS frame (Gecko on a tie)
for tname, x in tensors.items():
    g, r, a = (sfp.encode(x, 2, 4, c) for c in ("gecko", "rans", "auto"))
    check(a == (g if len(g) <= len(r) else r), "auto on %s: the smaller frame" % tname)
check(sfp.info(sfp.encode(gauss, 2, 4, "auto"))["coder"] == "rans", "auto picks rANS on weights")
n_same = n_cases = 0
for tname, x in tensors.items():
    for k, e, coder in cases:
        mine = sfp.encode(x, k, e, coder)
        ref = codec_frame(x.tobytes(), "float32", k, e, coder)
        n_cases += 1
        n_same += mine == ref
        if mine != ref:
            print("differs: %s k=%d e=%d %s" % (tname, k, e, coder))
        dec = sfp.decode(mine)
        if dec.tobytes() != codec_decode(ref):
            n_same -= 1
            print("decode differs: %s k=%d e=%d %s" % (tname, k, e, coder))
        if (k, e) == (23, 8) and dec.tobytes() != x.tobytes():
            n_same -= 1
            print("lossless round trip differs: %s %s" % (tname, coder))
for rounding, seed in (("trunc", 0), ("stochastic", 42)):
    for group in (8, 32, 64):
        mine = sfp.encode(gauss, 3, 6, "gecko", rounding, group=group, seed=seed)
        ref = codec_frame(gauss.tobytes(), "float32", 3, 6, "gecko", rounding, seed, group)
        n_cases += 1
        n_same += mine == ref and sfp.decode(mine).tobytes() == codec_decode(ref)
mine = sfp.encode(gauss, 4, 5, "plain", anchor=120)
n_cases += 1
n_same += mine == codec_frame(gauss.tobytes(), "float32", 4, 5, "plain", anchor=120)
check(n_same == n_cases, "float32: %d/%d frames and decodes equal sfp-codec's byte for byte"
      % (n_same, n_cases))

# bfloat16: uint16 bit patterns with dtype=, and torch-free widening
bf = (gauss.view(np.uint32) >> 16).astype(np.uint16)
ok = True
for k, e, coder in ((7, 8, "gecko"), (3, 5, "rans"), (0, 2, "plain")):
    mine = sfp.encode(bf, k, e, coder, dtype="bfloat16")
    ok &= mine == codec_frame(bf.tobytes(), "bfloat16", k, e, coder)
    ok &= sfp.decode(mine, raw=True).tobytes() == codec_decode(mine)
    wide = sfp.decode(mine)
    ok &= wide.dtype == np.float32 and np.array_equal(
        wide.view(np.uint32), sfp.decode(mine, raw=True).astype(np.uint32) << 16)
check(ok, "bfloat16 frames equal sfp-codec's; decode widens exactly, raw=True keeps the bits")
check(np.array_equal(sfp.decode(sfp.encode(bf, dtype="bf16"), raw=True), bf),
      "bfloat16 lossless round trip (mantissa None = 7)")

# ------------------------------------------------------------ golden frames
vdir = os.path.join(golden, "valid")
names = sorted(f[:-4] for f in os.listdir(vdir) if f.endswith(".sfp"))
bad = [n for n in names
       if sfp.decode(open(os.path.join(vdir, n + ".sfp"), "rb").read(), raw=True).tobytes()
       != open(os.path.join(vdir, n + ".raw"), "rb").read()]
check(names and not bad, "%d golden valid frames decode to their .raw (%s)" % (len(names), bad))
inf = sfp.info(open(os.path.join(vdir, "f32_k2e4_gecko_relu.sfp"), "rb").read())
check(inf["count"] == 333 and inf["nonzero"] == 162 and inf["mantissa"] == 2 and
      inf["exponent"] == 4 and inf["coder"] == "gecko" and inf["frame_bytes"] == 236 and
      inf["sizes"]["exponent"] == 74 and inf["sizes"]["zero_map"] == 49 and
      inf["dtype"] == "float32" and abs(inf["ratio"] - 1332 / 236) < 1e-9,
      "info of a golden frame matches sfp-codec info: %s" % inf)

idir = os.path.join(golden, "invalid")
wrong = []
n_inv = 0
for line in open(os.path.join(idir, "EXPECTED")):
    if not line.strip() or line.startswith("#"):
        continue
    fname, code = line.split()[:2]
    frame = open(os.path.join(idir, fname), "rb").read()
    n_inv += 1
    for fn in (sfp.decode, sfp.info):
        try:
            fn(frame)
            if not (fn is sfp.info and code == "SFP_ECORRUPT"):  # info reads no plane
                wrong.append((fname, fn.__name__, "accepted"))
        except sfp.Error as e:
            if e.name != code or not isinstance(e, ValueError) or not str(e):
                wrong.append((fname, fn.__name__, e.name))
check(n_inv > 20 and not wrong, "%d golden invalid frames raise sfp.Error with their code %s"
      % (n_inv, wrong))
frame = bytearray(sfp.encode(gauss))
frame[200] ^= 4
try:
    sfp.decode(bytes(frame))
    check(False, "a flipped payload bit is rejected")
except sfp.Error as e:
    check(e.name == "SFP_ECHECKSUM" and "checksum" in str(e) and e.code < 0 and e.status is None,
          "a flipped payload bit: %r (code %d, %s)" % (e, e.code, e.name))


# ------------------------------------------------------------ bad arguments
def raises(what, fn, name="SFP_EINVAL", text=None):
    try:
        fn()
    except sfp.Error as e:
        ok = e.name == name and (text is None or text in str(e))
        check(ok, "%s: %r" % (what, e))
        return
    except Exception as e:  # noqa: BLE001
        check(False, "%s: %r is not sfp.Error" % (what, e))
        return
    check(False, "%s: no error" % what)


raises("mantissa 24", lambda: sfp.encode(gauss, 24), text="invalid argument: mantissa 24")
raises("mantissa -1", lambda: sfp.encode(gauss, -1))
raises("bfloat16 mantissa 8", lambda: sfp.encode(bf, 8, dtype="bfloat16"), text="0..7")
raises("exponent 0", lambda: sfp.encode(gauss, 3, 0))
raises("exponent 9", lambda: sfp.encode(gauss, 3, 9))
raises("coder zstd", lambda: sfp.encode(gauss, coder="zstd"), text="unknown coder")
raises("rounding up", lambda: sfp.encode(gauss, rounding="up"))
raises("group 12", lambda: sfp.encode(gauss, group=12))
raises("anchor 255", lambda: sfp.encode(gauss, anchor=255))
raises("dtype float16", lambda: sfp.encode(gauss, dtype="float16"), text="unknown dtype")
raises("int32 array", lambda: sfp.encode(np.arange(10, dtype=np.int32)), text="format 'i'")
raises("float64 array", lambda: sfp.encode(np.zeros(10)))
raises("bytes without dtype", lambda: sfp.encode(b"\0" * 16), text="dtype='float32'")
raises("float32 data as bfloat16", lambda: sfp.encode(gauss, dtype="bfloat16"))
raises("6 bytes of float32", lambda: sfp.encode(b"\0" * 6, dtype="float32"),
       text="whole number")
raises("NaN", lambda: sfp.encode(np.array([1, np.nan], np.float32)), "SFP_ENONFINITE",
       "NaN or Inf")
raises("Inf", lambda: sfp.encode(np.array([np.inf], np.float32), 2, 4), "SFP_ENONFINITE")
raises("out too small", lambda: sfp.decode(sfp.encode(gauss), out=bytearray(16)), "SFP_ENOSPC")
raises("empty frame", lambda: sfp.decode(b""), "SFP_ETRUNC")
raises("not a frame", lambda: sfp.decode(b"x" * 100), "SFP_EMAGIC")
try:
    sfp.encode(12345)
    check(False, "a non-buffer raises TypeError")
except TypeError:
    check(True, "a non-buffer raises TypeError")
check(issubclass(sfp.Error, ValueError), "sfp.Error is a ValueError")

# ----------------------------------------------------------- buffer protocol
x2 = gauss[:4096].reshape(64, 64)
f = sfp.encode(x2, 5, 6)
check(sfp.encode(memoryview(x2), 5, 6) == f and sfp.encode(x2.tobytes(), 5, 6, dtype="float32") == f
      and sfp.encode(array.array("f", x2.ravel().tolist()), 5, 6) == f
      and sfp.encode(bytearray(x2.tobytes()), 5, 6, dtype="f32") == f,
      "numpy, memoryview, bytes, bytearray and array.array give the same frame")
strided = x2[:, ::2]
check(sfp.encode(strided, 5, 6) == sfp.encode(np.ascontiguousarray(strided), 5, 6),
      "a non-contiguous array is encoded as its contiguous copy")
y = sfp.decode(f, shape=(64, 64))
check(y.shape == (64, 64) and y.dtype == np.float32 and y.flags.writeable, "decode shape=")
out = np.empty(4096, np.float32)
y2 = sfp.decode(f, out=out)
check(np.shares_memory(y2, out) and np.array_equal(y2, y.ravel()), "decode out=")
check(sfp.decode(sfp.encode(np.zeros(0, np.float32))).size == 0, "empty tensor round trip")
check(sfp.coders == ("plain", "gecko", "rans") and sfp.__version__, "coders, __version__")

# ------------------------------------------------------------- GIL released
# A worker thread encodes (decodes) a 64 MiB tensor several times while this
# thread stamps the clock. With the GIL released, stamps land in the middle
# half of each call; with it held, none can. The check is over several calls
# because a loaded 2-core machine may leave this thread off a core for a
# whole call. (meson's MALLOC_PERTURB_ is off for this suite: see
# tests/python/meson.build.)
big = rng.standard_normal(1 << 24).astype(np.float32)
big_frame = sfp.encode(big, 7, 8, "gecko")
big_out = np.empty_like(big)


def gil_released(what, fn):
    t0 = time.perf_counter()
    fn()
    alone = time.perf_counter() - t0
    spans = []
    stamps = []

    def work():
        for _ in range(6):
            s0 = time.perf_counter()
            fn()
            spans.append((s0, time.perf_counter()))

    th = threading.Thread(target=work)
    th.start()
    while th.is_alive():
        stamps.append(time.perf_counter())
    th.join()
    per = [sum(1 for s in stamps if a + 0.25 * (b - a) < s < b - 0.25 * (b - a))
           for a, b in spans]
    check(len(spans) == 6 and sum(per) > 0,
          "another thread ran %s times during the middle halves of %s ms %s calls "
          "(alone %.0f ms): the GIL is released"
          % (per, [round(1e3 * (b - a)) for a, b in spans], what, 1e3 * alone))


gil_released("encode", lambda: sfp.encode(big, 7, 8, "gecko"))
gil_released("decode", lambda: sfp.decode(big_frame, out=big_out))

sfptest.done()
