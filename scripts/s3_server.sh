#!/usr/bin/env bash
# A throwaway one-node Ceph cluster with an S3 gateway on loopback, for tests and benchmarks.
#   scripts/s3_server.sh start DIR   monitor + one in-memory (memstore) OSD + radosgw on free
#                                    127.0.0.1 ports, a test user, the buckets the tests use;
#                                    writes DIR/env (export lines) once the gateway answers.
#   scripts/s3_server.sh stop DIR    stops radosgw, then the OSD, then the monitor.
# Needs Debian's ceph-mon, ceph-osd and radosgw packages (they bring ceph-base and
# ceph-common) and python3. Everything lives under DIR; daemons' output goes to DIR/log.
# CKPT_S3_MEMSTORE_MB sizes the in-memory OSD (default 4096). memstore holds everything in
# RAM and stops answering when full, so size it for the data a run writes.
# The OSD and radosgw run with tcmalloc, the allocator Ceph's own build picks when it finds
# it (these Debian binaries run on glibc malloc, which here hands each 4 MiB data buffer back
# to the kernel and faults it in again: radosgw burnt 2.5 CPU-s per 512 MiB download instead
# of 0.5, on the same two cores as the client). radosgw's package depends on
# libgoogle-perftools4, so it is there. CKPT_S3_ALLOCATOR=glibc runs them without it.
set -euo pipefail

ACCESS_KEY=CKPTTESTACCESSKEY000
SECRET_KEY=ckpt-test-secret-key-not-a-real-secret-0000
ROLE_ACCESS_KEY=CKPTROLEACCESSKEY000
ROLE_SECRET_KEY=ckpt-role-secret-key-not-a-real-secret-000
BUCKET=ckpt-test
ROLE_BUCKET=ckpt-role-test
REGION=us-east-1
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

die() {
  echo "s3_server: $*" >&2
  exit 1
}

