#!/usr/bin/python3
"""Every layer kind, and the built-in resnet and vit, against PyTorch 1.13
on fixed inputs: tests/worker/layer_dump runs one training-mode forward and
backward of a model file in sfp-train's engine, bench/sfp_torch.py builds
the same network in PyTorch with the same parameters and running
statistics, and the logits, loss, parameter gradients, input gradient,
updated running statistics and evaluation-mode logits must agree. PyTorch
computes in float64 (the exact answer to FP32 precision): its float32
BatchNorm is about 300x less accurate than sfp-train's (which sums in double)
on resnet at batch 64, which would hide what is sfp-train's own error.
Exit 77 (skipped, with the reason) where python3-torch is not installed.

    torch_layers.py PATH/TO/layer_dump
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print("SKIP: PyTorch not available (%s); install python3-torch" % e)
    sys.exit(77)
from sfp_torch import SfpModel  # noqa: E402

# one case per layer kind (and the options that change its code path)
CASES = {
    "dense": "input x 2x3x3\ndense a x out=5 act=relu\ndense o a out=3\n",
    "dense-nobias": "input x 2x3x3\ndense a x out=5 bias=no\ndense o a out=3\n",
    "conv": "input x 2x5x6\nconv a x out=16 k=3 pad=1 act=relu\navgpool p a\ndense o p out=3\n",
    "conv-odd": "input x 3x7x5\nconv a x out=6 k=3 pad=1\nconv b a out=5 k=5 pad=2\n"
                "avgpool p b\ndense o p out=3\n",
    "conv-stride": "input x 2x7x6\nconv a x out=3 k=3 stride=2 pad=1 bias=no\n"
                   "conv b a out=2 k=1 stride=2\navgpool p b\ndense o p out=3\n",
    "maxpool": "input x 2x4x6\nmaxpool a x\ndense o a out=3\n",
    "avgpool": "input x 3x4x5\navgpool a x\ndense o a out=3\n",
    "relu": "input x 2x3x3\nrelu a x\ndense o a out=3\n",
    "batchnorm": "input x 3x4x4\nbatchnorm a x act=relu\nconv b a out=16 k=3 pad=1\n"
                 "batchnorm c b\navgpool p c\ndense o p out=3\n",
    "batchnorm-1d": "input x 6\nbatchnorm a x\ndense o a out=3\n",
    "add": "input x 2x4x4\nconv a x out=2 k=3 pad=1 act=relu\nadd s a x act=relu\n"
           "avgpool p s\ndense o p out=3\n",
    "patch": "input x 2x4x6\npatch a x patch=2 out=5\ndense b a out=2\ntoken c b index=1\n"
             "dense o c out=3\n",
    "layernorm": "input x 1x4x4\npatch p x patch=2 out=6\nlayernorm a p\ntoken c a\n"
                 "layernorm d c\ndense o d out=3\n",
    "gelu": "input x 1x4x4\npatch p x patch=2 out=6\ngelu a p\ntoken c a index=2\n"
            "dense o c out=3\n",
    "attention": "input x 1x4x4\npatch p x patch=2 out=8\ndense q p out=8\ndense k p out=8\n"
                 "dense v p out=8\nattention a q k v heads=2\ntoken c a index=3\n"
                 "dense o c out=3\n",
    "cls-posembed": "input x 1x4x4\npatch p x patch=2 out=4\ncls a p\nposembed b a\n"
                    "token c b index=0\ndense o c out=3\n",
}


def load(d, name):
    return torch.from_numpy(np.fromfile(os.path.join(d, name + ".f32"), dtype="<f4").copy())


def close(what, a, b, rtol=3e-5, atol=None):
    a, b = a.double().flatten(), b.double().flatten()
    scale = max(a.abs().max().item(), b.abs().max().item(), 1e-12)
    tol = max(atol or 0.0, 3e-6 * scale)
    err = (a - b).abs().max().item()
    ok = err <= tol + rtol * scale
    if not ok:
        print("    %s: max |diff| %.3g (scale %.3g)" % (what, err, scale))
    return ok


def check(exe, name, text, batch):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, name + ".model")
        open(path, "w").write(text)
        subprocess.run([exe, path, d, str(batch)], check=True)
        meta = json.load(open(os.path.join(d, "meta.json")))
        net = SfpModel(text, init=None).double()
        params = load(d, "params").double()
        with torch.no_grad():
            for t in meta["tensors"]:
                p = net.param_of(t["layer"], t["which"])
                p.copy_(params[t["off"]:t["off"] + t["n"]].view_as(p))
            if meta["buffers"]:
                b0 = load(d, "buffers0").double()
                for b in meta["buffers"]:
                    m, c = net.mods[b["layer"]], b["n"] // 2
                    m.running_mean.copy_(b0[b["off"]:b["off"] + c])
                    m.running_var.copy_(b0[b["off"] + c:b["off"] + 2 * c])
        x = load(d, "x").double().view(batch, *net.in_shape).requires_grad_(True)
        y = load(d, "y").long()
        net.train()
        out = net(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        ok = close("logits", out.detach(), load(d, "logits"))
        ok &= abs(loss.item() - meta["loss"]) <= 1e-4 * max(1, abs(loss.item()))
        grads = load(d, "grads")
        # gradients that are 0 in exact arithmetic (a bias before BatchNorm,
        # the key bias of attention) are float noise: an absolute floor at
        # the scale of the whole gradient
        floor = 2e-5 * grads.abs().max().item()
        for t in meta["tensors"]:
            p = net.param_of(t["layer"], t["which"])
            ok &= close("grad %s.%s" % (t["layer"], t["which"]), p.grad,
                        grads[t["off"]:t["off"] + t["n"]], atol=floor)
        ok &= close("input grad", x.grad, load(d, "dx"))
        if meta["buffers"]:
            b1 = load(d, "buffers1")
            for b in meta["buffers"]:
                m, c = net.mods[b["layer"]], b["n"] // 2
                ok &= close("running mean %s" % b["layer"], m.running_mean,
                            b1[b["off"]:b["off"] + c])
                ok &= close("running var %s" % b["layer"], m.running_var,
                            b1[b["off"] + c:b["off"] + 2 * c])
        net.eval()
        with torch.no_grad():
            ok &= close("eval logits", net(x), load(d, "logits_eval"))
        print("  %-14s %s" % (name, "ok" if ok else "DIFFERS"))
        return ok


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    exe = sys.argv[1]
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    print("PyTorch %s against sfp-train's layers:" % torch.__version__)
    bad = 0
    for name, text in CASES.items():
        bad += not check(exe, name, text, 3)
    for name in ("resnet", "vit", "cnn", "mlp"):
        text = open(os.path.join(ROOT, "worker", "models", name + ".model")).read()
        bad += not check(exe, name, text, 16)
    print("%d case(s) differ" % bad if bad else "all agree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
