-- Ledger.claim_submit: claim the right to submit a task to the vendor, atomically.
--
-- Key layout (every key starts with the ledger's prefix, from the URL's ?prefix=):
--   {prefix}:task:{task_id}  hash, one per task. Fields: seq, submit_state (leased | sending | submitted | ambiguous;
--                            absent = no claim), token, lease_until, vendor_task_id, deadline_at,
--                            outcome (Outcome JSON), reported_at, hop_seq, hop_until, created_at, updated_at. An absent field
--                            means its default. TTL retention_s, refreshed by every write.
--   {prefix}:deadlines       zset of the ids of tasks without an outcome, score = deadline_at.
--
-- KEYS[1]  {prefix}:task:{task_id}
-- KEYS[2]  {prefix}:deadlines
-- ARGV[1]  task_id          ARGV[2]  token of the caller     ARGV[3]  lease_until (now + lease_s)
-- ARGV[4]  deadline_at      ARGV[5]  now                     ARGV[6]  retention_s (TTL of the hash)
--
-- Returns {"acquired"} | {"held", lease_until} | {"submitted", vendor_task_id} | {"ambiguous"}.
-- A "sending" claim whose lease lapsed becomes "ambiguous" (its holder died mid-submit).
-- The same token claiming again renews its own lease. The first known deadline is kept.
local task, deadlines = KEYS[1], KEYS[2]
local task_id, token, lease_until, deadline_at, now, retention_s = unpack(ARGV)
local wrote = false

if tonumber(redis.call('HGET', task, 'deadline_at') or '0') == 0 and tonumber(deadline_at) > 0 then
  redis.call('HSET', task, 'deadline_at', deadline_at, 'updated_at', now)
  if redis.call('HEXISTS', task, 'outcome') == 0 then
    redis.call('ZADD', deadlines, deadline_at, task_id)
  end
  wrote = true
end

local reply
local state = redis.call('HGET', task, 'submit_state')
if state == 'submitted' then
  reply = {'submitted', redis.call('HGET', task, 'vendor_task_id') or ''}
elseif state == 'ambiguous' then
  reply = {'ambiguous'}
elseif state == 'leased' and redis.call('HGET', task, 'token') ~= token
    and tonumber(redis.call('HGET', task, 'lease_until')) > tonumber(now) then
  reply = {'held', redis.call('HGET', task, 'lease_until')}
elseif state == 'sending' then
  -- the holder may have reached the vendor: wait for its lease, and never resubmit once it lapsed
  if tonumber(redis.call('HGET', task, 'lease_until')) > tonumber(now) then
    reply = {'held', redis.call('HGET', task, 'lease_until')}
  else
    redis.call('HSET', task, 'submit_state', 'ambiguous', 'updated_at', now)
    redis.call('HDEL', task, 'lease_until')
    reply = {'ambiguous'}
    wrote = true
  end
else
  redis.call('HSET', task, 'submit_state', 'leased', 'token', token, 'lease_until', lease_until, 'updated_at', now)
  reply = {'acquired'}
  wrote = true
end

if wrote then
  redis.call('HSETNX', task, 'created_at', now)
  redis.call('EXPIRE', task, retention_s)
end
return reply
