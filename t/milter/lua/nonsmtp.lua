-- A Postfix non_smtpd_milters session (sendmail/pickup: client port 0).
-- Postfix may not refuse one recipient of such mail, so a refusal at RCPT
-- is held and given at end of message (Postfix then bounces the message).
dofile(lib)
local conn = mt.connect(sock, 40, 0.25)
check(conn ~= nil, "connect to " .. sock)
check(mt.negotiate(conn, nil, nil, nil) == nil, "negotiate")
check(mt.macro(conn, SMFIC_CONNECT, "{client_port}", "0", "{daemon_port}", "0") == nil,
      "connect macros")
check(mt.conninfo(conn, "localhost", "198.51.100.7") == nil, "conninfo")
mt.macro(conn, SMFIC_MAIL, "i", "QNONSMTP")
check(mt.mailfrom(conn, "<n@rsa.test>") == nil, "mailfrom")
rcpt(conn, "<gone@example.net>")
reply_is(conn, SMFIR_CONTINUE, "suppressed recipient: not refused at RCPT")
rcpt(conn, "<ok@example.net>")
reply_is(conn, SMFIR_CONTINUE, "next recipient")
headers(conn, {{"From", "n@rsa.test"}})
check(mt.bodystring(conn, "x\r\n") == nil, "body")
check(mt.eom(conn) == nil, "eom")
reply_is(conn, SMFIR_REPLYCODE, "the held refusal, at end of message")
mt.disconnect(conn)

-- the same over SMTP (a real client port): refused at RCPT
conn = mt.connect(sock, 40, 0.25)
check(conn ~= nil, "connect to " .. sock)
check(mt.negotiate(conn, nil, nil, nil) == nil, "negotiate")
check(mt.macro(conn, SMFIC_CONNECT, "{client_port}", "40123", "{daemon_port}", "25") == nil,
      "connect macros")
check(mt.conninfo(conn, "client.test", "198.51.100.7") == nil, "conninfo")
mt.macro(conn, SMFIC_MAIL, "i", "QSMTPSUPP")
check(mt.mailfrom(conn, "<n@rsa.test>") == nil, "mailfrom")
rcpt(conn, "<gone@example.net>")
reply_is(conn, SMFIR_REPLYCODE, "SMTP: suppressed recipient refused at RCPT")
mt.disconnect(conn)
