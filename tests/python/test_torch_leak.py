"""No leak over 200 training steps through sfp.torch.offload (a small CNN).

Between step 50 and step 200: Python objects (gc), allocated blocks
(sys.getallocatedblocks), the reference counts of the model's parameters
and of the offload object, and the resident anonymous memory of the process
and of sfpd (RssAnon: without the shared memory both map) stay flat; the
shared memory resident stays one step's worth; after every step sfpd holds
none of the job's stashes. Bounds: +200 gc objects, +500 blocks, refcounts
equal, +8 MiB RssAnon of either process (glibc arenas: MALLOC_ARENA_MAX=2
in the test environment), RssShmem under 8 MiB.
"""
import gc
import os
import sys
import warnings

import sfptest
from sfptest import check

torch = sfptest.need_torch()

import sfp.torch  # noqa: E402

warnings.simplefilter("error", sfp.torch.OffloadWarning)
d = sfptest.Daemon()
F = torch.nn.functional
torch.manual_seed(3)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                            torch.nn.Linear(16 * 16 * 16, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x = torch.randn(8, 3, 32, 32)
y = torch.randint(0, 10, (8,))
off = sfp.torch.offload(socket=d.socket, job="pytest-leak", mantissa=4, exponent=5)
params = list(model.parameters())


def snapshot():
    gc.collect()
    return dict(objects=len(gc.get_objects()), blocks=sys.getallocatedblocks(),
                refs=[sys.getrefcount(p) for p in params] + [sys.getrefcount(off)],
                rss=sfptest.rss_bytes(field="RssAnon"),
                sfpd_rss=sfptest.rss_bytes(d.pid, "RssAnon"),
                shm=sfptest.rss_bytes(field="RssShmem"))


held = 0
for step in range(200):
    opt.zero_grad()
    with off:
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    held = max(held, off.stats()["live"])
    if step == 49:
        a = snapshot()
b = snapshot()
st = off.stats()
frames = len(d.sfpctl("tensors", "--job", "pytest-leak").get("tensors", []))
print("step 50 :", a)
print("step 200:", b)
check(st["tensors"] >= 200 * 4 and st["in_process"] == 0 and st["steps"] == 199,
      "200 steps, %d stashes through sfpd" % st["tensors"])
check(held == 0 and frames == 0, "after every step no stash is live (sfpd holds %d)" % frames)
check(b["objects"] - a["objects"] <= 200, "gc objects %+d" % (b["objects"] - a["objects"]))
check(b["blocks"] - a["blocks"] <= 500, "allocated blocks %+d" % (b["blocks"] - a["blocks"]))
check(a["refs"] == b["refs"], "reference counts of the parameters and the offload unchanged")
check(b["rss"] - a["rss"] <= 8 << 20,
      "process RssAnon %+.1f MiB" % ((b["rss"] - a["rss"]) / 2**20))
grow = (b["sfpd_rss"] - a["sfpd_rss"]) / 2**20
if os.environ.get("SFP_RSS_NOT_JUDGED"):
    print("sfpd RssAnon %+.1f MiB (not judged: %s)" % (grow, os.environ["SFP_RSS_NOT_JUDGED"]))
else:
    check(grow <= 8, "sfpd RssAnon %+.1f MiB" % grow)
check(b["shm"] < 8 << 20, "shared memory resident: %.1f MiB" % (b["shm"] / 2**20))
off.close()
sfptest.done()
