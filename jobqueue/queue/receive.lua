-- receive.lua: hand out up to N ready messages, hidden until a visibility deadline, atomically.
--
-- Key layout (one queue; every key starts with "<prefix>:<queue>:"), passed to every script as KEYS:
--   KEYS[1] bodies      HASH  message id -> body
--   KEYS[2] enqueued    HASH  message id -> enqueue time (unix seconds)
--   KEYS[3] counts      HASH  message id -> times received so far (absent = 0)
--   KEYS[4] receipts    HASH  message id -> receipt of its latest receive ("<id>.<token>")
--   KEYS[5] ready       LIST  ids receivable now: LPUSH in, RPOP out (oldest first)
--   KEYS[6] delayed     ZSET  ids sent with a delay and never received, score = time they become ready
--   KEYS[7] inflight    ZSET  ids received and not yet deleted, score = their visibility deadline
--   KEYS[8] dead        HASH  message id -> JSON {"body", "reason", "receive_count"} of a dead letter
--   KEYS[9] dead_order  ZSET  dead letter ids, score = time they died (oldest first)
-- A live message id is in exactly one of ready / delayed / inflight. Times come from the client's clock
-- (the caller passes "now"), as decimal strings used verbatim as scores.
--
-- ARGV[1]      now (unix seconds)
-- ARGV[2]      visibility deadline: now + visibility timeout
-- ARGV[3]      N, the most messages to return
-- ARGV[4]      max_receive_count
-- ARGV[5]      dead-letter reason for a message received too often, with "%d" where its count goes
-- ARGV[6..5+N] one random token per message, made into its receipt "<id>.<token>"
--
-- First every delayed message that is due and every in-flight message whose deadline passed goes back
-- onto the ready list (at most 1000 of each per call; the rest follow on the next call). Then ids are
-- popped oldest first: one already received max_receive_count times becomes a dead letter with the
-- reason instead of being returned; the others get count + 1, a new receipt and the deadline.
-- Returns an array of {id, body, receipt, receive_count, enqueued_at}.

local now = ARGV[1]
local deadline = ARGV[2]
local wanted = tonumber(ARGV[3])
local max_receive_count = tonumber(ARGV[4])
local reason_template = ARGV[5]

local function promote_due(zset)
    local due = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 1000)
    for _, id in ipairs(due) do
        redis.call('ZREM', zset, id)
        redis.call('LPUSH', KEYS[5], id)
    end
end

local function bury(id, body, count)
    local entry = {body = body, reason = string.format(reason_template, count), receive_count = count}
    redis.call('HSET', KEYS[8], id, cjson.encode(entry))
    redis.call('ZADD', KEYS[9], now, id)
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
end

promote_due(KEYS[6])
promote_due(KEYS[7])

local out = {}
while #out < wanted do
    local id = redis.call('RPOP', KEYS[5])
    if not id then
        break
    end
    local body = redis.call('HGET', KEYS[1], id)
    if body then
        local count = tonumber(redis.call('HGET', KEYS[3], id) or '0')
        if count >= max_receive_count then
            bury(id, body, count)
        else
            count = count + 1
            local receipt = id .. '.' .. ARGV[5 + #out + 1]
            redis.call('HSET', KEYS[3], id, count)
            redis.call('HSET', KEYS[4], id, receipt)
            redis.call('ZADD', KEYS[7], deadline, id)
            out[#out + 1] = {id, body, receipt, count, redis.call('HGET', KEYS[2], id)}
        end
    end
end
return out
