-- send.lua: enqueue up to max_batch bodies with one delay, atomically.
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
-- ARGV[2]      visible_at: now + delay (equal to now: straight onto the ready list)
-- ARGV[3..]    pairs of message id, body
-- Returns the number of messages added.
--
-- Every batch is one HSET per message plus a fixed handful of commands whatever its size (one LPUSH or ZADD), plus
-- the wake flag: always for ready messages, and for delayed ones only when they are due before every delayed
-- message already waiting (a sleeping receiver's timeout already covers the later ones).

local now = tonumber(ARGV[1])
local visible_at = ARGV[2]
local ids = {}

for i = 3, #ARGV, 2 do
    local id = ARGV[i]
    redis.call('HSET', KEYS[1] .. id, 'body', ARGV[i + 1], 'enqueued', ARGV[1])
    ids[#ids + 1] = id
end
if #ids == 0 then
    return 0
end
if tonumber(visible_at) > now then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    local scored = {}
    for _, id in ipairs(ids) do
        scored[#scored + 1] = visible_at
        scored[#scored + 1] = id
    end
    redis.call('ZADD', KEYS[3], unpack(scored))
    if not first[2] or tonumber(visible_at) < tonumber(first[2]) then
        redis.call('ZADD', KEYS[7], 0, 'ready')
    end
else
    redis.call('LPUSH', KEYS[2], unpack(ids))
    redis.call('ZADD', KEYS[7], 0, 'ready')
end
return #ids
