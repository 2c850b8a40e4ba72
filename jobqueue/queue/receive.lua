-- receive.lua: hand out up to N ready messages, hidden until a visibility deadline, atomically.
--
-- Key layout (one queue; every key starts with "<prefix>:<queue>:"), passed to every script as KEYS:
--   KEYS[1] msg:        the common start of the message hashes: message <id> is the HASH KEYS[1] .. id, fields
--                       body, enqueued (unix seconds), count (times received so far; absent = 0) and receipt (of
--                       its latest receive, "<id>.<token>"; absent until the first receive). One key per message,
--                       so finishing one is a single DEL. (Pre-release layout change: these were four hashes keyed
--                       by message id; there is no migration.)
--   KEYS[2] ready       LIST  ids receivable now: LPUSH in, RPOP out (oldest first)
--   KEYS[3] delayed     ZSET  ids sent with a delay and never received, score = time they become ready
--   KEYS[4] inflight    ZSET  ids received and not yet deleted, score = their visibility deadline
--   KEYS[5] dead        HASH  message id -> JSON {"body", "reason", "receive_count"} of a dead letter
--   KEYS[6] dead_order  ZSET  dead letter ids, score = time they died (oldest first)
--   KEYS[7] wake        ZSET  at most one member, "ready": a receiver blocked in BZPOPMIN wakes when it appears.
--                       Set whenever a message may have become receivable sooner than a sleeping receiver expects
--                       (sent or put back ready, or sent delayed before every other delayed one); a stale one costs
--                       one empty receive.
-- A live message id is in exactly one of ready / delayed / inflight, and has its hash. Times come from the client's
-- clock (the caller passes "now"), as decimal strings used verbatim as scores.
--
-- ARGV[1]      now (unix seconds)
-- ARGV[2]      visibility deadline: now + visibility timeout
-- ARGV[3]      N, the most messages to return
-- ARGV[4]      max_receive_count
-- ARGV[5]      dead-letter reason for a message received too often, with "%d" where its count goes
-- ARGV[6]      "1": look for due delayed messages first; "0": only when nothing else is ready
-- ARGV[7]      "1": look for expired in-flight messages first; "0": only when nothing else is ready
-- ARGV[8..7+N] one random token per message, made into its receipt "<id>.<token>"
--
-- First, when ARGV[6] asks for it, every delayed message that is due goes back onto the ready list, and, when
-- ARGV[7] asks for it, every in-flight message whose deadline passed (about 1000 of each per call at most; the
-- rest follow on the next call). Each set is read from its head, PEEK members at a time: one read finds both the
-- due members and the next due time, so a call that moves nothing reads each set once and one that moves a few
-- adds only their ZREM and LPUSH. A call that did not look at a set and finds the ready list empty looks at it
-- then (and pops again if that moved anything), so an empty answer always knows every due time. (The caller asks
-- for the delayed set when a delayed message it knows of is due, or a tenth of a second after its last look, and
-- for the in-flight set about once a second: while other messages are ready, a due message waits at most that
-- long to join them, and a busy receive saves the reads.) Then up to N ids are popped oldest first: one already
-- received max_receive_count times becomes a dead letter with the reason instead of being returned; the others get
-- count + 1, a new receipt and the deadline. When N were popped and more are ready, the wake flag is set so that
-- another blocked receiver takes them; a queue found empty drops a stale flag.
-- Returns {messages, next_due[, next_delayed]}: messages an array of {id, body, receipt, receive_count,
-- enqueued_at}; next_due, only when no message is returned, the earliest time a delayed or in-flight message
-- becomes receivable (a score string), or false when there is none: how long an empty receiver may sleep ("now"
-- when every message popped was buried before both sets were read: receive again); next_delayed, when the call
-- read the delayed set, the time its first member falls due (false: the set is empty).

