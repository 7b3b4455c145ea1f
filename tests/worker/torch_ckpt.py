#!/usr/bin/python3
"""An sfp-train checkpoint read into PyTorch (bench/ckpt_eval.py over
bench/sfp_torch.py read_checkpoint / load_flat) evaluates to exactly the
test accuracy sfp-train reported: weights, running statistics and layouts
are read right, and both evaluate BatchNorm the same way; and sfp-train's
--precise-bn recomputes the statistics as PyTorch's momentum=None does
(the basis of the precise-BN comparison in docs/RESULTS.md). resnet (BatchNorm) and vit
(LayerNorm, class token, positions), one short epoch on the real data.
Exit 77 without python3-torch.

    torch_ckpt.py PATH/TO/sfp-train
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = "/usr/share/datasets/fashion-mnist"


def main():
    try:
        import torch  # noqa: F401
    except ImportError:
        print("SKIP: python3-torch is not installed")
        return 77
    if not os.path.exists(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")):
        print("SKIP: no Fashion-MNIST in " + DATA)
        return 77
    train = sys.argv[1]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    fails = 0
    with tempfile.TemporaryDirectory() as d:
        for model in ("resnet", "vit"):
            ck, rep = os.path.join(d, model + ".ck"), os.path.join(d, model + ".json")
            subprocess.run([train, "--model", model, "--policy", "fp32", "--epochs", "1",
                            "--train-limit", "384", "--test-limit", "500", "--data", DATA,
                            "--precise-bn", "256", "--save", ck, "--report", rep, "--no-daemon", "--quiet",
                            "--no-progress"], check=True, stdout=subprocess.DEVNULL, env=env)
            last = json.load(open(rep))["epochs"][-1]
            # vit has no BatchNorm: no precise-BN figure, PyTorch's is the plain one
            want = last["test_acc"]
            want_p = last.get("test_acc_precise_bn", want)
            out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "ckpt_eval.py"),
                                  ck, "--test-limit", "500", "--bn-images", "256",
                                  "--data", DATA], check=True, capture_output=True,
                                 text=True, env=env).stdout
            got = json.loads(out.strip().splitlines()[-1])
            # the same statistics up to float rounding: at most one image
            # of the 500 may change its class
            ok = abs(100 * got["test_accuracy_running"] - want) < 1e-6 and \
                abs(100 * got["test_accuracy_precise_bn"] - want_p) <= 0.2 + 1e-6
            print("%s: sfp-train %.2f %% (precise BN %.2f %%), its checkpoint in PyTorch "
                  "%.2f %% (precise BN %.2f %%)%s"
                  % (model, want, want_p, 100 * got["test_accuracy_running"],
                     100 * got["test_accuracy_precise_bn"], "" if ok else "  MISMATCH"))
            fails += not ok
        # a truncated checkpoint is refused with a clear error
        raw = open(os.path.join(d, "resnet.ck"), "rb").read()
        bad = os.path.join(d, "bad.ck")
        open(bad, "wb").write(raw[:len(raw) // 2])
        r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "ckpt_eval.py"),
                            bad, "--test-limit", "10"], capture_output=True, text=True, env=env)
        if r.returncode == 0 or "does not match its header" not in r.stderr:
            print("truncated checkpoint not refused:", r.returncode, r.stderr[-300:])
            fails += 1
    print("ok" if not fails else "%d failed" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
