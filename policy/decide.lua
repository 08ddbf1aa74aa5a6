-- decide.lua - one relayguard decision, atomically, in one round trip.
--
-- The engine (engine.c) has already identified the account and made the
-- static checks; this script does what needs the shared state: suspension,
-- suppression, limits (check, reserve at RCPT, charge at end of message),
-- the event and the stats counters.  Key schema: keys.h.
--
-- One EVALSHA carries a batch of decisions (relayguard-policyd sends every
-- decision that arrives in one turn of its event loop together; the
-- blocking store sends batches of one), so the cost of calling into Lua is
-- shared.  ARGV: n, then for each decision its argument count and its
-- arguments A:
--
-- A     1 op        check | rcpt | eom | log
--       2 now_ms    the engine's clock
--       3 node      4 msgkey (NODE:MSGID or "")   5 queue id
--       6 account   7 login   8 client   9 country
--      10 sender   11 recipient   12 nrcpt   13 size   14 stage
--      15 verdict  16 code  17 reason  18 detail      (op log: the engine's verdict)
--      19 events_max   20 reservation_ttl_ms   21 hour (YYYYMMDDHH)
--      22 nlimits, then per limit 9 values:
--         bucket, kind (r|q), unit (m|r), count, T_us, tau_us, window, window_end_ms, hard (1|0)
--
-- Returns one {gen, outcome, a1, a2, a3} per decision, in order:
--   {gen, "ok"}                         allowed (rcpt: reserved; eom: charged)
--   {gen, "suspended"}
--   {gen, "suppressed", scope, reason, since}   scope global|account
--   {gen, "limit", index, retry_ms}     limit index (1-based) is full
--   {gen, "dup"}                        eom: this message was charged already
--   {gen, "logged"}                     op log
-- gen is the accounts generation, so nodes notice account changes.

local gen = tonumber(redis.call('GET', 'rg:acct:gen') or '0')

-- Cost matters here: the script runs for every decision, and what costs is
-- not the commands but the glue.  Two conversions stood out (callgrind):
-- strings to numbers (tonumber calls strtod twice) and numbers to strings
-- (redis.call formats a Lua number with %.17g).  So the numbers of ARGV,
-- which repeat from one decision of a batch to the next (clock, limits,
-- TTL), are parsed once per batch (NUM), and integers go to redis.call as
-- strings made with %d (int) or taken from ARGV as they came.
local NUM = setmetatable({}, {__index = function(t, k)
    local v = tonumber(k)
    t[k] = v
    return v
end})
local SMALL = {}
for i = 0, 64 do SMALL[i] = tostring(i) end
local function int(n) return SMALL[n] or string.format('%d', n) end

local function decide(A)
    local op, now = A[1], NUM[A[2]]
    local node, msgkey, qid = A[3], A[4], A[5]
    local acct, login, client, country = A[6], A[7], A[8], A[9]
    local sender, rcpt, nrcpt, size, stage = A[10], A[11], NUM[A[12]] or 0, A[13], A[14]
    local events_max, ttl, hour = A[19], NUM[A[20]], A[21]
    local nlimits = NUM[A[22]]
    local now_us = now * 1000

    local function event(verdict, code, reason, detail, nostats)
        redis.call('XADD', 'rg:events', 'MAXLEN', '~', events_max, '*',
            'ts', A[2], 'node', node, 'stage', stage, 'qid', qid,
            'account', acct, 'login', login, 'client', client, 'country', country,
            'sender', sender, 'rcpt', rcpt, 'nrcpt', int(nrcpt), 'size', size,
            'verdict', verdict, 'code', code, 'reason', reason, 'detail', detail)
        -- Stats count refusals and sent messages; an accepted RCPT is counted
        -- when its message is charged at end of data.
        if nostats or (verdict == 'accept' and op ~= 'eom') then return end
        local who = {'*'}
        if acct ~= '' then who[2] = acct end
        for _, a in ipairs(who) do
            local k = 'rg:st:' .. a .. ':' .. hour
            -- the first counter of a new hour sets its expiry (8 days)
            if redis.call('HINCRBY', k, verdict, '1') == 1 then redis.call('EXPIRE', k, '691200') end
            if reason ~= 'ok' then redis.call('HINCRBY', k, 'r:' .. reason, '1') end
            if op == 'eom' and verdict == 'accept' then redis.call('HINCRBY', k, 'rcpt', int(nrcpt)) end
        end
    end

    if op == 'log' then
        event(A[15], A[16], A[17], A[18])
        return {gen, 'logged'}
    end

    -- Suspension is read here, not from the node's cached account, so that it
    -- takes effect at once on every node.
    if acct ~= '' then
        local s = redis.call('HGET', 'rg:acct:' .. acct, 'suspended')
        if s == 'yes' or s == '1' or s == 'true' then
            event('reject', '550', 'suspended', '')
            return {gen, 'suspended'}
        end
    end

    -- Suppression: global list first, then the account's.
    local function suppressed(key)
        local v = redis.call('HGET', key, rcpt)
        if not v then return nil end
        local reason, since, expires = string.match(v, '^([^|]*)|([^|]*)|([^|]*)')
        if reason == nil then return 'manual', '0' end
        local e = tonumber(expires) or 0
        if e > 0 and e * 1000 <= now then
            redis.call('HDEL', key, rcpt)
            return nil
        end
        return reason, since
    end
    if op == 'rcpt' and rcpt ~= '' then
        local scopes = {{'global', 'rg:s:g'}}
        if acct ~= '' then scopes[2] = {'account', 'rg:s:a:' .. acct} end
        for _, sc in ipairs(scopes) do
            local reason, since = suppressed(sc[2])
            if reason then
                event('reject', '550', 'suppressed', sc[1] .. ' ' .. reason)
                return {gen, 'suppressed', sc[1], reason, since}
            end
        end
    end

    -- Charged-once markers.
    local rkey = (msgkey ~= '') and ('rg:r:' .. msgkey) or nil
    local ckey = (qid ~= '') and ('rg:c:' .. node .. ':' .. qid) or nil
    local dup, charged_here = false, false
    if op == 'eom' then
        dup = (ckey and redis.call('EXISTS', ckey) == 1) or false
        if not dup and rkey and redis.call('HEXISTS', rkey, '_charged') == 1 then
            dup, charged_here = true, true
        end
    end

    -- Limits: first check every bucket, then write, so a refusal changes nothing.
    local L = {}
    local reserved = {}
    if rkey and nlimits > 0 and not charged_here then
        local h = redis.call('HGETALL', rkey)
        for j = 1, #h, 2 do reserved[h[j]] = tonumber(h[j + 1]) end
        -- holds in a slot that has lapsed are gone: reserve afresh
        if reserved['_slot'] and reserved['_slot'] * 10000 <= now then reserved = {} end
    end
    -- Holds live in time slots of SLOT ms: a bucket's holds are the hash
    -- rg:h:BUCKET, field = slot number, value = units held; a slot's holds lapse
    -- when the slot (slot * SLOT ms) is past.  A message keeps all its holds in
    -- the slot of its first reservation ('_slot' in its reservation).  Two
    -- summary fields spare reading every slot on each decision: '_n' is the sum
    -- of the units in the slots present, '_lo' is at most the lowest slot
    -- present; while '_lo' has not lapsed every slot present is live and '_n'
    -- is exact.  Otherwise (or with no summary yet) the slots are recounted
    -- and the lapsed ones removed, once per slot at most.
    local SLOT = 10000
    local rslot = reserved['_slot']
    -- the slot a reservation made now goes into
    local tslot = rslot and int(rslot) or int(math.floor((now + ttl) / SLOT) + 1)
    for i = 1, nlimits do
        local b = 22 + (i - 1) * 9
        local l = {bucket = A[b + 1], kind = A[b + 2], unit = A[b + 3],
                   count = NUM[A[b + 4]], T = NUM[A[b + 5]],
                   tau = NUM[A[b + 6]], win = A[b + 7],
                   win_end = NUM[A[b + 8]], hard = A[b + 9]}
        l.hkey = 'rg:h:' .. l.bucket
        l.reserved = reserved[l.bucket]
        -- units this decision needs
        if op == 'eom' then
            if l.unit == 'r' then
                l.n = nrcpt > 0 and nrcpt or (l.reserved or 1)
            else
                l.n = 1
            end
        elseif l.unit == 'm' and l.reserved then
            l.n = 0            -- this message holds its place already
        else
            l.n = 1
        end
        L[i] = l
    end

    -- Release this message's holds (at eom, charged or not).  A slot that
    -- was recounted away already gives back only what it still had.
    local function release(l)
        if not l.reserved or not rslot then return end
        local v = redis.call('HINCRBY', l.hkey, tslot, int(-l.reserved))
        local gone = l.reserved
        if v <= 0 then
            redis.call('HDEL', l.hkey, tslot)
            if v < 0 then gone = math.max(0, l.reserved + v) end
        end
        if gone > 0 then redis.call('HINCRBY', l.hkey, '_n', int(-gone)) end
    end

    if dup and charged_here then
        -- Charged already under this message key (no queue id): its holds
        -- went back then, and the reservation stays the charged marker.
        event('accept', '250', 'ok', 'already charged', true)
        return {gen, 'dup'}
    end
    if dup then
        -- Charged already, by another adapter on the same message (policyd
        -- and milter together): only give back what this one held.
        for _, l in ipairs(L) do release(l) end
        if rkey then redis.call('DEL', rkey) end
        event('accept', '250', 'ok', 'already charged', true)
        return {gen, 'dup'}
    end

    -- Units held in a bucket by messages in flight.  Also notes the bucket's
    -- summary and the units already in the reservation slot, for reserve().
    local function held(l)
        local r = redis.call('HMGET', l.hkey, '_n', '_lo', tslot)
        local n, lo = tonumber(r[1]), tonumber(r[2])
        if n and lo and lo * SLOT > now then
            l.sum, l.lo, l.inslot = n, lo, tonumber(r[3]) or 0
            return n
        end
        local h = redis.call('HGETALL', l.hkey)
        local sum, low, dead = 0, nil, nil
        for j = 1, #h, 2 do
            local f = h[j]
            if f ~= '_n' and f ~= '_lo' then
                local slot = tonumber(f)
                if slot and slot * SLOT > now then
                    sum = sum + (tonumber(h[j + 1]) or 0)
                    if not low or slot < low then low = slot end
                else
                    dead = dead or {}
                    dead[#dead + 1] = f
                end
            end
        end
        if dead then redis.call('HDEL', l.hkey, unpack(dead)) end
        if low then
            redis.call('HSET', l.hkey, '_n', int(sum), '_lo', int(low))
        elseif #h > 0 then
            redis.call('HDEL', l.hkey, '_n', '_lo')
        end
        l.sum, l.lo = sum, low
        l.inslot = (low and tonumber(r[3])) or 0
        return sum
    end

    -- Hold l.n more units in the reservation slot: one HSET of the new slot
    -- value and summary (held() read them in this same script run).
    local function reserve(l)
        local slot = tonumber(tslot)
        if l.lo and slot >= l.lo then
            redis.call('HSET', l.hkey, tslot, int(l.inslot + l.n), '_n', int(l.sum + l.n))
        else
            redis.call('HSET', l.hkey, tslot, int(l.inslot + l.n), '_n', int(l.sum + l.n), '_lo', tslot)
        end
        -- a new slot extends the hash's life past the slot
        if l.inslot == 0 then redis.call('PEXPIRE', l.hkey, int(ttl + 2 * SLOT)) end
    end

    for i, l in ipairs(L) do
        -- At eom a reserved bucket is charged without a new check: its holds
        -- kept the room.  Everything else is checked against the holds of
        -- every message in flight.
        local check = l.n > 0 and not (op == 'eom' and l.reserved)
        if check then
            local h = held(l)
            if l.kind == 'r' then
                local tat = tonumber(redis.call('GET', 'rg:b:' .. l.bucket) or '0')
                local base = math.max(tat, now_us)
                local need = base + (h + l.n) * l.T
                if need - now_us > l.tau then
                    local retry = math.ceil((need - l.tau - now_us) / 1000)
                    event(l.hard == '1' and 'reject' or 'tempfail', l.hard == '1' and '550' or '451',
                          'rate_limit', l.bucket .. ' retry ' .. retry .. 'ms')
                    return {gen, 'limit', i, retry}
                end
            else
                local used = tonumber(redis.call('GET', 'rg:q:' .. l.bucket .. ':' .. l.win) or '0')
                if used + h + l.n > l.count then
                    local retry = l.win_end - now
                    event(l.hard == '1' and 'reject' or 'tempfail', l.hard == '1' and '550' or '451',
                          'quota', l.bucket .. ' window ' .. l.win)
                    return {gen, 'limit', i, retry}
                end
            end
        end
    end

    if op == 'rcpt' and rkey then
        -- Reserve: hold the units in the slot that lapses reservation_ttl from
        -- the message's first reservation, so a message that never reaches end
        -- of data (refused later, or aborted) gives them back by itself.
        local fields = {}
        for _, l in ipairs(L) do
            if l.n > 0 then
                reserve(l)
                fields[#fields + 1] = l.bucket
                fields[#fields + 1] = int((l.reserved or 0) + l.n)
            end
        end
        if #fields > 0 then
            redis.call('HSET', rkey, '_slot', tslot, unpack(fields))
            redis.call('PEXPIRE', rkey, A[20])
        end
        event('accept', '250', 'ok', '')
        return {gen, 'ok'}
    end

    if op == 'eom' then
        for _, l in ipairs(L) do
            release(l)
            -- charge the real count, once
            if l.kind == 'r' then
                local bkey = 'rg:b:' .. l.bucket
                local tat = tonumber(redis.call('GET', bkey) or '0')
                local new = math.max(tat, now_us) + l.n * l.T
                redis.call('SET', bkey, int(new),
                           'PX', int(math.ceil((new - now_us) / 1000) + 60000))
            else
                local qkey = 'rg:q:' .. l.bucket .. ':' .. l.win
                redis.call('INCRBY', qkey, int(l.n))
                -- relative to the engine's clock, not Redis's
                redis.call('PEXPIRE', qkey, int(l.win_end - now + 691200000))
            end
        end
        -- The charged-once marker: under the queue id when there is one (it
        -- also tells a second adapter on the same message), else in the
        -- reservation.  Either lives as long as a reservation would.
        if ckey then
            redis.call('SET', ckey, '1', 'PX', A[20])
            if rkey then redis.call('DEL', rkey) end
        elseif rkey then
            redis.call('HSET', rkey, '_charged', '1')
            redis.call('PEXPIRE', rkey, A[20])
        end
        event('accept', '250', 'ok', '')
        return {gen, 'ok'}
    end

    -- op check (MAIL stage, or RCPT without a message key): nothing reserved.
    if op == 'rcpt' then event('accept', '250', 'ok', 'not reserved') end
    return {gen, 'ok'}
end

local out, pos = {}, 2
for i = 1, tonumber(ARGV[1]) do
    local argc = NUM[ARGV[pos]]
    out[i] = decide({unpack(ARGV, pos + 1, pos + argc)})
    pos = pos + 1 + argc
end
return out
