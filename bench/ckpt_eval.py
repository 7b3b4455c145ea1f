#!/usr/bin/python3
"""Test accuracy of an sfp-train checkpoint, evaluated in PyTorch (Debian
python3-torch) with the network of the same model file (bench/sfp_torch.py):

  * "running": the checkpoint's own running statistics, as sfp-train's
    evaluation uses them (this reproduces sfp-train's test accuracy: the
    check that weights, statistics and layouts were read right);
  * "precise": BatchNorm statistics recomputed over the first --bn-images
    training images with the final weights (an equal average over those
    batches, PyTorch's momentum=None), the same protocol as
    bench/torch_reference.py --precise-bn.

    /usr/bin/python3 bench/ckpt_eval.py run.ckpt

The checkpoint is read by bench/sfp_torch.py (read_checkpoint, load_flat).
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as tr  # noqa: E402
from sfp_torch import SfpModel, read_checkpoint  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--model", help="a built-in model (default: the checkpoint's)")
    ap.add_argument("--model-file")
    ap.add_argument("--bn-images", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--test-limit", type=int, help="the first N test images (as sfp-train)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(1)
    try:
        name, master, bufs = read_checkpoint(a.checkpoint)
        path = a.model_file or os.path.join(tr.MODELS, (a.model or name) + ".model")
        net = SfpModel(open(path).read(), init=None)
        net.load_flat(master, bufs)
    except (OSError, ValueError) as e:
        print("ckpt_eval: %s" % e, file=sys.stderr)
        return 1
    xtr, _ = tr.load_split(a.data, "train")
    xte, yte = tr.load_split(a.data, "t10k")
    if a.test_limit:
        xte, yte = xte[:a.test_limit], yte[:a.test_limit]
    running = tr.accuracy(net, xte, yte)
    tr.precise_bn(net, xtr, a.bn_images, a.batch)
    precise = tr.accuracy(net, xte, yte)
    print(json.dumps({"checkpoint": a.checkpoint, "model": name,
                      "test_accuracy_running": running, "test_accuracy_precise_bn": precise,
                      "bn_images": a.bn_images}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
