#!/usr/bin/python3
"""FP32 training speed of sfp-train next to its PyTorch twin (docs/BENCHMARKS.md
"Training speed"): the same model file, batch, optimizer and one core each,
interleaved (sfp-train, PyTorch, sfp-train, ...) so that both see the same
outside load. Images/s of the second epoch (the first warms up), median of
--repeats; the ratio is the median of the per-repeat ratios. Also per CPU
second (the process's CPU time over the epoch's steps, all threads), which
outside load distorts less than the wall clock.

    /usr/bin/python3 bench/train_speed.py build/worker/sfp-train --models cnn resnet vit

Prints a markdown table and the load (uptime) before and after.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def sfp(train, model, images, batch, tmp):
    rep = os.path.join(tmp, "r.json")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.pop("SFP_SOCKET", None)
    subprocess.run([train, "--model", model, "--policy", "fp32", f"--synthetic={images}",
                    "--epochs", "2", "--batch", str(batch), "--no-progress", "--quiet",
                    "--no-daemon", "--report", rep], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    e = json.load(open(rep))["epochs"][-1]
    return 1000.0 * batch / e["step_ms"], 1000.0 * batch / e["cpu_ms_per_step"]


def torch(model, images, batch):
    out = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "torch_reference.py"),
                          "--model", model, "--synthetic", str(images), "--epochs", "2",
                          "--batch", str(batch), "--threads", "1"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["train_images_per_s_last_epoch"], r["train_images_per_cpu_s_last_epoch"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sfp_train")
    ap.add_argument("--models", nargs="+", default=["cnn", "resnet", "vit"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=2560, help="synthetic training images")
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    load0 = open("/proc/loadavg").read().split()[:3]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        res = {m: ([], [], [], []) for m in a.models}
        for r in range(a.repeats):
            for m in a.models:
                s, sc = sfp(a.sfp_train, m, a.images, a.batch, tmp)
                t, tc = torch(m, a.images, a.batch)
                for k, v in enumerate((s, t, sc, tc)):
                    res[m][k].append(v)
                print(f"  repeat {r + 1} {m}: sfp-train {s:.0f} ({sc:.0f} per CPU s), "
                      f"PyTorch {t:.0f} ({tc:.0f}) images/s", file=sys.stderr, flush=True)
        med = statistics.median
        for m in a.models:
            s, t, sc, tc = res[m]
            q = [x / y for x, y in zip(s, t)]
            qc = [x / y for x, y in zip(sc, tc)]
            rows.append((m, med(s), med(t), med(q), min(q), max(q), med(sc), med(tc), med(qc),
                         min(qc), max(qc)))
    load1 = open("/proc/loadavg").read().split()[:3]
    print(f"load average before {' '.join(load0)}, after {' '.join(load1)} "
          f"({os.cpu_count()} CPUs); batch {a.batch}, {a.images} synthetic images, "
          f"{a.repeats} interleaved repeats, one core each")
    print()
    print("| model | sfp-train images/s | PyTorch 1.13 images/s | ratio | range | "
          "sfp-train images/CPU s | PyTorch images/CPU s | ratio | range |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m, s, t, r, lo, hi, sc, tc, rc, lc, hc in rows:
        print(f"| {m} | {s:.0f} | {t:.0f} | **{r:.2f}x** | {lo:.2f}-{hi:.2f} | {sc:.0f} | "
              f"{tc:.0f} | **{rc:.2f}x** | {lc:.2f}-{hc:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
