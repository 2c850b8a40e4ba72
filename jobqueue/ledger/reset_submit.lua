-- Ledger.reset_submit: an operator forgets an ambiguous or leased claim so the task may be submitted again.
--
-- Key layout: {prefix}:task:{task_id} is the task's hash (fields in claim_submit.lua); TTL retention_s.
--
-- KEYS[1]  {prefix}:task:{task_id}
-- ARGV[1]  now              ARGV[2]  retention_s
--
-- Returns 1 when a leased or ambiguous claim was cleared, else 0 (a recorded submission is kept).
local task = KEYS[1]
local now, retention_s = unpack(ARGV)

local state = redis.call('HGET', task, 'submit_state')
if state ~= 'leased' and state ~= 'sending' and state ~= 'ambiguous' then
  return 0
end
redis.call('HDEL', task, 'submit_state', 'token', 'lease_until')
redis.call('HSET', task, 'updated_at', now)
redis.call('EXPIRE', task, retention_s)
return 1
