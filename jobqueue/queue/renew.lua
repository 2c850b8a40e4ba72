-- renew.lua: give a received message a new body and a new visibility deadline, if the receipt is still its latest
-- one, atomically. The receipt stays current: the runner that holds it goes on with the new body (a hop handed on
-- in place, see jobqueue/redis_hop.py), and a crash leaves the new body to come back after the deadline.
--
-- Key layout: the queue's KEYS[1..7], as in the header of receive.lua (KEYS[1] the message hashes' common start,
-- KEYS[2] ready, KEYS[4] inflight).
--
-- ARGV[1]  receipt "<id>.<token>"
-- ARGV[2]  the new body
-- ARGV[3]  the new visibility deadline
-- ARGV[4]  "apply" to renew; "checked" to renew without checking the receipt again (the caller checked it earlier
--          in the same script); anything else only tells whether the receipt is current
-- Returns 1 if the receipt is current (and, for "apply", the message renewed), 0 if it is stale or unknown.
-- A message whose deadline passed (back on the ready list, not received since) is taken back in flight. The new
-- body counts as received once (count = 1): the max receive count bounds the crashes of one hop, not of a chain.

local receipt, mode = ARGV[1], ARGV[4]
local id = string.match(receipt, '^([^.]+)%.')
if not id then
    return 0
end
if mode ~= 'checked' and redis.call('HGET', KEYS[1] .. id, 'receipt') ~= receipt then
    return 0
end
if mode == 'apply' or mode == 'checked' then
    redis.call('HSET', KEYS[1] .. id, 'body', ARGV[2], 'count', 1)
    -- XX CH answers 0 when the id is not in flight (or already had this very deadline: the LREM is then a no-op)
    if redis.call('ZADD', KEYS[4], 'XX', 'CH', ARGV[3], id) == 0 then
        redis.call('LREM', KEYS[2], 0, id)
        redis.call('ZADD', KEYS[4], ARGV[3], id)
    end
end
return 1
