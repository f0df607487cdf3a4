"""Python half of test_torch_native_interop.sh (run by /usr/bin/python3 with torch 1.13).

  interop.py check-cpp OPT A.pt B.pt    A, B from the C++ driver: A loads into torch.nn and
                                        torch.optim (weights_only=True, strict); one more step
                                        in Python equals the C++ step saved in B
  interop.py make OPT STEPS P.pt Q.pt   Python trains and saves P (flytekit layout), steps, Q
  interop.py same X.pt Y.pt             every tensor and value of X equals Y's (exactly)
  interop.py close X.pt Y.pt            the same with a float tolerance
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
import weights_only  # noqa: E402

RTOL, ATOL = 1e-5, 1e-7


def model():
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                               torch.nn.Linear(8, 2))


def optimizer(kind, m, lr0, lr1):
    g0 = list(m[0].parameters())
    g1 = [p for k in range(1, len(m)) for p in m[k].parameters()]
    if kind == "sgd":
        return torch.optim.SGD([{"params": g0, "lr": lr0, "momentum": 0.9, "weight_decay": 0.01},
                                {"params": g1, "lr": lr1, "momentum": 0.5, "nesterov": True}],
                               lr=lr0)
    if kind in ("adam", "amsgrad"):
        ams = kind == "amsgrad"
        return torch.optim.Adam([{"params": g0, "lr": lr0, "amsgrad": ams, "weight_decay": 0.001},
                                 {"params": g1, "lr": lr1, "betas": (0.8, 0.99), "amsgrad": ams}],
                                lr=lr0)
    if kind == "adamw":
        return torch.optim.AdamW([{"params": g0, "lr": lr0},
                                  {"params": g1, "lr": lr1, "weight_decay": 0.05}], lr=lr0)
    raise SystemExit("unknown optimizer " + kind)


def step(m, opt):
    x = torch.sin(torch.arange(32, dtype=torch.float32).reshape(8, 4) * 0.37)
    y = torch.cos(torch.arange(16, dtype=torch.float32).reshape(8, 2) * 0.11)
    opt.zero_grad()
    torch.nn.functional.mse_loss(m(x), y).backward()
    opt.step()


def compare(a, b, where, exact):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, (where, a.dtype, b.dtype, a.shape, b.shape)
        if exact:
            assert torch.equal(a, b), (where, a, b)
        else:
            assert torch.allclose(a.double(), b.double(), rtol=RTOL, atol=ATOL), (where, a, b)
    elif isinstance(a, dict):
        # A param group's key order is Python's construction order (the keys a script passed
        # in its group dict first, then the optimizer's defaults); nothing depends on it.
        if where.endswith("]") and ".param_groups[" in where:
            assert isinstance(b, dict) and sorted(a) == sorted(b), (where, list(a), list(b))
        else:
            assert isinstance(b, dict) and list(a.keys()) == list(b.keys()), (where, list(a), list(b))
        for k in a:
            compare(a[k], b[k], f"{where}.{k}", exact)
    elif isinstance(a, (list, tuple)):
        assert type(a) == type(b) and len(a) == len(b), (where, a, b)
        for k, (x, y) in enumerate(zip(a, b)):
            compare(x, y, f"{where}[{k}]", exact)
    elif isinstance(a, (int, float)) and not isinstance(a, bool):
        # Python's defaults are often ints (weight_decay=0) where C++ options are doubles.
        assert isinstance(b, (int, float)) and not isinstance(b, bool), (where, a, b)
        assert a == b if exact else math.isclose(a, b, rel_tol=1e-12), (where, a, b)
    else:
        assert a == b and type(a) == type(b), (where, a, b)


def load(path):
    # torch.load(path, weights_only=True); torch 1.13 cannot read a float that way, so for
    # that gap alone weights_only.py applies 1.13's own opcode set and allow-list + BINFLOAT.
    return weights_only.load(path)


def check_cpp(kind, a_path, b_path):
    a, b = load(a_path), load(b_path)
    assert list(a.keys()) == ["module_state_dict", "optimizer_state_dict", "epoch", "optimizer",
                              "dropout", "layers"], list(a.keys())
    assert (a["epoch"], a["optimizer"], a["dropout"], a["layers"]) == (3, kind, 0.25, [4, 8, 2])
    m = model()
    assert list(m.state_dict().keys()) == list(a["module_state_dict"].keys())
    m.load_state_dict(a["module_state_dict"], strict=True)
    opt = optimizer(kind, m, 9.0, 9.0)
    opt.load_state_dict(a["optimizer_state_dict"])
    # The state_dicts Python produces from what it loaded equal the file's, key by key.
    compare(m.state_dict(), a["module_state_dict"], "module", exact=True)
    compare(opt.state_dict(), a["optimizer_state_dict"], "optimizer", exact=True)
    if kind != "sgd":
        assert all(s["step"].dtype == torch.float32 and s["step"].dim() == 0 and
                   s["step"].item() == 3 for s in a["optimizer_state_dict"]["state"].values())
    else:
        assert all("momentum_buffer" in s for s in a["optimizer_state_dict"]["state"].values())
    assert len(a["optimizer_state_dict"]["state"]) == 6
    step(m, opt)
    compare(m.state_dict(), b["module_state_dict"], "module after a step", exact=False)
    compare(opt.state_dict(), b["optimizer_state_dict"], "optimizer after a step", exact=False)


def make(kind, steps, p_path, q_path):
    torch.manual_seed(7)
    m = model()
    opt = optimizer(kind, m, 0.05, 0.02)
    for _ in range(steps):
        step(m, opt)
    torch.save({"module_state_dict": m.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "epoch": steps, "note": "from python"}, p_path)
    step(m, opt)
    torch.save({"module_state_dict": m.state_dict(), "optimizer_state_dict": opt.state_dict()},
               q_path)


def main():
    cmd = sys.argv[1]
    if cmd == "check-cpp":
        check_cpp(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "make":
        make(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif cmd in ("same", "close"):
        a, b = load(sys.argv[2]), load(sys.argv[3])
        compare(a, b, "root", exact=cmd == "same")
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
