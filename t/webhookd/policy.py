#!/usr/bin/python3
"""Make relayguard decide: N Postfix policy requests (RCPT stage) to a
relayguard-policyd, pipelined over one connection, so that the engine
writes N decision events.

  policy.py PORT LOGIN SENDER N [TAG]

Recipient i is TAG-i@example.net; prints the action of every reply, one a line.
"""
import socket
import sys

port, login, sender, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
tag = sys.argv[5] if len(sys.argv) > 5 else "r"
reqs = []
for i in range(n):
    reqs.append("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
                "client_address=127.0.0.1\nsender=%s\nrecipient=%s-%d@example.net\n"
                "instance=%s.%d\nsasl_method=PLAIN\nsasl_username=%s\n\n"
                % (sender, tag, i, tag, i, login))
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.sendall("".join(reqs).encode())
buf, got = b"", 0
while got < n:
    data = s.recv(65536)
    if not data:
        break
    buf += data
    while b"\n\n" in buf:
        reply, buf = buf.split(b"\n\n", 1)
        print(reply.decode().split("=", 1)[-1].split(" ")[0])
        got += 1
s.close()
sys.exit(0 if got == n else 1)
