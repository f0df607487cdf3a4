#!/usr/bin/env python3
"""A stand-in for a training job, for `ckpt run` tests.

Each step writes a payload whose content is derived from the step number, in chunks, to
$CKPT_DIR/.payload.tmp, renames it to payload-<step>.bin, then replaces $CKPT_DIR/state.txt
("<step> <KiB> payload-<step>.bin", also through a temporary file and a rename) and only then
deletes older payloads: the directory holds a complete state at every instant, as a careful
trainer's does (torch.save to a temporary name, then rename). That is what a snapshot can
promise to capture; a program that rewrites files in place and is descheduled mid-write
leaves a torn state on disk that no file-level snapshot can tell from a finished one. With
CKPT_RESTORED=1 it resumes from state.txt after checking that the payload matches it (exit 99
if not: a half-written checkpoint was restored). SIGTERM and SIGINT make it finish the step it
is writing (if any), then exit 128+signal; SIGUSR1 is acknowledged on stdout.

Lines on stdout (the tests read them): "start restored=0|1 step=N pid=P", "step N",
"stopped at step N (SIGTERM)", "done at step N", "usr1".

  trainer.py [--steps N] [--step-ms MS] [--payload-kib K] [--ignore-term] [--exit CODE]
  trainer.py --check DIR      exit 0 if DIR holds a consistent state, print its step
"""
import argparse
import hashlib
import os
import signal
import sys
import time

CHUNK = 64 * 1024


def payload(step, kib):
    block = hashlib.sha256(b"step %d" % step).digest() * 32  # 1 KiB
    return block * kib


def read_state(d):
    """(step, consistent) of a checkpoint directory; step 0 when there is none."""
    try:
        with open(os.path.join(d, "state.txt")) as f:
            text = f.read()
    except FileNotFoundError:
        return 0, not any(n.startswith("payload-") for n in os.listdir(d))
    try:
        step, kib, name = text.split()
        step, kib = int(step), int(kib)
        with open(os.path.join(d, name), "rb") as f:
            return step, name == "payload-%d.bin" % step and f.read() == payload(step, kib)
    except (ValueError, FileNotFoundError):
        return -1, False


def replace(d, name, chunks):
    tmp = os.path.join(d, "." + name + ".tmp")
    with open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            f.flush()
    os.replace(tmp, os.path.join(d, name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=0, help="stop after this step (0: run until signalled)")
    ap.add_argument("--step-ms", type=float, default=20)
    ap.add_argument("--payload-kib", type=int, default=256)
    ap.add_argument("--ignore-term", action="store_true", help="ignore SIGTERM (for --kill-after)")
    ap.add_argument("--exit", type=int, default=0, help="exit code after --steps")
    ap.add_argument("--check", metavar="DIR")
    args = ap.parse_args()

    if args.check:
        step, ok = read_state(args.check)
        print(step)
        return 0 if ok else 99

    d = os.environ["CKPT_DIR"]
    restored = os.environ.get("CKPT_RESTORED", "0")
    step = 0
    if restored == "1":
        step, ok = read_state(d)
        if not ok:
            print("inconsistent state restored (step %d)" % step, flush=True)
            return 99
    stop = []
    handler = lambda sig, frame: stop.append(sig)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if args.ignore_term else handler)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGUSR1, lambda sig, frame: print("usr1", flush=True))
    # Printed once the handlers are in place: from here on a signal is never fatal.
    print("start restored=%s step=%d pid=%d" % (restored, step, os.getpid()), flush=True)

    while True:
        if stop:
            print("stopped at step %d (%s)" % (step, signal.Signals(stop[0]).name), flush=True)
            return 128 + stop[0]
        step += 1
        data = payload(step, args.payload_kib)
        name = "payload-%d.bin" % step
        replace(d, name, (data[off:off + CHUNK] for off in range(0, len(data), CHUNK)))
        replace(d, "state.txt", [b"%d %d %s\n" % (step, args.payload_kib, name.encode())])
        for old in os.listdir(d):
            if old.startswith("payload-") and old != name:
                os.unlink(os.path.join(d, old))
        print("step %d" % step, flush=True)
        if args.steps and step >= args.steps:
            print("done at step %d" % step, flush=True)
            return args.exit
        deadline = time.monotonic() + args.step_ms / 1000
        while not stop and time.monotonic() < deadline:
            time.sleep(min(0.005, max(0, deadline - time.monotonic())))


if __name__ == "__main__":
    sys.exit(main())
