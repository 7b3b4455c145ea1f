"""PyTorch twin of an sfp-train model file (docs/TRAINING.md "Model files").

SfpModel(text) builds the same network from the same text with PyTorch
modules: dense -> nn.Linear (per token on TxD values), conv -> nn.Conv2d,
batchnorm -> nn.BatchNorm2d/1d, layernorm -> nn.LayerNorm, gelu -> nn.GELU,
patch -> nn.Conv2d with stride = kernel, attention -> softmax(QK^T/sqrt(d))V
per head, cls/posembed -> parameters. Used by bench/torch_reference.py (the
speed and accuracy twin) and tests/worker/torch_layers.py (layer-by-layer
comparison on fixed inputs). The text is checked by sfp-train; this reader
assumes a valid file.
"""
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# kind -> (option names in the C table's order, defaults)
OPTS = {
    "dense": ({"out": None, "bias": 1}),
    "conv": ({"out": None, "k": 3, "stride": 1, "pad": 0, "bias": 1}),
    "maxpool": {}, "avgpool": {}, "relu": {}, "batchnorm": {}, "add": {},
    "layernorm": {}, "gelu": {},
    "attention": {"heads": None},
    "patch": {"patch": None, "out": None, "bias": 1},
    "cls": {}, "posembed": {}, "token": {"index": 0},
}


def parse(text):
    """(name, input name, input shape, [layer dicts in file order])"""
    layers, inp = [], None
    for ln, line in enumerate(text.splitlines(), 1):
        tok = line.split("#", 1)[0].split()
        if not tok or tok[0] == "model":
            continue
        if tok[0] == "input":
            inp = (tok[1], tuple(int(d) for d in tok[2].split("x")))
            continue
        kind, name, ins, opt, act = tok[0], tok[1], [], dict(OPTS[tok[0]]), None
        for t in tok[2:]:
            if "=" in t:
                k, v = t.split("=", 1)
                if k == "act":
                    act = v if v != "none" else None
                else:
                    opt[k] = {"yes": 1, "true": 1, "no": 0, "false": 0}.get(v, v)
                    opt[k] = int(opt[k])
            else:
                ins.append(t)
        layers.append(dict(kind=kind, name=name, ins=ins, opt=opt, relu=act == "relu", line=ln))
    return inp, layers


def topo(inp_name, layers):
    done, order = {inp_name}, []
    left = list(layers)
    while left:
        for l in left:
            if all(i in done for i in l["ins"]):
                order.append(l)
                done.add(l["name"])
                left.remove(l)
                break
        else:
            raise ValueError("cycle")
    return order


CKPT_HEADERS = {b"SFPCKPT2": struct.Struct("<8s32sQII7Q"),
                b"SFPCKPT3": struct.Struct("<8s32sQII8Q")}


def read_checkpoint(path):
    """An sfp-train checkpoint (worker/checkpoint.c, version 2 or 3): (model
    name, FP32 master weights, running statistics) as float32 arrays. The
    layout: a header (112 bytes; version 3: 120, with the ranks of the
    residual section), the weights (layers in file order, each its weight
    then its bias), two optimizer moments, the running statistics, the
    policy state, (version 3) every rank's gradient residual, an 8-byte hash
    (not checked here; sfp-train checks it)."""
    raw = open(path, "rb").read()
    hs = CKPT_HEADERS.get(raw[:8])
    if hs is None:
        raise ValueError("%s: not a version 2 or 3 sfp-train checkpoint" % path)
    if len(raw) < hs.size:
        raise ValueError("%s: too short for an sfp-train checkpoint" % path)
    h = hs.unpack_from(raw)
    nparams, policy_len, nbuf = h[5], h[10], h[11]
    resid_ranks = h[12] if len(h) > 12 else 0
    if len(raw) != hs.size + 4 * nparams * (3 + resid_ranks) + 4 * nbuf + policy_len + 8:
        raise ValueError("%s: its size does not match its header" % path)
    master = np.frombuffer(raw, "<f4", nparams, hs.size)
    bufs = np.frombuffer(raw, "<f4", nbuf, hs.size + 12 * nparams)
    return h[1].rstrip(b"\0").decode(), master.copy(), bufs.copy()


