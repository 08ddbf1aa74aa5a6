-- bench/floor/bare.lua - the floor under a relayguard decision with its Redis
-- commands: for each decision of the batch, the commands policy/decide.lua
-- runs for the benchmark's request (the first recipient of a message, two
-- limits, the suppression lists, the event), with the same keys, fields and
-- argument sizes, and none of the logic between them: no numbers parsed, no
-- limit checked, no refusal possible.  What a decision costs Redis when
-- nothing is decided is the least any Lua script doing this work can cost.
-- Measuring only: bench/run-floor.sh builds relayguard-policyd with this in
-- place of policy/decide.lua (so it runs as a function, with FCALL, as
-- decide.lua does).  It enforces nothing.
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
        call('HGET', 'rg:s:a:' .. acct, rcpt)
        local slot = tostring(floor((now + tonumber(A[16])) / 10000) + 1)
        call('SET', 'rg:r:' .. A[4], slot .. '\n' .. A[22] .. '=1\n' .. A[24] .. '=1',
            'PX', A[16], 'NX', 'GET')
        for l = 1, tonumber(A[21]) do
            local hk = 'rg:h:' .. A[20 + 2 * l]
            call('HMGET', hk, '_s', slot, l == 1 and '_t' or 'q:20261125')
            call('HSET', hk, slot, '1', '_s', spack('<ddd', 1, slot, now + 20000))
        end
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
