"""sfp.torch.offload with lossless widths: a torchvision resnet18 (random
init, a batch of 8 random 3x64x64 images) gives gradients bit-identical to
the same step without it; sfpctl tensors, sfpctl stats and /metrics show the
job while its activations are stashed; every saved-tensor layout and dtype
is handled as docs/PYTORCH.md says; retain_graph, a backward outside the
context and a forward without backward work; the shared memory resident
stays within the recovery ring plus the largest tensor.
"""
import copy
import gc
import time
import warnings

import sfptest
from sfptest import check

torch = sfptest.need_torch()
import torchvision  # noqa: E402

import sfp  # noqa: E402
import sfp.torch  # noqa: E402

warnings.simplefilter("error", sfp.torch.DaemonLostWarning)
d = sfptest.Daemon(metrics=True)
JOB = "pytest-grad"

torch.manual_seed(1)
model = torchvision.models.resnet18(num_classes=10)
x = torch.randn(8, 3, 64, 64)
y = torch.randint(0, 10, (8,))


def grads(m):
    return [p.grad.clone() for p in m.parameters()]


m0 = copy.deepcopy(model)
loss0 = torch.nn.functional.cross_entropy(m0(x), y)
loss0.backward()
g0 = grads(m0)

m1 = copy.deepcopy(model)
off = sfp.torch.offload(socket=d.socket, job=JOB)
with off:
    loss1 = torch.nn.functional.cross_entropy(m1(x), y)
st = off.stats()
live = st["live"]
listed = []
deadline = time.time() + 10
while time.time() < deadline:          # sfpd acknowledges the puts asynchronously
    listed = d.sfpctl("tensors", "--job", JOB).get("tensors", [])
    if len(listed) >= live:
        break
    time.sleep(0.05)
check(live > 20 and len(listed) == live,
      "during the step sfpctl tensors lists the job's %d stashes (%d listed)" % (live, len(listed)))
check(all(t["job_id"] == JOB and t["mantissa_bits"] == 23 and t["exponent_bits"] == 8 and
          t["dtype"] == "f32" for t in listed), "listed stashes belong to %s, 23 mantissa bits: %s" % (JOB, listed[:1]))
jobs = d.sfpctl("stats", "--job", JOB).get("jobs", [])
check(any(j["job_id"] == JOB and int(j["frames"]) == live for j in jobs),
      "sfpctl stats --job shows the job with %d frames: %s" % (live, jobs))
met = d.metrics()
check(('sfp_job_stored_bytes{job="%s"}' % JOB) in met, "/metrics has sfp_job_stored_bytes for the job")
loss1.backward()
g1 = grads(m1)
same = all(torch.equal(a, b) for a, b in zip(g0, g1))
check(torch.equal(loss0, loss1) and same and len(g1) == 62,
      "resnet18: loss and all %d gradients bit-identical with offload()" % len(g1))
st = off.stats()
check(st["tensors"] == live and st["live"] == 0 and st["bytes_in"] > 10 << 20 and
      st["bytes_stored"] < st["bytes_in"] and st["ratio"] > 1 and st["in_process"] == 0 and
      st["prefetch_hits"] + st["prefetch_misses"] == live,
      "stats after backward: %d tensors, %d bytes in, %d stored, ratio %.2f" %
      (st["tensors"], st["bytes_in"], st["bytes_stored"], st["ratio"]))
check(d.sfpctl("tensors", "--job", JOB).get("tensors", []) == [],
      "after backward sfpd holds nothing of the job")

# the same offload object again: backward outside the context, and twice
m2 = copy.deepcopy(model)
with off:
    loss2 = torch.nn.functional.cross_entropy(m2(x), y)
loss2.backward(retain_graph=True)
g2 = grads(m2)
m2.zero_grad()
loss2.backward()
check(all(torch.equal(a, b) for a, b in zip(g0, g2)) and
      all(torch.equal(a, b) for a, b in zip(g0, grads(m2))),
      "reused offload: backward outside the context, then again with retain_graph")
check(off.stats()["steps"] == 1, "a second step was counted")
del loss2
gc.collect()


