-- Mail that is not relayguard's (unauthenticated, no client network of an
-- account): every stage continues, nothing is signed or added, but forged
-- X-Relayguard- headers are still removed.  A client network of an account
-- is that account.
dofile(lib)
local conn = open("203.0.113.9")
mail(conn, nil, "<someone@elsewhere.test>", "QINBOUND")
reply_is(conn, SMFIR_CONTINUE, "MAIL")
rcpt(conn, "<b@example.net>")
reply_is(conn, SMFIR_CONTINUE, "RCPT")
headers(conn, {{"From", "someone@elsewhere.test"}, {"X-Relayguard-Account", "alice"}})
reply_is(conn, SMFIR_CONTINUE, "EOH")
check(mt.bodystring(conn, "x\r\n") == nil, "body")
check(mt.eom(conn) == nil, "eom")
reply_is(conn, SMFIR_CONTINUE, "EOM")
check(mt.getheader(conn, "DKIM-Signature", 0) == nil, "not signed")
check(not mt.eom_check(conn, MT_HDRINSERT), "nothing added")
check(mt.eom_check(conn, MT_HDRDELETE, "X-Relayguard-Account"), "forged X-Relayguard-Account removed")
mt.disconnect(conn)

-- a trusted network without AUTH is the account "net"; its HMAC header
conn = open("198.51.100.7")
mail(conn, nil, "<n@rsa.test>", "QNET")
reply_is(conn, SMFIR_CONTINUE, "MAIL from a client network")
rcpt(conn, "<b@example.net>")
headers(conn, {{"From", "n@rsa.test"}})
check(mt.bodystring(conn, "x\r\n") == nil, "body")
check(mt.eom(conn) == nil, "eom")
reply_is(conn, SMFIR_CONTINUE, "EOM")
local v = mt.getheader(conn, "X-Relayguard-Account", 0)
check(v ~= nil and string.match(v, "^[0-9a-f]+$") and #v == 64, "HMAC account header: " .. tostring(v))
check(mt.getheader(conn, "DKIM-Signature", 0) ~= nil, "signed with the rsa.test key")
check(mt.getheader(conn, "DKIM-Signature", 1) == nil, "one key, one signature")
mt.disconnect(conn)
