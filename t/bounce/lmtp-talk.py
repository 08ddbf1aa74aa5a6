#!/usr/bin/env python3
"""t/bounce/lmtp-talk.py - a scripted LMTP client for the protocol test.

    lmtp-talk.py unix:PATH|inet:HOST:PORT < SCRIPT

Each line of SCRIPT is one step:
    send EXPR      write the bytes of the Python expression EXPR (a bytes
                   literal, or e.g. b"x" * 100000), all at once
    expect N       read N complete replies (a reply ends with "NNN " line);
                   every reply line is printed as it comes
    close          close the connection at once (mid-command, mid-DATA)
    sleep S        wait S seconds
A reply that does not come within 30 s, or a connection the server closes
early, prints "EOF" or "TIMEOUT" and ends the script (exit 1).
"""
import socket
import sys
import time


def connect(spec):
    if spec.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(spec[5:])
    elif spec.startswith("inet:"):
        host, port = spec[5:].rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    else:
        raise SystemExit("bad address " + spec)
    s.settimeout(30)
    return s


def main():
    s = connect(sys.argv[1])
    buf = b""
    for raw in sys.stdin:
        line = raw.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        verb, _, arg = line.partition(" ")
        if verb == "send":
            s.sendall(eval(arg, {}))
        elif verb == "sleep":
            time.sleep(float(arg))
        elif verb == "close":
            s.close()
            return 0
        elif verb == "expect":
            n = int(arg)
            while n > 0:
                while b"\n" not in buf:
                    try:
                        got = s.recv(65536)
                    except socket.timeout:
                        print("TIMEOUT")
                        return 1
                    if not got:
                        print("EOF")
                        return 1
                    buf += got
                one, buf = buf.split(b"\n", 1)
                text = one.rstrip(b"\r").decode("utf-8", "replace")
                print(text)
                if len(text) < 4 or text[3] != "-":
                    n -= 1
        else:
            raise SystemExit("bad step: " + line)
    s.close()
    return 0


sys.exit(main())
