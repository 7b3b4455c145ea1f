#!/usr/bin/env python3
"""Whole-process codec benchmark: sfp-codec against zstd on a file in tmpfs.

    bench/codec_process.py BUILD_DIR [--size 64M] [--runs 7] [--rss-sizes 64M,512M]

Writes the post-ReLU tensor of `sfp-bench tensor relu50 SIZE` to a fresh
directory in /dev/shm, then runs, in turn and repeated (A B C ... A B C ...,
one warm-up round first): `sfp-codec encode -k 2 -e 4 --gecko`,
`zstd -1 -T1`, `sfp-codec decode`, `zstd -d`, and `cp`. Each command is
timed as a whole process (wall clock and user + system CPU from wait4; peak
RSS and minor page faults of the command from GNU time). Prints the medians, and the ratios sfp/zstd taken
round by round (so a change in machine speed during the run cancels), then
the peak RSS of sfp-codec encode and decode at each --rss-sizes input size
(bounded by the chunk, not the input). docs/BENCHMARKS.md quotes it.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


TIME = "/usr/bin/time"  # GNU time: the command's own peak RSS and faults


def run(argv, tmp):
    """Runs argv with stdout/stderr to /dev/null; returns the figures (CPU
    time of the command and GNU time, which is a few ms; RSS and faults of
    the command alone)."""
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        p = subprocess.Popen([TIME, "-f", "%M %R", "-o", tmp] + argv, stdout=null, stderr=null)
        _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        sys.exit("failed (status %d): %s" % (status, " ".join(argv)))
    with open(tmp) as t:
        rss_kb, minflt = t.read().split()[-2:]
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime,
            "rss": int(rss_kb) / 1024.0, "minflt": int(minflt)}


def parse_size(s):
    mul = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:].upper(), 1)
    return int(s[:-1] if mul > 1 else s) * mul


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--size", default="64M")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--rss-sizes", default="64M,512M")
    a = ap.parse_args()
    codec = os.path.join(a.build, "lib", "sfp-codec")
    bench = os.path.join(a.build, "bench", "sfp-bench")
    zstd = shutil.which("zstd")
    if not zstd:
        sys.exit("zstd not found")
    d = tempfile.mkdtemp(prefix="sfp-codec-bench.", dir="/dev/shm")
    try:
        f = lambda n: os.path.join(d, n)
        subprocess.run([bench, "tensor", "relu50", a.size, f("in.f32")], check=True)
        subprocess.run([codec, "encode", "-k", "2", "-e", "4", "--gecko", f("in.f32"),
                        f("in.sfp")], check=True)
        subprocess.run([zstd, "-1", "-T1", "-q", "-f", f("in.f32"), "-o", f("in.zst")],
                       check=True)
        cmds = [
            ("sfp-codec encode -k 2 -e 4 --gecko",
             [codec, "encode", "-k", "2", "-e", "4", "--gecko", f("in.f32"), f("o.sfp")]),
            ("zstd -1 -T1", [zstd, "-1", "-T1", "-q", "-f", f("in.f32"), "-o", f("o.zst")]),
            ("sfp-codec decode", [codec, "decode", f("in.sfp"), f("o1.f32")]),
            ("zstd -d", [zstd, "-d", "-q", "-f", f("in.zst"), "-o", f("o2.f32")]),
            ("cp", ["cp", f("in.f32"), f("o3.f32")]),
        ]
        res = {name: [] for name, _ in cmds}
        for r in range(a.runs + 1):
            for name, argv in cmds:
                x = run(argv, f("time.txt"))
                if r > 0:
                    res[name].append(x)
        sizes = {"in.f32": os.path.getsize(f("in.f32")), "in.sfp": os.path.getsize(f("in.sfp")),
                 "in.zst": os.path.getsize(f("in.zst"))}
        with open("/proc/loadavg") as la:
            load = la.read().split()[:3]
        print("whole process, %s post-ReLU 50%% zeros (sfp-bench tensor relu50) in tmpfs; "
              "%d rounds after 1 warm-up, commands in turn; load average %s"
              % (a.size, a.runs, " ".join(load)))
        print("sizes: input %d B, sfp k2e4 gecko %d B (ratio %.2f), zstd -1 %d B (ratio %.2f)"
              % (sizes["in.f32"], sizes["in.sfp"], sizes["in.f32"] / sizes["in.sfp"],
                 sizes["in.zst"], sizes["in.f32"] / sizes["in.zst"]))
        print()
        print("| command | wall s | cpu s | peak RSS MiB | minor faults |")
        print("|---|---:|---:|---:|---:|")
        for name, _ in cmds:
            v = res[name]
            med = lambda k: statistics.median(x[k] for x in v)
            print("| `%s` | %.3f | %.3f | %.1f | %d |"
                  % (name, med("wall"), med("cpu"), med("rss"), med("minflt")))
        print()
        print("| ratio (median of per-round ratios) | wall | cpu |")
        print("|---|---:|---:|")
        for a_, b_ in (("zstd -1 -T1", "sfp-codec encode -k 2 -e 4 --gecko"),
                       ("zstd -d", "sfp-codec decode")):
            rw = statistics.median(x["wall"] / y["wall"] for x, y in zip(res[a_], res[b_]))
            rc = statistics.median(x["cpu"] / y["cpu"] for x, y in zip(res[a_], res[b_])
                                   if y["cpu"] > 0)
            print("| `%s` time / `%s` time | %.2fx | %.2fx |" % (a_, b_, rw, rc))
        print()
        print("| input | encode peak RSS MiB | encode minor faults | decode peak RSS MiB | decode minor faults |")
        print("|---:|---:|---:|---:|---:|")
        for s in a.rss_sizes.split(","):
            subprocess.run([bench, "tensor", "relu50", s, f("big.f32")], check=True)
            e = run([codec, "encode", "-k", "2", "-e", "4", "--gecko", f("big.f32"), f("big.sfp")],
                    f("time.txt"))
            dd = run([codec, "decode", f("big.sfp"), f("big.out")], f("time.txt"))
            print("| %s | %.1f | %d | %.1f | %d |" % (s, e["rss"], e["minflt"], dd["rss"],
                                                    dd["minflt"]))
            for n in ("big.f32", "big.sfp", "big.out"):
                os.unlink(f(n))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