class Attention(nn.Module):
    def __init__(self, heads):
        super().__init__()
        self.heads = heads

    def forward(self, q, k, v):
        b, t, d = q.shape
        h = self.heads
        q, k, v = (x.reshape(b, t, h, d // h).transpose(1, 2) for x in (q, k, v))
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1)
        self.probs = p
        return (p @ v).transpose(1, 2).reshape(b, t, d)


class SfpModel(nn.Module):
    """The network of a model file; forward(x [B, C, H, W] or [B, F]) -> logits."""

    def __init__(self, text, init="sfp", seed=None):
        super().__init__()
        (self.inp, self.in_shape), layers = parse(text)
        self.order = topo(self.inp, layers)
        shapes = {self.inp: self.in_shape}
        self.mods = nn.ModuleDict()
        self.extra = nn.ParameterDict()
        for l in self.order:
            k, o, s = l["kind"], l["opt"], shapes[l["ins"][0]]
            n = l["name"]
            if k == "dense":
                per_token = len(s) == 2
                fin = s[-1] if per_token else math.prod(s)
                self.mods[n] = nn.Linear(fin, o["out"], bias=bool(o["bias"]))
                out = (s[0], o["out"]) if per_token else (o["out"],)
            elif k == "conv":
                self.mods[n] = nn.Conv2d(s[0], o["out"], o["k"], o["stride"], o["pad"],
                                         bias=bool(o["bias"]))
                hw = [(d + 2 * o["pad"] - o["k"]) // o["stride"] + 1 for d in s[1:]]
                out = (o["out"], *hw)
            elif k == "patch":
                p = o["patch"]
                self.mods[n] = nn.Conv2d(s[0], o["out"], p, p, bias=bool(o["bias"]))
                out = ((s[1] // p) * (s[2] // p), o["out"])
            elif k == "maxpool":
                out = (s[0], s[1] // 2, s[2] // 2)
            elif k == "avgpool":
                out = (s[0],)
            elif k == "batchnorm":
                self.mods[n] = (nn.BatchNorm2d if len(s) == 3 else nn.BatchNorm1d)(s[0])
                out = s
            elif k == "layernorm":
                self.mods[n] = nn.LayerNorm(s[-1])
                out = s
            elif k == "attention":
                self.mods[n] = Attention(o["heads"])
                out = s
            elif k == "cls":
                self.extra[n] = nn.Parameter(torch.zeros(s[1]))
                out = (s[0] + 1, s[1])
            elif k == "posembed":
                self.extra[n] = nn.Parameter(torch.zeros(*s))
                out = s
            elif k == "token":
                out = (s[1],)
            else:  # relu, gelu, add
                out = s
            shapes[n] = out
        self.shapes = shapes
        self.output = self.order[-1]["name"]
        if init == "sfp":
            self.init_like_sfp(seed)
        # sfp-train's BatchNorm in evaluation: running statistics (also when
        # the net is in training mode for a test that compares layers)

    def init_like_sfp(self, seed=None):
        """sfp-train's distributions: He-normal (fan in) weights and zero
        biases, norms 1 and 0, class token and positions N(0, 0.02)."""
        g = torch.Generator()
        if seed is not None:
            g.manual_seed(seed)
        with torch.no_grad():
            for m in self.mods.values():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    fan = m.weight[0].numel()
                    m.weight.normal_(0, math.sqrt(2.0 / fan), generator=g)
                    if m.bias is not None:
                        m.bias.zero_()
            for p in self.extra.values():
                p.normal_(0, 0.02, generator=g)

    def decayed(self):
        """The parameters sfp-train decays: conv, dense and patch weights."""
        return [m.weight for m in self.mods.values() if isinstance(m, (nn.Linear, nn.Conv2d))]

    def forward(self, x):
        v = {self.inp: x.reshape(x.shape[0], *self.in_shape)}
        for l in self.order:
            k, n, o = l["kind"], l["name"], l["opt"]
            a = v[l["ins"][0]]
            if k == "dense":
                y = self.mods[n](a if a.dim() == 3 else a.flatten(1))
            elif k in ("conv", "batchnorm", "layernorm"):
                y = self.mods[n](a)
            elif k == "patch":
                y = self.mods[n](a).flatten(2).transpose(1, 2)
            elif k == "maxpool":
                y = F.max_pool2d(a, 2)
            elif k == "avgpool":
                y = a.mean(dim=(2, 3))
            elif k == "relu":
                y = F.relu(a)
            elif k == "gelu":
                y = F.gelu(a)
            elif k == "add":
                y = a + v[l["ins"][1]]
            elif k == "attention":
                y = self.mods[n](a, v[l["ins"][1]], v[l["ins"][2]])
            elif k == "cls":
                y = torch.cat([self.extra[n].expand(a.shape[0], 1, -1), a], dim=1)
            elif k == "posembed":
                y = a + self.extra[n]
            elif k == "token":
                y = a[:, o["index"]]
            if l["relu"]:
                y = F.relu(y)
            v[n] = y
        self.values = v
        return v[self.output]

    def load_flat(self, master, buffers):
        """sfp-train's flat weights and running statistics (as in its
        checkpoints) into this network; ValueError if the sizes differ."""
        po = bo = 0
        with torch.no_grad():
            for l in self.order:
                n, m = l["name"], self.mods[l["name"]] if l["name"] in self.mods else None
                params = [self.extra[n]] if n in self.extra else \
                    [p for p in (getattr(m, "weight", None), getattr(m, "bias", None))
                     if p is not None] if m is not None else []
                for p in params:
                    if po + p.numel() > len(master):
                        raise ValueError("fewer weights than the model has")
                    p.copy_(torch.from_numpy(master[po:po + p.numel()]).view_as(p))
                    po += p.numel()
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    C = m.num_features
                    if bo + 2 * C > len(buffers):
                        raise ValueError("fewer running statistics than the model has")
                    m.running_mean.copy_(torch.from_numpy(buffers[bo:bo + C]))
                    m.running_var.copy_(torch.from_numpy(buffers[bo + C:bo + 2 * C]))
                    bo += 2 * C
        if po != len(master) or bo != len(buffers):
            raise ValueError("%d weights and %d statistics, the model has %d and %d"
                             % (len(master), len(buffers), po, bo))

    def param_of(self, layer, which):
        """sfp-train's tensor LAYER.w / LAYER.b as the PyTorch parameter."""
        if layer in self.extra:
            return self.extra[layer]
        m = self.mods[layer]
        return m.weight if which == "w" else m.bias
