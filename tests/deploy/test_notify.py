#!/usr/bin/python3
"""sd_notify readiness: sfpd started with NOTIFY_SOCKET and WATCHDOG_USEC
pointing at a datagram socket this test listens on.

Checks that READY=1 arrives only once the IPC socket, the gRPC port and the
metrics port accept connections; that WATCHDOG=1 arrives at least twice per
watchdog interval; that SIGTERM brings STOPPING=1 and a clean exit 0.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

WATCHDOG_USEC = 500_000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connects(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(addr)
        return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    sfpd = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="sfp-notify-")
    notify_path = os.path.join(tmp, "notify")
    sock_path = os.path.join(tmp, "sfpd.sock")
    spill = os.path.join(tmp, "spill")
    os.mkdir(spill)
    grpc_port, metrics_port = free_port(), free_port()

    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(notify_path)
    ns.settimeout(0.2)

    env = dict(os.environ)
    env.update(NOTIFY_SOCKET=notify_path, WATCHDOG_USEC=str(WATCHDOG_USEC))
    env.pop("WATCHDOG_PID", None)
    env.pop("SFPD_CONFIG", None)
    args = [sfpd, "--socket", sock_path, "--spill-dir", spill,
            "--grpc-listen", f"127.0.0.1:{grpc_port}",
            "--metrics-listen", f"127.0.0.1:{metrics_port}",
            "--dram-budget", "64M", "--log-level", "warn"]
    proc = subprocess.Popen(args, env=env)
    failures = []
    ready_at = None
    watchdogs = []
    stopping = False
    try:
        deadline = time.monotonic() + 20
        while ready_at is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                failures.append(f"sfpd exited early with {proc.returncode}")
                break
            try:
                msg = ns.recv(4096).decode()
            except socket.timeout:
                continue
            lines = msg.split("\n")
            if "READY=1" in lines:
                ready_at = time.monotonic()
                # at the moment READY=1 is sent, everything must accept
                if not connects(socket.AF_UNIX, sock_path):
                    failures.append("IPC socket not accepting at READY=1")
                if not connects(socket.AF_INET, ("127.0.0.1", grpc_port)):
                    failures.append("gRPC port not accepting at READY=1")
                if not connects(socket.AF_INET, ("127.0.0.1", metrics_port)):
                    failures.append("metrics port not accepting at READY=1")
            if "WATCHDOG=1" in lines:
                watchdogs.append(time.monotonic())
        if ready_at is None and not failures:
            failures.append("no READY=1 within 20 s")

        # watchdog pings over 4 intervals
        if ready_at is not None:
            window = 4 * WATCHDOG_USEC / 1e6
            t_end = time.monotonic() + window
            watchdogs = []
            while time.monotonic() < t_end:
                try:
                    msg = ns.recv(4096).decode()
                except socket.timeout:
                    continue
                if "WATCHDOG=1" in msg.split("\n"):
                    watchdogs.append(time.monotonic())
            print(f"WATCHDOG=1 x{len(watchdogs)} in {window:.1f} s "
                  f"(interval {WATCHDOG_USEC / 1e6:.1f} s)")
            if len(watchdogs) < 2 * 4 - 1:
                failures.append(f"only {len(watchdogs)} WATCHDOG=1 in 4 intervals (want >= 2 per interval)")
            gaps = [b - a for a, b in zip(watchdogs, watchdogs[1:])]
            if gaps and max(gaps) > WATCHDOG_USEC / 1e6:
                failures.append(f"watchdog gap {max(gaps):.3f} s exceeds the interval")

        proc.send_signal(signal.SIGTERM)
        t_end = time.monotonic() + 15
        while time.monotonic() < t_end:
            try:
                msg = ns.recv(4096).decode()
            except socket.timeout:
                if proc.poll() is not None:
                    break
                continue
            if "STOPPING=1" in msg.split("\n"):
                stopping = True
        if not stopping:
            failures.append("no STOPPING=1 after SIGTERM")
        try:
            rc = proc.wait(timeout=15)
            if rc != 0:
                failures.append(f"exit status {rc} after SIGTERM")
        except subprocess.TimeoutExpired:
            failures.append("sfpd did not exit within 15 s of SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ns.close()
        for root, dirs, files in os.walk(tmp, topdown=False):
            for f in files:
                os.unlink(os.path.join(root, f))
            for d in dirs:
                os.rmdir(os.path.join(root, d))
        os.rmdir(tmp)

    for f in failures:
        print("FAIL:", f)
    if not failures:
        print("sd_notify: READY=1 after all listeners, WATCHDOG=1 on time, STOPPING=1 on SIGTERM")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
