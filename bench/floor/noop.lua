-- bench/floor/noop.lua - the floor under a relayguard decision: decide.lua's
-- interface (ARGV[1] n, ARGV[2] the blob of n decisions; store_redis.c) and
-- nothing else.  Every decision is answered "ok" without a single Redis
-- command, so what remains is the policy protocol, the event loop, one
-- FCALL round trip per batch and entering Lua.  Measuring only:
-- bench/run-floor.sh builds relayguard-policyd with this in place of
-- policy/decide.lua (so it runs as a function, with FCALL, as decide.lua
-- does).  It enforces nothing.
local function run(argv)
    local gen = redis.call('GET', 'rg:acct:gen') or '0'
    local ok = {tonumber(gen), 'ok'}
    local out = {}
    for i = 1, tonumber(argv[1]) do out[i] = ok end
    return out
end

-- (as in decide.lua: the library form replaces this line, policy/local.mk)
return run(ARGV)
