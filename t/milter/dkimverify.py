#!/usr/bin/python3
"""dkimverify.py KEYS MESSAGE... - verify every DKIM-Signature of each
message with dkimpy, the public keys served from KEYS instead of DNS
(lines "SELECTOR._domainkey.DOMAIN TXT-VALUE").

Prints one line per message: "ok N" (N signatures, all valid) or
"fail: reason".  Exit 0 when every message has at least one signature and
all verify."""
import sys
import dkim

keys = {}
with open(sys.argv[1]) as f:
    for line in f:
        if line.strip():
            name, txt = line.split(None, 1)
            keys[name.rstrip(".").lower() + "."] = txt.strip().encode()

def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    return keys.get(n.rstrip(".").lower() + ".")

rc = 0
for path in sys.argv[2:]:
    msg = open(path, "rb").read()
    d = dkim.DKIM(msg)
    sigs = [h for h in d.headers if h[0].lower() == b"dkim-signature"]
    if not sigs:
        print("fail: no DKIM-Signature in", path)
        rc = 1
        continue
    bad = []
    for i in range(len(sigs)):
        d = dkim.DKIM(msg)
        try:
            good = d.verify(idx=i, dnsfunc=dnsfunc)
        except Exception:
            good = False
        if not good:
            bad.append(str(i))
    if bad:
        print("fail: signature(s) %s of %s do not verify" % (",".join(bad), path))
        rc = 1
    else:
        print("ok", len(sigs))
sys.exit(rc)
