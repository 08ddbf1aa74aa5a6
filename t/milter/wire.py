#!/usr/bin/python3
# wire.py - the MTA side of the milter protocol for t/milter/wire.sh, as
# Postfix 3.7 speaks it (version 6, the same offer of actions and steps).
#   wire.py HOST PORT CASE [ARGS]
# Bad-input cases print "closed" when the milter closes the connection;
# "session FROM RCPT" prints the replies to RCPT (and end of message);
# "reuse FROM RCPT1 RCPT2" runs two sessions on one connection (QUIT_NC);
# "many N FROM RCPT" opens N connections at once and prints "N answered".
import socket
import struct
import sys

ACTIONS = 0x1FF
STEPS = 0x1FFFFF


def pkt(cmd, data=b""):
    return struct.pack("!I", len(data) + 1) + cmd + data


def z(*strings):
    return b"".join(s.encode() + b"\0" for s in strings)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def reply(s):
    head = recv_exact(s, 5)
    if head is None:
        return None, b""
    n = struct.unpack("!I", head[:4])[0]
    data = recv_exact(s, n - 1) if n > 1 else b""
    return head[4:5], data


def connect(host, port):
    s = socket.create_connection((host, int(port)), timeout=20)
    return s


def negotiate(s):
    s.sendall(pkt(b"O", struct.pack("!III", 6, ACTIONS, STEPS)))
    cmd, data = reply(s)
    if cmd != b"O":
        raise SystemExit("no negotiation reply: %r" % (cmd,))
    _, _, steps = struct.unpack("!III", data[:12])
    return steps


def word(cmd, data):
    if cmd == b"y":
        return "y " + " ".join(data.rstrip(b"\0").decode().split(" ")[:2])
    return cmd.decode()


def session(s, steps, sender, rcpt):
    """connect .. RCPT, and (accepted) headers, body, end of message"""
    out = []
    s.sendall(pkt(b"D", b"C" + z("{client_addr}", "127.0.0.1", "{client_port}", "4711",
                                 "{daemon_port}", "25")))
    s.sendall(pkt(b"C", z("localhost") + b"4" + struct.pack("!H", 4711) + z("127.0.0.1")))
    if not steps & 0x1000:          # SMFIP_NR_CONN
        reply(s)
    s.sendall(pkt(b"D", b"M" + z("{i}", "WIRE1")))
    s.sendall(pkt(b"M", z(sender)))
    if not steps & 0x4000:          # SMFIP_NR_MAIL
        reply(s)
    s.sendall(pkt(b"R", z(rcpt)))
    cmd, data = reply(s)
    if cmd is None:
        return "closed"
    out.append("rcpt " + word(cmd, data))
    if cmd != b"c":
        s.sendall(pkt(b"A"))
        return " ".join(out)
    for name, value in (("From", "a@example.com"), ("Subject", "wire"), ("To", rcpt)):
        s.sendall(pkt(b"L", z(name, value)))
        if not steps & 0x80:        # SMFIP_NR_HDR
            reply(s)
    s.sendall(pkt(b"N"))
    if not steps & 0x40000:         # SMFIP_NR_EOH
        reply(s)
    s.sendall(pkt(b"B", b"hello\r\n"))
    if not steps & 0x80000:         # SMFIP_NR_BODY
        reply(s)
    s.sendall(pkt(b"E"))
    while True:                     # header changes, then the verdict
        cmd, data = reply(s)
        if cmd is None:
            return "closed"
        if cmd in (b"c", b"a", b"r", b"t", b"y", b"d"):
            out.append("eom " + word(cmd, data))
            break
    return " ".join(out)


def closed(s):
    try:
        while True:
            if not s.recv(4096):
                return "closed"
    except socket.timeout:
        return "still open"


def main():
    host, port, case = sys.argv[1:4]
    args = sys.argv[4:]
    if case == "many":
        n = int(args[0])
        conns = []
        for _ in range(n):
            c = connect(host, port)
            conns.append((c, negotiate(c)))
        answered = 0
        for c, steps in conns:
            c.sendall(pkt(b"C", z("localhost") + b"4" + struct.pack("!H", 1) + z("127.0.0.1")))
            c.sendall(pkt(b"M", z(args[1])))
        for c, steps in conns:
            if not steps & 0x1000:
                reply(c)
            if not steps & 0x4000:
                reply(c)
            c.sendall(pkt(b"R", z(args[2])))
        for c, steps in conns:
            cmd, _ = reply(c)
            if cmd is not None:
                answered += 1
            c.sendall(pkt(b"Q"))
            c.close()
        print("%d answered" % answered)
        return
    s = connect(host, port)
    steps = negotiate(s)
    if case == "session":
        print(session(s, steps, args[0], args[1]))
        s.sendall(pkt(b"Q"))
    elif case == "reuse":
        one = session(s, steps, args[0], args[1])
        s.sendall(pkt(b"K"))
        two = session(s, steps, args[0], args[2])
        s.sendall(pkt(b"Q"))
        print("session1 " + one + " session2 " + two)
    elif case == "idle":
        # connected and negotiated, then silent: the milter's timeout closes it
        s.settimeout(int(args[0]))
        print(closed(s))
    elif case == "hold":
        # in the middle of a message until the milter goes away
        s.sendall(pkt(b"C", z("localhost") + b"4" + struct.pack("!H", 1) + z("127.0.0.1")))
        s.sendall(pkt(b"M", z(args[0])))
        s.settimeout(60)
        print("held", flush=True)
        print(closed(s))
    elif case == "zero-length":
        s.sendall(b"\0\0\0\0")
        print(closed(s))
    elif case == "huge-length":
        s.sendall(struct.pack("!I", 1 << 24) + b"B" + b"x" * 100)
        print(closed(s))
    elif case == "unknown-command":
        s.sendall(pkt(b"Z", b"x"))
        print(closed(s))
    elif case == "truncated":
        s.sendall(struct.pack("!I", 100) + b"L" + z("From"))
        s.shutdown(socket.SHUT_WR)
        print(closed(s))
    elif case == "header-no-nul":
        s.sendall(pkt(b"L", b"From\0x"))
        print(closed(s))
    elif case == "connect-short":
        s.sendall(pkt(b"C", z("host") + b"4"))
        print(closed(s))
    else:
        raise SystemExit("unknown case " + case)


main()
