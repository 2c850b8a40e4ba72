-- release.lua: give a received message back at once (its worker is stopping and never started it).
--
-- Key layout: as in finish.lua (KEYS[1] bodies ... KEYS[10] wake); this script uses
--   KEYS[3] counts    KEYS[4] receipts    KEYS[5] ready (LPUSH in, RPOP out)    KEYS[7] inflight    KEYS[10] wake
--
-- ARGV[1]  receipt "<id>.<token>"
-- Returns 1 if the message went back to the ready list (at the out end: it is received next, and the
-- receive it had does not count), 0 if the receipt is stale or the message is no longer in flight.

local receipt = ARGV[1]
local id = string.match(receipt, '^([^.]+)%.')
if not id or redis.call('HGET', KEYS[4], id) ~= receipt then
    return 0
end
if redis.call('ZREM', KEYS[7], id) == 0 then
    return 0
end
redis.call('RPUSH', KEYS[5], id)
redis.call('ZADD', KEYS[10], 0, 'ready')
if tonumber(redis.call('HGET', KEYS[3], id) or '0') > 0 then
    redis.call('HINCRBY', KEYS[3], id, -1)
end
return 1