# Prints N distinct free TCP ports on 127.0.0.1.
free_ports() {
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Signed S3 request with the admin test keys (bucket creation); prints the HTTP status.
s3_request() {  # ACCESS_KEY SECRET_KEY METHOD PATH
  "$PY" - "$ENDPOINT" "$1" "$2" "$REGION" "$3" "$4" <<'EOF'
import datetime, hashlib, hmac, http.client, sys, urllib.parse
endpoint, ak, sk, region, method, path = sys.argv[1:]
u = urllib.parse.urlsplit(endpoint)
now = datetime.datetime.utcnow()
amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
payload = hashlib.sha256(b"").hexdigest()
headers = {"host": u.netloc, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
names = ";".join(sorted(headers))
canon = "\n".join([method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", names, payload])
scope = f"{day}/{region}/s3/aws4_request"
to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canon.encode()).hexdigest()])
key = ("AWS4" + sk).encode()
for part in (day, region, "s3", "aws4_request"):
    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={names}, Signature={sig}"
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
c.request(method, path, headers=headers)
r = c.getresponse()
r.read()
print(r.status)
EOF
}

# Waits up to $2 seconds for $1 (a command) to succeed.
wait_for() {
  local cmd=$1 secs=$2 i
  for ((i = 0; i < secs * 5; i++)); do
    eval "$cmd" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

port_answers() {
  "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_daemon() {  # PIDFILE
  local pidfile=$1 pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
  fi
  rm -f "$pidfile"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  # radosgw ignores SIGTERM once the monitor is gone, so the order matters.
  stop_daemon "$dir/rgw.pid"
  stop_daemon "$dir/osd.pid"
  stop_daemon "$dir/mon.pid"
}

# On a failed start: say why, with the tail of the daemons' logs, and leave nothing running.
start_failed() {
  local dir=$1 msg=$2 f
  echo "s3_server: $msg" >&2
  for f in "$dir"/log/*.out "$dir"/log/*.log; do
    [ -s "$f" ] || continue
    echo "--- tail of $f" >&2
    tail -n 15 "$f" >&2
  done
  stop "$dir"
  exit 1
}

# One attempt at bringing the cluster up from scratch in DIR; exits non-zero on failure.
attempt() {
  local dir=$1
  for b in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool; do
    command -v "$b" >/dev/null ||
      die "$b not found; install Debian's ceph-mon ceph-osd radosgw (scripts/setup.sh --test)"
  done
  if [ -d "$dir" ]; then
    stop "$dir"
    rm -rf "$dir"
  fi
  mkdir -p "$dir"/{mon,osd/osd.0,run,log,rgw}
  dir=$(cd "$dir" && pwd)
  local mon_port rgw_port fsid osd_uuid
  read -r mon_port rgw_port < <(free_ports 2)
  fsid=$("$PY" -c 'import uuid; print(uuid.uuid4())')
  osd_uuid=$("$PY" -c 'import uuid; print(uuid.uuid4())')
  local mem_mb=${CKPT_S3_MEMSTORE_MB:-4096}
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
run dir = $dir/run
log file = $dir/log/\$name.log
admin socket = $dir/run/\$name.asok
mon data = $dir/mon/\$name
osd data = $dir/osd/\$name
keyring = $dir/keyring
osd objectstore = memstore
memstore device bytes = $((mem_mb * 1024 * 1024))
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd max object size = 1073741824
# Deleted and overwritten data is freed within seconds, not hours: memstore holds it in RAM.
rgw gc obj min wait = 5
rgw gc processor period = 5
rgw gc processor max time = 5
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
rgw dns name = 127.0.0.1
EOF
  local C=(-c "$dir/ceph.conf")
  local PRELOAD=() tcmalloc
  tcmalloc=$(ldconfig -p | awk '$1 == "libtcmalloc.so.4" {print $NF; exit}')
  if [ "${CKPT_S3_ALLOCATOR:-tcmalloc}" = tcmalloc ]; then
    [ -n "$tcmalloc" ] || start_failed "$dir" "libtcmalloc.so.4 not found (Debian's libgoogle-perftools4)"
    PRELOAD=(env "LD_PRELOAD=$tcmalloc")
  fi
  monmaptool --create --add a "v1:127.0.0.1:$mon_port" --fsid "$fsid" "$dir/monmap" \
    >"$dir/log/monmaptool.out" 2>&1 || start_failed "$dir" "monmaptool failed"
  ceph-mon "${C[@]}" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mon-mkfs.out" 2>&1 ||
    start_failed "$dir" "ceph-mon --mkfs failed"
  ceph-mon "${C[@]}" -i a -f >"$dir/log/mon.out" 2>&1 </dev/null &
  echo $! >"$dir/mon.pid"
  wait_for "port_answers $mon_port" 20 || start_failed "$dir" "the monitor did not come up"
  timeout 30 ceph "${C[@]}" --connect-timeout 20 osd create "$osd_uuid" >"$dir/log/osd-create.out" 2>&1 ||
    start_failed "$dir" "ceph osd create failed"
  ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1 ||
    start_failed "$dir" "ceph-osd --mkfs failed"
  "${PRELOAD[@]}" ceph-osd "${C[@]}" -i 0 -f >"$dir/log/osd.out" 2>&1 </dev/null &
  echo $! >"$dir/osd.pid"
  "${PRELOAD[@]}" radosgw "${C[@]}" -n client.rgw.a -f >"$dir/log/rgw.out" 2>&1 </dev/null &
  echo $! >"$dir/rgw.pid"
  local i
  for ((i = 0; i < 300; i++)); do
    port_answers "$rgw_port" 2>/dev/null && break
    alive "$dir/rgw.pid" || start_failed "$dir" "radosgw exited"
    alive "$dir/osd.pid" || start_failed "$dir" "ceph-osd exited"
    sleep 0.2
  done
  port_answers "$rgw_port" 2>/dev/null || start_failed "$dir" "radosgw did not answer within 60 s"

  timeout 60 radosgw-admin "${C[@]}" -n client.admin user create --uid=ckpt-test \
    --display-name="ckpt test user" --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" \
    >"$dir/log/user-create.out" 2>&1 || start_failed "$dir" "radosgw-admin user create failed"
  # A second user whose keys only the STS and instance-metadata stand-ins hand out.
  timeout 60 radosgw-admin "${C[@]}" -n client.admin user create --uid=ckpt-role \
    --display-name="ckpt role user" --access-key="$ROLE_ACCESS_KEY" --secret="$ROLE_SECRET_KEY" \
    >"$dir/log/role-create.out" 2>&1 || start_failed "$dir" "radosgw-admin user create failed"

  ENDPOINT=http://127.0.0.1:$rgw_port
  local code
  code=$(s3_request "$ACCESS_KEY" "$SECRET_KEY" PUT "/$BUCKET" 2>"$dir/log/mb.out") ||
    start_failed "$dir" "creating bucket $BUCKET failed"
  [ "$code" = 200 ] || start_failed "$dir" "creating bucket $BUCKET: HTTP $code"
  code=$(s3_request "$ROLE_ACCESS_KEY" "$ROLE_SECRET_KEY" PUT "/$ROLE_BUCKET" 2>"$dir/log/mb.out") ||
    start_failed "$dir" "creating bucket $ROLE_BUCKET failed"
  [ "$code" = 200 ] || start_failed "$dir" "creating bucket $ROLE_BUCKET: HTTP $code"

  cat >"$dir/env.tmp" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$rgw_port
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=$REGION
export AWS_DEFAULT_REGION=$REGION
export CKPT_TEST_BUCKET=$BUCKET
export CKPT_TEST_ROLE_BUCKET=$ROLE_BUCKET
export CKPT_TEST_ROLE_ACCESS_KEY_ID=$ROLE_ACCESS_KEY
export CKPT_TEST_ROLE_SECRET_ACCESS_KEY=$ROLE_SECRET_KEY
export CKPT_TEST_S3_DIR=$dir
export CKPT_TEST_CEPH_CONF=$dir/ceph.conf
EOF
  mv "$dir/env.tmp" "$dir/env"
  echo "s3_server: radosgw on http://127.0.0.1:$rgw_port (state in $dir)" >&2
}

# Under heavy load a fresh OSD now and then fails to register ("wrong fsid") or a daemon
# dies early; a clean retry with new ports gets past that.
start() {
  local dir=$1 a
  for a in 1 2 3; do
    if (attempt "$dir"); then return 0; fi
    echo "s3_server: attempt $a failed" >&2
  done
  die "could not start the S3 server in $dir (logs in $dir/log)"
}

case "${1:-}" in
  start) start "${2:?usage: s3_server.sh start DIR}" ;;
  stop) stop "${2:?usage: s3_server.sh stop DIR}" ;;
  *)
    echo "usage: s3_server.sh start|stop DIR" >&2
    exit 2
    ;;
esac
