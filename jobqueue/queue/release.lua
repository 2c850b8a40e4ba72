-- release.lua: give a received message back at once (its worker is stopping and never started it).
--
-- Key layout: as in finish.lua (KEYS[1] msg: ... KEYS[7] wake); this script uses
--   KEYS[1] msg: (message <id> is the hash KEYS[1] .. id: body, enqueued, count, receipt)
--   KEYS[2] ready (LPUSH in, RPOP out)    KEYS[4] inflight    KEYS[7] wake
--
-- ARGV[1]  receipt "<id>.<token>"
-- Returns 1 if the message went back to the ready list (at the out end: it is received next, and the
-- receive it had does not count), 0 if the receipt is stale or the message is no longer in flight.

local receipt = ARGV[1]
local id = string.match(receipt, '^([^.]+)%.')
if not id then
    return 0
end
local msg = KEYS[1] .. id
local stored = redis.call('HMGET', msg, 'receipt', 'count')
if stored[1] ~= receipt or redis.call('ZREM', KEYS[4], id) == 0 then
    return 0
end
redis.call('RPUSH', KEYS[2], id)
redis.call('ZADD', KEYS[7], 0, 'ready')
if tonumber(stored[2] or '0') > 0 then
    redis.call('HINCRBY', msg, 'count', -1)
end
return 1
