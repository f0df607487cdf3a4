#!/usr/bin/python3
"""Checks ckpt against the interop corpus (make_corpus.py): every file inspects correctly, and
round-trips through `ckpt decode` / `ckpt encode` back into Python with equal tensors, the same
views and shared storages, the same Python values.

Files ckpt writes are loaded with torch.load(weights_only=True). torch 1.13's weights_only
unpickler lacks BINFLOAT, set and bytes (a float anywhere, e.g. an optimizer's lr, fails even for
files Python itself wrote), so for exactly those failures weights_only.py falls back to torch
1.13's own opcode set and allow-list plus those three (see there); state_dicts must load with
the real weights_only=True.

Usage: /usr/bin/python3 check_corpus.py CKPT CORPUS_DIR WORK_DIR
"""
import collections
import json
import math
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import weights_only  # noqa: E402

ckpt, corpus_dir, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
corpus = json.load(open(os.path.join(corpus_dir, "corpus.json")))
failures = []


def safe_load(path, require_weights_only=False):
    return weights_only.load(path, require_real=require_weights_only)


def run(*args, ok=True):
    p = subprocess.run([ckpt, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise AssertionError(f"ckpt {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p


def flatten(obj, prefix=""):
    """(dotted name, tensor) in pickle order, as ckpt names them."""
    def child(k):
        return f"{prefix}.{k}" if prefix else str(k)
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, child(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from flatten(v, child(i))


def tensors_equal(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() == 0:
        return True
    if a.dtype.is_complex:
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    if a.dtype.is_floating_point:
        return bool(torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
                    and torch.equal(a.signbit(), b.signbit()))
    return bool(torch.equal(a, b))


def deep_equal(a, b, where):
    if type(a) is not type(b):
        return f"{where}: type {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        if not tensors_equal(a, b):
            return f"{where}: tensor values differ"
        if a.stride() != b.stride() or a.storage_offset() != b.storage_offset():
            return f"{where}: view layout differs ({a.stride()}/{a.storage_offset()} vs {b.stride()}/{b.storage_offset()})"
        if a.requires_grad != b.requires_grad:
            return f"{where}: requires_grad differs"
        if a.storage().size() != b.storage().size():
            return f"{where}: storage size differs"
        return None
    if isinstance(a, dict):
        if list(a.keys()) != list(b.keys()):
            return f"{where}: keys {list(a.keys())} != {list(b.keys())}"
        if getattr(a, "_metadata", None) != getattr(b, "_metadata", None):
            return f"{where}: _metadata differs"
        for k in a:
            r = deep_equal(a[k], b[k], f"{where}.{k}")
            if r:
                return r
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: length differs"
        for i, (x, y) in enumerate(zip(a, b)):
            r = deep_equal(x, y, f"{where}.{i}")
            if r:
                return r
        return None
    if isinstance(a, float) and math.isnan(a):
        return None if math.isnan(b) else f"{where}: {a!r} != {b!r}"
    return None if a == b else f"{where}: {a!r} != {b!r}"


def sharing(obj):
    """Partition of tensor names by the storage they share."""
    groups = collections.defaultdict(list)
    for name, t in flatten(obj):
        if t.numel():
            groups[(t.storage().data_ptr(), t.storage().size())].append(name)
    return sorted(sorted(g) for g in groups.values())


def same(orig, new, where):
    r = deep_equal(orig, new, where)
    if r is None and sharing(orig) != sharing(new):
        r = f"{where}: shared storages differ: {sharing(orig)} vs {sharing(new)}"
    return r


def check_inspect(name, obj, info):
    path = os.path.join(corpus_dir, name)
    s = json.loads(run("inspect", "--json", path).stdout)
    want = [(n, str(t.dtype).replace("torch.", ""), list(t.shape), list(t.stride()), t.storage_offset())
            for n, t in flatten(obj)]
    got = [(t["name"], t["dtype"], t["shape"], t["stride"], t["offset"]) for t in s["tensors"]]
    if got != want:
        for w, g in zip(want, got):
            if w != g:
                return f"first difference: want {w}, got {g}"
        return f"tensor lists differ in length: want {len(want)}, got {len(got)}"
    if s["kind"] != info["kind"]:
        return f"kind {s['kind']} != {info['kind']}"
    if s["unsafe_globals"]:
        return f"unexpected unsafe globals {s['unsafe_globals']}"
    if "hyperparameters" in info and s["hyperparameters"] != info["hyperparameters"]:
        return f"hyperparameters {s['hyperparameters']} != {info['hyperparameters']}"
    if "optimizer" in info and (s["optimizer"] or {}).get("kind") != info["optimizer"]:
        return f"optimizer kind {(s['optimizer'] or {}).get('kind')} != {info['optimizer']}"
    if s["kind"] in ("state_dict", "pytorch_checkpoint"):
        prefix = "module_state_dict." if s["kind"] == "pytorch_checkpoint" else ""
        params = sum(t.numel() for n, t in flatten(obj) if n.startswith(prefix))
        if s["parameter_count"] != params:
            return f"parameter_count {s['parameter_count']} != {params}"
    return None


def check_roundtrip(name, obj, info):
    src = os.path.join(corpus_dir, name)
    stem = name[:-3]
    d = os.path.join(work, stem)
    os.makedirs(d, exist_ok=True)
    if info["kind"] == "pytorch_checkpoint":
        # decode -> parts -> encode -> the same flat dict.
        run("decode", src, "-o", d, "--force")
        args = ["encode", "-o", os.path.join(d, "again.pt")]
        if "module_state_dict" in obj:
            args += ["--module", os.path.join(d, "module_state_dict.pt")]
            r = same(obj["module_state_dict"], safe_load(os.path.join(d, "module_state_dict.pt"), True), "module")
            if r:
                return "decode: " + r
        if "optimizer_state_dict" in obj:
            args += ["--optimizer", os.path.join(d, "optimizer_state_dict.pt")]
        if os.path.exists(os.path.join(d, "hyperparameters.json")):
            args += ["--hparams", os.path.join(d, "hyperparameters.json")]
        run(*args)
        return same(obj, safe_load(os.path.join(d, "again.pt")), stem)
    # A state_dict or any dict: encode as the module part, decode it back out.
    opt = info["kind"] == "optimizer_state_dict"
    enc = os.path.join(d, "encoded.pt")
    run("encode", "-o", enc, "--optimizer" if opt else "--module", src, "--hparam", "epochs=2")
    loaded = safe_load(enc)
    key = "optimizer_state_dict" if opt else "module_state_dict"
    want_keys = ["epochs", key] if opt else [key, "epochs"]  # flytekit's order: module, hparams, optimizer
    if list(loaded.keys()) != want_keys:
        return f"encode: keys {list(loaded.keys())} != {want_keys}"
    r = same(obj, loaded[key], stem + "." + key)
    if r:
        return "encode: " + r
    if loaded["epochs"] != 2:
        return "encode: hyperparameter epochs lost"
    run("decode", enc, "-o", d, "--force")
    part = os.path.join(d, key + ".pt")
    r = same(obj, safe_load(part, require_weights_only=info["kind"] == "state_dict"), stem)
    return "decode: " + r if r else None


for name, info in sorted(corpus.items()):
    obj = torch.load(os.path.join(corpus_dir, name))  # our own corpus: trusted
    for what, fn in (("inspect", check_inspect), ("roundtrip", check_roundtrip)):
        try:
            r = fn(name, obj, info)
        except Exception as e:  # noqa: BLE001
            r = f"{type(e).__name__}: {e}"
        status = "ok" if r is None else "FAIL " + r
        print(f"{name:28s} {what:9s} {status}")
        if r is not None:
            failures.append((name, what, r))

print("loaded ckpt-written files with:", dict(weights_only.used))
if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print(f"all {len(corpus)} corpus files inspect and round-trip")
