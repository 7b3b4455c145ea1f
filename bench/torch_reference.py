#!/usr/bin/python3
"""Reference run of sfp-train's models in PyTorch (Debian python3-torch),
for the side-by-side comparisons in docs/RESULTS.md and docs/BENCHMARKS.md:
same architectures, same data (Debian dataset-fashion-mnist, published
split, pixels / 255), same optimiser (Adam lr 1e-3 x0.85 per epoch,
decoupled weight decay 1e-4 on weights), batch 128, one thread.

mlp and cnn are written out below (PyTorch's default initialisation, as in
the first results); resnet, vit and any --model-file are built from the
same model file sfp-train reads (bench/sfp_torch.py), initialised with
sfp-train's distributions (He-normal weights, zero biases, norms 1/0,
class token and positions N(0, 0.02)), weight decay on conv, dense and
patch weights only, like sfp-train.

    /usr/bin/python3 bench/torch_reference.py --model mlp --epochs 10
    /usr/bin/python3 bench/torch_reference.py --model resnet --epochs 3 --train-limit 10000

Prints one line per epoch (loss, train and test accuracy, images/s of the
training steps) and a final JSON line.
"""
import argparse
import copy
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfp_torch import SfpModel  # noqa: E402

MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "worker",
                      "models")


def idx(path):
    raw = gzip.open(path).read()
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(data, prefix):
    """Images [N, 1, 28, 28] (pixels / 255) and labels of one split."""
    x = idx(os.path.join(data, prefix + "-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    y = idx(os.path.join(data, prefix + "-labels-idx1-ubyte.gz")).astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def accuracy(net, x, y):
    """Test accuracy in evaluation mode (BatchNorm: running statistics)."""
    net.eval()
    with torch.no_grad():
        c = sum((net(x[j:j + 1000]).argmax(1) == y[j:j + 1000]).sum().item()
                for j in range(0, len(x), 1000))
    return c / len(x)


def precise_bn(net, x, images, batch):
    """Replaces every BatchNorm's running statistics by the equal average of
    its batch statistics over the first IMAGES of x in batches of BATCH,
    computed with the current weights ("precise BN"). The running
    statistics of a short run lag the weights (momentum 0.1 over the last
    steps): on resnet they can cost several points of test accuracy
    (docs/RESULTS.md). Leaves the net in evaluation mode."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    keep = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    with torch.no_grad():
        for j in range(0, min(images, len(x)) - batch + 1, batch):
            net(x[j:j + batch])
    for m, k in zip(bns, keep):
        m.momentum = k
    net.eval()


def model(name, model_file=None, seed=1):
    if model_file or name not in ("mlp", "cnn"):
        path = model_file or os.path.join(MODELS, name + ".model")
        return SfpModel(open(path).read(), init="sfp", seed=seed)
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(),
                             nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["mlp", "cnn", "resnet", "vit"], default="mlp")
    ap.add_argument("--model-file", help="a model file (as sfp-train --model-file)")
    ap.add_argument("--train-limit", type=int, help="the first N training images")
    ap.add_argument("--synthetic", type=int, help="N random images instead of the data "
                    "(speed only)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--precise-bn", type=int, default=0, metavar="N",
                    help="also report the test accuracy with BatchNorm statistics "
                    "recomputed over the first N training images (the running "
                    "statistics stay those of training)")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(a.threads)

    if a.synthetic:
        g = torch.Generator().manual_seed(a.seed)
        xtr = torch.rand(a.synthetic, 1, 28, 28, generator=g)
        ytr = torch.randint(0, 10, (a.synthetic,), generator=g)
        xte, yte = xtr[:a.batch], ytr[:a.batch]
    else:
        xtr, ytr = load_split(a.data, "train")
        xte, yte = load_split(a.data, "t10k")
    if a.train_limit:
        xtr, ytr = xtr[:a.train_limit], ytr[:a.train_limit]
    net = model(a.model, a.model_file, a.seed)
    if isinstance(net, SfpModel):
        ids = {id(p) for p in net.decayed()}
        decay = [p for p in net.parameters() if id(p) in ids]
        other = [p for p in net.parameters() if id(p) not in ids]
    else:
        decay = [p for n, p in net.named_parameters() if p.dim() > 1]
        other = [p for n, p in net.named_parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4},
                             {"params": other, "weight_decay": 0.0}], lr=1e-3)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.85)
    lossf = nn.CrossEntropyLoss()
    n = xtr.shape[0]
    for ep in range(1, a.epochs + 1):
        net.train()
        perm = torch.randperm(n)
        t0, c0 = time.perf_counter(), time.process_time()
        tot, correct, seen = 0.0, 0, 0
        for i in range(0, n - a.batch + 1, a.batch):  # full batches, as sfp-train
            b = perm[i:i + a.batch]
            out = net(xtr[b])
            loss = lossf(out, ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(b)
            correct += (out.argmax(1) == ytr[b]).sum().item()
            seen += len(b)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        sched.step()
        acc = accuracy(net, xte, yte)
        extra = ""
        if a.precise_bn:
            # on a copy: training goes on with its own running statistics
            pnet = copy.deepcopy(net)
            precise_bn(pnet, xtr, a.precise_bn, a.batch)
            pacc = accuracy(pnet, xte, yte)
            extra = f"  test with precise BN {100 * pacc:.2f}%"
        print(f"epoch {ep}/{a.epochs}  loss {tot / seen:.4f}  train {100 * correct / seen:.2f}%  "
              f"test {100 * acc:.2f}%{extra}  {seen / dt:.0f} images/s", flush=True)
    print(json.dumps({"framework": "pytorch " + torch.__version__,
                      "model": a.model_file or a.model, "seed": a.seed,
                      "train_images": n, "batch": a.batch,
                      "epochs": a.epochs, "test_accuracy": acc,
                      "train_images_per_s_last_epoch": seen / dt,
                      **({"test_accuracy_precise_bn": pacc, "precise_bn_images": a.precise_bn}
                         if a.precise_bn else {}),
                      "train_images_per_cpu_s_last_epoch": seen / dc, "threads": a.threads}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
