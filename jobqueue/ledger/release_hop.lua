-- Ledger.release_hop: drop the lease of a hop that ended without a successor (dead-lettered).
--
-- Key layout: {prefix}:task:{task_id} is the task's hash (fields in claim_submit.lua); TTL retention_s.
--
-- KEYS[1]  {prefix}:task:{task_id}
-- ARGV[1]  seq of the hop   ARGV[2]  now   ARGV[3]  retention_s
--
-- Returns 1 when the lease of that hop was dropped, 0 when another hop holds the lease (nothing changes).
local task = KEYS[1]
if tonumber(redis.call('HGET', task, 'hop_seq') or '-1') ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', task, 'hop_until', '0', 'updated_at', ARGV[2])
redis.call('EXPIRE', task, ARGV[3])
return 1
