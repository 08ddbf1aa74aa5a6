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
-- shared.  ARGV[1]: n; ARGV[2]: one blob holding, for each decision, its
-- argument count and then its arguments A, every one a NUL-terminated
-- string (store_redis.c encode_decision; split below with struct.unpack,
-- far cheaper for Redis than one ARGV value per argument).  Needs Redis
-- 7.0 or later (SET ... NX GET).
--
-- A     1 op        check | rcpt | eom | log
--       2 now_ms    the engine's clock
--       3 node      4 msgkey (NODE:MSGID or "")   5 queue id
--       6 account   7 login   8 client   9 country
--      10 sender   11 recipient   12 nrcpt   13 size   14 stage
--      15 events_max   16 reservation_ttl_ms   17 hour (YYYYMMDDHH)
--      18 the originating script (X-PHP-Originating-Script; "" if none)
--      19 the accounts generation of the engine's copy of the account
--      20 whether that copy is suspended (1|0)
--      21 nlimits, then per limit 2 values: bucket, and its definition
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
--
-- Two forms, one text (policy/local.mk): run with EVALSHA as it is (the
-- last line runs the batch), or loaded with FUNCTION LOAD as the library
-- relayguard_SHA, where everything but the last line is the body of an
-- init() that its function rg_decide_SHA runs at its first call (a library
-- being loaded sees no globals but redis), and then run() for every batch,
-- with FCALL.  As a function everything above run() is made once; run with
-- EVALSHA it is made again by every batch (about 140,000 of Redis's
-- instructions: the closures, their upvalues, the caches), which a batch
-- of one pays in full.  So nothing above run() may keep a batch's state.

-- (as a function all of this runs inside its first call: redis.call is there)
local call = redis.call
-- The accounts generation, read by run() once per batch, and the replies
-- without details, one table each for the whole batch (Redis only reads
-- them).
local gen_s, gen
local R_OK, R_SUSPENDED, R_DUP, R_LOGGED

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
-- (The caches start with the values every batch asks for: a miss is a
-- metamethod call of some 5,000 instructions, and the blocking store's
-- batches of one miss everything.  As a function the caches live from one
-- batch to the next, so run() starts them afresh every CACHE_RUNS batches:
-- the clock's values alone would make them grow without end.)
local CACHE_RUNS = 200
local NUM_MT = {__index = function(t, k)
    local v = tonumber(k)
    t[k] = v
    return v
end}
-- A limit's definition, parsed once: {kind, unit, count, T, tau, window,
-- window end, hard, its state field in the bucket's hash}.
local DEF_MT = {__index = function(t, k)
    local kind, unit, count, T, tau, win, wend, hard =
        string.match(k, '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
    local d = {kind, unit, tonumber(count), tonumber(T), tonumber(tau),
               win == '-' and '' or win, tonumber(wend), hard,
               kind == 'r' and '_t' or 'q:' .. win}
    t[k] = d
    return d
end}
-- Integers as strings, each made once (decisions repeat the same small
-- counts and slot numbers); not a table made up front: 65 tostring calls
-- cost as much as a whole decision.
local format = string.format
local INT_MT = {__index = function(t, n)
    local v = format('%d', n)
    t[n] = v
    return v
end}
local NUM, DEF, INT
local cache_runs = CACHE_RUNS
local function int(n) return INT[n] end
local max, ceil, floor = math.max, math.ceil, math.floor

local byte, find, match = string.byte, string.find, string.match
local spack, sunpack = struct.pack, struct.unpack

-- A bucket's state is one hash, rg:h:BUCKET, so a limit costs one read per
-- decision (and one write when it reserves or charges):
--   SLOT     units held in that time slot by messages in flight
--   _t       a rate's GCRA theoretical arrival time (µs)
--   q:WINDOW a quota's units charged in that window (2026112413, 20261124,
--            202611); the first charge of a window removes the others
--   _s       the summary: three little-endian doubles (struct '<ddd')
--            n   the sum of the units in the slots present
--            lo  0 when no slot is present, else at most the lowest one
--            x   the engine time (ms) the hash's expiry was last pushed to:
--                a write pushes it only when it needs the hash to live
--                longer (holds: their slot's end plus a slot; a rate: its
--                TAT plus RATE_KEEP; a quota: its window's end plus
--                QUOTA_KEEP), so most writes need no PEXPIRE
-- Holds live in time slots of SLOT ms: slot s lapses at s * SLOT ms.  A
-- message keeps all its holds in the slot of its first reservation.  While
-- lo has not lapsed (or is 0) every slot present is live and n is exact.
-- Otherwise (or with no summary, or one that is not 24 bytes of
-- non-negative numbers) the slots are recounted and the lapsed ones
-- removed, once per slot at most.  The summary is binary because it is read
-- on every decision: one field and one struct.unpack instead of three
-- fields, each converted by Redis to a reply, by the script to a Lua string
-- and by tonumber to a number (two strtod each): about a tenth of a
-- decision's cost (bench/run-script.sh).  The fields a person reads (_t,
-- q:WINDOW, the slots) stay decimal text.
local SLOT = 10000
local RATE_KEEP = 60000
local QUOTA_KEEP = 691200000            -- 8 days

