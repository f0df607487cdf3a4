#!/usr/bin/python3
"""A minimal S3 client for the tests (Python stdlib, SigV4), independent of ckpt's driver,
so tests can plant, read and list objects behind ckpt's back.

  s3tool.py put URI FILE        FILE's bytes to s3://bucket/key (FILE '-' reads stdin)
  s3tool.py get URI             the object's bytes to stdout
  s3tool.py rm URI              delete one object
  s3tool.py ls URI              every key below the prefix URI, relative to it, sorted
  s3tool.py rm-prefix URI       delete every key below the prefix
  s3tool.py uploads URI         keys of multipart uploads still open below the prefix
  s3tool.py status METHOD URI   only the HTTP status of a bodiless request

Endpoint, keys and region come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_REGION (as in the env file scripts/s3_server.sh writes).
Keys are sent byte for byte (dots encoded as %2E so no one normalizes "../").
"""
import datetime
import hashlib
import hmac
import http.client
import os
import sys
import urllib.parse
import xml.etree.ElementTree as ET

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"


def enc(s, keep_slash):
    out = []
    for b in s.encode():
        c = chr(b)
        if c in UNRESERVED or (keep_slash and c == "/"):
            out.append(c)
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def split_uri(uri):
    if not uri.startswith("s3://"):
        sys.exit(f"s3tool: not an s3:// URI: {uri}")
    rest = uri[5:]
    bucket, _, key = rest.partition("/")
    return bucket, key


class S3:
    def __init__(self):
        self.endpoint = urllib.parse.urlsplit(os.environ["AWS_ENDPOINT_URL"])
        self.ak = os.environ["AWS_ACCESS_KEY_ID"]
        self.sk = os.environ["AWS_SECRET_ACCESS_KEY"]
        self.region = os.environ.get("AWS_REGION", "us-east-1")

    def request(self, method, bucket, key="", query=None, body=b""):
        query = query or {}
        canon_path = "/" + bucket + ("/" + enc(key, True) if key else "")
        wire_path = "/" + bucket + ("/" + enc(key, True).replace(".", "%2E") if key else "")
        canon_query = "&".join(
            f"{enc(k, False)}={enc(v, False)}" for k, v in sorted(query.items())
        )
        now = datetime.datetime.utcnow()
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload = hashlib.sha256(body).hexdigest()
        headers = {
            "host": self.endpoint.netloc,
            "x-amz-content-sha256": payload,
            "x-amz-date": amz_date,
        }
        names = ";".join(sorted(headers))
        canon = "\n".join(
            [method, canon_path, canon_query]
            + [f"{k}:{headers[k]}" for k in sorted(headers)]
            + ["", names, payload]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canon.encode()).hexdigest()]
        )
        k = ("AWS4" + self.sk).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.ak}/{scope}, SignedHeaders={names}, Signature={sig}"
        )
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(self.endpoint.hostname, self.endpoint.port, timeout=60)
        conn.request(method, wire_path + ("?" + canon_query if canon_query else ""), body, headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data

    def check(self, what, status, data, ok=(200, 204)):
        if status not in ok:
            sys.exit(f"s3tool: {what}: HTTP {status}: {data[:300]!r}")
        return data

    def list_keys(self, bucket, prefix, uploads=False):
        keys, token = [], None
        while True:
            if uploads:
                q = {"uploads": "", "prefix": prefix}
                if token:
                    q["key-marker"] = token
            else:
                q = {"list-type": "2", "prefix": prefix}
                if token:
                    q["continuation-token"] = token
            st, data = self.request("GET", bucket, query=q)
            self.check(f"listing s3://{bucket}/{prefix}", st, data)
            root = ET.fromstring(data)
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            if uploads:
                keys += [u.findtext(ns + "Key") for u in root.iter(ns + "Upload")]
                token = root.findtext(ns + "NextKeyMarker")
            else:
                keys += [c.findtext(ns + "Key") for c in root.iter(ns + "Contents")]
                token = root.findtext(ns + "NextContinuationToken")
            if root.findtext(ns + "IsTruncated") != "true" or not token:
                return keys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd, s3 = sys.argv[1], S3()
    if cmd == "status":
        bucket, key = split_uri(sys.argv[3])
        print(s3.request(sys.argv[2], bucket, key)[0])
        return
    bucket, key = split_uri(sys.argv[2])
    if cmd == "put":
        src = sys.argv[3]
        body = sys.stdin.buffer.read() if src == "-" else open(src, "rb").read()
        s3.check(f"PUT {sys.argv[2]}", *s3.request("PUT", bucket, key, body=body))
    elif cmd == "get":
        sys.stdout.buffer.write(s3.check(f"GET {sys.argv[2]}", *s3.request("GET", bucket, key)))
    elif cmd == "rm":
        s3.check(f"DELETE {sys.argv[2]}", *s3.request("DELETE", bucket, key))
    elif cmd in ("ls", "uploads", "rm-prefix"):
        prefix = key if not key or key.endswith("/") else key + "/"
        keys = s3.list_keys(bucket, prefix, uploads=cmd == "uploads")
        if cmd == "rm-prefix":
            for k in keys:
                s3.check(f"DELETE {k}", *s3.request("DELETE", bucket, k))
        else:
            for k in sorted(k[len(prefix) :] for k in keys):
                print(k)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
