-- send.lua: enqueue up to max_batch bodies with one delay, atomically.
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
-- ARGV[2]      visible_at: now + delay (equal to now: straight onto the ready list)
-- ARGV[3..]    pairs of message id, body
-- Returns the number of messages added.

local now = tonumber(ARGV[1])
local visible_at = ARGV[2]
local delayed = tonumber(visible_at) > now
local added = 0

for i = 3, #ARGV, 2 do
    local id, body = ARGV[i], ARGV[i + 1]
    redis.call('HSET', KEYS[1], id, body)
    redis.call('HSET', KEYS[2], id, ARGV[1])
    if delayed then
        redis.call('ZADD', KEYS[6], visible_at, id)
    else
        redis.call('LPUSH', KEYS[5], id)
    end
    added = added + 1
end
return added
