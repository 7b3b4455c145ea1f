"""Shared by the tests of the Python package (suite 'python').

A real sfpd on temp paths, started by the test and killed by pid; sfpctl
over its gRPC Unix socket; /metrics over loopback on a port sfpd picked.
Paths come from meson (SFPD_BIN, SFPCTL_BIN, SFP_CODEC_BIN, SFP_SOURCE_ROOT)
and PYTHONPATH points at <build>/python. Exit status 77 means skipped.
"""
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

SKIP = 77
_fails = 0


def skip(why):
    print("SKIP: " + why)
    sys.exit(SKIP)


def need_numpy():
    """Imports numpy or skips the test visibly."""
    try:
        import numpy
    except ImportError as e:
        skip("these tests need python3-numpy (%s)" % e)
    return numpy


def need_torch():
    """Imports torch and torchvision or skips the test visibly."""
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as e:
        skip("PyTorch tests need python3-torch and python3-torchvision (%s)" % e)
    import torch
    torch.set_num_threads(1)
    return torch


def check(cond, what):
    """Records a failed check (the test goes on and fails at the end)."""
    global _fails
    if cond:
        print("ok   " + what)
    else:
        _fails += 1
        print("FAIL " + what)
    sys.stdout.flush()
    return cond


def done():
    if _fails:
        print("%d check(s) failed" % _fails)
        sys.exit(1)
    print("all checks passed")
    sys.exit(0)


def tmpdir():
    d = tempfile.mkdtemp(prefix="sfp-py-")
    atexit.register(shutil.rmtree, d, True)
    return d


class Daemon:
    """sfpd with its worker socket, gRPC (unix:) and /metrics on a temp dir."""

    def __init__(self, *extra, metrics=False):
        self.bin = os.environ.get("SFPD_BIN")
        if not self.bin or not os.path.exists(self.bin):
            skip("SFPD_BIN not set (sfpd not built)")
        self.dir = tmpdir()
        self.socket = os.path.join(self.dir, "sfpd.sock")
        self.grpc = os.path.join(self.dir, "grpc.sock")
        self.log = os.path.join(self.dir, "sfpd.log")
        self.metrics_port = None
        args = [self.bin, "--socket", self.socket, "--spill-dir", os.path.join(self.dir, "spill"),
                "--grpc-listen", "unix:" + self.grpc,
                "--metrics-listen", "127.0.0.1:0" if metrics else "",
                "--grace-period", "2"] + list(extra)
        self.proc = subprocess.Popen(args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        atexit.register(self.kill)
        deadline = time.time() + 10
        while not (os.path.exists(self.socket) and os.path.exists(self.grpc)):
            if self.proc.poll() is not None or time.time() > deadline:
                print(open(self.log).read())
                raise RuntimeError("sfpd did not start")
            time.sleep(0.05)
        if metrics:
            while self.metrics_port is None:
                m = re.search(r"metrics: listening on .*\(port (\d+)\)", open(self.log).read())
                if m:
                    self.metrics_port = int(m.group(1))
                elif time.time() > deadline:
                    raise RuntimeError("sfpd did not report its metrics port")
                else:
                    time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid

    def kill(self, sig=signal.SIGKILL):
        """Kills sfpd by pid and reaps it (bounded)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def sfpctl(self, *args):
        """sfpctl --json ARGS against this daemon; the parsed reply."""
        ctl = os.environ.get("SFPCTL_BIN")
        if not ctl:
            skip("SFPCTL_BIN not set")
        out = subprocess.run([ctl, "--addr", "unix:" + self.grpc, "--json", "--timeout", "5"]
                             + list(args), capture_output=True, text=True, timeout=20)
        if out.returncode != 0:
            raise RuntimeError("sfpctl %s: %s" % (" ".join(args), out.stderr))
        return json.loads(out.stdout)

    def metrics(self):
        url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()


def rss_bytes(pid="self", field="VmRSS"):
    """Resident bytes of a process: VmRSS, or RssAnon (without the shared
    memory the process maps, e.g. the ring shared with sfpd), RssShmem."""
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0
