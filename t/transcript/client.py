#!/usr/bin/env python3
"""A Postfix policy client for transcript tests.

  client.py send PORT FILE.in     send the requests of FILE.in over one
                                  connection, print the replies
  client.py match FILE.ref FILE   compare output with a .ref; "..." in a .ref
                                  line matches any text (times, ids)

In a .in file, lines starting with '#' are comments (the runner reads
"#!" setup and "#?" check lines itself), and requests are separated by blank
lines.  With a "#@ pipeline" line all requests are sent in one write before
any reply is read, the way a pipelining client would.  "#@ raw" sends the
file's non-comment bytes as they are (for framing errors).  A connection the
server closes prints "(connection closed)".
"""
import re
import socket
import sys


def requests_of(text):
    reqs, cur = [], []
    for line in text.split("\n"):
        if line.startswith("#"):
            continue
        if line == "":
            if cur:
                reqs.append("\n".join(cur) + "\n\n")
                cur = []
        else:
            cur.append(line)
    if cur:
        reqs.append("\n".join(cur) + "\n\n")
    return reqs


def read_reply(sock, buf):
    while b"\n\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None, buf
        buf += data
    reply, rest = buf.split(b"\n\n", 1)
    return reply.decode("utf-8", "replace") + "\n\n", rest


def send(port, path):
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        text = f.read()
    flags = {l[2:].strip() for l in text.split("\n") if l.startswith("#@")}
    sock = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    out, buf = [], b""
    enc = lambda s: s.encode("utf-8", "surrogateescape")
    if "raw" in flags:
        body = "".join(l + "\n" for l in text.split("\n")[:-1] if not l.startswith("#"))
        reqs = [body]
    else:
        reqs = requests_of(text)
    if "pipeline" in flags or "raw" in flags:
        sock.sendall(enc("".join(reqs)))
        for _ in range(len(reqs) if "pipeline" in flags else 1000):
            reply, buf = read_reply(sock, buf)
            if reply is None:
                out.append("(connection closed)\n")
                break
            out.append(reply)
    else:
        for r in reqs:
            try:
                sock.sendall(enc(r))
                reply, buf = read_reply(sock, buf)
            except (BrokenPipeError, ConnectionResetError):
                reply = None
            if reply is None:
                out.append("(connection closed)\n")
                break
            out.append(reply)
    sock.close()
    sys.stdout.write("".join(out))


def match(ref_path, got_path):
    ref = open(ref_path, encoding="utf-8").read().split("\n")
    got = open(got_path, encoding="utf-8", errors="replace").read().split("\n")
    ok = len(ref) == len(got)
    for r, g in zip(ref, got):
        pattern = ".*".join(re.escape(p) for p in r.split("..."))
        if not re.fullmatch(pattern, g):
            ok = False
    if not ok:
        for i in range(max(len(ref), len(got))):
            r = ref[i] if i < len(ref) else "(none)"
            g = got[i] if i < len(got) else "(none)"
            mark = " " if i < len(ref) and i < len(got) and re.fullmatch(
                ".*".join(re.escape(p) for p in r.split("...")), g) else "!"
            print(f"{mark} want: {r!r}\n{mark} got:  {g!r}")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "match":
        sys.exit(match(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
