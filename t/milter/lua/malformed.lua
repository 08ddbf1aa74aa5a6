-- Malformed and extreme input: nothing crashes, every message gets a clear
-- verdict, and what is signed verifies (files written for the wrapper).
dofile(lib)

local function message(qid, hdrs, chunks, nrcpt)
    local conn = open()
    mail(conn, "alice@relay.test", "<a@example.com>", qid)
    reply_is(conn, SMFIR_CONTINUE, qid .. " MAIL")
    for i = 1, (nrcpt or 1) do
        rcpt(conn, string.format("<r%d@example.net>", i))
        reply_is(conn, SMFIR_CONTINUE, qid .. " RCPT " .. i)
    end
    headers(conn, hdrs)
    local eoh = mt.getreply(conn)
    if eoh ~= SMFIR_CONTINUE then
        mt.disconnect(conn)
        return eoh
    end
    for _, c in ipairs(chunks) do
        check(mt.bodystring(conn, c) == nil, qid .. " body")
    end
    check(mt.eom(conn) == nil, qid .. " eom")
    local r = mt.getreply(conn)
    if r == SMFIR_CONTINUE then
        write_message(conn, out .. "/" .. qid .. ".eml", hdrs, table.concat(chunks),
            {"Feedback-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "X-AuthUser"}, {})
    end
    mt.disconnect(conn)
    return r
end

local from = {"From", "a@example.com"}
-- a long header line: miltertest itself overflows a stack buffer on header
-- fields of about 1 KiB and more, and the milter protocol carries at most
-- 64 KiB per packet anyway (MTAs cut headers long before: Postfix
-- header_size_limit is 100 KiB).  The 1 MB header line goes through Postfix
-- in t/milter/postfix.sh; here a 900-byte one.
local r = message("QLONGHDR", {from, {"X-Long", string.rep("x", 900)}}, {"x\r\n"})
check(r == SMFIR_CONTINUE, "long header line: accepted and signed")
-- NUL bytes in a header value and in the body
r = message("QNUL", {from, {"Subject", "nul\0byte"}}, {"a\0b\r\n"})
check(r == SMFIR_CONTINUE, "NUL bytes: a verdict")
-- bare LF line ends in the body
r = message("QBARELF", {from, {"Subject", "bare lf"}}, {"one\ntwo  \n\nthree\n\n\n"})
check(r == SMFIR_CONTINUE, "bare LF body: accepted and signed")
-- non-ASCII (raw UTF-8) headers
r = message("QUTF8", {{"From", "Jürgen Müller <j@example.com>"}, {"Subject", "Grüße, 你好"}},
            {"äöü\r\n"})
check(r == SMFIR_CONTINUE, "non-ASCII headers: accepted and signed")
-- a 0-byte body
-- an empty body: miltertest invents a body when none is sent and libmilter
-- drops the connection on a 0-byte body chunk, so the body here is one empty
-- line, which canonicalises to the empty body (the true 0-byte body goes
-- through Postfix in t/milter/postfix.sh)
r = message("QEMPTY", {from, {"Subject", "empty"}}, {"\r\n"})
check(r == SMFIR_CONTINUE, "empty body: accepted and signed")
-- 1,000 recipients
r = message("QRCPT1000", {from, {"Subject", "many"}}, {"x\r\n"}, 1000)
check(r == SMFIR_CONTINUE, "1,000 recipients: accepted")
-- a 30 MB body in 64 KiB chunks
local line = string.rep("0123456789", 7) .. "abcd\r\n"
local chunk = string.rep(line, 64 * 1024 // #line)
local chunks = {}
for i = 1, (30 * 1024 * 1024) // #chunk do chunks[#chunks + 1] = chunk end
r = message("QBIG30M", {from, {"Subject", "30 MB"}}, chunks)
check(r == SMFIR_CONTINUE, "30 MB body: accepted and signed")
-- a header From that is garbage
r = message("QGARBAGE", {{"From", "<<<@@@>>>"}}, {"x\r\n"})
check(r == SMFIR_REPLYCODE, "unreadable From: refused")
