"""sfpd lost while sfp.torch.offload runs (sfpd is killed by pid).

A. killed during the forward pass of a resnet18 step (from a forward hook):
   the step completes with gradients bit-identical to the step without
   offload (lossless widths), exactly one DaemonLostWarning; the next step
   runs in process memory, still one warning;
B. killed between forward and backward: the same;
C. on_loss="raise": the step raises DaemonLost (an sfp.Error);
D. no sfpd at all: fallback warns once and trains; "raise" raises at enter;
E. a ring smaller than the step (recovery=1 MiB) and sfpd killed
   before the backward: StashLost for what only sfpd held; the next step
   trains.
"""
import copy
import warnings

import sfptest
from sfptest import check

torch = sfptest.need_torch()
import torchvision  # noqa: E402

import sfp  # noqa: E402
import sfp.torch  # noqa: E402

F = torch.nn.functional
torch.manual_seed(5)
resnet = torchvision.models.resnet18(num_classes=10)
x = torch.randn(8, 3, 64, 64)
y = torch.randint(0, 10, (8,))
small = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Flatten(), torch.nn.Linear(32 * 64 * 64, 10))


def two_steps(model, off=None, hook=None, between=None):
    """Two SGD steps; hook(module) runs inside layer forward of step 0;
    between() runs after step 0's forward. Returns the gradients of both."""
    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    out = []
    handle = None
    if hook is not None:
        target = m.layer3 if hasattr(m, "layer3") else m[2]
        handle = target.register_forward_hook(lambda mod, i, o: hook())
    for s in range(2):
        opt.zero_grad()
        if off is None:
            loss = F.cross_entropy(m(x), y)
        else:
            with off:
                loss = F.cross_entropy(m(x), y)
        if handle is not None:
            handle.remove()
            handle = None
        if s == 0 and between is not None:
            between()
        loss.backward()
        out.append([p.grad.clone() for p in m.parameters()])
        opt.step()
    return out


def same(a, b):
    return all(torch.equal(u, v) for ga, gb in zip(a, b) for u, v in zip(ga, gb))


def lost_warnings(ws):
    return [w for w in ws if issubclass(w.category, sfp.torch.DaemonLostWarning)]


ref = two_steps(resnet)

# A. killed during the forward pass
d = sfptest.Daemon()
off = sfp.torch.offload(socket=d.socket, job="pytest-loss-a")
with warnings.catch_warnings(record=True) as ws:
    warnings.simplefilter("always")
    got = two_steps(resnet, off, hook=d.kill)
st = off.stats()
lw = lost_warnings(ws)
check(same(ref, got), "A: sfpd killed mid-forward: both steps complete, gradients bit-identical")
check(len(lw) == 1 and "sfpd lost" in str(lw[0].message),
      "A: exactly one DaemonLostWarning: %s" % [str(w.message) for w in lw])
check(st["lost"] is not None and st["recovered"] > 0 and st["in_process"] > 0,
      "A: %d stashes read back from shared memory, %d kept in process (%s)"
      % (st["recovered"], st["in_process"], st["lost"]))

# B. killed between forward and backward
d = sfptest.Daemon()
off = sfp.torch.offload(socket=d.socket, job="pytest-loss-b")
with warnings.catch_warnings(record=True) as ws:
    warnings.simplefilter("always")
    got = two_steps(resnet, off, between=d.kill)
st = off.stats()
check(same(ref, got) and len(lost_warnings(ws)) == 1 and st["recovered"] >= 39,
      "B: sfpd killed before backward: gradients bit-identical, one warning, %d recovered"
      % st["recovered"])

# C. on_loss="raise"
d = sfptest.Daemon()
off = sfp.torch.offload(socket=d.socket, job="pytest-loss-c", on_loss="raise")
err = None
with warnings.catch_warnings(record=True) as ws:
    warnings.simplefilter("always")
    try:
        two_steps(small, off, hook=d.kill)
    except sfp.torch.DaemonLost as e:
        err = e
check(isinstance(err, sfp.Error) and "sfpd lost" in str(err) and not lost_warnings(ws),
      "C: on_loss='raise': %r, no warning" % err)

# D. no daemon
gone = sfptest.tmpdir() + "/none.sock"
ref_small = two_steps(small)
off = sfp.torch.offload(socket=gone, job="pytest-loss-d")
with warnings.catch_warnings(record=True) as ws:
    warnings.simplefilter("always")
    got = two_steps(small, off)
lw = lost_warnings(ws)
check(same(ref_small, got) and len(lw) == 1 and gone in str(lw[0].message),
      "D: no sfpd: training goes on, one warning: %s" % [str(w.message) for w in lw])
try:
    with sfp.torch.offload(socket=gone, job="pytest-loss-d2", on_loss="raise"):
        pass
    check(False, "D: on_loss='raise' without sfpd raises")
except sfp.torch.DaemonLost as e:
    check(gone in str(e) and e.name == "SFPC_ECONNECT" and isinstance(e, sfp.Error),
          "D: on_loss='raise' without sfpd: %r" % e)

# E. ring smaller than the step, sfpd killed before backward
d = sfptest.Daemon()
off = sfp.torch.offload(socket=d.socket, job="pytest-loss-e", recovery=1 << 20)
m = copy.deepcopy(small)
err = None
with warnings.catch_warnings(record=True) as ws:
    warnings.simplefilter("always")
    with off:
        loss = F.cross_entropy(m(x), y)
    d.kill()
    try:
        loss.backward()
    except Exception as e:  # noqa: BLE001 (autograd may wrap it)
        err = e
    m.zero_grad()
    with off:
        loss = F.cross_entropy(m(x), y)
    loss.backward()
    ok = all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
# PyTorch re-raises hook errors as RuntimeError("StashLost: ...")
check(isinstance(err, (sfp.torch.StashLost, RuntimeError)) and "StashLost" in str(err).split("\n")[0]
      and "cannot complete" in str(err),
      "E: StashLost for activations only sfpd held: %r" % err)
check(ok and len(lost_warnings(ws)) == 1, "E: the next step trains in process memory")
sfptest.done()