-- A message's reservation, rg:r:MSGKEY, is one string (one GET, one SET PX):
-- "SLOT\nBUCKET=UNITS\nBUCKET=UNITS..." (the slot its holds are in, then the
-- units it holds per bucket), or "charged" once its end of data was charged
-- without a queue id (the charged-once marker then).

-- The decision being made: A, its arguments (A[k] is A k above).
local A, op, now, now_us, node, msgkey, qid, acct, login, client, country
local sender, rcpt, nrcpt, size, stage, events_max, ttl, ttl_s, hour, script
local rkey, ckey, rslot, tslot, tslot_n
-- The managed return path's token id (rg:v:ID) of an accepted message, for
-- the end-of-message event: the engine appends it after the limits of an
-- eom decision that writes a return-path record; nil otherwise.
local verp
-- Its limits, index 1..nl: bucket, definition (DEF: kind, unit, count, T,
-- tau, window, window end, hard, state field); hold key, units reserved
-- already (or nil), units needed now; and what state() read: units held, lowest slot, units in the
-- reservation slot, TAT, quota window and units used in it, expiry.
local nl = 0
local LB, LD = {}, {}
local LHK, LR, LN = {}, {}, {}
local LSUM, LLO, LIN, LTAT, LQ, LX = {}, {}, {}, {}, {}, {}

-- One HSET being built.
local W = {'HSET'}

local function stat(who, verdict, reason)
    local k = 'rg:st:' .. who .. ':' .. hour
    -- the first counter of a new hour sets its expiry (8 days)
    if call('HINCRBY', k, verdict, '1') == 1 then call('EXPIRE', k, '691200') end
    if reason ~= 'ok' then call('HINCRBY', k, 'r:' .. reason, '1') end
    if op == 'eom' and verdict == 'accept' then call('HINCRBY', k, 'rcpt', int(nrcpt)) end
end

