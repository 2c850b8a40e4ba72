-- Ledger.begin_hop: admit one runner per hop (seq) of a task, atomically.
--
-- Key layout: {prefix}:task:{task_id} is the task's hash (fields in claim_submit.lua); TTL retention_s.
-- Fields used: seq (highest hop whose successor was sent), hop_seq (highest hop begun), hop_until (its lease).
--
-- KEYS[1]  {prefix}:task:{task_id}
-- ARGV[1]  seq of the message      ARGV[2]  hop_until (now + lease_s)
-- ARGV[3]  now                     ARGV[4]  retention_s
--
-- Returns {"stale"} when seq <= seq handled or seq < a hop already begun; {"busy", hop_until} while another
-- runner's lease on the same seq is live; else {"run"} after taking the lease. Numbers travel as strings
-- (Lua numbers returned to Redis would be truncated to integers).
local task = KEYS[1]
local seq, hop_until, now, retention_s = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]

local handled = tonumber(redis.call('HGET', task, 'seq') or '-1')
local begun = tonumber(redis.call('HGET', task, 'hop_seq') or '-1')
local lease = tonumber(redis.call('HGET', task, 'hop_until') or '0')
if seq <= handled or seq < begun then
  return {'stale'}
end
if seq == begun and lease > now then
  return {'busy', redis.call('HGET', task, 'hop_until')}
end
redis.call('HSET', task, 'hop_seq', seq, 'hop_until', hop_until, 'updated_at', ARGV[3])
redis.call('HSETNX', task, 'created_at', ARGV[3])
redis.call('EXPIRE', task, retention_s)
return {'run'}
