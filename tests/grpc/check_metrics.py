#!/usr/bin/python3
"""Strict checker of the Prometheus text exposition format 0.0.4 as sfpd
writes it, plus sfp's naming rules (docs/OPERATIONS.md). Used next to
`promtool check metrics` and instead of it where promtool is missing.

  check_metrics.py FILE [DOC]   exit 0 if valid (and, with DOC, every metric
                                family is named in DOC), 1 with the problems
"""
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SUFFIXES = ("_bucket", "_sum", "_count", "_total")
ALLOWED_LABELS = {"job", "tier", "status", "le", "version", "peer", "node"}


def parse_labels(s, where, errs):
    labels = {}
    i = 0
    while i < len(s):
        m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", s[i:])
        if not m:
            errs.append("%s: bad label syntax at %r" % (where, s[i:]))
            return labels
        name = m.group(1)
        i += m.end()
        val = []
        while True:
            if i >= len(s):
                errs.append("%s: unterminated label value" % where)
                return labels
            c = s[i]
            if c == "\\":
                if i + 1 >= len(s) or s[i + 1] not in "\\\"n":
                    errs.append("%s: bad escape in label value" % where)
                    return labels
                val.append({"n": "\n"}.get(s[i + 1], s[i + 1]))
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                errs.append("%s: newline in label value" % where)
                return labels
            else:
                val.append(c)
                i += 1
        if name in labels:
            errs.append("%s: duplicate label %s" % (where, name))
        labels[name] = "".join(val)
        if i < len(s):
            if s[i] != ",":
                errs.append("%s: expected ',' between labels" % where)
                return labels
            i += 1
    return labels


def parse_value(v, where, errs):
    if v in ("+Inf", "-Inf", "NaN"):
        return float(v.replace("Inf", "inf").replace("NaN", "nan"))
    try:
        return float(v)
    except ValueError:
        errs.append("%s: bad value %r" % (where, v))
        return 0.0


def family_of(name, types):
    if name in types:
        return name
    for suf in SUFFIXES:
        if name.endswith(suf) and name[:-len(suf)] in types:
            return name[:-len(suf)]
    return None


def check(text):
    errs = []
    if not text.endswith("\n"):
        errs.append("output does not end with a newline")
    types, helps, seen_series = {}, {}, set()
    order, closed = [], set()
    current = None
    samples = {}
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d" % n
        if line == "":
            errs.append("%s: empty line" % where)
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.match(name):
                    errs.append("%s: bad metric name %r" % (where, name))
                if parts[1] == "HELP":
                    if name in helps:
                        errs.append("%s: second HELP for %s" % (where, name))
                    helps[name] = parts[3] if len(parts) > 3 else ""
                else:
                    t = parts[3] if len(parts) > 3 else ""
                    if t not in TYPES:
                        errs.append("%s: bad type %r" % (where, t))
                    if name in types:
                        errs.append("%s: second TYPE for %s" % (where, name))
                    if name in samples:
                        errs.append("%s: TYPE after samples of %s" % (where, name))
                    types[name] = t
                if current != name:
                    if name in closed:
                        errs.append("%s: family %s is not contiguous" % (where, name))
                    if current:
                        closed.add(current)
                    current = name
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( (-?\d+))?$", line)
        if not m:
            errs.append("%s: bad sample line %r" % (where, line))
            continue
        name, labels = m.group(1), parse_labels(m.group(3) or "", where, errs)
        value = parse_value(m.group(4), where, errs)
        fam = family_of(name, types)
        if fam is None:
            errs.append("%s: sample %s without TYPE" % (where, name))
            fam = name
        if fam != current:
            if fam in closed:
                errs.append("%s: family %s is not contiguous" % (where, fam))
            if current:
                closed.add(current)
            current = fam
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            errs.append("%s: duplicate series %s%s" % (where, name, labels))
        seen_series.add(key)
        samples.setdefault(fam, []).append((name, labels, value))
        for l in labels:
            if l not in ALLOWED_LABELS:
                errs.append("%s: label %r not allowed (aggregates only, no per-tensor labels)"
                            % (where, l))
        if not (fam.startswith("sfp_") or fam.startswith("process_")):
            errs.append("%s: %s: names are sfp_* (or process_*)" % (where, fam))
        if fam.startswith("sfp_") and re.search(r"_(bits|milliseconds|microseconds|kib|mib)(_|$)", fam):
            errs.append("%s: %s: use base units (bytes, seconds)" % (where, fam))
    for fam, t in types.items():
        if fam not in helps:
            errs.append("%s: no HELP" % fam)
        s = samples.get(fam, [])
        if t == "counter":
            if not fam.endswith("_total"):
                errs.append("%s: counter without _total suffix" % fam)
            for name, labels, v in s:
                if v < 0 or math.isnan(v):
                    errs.append("%s: negative counter" % fam)
        elif fam.endswith("_total"):
            errs.append("%s: only counters end in _total" % fam)
        if t == "histogram":
            buckets = [(l.get("le"), v) for n_, l, v in s if n_ == fam + "_bucket"]
            count = [v for n_, l, v in s if n_ == fam + "_count"]
            if not buckets or buckets[-1][0] != "+Inf":
                errs.append("%s: histogram without a final +Inf bucket" % fam)
            if len(count) != 1 or not [1 for n_, l, v in s if n_ == fam + "_sum"]:
                errs.append("%s: histogram needs _sum and _count" % fam)
            prev_le, prev_v = -math.inf, 0
            for le, v in buckets:
                lv = float(le.replace("Inf", "inf")) if le else math.nan
                if not lv > prev_le:
                    errs.append("%s: bucket bounds not increasing at le=%s" % (fam, le))
                if v < prev_v:
                    errs.append("%s: buckets not cumulative at le=%s" % (fam, le))
                prev_le, prev_v = lv, v
            if buckets and count and buckets[-1][1] != count[0]:
                errs.append("%s: +Inf bucket %g != _count %g" % (fam, buckets[-1][1], count[0]))
    return errs


def main():
    with open(sys.argv[1]) as f:
        text = f.read()
    errs = check(text)
    if len(sys.argv) > 2:
        # every family must be documented (docs/OPERATIONS.md)
        with open(sys.argv[2]) as f:
            doc = f.read()
        for line in text.split("\n"):
            if line.startswith("# TYPE "):
                fam = line.split(" ")[2]
                if "`%s`" % fam not in doc and "`%s{" % fam not in doc:
                    errs.append("%s is not documented in %s" % (fam, sys.argv[2]))
    for e in errs[:50]:
        print(e)
    if errs:
        print("%d problems" % len(errs))
        sys.exit(1)
    print("ok: %d families" % text.count("# TYPE "))


if __name__ == "__main__":
    main()
