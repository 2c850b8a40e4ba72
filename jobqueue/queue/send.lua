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
--   KEYS[10] wake       ZSET  at most one member, "ready": a receiver blocked in BZPOPMIN wakes when it appears.
--                       Set whenever a message may have become receivable sooner than a sleeping receiver expects
--                       (sent or put back ready, or sent delayed before every other delayed one); a stale one costs
--                       one empty receive.
-- A live message id is in exactly one of ready / delayed / inflight. Times come from the client's clock
-- (the caller passes "now"), as decimal strings used verbatim as scores.
--
-- ARGV[1]      now (unix seconds)
-- ARGV[2]      visible_at: now + delay (equal to now: straight onto the ready list)
-- ARGV[3..]    pairs of message id, body
-- Returns the number of messages added.
--
-- Every batch is a fixed handful of commands whatever its size (one HSET per hash, one LPUSH or ZADD), plus the
-- wake flag: always for ready messages, and for delayed ones only when they are due before every delayed
-- message already waiting (a sleeping receiver's timeout already covers the later ones).

local now = tonumber(ARGV[1])
local visible_at = ARGV[2]
local bodies, enqueued, ids = {}, {}, {}

for i = 3, #ARGV, 2 do
    local id, body = ARGV[i], ARGV[i + 1]
    bodies[#bodies + 1] = id
    bodies[#bodies + 1] = body
    enqueued[#enqueued + 1] = id
    enqueued[#enqueued + 1] = ARGV[1]
    ids[#ids + 1] = id
end
if #ids == 0 then
    return 0
end
redis.call('HSET', KEYS[1], unpack(bodies))
redis.call('HSET', KEYS[2], unpack(enqueued))
if tonumber(visible_at) > now then
    local first = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
    local scored = {}
    for _, id in ipairs(ids) do
        scored[#scored + 1] = visible_at
        scored[#scored + 1] = id
    end
    redis.call('ZADD', KEYS[6], unpack(scored))
    if not first[2] or tonumber(visible_at) < tonumber(first[2]) then
        redis.call('ZADD', KEYS[10], 0, 'ready')
    end
else
    redis.call('LPUSH', KEYS[5], unpack(ids))
    redis.call('ZADD', KEYS[10], 0, 'ready')
end
return #ids
