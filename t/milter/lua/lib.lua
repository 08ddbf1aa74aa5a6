-- t/milter/lua/lib.lua - helpers for the miltertest scripts (dofile'd).
-- Globals from miltertest -D: sock (milter socket), out (a folder for files).

-- miltertest does not print the message of an error(): print it first
function fail(what)
    print("FAIL: " .. what)
    error(what, 3)
end

function check(cond, what)
    if not cond then fail(what) end
end

function reply_is(conn, want, what)
    local got = mt.getreply(conn)
    if got ~= want then
        fail(string.format("%s: reply '%s', want '%s'", what, tostring(got), tostring(want)))
    end
end

-- connect, negotiate, connection info and HELO
function open(ip)
    local conn = mt.connect(sock, 40, 0.25)
    check(conn ~= nil, "connect to " .. sock)
    check(mt.negotiate(conn, nil, nil, nil) == nil, "negotiate")
    check(mt.conninfo(conn, "client.test", ip or "192.0.2.10") == nil, "conninfo")
    -- relayguard-milter asks for no HELO (SMFIP_NOHELO): miltertest then
    -- refuses to send one; any other error fails
    local sent, err = pcall(mt.helo, conn, "client.test")
    check(sent and err == nil or string.find(tostring(err), "SMFIP_NOHELO", 1, true), "helo")
    return conn
end

-- MAIL with the SASL login (nil: none) and queue id; extra ESMTP args allowed
function mail(conn, login, from, qid, ...)
    if login then
        mt.macro(conn, SMFIC_MAIL, "{auth_authen}", login, "i", qid)
    else
        mt.macro(conn, SMFIC_MAIL, "i", qid)
    end
    check(mt.mailfrom(conn, from, ...) == nil, "mailfrom")
end

function rcpt(conn, to)
    check(mt.rcptto(conn, to) == nil, "rcptto")
end

-- headers: a list of {name, value}
function headers(conn, list)
    for _, h in ipairs(list) do
        check(mt.header(conn, h[1], h[2]) == nil, "header " .. h[1])
    end
    check(mt.eoh(conn) == nil, "eoh")
end

-- The message as the MTA would deliver it: the signatures and added headers
-- (names in added) on top, then the headers sent minus the deleted ones.
function write_message(conn, path, list, body, added, deleted)
    local f = assert(io.open(path, "wb"))
    local i = 0
    while true do
        local s = mt.getheader(conn, "DKIM-Signature", i)
        if s == nil then break end
        -- folded with bare LF by the milter; the MTA writes CRLF
        f:write("DKIM-Signature: " .. string.gsub(s, "\r?\n", "\r\n") .. "\r\n")
        i = i + 1
    end
    for _, name in ipairs(added or {}) do
        local v = mt.getheader(conn, name, 0)
        check(v ~= nil, "added header " .. name)
        f:write(name .. ": " .. v .. "\r\n")
    end
    for _, h in ipairs(list) do
        local gone = false
        for _, d in ipairs(deleted or {}) do
            if string.lower(d) == string.lower(h[1]) then gone = true end
        end
        if not gone then f:write(h[1] .. ": " .. h[2] .. "\r\n") end
    end
    f:write("\r\n")
    f:write(body)
    f:close()
    return i
end
