-- Ledger._save on Redis: compare-and-set one task record and keep both indexes in step, atomically.
--
-- Key layout (every key starts with the ledger's prefix, from the URL's ?prefix=):
--   {prefix}:task:{task_id}  string, one per task: "<version>|<record>", version a decimal integer (written by
--                            this script only), record the TaskRecord as JSON (see jobqueue/ledger/record.py).
--                            TTL retention_s, refreshed by every write. (Pre-release layout change: this was a
--                            hash of version and record; there is no migration.)
--   {prefix}:deadlines       zset of the ids of tasks without an outcome and with a deadline, score =
--                            deadline_at (the open-tasks index).
--   {prefix}:unreported      zset of the ids of tasks with an outcome not yet reported, score = when the
--                            outcome was recorded (the pending-report index).
--   {prefix}:vendor:{vendor_task_id}  string: the id of the task that recorded this vendor task id (the
--                            vendor-task index); TTL retention_s from when the id was recorded (a save that
--                            keeps the id may leave it alone). Readers check the record.
--   {prefix}:estimate:{pipeline}  string "<version>|<estimate JSON>": a pipeline's runtime estimate, written by
--                            RedisLedger._save_estimate's own compare-and-set, not by this script.
-- Index members whose record expired are dropped by readers (RedisLedger._drop_expired), not here.
--
-- KEYS[1]  {prefix}:task:{task_id}
-- KEYS[2]  {prefix}:deadlines
-- KEYS[3]  {prefix}:unreported
-- KEYS[4]  {prefix}:vendor:{vendor_task_id}, only when the record has a vendor task id (the caller may leave
--          it out when the expected version already had that id)
-- ARGV[1]  task_id
-- ARGV[2]  expected version ("0": the record must not exist yet)
-- ARGV[3]  new version (expected + 1, computed by the caller)
-- ARGV[4]  record JSON
-- ARGV[5]  deadlines score, "" to leave that index, or "=" when the expected version has the same (no write)
-- ARGV[6]  unreported score, "" to leave that index, or "=" when the expected version has the same (no write)
-- ARGV[7]  retention_s (TTL of the record)
--
-- Returns 1 when written, 0 when the stored version differs (nothing is written: the record is put back as it
-- was, only its TTL restarts at retention_s). Versions are compared as strings, never as Lua numbers (doubles),
-- so they stay exact however large they grow.
--
-- The record is written first and the version it replaced checked after (SET ... GET, Redis >= 6.2): one
-- command instead of a GET and a SET on the common path, where the compare-and-set wins. Nothing can see the
-- record between the SET and the undo of a lost compare-and-set (a script runs atomically).
local task, deadlines, unreported = KEYS[1], KEYS[2], KEYS[3]
local task_id, expected, version, record, deadline_score, unreported_score, retention_s = unpack(ARGV)

local stored = redis.call('SET', task, version .. '|' .. record, 'EX', retention_s, 'GET')
if (stored and string.match(stored, '^(%d+)|') or '0') ~= expected then
  if stored then
    redis.call('SET', task, stored, 'EX', retention_s)
  else
    redis.call('DEL', task)
  end
  return 0
end
if deadline_score == '' then
  redis.call('ZREM', deadlines, task_id)
elseif deadline_score ~= '=' then
  redis.call('ZADD', deadlines, deadline_score, task_id)
end
if unreported_score == '' then
  redis.call('ZREM', unreported, task_id)
elseif unreported_score ~= '=' then
  redis.call('ZADD', unreported, unreported_score, task_id)
end
if KEYS[4] then
  redis.call('SET', KEYS[4], task_id, 'EX', retention_s)
end
return 1
