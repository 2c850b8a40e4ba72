-- remove_dead.lua: drop one dead letter for good, atomically.
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
-- ARGV[1]      message id
-- Returns 1 if it was a dead letter, 0 otherwise.

local removed = redis.call('HDEL', KEYS[8], ARGV[1])
redis.call('ZREM', KEYS[9], ARGV[1])
return removed
