#!/usr/bin/python3
"""Writes the fuzz_ckpt corpus next to this file: valid sfp-train checkpoints
of format versions 1, 2 and 3 (with and without gradient residuals; layout
of worker/checkpoint.c, FNV-1a hash over everything before it) and broken
variants (a flipped byte, truncated, a huge size field, a bad magic).

    /usr/bin/python3 tests/worker/corpus/fuzz_ckpt/gen.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def fnv(b):
    h = 0xcbf29ce484222325
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def ckpt(version, nparams=5, nbuf=4, policy=b"\x01\x02\x03", resid_ranks=0, model=b"mlp"):
    arr = lambda n, k: struct.pack("<%df" % n, *[(i + k) * 0.5 for i in range(n)])
    if version == 1:
        head = struct.pack("<8s16sII6Q", b"SFPCKPT1", model, 2, 1, nparams, 1, 10, 3, 64,
                           len(policy))
        body = arr(nparams, 0) + arr(nparams, 1) + arr(nparams, 2) + policy
    else:
        fields = [b"SFPCKPT%d" % version, model, 0x1234, 2, 1, nparams, 1, 10, 3, 64,
                  len(policy), nbuf] + ([resid_ranks] if version == 3 else [])
        head = struct.pack("<8s32sQII%dQ" % (7 + (version == 3)), *fields)
        body = arr(nparams, 0) + arr(nparams, 1) + arr(nparams, 2) + arr(nbuf, 3) + policy + \
            arr(resid_ranks * nparams, 4)
    raw = head + body
    return raw + struct.pack("<Q", fnv(raw))


def main():
    files = {
        "v1": ckpt(1),
        "v2": ckpt(2),
        "v3": ckpt(3),
        "v3-resid2": ckpt(3, resid_ranks=2),
        "v3-nobuf-nopolicy": ckpt(3, nbuf=0, policy=b""),
    }
    good = files["v3-resid2"]
    files["v3-flipped"] = good[:130] + bytes([good[130] ^ 0x40]) + good[131:]
    files["v3-truncated"] = good[:-9]
    files["v3-trailing"] = good + b"\0"
    files["v3-huge-resid"] = good[:112] + struct.pack("<Q", 1 << 40) + good[120:]
    files["v3-huge-nparams"] = good[:56] + struct.pack("<Q", 1 << 62) + good[64:]
    files["v2-huge-nbuf"] = files["v2"][:104] + struct.pack("<Q", 1 << 40) + files["v2"][112:]
    files["bad-magic"] = b"SFPCKPT9" + good[8:]
    files["short"] = good[:20]
    for name, raw in files.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(raw)


if __name__ == "__main__":
    main()
