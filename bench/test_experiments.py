#!/usr/bin/python3
"""Smoke test of the results pipeline: scripts/experiments --quick (the whole
matrix on tiny synthetic runs, including the tap runs and sfp-expstudy) into a
temp dir, then scripts/gen-results on it, and checks that every report, trace,
study, plot and table is there and well-formed, and that a plain-coder run
and a Gecko run of the same seed ended with the same weights.

usage: test_experiments.py SFP_TRAIN   (libsfp-tap.so and sfp-expstudy are
found in ../bench/ next to the sfp-train binary, as in a meson build dir)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    if not shutil.which("gnuplot"):
        fail("gnuplot not found: install gnuplot-nox (scripts/deps bench)")
    # an ASan-built sfp-train with the (ASan-built) tap preloaded
    env = dict(os.environ)
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + \
        "verify_asan_link_order=0:detect_leaks=0"
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="sfp-exp-") as tmp:
        out = os.path.join(tmp, "results")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "experiments"),
                            "--quick", "--jobs", "2", "--out", out, "--bin", binary],
                           capture_output=True, text=True, env=env, timeout=600)
        print(r.stdout[-4000:])
        if r.returncode != 0:
            print(r.stderr[-4000:])
            for f in sorted(os.listdir(out)) if os.path.isdir(out) else []:
                if f.endswith(".log"):
                    with open(os.path.join(out, f)) as fh:
                        txt = fh.read()
                    if "rror" in txt:
                        print("--- %s\n%s" % (f, txt[-2000:]))
            fail("scripts/experiments --quick exited %d" % r.returncode)
        listing = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "experiments"),
                                  "--quick", "--out", out, "--list"],
                                 capture_output=True, text=True, env=env)
        names = [l.split()[2] for l in listing.stdout.splitlines()]
        if len(names) < 20:
            fail("expected the whole matrix, --list gave %d runs" % len(names))
        have_torch = subprocess.call(["/usr/bin/python3", "-c", "import torch"],
                                     stderr=subprocess.DEVNULL) == 0
        todo = [l for l in listing.stdout.splitlines() if not l.startswith("done") and
                (have_torch or " torch-" not in l)]
        if todo:
            fail("runs not finished after a full pass: %s" % todo[:3])
        for n in names:
            if n.startswith("torch-"):  # the PyTorch twins (skipped without torch)
                if have_torch:
                    with open(os.path.join(out, n + ".json")) as f:
                        rep = json.load(f)
                    if rep.get("schema") != "torch-reference/1" or \
                            not 0 <= rep["final"]["test_acc"] <= 100:
                        fail("%s: bad twin report" % n)
                continue
            with open(os.path.join(out, n + ".json")) as f:
                rep = json.load(f)
            if rep.get("schema") != "sfp-train-report/1" or not rep["epochs"]:
                fail("%s: bad report" % n)
            if not rep["final"]["replicas_identical"]:
                fail("%s: replicas differ" % n)
        # resumable: a second pass runs nothing
        r2 = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "experiments"),
                             "--quick", "--out", out, "--bin", binary],
                            capture_output=True, text=True, env=env, timeout=120)
        if r2.returncode != 0 or re.search(r"\bok\b", r2.stdout) or \
                r2.stdout.count("skip") != len(names):
            fail("second pass did not skip every run:\n" + r2.stdout)
        taps = [n for n in names if "-tap-" in n]
        if not taps:
            fail("no tap runs in the quick matrix")
        for n in taps:
            with open(os.path.join(out, n + ".expstudy.json")) as f:
                st = json.load(f)
            if st.get("schema") != "sfp-expstudy/1" or not st["tensors"]:
                fail("%s: bad expstudy" % n)
            for t in st["tensors"]:
                b = t["bits"]
                for k in ("entropy", "plain", "gecko", "rans", "zstd19", "lz4hc"):
                    if not (b[k] >= 0):
                        fail("%s: bits.%s = %r" % (n, k, b[k]))
                if not (t["ctx1"]["plane_bits"] > 0 and t["ctx1"]["dec_ns"] > 0):
                    fail("%s: ctx1 prototype not measured: %r" % (n, t["ctx1"]))
                # rANS may fall back to plain, never worse than both plain
                # and a hundred bits of table
                if b["rans"] > b["plain"] + 1e-9 and t["n"] > 4096:
                    fail("%s: rANS %.3f above plain %.3f" % (n, b["rans"], b["plain"]))
            with open(os.path.join(out, n + ".steps.tsv")) as f:
                lines = f.read().splitlines()
            if len(lines) < 3 or not lines[1].startswith("step\tloss\tk:"):
                fail("%s: bad steps.tsv" % n)
        md = os.path.join(tmp, "RESULTS.md")
        with open(md, "w") as f:
            f.write("# Results\n\nhand-written intro\n\n<!-- BEGIN gen-results -->\nold\n"
                    "<!-- END gen-results -->\n\nhand-written tail\n")
        plots = os.path.join(tmp, "plots")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen-results"),
                            "--results", out, "--out", md, "--plots", plots],
                           capture_output=True, text=True, env=env, timeout=300)
        print(r.stdout, r.stderr)
        if r.returncode != 0:
            fail("gen-results exited %d" % r.returncode)
        with open(md) as f:
            text = f.read()
        if "hand-written intro" not in text or "hand-written tail" not in text or \
                "\nold\n" in text:
            fail("gen-results did not replace exactly the generated block")
        for head in ("### Accuracy and time", "### Footprint vs FP32", "### Against the paper",
                     "### Plain vs Gecko", "### Exponent coding on real training tensors",
                     "### Learned widths over training",
                     "### Short data-parallel run (the issue's command)",
                     "### Footprint / accuracy trade-off",
                     "#### Exponent coding beyond order 0",
                     "### Architectures: ResNet-20 and a vision transformer",
                     "### Which tensor kinds compress how well"):
            if head not in text:
                fail("RESULTS.md lacks %r" % head)
        # the headline (default) runs code their stashes with the auto coder
        for n in names:
            if "-auto-" in n:
                with open(os.path.join(out, n + ".json")) as f:
                    coder = json.load(f)["settings"]["coder"]
                if coder != "auto":
                    fail("%s ran with coder %s" % (n, coder))
            if n.endswith("-plain-s1") and "fp32" not in n:
                with open(os.path.join(out, n + ".json")) as f:
                    coder = json.load(f)["settings"]["coder"]
                if coder != "plain":
                    fail("%s ran with coder %s" % (n, coder))
        if "**differ**" in text:
            fail("a plain and a Gecko run of the same seed ended with different weights")
        for kind in ("| resnet | QM+QE | bn-input |", "| resnet | QM+QE | post-relu |",
                     "| vit | QM+QE | recomputed |", "| vit | QM+QE | gelu-input |",
                     "| vit | BitWave | residual-sum |", "| resnet | BitWave | weights |"):
            if kind not in text:
                fail("the per-kind table lacks %r" % kind)
        # attention's probabilities are recomputed from Q and K, not stored
        if "| vit | QM+QE | attention-probs |" in text:
            fail("the per-kind table has stored attention probabilities")
        for model in ("mlp", "cnn", "resnet", "vit"):
            for label in ("FP32", "QM+QE + Gecko", "BitWave + Gecko",
                          "QM+QE + auto (Gecko/rANS)", "BitWave + auto (Gecko/rANS)"):
                if not re.search(r"\| %s \| %s[^|]*\| \d+ \| \d+\.\d\d" %
                                 (model, re.escape(label)), text):
                    fail("no accuracy row for %s %s" % (model, label))
        for p in ("widths-mlp", "bitwave", "tradeoff", "exphist"):
            path = os.path.join(plots, p + ".png")
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                fail("plot %s missing" % p)
            if not data.startswith(b"\x89PNG\r\n\x1a\n") or len(data) < 2000:
                fail("plot %s is not a PNG" % p)
            if "(plots/%s.png)" % p not in text:
                fail("RESULTS.md does not link %s.png" % p)
    print("results pipeline ok: %d runs" % len(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
