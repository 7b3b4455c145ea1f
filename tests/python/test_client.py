"""sfp.Client against a real sfpd on a temp socket.

put/get/drop/prefetch/stats/policy, frames equal to libsfp's, errors carrying
the daemon's status name, job isolation, $SFP_SOCKET, threads sharing one
client, a stopped daemon (timeout) and a killed one (lost connection).
"""
import os
import signal
import threading
import time

import sfptest
from sfptest import check

np = sfptest.need_numpy()

import sfp  # noqa: E402

d = sfptest.Daemon()
rng = np.random.default_rng(3)
x = (rng.standard_normal(10000) * 0.1).astype(np.float32)


def error_of(fn):
    try:
        fn()
    except sfp.Error as e:
        return e
    except Exception as e:  # noqa: BLE001
        return e
    return None


with sfp.Client(d.socket, job="pyclient", timeout=5.0) as c:
    check(repr(c).startswith("<sfp.Client job='pyclient'") and c.rank == 0
          and c.socket == d.socket and c.shm_size == 64 << 20 and not c.closed, repr(c))
    r = c.put("x", x, 1)
    check(r["tier"] == 0 and r["stored_bytes"] == len(sfp.encode(x)),
          "lossless put: frame size %d equals sfp.encode's" % r["stored_bytes"])
    y = c.get("x", 1, shape=(100, 100))
    check(y.shape == (100, 100) and np.array_equal(y.ravel(), x), "get returns the values")
    r = c.put("q", x, 1, mantissa=2, exponent=4, coder="rans")
    frame = sfp.encode(x, 2, 4, "rans")
    check(r["stored_bytes"] == len(frame) and
          np.array_equal(c.get("q", 1, drop=True), sfp.decode(frame)),
          "k2e4 rans put: sfpd's frame and values equal libsfp's")
    e = error_of(lambda: c.get("q", 1))
    check(isinstance(e, sfp.Error) and isinstance(e, ValueError) and e.status == "E_NOT_FOUND"
          and e.name == "SFPC_ENOTFOUND" and "E_NOT_FOUND" in str(e),
          "get after drop=True: %r (status %s)" % (e, getattr(e, "status", None)))
    bf = (x.view(np.uint32) >> 16).astype(np.uint16)
    c.put("bf", bf, 2, dtype="bfloat16")
    check(np.array_equal(c.get("bf", 2, raw=True), bf) and
          np.array_equal(c.get("bf", 2).view(np.uint32), bf.astype(np.uint32) << 16),
          "bfloat16 put/get (raw bits and widened)")
    out = np.empty(10000, np.float32)
    got = c.get("x", 1, out=out)
    check(np.shares_memory(got, out) and np.array_equal(out, x), "get out=")
    e = error_of(lambda: c.get("x", 1, out=np.empty(10, np.float32)))
    check(isinstance(e, sfp.Error) and e.name == "SFP_ENOSPC", "get into a small out: %r" % e)
    c.drop("x", 1)
    e = error_of(lambda: c.drop("x", 1))
    check(isinstance(e, sfp.Error) and e.status == "E_NOT_FOUND", "drop twice: %r" % e)
    e = error_of(lambda: c.put("nan", np.array([1.0, np.nan], np.float32)))
    check(isinstance(e, sfp.Error) and e.status == "E_CODEC", "NaN refused by sfpd: %r" % e)
    e = error_of(lambda: c.put("big", np.zeros(17 << 20, np.float32)))
    check(isinstance(e, sfp.Error) and e.name == "SFPC_ESHMSIZE",
          "a tensor larger than the shm: %r" % e)
    for bad in ("", "n" * 256, "a\0b"):
        e = error_of(lambda: c.put(bad, x))
        check(isinstance(e, sfp.Error) and e.name == "SFP_EINVAL",
              "tensor name of %d bytes: %r" % (len(bad), e))
    e = error_of(lambda: c.put("x", x, mantissa=30))
    check(isinstance(e, sfp.Error) and "mantissa 30" in str(e), "bad widths: %r" % e)
    c.prefetch()
    c.prefetch(8)
    c.flush()
    s = c.stats()
    check(s["job_frames"] == 1 and s["job_bytes_in"] == bf.nbytes and s["puts"] == 3 and
          "job{job=\"pyclient\"}" in s["text"], "stats: this job holds one frame: %s"
          % {k: v for k, v in s.items() if k != "text"})
    p = c.policy()
    check(p["generation"] == 0 and p["max_mantissa"] == 23 and p["coder"] == -1, "policy: none")
    tensors = d.sfpctl("tensors", "--job", "pyclient")
    names = [t.get("tensor") for t in tensors.get("tensors", [])]
    check(names == ["bf"], "sfpctl tensors lists the client's stash: %s" % names)
    with sfp.Client(d.socket, job="other") as o:
        e = error_of(lambda: o.get("bf", 2))
        check(isinstance(e, sfp.Error) and e.status == "E_NOT_FOUND",
              "another job cannot read the stash: %r" % e)

    # one client, four threads (calls are serialised)
    errs = []

    def worker(i):
        try:
            v = (x + i).astype(np.float32)
            for j in range(20):
                c.put("t%d.%d" % (i, j), v, 7, mantissa=10)
                if not np.array_equal(c.get("t%d.%d" % (i, j), 7, drop=True),
                                      sfp.decode(sfp.encode(v, 10))):
                    errs.append((i, j))
        except Exception as e:  # noqa: BLE001
            errs.append(e)

    ths = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    check(not errs, "4 threads x 20 put/get on one client: %s" % errs[:3])
    c.end_job()
    check(c.stats()["job_frames"] == 0, "end_job frees the job's stashes")
check(c.closed and isinstance(error_of(lambda: c.get("x")), ValueError), "closed by the with block")

os.environ["SFP_SOCKET"] = d.socket
with sfp.Client(job="env") as c:
    check(c.socket == d.socket and c.job == "env", "socket None means $SFP_SOCKET")
with sfp.Client() as c:
    check(c.job.startswith("py-") and c.job.endswith("-%d" % os.getpid()), "default job %s" % c.job)
e = error_of(lambda: sfp.Client(os.path.join(d.dir, "nope.sock")))
check(isinstance(e, sfp.Error) and e.name == "SFPC_ECONNECT" and e.status is None,
      "no daemon at the socket: %r" % e)
e = error_of(lambda: sfp.Client(d.socket, job="j" * 129))
check(isinstance(e, sfp.Error), "a 129-byte job id: %r" % e)

# a stopped daemon: the call times out, the connection is then unusable
c = sfp.Client(d.socket, job="stop", timeout=0.5)
c.put("x", x)
os.kill(d.pid, signal.SIGSTOP)
t0 = time.monotonic()
e = error_of(lambda: c.get("x"))
dt = time.monotonic() - t0
os.kill(d.pid, signal.SIGCONT)
check(isinstance(e, sfp.Error) and e.name == "SFPC_ETIMEDOUT" and e.status is None and dt < 3,
      "stopped sfpd: %r after %.2f s (timeout 0.5 s)" % (e, dt))
e = error_of(lambda: c.put("y", x))
check(isinstance(e, sfp.Error) and e.name == "SFPC_EDISCONNECTED", "then: %r" % e)
c.close()

c = sfp.Client(d.socket, job="kill")
c.put("x", x)
d.kill()
e = error_of(lambda: c.get("x"))
check(isinstance(e, sfp.Error) and e.name == "SFPC_EDISCONNECTED" and e.status is None,
      "killed sfpd: %r" % e)
c.close()
c.close()
sfptest.done()
