-- bench/floor/bare5.lua - bare.lua with the fewest commands a different key
-- schema could bring a first recipient down to: five instead of eight.  No
-- account suppression lookup (as if the engine knew the account has no
-- list), and both limits of the account in one hash (one HMGET and one
-- HSET for the two, their fields prefixed with the limit's name); the
-- global suppression lookup, the reservation and the event stay.  It
-- tells whether such a schema change would move the floor.  Measuring
-- only, like bare.lua (bench/run-floor.sh VARIANTS=bare5).  It enforces
-- nothing.
local sunpack, spack, rep, floor = struct.unpack, struct.pack, string.rep, math.floor
local function run(argv)
    local call = redis.call
    local ok = {tonumber(call('GET', 'rg:acct:gen') or '0'), 'ok'}
    local blob, out, pos = argv[2], {}, 1
    for i = 1, tonumber(argv[1]) do
        local argc, p = sunpack('s', blob, pos)
        local A = {sunpack(rep('s', tonumber(argc)), blob, p)}
        pos = A[#A]
        local acct, rcpt, now = A[6], A[11], tonumber(A[2])
        call('HGET', 'rg:s:g', rcpt)
        local slot = tostring(floor((now + tonumber(A[16])) / 10000) + 1)
        call('SET', 'rg:r:' .. A[4], slot .. '\n' .. A[22] .. '=1\n' .. A[24] .. '=1',
            'PX', A[16], 'NX', 'GET')
        local hk = 'rg:h:a:' .. acct
        call('HMGET', hk, 'r1:_s', 'r1:' .. slot, 'r1:_t', 'q2:_s', 'q2:' .. slot, 'q2:q:20261125')
        call('HSET', hk, 'r1:' .. slot, '1', 'r1:_s', spack('<ddd', 1, slot, now + 20000),
            'q2:' .. slot, '1', 'q2:_s', spack('<ddd', 1, slot, now + 20000))
        call('XADD', 'rg:events', 'MAXLEN', '~', A[15], '*',
            'ts', A[2], 'node', A[3], 'stage', A[14], 'qid', A[5],
            'account', acct, 'login', A[7], 'client', A[8], 'country', A[9],
            'sender', A[10], 'rcpt', rcpt, 'nrcpt', A[12], 'size', A[13],
            'verdict', 'accept', 'code', '250', 'reason', 'ok', 'detail', '')
        out[i] = ok
    end
    return out
end

-- (as in decide.lua: the library form replaces this line, policy/local.mk)
return run(ARGV)