local function event(verdict, code, reason, detail, nostats)
    if script == '' and not verp then
        call('XADD', 'rg:events', 'MAXLEN', '~', events_max, '*',
            'ts', A[2], 'node', node, 'stage', stage, 'qid', qid,
            'account', acct, 'login', login, 'client', client, 'country', country,
            'sender', sender, 'rcpt', rcpt, 'nrcpt', int(nrcpt), 'size', size,
            'verdict', verdict, 'code', code, 'reason', reason, 'detail', detail)
    else
        -- the rarer fields: the originating script, the return-path token
        local f = {'XADD', 'rg:events', 'MAXLEN', '~', events_max, '*',
            'ts', A[2], 'node', node, 'stage', stage, 'qid', qid,
            'account', acct, 'login', login, 'client', client, 'country', country,
            'sender', sender, 'rcpt', rcpt, 'nrcpt', int(nrcpt), 'size', size,
            'verdict', verdict, 'code', code, 'reason', reason, 'detail', detail}
        if script ~= '' then f[#f + 1] = 'script'; f[#f + 1] = script end
        if verp then f[#f + 1] = 'verp'; f[#f + 1] = verp end
        call(unpack(f))
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
    local reason, since, expires = match(v, '^([^|]*)|([^|]*)|([^|]*)')
    if reason == nil then return 'manual', '0' end
    local e = tonumber(expires) or 0
    if e > 0 and e * 1000 <= now then
        call('HDEL', key, rcpt)
        return nil
    end
    return reason, since
end

-- Read limit i's bucket: one HMGET of the summary, the reservation slot and
-- the rate's or quota's field (each field asked for costs a scan of the
-- hash, so no more).  Recounts the holds when the summary is not known good.
-- The decimal fields are this script's own integers, turned into numbers
-- with tonumber, which costs about 5 % of a decision more than "+ 0" (two
-- strtod instead of one, and a C call), but a field someone overwrote with
-- text then counts as nothing instead of making the script fail: a failed
-- script would turn every decision of the batch, other accounts' too, into
-- a store error (on_store_error) until the key expired.  For the same
-- reason a summary that is not 24 bytes is recounted, not unpacked.
local function state(i)
    local hk = LHK[i]
    local r = call('HMGET', hk, '_s', tslot, LD[i][9])
    local v = r[3]
    if LD[i][1] == 'r' then
        LTAT[i] = tonumber(v) or 0
    else
        LQ[i] = tonumber(v)    -- nil: nothing charged in this window
    end
    local n, lo, x
    v = r[1]
    if v and #v == 24 then
        n, lo, x = sunpack('<ddd', v)
        -- (NaN fails every comparison)
        if not (n >= 0 and lo >= 0 and x >= 0) then n, x = nil, nil end
    end
    LX[i] = x or 0
    if n and ((lo == 0 and n == 0) or lo * SLOT > now) then
        if lo == 0 then
            LSUM[i], LLO[i], LIN[i] = 0, nil, 0
        else
            v = r[2]
            LSUM[i], LLO[i], LIN[i] = n, lo, tonumber(v) or 0
        end
        return
    end
    local h = call('HGETALL', hk)
    local sum, low, dead = 0, nil, nil
    for j = 1, #h, 2 do
        local f = h[j]
        local c = byte(f)
        if c >= 48 and c <= 57 then     -- a slot (not _s, _t, q:WINDOW, ...)
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
    call('HSET', hk, '_s', spack('<ddd', sum, low or 0, LX[i]))
    LSUM[i], LLO[i] = sum, low
    LIN[i] = (low and tonumber(r[2])) or 0
end

-- Hold LN[i] more units in the reservation slot: one HSET of the new slot
-- value and summary (state() read them in this same script run).
local function reserve(i)
    local hk, n, lo = LHK[i], LN[i], LLO[i]
    -- the hash lives past the slot
    local x = tslot_n * SLOT + SLOT > LX[i]
    if x then LX[i] = tslot_n * SLOT + 2 * SLOT end
    if not lo or tslot_n < lo then lo = tslot_n end
    call('HSET', hk, tslot, int(LIN[i] + n), '_s', spack('<ddd', LSUM[i] + n, lo, LX[i]))
    if x then call('PEXPIRE', hk, int(LX[i] - now)) end
end

-- End of data for limit i: give back what the message held in its slot and,
-- when charge, charge LN[i] units (a rate moves its TAT, a quota counts);
-- one HSET (and an HDEL of an emptied slot).
local function settle(i, charge)
    local hk = LHK[i]
    local w, n = W, 2
    w[2] = hk
    local empty = false
    local r = LR[i]
    -- the summary to write, if it changes
    local sn, dirty = LSUM[i], false
    if r and rslot then
        -- a slot that was recounted away already gives back only what it had
        local v = LIN[i] - r
        local gone = r
        if v <= 0 then
            empty = LIN[i] ~= 0
            gone = max(0, LIN[i])
        else
            w[n + 1], w[n + 2], n = tslot, int(v), n + 2
        end
        if gone > 0 and LLO[i] then
            sn, dirty = LSUM[i] - gone, true
        end
    end
    local to = nil
    if charge then
        local d = LD[i]
        if d[1] == 'r' then
            local new = max(LTAT[i], now_us) + LN[i] * d[4]
            w[n + 1], w[n + 2], n = '_t', format('%d', new), n + 2
            local need = ceil(new / 1000) + RATE_KEEP
            if need > LX[i] then to = need + RATE_KEEP end
        else
            w[n + 1], w[n + 2], n = d[9], format('%d', (LQ[i] or 0) + LN[i]), n + 2
            -- relative to the engine's clock, not Redis's
            if d[7] + QUOTA_KEEP > LX[i] then to = d[7] + QUOTA_KEEP end
            if not LQ[i] then
                -- a new window (once per window): the old ones are over
                local old = nil
                for _, f in ipairs(call('HKEYS', hk)) do
                    if byte(f) == 113 and f ~= d[9] then   -- 'q'
                        old = old or {}
                        old[#old + 1] = f
                    end
                end
                if old then call('HDEL', hk, unpack(old)) end
            end
        end
        -- push the expiry
        if to then
            LX[i], dirty = to, true
        end
    end
    if dirty then
        w[n + 1], w[n + 2], n = '_s', spack('<ddd', sn, LLO[i] or 0, LX[i]), n + 2
    end
    if n > 2 then call(unpack(w, 1, n)) end
    if empty then call('HDEL', hk, tslot) end
    if to then call('PEXPIRE', hk, format('%d', to - now)) end
end

-- Check limit i (state() read); nil when there is room, else the refusal.
local function over(i)
    local h, n, d = LSUM[i], LN[i], LD[i]
    if d[1] == 'r' then
        local need = max(LTAT[i], now_us) + (h + n) * d[4]
        if need - now_us > d[5] then
            local retry = ceil((need - d[5] - now_us) / 1000)
            event(d[8] == '1' and 'reject' or 'tempfail', d[8] == '1' and '550' or '451',
                  'rate_limit', LB[i] .. ' retry ' .. retry .. 'ms')
            return {gen, 'limit', i, retry}
        end
    else
        if (LQ[i] or 0) + h + n > d[3] then
            event(d[8] == '1' and 'reject' or 'tempfail', d[8] == '1' and '550' or '451',
                  'quota', LB[i] .. ' window ' .. d[6])
            return {gen, 'limit', i, d[7] - now}
        end
    end
    return nil
end

local function decide()
    op, now = A[1], NUM[A[2]]
    now_us = now * 1000
    node, msgkey, qid = A[3], A[4], A[5]
    acct, login, client, country = A[6], A[7], A[8], A[9]
    sender, rcpt, size, stage = A[10], A[11], A[13], A[14]
    nrcpt = NUM[A[12]] or 0
    events_max, ttl_s, hour, script = A[15], A[16], A[17], A[18]
    ttl = NUM[ttl_s]
    nl = NUM[A[21]]
    verp = nil
    if op == 'eom' then
        -- past a decision's last argument A holds struct.unpack's next
        -- position (a number): only a string is the token id
        local v = A[22 + 2 * nl]
        if type(v) == 'string' then verp = v end
    end

    if op == 'log' then
        local v = 21 + 2 * nl
        event(A[v + 1], A[v + 2], A[v + 3], A[v + 4])
        return R_LOGGED
    end

    -- Suspension takes effect at once on every node: the engine's copy of
    -- the account says whether it is suspended, and is good while its
    -- generation is the current one (every account change bumps
    -- rg:acct:gen); a node whose copy is older has the field read here.
    if acct ~= '' then
        local s
        if A[19] == gen_s then
            s = A[20]
        else
            s = call('HGET', 'rg:acct:' .. acct, 'suspended')
        end
        if s == '1' or s == 'yes' or s == 'true' then
            event('reject', '550', 'suspended', '')
            return R_SUSPENDED
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

    -- The message's reservation, and the charged-once markers.
    rkey = (msgkey ~= '') and ('rg:r:' .. msgkey) or nil
    ckey = (qid ~= '') and ('rg:c:' .. node .. ':' .. qid) or nil
    local res, had = nil, false
    local dup = false
    -- written: the reservation of a first recipient went in up front
    local written, optimistic = false, false
    rslot = nil
    if not rkey then
        if op == 'eom' and ckey then dup = call('EXISTS', ckey) == 1 end
    elseif op == 'rcpt' and nl > 0 then
        -- Most RCPTs start a message: write the reservation a first
        -- recipient makes (every limit holds 1, in a new slot) only if
        -- there is none, in the same call that reads what is there (SET NX
        -- GET; one call instead of a GET and a SET).  A refusal deletes it
        -- again.
        local v = int(floor((now + ttl) / SLOT) + 1)
        if nl == 2 then     -- the usual: one concatenation
            v = v .. '\n' .. A[22] .. '=1\n' .. A[24] .. '=1'
        else
            for i = 1, nl do v = v .. '\n' .. A[20 + 2 * i] .. '=1' end
        end
        res = call('SET', rkey, v, 'PX', ttl_s, 'NX', 'GET')
        optimistic = true
    elseif op == 'eom' and ckey then
        local r = call('MGET', rkey, ckey)
        res = r[1]
        dup = r[2] ~= false and r[2] ~= nil
    elseif nl > 0 or op == 'eom' then
        res = call('GET', rkey)
    end
    had = res ~= false and res ~= nil
    if not had then res = nil end
    written = optimistic and not had
    if op == 'eom' and res == 'charged' then
        -- Charged already under this message key (no queue id): its
        -- holds went back then, and the marker stays.
        event('accept', '250', 'ok', 'already charged', true)
        return R_DUP
    end
    if res then
        rslot = tonumber(match(res, '^%d+'))
        -- holds in a slot that has lapsed are gone: reserve afresh
        if not rslot or rslot * SLOT <= now then res, rslot = nil, nil end
    end
    -- the slot a reservation made now goes into
    tslot_n = rslot or (floor((now + ttl) / SLOT) + 1)
    tslot = int(tslot_n)

    for i = 1, nl do
        local b = 19 + 2 * i
        local bucket, d = A[b + 1], DEF[A[b + 2]]
        LB[i], LD[i] = bucket, d
        LHK[i] = 'rg:h:' .. bucket
        local r = nil
        if res then
            local p = find(res, '\n' .. bucket .. '=', 1, true)
            if p then r = tonumber(match(res, '^%d+', p + #bucket + 2)) end
        end
        LR[i] = r
        -- units this decision needs
        if op == 'eom' then
            LN[i] = (LD[i][2] == 'r') and (nrcpt > 0 and nrcpt or (r or 1)) or 1
        elseif LD[i][2] == 'm' and r then
            LN[i] = 0          -- this message holds its place already
        else
            LN[i] = 1
        end
    end

    if dup then
        -- Charged already, by another adapter on the same message (policyd
        -- and milter together): only give back what this one held.
        for i = 1, nl do
            if LR[i] then
                state(i)
                settle(i, false)
            end
        end
        if had then call('DEL', rkey) end
        event('accept', '250', 'ok', 'already charged', true)
        return R_DUP
    end

    -- Limits: first check every bucket, then write, so a refusal changes
    -- nothing.  At eom a reserved bucket is charged without a new check: its
    -- holds kept the room.  Everything else is checked against the holds of
    -- every message in flight.
    for i = 1, nl do
        if LN[i] > 0 then
            state(i)
            if not (op == 'eom' and LR[i]) then
                local refusal = over(i)
                if refusal then
                    if written then call('DEL', rkey) end
                    return refusal
                end
            end
        end
    end

    if op == 'rcpt' and rkey then
        -- Reserve: hold the units in the slot that lapses reservation_ttl from
        -- the message's first reservation, so a message that never reaches end
        -- of data (refused later, or aborted) gives them back by itself.
        local v, changed = tslot, false
        for i = 1, nl do
            if LN[i] > 0 then
                reserve(i)
                changed = true
            end
            if not written then
                local u = (LR[i] or 0) + LN[i]
                if u > 0 then v = v .. '\n' .. LB[i] .. '=' .. int(u) end
            end
        end
        -- (what a first recipient reserves went in up front)
        if changed and not written then call('SET', rkey, v, 'PX', ttl_s) end
        event('accept', '250', 'ok', '')
        return R_OK
    end

    if op == 'eom' then
        -- give back the holds and charge the real count, once
        for i = 1, nl do settle(i, true) end
        -- The charged-once marker: under the queue id when there is one (it
        -- also tells a second adapter on the same message), else in the
        -- reservation.  Either lives as long as a reservation would.
        if ckey then
            call('SET', ckey, '1', 'PX', ttl_s)
            if had then call('DEL', rkey) end
        elseif rkey then
            call('SET', rkey, 'charged', 'PX', ttl_s)
        end
        event('accept', '250', 'ok', '')
        return R_OK
    end

    -- op check (MAIL stage, or RCPT without a message key): nothing reserved.
    if op == 'rcpt' then event('accept', '250', 'ok', 'not reserved') end
    return R_OK
end

-- Unpack the decisions of the blob one by one.  struct.unpack('s...')
-- splits NUL-terminated strings in C: much cheaper than as many ARGV
-- values, each of which Redis parses, copies into an object, turns into a
-- Lua string and frees again (about 1,000 instructions each).
local rep = string.rep
local FMT = setmetatable({['25'] = 'sssssssssssssssssssssssss'}, {__index = function(t, k)
    local v = rep('s', tonumber(k))
    t[k] = v
    return v
end})

-- One batch: argv as ARGV above.
local function run(argv)
    gen_s = call('GET', 'rg:acct:gen') or '0'
    gen = tonumber(gen_s)
    R_OK, R_SUSPENDED, R_DUP, R_LOGGED = {gen, 'ok'}, {gen, 'suspended'}, {gen, 'dup'}, {gen, 'logged'}
    if cache_runs >= CACHE_RUNS then
        cache_runs = 0
        NUM = setmetatable({['0'] = 0, ['1'] = 1, ['2'] = 2}, NUM_MT)
        DEF = setmetatable({}, DEF_MT)
        INT = setmetatable({[0] = '0', [1] = '1'}, INT_MT)
    end
    cache_runs = cache_runs + 1
    local blob = argv[2]
    local out, pos = {}, 1
    for i = 1, tonumber(argv[1]) do
        local argc, p = sunpack('s', blob, pos)
        A = {sunpack(FMT[argc], blob, p)}
        pos = A[#A]
        out[i] = decide()
    end
    return out
end

-- (the library form replaces this line: policy/local.mk)
return run(ARGV)
