#!/usr/bin/python3
"""Writes the interop corpus with Debian's torch (1.13): files as Python's torch.save writes
them, plus corpus.json describing each (kind, flytekit hyperparameters, optimizer class).

Usage: /usr/bin/python3 make_corpus.py OUTDIR
"""
import collections
import dataclasses
import json
import os
import sys
import typing

import torch
import torch.nn as nn

torch.manual_seed(0)
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
corpus = {}


def save(name, obj, **info):
    torch.save(obj, os.path.join(out, name + ".pt"))
    corpus[name + ".pt"] = info


def step(model, opt, inputs):
    for _ in range(2):
        opt.zero_grad()
        y = model(*inputs)
        y = y[0] if isinstance(y, tuple) else y
        y.float().pow(2).mean().backward()
        opt.step()


# Module state_dicts.
modules = {
    "linear": (nn.Linear(16, 8), (torch.randn(4, 16),)),
    "conv": (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv1d(4, 2, 1) if False else nn.Conv2d(4, 2, 1)),
             (torch.randn(2, 3, 8, 8),)),
    "batchnorm": (nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5)), (torch.randn(4, 6),)),
    "embedding": (nn.Embedding(20, 6), (torch.tensor([1, 2, 3]),)),
    "lstm": (nn.LSTM(5, 7, num_layers=2), (torch.randn(3, 2, 5),)),
    "transformer": (nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16), (torch.randn(3, 2, 8),)),
}
for name, (m, inputs) in modules.items():
    m(*inputs)  # batchnorm updates running stats
    save("sd_" + name, m.state_dict(), kind="state_dict")

# Optimizer state_dicts after real steps.
optimizers = {
    "sgd_momentum": ("SGD", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
    "adam": ("Adam", lambda p: torch.optim.Adam(p, lr=1e-3)),
    "adamw": ("AdamW", lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01)),
    "rmsprop": ("RMSprop", lambda p: torch.optim.RMSprop(p, lr=1e-2, momentum=0.5, centered=True)),
    # Told apart from AdamW by the order of its defaults, not by a nonzero weight decay.
    "adam_wd": ("Adam", lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=0.1, amsgrad=True)),
    "adamax": ("Adamax", lambda p: torch.optim.Adamax(p, lr=1e-2)),
    "radam": ("RAdam", lambda p: torch.optim.RAdam(p, lr=1e-2)),
    "nadam": ("NAdam", lambda p: torch.optim.NAdam(p, lr=1e-2)),
    "adagrad": ("Adagrad", lambda p: torch.optim.Adagrad(p, lr=1e-2)),
}
for name, (cls, make) in optimizers.items():
    m = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2))
    opt = make(m.parameters())
    step(m, opt, (torch.randn(3, 6),))
    save("opt_" + name, opt.state_dict(), kind="optimizer_state_dict", optimizer=cls)
    save("sd_for_" + name, m.state_dict(), kind="state_dict")

# Every dtype torch 1.13 saves.
dtypes = {}
for dt in [torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.complex64, torch.complex128,
           torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool]:
    if dt.is_complex:
        t = torch.randn(3, 4, dtype=dt)
    elif dt.is_floating_point:
        t = torch.randn(3, 4).to(dt)
    elif dt == torch.bool:
        t = torch.rand(3, 4) > 0.5
    else:
        t = torch.randint(0, 100, (3, 4)).to(dt)
    dtypes[str(dt).replace("torch.", "")] = t
dtypes["float32_special"] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-45])
save("dtypes", dtypes, kind="state_dict")  # a dict of tensors only

# Views, shared and tied storages, non-contiguous, 0-d, empty, parameters.
base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
emb = nn.Embedding(10, 4)
head = nn.Linear(4, 10, bias=False)
head.weight = emb.weight  # tied
tied = nn.ModuleDict({"emb": emb, "head": head})
save("views", collections.OrderedDict([
    ("base", base),
    ("row", base[1]),
    ("col", base[:, 2]),
    ("transposed", base.t()),
    ("strided", base[::2, 1::3]),
    ("narrow", base.narrow(1, 2, 3)),
    ("expanded", torch.ones(1, 3).expand(4, 3)),
    ("scalar", torch.tensor(3.5)),
    ("scalar_int", torch.tensor(7)),
    ("empty", torch.empty(0)),
    ("empty_2d", torch.zeros(3, 0)),
    ("param", nn.Parameter(torch.randn(2, 2))),
    ("param_frozen", nn.Parameter(torch.randn(2), requires_grad=False)),
]), kind="state_dict")
save("sd_tied", tied.state_dict(), kind="state_dict")

