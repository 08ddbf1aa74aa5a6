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
--      15 events_max   16 reservation_ttl_ms   17 hour (YYYYMMDDHH)
--      18 the originating script (X-PHP-Originating-Script; "" if none)
--      19 nlimits, then per limit 2 values: bucket, and its definition
--         "KIND UNIT COUNT T_us TAU_us WINDOW WINDOW_END_ms HARD":
--         kind r|q, unit m|r, window "-" for a rate, hard 1|0
--      op log only, after the (zero) limits: verdict, code, reason, detail
--         (the engine's own verdict)
--
-- Returns one {gen, outcome, a1, a2, a3} per decision, in order:
--   {gen, "ok"}                         allowed (rcpt: reserved; eom: charged)
--   {gen, "suspended"}
--   {gen, "suppressed", scope, reason, since}   scope global|account
--   {gen, "limit", index, retry_ms}     limit index (1-based) is full
--   {gen, "dup"}                        eom: this message was charged already
--   {gen, "logged"}                     op log
-- gen is the accounts generation, so nodes notice account changes.

local call = redis.call
local gen = tonumber(call('GET', 'rg:acct:gen') or '0')

-- Cost matters here: the script runs for every decision, and most of its
-- cost is not the commands but the glue around them (callgrind: with every
-- redis.call stubbed out the script still cost two thirds of its
-- instructions).  So: the numbers of ARGV, which repeat from one decision
-- of a batch to the next (clock, limits, TTL), are parsed once per batch
-- (NUM; tonumber calls strtod twice); integers go to redis.call as strings
-- made with %d (int) or as they came in ARGV, not as Lua numbers that
-- redis.call would format with %.17g; and a decision allocates next to
-- nothing: its state lives in the chunk-level locals and arrays below,
-- overwritten by each decision, and the functions are made once per batch,
-- not once per decision.
local NUM = setmetatable({}, {__index = function(t, k)
    local v = tonumber(k)
    t[k] = v
    return v
end})
-- A limit's definition, parsed once per batch: {kind, unit, count, T, tau,
-- window, window end, hard}.
local DEF = setmetatable({}, {__index = function(t, k)
    local kind, unit, count, T, tau, win, wend, hard =
        string.match(k, '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
    local d = {kind, unit, tonumber(count), tonumber(T), tonumber(tau),
               win == '-' and '' or win, tonumber(wend), hard}
    t[k] = d
    return d
end})
local SMALL = {}
for i = 0, 64 do SMALL[i] = tostring(i) end
local function int(n) return SMALL[n] or string.format('%d', n) end
local max, ceil, floor = math.max, math.ceil, math.floor

-- Holds live in time slots of SLOT ms: a bucket's holds are the hash
-- rg:h:BUCKET, field = slot number, value = units held; a slot's holds
-- lapse when the slot (slot * SLOT ms) is past.  A message keeps all its
-- holds in the slot of its first reservation ('_slot' in its reservation).
-- Two summary fields spare reading every slot on each decision: '_n' is the
-- sum of the units in the slots present, '_lo' is at most the lowest slot
-- present; while '_lo' has not lapsed every slot present is live and '_n'
-- is exact.  Otherwise (or with no summary yet) the slots are recounted and
-- the lapsed ones removed, once per slot at most.
local SLOT = 10000

-- The decision being made (A k = ARGV[o + k]).
local o, op, now, now_us, node, msgkey, qid, acct, login, client, country
local sender, rcpt, nrcpt, size, stage, events_max, ttl, ttl_s, hour, script
local rkey, ckey, rslot, tslot
-- Its limits, index 1..nl: bucket, kind, unit, count, T, tau, window,
-- window end, hard; hold key, units reserved already (or nil), units
-- needed now; and what held() read: units held, lowest slot, units in the
-- reservation slot.
local nl = 0
local LB, LK, LU, LC, LT, LTAU, LW, LWE, LH = {}, {}, {}, {}, {}, {}, {}, {}, {}
local LHK, LR, LN, LSUM, LLO, LIN = {}, {}, {}, {}, {}, {}

local function stat(who, verdict, reason)
    local k = 'rg:st:' .. who .. ':' .. hour
    -- the first counter of a new hour sets its expiry (8 days)
    if call('HINCRBY', k, verdict, '1') == 1 then call('EXPIRE', k, '691200') end
    if reason ~= 'ok' then call('HINCRBY', k, 'r:' .. reason, '1') end
    if op == 'eom' and verdict == 'accept' then call('HINCRBY', k, 'rcpt', int(nrcpt)) end
end

local function event(verdict, code, reason, detail, nostats)
    if script == '' then
        call('XADD', 'rg:events', 'MAXLEN', '~', events_max, '*',
            'ts', ARGV[o + 2], 'node', node, 'stage', stage, 'qid', qid,
            'account', acct, 'login', login, 'client', client, 'country', country,
            'sender', sender, 'rcpt', rcpt, 'nrcpt', int(nrcpt), 'size', size,
            'verdict', verdict, 'code', code, 'reason', reason, 'detail', detail)
    else
        call('XADD', 'rg:events', 'MAXLEN', '~', events_max, '*',
            'ts', ARGV[o + 2], 'node', node, 'stage', stage, 'qid', qid,
            'account', acct, 'login', login, 'client', client, 'country', country,
            'sender', sender, 'rcpt', rcpt, 'nrcpt', int(nrcpt), 'size', size,
            'verdict', verdict, 'code', code, 'reason', reason, 'detail', detail,
            'script', script)
    end
    -- Stats count refusals and sent messages; an accepted RCPT is counted
    -- when its message is charged at end of data.
    if nostats or (verdict == 'accept' and op ~= 'eom') then return end
    stat('*', verdict, reason)
    if acct ~= '' then stat(acct, verdict, reason) end
end

-- Suppression entry of rcpt in list key: reason, since; nil when absent or
-- expired (an expired entry is removed).
local function suppressed(key)
    local v = call('HGET', key, rcpt)
    if not v then return nil end
    local reason, since, expires = string.match(v, '^([^|]*)|([^|]*)|([^|]*)')
    if reason == nil then return 'manual', '0' end
    local e = tonumber(expires) or 0
    if e > 0 and e * 1000 <= now then
        call('HDEL', key, rcpt)
        return nil
    end
    return reason, since
end

-- Release the message's holds of limit i (at eom, charged or not).  A slot
-- that was recounted away already gives back only what it still had.
local function release(i)
    local r = LR[i]
    if not r or not rslot then return end
    local v = call('HINCRBY', LHK[i], tslot, int(-r))
    local gone = r
    if v <= 0 then
        call('HDEL', LHK[i], tslot)
        if v < 0 then gone = max(0, r + v) end
    end
    if gone > 0 then call('HINCRBY', LHK[i], '_n', int(-gone)) end
end

-- Units held in limit i's bucket by messages in flight.  Also notes the
-- summary and the units already in the reservation slot, for reserve().
local function held(i)
    local hk = LHK[i]
    local r = call('HMGET', hk, '_n', '_lo', tslot)
    local n, lo = tonumber(r[1]), tonumber(r[2])
    if n and lo and lo * SLOT > now then
        LSUM[i], LLO[i], LIN[i] = n, lo, tonumber(r[3]) or 0
        return n
    end
    local h = call('HGETALL', hk)
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
    if dead then call('HDEL', hk, unpack(dead)) end
    if low then
        call('HSET', hk, '_n', int(sum), '_lo', int(low))
    elseif #h > 0 then
        call('HDEL', hk, '_n', '_lo')
    end
    LSUM[i], LLO[i] = sum, low
    LIN[i] = (low and tonumber(r[3])) or 0
    return sum
end

-- Hold LN[i] more units in the reservation slot: one HSET of the new slot
-- value and summary (held() read them in this same script run).
local function reserve(i)
    local hk, n, lo = LHK[i], LN[i], LLO[i]
    if lo and NUM[tslot] >= lo then
        call('HSET', hk, tslot, int(LIN[i] + n), '_n', int(LSUM[i] + n))
    else
        call('HSET', hk, tslot, int(LIN[i] + n), '_n', int(LSUM[i] + n), '_lo', tslot)
    end
    -- a new slot extends the hash's life past the slot
    if LIN[i] == 0 then call('PEXPIRE', hk, int(ttl + 2 * SLOT)) end
end

-- Check limit i; nil when there is room, else the refusal.
local function over(i)
    local h = held(i)
    local n = LN[i]
    if LK[i] == 'r' then
        local tat = tonumber(call('GET', 'rg:b:' .. LB[i]) or '0')
        local need = max(tat, now_us) + (h + n) * LT[i]
        if need - now_us > LTAU[i] then
            local retry = ceil((need - LTAU[i] - now_us) / 1000)
            event(LH[i] == '1' and 'reject' or 'tempfail', LH[i] == '1' and '550' or '451',
                  'rate_limit', LB[i] .. ' retry ' .. retry .. 'ms')
            return {gen, 'limit', i, retry}
        end
    else
        local used = tonumber(call('GET', 'rg:q:' .. LB[i] .. ':' .. LW[i]) or '0')
        if used + h + n > LC[i] then
            event(LH[i] == '1' and 'reject' or 'tempfail', LH[i] == '1' and '550' or '451',
                  'quota', LB[i] .. ' window ' .. LW[i])
            return {gen, 'limit', i, LWE[i] - now}
        end
    end
    return nil
end

local function decide()
    op, now = ARGV[o + 1], NUM[ARGV[o + 2]]
    now_us = now * 1000
    node, msgkey, qid = ARGV[o + 3], ARGV[o + 4], ARGV[o + 5]
    acct, login, client, country = ARGV[o + 6], ARGV[o + 7], ARGV[o + 8], ARGV[o + 9]
    sender, rcpt, size, stage = ARGV[o + 10], ARGV[o + 11], ARGV[o + 13], ARGV[o + 14]
    nrcpt = NUM[ARGV[o + 12]] or 0
    events_max, ttl_s, hour, script = ARGV[o + 15], ARGV[o + 16], ARGV[o + 17], ARGV[o + 18]
    ttl = NUM[ttl_s]
    nl = NUM[ARGV[o + 19]]

    if op == 'log' then
        local v = o + 19 + 2 * nl
        event(ARGV[v + 1], ARGV[v + 2], ARGV[v + 3], ARGV[v + 4])
        return {gen, 'logged'}
    end

    -- Suspension is read here, not from the node's cached account, so that it
    -- takes effect at once on every node.
    if acct ~= '' then
        local s = call('HGET', 'rg:acct:' .. acct, 'suspended')
        if s == 'yes' or s == '1' or s == 'true' then
            event('reject', '550', 'suspended', '')
            return {gen, 'suspended'}
        end
    end

    -- Suppression: global list first, then the account's.
    if op == 'rcpt' and rcpt ~= '' then
        local reason, since = suppressed('rg:s:g')
        if reason then
            event('reject', '550', 'suppressed', 'global ' .. reason)
            return {gen, 'suppressed', 'global', reason, since}
        end
        if acct ~= '' then
            reason, since = suppressed('rg:s:a:' .. acct)
            if reason then
                event('reject', '550', 'suppressed', 'account ' .. reason)
                return {gen, 'suppressed', 'account', reason, since}
            end
        end
    end

    -- Charged-once markers.
    rkey = (msgkey ~= '') and ('rg:r:' .. msgkey) or nil
    ckey = (qid ~= '') and ('rg:c:' .. node .. ':' .. qid) or nil
    local dup, charged_here = false, false
    if op == 'eom' then
        dup = (ckey and call('EXISTS', ckey) == 1) or false
        if not dup and rkey and call('HEXISTS', rkey, '_charged') == 1 then
            dup, charged_here = true, true
        end
    end
    if dup and charged_here then
        -- Charged already under this message key (no queue id): its holds
        -- went back then, and the reservation stays the charged marker.
        event('accept', '250', 'ok', 'already charged', true)
        return {gen, 'dup'}
    end

    -- The message's reservation: BUCKET -> units, '_slot'.
    local res = nil
    rslot = nil
    if rkey and nl > 0 then
        res = call('HGETALL', rkey)
        if #res == 0 then
            res = nil
        else
            for j = 1, #res, 2 do
                if res[j] == '_slot' then rslot = tonumber(res[j + 1]) end
            end
            -- holds in a slot that has lapsed are gone: reserve afresh
            if not rslot or rslot * SLOT <= now then res, rslot = nil, nil end
        end
    end
    -- the slot a reservation made now goes into
    tslot = rslot and int(rslot) or int(floor((now + ttl) / SLOT) + 1)

    for i = 1, nl do
        local b = o + 19 + (i - 1) * 2
        local bucket, d = ARGV[b + 1], DEF[ARGV[b + 2]]
        LB[i], LK[i], LU[i], LC[i], LT[i], LTAU[i], LW[i], LWE[i], LH[i] =
            bucket, d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8]
        LHK[i] = 'rg:h:' .. bucket
        local r = nil
        if res then
            for j = 1, #res, 2 do
                if res[j] == bucket then r = tonumber(res[j + 1]) break end
            end
        end
        LR[i] = r
        -- units this decision needs
        if op == 'eom' then
            LN[i] = (LU[i] == 'r') and (nrcpt > 0 and nrcpt or (r or 1)) or 1
        elseif LU[i] == 'm' and r then
            LN[i] = 0          -- this message holds its place already
        else
            LN[i] = 1
        end
    end

    if dup then
        -- Charged already, by another adapter on the same message (policyd
        -- and milter together): only give back what this one held.
        for i = 1, nl do release(i) end
        if rkey then call('DEL', rkey) end
        event('accept', '250', 'ok', 'already charged', true)
        return {gen, 'dup'}
    end

    -- Limits: first check every bucket, then write, so a refusal changes
    -- nothing.  At eom a reserved bucket is charged without a new check: its
    -- holds kept the room.  Everything else is checked against the holds of
    -- every message in flight.
    for i = 1, nl do
        if LN[i] > 0 and not (op == 'eom' and LR[i]) then
            local refusal = over(i)
            if refusal then return refusal end
        end
    end

    if op == 'rcpt' and rkey then
        -- Reserve: hold the units in the slot that lapses reservation_ttl from
        -- the message's first reservation, so a message that never reaches end
        -- of data (refused later, or aborted) gives them back by itself.
        local fields = nil
        for i = 1, nl do
            if LN[i] > 0 then
                reserve(i)
                fields = fields or {'_slot', tslot}
                fields[#fields + 1] = LB[i]
                fields[#fields + 1] = int((LR[i] or 0) + LN[i])
            end
        end
        if fields then
            call('HSET', rkey, unpack(fields))
            call('PEXPIRE', rkey, ttl_s)
        end
        event('accept', '250', 'ok', '')
        return {gen, 'ok'}
    end

    if op == 'eom' then
        for i = 1, nl do
            release(i)
            -- charge the real count, once
            if LK[i] == 'r' then
                local bkey = 'rg:b:' .. LB[i]
                local tat = tonumber(call('GET', bkey) or '0')
                local new = max(tat, now_us) + LN[i] * LT[i]
                call('SET', bkey, int(new), 'PX', int(ceil((new - now_us) / 1000) + 60000))
            else
                local qkey = 'rg:q:' .. LB[i] .. ':' .. LW[i]
                call('INCRBY', qkey, int(LN[i]))
                -- relative to the engine's clock, not Redis's
                call('PEXPIRE', qkey, int(LWE[i] - now + 691200000))
            end
        end
        -- The charged-once marker: under the queue id when there is one (it
        -- also tells a second adapter on the same message), else in the
        -- reservation.  Either lives as long as a reservation would.
        if ckey then
            call('SET', ckey, '1', 'PX', ttl_s)
            if rkey then call('DEL', rkey) end
        elseif rkey then
            call('HSET', rkey, '_charged', '1')
            call('PEXPIRE', rkey, ttl_s)
        end
        event('accept', '250', 'ok', '')
        return {gen, 'ok'}
    end

    -- op check (MAIL stage, or RCPT without a message key): nothing reserved.
    if op == 'rcpt' then event('accept', '250', 'ok', 'not reserved') end
    return {gen, 'ok'}
end

local out = {}
o = 2
for i = 1, tonumber(ARGV[1]) do
    local argc = NUM[ARGV[o]]
    out[i] = decide()
    o = o + 1 + argc
end
return out
