#!/usr/bin/python3
"""A webhook receiver for the relayguard-webhookd tests, on 127.0.0.1.

  receiver.py PORT DIR SECRET [/PATH=SECRET ...]

Every POST is checked the way the documentation tells a receiver to check
it (relayguard-webhookd(8)): the X-Relayguard-Signature header
"t=TS,v1=HEX" must carry HMAC-SHA256(SECRET, TS + "." + body) (the SECRET given for the
request's path, else the first one) and TS must
be within 5 minutes of now; the body must be a JSON array of events.

What it answers is read from DIR/mode before each request:
  ok            200 (also when the file is missing)
  500 [N]       500 for the next N requests (default: all), then ok
  hang [N]      never answers the next N requests (the sender times out)
With DIR/mode.slow holding "slow SECONDS", every answer waits that long.
The last well-formed request to each PATH is kept in DIR/last-PATH (its
signature header, a newline, the body).
Each request is one JSON line in DIR/requests.jsonl:
  {"path", "status", "sig": "ok"|"bad"|"missing"|"stale", "port", "events": [ids],
   "accounts": [...], "types": [...], "n": header X-Relayguard-Events}
status is what was answered (0 for a hang).
"""
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, DIR, SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
SECRETS = dict((a.split("=", 1)[0], a.split("=", 1)[1].encode()) for a in sys.argv[4:])
LOCK = threading.Lock()


def next_mode():
    """The answer for this request; counts down "500 N" / "hang N"."""
    path = os.path.join(DIR, "mode")
    with LOCK:
        try:
            with open(path) as f:
                words = f.read().split()
        except FileNotFoundError:
            return "ok"
        if not words:
            return "ok"
        mode = words[0]
        if len(words) > 1:
            left = int(words[1]) - 1
            with open(path + ".tmp", "w") as f:
                f.write("ok" if left <= 0 else "%s %d" % (mode, left))
            os.replace(path + ".tmp", path)
        return mode


def verify(path, header, body):
    """The receiver's check: signature over TS "." body, TS not older than 5 minutes."""
    if not header:
        return "missing"
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    ts, sig = parts.get("t", ""), parts.get("v1", "")
    want = hmac.new(SECRETS.get(path, SECRET), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig):
        return "bad"
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return "stale"
    return "ok"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive: webhookd reuses connections

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sig = verify(self.path, self.headers.get("X-Relayguard-Signature"), body)
        try:
            events = json.loads(body)
            assert isinstance(events, list)
        except Exception:
            events = None
        mode = next_mode()
        if mode == "hang":
            status = 0
        elif mode == "500":
            status = 500
        elif sig != "ok" or events is None:
            status = 400
        else:
            status = 200
        rec = {"path": self.path, "status": status, "sig": sig,
               "port": self.client_address[1],     # one per TCP connection
               "n": self.headers.get("X-Relayguard-Events"),
               "events": [e.get("id") for e in events or []],
               "accounts": [e.get("account") for e in events or []],
               "types": [e.get("type") for e in events or []]}
        with LOCK:
            with open(os.path.join(DIR, "requests.jsonl"), "a") as f:
                f.write(json.dumps(rec) + "\n")
            if events is not None:
                # the last good request to this path (DIR/last-PATH): its
                # signature header on the first line, then the body
                name = os.path.join(DIR, "last" + self.path.replace("/", "-"))
                with open(name + ".tmp", "wb") as f:
                    f.write(self.headers.get("X-Relayguard-Signature", "").encode() + b"\n" + body)
                os.replace(name + ".tmp", name)
        if status == 0:
            time.sleep(30)              # longer than the sender's timeout
            return
        try:
            with open(os.path.join(DIR, "mode.slow")) as f:
                time.sleep(float(f.read().split()[1]))
        except (FileNotFoundError, IndexError, ValueError):
            pass
        out = b"ok\n" if status == 200 else b"failing on purpose\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("127.0.0.1", PORT), Handler).serve_forever()
