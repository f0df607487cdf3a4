#!/usr/bin/python3
"""flytekit's SyncCheckpoint on s3://, for layout tests. flytekit (and s3fs) cannot be
installed here, so this mirrors what flytekit/core/checkpointer.py does through fsspec's
S3 filesystem: save(dir) puts every file at <dest>/<relative path> (no directory markers,
no manifest), save(file) puts <dest>/<name>, write(bytes) puts <dest>/_dst_cp, restore gets
every key below the source prefix into the target, read() returns the single object's bytes
or fails with "Expected exactly one checkpoint - found N". Objects go through tests/s3/s3tool.py.

  flytekit_s3_checkpoint.py save DEST SRC | write DEST TEXT | restore SRC DIR | read SRC
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s3tool  # noqa: E402


def main():
    cmd, uri = sys.argv[1], sys.argv[2].rstrip("/")
    s3 = s3tool.S3()
    bucket, prefix = s3tool.split_uri(uri + "/")
    if cmd == "save":
        src = sys.argv[3]
        if os.path.isdir(src):
            for root, _, files in os.walk(src):
                for f in files:
                    rel = os.path.relpath(os.path.join(root, f), src)
                    with open(os.path.join(root, f), "rb") as fh:
                        s3.check("put", *s3.request("PUT", bucket, prefix + rel, body=fh.read()))
        else:
            with open(src, "rb") as fh:
                s3.check("put", *s3.request("PUT", bucket, prefix + os.path.basename(src), body=fh.read()))
    elif cmd == "write":
        s3.check("put", *s3.request("PUT", bucket, prefix + "_dst_cp", body=sys.argv[3].encode()))
    elif cmd in ("restore", "read"):
        keys = s3.list_keys(bucket, prefix)
        if not keys:
            sys.exit("FlyteDataNotFoundException: nothing at " + uri)
        if cmd == "read":
            if len(keys) > 1:
                sys.exit(f"ValueError: Expected exactly one checkpoint - found {len(keys)}")
            sys.stdout.buffer.write(s3.check("get", *s3.request("GET", bucket, keys[0])))
            return
        for k in keys:
            dest = os.path.join(sys.argv[3], k[len(prefix):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as fh:
                fh.write(s3.check("get", *s3.request("GET", bucket, k)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
