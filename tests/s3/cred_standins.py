#!/usr/bin/python3
"""Stand-ins for AWS's STS (AssumeRoleWithWebIdentity) and the EC2 instance metadata
service (IMDSv2), for tests only, on 127.0.0.1. They are NOT AWS: they check the inputs a
real service checks (the web identity token and role ARN; the IMDSv2 session token) and
hand out real radosgw keys (--access-key/--secret-key) with an expiry --ttl seconds ahead,
so ckpt's credential chain can be driven end to end against radosgw.

radosgw only knows permanent keys, so the session token handed out is empty.
  POST /                                     STS (form body, Action=AssumeRoleWithWebIdentity)
  PUT  /latest/api/token                     IMDSv2 session token (needs the TTL header)
  GET  /latest/meta-data/iam/security-credentials/        the role name (needs the token)
  GET  /latest/meta-data/iam/security-credentials/ROLE    the credentials JSON
--stats FILE keeps a JSON count of credential hand-outs per service.
"""
import argparse
import datetime
import http.server
import json
import os
import secrets
import threading
import urllib.parse


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--web-identity-token", default="ckpt-test-oidc-token")
    p.add_argument("--role-arn", default="arn:aws:iam::123456789012:role/ckpt-test")
    p.add_argument("--role-name", default="ckpt-test-role")
    p.add_argument("--ttl", type=int, default=3600)
    p.add_argument("--port-file", required=True)
    p.add_argument("--stats")
    args = p.parse_args()

    lock = threading.Lock()
    counts = {"sts": 0, "imds": 0, "imds_token": 0, "rejected": 0}
    imds_tokens = set()

    def count(what):
        with lock:
            counts[what] += 1
            if args.stats:
                with open(args.stats + ".tmp", "w") as f:
                    json.dump(counts, f)
                os.replace(args.stats + ".tmp", args.stats)

    def expiry():
        t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=args.ttl)
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, body, ctype="text/plain"):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def sts_error(self, code, message):
            count("rejected")
            self.reply(
                400 if code != "AccessDenied" else 403,
                "<ErrorResponse><Error><Type>Sender</Type>"
                f"<Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>",
                "text/xml",
            )

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(n).decode())
            get = lambda k: form.get(k, [""])[0]
            if get("Action") != "AssumeRoleWithWebIdentity":
                return self.sts_error("InvalidAction", "only AssumeRoleWithWebIdentity")
            if get("WebIdentityToken") != args.web_identity_token:
                return self.sts_error("InvalidIdentityToken", "token rejected")
            if get("RoleArn") != args.role_arn:
                return self.sts_error("AccessDenied", "not authorized to assume the role")
            if not get("RoleSessionName"):
                return self.sts_error("ValidationError", "RoleSessionName missing")
            count("sts")
            self.reply(
                200,
                "<AssumeRoleWithWebIdentityResponse "
                'xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                "<AssumeRoleWithWebIdentityResult><Credentials>"
                f"<AccessKeyId>{args.access_key}</AccessKeyId>"
                f"<SecretAccessKey>{args.secret_key}</SecretAccessKey>"
                f"<SessionToken></SessionToken><Expiration>{expiry()}</Expiration>"
                "</Credentials>"
                f"<AssumedRoleUser><Arn>{args.role_arn}/{get('RoleSessionName')}</Arn>"
                "</AssumedRoleUser></AssumeRoleWithWebIdentityResult>"
                "</AssumeRoleWithWebIdentityResponse>",
                "text/xml",
            )

        def do_PUT(self):
            if self.path != "/latest/api/token":
                return self.reply(404, "")
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400, "missing TTL header")
            token = secrets.token_urlsafe(24)
            with lock:
                imds_tokens.add(token)
            count("imds_token")
            self.reply(200, token)

        def do_GET(self):
            base = "/latest/meta-data/iam/security-credentials/"
            if not self.path.startswith("/latest/"):
                return self.reply(404, "")
            with lock:
                ok = self.headers.get("X-aws-ec2-metadata-token") in imds_tokens
            if not ok:  # IMDSv2: no session token, no answer
                count("rejected")
                return self.reply(401, "")
            if self.path == base:
                return self.reply(200, args.role_name)
            if self.path == base + args.role_name:
                count("imds")
                return self.reply(
                    200,
                    json.dumps(
                        {
                            "Code": "Success",
                            "LastUpdated": expiry(),
                            "Type": "AWS-HMAC",
                            "AccessKeyId": args.access_key,
                            "SecretAccessKey": args.secret_key,
                            "Token": "",
                            "Expiration": expiry(),
                        }
                    ),
                    "application/json",
                )
            self.reply(404, "")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
