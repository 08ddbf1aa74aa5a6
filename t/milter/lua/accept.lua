-- An account's message: every callback continues, the account's headers are
-- added, inbound copies of relayguard's own headers removed, and the message
-- is signed twice (RSA + Ed25519) over the headers as delivered.
dofile(lib)
local conn = open()
mail(conn, "alice@relay.test", "<a@example.com>", "QACCEPT1", "SIZE=500")
reply_is(conn, SMFIR_CONTINUE, "MAIL")
rcpt(conn, "<b@example.net>")
reply_is(conn, SMFIR_CONTINUE, "RCPT")
rcpt(conn, "<c@example.net>")
reply_is(conn, SMFIR_CONTINUE, "RCPT 2")
local hdrs = {
    {"From", "Alice <a@example.com>"}, {"To", "b@example.net, c@example.net"},
    {"Subject", "accepted"}, {"Date", "Tue, 24 Nov 2026 14:00:00 +0000"},
    {"X-AuthUser", "mallory@forged.test"}, {"X-Relayguard-Account", "forged"},
    {"Feedback-ID", "forged:feedback"},
}
headers(conn, hdrs)
reply_is(conn, SMFIR_CONTINUE, "EOH")
local body = "Hello,\r\n\r\nthis is a test.\r\n"
check(mt.bodystring(conn, body) == nil, "body")
reply_is(conn, SMFIR_CONTINUE, "BODY")
check(mt.eom(conn) == nil, "eom")
reply_is(conn, SMFIR_CONTINUE, "EOM")
check(mt.eom_check(conn, MT_HDRDELETE, "X-AuthUser"), "inbound X-AuthUser removed")
check(mt.eom_check(conn, MT_HDRDELETE, "X-Relayguard-Account"), "inbound X-Relayguard-Account removed")
check(mt.eom_check(conn, MT_HDRDELETE, "Feedback-ID"), "inbound Feedback-ID removed")
check(mt.eom_check(conn, MT_HDRINSERT, "Feedback-ID", "c1:alice:news:relayguard"), "Feedback-ID added")
check(mt.eom_check(conn, MT_HDRINSERT, "List-Unsubscribe"), "List-Unsubscribe added")
check(mt.eom_check(conn, MT_HDRINSERT, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
      "List-Unsubscribe-Post added (bulk)")
check(mt.eom_check(conn, MT_HDRINSERT, "X-AuthUser", "alice@relay.test"), "X-AuthUser = the login")
local s1 = mt.getheader(conn, "DKIM-Signature", 0)
check(s1 ~= nil and string.find(s1, "a=rsa-sha256", 1, true), "RSA signature")
check(string.find(s1, "feedback-id", 1, true) and string.find(s1, "list-unsubscribe-post", 1, true)
      and string.find(s1, "x-authuser", 1, true), "added headers are signed: " .. s1)
local s2 = mt.getheader(conn, "DKIM-Signature", 1)
check(s2 ~= nil and string.find(s2, "a=ed25519-sha256", 1, true), "Ed25519 signature")
local n = write_message(conn, out .. "/accept.eml", hdrs, body,
    {"Feedback-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "X-AuthUser"},
    {"X-AuthUser", "X-Relayguard-Account", "Feedback-ID"})
check(n == 2, "two signatures")
-- a second message on the same connection, after an abort in the middle
mail(conn, "alice@relay.test", "<a@example.com>", "QACCEPT2")
rcpt(conn, "<b@example.net>")
check(mt.abort(conn) == nil, "abort")
mail(conn, "alice@relay.test", "<a@example.com>", "QACCEPT3")
reply_is(conn, SMFIR_CONTINUE, "MAIL after abort")
rcpt(conn, "<b@example.net>")
headers(conn, {{"From", "a@example.com"}})
check(mt.bodystring(conn, "x\r\n") == nil, "body")
check(mt.eom(conn) == nil, "eom")
reply_is(conn, SMFIR_CONTINUE, "EOM after abort")
check(mt.getheader(conn, "DKIM-Signature", 0) ~= nil, "signed after abort")
mt.disconnect(conn)
