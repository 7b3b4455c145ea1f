"""Lossy widths and width policies through sfp.torch.offload.

- resnet18 (random init, a fixed batch of 8 random 3x64x64 images, SGD lr
  0.01 momentum 0.9) with mantissa 2 / exponent 4 (Gecko): the loss over 20
  steps tracks the FP32 run. Tolerance: at every step
  |loss_k2e4 - loss_fp32| <= 0.05 (the first loss is ~2.2), and both runs
  end below a tenth of their first loss. The measured gap is printed
  (docs/PYTORCH.md quotes it for 3 seeds).
- policy="bitwave" fed by observe_loss lowers the widths while the loss
  falls, and sfpd stores the widths the controller chose;
- an operator policy set with `sfpctl policy set --pin` pins the widths of
  the next puts.
"""
import copy
import subprocess
import os

import sfptest
from sfptest import check

torch = sfptest.need_torch()
import torchvision  # noqa: E402

import sfp.torch  # noqa: E402

TOL = 0.05
d = sfptest.Daemon()
F = torch.nn.functional

torch.manual_seed(1)
model = torchvision.models.resnet18(num_classes=10)
x = torch.randn(8, 3, 64, 64)
y = torch.randint(0, 10, (8,))


def train(m, off, steps, observe=False):
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        if off is None:
            loss = F.cross_entropy(m(x), y)
        else:
            with off:
                loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        if observe:
            off.observe_loss(loss)
        losses.append(loss.item())
    return losses


ref = train(copy.deepcopy(model), None, 20)
off = sfp.torch.offload(socket=d.socket, job="pytest-k2e4", mantissa=2, exponent=4)
q = train(copy.deepcopy(model), off, 20)
gap = max(abs(a - b) for a, b in zip(ref, q))
st = off.stats()
print("fp32 :", " ".join("%.4f" % v for v in ref))
print("k2e4 :", " ".join("%.4f" % v for v in q))
check(gap <= TOL and ref[-1] < ref[0] / 10 and q[-1] < q[0] / 10,
      "k2e4 loss tracks FP32 over 20 SGD steps: max gap %.4f (tolerance %.2f), "
      "%.3f -> %.4f vs %.3f -> %.4f" % (gap, TOL, ref[0], ref[-1], q[0], q[-1]))
check(st["tensors"] >= 20 * 39 and st["ratio"] > 4 and st["in_process"] == 0 and
      (st["mantissa"], st["exponent"], st["coder"]) == (2, 4, "gecko"),
      "k2e4: %d stashes, ratio %.2f" % (st["tensors"], st["ratio"]))
check(any(a != b for a, b in zip(ref, q)), "k2e4 losses differ from FP32 (the widths are used)")
off.close()

# ---------------------------------------------------------------- BitWave
x = x[:, :, :32, :32].contiguous()
small = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Flatten(), torch.nn.Linear(16 * 32 * 32, 10))
bw = sfp.torch.offload(socket=d.socket, job="pytest-bitwave", policy="bitwave", min_bytes=4096,
                       bitwave=dict(warmup=0, period=2, tau=0.0, m_init=7))
check(bw.widths()[:2] == (7, 8), "bitwave starts at m_init 7, e 8")
model = copy.deepcopy(small)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
listed = []
for step in range(12):
    opt.zero_grad()
    with bw:
        loss = F.cross_entropy(model(x), y)
        if step == 11:
            bw._sync()
            listed = d.sfpctl("tensors", "--job", "pytest-bitwave")["tensors"]
            m_listed = bw.widths()[0]
    loss.backward()
    opt.step()
    bw.observe_loss(loss)
m_now = bw.widths()[0]
check(m_now < 7, "a falling loss lowered the BitWave mantissa 7 -> %d" % m_now)
check(bw._bw.config()["m_min"] == 3 and m_now >= 3,
      "the stashes keep 3 mantissa bits under BitWave: floor %d, now %d"
      % (bw._bw.config()["m_min"], m_now))
low = sfp.torch.offload(socket=d.socket, policy="bitwave", mantissa=2)
check(low._bw.config()["m_min"] == 2, "a starting mantissa of 2 lowers the floor to it")
low.close()
check(listed and m_listed < 7 and all(t["mantissa_bits"] == m_listed for t in listed),
      "sfpd stores the controller's widths: %s" % sorted({t["mantissa_bits"] for t in listed}))
try:
    bw.observe_loss(float("nan"))
    check(False, "a NaN loss is refused")
except sfp.Error as e:
    check(True, "a NaN loss is refused: %r" % e)
bw.close()

# -------------------------------------------------------- operator policy
op = sfp.torch.offload(socket=d.socket, job="pytest-operator", min_bytes=4096)
model = copy.deepcopy(small)


def step():
    with op:
        loss = F.cross_entropy(model(x), y)
    loss.backward()


step()
r = subprocess.run([os.environ["SFPCTL_BIN"], "--addr", "unix:" + d.grpc, "policy", "set",
                    "--job", "pytest-operator", "--pin", "3,5", "--coder", "plain"],
                   capture_output=True, text=True, timeout=20)
check(r.returncode == 0, "sfpctl policy set --pin 3,5: %s" % (r.stderr.strip() or "ok"))
step()        # these puts report the new policy generation
with op:
    loss = F.cross_entropy(model(x), y)
    op._sync()
    listed = d.sfpctl("tensors", "--job", "pytest-operator")["tensors"]
loss.backward()
check(op.widths() == (3, 5, "plain") and listed and
      all((t["mantissa_bits"], t["exponent_bits"], t["coder"]) == (3, 5, "plain") for t in listed),
      "operator pin 3,5 plain applies to the next puts: %s" % (listed[:1],))
op.close()
sfptest.done()
