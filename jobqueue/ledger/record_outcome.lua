-- Ledger.record_outcome: the first outcome wins; every caller gets the stored one back.
--
-- Key layout: {prefix}:task:{task_id} is the task's hash (fields in claim_submit.lua); TTL retention_s.
-- {prefix}:deadlines holds only tasks without an outcome, so the task leaves it here.
--
-- KEYS[1]  {prefix}:task:{task_id}
-- KEYS[2]  {prefix}:deadlines
-- ARGV[1]  task_id          ARGV[2]  outcome JSON     ARGV[3]  now              ARGV[4]  retention_s
--
-- Returns the stored outcome JSON (ARGV[2] when this call was the first).
local task, deadlines = KEYS[1], KEYS[2]
local task_id, outcome, now, retention_s = unpack(ARGV)

local stored = redis.call('HGET', task, 'outcome')
if stored then
  return stored
end
redis.call('HSET', task, 'outcome', outcome, 'updated_at', now)
redis.call('HSETNX', task, 'created_at', now)
redis.call('ZREM', deadlines, task_id)
redis.call('EXPIRE', task, retention_s)
return outcome
