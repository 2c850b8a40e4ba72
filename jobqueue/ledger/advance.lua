-- Ledger.advance: raise the task's handled seq, compare-and-set; never lowers it.
--
-- Key layout: {prefix}:task:{task_id} is the task's hash (fields in claim_submit.lua); TTL retention_s.
-- An absent seq field means -1.
--
-- KEYS[1]  {prefix}:task:{task_id}
-- ARGV[1]  seq              ARGV[2]  now              ARGV[3]  retention_s
--
-- Returns 1 when seq was higher than the stored one and is now stored, else 0.
local task = KEYS[1]
local seq, now, retention_s = unpack(ARGV)

if tonumber(seq) <= tonumber(redis.call('HGET', task, 'seq') or '-1') then
  return 0
end
redis.call('HSET', task, 'seq', seq, 'updated_at', now)
redis.call('HSETNX', task, 'created_at', now)
redis.call('EXPIRE', task, retention_s)
return 1
