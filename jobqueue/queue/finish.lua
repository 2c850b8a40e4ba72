-- finish.lua: end a received message if the receipt is still its latest one, atomically:
-- delete it, or (given a reason) move it to the dead letters with that reason.
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
-- ARGV[1]      receipt "<id>.<token>"
-- ARGV[2]      now (unix seconds; the dead letter's time)
-- ARGV[3]      reason; empty to delete
-- Returns 1 if the message was finished, 0 if the receipt is stale or unknown.
--
-- A receipt stays current until the next receive replaces it, so a worker that outran its visibility
-- timeout may still finish the message as long as nobody else received it meanwhile (it may already be
-- back on the ready list, hence the LREM when it is no longer in flight).

local receipt, now, reason = ARGV[1], ARGV[2], ARGV[3]
local id = string.match(receipt, '^([^.]+)%.')
if not id or redis.call('HGET', KEYS[4], id) ~= receipt then
    return 0
end

if reason ~= '' then
    local count = tonumber(redis.call('HGET', KEYS[3], id) or '0')
    local entry = {body = redis.call('HGET', KEYS[1], id), reason = reason, receive_count = count}
    redis.call('HSET', KEYS[8], id, cjson.encode(entry))
    redis.call('ZADD', KEYS[9], now, id)
end
if redis.call('ZREM', KEYS[7], id) == 0 then  -- no longer in flight: back on the ready list
    redis.call('LREM', KEYS[5], 0, id)
end
redis.call('HDEL', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
return 1