local now = ARGV[1]
local deadline = ARGV[2]
local wanted = tonumber(ARGV[3])
local max_receive_count = tonumber(ARGV[4])
local reason_template = ARGV[5]

local PEEK = 32  -- members of a set's head read at a time

-- moves the due members of zset to the ready list (oldest first); returns the score of the first member left
-- (nil: the set is empty) and how many it moved
local function promote_due(zset)
    local moved = 0
    while true do
        local head = redis.call('ZRANGE', zset, 0, PEEK - 1, 'WITHSCORES')
        local due = {}
        for i = 1, #head, 2 do
            if tonumber(head[i + 1]) > tonumber(now) then
                break
            end
            due[#due + 1] = head[i]
        end
        if #due > 0 then
            redis.call('ZREM', zset, unpack(due))
            redis.call('LPUSH', KEYS[2], unpack(due))
            moved = moved + #due
        end
        local read = #head / 2
        if #due < read then
            return head[2 * #due + 2], moved  -- the score of the first member not due
        end
        if read < PEEK then
            return nil, moved  -- every member was due: the set is empty now
        end
        if moved >= 1000 then
            return now, moved
        end
    end
end

local function bury(id, body, count)
    local entry = {body = body, reason = string.format(reason_template, count), receive_count = count}
    redis.call('HSET', KEYS[5], id, cjson.encode(entry))
    redis.call('ZADD', KEYS[6], now, id)
    redis.call('DEL', KEYS[1] .. id)
end

local next_delayed, next_expiry = nil, nil
local delayed_read, expiry_read = ARGV[6] == '1', ARGV[7] == '1'
if delayed_read then
    next_delayed = promote_due(KEYS[3])
end
if expiry_read then
    next_expiry = promote_due(KEYS[4])
end

local out = {}
local hidden = {}  -- deadline, id pairs for one ZADD
local popped = redis.call('RPOP', KEYS[2], wanted) or {}
if #popped == 0 and not (delayed_read and expiry_read) then
    local moved, more = 0, 0
    if not delayed_read then
        delayed_read = true
        next_delayed, more = promote_due(KEYS[3])
        moved = moved + more
    end
    if not expiry_read then
        expiry_read = true
        next_expiry, more = promote_due(KEYS[4])
        moved = moved + more
    end
    if moved > 0 then
        popped = redis.call('RPOP', KEYS[2], wanted) or {}
    end
end
for _, id in ipairs(popped) do
    local msg = KEYS[1] .. id
    local stored = redis.call('HMGET', msg, 'body', 'enqueued', 'count')
    local body = stored[1]
    if body then
        local count = tonumber(stored[3] or '0') + 1
        if count > max_receive_count then
            bury(id, body, count - 1)
        else
            local receipt = id .. '.' .. ARGV[7 + #out + 1]
            redis.call('HSET', msg, 'count', count, 'receipt', receipt)
            hidden[#hidden + 1] = deadline
            hidden[#hidden + 1] = id
            out[#out + 1] = {id, body, receipt, count, stored[2]}
        end
    end
end
if #hidden > 0 then
    redis.call('ZADD', KEYS[4], unpack(hidden))
end
if #popped == wanted and redis.call('LLEN', KEYS[2]) > 0 then
    redis.call('ZADD', KEYS[7], 0, 'ready')
end
local delayed_head = nil  -- in the answer only when the delayed set was read
if delayed_read then
    delayed_head = next_delayed or false
end
if #out > 0 then
    return {out, false, delayed_head}
end
if not (delayed_read and expiry_read) then  -- every message popped was buried, and a set is unread: receive again
    return {out, now, delayed_head}
end
if not next_delayed and not next_expiry and #popped < wanted then  -- an empty queue: no flag can be due
    redis.call('DEL', KEYS[7])
end
local next_due = next_delayed
if next_expiry and (not next_due or tonumber(next_expiry) < tonumber(next_due)) then
    next_due = next_expiry
end
return {out, next_due or false, delayed_head}
