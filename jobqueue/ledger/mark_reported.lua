-- Ledger.mark_reported: record when the backend acknowledged the task's report (the first time only).
--
-- Key layout: {prefix}:task:{task_id} is the task's hash (fields in claim_submit.lua); TTL retention_s.
--
-- KEYS[1]  {prefix}:task:{task_id}
-- ARGV[1]  now              ARGV[2]  retention_s
--
-- Returns 1 when reported_at was set now, 0 for an unknown task or one already marked.
local task = KEYS[1]
local now, retention_s = unpack(ARGV)

if redis.call('EXISTS', task) == 0 or redis.call('HSETNX', task, 'reported_at', now) == 0 then
  return 0
end
redis.call('HSET', task, 'updated_at', now)
redis.call('EXPIRE', task, retention_s)
return 1
