-- Refusals at each stage; the codes and texts are checked in the milter log
-- by the wrapper.  Every refusal is a reply code (smfi_setreply).
dofile(lib)
-- A refusal at end of headers is answered at end of message (the milter asks
-- for no reply at end of headers: SMFIP_NR_EOH).
local function finish(conn)
    check(mt.bodystring(conn, "x\r\n") == nil, "body")
    check(mt.eom(conn) == nil, "eom")
end
local conn = open()
-- The MAIL checks are answered at the first RCPT (as relayguard-policyd does).
-- unknown login: 550
mail(conn, "nobody@relay.test", "<x@example.com>", "QUNKNOWN")
reply_is(conn, SMFIR_CONTINUE, "MAIL is not asked")
rcpt(conn, "<b@example.net>")
reply_is(conn, SMFIR_REPLYCODE, "unknown login")
-- foreign envelope sender: 553
mail(conn, "alice@relay.test", "<a@foreign.test>", "QFOREIGN")
rcpt(conn, "<b@example.net>")
reply_is(conn, SMFIR_REPLYCODE, "foreign sender")
-- SIZE= above max_size: 552
mail(conn, "small@relay.test", "<s@ed.test>", "QSIZE", "SIZE=999999")
rcpt(conn, "<b@example.net>")
reply_is(conn, SMFIR_REPLYCODE, "SIZE= above max_size")
-- suppressed recipient: RCPT 550, the next recipient is fine
mail(conn, "alice@relay.test", "<a@example.com>", "QSUPP")
reply_is(conn, SMFIR_CONTINUE, "MAIL")
rcpt(conn, "<gone@example.net>")
reply_is(conn, SMFIR_REPLYCODE, "suppressed recipient")
rcpt(conn, "<ok@example.net>")
reply_is(conn, SMFIR_CONTINUE, "next recipient")
-- foreign header From: 550 (decided at end of headers)
headers(conn, {{"From", "Boss <ceo@bank.test>"}})
finish(conn)
reply_is(conn, SMFIR_REPLYCODE, "foreign header From")
mt.disconnect(conn)

-- two From headers
conn = open()
mail(conn, "alice@relay.test", "<a@example.com>", "QTWOFROM")
rcpt(conn, "<b@example.net>")
headers(conn, {{"From", "a@example.com"}, {"From", "b@example.com"}})
finish(conn)
reply_is(conn, SMFIR_REPLYCODE, "two From headers")
mt.disconnect(conn)

-- no From header
conn = open()
mail(conn, "alice@relay.test", "<a@example.com>", "QNOFROM")
rcpt(conn, "<b@example.net>")
headers(conn, {{"Subject", "no from"}})
finish(conn)
reply_is(conn, SMFIR_REPLYCODE, "no From header")
mt.disconnect(conn)

-- real size above max_size at end of message (no SIZE=)
conn = open()
mail(conn, "small@relay.test", "<s@ed.test>", "QBIGEOM")
rcpt(conn, "<b@example.net>")
headers(conn, {{"From", "s@ed.test"}})
check(mt.bodystring(conn, string.rep("0123456789abcdef\r\n", 200)) == nil, "body")
check(mt.eom(conn) == nil, "eom")
reply_is(conn, SMFIR_REPLYCODE, "size at end of message")
mt.disconnect(conn)

-- quota 1/1d hard: the first message passes and is charged, the second is
-- refused at RCPT
conn = open()
mail(conn, "one@relay.test", "<o@one.test>", "QONE1")
rcpt(conn, "<b@example.net>")
reply_is(conn, SMFIR_CONTINUE, "first message within the quota")
headers(conn, {{"From", "o@one.test"}})
check(mt.bodystring(conn, "x\r\n") == nil, "body")
check(mt.eom(conn) == nil, "eom")
reply_is(conn, SMFIR_CONTINUE, "first message charged")
mail(conn, "one@relay.test", "<o@one.test>", "QONE2")
rcpt(conn, "<b@example.net>")
reply_is(conn, SMFIR_REPLYCODE, "second message over the quota")
mt.disconnect(conn)
