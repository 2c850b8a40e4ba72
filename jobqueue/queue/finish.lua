-- finish.lua: end a received message if the receipt is still its latest one, atomically:
-- delete it, or (given a reason) move it to the dead letters with that reason.
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
-- ARGV[1]      receipt "<id>.<token>"
-- ARGV[2]      now (unix seconds; the dead letter's time)
-- ARGV[3]      reason; empty to delete
-- ARGV[4]      optional: "owned" deletes without comparing the receipt (only inside a hop's end, whose ledger write in
--              the same script raised the task's seq to this message's hop: see jobqueue/redis_hop.py)
-- Returns 1 if the message was finished, 0 if the receipt is stale or unknown.
--
-- A receipt stays current until the next receive replaces it, so a worker that outran its visibility
-- timeout may still finish the message as long as nobody else received it meanwhile (it may already be
-- back on the ready list, hence the LREM when it is no longer in flight).

local receipt, now, reason, owned = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == 'owned'
local id = string.match(receipt, '^([^.]+)%.')
if not id then
    return 0
end
local msg = KEYS[1] .. id
if reason == '' then
    if not owned and redis.call('HGET', msg, 'receipt') ~= receipt then
        return 0
    end
else
    local stored = redis.call('HMGET', msg, 'receipt', 'body', 'count')
    if stored[1] ~= receipt then
        return 0
    end
    local entry = {body = stored[2], reason = reason, receive_count = tonumber(stored[3] or '0')}
    redis.call('HSET', KEYS[5], id, cjson.encode(entry))
    redis.call('ZADD', KEYS[6], now, id)
end
if redis.call('ZREM', KEYS[4], id) == 0 then  -- no longer in flight: back on the ready list
    redis.call('LREM', KEYS[2], 0, id)
end
redis.call('DEL', msg)
return 1
