"""torch.load(path, weights_only=True) for the tests, on Debian's torch 1.13.

torch 1.13's weights-only unpickler (torch/_weights_only_unpickler.py) implements no opcode
for a Python float (BINFLOAT) and does not admit the globals builtins.set, builtins.frozenset
and _codecs.encode (bytes), which torch >= 2's weights-only unpickler does. So any file with a
float in it (an optimizer's lr, a hyperparameter) fails there, even one Python itself wrote.

load(path) first calls the real torch.load(path, weights_only=True). Only when that fails for
exactly one of those known gaps does it load with an emulation that is no more permissive
than torch 1.13's own unpickler plus those gaps:
- the pickle is scanned first (pickletools, nothing executed): every opcode must be one torch
  1.13's weights-only unpickler implements (read from that module) or BINFLOAT;
- globals resolve only through torch 1.13's own allow-list (_get_allowed_globals(), storage
  classes included) plus builtins.set, builtins.frozenset and _codecs.encode.
Which loader was used is counted in `used`, so callers can report or require it.
"""
import collections
import io
import pickle
import pickletools
import re

import torch
import torch._weights_only_unpickler as _wou

used = collections.Counter()

OPCODES = {name for name in dir(_wou)
           if name.isupper() and isinstance(getattr(_wou, name), bytes) and len(getattr(_wou, name)) == 1}
OPCODES.add("BINFLOAT")
EXTRA_GLOBALS = {"builtins.set": set, "builtins.frozenset": frozenset, "_codecs.encode": __import__("_codecs").encode}
# The messages torch 1.13 gives for those gaps and nothing else.
_KNOWN_GAP = re.compile(r"Unsupported operand 71\b|Unsupported class (builtins\.set|builtins\.frozenset|_codecs\.encode)\b")


class EmulatedUnpickler(pickle.Unpickler):
    def __init__(self, file, **kw):
        data = file.read()
        for op, _arg, pos in pickletools.genops(data):
            if op.name not in OPCODES:
                raise pickle.UnpicklingError(f"opcode {op.name} at {pos} is outside torch's weights_only set")
        super().__init__(io.BytesIO(data), **kw)

    def find_class(self, module, name):
        full = f"{module}.{name}"
        allowed = _wou._get_allowed_globals()
        if full in allowed:
            return allowed[full]
        if full in EXTRA_GLOBALS:
            return EXTRA_GLOBALS[full]
        raise pickle.UnpicklingError(f"global {full} is not in the weights_only allow-list")


class _Module:  # what torch.load expects of a pickle_module
    Unpickler = EmulatedUnpickler
    load = pickle.load


def load(path, require_real=False):
    """Loads like torch.load(path, weights_only=True); see the module comment."""
    try:
        obj = torch.load(path, weights_only=True)
        used["weights_only=True"] += 1
        return obj
    except Exception as e:  # noqa: BLE001
        if require_real or not _KNOWN_GAP.search(str(e)):
            raise AssertionError(f"{path} does not load with weights_only=True: {e}") from None
    obj = torch.load(path, pickle_module=_Module)
    used["weights_only (1.13 + BINFLOAT/set/bytes)"] += 1
    return obj