# --------------------------------------------------------- layouts, dtypes
class Probe(torch.autograd.Function):
    """Saves t; backward records what autograd hands back."""
    seen = {}

    @staticmethod
    def forward(ctx, t, dummy, tag):
        ctx.save_for_backward(t)
        ctx.tag = tag
        return dummy * 1.0

    @staticmethod
    def backward(ctx, g):
        (t,) = ctx.saved_tensors
        Probe.seen[ctx.tag] = (t.shape, t.stride(), t.dtype, t.device, t.clone(), t.data_ptr())
        return None, g, None


def probe(t, tag):
    dummy = torch.ones(1, requires_grad=True)
    with off:
        out = Probe.apply(t, dummy, tag)
    return out


base = torch.randn(64, 256, 32)
cases = {
    "contiguous": base.clone(),
    "transposed": base.clone().transpose(0, 2),
    "channels_last": torch.randn(4, 16, 32, 32).contiguous(memory_format=torch.channels_last),
    "gappy": base.clone()[:, ::2, :],
    "expanded": torch.randn(1, 256, 32).expand(64, 256, 32),
    "bfloat16": base.clone().to(torch.bfloat16),
    "float64": base.clone().double(),
    "int64": torch.randint(0, 1 << 40, (64, 256)),
    "small": torch.randn(100),
    "parameter": torch.nn.Parameter(base.clone()),
    "meta": torch.empty(64, 256, 32, device="meta"),
}
before = off.stats()
outs = [probe(t, k) for k, t in cases.items()]
mid = off.stats()
sum(o.sum() for o in outs).backward()
after = off.stats()
check(mid["tensors"] - before["tensors"] + mid["live"] >= 5 and after["live"] == 0,
      "layouts: stashed tensors were read back (%d live before backward)" % mid["live"])
for k, t in cases.items():
    shape, stride, dtype, dev, val, ptr = Probe.seen[k]
    same_val = dev.type == "meta" or torch.equal(val, t.detach())
    if k in ("contiguous", "transposed", "channels_last", "bfloat16"):
        ok = same_val and stride == t.stride() and ptr != t.data_ptr()
        what = "stashed, back with the same strides %s" % (stride,)
    elif k == "gappy":
        ok = same_val and val.is_contiguous() and shape == t.shape and ptr != t.data_ptr()
        what = "stashed as a contiguous copy"
    else:
        ok = same_val and ptr == t.data_ptr() and dtype == t.dtype and dev == t.device
        what = "passed through untouched"
    check(ok, "%s: %s" % (k, what))
check(after["passed"] - before["passed"] >= 6, "passed-through tensors are counted")

# a forward without backward: its stashes are dropped at the next boundary
with off:
    lost_loss = torch.nn.functional.cross_entropy(copy.deepcopy(model)(x), y)
check(off.stats()["live"] > 20, "forward only: %d stashes live" % off.stats()["live"])
del lost_loss
gc.collect()
with off:
    pass
frames = -1
deadline = time.time() + 5
while time.time() < deadline and frames != 0:
    frames = len(d.sfpctl("tensors", "--job", JOB).get("tensors", []))
    time.sleep(0.05)
check(off.stats()["live"] == 0 and frames == 0, "freed unread stashes are dropped in sfpd")
off.close()

# the shared memory resident stays within the recovery window
shm0 = sfptest.rss_bytes(field="RssShmem")
small = sfp.torch.offload(socket=d.socket, job=JOB + "-window", recovery=2 << 20)
m3 = copy.deepcopy(model)
with small:
    loss3 = torch.nn.functional.cross_entropy(m3(x), y)
    shm1 = sfptest.rss_bytes(field="RssShmem")
st = small.stats()
loss3.backward()
shm2 = sfptest.rss_bytes(field="RssShmem")
check(all(torch.equal(a, b) for a, b in zip(g0, grads(m3))) and
      shm1 - shm0 <= (4 << 20) + (64 << 10) and shm2 - shm0 <= (4 << 20) + (64 << 10),
      "recovery=2 MiB: %.1f MiB of %.1f MiB stashed resident after the forward (bound: 2 MiB "
      "+ the largest tensor, 2 MiB), %.1f MiB after backward; gradients bit-identical" % ((shm1 - shm0) / 2**20, st["bytes_in"] / 2**20,
                                                   (shm2 - shm0) / 2**20))
small.close()
check(repr(off).startswith("<sfp.torch.offload job='pytest-grad'"), repr(off))
sfptest.done()
