#!/usr/bin/python3
"""PyTorch training steps with and without sfp.torch.offload (docs/BENCHMARKS.md).

    PYTHONPATH=build/python /usr/bin/python3 bench/torch_offload.py step \\
        --sfpd build/daemon/sfpd [--batch 64] [--size 128] [--rounds 3]
    PYTHONPATH=build/python /usr/bin/python3 bench/torch_offload.py track \\
        --sfpd build/daemon/sfpd [--seeds 1,2,3]

step: torchvision resnet18 (random init, SGD momentum 0.9) on a random
batch, one configuration per child process so that each peak RSS is its
own: "none" (no offload), "lossless" (offload(), Gecko) and "k2e4"
(offload(mantissa=2, exponent=4), Gecko). Rounds interleave the
configurations (the order rotates every round); each child runs --warmup
steps, resets the peak RSS of itself and of sfpd (/proc/PID/clear_refs),
then times --steps steps. Printed: the median step time and its ratio to
"none", the CPU time per step of the training process and of sfpd (less
distorted by a loaded machine than wall time), the median peak RSS of the training process (VmHWM, which counts the
shared memory it touched) and of sfpd, the bytes stashed per step, the frame
bytes sfpd stored and their ratio, and the load (uptime) before and after.

track: the loss of 20 SGD steps on a fixed batch (resnet18, 8 random
3x64x64 images, lr 0.01 momentum 0.9) in FP32 and through offload with
mantissa 2 / exponent 4, for each seed; prints the largest per-step gap.
"""
import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def uptime():
    return open("/proc/loadavg").read().split()[:3]


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads)."""
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def status(pid, field):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Daemon:
    def __init__(self, path):
        self.dir = tempfile.mkdtemp(prefix="sfp-bench-torch-")
        self.socket = os.path.join(self.dir, "sfpd.sock")
        self.proc = subprocess.Popen(
            [path, "--socket", self.socket, "--spill-dir", os.path.join(self.dir, "spill"),
             "--grpc-listen", "", "--metrics-listen", "", "--dram-budget", "16G",
             "--grace-period", "1"],
            stdout=open(os.path.join(self.dir, "sfpd.log"), "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("sfpd did not start")
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        subprocess.run(["rm", "-rf", self.dir])


def child(a):
    """One configuration in this process; prints one JSON line."""
    import torch
    import torchvision
    import sfp.torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=100)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = torch.randint(0, 100, (a.batch,))
    off = None
    if a.child == "lossless":
        off = sfp.torch.offload(socket=a.socket, job="bench-lossless")
    elif a.child == "k2e4":
        off = sfp.torch.offload(socket=a.socket, job="bench-k2e4", mantissa=2, exponent=4)
    times, stats = [], []

    def step():
        opt.zero_grad(set_to_none=True)
        if off is None:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        else:
            with off:
                loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    for pid in ("self", str(a.sfpd_pid)):
        with open("/proc/%s/clear_refs" % pid, "w") as f:
            f.write("5")     # resets VmHWM
    s0 = off.stats() if off else None
    c0, d0 = cpu_seconds("self"), cpu_seconds(a.sfpd_pid)
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    if off:
        off._sync()     # sfpd's work for these steps is done
    cpu = (cpu_seconds("self") - c0) / a.steps
    dcpu = (cpu_seconds(a.sfpd_pid) - d0) / a.steps
    out = dict(config=a.child, times=times, cpu=cpu, sfpd_cpu=dcpu,
               rss_peak=status("self", "VmHWM"),
               shm=status("self", "RssShmem"), sfpd_peak=status(a.sfpd_pid, "VmHWM"))
    if off:
        s1 = off.stats()
        for k in ("bytes_in", "bytes_stored", "tensors", "in_process", "passed"):
            out[k] = (s1[k] - s0[k]) / a.steps
        out["put_seconds"] = (s1["put_seconds"] - s0["put_seconds"]) / a.steps
        out["get_seconds"] = (s1["get_seconds"] - s0["get_seconds"]) / a.steps
        off.close()
    print(json.dumps(out))


def bench_step(a):
    d = Daemon(a.sfpd)
    configs = a.configs.split(",")
    load0 = uptime()
    rows = {c: [] for c in configs}
    try:
        for r in range(a.rounds):
            order = configs[r % len(configs):] + configs[:r % len(configs)]
            for c in order:
                cmd = [sys.executable, os.path.abspath(__file__), "child", "--child", c,
                       "--socket", d.socket, "--sfpd-pid", str(d.proc.pid),
                       "--batch", str(a.batch), "--size", str(a.size), "--steps", str(a.steps),
                       "--warmup", str(a.warmup), "--threads", str(a.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
                if out.returncode:
                    sys.stderr.write(out.stderr)
                    raise RuntimeError("child %s failed" % c)
                res = json.loads(out.stdout.strip().splitlines()[-1])
                rows[c].append(res)
                print("round %d %-8s step %.2f s  peak RSS %.0f MiB  sfpd %.0f MiB" % (
                    r, c, statistics.median(res["times"]), res["rss_peak"] / 2**20,
                    res["sfpd_peak"] / 2**20), flush=True)
    finally:
        d.stop()
    load1 = uptime()
    import torch
    print()
    print("resnet18, batch %d x 3x%dx%d, SGD; %d torch threads; %d rounds x %d steps after %d "
          "warm-up; torch %s; MALLOC_MMAP_THRESHOLD_=%s; load %s before, %s after" % (
              a.batch, a.size, a.size, a.threads, a.rounds, a.steps, a.warmup,
              torch.__version__, os.environ.get("MALLOC_MMAP_THRESHOLD_", "(glibc default)"),
              " ".join(load0), " ".join(load1)))
    print()
    print("| config | step time (median) | vs none | CPU / step trainer + sfpd | vs none "
          "| peak RSS trainer | vs none | peak RSS sfpd | stashed / step | stored / step | ratio "
          "| put+get in hooks |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base_t = base_m = base_c = None
    for c in configs:
        t = statistics.median(x for r in rows[c] for x in r["times"])
        cp = statistics.median(r["cpu"] for r in rows[c])
        dc = statistics.median(r["sfpd_cpu"] for r in rows[c])
        m = statistics.median(r["rss_peak"] for r in rows[c])
        s = statistics.median(r["sfpd_peak"] for r in rows[c])
        if c == configs[0]:
            base_t, base_m, base_c = t, m, cp + dc
        bi = rows[c][0].get("bytes_in")
        bs = rows[c][0].get("bytes_stored")
        hook = [r["put_seconds"] + r["get_seconds"] for r in rows[c] if "put_seconds" in r]
        print("| %s | %.2f s | %.2fx | %.2f + %.2f s | %.2fx | %.0f MiB | %.2fx | %.0f MiB "
              "| %s | %s | %s | %s |" % (
            c, t, t / base_t, cp, dc, (cp + dc) / base_c, m / 2**20, m / base_m, s / 2**20,
            "%.0f MiB" % (bi / 2**20) if bi else "-", "%.0f MiB" % (bs / 2**20) if bs else "-",
            "%.2f" % (bi / bs) if bi and bs else "-",
            "%.2f s" % statistics.median(hook) if hook else "-"))
    print()
    print(json.dumps(rows))


def bench_track(a):
    import torch
    import torchvision
    import sfp.torch
    torch.set_num_threads(a.threads)
    d = Daemon(a.sfpd)
    load0 = uptime()
    F = torch.nn.functional
    lines = []
    try:
        for seed in [int(s) for s in a.seeds.split(",")]:
            torch.manual_seed(seed)
            model = torchvision.models.resnet18(num_classes=10)
            x = torch.randn(8, 3, 64, 64)
            y = torch.randint(0, 10, (8,))
            runs = []
            for off in (None, sfp.torch.offload(socket=d.socket, job="track-%d" % seed,
                                                mantissa=2, exponent=4)):
                m = copy.deepcopy(model)
                opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
                losses = []
                for _ in range(20):
                    opt.zero_grad()
                    if off is None:
                        loss = F.cross_entropy(m(x), y)
                    else:
                        with off:
                            loss = F.cross_entropy(m(x), y)
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                runs.append(losses)
            gap = max(abs(p - q) for p, q in zip(*runs))
            at = max(range(20), key=lambda i: abs(runs[0][i] - runs[1][i]))
            lines.append("| %d | %.4f -> %.4f | %.4f -> %.4f | %.4f (step %d) |" % (
                seed, runs[0][0], runs[0][-1], runs[1][0], runs[1][-1], gap, at))
    finally:
        d.stop()
    print("resnet18, 8 x 3x64x64, SGD lr 0.01 momentum 0.9, 20 steps; load %s before, %s after"
          % (" ".join(load0), " ".join(uptime())))
    print()
    print("| seed | FP32 loss first -> last | k2e4 loss first -> last | max gap |")
    print("|---:|---:|---:|---:|")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["step", "track", "child"])
    ap.add_argument("--sfpd", default="build/daemon/sfpd")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--configs", default="none,lossless,k2e4")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--child")
    ap.add_argument("--socket")
    ap.add_argument("--sfpd-pid", type=int)
    a = ap.parse_args()
    if a.mode == "child":
        child(a)
    elif a.mode == "step":
        bench_step(a)
    else:
        bench_track(a)


if __name__ == "__main__":
    main()
