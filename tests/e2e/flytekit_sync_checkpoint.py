"""flytekit's SyncCheckpoint, local filesystem only, for layout tests.

flytekit is not installable here, so this mirrors the behaviour of
flytekit/core/checkpointer.py (v1): save(dir) uploads the directory's contents under the
destination, save(file) to <dest>/<name>, write(bytes) to <dest>/_dst_cp, restore copies the
whole source prefix, read() returns the single entry's bytes or raises.
"""
import os
import shutil
import sys


def save(dest, src):
    os.makedirs(dest, exist_ok=True)
    if os.path.isdir(src):
        shutil.copytree(src, dest, dirs_exist_ok=True)
    else:
        shutil.copy(src, os.path.join(dest, os.path.basename(src)))


def write(dest, data):
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "_dst_cp"), "wb") as f:
        f.write(data)


def restore(src, path):
    shutil.copytree(src, path, dirs_exist_ok=True)
    return path


def read(src, tmp):
    p = restore(src, tmp)
    files = os.listdir(p)
    if len(files) == 0:
        return None
    if len(files) > 1:
        raise ValueError(f"Expected exactly one checkpoint - found {len(files)}")
    with open(os.path.join(p, files[0]), "rb") as f:
        return f.read()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "save":
        save(sys.argv[2], sys.argv[3])
    elif cmd == "write":
        write(sys.argv[2], sys.argv[3].encode())
    elif cmd == "restore":
        restore(sys.argv[2], sys.argv[3])
    elif cmd == "read":
        import tempfile
        with tempfile.TemporaryDirectory() as td:
            sys.stdout.buffer.write(read(sys.argv[2], os.path.join(td, "prev_cp")))
