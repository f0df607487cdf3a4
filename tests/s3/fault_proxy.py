#!/usr/bin/python3
"""A fault-injecting HTTP proxy for the S3 tests (Python stdlib only, loopback only).

Sits between ckpt and radosgw and forwards requests byte for byte (the Host header
included, so SigV4 signatures stay valid), except that on a fraction of requests it
injects one of these faults, at most --max-faults times in all:
  500       answers 500 InternalError without forwarding
  503       answers 503 ServiceUnavailable
  slowdown  answers 503 SlowDown (S3's throttling answer)
  reset     reads the request, then resets the connection (RST) without answering
  truncate  forwards, then sends the headers and only part of the body, and resets
  stall     reads the request and never answers (until --stall-seconds pass)
  stallbody forwards, sends the headers and part of the body, then stops sending
Faults are chosen with a seeded random generator; --methods limits which requests may be
hit (e.g. PUT,POST for uploads, GET for downloads), --match to requests whose target
contains a string. Every request and fault is logged to
--log; --stats FILE holds a JSON count of the faults injected so far, so a test can
check that faults really happened. The chosen port is written to --port-file.
"""
import argparse
import http.client
import json
import os
import random
import socket
import socketserver
import struct
import sys
import threading
import time

ERR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>injected by fault_proxy</Message></Error>"
)

class State:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.injected = {}
        self.requests = 0
        self.log = open(args.log, "a", buffering=1) if args.log else None

    def pick(self, method, target):
        with self.lock:
            self.requests += 1
            if method not in self.args.methods:
                return None
            if self.args.match and self.args.match not in target:
                return None
            if sum(self.injected.values()) >= self.args.max_faults:
                return None
            if self.rng.random() >= self.args.rate:
                return None
            fault = self.rng.choice(self.args.faults)
            self.injected[fault] = self.injected.get(fault, 0) + 1
            if self.args.stats:
                with open(self.args.stats + ".tmp", "w") as f:
                    json.dump({"requests": self.requests, "faults": self.injected}, f)

                os.replace(self.args.stats + ".tmp", self.args.stats)
            return fault

    def note(self, text):
        if self.log:
            self.log.write(f"{time.strftime('%H:%M:%S')} {text}\n")

def read_line(rfile):
    line = rfile.readline(65537)
    if len(line) > 65536:
        raise ValueError("line too long")
    return line

def read_request(rfile):
    """Returns (method, target, version, [(name, value)], body bytes) or None at EOF."""
    line = read_line(rfile)
    while line in (b"\r\n", b"\n"):
        line = read_line(rfile)
    if not line:
        return None
    method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers = []
    while True:
        h = read_line(rfile)
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").rstrip("\r\n").partition(":")
        headers.append((name, value.strip()))
    lower = {k.lower(): v for k, v in headers}
    body = b""
    if "chunked" in lower.get("transfer-encoding", "").lower():
        # Decode, then forward with a Content-Length (chunk framing is not signed).
        parts = []
        while True:
            size = int(read_line(rfile).split(b";")[0].strip(), 16)
            if size == 0:
                while read_line(rfile) not in (b"\r\n", b"\n", b""):
                    pass
                break
            parts.append(rfile.read(size))
            read_line(rfile)
        body = b"".join(parts)
        headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        headers.append(("Content-Length", str(len(body))))
    elif "content-length" in lower:
        body = rfile.read(int(lower["content-length"]))
    if lower.get("expect", "").lower() == "100-continue":
        headers = [(k, v) for k, v in headers if k.lower() != "expect"]
    return method, target, version, headers, body

class Handler(socketserver.StreamRequestHandler):
    def reset(self):
        # SO_LINGER with a zero timeout turns close() into a TCP RST.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def send_error_answer(self, status, reason, code):
        body = ERR_XML.format(code=code).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 0\r\n\r\n"
        ).encode()
        self.wfile.write(head + body)
        self.wfile.flush()

    def forward(self, method, target, headers, body):
        up = http.client.HTTPConnection(self.server.upstream[0], self.server.upstream[1], timeout=120)
        up.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            up.putheader(k, v)
        up.endheaders(body if body else None)
        resp = up.getresponse()
        data = resp.read()
        out_headers = [
            (k, v)
            for k, v in resp.getheaders()
            if k.lower() not in ("transfer-encoding", "content-length", "connection")
        ]
        up.close()
        return resp.status, resp.reason, out_headers, data

    def handle(self):
        st = self.server.state
        while True:
            try:
                req = read_request(self.rfile)
            except (ValueError, ConnectionError, OSError):
                return
            if req is None:
                return
            method, target, _, headers, body = req
            fault = st.pick(method, target)
            st.note(f"{method} {target} {len(body)}B fault={fault or '-'}")
            try:
                if fault == "500":
                    self.send_error_answer(500, "Internal Server Error", "InternalError")
                    continue
                if fault == "503":
                    self.send_error_answer(503, "Service Unavailable", "ServiceUnavailable")
                    continue
                if fault == "slowdown":
                    self.send_error_answer(503, "Slow Down", "SlowDown")
                    continue
                if fault == "reset":
                    self.reset()
                    return
                if fault == "stall":
                    self.server.stop.wait(st.args.stall_seconds)
                    self.reset()
                    return
                status, reason, out_headers, data = self.forward(method, target, headers, body)
                head = f"HTTP/1.1 {status} {reason}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in out_headers)
                head += f"Content-Length: {len(data)}\r\n\r\n"
                if fault in ("truncate", "stallbody") and method != "HEAD":
                    self.wfile.write(head.encode() + data[: len(data) // 2])
                    self.wfile.flush()
                    if fault == "stallbody":
                        self.server.stop.wait(st.args.stall_seconds)
                    self.reset()
                    return
                self.wfile.write(head.encode() + (data if method != "HEAD" else b""))
                self.wfile.flush()
            except (ConnectionError, OSError) as e:
                st.note(f"  connection error: {e}")
                return

class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of the real server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--rate", type=float, default=0.2, help="fraction of requests to hit")
    p.add_argument("--faults", default="500,503,slowdown,reset,truncate")
    p.add_argument("--max-faults", type=int, default=50)
    p.add_argument("--methods", default="GET,PUT,POST,HEAD,DELETE")
    p.add_argument("--match", help="only requests whose target contains this (e.g. '?uploads')")
    p.add_argument("--stall-seconds", type=float, default=600)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log")
    p.add_argument("--stats")
    args = p.parse_args()
    args.faults = [f for f in args.faults.split(",") if f]
    args.methods = set(args.methods.split(","))
    known = {"500", "503", "slowdown", "reset", "truncate", "stall", "stallbody"}
    if not set(args.faults) <= known:
        sys.exit(f"fault_proxy: unknown faults {set(args.faults) - known}")
    host_port = args.upstream.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        sys.exit("fault_proxy: loopback upstreams only")
    server = Server(("127.0.0.1", args.port), Handler)
    server.upstream = ("127.0.0.1", int(port))
    server.state = State(args)
    server.stop = threading.Event()
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))

        os.replace(args.port_file + ".tmp", args.port_file)
    try:
        server.serve_forever()
    finally:
        server.stop.set()

if __name__ == "__main__":
    main()
