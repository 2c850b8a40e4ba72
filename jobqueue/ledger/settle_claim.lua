-- Ledger.mark_sending / record_submission / mark_ambiguous / release_submit: move a claim on, only for its
-- current token. "sending" keeps the lease; the other states end it.
--
-- Key layout: {prefix}:task:{task_id} is the task's hash (fields in claim_submit.lua); TTL retention_s.
--
-- KEYS[1]  {prefix}:task:{task_id}
-- ARGV[1]  token of the caller
-- ARGV[2]  new submit_state: "sending" | "submitted" | "ambiguous" | "" (release: forget the claim and token)
-- ARGV[3]  vendor_task_id to record, or "" for none
-- ARGV[4]  now              ARGV[5]  retention_s
--
-- Returns 1 when the claim was leased (or sending) to ARGV[1] and moved on, else 0 (nothing changes).
-- "sending" is reached only from "leased".
local task = KEYS[1]
local token, new_state, vendor_task_id, now, retention_s = unpack(ARGV)

local state = redis.call('HGET', task, 'submit_state')
if (state ~= 'leased' and state ~= 'sending') or redis.call('HGET', task, 'token') ~= token then
  return 0
end
if new_state == 'sending' then
  if state ~= 'leased' then
    return 0
  end
  redis.call('HSET', task, 'submit_state', 'sending')
elseif new_state == '' then
  redis.call('HDEL', task, 'submit_state', 'token', 'lease_until')
else
  redis.call('HSET', task, 'submit_state', new_state)
  redis.call('HDEL', task, 'lease_until')
end
if vendor_task_id ~= '' then
  redis.call('HSET', task, 'vendor_task_id', vendor_task_id)
end
redis.call('HSET', task, 'updated_at', now)
redis.call('EXPIRE', task, retention_s)
return 1
