-- remove_dead.lua: drop one dead letter for good, atomically.
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
-- ARGV[1]      message id
-- Returns 1 if it was a dead letter, 0 otherwise.

local removed = redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
return removed
