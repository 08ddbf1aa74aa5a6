#!/usr/bin/env python3
"""bench/lmtp-load.py - deliver bounces to "relayguard bounce --lmtp" as an
MTA's LMTP client does: one connection, one transaction per bounce (MAIL,
RCPT and DATA pipelined, then the message and its reply).  bench/run-bounce.sh
runs it.

    lmtp-load.py SOCKET TOKENS MESSAGE FIRST STEP

Every STEP-th return path of the file TOKENS (one a line) from FIRST gets
MESSAGE.  Prints "sent N ok N other N"; exit 1 when a reply was not 250.
"""
import socket
import sys


def main():
    path, tokens, message, first, step = sys.argv[1:6]
    first, step = int(first), int(step)
    with open(tokens) as f:
        rps = [l.strip() for l in f if l.strip()][first::step]
    with open(message, "rb") as f:
        body = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    # dot-stuffing, as an MTA sends it
    body = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in body.split(b"\r\n"))
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    body += b".\r\n"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise SystemExit("connection closed")
            if line[3:4] != b"-":
                return line

    reply()
    s.sendall(b"LHLO bench.test\r\n")
    reply()
    ok = other = 0
    for rp in rps:
        s.sendall(b"MAIL FROM:<> SIZE=%d\r\nRCPT TO:<%s>\r\nDATA\r\n" % (len(body), rp.encode()))
        r = [reply(), reply(), reply()]
        if not (r[0].startswith(b"250") and r[1].startswith(b"250") and r[2].startswith(b"354")):
            raise SystemExit("refused: %r" % r)
        s.sendall(body)
        if reply().startswith(b"250 "):
            ok += 1
        else:
            other += 1
    s.sendall(b"QUIT\r\n")
    reply()
    s.close()
    print("sent %d ok %d other %d" % (len(rps), ok, other))
    return 0 if other == 0 else 1


sys.exit(main())