# Plain Python data around tensors.
save("python_values", {
    "none": None, "true": True, "false": False,
    "small": 7, "neg": -3, "i16": 40000, "i32": -2_000_000_000, "i64": 2**40, "big": 2**100, "negbig": -(2**70),
    "float": 0.1, "nan_free": 1e300,
    "str": "héllo ✓", "empty_str": "", "bytes": b"\x00\x01\xffabc", "empty_bytes": b"",
    "set": {1, 2, 3}, "frozen": frozenset({"a"}), "tuple": (1, "two", 3.0), "empty_tuple": (),
    "nested": {"a": [1, {"b": (torch.ones(2), None)}], "c": collections.OrderedDict(x=torch.zeros(1))},
    "int_keys": {0: torch.ones(1), 1: "one"},
    "list": [torch.arange(3), [torch.arange(2)], []],
}, kind="dict")


# flytekit-style checkpoints: torch.save of ONE flat dict, as PyTorchCheckpointTransformer.to_literal
# builds it (fields in order module, hyperparameters, optimizer; falsy parts skipped).
@dataclasses.dataclass
class Hyper:
    epochs: int
    lr: float
    name: str
    layers: typing.List[int]


class HyperTuple(typing.NamedTuple):
    epochs: int
    lr: float
    batch_size: int


def flyte_checkpoint(module=None, hyperparameters=None, optimizer=None):
    to_save = {}
    if module:
        to_save["module_state_dict"] = module.state_dict()
    if hyperparameters:
        if isinstance(hyperparameters, dict):
            to_save.update(hyperparameters)
        elif dataclasses.is_dataclass(hyperparameters):
            to_save.update(dataclasses.asdict(hyperparameters))
        else:
            to_save.update(hyperparameters._asdict())
    if optimizer:
        to_save["optimizer_state_dict"] = optimizer.state_dict()
    return to_save


model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
adam = torch.optim.Adam(model.parameters(), lr=1e-3)
step(model, adam, (torch.randn(5, 16),))
for name, hp in [("dict", {"epochs": 10, "lr": 0.001, "name": "run-1", "betas": [0.9, 0.99]}),
                 ("dataclass", Hyper(epochs=5, lr=0.01, name="dc", layers=[16, 8, 4])),
                 ("namedtuple", HyperTuple(epochs=3, lr=0.5, batch_size=32))]:
    d = hp if isinstance(hp, dict) else (dataclasses.asdict(hp) if dataclasses.is_dataclass(hp) else hp._asdict())
    save("flyte_" + name, flyte_checkpoint(model, hp, adam), kind="pytorch_checkpoint",
         hyperparameters=dict(d), optimizer="Adam")
save("flyte_module_only", flyte_checkpoint(module=model), kind="pytorch_checkpoint", hyperparameters={})
save("flyte_optimizer_only", flyte_checkpoint(optimizer=adam), kind="pytorch_checkpoint", hyperparameters={},
     optimizer="Adam")
save("flyte_hparams_only", flyte_checkpoint(hyperparameters={"seed": 42}), kind="pytorch_checkpoint",
     hyperparameters={"seed": 42})
# Saved to a stream: the archive prefix is "archive/".
import io
buf = io.BytesIO()
torch.save(model.state_dict(), buf)
with open(os.path.join(out, "stream_saved.pt"), "wb") as f:
    f.write(buf.getvalue())
corpus["stream_saved.pt"] = {"kind": "state_dict"}

with open(os.path.join(out, "corpus.json"), "w") as f:
    json.dump(corpus, f, indent=1)
print(len(corpus), "files in", out)
